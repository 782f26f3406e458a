// Cluster tests against the real thing: scripts/replicas.sh brings up two `trythis serve`
// replicas (the tests' dev build) over one PostgreSQL database, behind HAProxy; one cluster start
// serves every check. Node clients reach the load balancer or a replica directly, each from a
// loopback address of its own; headless Chromium holds the terminal whose replica is killed.
// Prints "N passed, M failed".
//   node end2end/replicas.mjs           the checks
//   node end2end/replicas.mjs --bench   the measurements instead (numbers, no assertions)
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, Visitor, freePorts, sleep, ROOT } from "./cluster.mjs";
import { termText, waitTerm, typeLine } from "./terminal-page.mjs";

const BENCH = process.argv.includes("--bench");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ADMIN = { email: "admin@example.test", password: "cluster admin password" };
const DRAIN_SECONDS = 6;

const [lbPort, port1] = await freePorts();
const cluster = new Cluster({
  ...process.env,
  TRYTHIS_CONFIG: "/dev/null",
  TRYTHIS_PROFILE: process.env.TRYTHIS_PROFILE ?? "dev",
  TRYTHIS_REPLICAS_DIR: mkdtempSync(join(tmpdir(), "trythis-replicas-")),
  // Its own database per run: another checkout's run may be using the machine's PostgreSQL.
  TRYTHIS_REPLICAS_DB: `trythis_replicas_${process.pid}`,
  TRYTHIS_REPLICAS_LB_PORT: String(lbPort),
  TRYTHIS_REPLICAS_PORT: String(port1),
  TRYTHIS_REPLICAS_CATALOG: join(ROOT, "end2end/catalog"),
  TRYTHIS_ADMIN_EMAIL: ADMIN.email,
  TRYTHIS_ADMIN_PASSWORD: ADMIN.password,
  TRYTHIS_DRAIN_SECONDS: String(DRAIN_SECONDS),
  TRYTHIS_SANDBOXES_PER_IP: "1000",
  TRYTHIS_LOG: "info,sqlx=warn,bollard=warn,tower_http=warn",
  // The measurements compare cold Tries (a pool member would answer some in 30 ms).
  ...(BENCH ? { TRYTHIS_WARM_POOL: "0", TRYTHIS_WARM_POOL_MAX: "0" } : {}),
});
const [R1, R2] = cluster.replicas;

let passed = 0, failed = 0;
async function check(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); }
  catch (e) { failed++; console.log(`FAIL - ${name}\n${e?.stack ?? e}`); }
}
async function waitFor(cond, what, timeout = 15000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for: ${what}`);
}
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const status = async (url) => { try { return (await fetch(url)).status; } catch { return 0; } };

const LB = cluster.lb;
const admin = new Visitor(LB);
let browser, printed;
// The run's containers go with it (its database is dropped): they carry its installation's id.
let instance = "";
try {  console.log(`==> cluster: scripts/replicas.sh up (load balancer on ${cluster.lb})`);
  const t0 = performance.now();
  printed = cluster.up();
  console.log(`    up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  instance = spawnSync("psql", [`postgres://trythis:trythis@127.0.0.1:5432/${cluster.env.TRYTHIS_REPLICAS_DB}`, "-tAc", "SELECT id FROM instance"], { encoding: "utf8" }).stdout.trim();
  await admin.logIn(LB, ADMIN.email, ADMIN.password);
  if (BENCH) await bench();
  else await checks();
} finally {
  if (browser) await browser.close();
  try { cluster.script("down", "--purge"); } catch (e) { console.error(String(e)); failed++; }
  if (instance) {
    const left = spawnSync("docker", ["ps", "-aq", "--filter", `label=trythis.instance=${instance}`], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    if (left.length) spawnSync("docker", ["rm", "-fv", ...left], { stdio: "ignore" });
  } else {
    console.error("the run's installation id is unknown: its containers may be left");
  }
}
if (!BENCH) console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

async function checks() {
  await check("up: both replicas healthy behind the load balancer; its URL is the last line; status lists pid, port and health", async () => {
    assert.equal(printed, LB);
    const servers = await cluster.servers();
    assert.deepEqual(Object.keys(servers).sort(), ["r1", "r2"]);
    for (const s of Object.values(servers)) assert.equal(s.status, "UP", JSON.stringify(servers));
    for (const url of [LB, R1, R2]) assert.equal(await status(url + "/healthz"), 200, url);
    assert.equal(await status(LB + "/"), 200);
    const st = cluster.script("status");
    for (const [i, name] of ["replica-1", "replica-2"].entries()) {
      assert.match(st, new RegExp(`${name}\\s+pid ${cluster.pid(name)}\\s+port ${cluster.ports[i]}\\s+health 200`), st);
    }
    assert.match(st, new RegExp(`lb\\s+pid ${cluster.pid("lb")}\\s+port ${lbPort}\\s+health 200`), st);
    // A second `up` keeps what runs.
    const pids = ["replica-1", "replica-2", "lb"].map((n) => cluster.pid(n));
    assert.equal(cluster.up(), LB);
    assert.deepEqual(["replica-1", "replica-2", "lb"].map((n) => cluster.pid(n)), pids);
  });

  await check("the load balancer passes the client's address on; a forged X-Forwarded-For is not believed", async () => {
    const v = new Visitor(LB, "127.0.0.3");
    await v.hello(LB);
    const r = await v.request(LB, "POST", "/api/projects/hello/try", { replace: true }, { "x-forwarded-for": "198.51.100.7" });
    assert.ok([200, 201].includes(r.status), r.body);
    const listed = await admin.request(LB, "GET", "/api/admin/sandboxes");
    const mine = listed.json.sandboxes.find((s) => s.id === r.json.id);
    assert.ok(mine, JSON.stringify(listed.json));
    // The client, not the load balancer's 127.0.0.2, nor what the client wrote.
    assert.match(mine.owner, /· 127\.0\.0\.3$/, mine.owner);
    await v.request(LB, "DELETE", `/api/sandboxes/${r.json.id}`);
  });

  await check("a Try started through the load balancer is the same shell through either replica (export in one, echo in the other)", async () => {
    const v = new Visitor(LB, "127.0.0.4");
    await v.hello(LB);
    const id = await v.try(LB, "hello");
    const mark = `m${Date.now()}`;
    const one = await v.terminal(R1, id);
    await one.waitFor(/[#$] $/m);
    one.type(`export MARK=${mark}; echo set-$((6*7))\r`);
    await one.waitFor(/set-42/);
    one.close();
    const two = await v.terminal(R2, id);
    two.type("echo got-$MARK\r");
    await two.waitFor(new RegExp(`got-${mark}`), 10000);
    // ...and its recent output, replayed on attach through the other replica.
    assert.match(two.output, /set-42/);
    two.close();
  });

  await check("one visitor cannot hold two sandboxes by using both replicas at once", async () => {
    const v = new Visitor(LB, "127.0.0.6");
    await v.hello(R1);
    for (const replace of [false, true]) {
      const answers = await Promise.all([
        v.request(R1, "POST", "/api/projects/hello/try", { replace }),
        v.request(R2, "POST", "/api/projects/world/try", { replace }),
      ]);
      const ids = [...new Set(answers.filter((a) => a.status < 300).map((a) => a.json.id))];
      let active = 0;
      for (const id of ids) {
        const s = await v.request(LB, "GET", `/api/sandboxes/${id}`);
        if (s.json?.active) active++;
      }
      assert.ok(active <= 1, `replace=${replace}: ${active} sandboxes running: ${answers.map((a) => `${a.status} ${a.body}`).join(" | ")}`);
      for (const a of answers) assert.ok(a.status < 500 || a.status === 503, `${a.status} ${a.body}`);
    }
    const listed = await admin.request(LB, "GET", "/api/admin/sandboxes");
    const label = listed.json.sandboxes.filter((s) => /· 127\.0\.0\.6$/.test(s.owner));
    assert.ok(label.length <= 1, JSON.stringify(label));
    for (const s of label) await admin.request(LB, "DELETE", `/api/admin/sandboxes/${s.id}`);
  });

  await check("30 wrong log-ins spread over both replicas hit one limit (TRYTHIS_AUTH_PER_ACCOUNT_PER_MIN, 10)", async () => {
    const v = new Visitor(LB, "127.0.0.5");
    await v.hello(R1);
    const codes = [];
    for (let i = 0; i < 30; i++) {
      const r = await v.request(i % 2 ? R2 : R1, "POST", "/api/auth/login", { email: ADMIN.email, password: `wrong ${i}` });
      codes.push(r.status);
    }
    assert.ok(codes.every((c) => c === 401 || c === 429), codes.join(" "));
    // One limit for the cluster: ten refusals, then "too many" from either replica.
    assert.equal(codes.filter((c) => c === 401).length, 10, codes.join(" "));
  });

  await browserChecks();

  await check("SIGTERM: the replica drains — /healthz 503, the load balancer sends it nothing new, its open terminal streams on, then it exits", async () => {
    const v = new Visitor(LB, "127.0.0.7");
    await v.hello(LB);
    const id = await v.try(LB, "hello");
    const open = await v.terminal(R1, id);
    await open.waitFor(/[#$] $/m);
    // Pre-started shells outlive a replica (their holders run beside the engine): a graceful
    // stop leaves the cluster's warm pool to the replicas that stay.
    await waitFor(() => poolMembers().length > 0, "a warm-pool member", 30000);
    const pool = poolMembers();
    const pid = cluster.pid("replica-1");
    process.kill(pid, "SIGTERM");
    await waitFor(async () => (await status(R1 + "/healthz")) === 503, "replica 1's /healthz answers 503", 5000);
    const body = await (await fetch(R1 + "/healthz")).json();
    assert.equal(body.status, "draining", JSON.stringify(body));
    await waitFor(async () => (await cluster.servers()).r1.status.startsWith("DOWN"), "the load balancer takes replica 1 out", 5000);
    const before = await cluster.servers();
    for (let i = 0; i < 20; i++) assert.equal(await status(LB + (i % 2 ? "/" : "/api/projects")), 200);
    const after = await cluster.servers();
    assert.equal(after.r1.total, before.r1.total, "a request reached the draining replica");
    assert.ok(after.r2.total >= before.r2.total + 20, JSON.stringify({ before, after }));
    // The terminal opened before the signal still works while the replica drains.
    open.type("echo still-$((20+1))\r");
    await open.waitFor(/still-21/, 3000);
    // Then it is told to go (1001: the page reconnects elsewhere) and the process ends cleanly.
    await waitFor(() => open.closed, "the terminal is closed", (DRAIN_SECONDS + 3) * 1000);
    assert.equal(open.closed.code, 1001, JSON.stringify(open.closed));
    await waitFor(() => !alive(pid), "replica 1 exits", (2 * DRAIN_SECONDS + 5) * 1000);
    assert.match(readFileSync(join(cluster.state, "logs/replica-1.log"), "utf8"), /shut down cleanly/);
    assert.equal(await status(LB + "/"), 200);
    const still = poolMembers();
    assert.ok(pool.every((id) => still.includes(id)), `warm-pool members ended with the replica: ${pool} → ${still}`);
  });

  await check("down stops every process and removes the cluster's state", async () => {
    const pids = ["replica-2", "lb"].map((n) => cluster.pid(n));
    cluster.script("down", "--purge");
    for (const p of pids) assert.ok(!alive(p), `pid ${p} still runs`);
    assert.equal(await status(LB + "/"), 0);
    assert.ok(!existsSync(cluster.state), `${cluster.state} is still there`);
  });
}

async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
// (Function declarations: the checks run at the top of the module, before its later lines.)
/** The ids of the warm pool's running members, from the cluster's database. */
function poolMembers() {
  const db = `postgres://trythis:trythis@127.0.0.1:5432/${cluster.env.TRYTHIS_REPLICAS_DB}`;
  const r = spawnSync("psql", [db, "-tAc", "SELECT id FROM sandboxes WHERE owner = 'pool' AND active ORDER BY id"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}
function lastTick(text) {
  return Math.max(0, ...[...text.matchAll(/tick-(\d+)/g)].map((m) => Number(m[1])));
}

/** A browser's Try whose terminal is on replica 1 (replica 2 held out while it opens). */
async function tryOnReplica1(page) {
  await cluster.lbCommand("disable server replicas/r2");
  try {
    await page.goto(LB + "/p/hello");
    await page.locator("#try").click();
    await waitTerm(page, /root@.*[#$]/);
  } finally {
    await cluster.lbCommand("enable server replicas/r2");
  }
  await waitFor(async () => (await cluster.servers()).r2.status === "UP", "replica 2 back in", 10000);
  const servers = await cluster.servers();
  assert.ok(servers.r1.current >= 1, `the terminal is not on replica 1: ${JSON.stringify(servers)}`);
}

async function browserChecks() {
  browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  let lastBefore = 0;
  await check("kill -9 of the replica holding the browser's terminal: it reconnects through the load balancer by itself and the program runs on", async () => {
    await tryOnReplica1(page);
    await typeLine(page, "echo before-$((40+2)); for i in $(seq 1 100000); do echo tick-$i; sleep 0.5; done");
    await waitTerm(page, /tick-4\b/);
    lastBefore = lastTick(await termText(page));
    await page.evaluate(() => {
      window.__closes = 0;
      document.querySelector("#terminal").addEventListener("trythis-terminal", () => window.__closes++);
    });
    const killedAt = performance.now();
    process.kill(cluster.pid("replica-1"), "SIGKILL");
    // The page notices, and opens a socket again by itself (through the load balancer).
    await waitFor(() => page.evaluate(() => window.__closes > 0 && document.querySelector("#terminal").dataset.state === "open"),
      "the page reconnects", 15000);
    console.log(`    the page reconnected ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill`);
    // The same shell: the loop counts on.
    try {
      await waitFor(async () => lastTick(await termText(page)) >= lastBefore + 4, `ticks past tick-${lastBefore + 3}`, 10000);
    } catch (e) {
      throw new Error(`${e.message}; the screen shows:\n${await termText(page)}`);
    }
    console.log(`    the loop counted on ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill`);
  });

  await check("…and after a reload its scrollback from before the death is replayed (the session outlived the replica)", async () => {
    assert.ok(lastBefore > 0, "the terminal never ran the loop");
    await page.reload();
    await waitTerm(page, new RegExp(`tick-${lastBefore}\\b`), 15000);
  });
  await ctx.close();
  // Replica 1 back for the checks that follow: `up` starts only what is missing.
  cluster.up();
}

// ---- measurements ---------------------------------------------------------------------------

function wrk(url, conns, seconds) {
  const r = spawnSync("wrk", ["-t", String(Math.min(conns, 2)), "-c", String(conns), "-d", `${seconds}s`, "--latency", url], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`wrk: ${r.stderr}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
  const p50 = /50%\s+([\d.]+\w+)/.exec(r.stdout)?.[1];
  const p99 = /99%\s+([\d.]+\w+)/.exec(r.stdout)?.[1];
  return `${rps.toFixed(0)} req/s, p50 ${p50}, p99 ${p99}`;
}

function median(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

/** POST try → ticket → socket → first byte of the shell, all through `base`; milliseconds. */
async function tryToFirstByte(base, from) {
  const v = new Visitor(LB, from);
  await v.hello(base);
  const t = performance.now();
  const id = await v.try(base, "hello");
  const term = await v.terminal(base, id);
  await term.waitFor(/./s, 30000);
  const ms = term.firstOutputAt - t;
  term.close();
  await v.request(base, "DELETE", `/api/sandboxes/${id}`);
  return ms;
}

async function bench() {
  console.log("==> Home page: one replica directly vs through HAProxy (wrk, 5 s each; same run, same machine)");
  for (const conns of [1, 32]) {
    console.log(`    ${String(conns).padStart(2)} connection(s)  direct ${wrk(R1 + "/", conns, 5)}`);
    console.log(`    ${String(conns).padStart(2)} connection(s)  via LB ${wrk(LB + "/", conns, 5)}`);
  }
  console.log("==> A Try: POST try + ticket + terminal socket to the shell's first byte (median of 5 each, alternating)");
  const direct = [], via = [];
  for (let i = 0; i < 5; i++) {
    direct.push(await tryToFirstByte(R1, `127.0.1.${i + 1}`));
    via.push(await tryToFirstByte(LB, `127.0.2.${i + 1}`));
  }
  console.log(`    direct ${median(direct).toFixed(0)} ms (${direct.map((x) => x.toFixed(0)).join(", ")})`);
  console.log(`    via LB ${median(via).toFixed(0)} ms (${via.map((x) => x.toFixed(0)).join(", ")})`);

  console.log("==> kill -9 of the replica holding a terminal → the terminal answers again through the LB");
  const times = [];
  for (let round = 0; round < 3; round++) {
    await waitFor(async () => Object.values(await cluster.servers()).every((s) => s.status === "UP"), "both replicas in", 15000);
    const v = new Visitor(LB, `127.0.3.${round + 1}`);
    await v.hello(LB);
    const id = await v.try(LB, "hello");
    await cluster.lbCommand("disable server replicas/r2");
    let term;
    try { term = await v.terminal(LB, id); } finally { await cluster.lbCommand("enable server replicas/r2"); }
    await term.waitFor(/[#$] $/m);
    await waitFor(async () => (await cluster.servers()).r2.status === "UP", "replica 2 back in", 10000);
    const t = performance.now();
    process.kill(cluster.pid("replica-1"), "SIGKILL");
    // What the page does, without its back-off: a new ticket and socket until a command answers.
    for (;;) {
      try {
        const again = await v.terminal(LB, id);
        again.type("echo back-$((1+1))\r");
        await again.waitFor(/back-2/, 5000);
        again.close();
        break;
      } catch { await sleep(50); }
    }
    times.push(performance.now() - t);
    await v.request(LB, "DELETE", `/api/sandboxes/${id}`);
    cluster.up();
  }
  console.log(`    ${times.map((x) => `${x.toFixed(0)} ms`).join(", ")} (the page adds its own back-off: 0.5 s before its first retry)`);
}
