// The site on the local cluster, in Chromium, as a visitor and an admin see it (scripts/bench.sh;
// needs root: it starts `scripts/cluster.sh up 3` with the site, which builds what is missing).
// A visitor's Try runs on a sandbox node; that node's engine is killed; the script measures how
// long until the visitor's page says the machine stopped, then presses Try again (another node).
// The admin page's "Sandbox nodes" panel is shot before and after. Prints numbers and writes
// screenshots to end2end/screenshots/nodes-*.png; exits 1 if a step fails.
import { chromium } from "playwright-core";
import { spawnSync } from "node:child_process";
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { waitTerm, typeLine } from "./terminal-page.mjs";

const ROOT = new URL("..", import.meta.url).pathname;
const STATE = process.env.TRYTHIS_CLUSTER_DIR ?? "/run/trythis-c";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = join(ROOT, "end2end", "screenshots");
const PROJECT = process.env.NODES_PROJECT ?? "jq";
mkdirSync(SHOTS, { recursive: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function up() {
  const r = spawnSync("bash", [join(ROOT, "scripts/cluster.sh"), "up", "3"], {
    encoding: "utf8",
    env: { ...process.env, TRYTHIS_CLUSTER_HEARTBEAT: process.env.TRYTHIS_CLUSTER_HEARTBEAT ?? "1s" },
  });
  if (r.status !== 0) throw new Error(`cluster.sh up 3 failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.trim().split("\n").pop().trim();
}

/** The sandbox in the page's terminal: (its id, the sandbox node I whose engine holds it), found
 *  by the container's hostname (its short id) on each node's engine. */
async function sandboxOf(page, tag) {
  await sleep(500); // the new terminal takes its keys once it is focused
  await typeLine(page, `echo ${tag}=$(hostname)`);
  const text = await waitTerm(page, new RegExp(`${tag}=[0-9a-f]{12}`));
  const host = text.match(new RegExp(`${tag}=([0-9a-f]{12})`))[1];
  for (const i of [2, 3, 4, 5]) {
    const r = spawnSync("docker", ["-H", `unix://${STATE}/n${i}/docker.sock`, "inspect", "-f", '{{index .Config.Labels "trythis.sandbox"}}', host], { encoding: "utf8" });
    if (r.status === 0) return { id: r.stdout.trim(), node: i };
  }
  throw new Error(`container ${host} is on no sandbox node`);
}

const site = up();
if (!site.startsWith("http")) throw new Error(`cluster.sh up did not print the site's URL: ${site}`);
console.log(`site on the cluster: ${site}`);
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
let failed = false;
try {
  const admin = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  // `trythis admin --first` keeps the address and the password, one per line.
  const [email, password] = readFileSync(join(ROOT, "data/cluster-site/admin-password"), "utf8").trim().split("\n");
  await admin.goto(`${site}/login`);
  await admin.fill("#email", email.trim());
  await admin.fill("#password", password.trim());
  await admin.locator("#submit").click();
  await admin.waitForURL((u) => !u.pathname.startsWith("/login"), { timeout: 15000 });

  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`${site}/p/${PROJECT}`);
  await page.locator("#try").click();
  await waitTerm(page, /root@[0-9a-f]+:.*[#$]/, 30000);
  const { id, node } = await sandboxOf(page, "FIRST");
  // The shell on a node is the same shell as on one host: Ctrl+C, resize, a full-screen program,
  // a reload that re-attaches.
  await typeLine(page, "sleep 1000");
  await sleep(700);
  await page.keyboard.press("Control+C");
  await typeLine(page, "echo after-ctrl-c-$((6*7))");
  await waitTerm(page, /after-ctrl-c-42/);
  await page.setViewportSize({ width: 1000, height: 700 });
  await sleep(800);
  await typeLine(page, "echo SIZE=$(stty size | tr ' ' x)");
  const sized = (await waitTerm(page, /SIZE=\d+x\d+/)).match(/SIZE=(\d+)x(\d+)/);
  await page.setViewportSize({ width: 1280, height: 800 });
  await sleep(800);
  await typeLine(page, "echo SIZE2=$(stty size | tr ' ' x)");
  const resized = (await waitTerm(page, /SIZE2=\d+x\d+/)).match(/SIZE2=(\d+)x(\d+)/);
  if (sized[0].slice(5) === resized[0].slice(6)) throw new Error(`the resize did not reach the shell: ${sized[0]} ${resized[0]}`);
  console.log(`  resize reached the shell on the node: ${sized[0].slice(5)} → ${resized[0].slice(6)} (rows x cols)`);
  await typeLine(page, "MARK=kept-$((6*7)); top");
  await waitTerm(page, /load average/);
  await page.keyboard.press("q");
  await page.reload();
  await waitTerm(page, /root@[0-9a-f]+:.*[#$]/, 30000);
  await sleep(500);
  await typeLine(page, "echo $MARK");
  await waitTerm(page, /kept-42/);
  console.log("  Ctrl+C, resize, top and a reload back into the same shell: ok");
  console.log(`the visitor's sandbox ${id} runs on trythis-c${node}`);

  await admin.goto(`${site}/admin`);
  await admin.locator("#admin-nodes tr[data-node]").first().waitFor({ timeout: 15000 });
  await admin.locator(`#admin-sandboxes tr[data-sandbox="${id}"]`).waitFor({ timeout: 15000 });
  await admin.screenshot({ path: join(SHOTS, "nodes-admin.png"), fullPage: true });

  const pid = readFileSync(`${STATE}/n${node}/docker.pid`, "utf8").trim();
  const t0 = Date.now();
  spawnSync("kill", ["-KILL", pid]);
  await page.locator("#ended").waitFor({ timeout: 90000 });
  const shown = (Date.now() - t0) / 1000;
  const text = await page.locator("#ended").innerText();
  console.log(`node loss (engine killed, heartbeat ${process.env.TRYTHIS_CLUSTER_HEARTBEAT ?? "1s"}) to the visitor's page saying so: ${shown.toFixed(1)} s`);
  console.log(`  the page says: ${text}`);
  if (!/machine running this sandbox stopped/.test(text)) throw new Error(`the page says: ${text}`);
  await page.screenshot({ path: join(SHOTS, "nodes-lost.png") });
  await admin.reload();
  await admin.locator("#admin-nodes tr[data-node]").first().waitFor({ timeout: 15000 });
  await sleep(1500);
  await admin.screenshot({ path: join(SHOTS, "nodes-admin-down.png"), fullPage: true });

  await page.locator("#try-again").click();
  await waitTerm(page, /root@[0-9a-f]+:.*[#$]/, 30000);
  const { id: again, node: other } = await sandboxOf(page, "AGAIN");
  console.log(`Try again: sandbox ${again} on trythis-c${other}`);
  if (other === node) throw new Error("Try again landed on the lost node");
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack ?? e}`);
} finally {
  await browser.close();
  up(); // the killed engine back (its leftovers are swept by the site)
}
process.exit(failed ? 1 : 0);
