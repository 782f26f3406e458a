// Browser tests: the real server (fresh data dir, a one-project catalogue built for real) driven
// by headless Debian Chromium through playwright-core. Prints "N passed, M failed".
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { startProvider } from "./oauth-provider.mjs";
import { termText, waitTerm, typeLine } from "./terminal-page.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = process.env.TRYTHIS_BIN ?? join(ROOT, "target/debug/trythis");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = join(ROOT, "end2end/screenshots");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const port = await new Promise((res) => { const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
const BASE = `http://127.0.0.1:${port}`;
const data = mkdtempSync(join(tmpdir(), "trythis-e2e-"));
// A local OAuth provider speaking GitHub's and Google's protocol (PKCE enforced).
const provider = await startProvider();
const P = provider.url;
const ADMIN = { email: "admin@example.test", password: "e2e admin password" };
// Mails go through the real local SMTP server scripts/test.sh starts (aiosmtpd); its mailboxes
// are shared with earlier runs, so the maintainer's address is new each run.
const SMTP = process.env.TRYTHIS_TEST_SMTP_URL;
const MAILDIR = process.env.TRYTHIS_TEST_MAILDIR;
if (!SMTP || !MAILDIR) throw new Error("TRYTHIS_TEST_SMTP_URL and TRYTHIS_TEST_MAILDIR are required (scripts/lib.sh ensure_smtp_sink)");
const MIA = `mia-${Date.now()}@example.test`;
const env = {
  ...process.env,
  TRYTHIS_ADMIN_EMAIL: ADMIN.email,
  TRYTHIS_ADMIN_PASSWORD: ADMIN.password,
  TRYTHIS_GITHUB_CLIENT_ID: "gh-test-client",
  TRYTHIS_GITHUB_CLIENT_SECRET: "gh-test-secret",
  TRYTHIS_GITHUB_AUTH_URL: `${P}/github/login/oauth/authorize`,
  TRYTHIS_GITHUB_TOKEN_URL: `${P}/github/login/oauth/access_token`,
  TRYTHIS_GITHUB_PROFILE_URL: `${P}/github/api`,
  TRYTHIS_GOOGLE_CLIENT_ID: "google-test-client",
  TRYTHIS_GOOGLE_CLIENT_SECRET: "google-test-secret",
  TRYTHIS_GOOGLE_AUTH_URL: `${P}/google/auth`,
  TRYTHIS_GOOGLE_TOKEN_URL: `${P}/google/token`,
  TRYTHIS_GOOGLE_PROFILE_URL: `${P}/google/userinfo`,
  TRYTHIS_CONFIG: "/dev/null",
  TRYTHIS_DATA_DIR: data,
  TRYTHIS_DATABASE_URL: `sqlite://${data}/e2e.db`,
  TRYTHIS_LISTEN: `127.0.0.1:${port}`,
  TRYTHIS_TTYD_PATH: process.env.TRYTHIS_TEST_TTYD ?? join(ROOT, "data/bin/ttyd"),
  TRYTHIS_RELAY_PATH: process.env.TRYTHIS_TEST_RELAY ?? join(ROOT, "data/bin/trythis-relay"),
  TRYTHIS_EGRESS_PROXY_PORT: "0",
  TRYTHIS_SITE_ROOT: join(ROOT, "target/site"),
  TRYTHIS_LOG: "warn",
  TRYTHIS_SMTP_URL: SMTP,
  // Its end needs no drain (no load balancer sends it anything).
  TRYTHIS_DRAIN_SECONDS: "0",
  // Every browser here is 127.0.0.1.
  TRYTHIS_SANDBOXES_PER_IP: "1000",
  // As scripts/run.sh runs the site: a new maintainer's projects wait for an admin's review.
  TRYTHIS_MODERATION: "on",
  // Imports by reference may read the local registry only because this lists it explicitly
  // (plain HTTP, loopback); the default policy refuses it.
  TRYTHIS_IMPORT_REGISTRIES: "http://127.0.0.1:5000",
};
execFileSync(BIN, ["seed", join(ROOT, "end2end/catalog")], { env, stdio: "inherit" });
const server = spawn(BIN, ["serve"], { env, stdio: ["ignore", "ignore", "inherit"] });
for (let i = 0; ; i++) {
  try { if ((await fetch(BASE + "/healthz")).ok) break; } catch {}
  if (i > 200) throw new Error("server never came up");
  await sleep(100);
}

/// The link to `path` in the newest mail to `to` that has one (waits up to 15 s for it).
async function mailedLink(to, path) {
  const dir = join(MAILDIR, to.toLowerCase().replace(/[^a-z0-9@._+-]/g, "_"));
  for (let i = 0; i < 150; i++) {
    let files = [];
    try { files = readdirSync(dir).filter((f) => f.endsWith(".eml")).sort().reverse(); } catch {}
    for (const f of files) {
      // Quoted-printable, as a mail client decodes it: soft breaks joined, =XX restored.
      const text = readFileSync(join(dir, f), "utf8").replace(/=\r?\n/g, "")
        .replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
      const m = text.match(new RegExp(`(http\\S*${path.replace("?", "\\?")}=[0-9a-f]{64}\\S*)`));
      if (m) return m[1];
    }
    await sleep(100);
  }
  throw new Error(`no mail to ${to} with a ${path} link`);
}

let passed = 0, failed = 0, skipped = 0;
// E2E_ONLY=<regex>: run only the checks whose name matches (a fast loop while working on them).
// Checks may build on earlier ones, so a partial run is never green: it exits 1.
const ONLY = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null;
/** Polls `cond` (async) every 200 ms until it holds; fails naming `what` after `timeout` ms. */
async function waitFor(cond, what, timeout = 10000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

async function check(name, fn) {
  if (ONLY && !ONLY.test(name)) { skipped++; return; }
  try { await fn(); passed++; console.log(`ok - ${name}`); }
  catch (e) { failed++; console.log(`FAIL - ${name}\n${e?.stack ?? e}`); }
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
mkdirSync(SHOTS, { recursive: true });
const errors = [];
function watch(page) {
  page.on("pageerror", (e) => errors.push(String(e)));
  // The page's own address too: which page saw it (a poll's URL alone does not say).
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${m.text()} ${m.location()?.url ?? ""} (on ${page.url()})`.trim()); });
}

try {
  await check("pages are server-rendered (JavaScript off)", async () => {
    const ctx = await browser.newContext({ javaScriptEnabled: false });
    const page = await ctx.newPage();
    const resp = await page.goto(BASE + "/");
    assert.equal(resp.status(), 200);
    assert.match(await page.locator("h1").first().innerText(), /Try open source/);
    // Trending and newest. A newcomer's "you may like" is a tour without what Trending shows:
    // here Trending shows the whole (three-project) catalogue, so the section is left out.
    assert.equal(await page.locator('.card[data-slug="hello"]').count(), 2);
    assert.equal(await page.locator("#for-you").count(), 0);
    // Nobody has tried anything yet: "new", not "0 tries".
    assert.equal(await page.locator('.card[data-slug="hello"] .tries').first().innerText(), "new · be the first");
    assert.ok(await page.locator('.chips a[data-category="Databases"]').count() === 1);
    await page.goto(BASE + "/p/hello");
    assert.match(await page.locator(".project-name").innerText(), /Hello Shell/);
    assert.equal(await page.locator("#try").getAttribute("href"), "/try/hello");
    // The description's <script> is shown as text, never run.
    assert.match(await page.locator(".description").innerText(), /<script>/);
    assert.equal((await page.goto(BASE + "/p/nope")).status(), 404);
    await ctx.close();
  });

  const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const page = await ctx.newPage();
  watch(page);

  await check("hydration: a category chip filters in place, without a reload", async () => {
    await page.goto(BASE + "/");
    await page.evaluate(() => { window.__noReload = 42; });
    const chip = page.locator('.chips a[data-category="Other"]');
    for (let i = 0; i < 100; i++) {
      await chip.click();
      if ((await page.locator("#trending-heading").innerText()) === "Trending in Other") break;
      await sleep(100);
    }
    assert.equal(await page.locator("#trending-heading").innerText(), "Trending in Other");
    assert.equal(await page.evaluate(() => window.__noReload), 42);
    assert.equal(new URL(page.url()).pathname, "/");
    // Trending is the most tried only: the whole category is one click away.
    assert.equal(await page.locator("#all-in-category").getAttribute("href"), "/search?category=Other");
    await page.screenshot({ path: join(SHOTS, "home.png"), fullPage: true });
  });

  await check("search from the home page, open the project, copy a badge snippet", async () => {
    await page.goto(BASE + "/");
    await page.fill(".hero input[name=q]", "hello");
    await page.press(".hero input[name=q]", "Enter");
    await page.waitForURL(/\/search\?q=hello/);
    await page.locator('.card[data-slug="hello"]').click();
    await page.waitForURL(/\/p\/hello$/);
    const copy = page.locator('button.copy[data-snippet="Markdown"]');
    for (let i = 0; i < 50 && (await copy.innerText()) !== "Copied!"; i++) { await copy.click(); await sleep(100); }
    assert.equal(await copy.innerText(), "Copied!");
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(clip, /\[!\[try this in your browser\]\(.*\/badge\/hello\.svg\)\]\(.*\/try\/hello\)/);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
  });

  await check("Explore: filters and order live in the URL, show what is chosen and apply on change", async () => {
    const ex = await ctx.newPage();
    watch(ex);
    await ex.goto(BASE + "/search?sort=name");
    assert.equal(await ex.locator("#filter-sort").inputValue(), "name");
    const names = await ex.locator(".card .card-name").allInnerTexts();
    assert.ok(names.length >= 2, `cards: ${names}`);
    assert.deepEqual(names, [...names].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
    // Until the page is hydrated a change does nothing (without JavaScript, Apply does it).
    const choose = async (select, value, url) => {
      for (let i = 0; i < 50; i++) {
        await ex.selectOption(select, value);
        try { await ex.waitForURL(url, { timeout: 300 }); return; } catch { /* not hydrated yet */ }
      }
      throw new Error(`choosing ${value} in ${select} did not navigate`);
    };
    await choose("#filter-sort", "newest", /sort=newest/);
    assert.equal(await ex.locator("#filter-sort").inputValue(), "newest");
    await choose("#filter-category", "Other", /category=Other/);
    assert.match(ex.url(), /sort=newest/, "the order stays when the category changes");
    assert.equal(await ex.locator("#filter-category").inputValue(), "Other");
    // The JSON API refuses an order it does not know, with a sentence.
    const bad = await ex.request.get(BASE + "/api/projects?sort=sideways");
    assert.equal(bad.status(), 400);
    assert.equal((await bad.json()).error, "bad_sort");
    await ex.screenshot({ path: join(SHOTS, "explore.png"), fullPage: true });
    await ex.close();
  });

  await check("Try opens a terminal: type a command, see its output", async () => {
    await page.locator("#try").click();
    await waitTerm(page, /root@.*[#$]/);
    await waitTerm(page, /Welcome to Hello Shell/);
    await typeLine(page, "echo e2e-$((6*7)) $HELLO_READY");
    await waitTerm(page, /e2e-42 yes/);
    // Ctrl+V pastes (not a literal ^V).
    await page.evaluate(() => navigator.clipboard.writeText("echo pasted-$((40+2))"));
    await page.locator("#terminal .xterm-helper-textarea").focus();
    await page.keyboard.press("Control+V");
    await page.keyboard.press("Enter");
    await waitTerm(page, /pasted-42/);
    // Copy takes the terminal's text (the selection when there is one).
    await page.click("#copy-term");
    await page.waitForFunction(() => document.querySelector("#copy-term")?.textContent === "Copied");
    assert.match(await page.evaluate(() => navigator.clipboard.readText()), /e2e-42 yes[\s\S]*pasted-42/);
    assert.match(await page.locator(".countdown").innerText(), /Ends in \d\d:\d\d/);
    await page.screenshot({ path: join(SHOTS, "try.png") });
  });

  await check("a code block of the description runs in the terminal when clicked", async () => {
    await page.locator(".description pre").first().click();
    await waitTerm(page, /\nhello\s*\n/);
  });

  await check("a reload re-attaches to the same shell", async () => {
    await typeLine(page, "KEEP=still-here");
    await sleep(300);
    await page.reload();
    await waitTerm(page, /e2e-42/); // earlier output replayed
    await typeLine(page, "echo kept:$KEEP");
    await waitTerm(page, /kept:still-here/);
  });

  await check("share: the owner makes a view link in the Try panel; a second browser watches live and its keys do nothing; revoke tells it at once", async () => {
    await page.locator("#share").click();
    await page.waitForSelector("#share-panel:not(.hidden)");
    await page.locator("#share-view").click();
    const row = page.locator(".share-row").first();
    await row.locator("input.share-url").waitFor();
    const url = await row.locator("input.share-url").inputValue();
    assert.match(url, new RegExp(`^${BASE}/watch/[0-9a-f]{64}$`));
    assert.match(await row.locator(".share-mode").innerText(), /view only/i);
    await row.locator(".copy-share").click();
    await waitFor(async () => /Copied/.test(await row.locator(".copy-share").innerText()), "the Copy button says Copied");
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);

    // Someone else opens the link in their own browser.
    const vctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const viewer = await vctx.newPage();
    viewer.on("pageerror", (e) => errors.push(`viewer: ${e}`));
    await viewer.goto(url);
    assert.match(await viewer.locator("#watch-project").innerText(), /Hello Shell/);
    assert.match(await viewer.locator("#watch-mode").innerText(), /View only/);
    await viewer.waitForSelector("body[data-hydrated]");
    await waitTerm(viewer, /kept:still-here/); // the owner's screen so far
    await typeLine(page, "echo shared-$((6*7))");
    await waitTerm(viewer, /shared-42/);
    // Typing on the viewer's page does nothing (its keys are dropped by the server too:
    // server/tests/shares.rs sends them past the page).
    await viewer.locator("#terminal").click();
    await viewer.keyboard.type("echo viewer-typed");
    await viewer.keyboard.press("Enter");
    await sleep(800);
    await typeLine(page, "echo owner-after");
    await waitTerm(viewer, /owner-after/);
    assert.doesNotMatch(await termText(page), /viewer-typed/);
    assert.doesNotMatch(await termText(viewer), /viewer-typed/);
    // The owner sees who is watching.
    await waitFor(async () => /1 watching: anonymous/.test(await row.innerText()), "the owner's list shows the viewer", 12000);
    assert.match(await page.locator("#share").innerText(), /1 watching/);
    // A server the owner starts shows on the viewer's page as a preview this link opens.
    await typeLine(page, `perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>8080,Listen=>5,ReuseAddr=>1);while($c=$s->accept){while(<$c>){last if /^\\r?$/}print $c "HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\n\\r\\n<h1>shared-preview</h1>";close $c}' >/dev/null 2>&1 &`);
    const shared = viewer.locator('#watch-tools a.preview[data-port="8080"]');
    await shared.waitFor({ timeout: 20000 });
    const [vp] = await Promise.all([vctx.waitForEvent("page"), shared.click()]);
    await waitFor(async () => (await vp.locator("h1").count()) > 0, "the shared preview's page", 20000);
    assert.equal(await vp.textContent("h1"), "shared-preview");
    assert.match(vp.url(), new RegExp(`^http://[a-z0-9]{26}-8080\\.preview\\.localhost:${port}/$`));
    await vp.close();
    await page.screenshot({ path: join(SHOTS, "share-panel.png") });
    await viewer.screenshot({ path: join(SHOTS, "watch.png") });
    await viewer.setViewportSize({ width: 390, height: 844 });
    await sleep(300);
    await viewer.screenshot({ path: join(SHOTS, "watch-phone.png"), fullPage: true });
    const wide = await viewer.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    assert.ok(!wide, "the viewer's page is no wider than a phone");
    // The owner's drawer on a phone.
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(300);
    await page.locator(".try-panel").screenshot({ path: join(SHOTS, "share-panel-phone.png") });
    await page.setViewportSize({ width: 1360, height: 900 });

    // Revoke: the viewer is told at once, and the link is dead.
    const t0 = Date.now();
    await row.locator(".revoke-share").click();
    await viewer.waitForSelector("#watch-ended", { timeout: 3000 });
    assert.ok(Date.now() - t0 < 3000);
    assert.match(await viewer.locator("#watch-ended").innerText(), /stopped sharing/);
    await waitFor(async () => (await page.locator(".share-row").count()) === 0, "the link leaves the owner's list");
    const again = await viewer.goto(url);
    assert.equal(again.status(), 410);
    assert.match(await viewer.locator("#watch-gone").innerText(), /This session has ended/);
    await vctx.close();
    await page.locator("#share").click();
    await page.waitForSelector("#share-panel.hidden", { state: "attached" });
  });

  await check("the README badge link /try/{slug} opens the project with its terminal", async () => {
    await page.goto(BASE + "/try/hello");
    await page.waitForURL(/\/p\/hello\?try=1/);
    await typeLine(page, "echo via-badge");
    await waitTerm(page, /\nvia-badge/);
  });

  await check("My containers lists the sandbox; Stop ends it", async () => {
    await page.goto(BASE + "/containers");
    // Names, not slugs; how long ago, not a time zone; the time left of the running one.
    assert.match(await page.locator("table").innerText(), /Hello Shell[\s\S]*ago[\s\S]*running[\s\S]*\d\d:\d\d/);
    await page.goto(BASE + "/p/hello");
    await waitTerm(page, /via-badge/);
    // Stop asks first; the last screen stays readable after the end.
    const asked = new Promise((res) => page.once("dialog", (d) => { res(d.message()); d.accept(); }));
    await page.locator("#stop").click();
    assert.match(await asked, /Stop this sandbox\?/);
    await page.waitForSelector("#ended");
    assert.match(await page.locator("#ended").innerText(), /stopped/);
    // The reason is said once (not in the terminal, the panel and again beside it).
    const said = await page.evaluate(() => document.body.innerText.split("You stopped this sandbox.").length - 1);
    assert.equal(said, 1, "the end's reason is stated once");
    assert.ok(await page.locator("#terminal").isVisible(), "the final screen stays");
    await waitTerm(page, /via-badge/);
  });

  await check("home: the featured banner, and 'you may like' follows this visitor's tries", async () => {
    await page.goto(BASE + "/");
    const banner = page.locator(".featured");
    assert.match(await banner.innerText(), /Hello Shell[\s\S]*say hello in one click/);
    assert.equal(await banner.locator("a.featured-try").getAttribute("href"), "/try/hello");
    const forYou = page.locator("#for-you");
    assert.match(await forYou.innerText(), /in proportion to the categories you try/);
    // Hello Shell was tried today, so it is skipped; its category's other project is suggested.
    const slugs = await forYou.locator(".card").evaluateAll((cs) => cs.map((c) => c.dataset.slug));
    assert.equal(slugs[0], "world");
    assert.ok(!slugs.includes("hello"), `a project tried today is not suggested: ${slugs}`);
    await page.screenshot({ path: join(SHOTS, "home-personal.png"), fullPage: true });
  });

  await check("publishing asks to sign up; sign up → mail → confirm → log out → log in", async () => {
    await page.goto(BASE + "/new");
    await page.waitForSelector("#publish-login");
    await page.click("#publish-login a[href^='/signup']");
    await page.waitForURL(/\/signup\?next=%2Fnew|\/signup\?next=\/new/);
    // Field-level answers first (expected 400 in the console).
    let before = errors.length;
    await page.fill("#email", "maintainer@example");
    await page.click("#submit");
    await page.waitForSelector(".field.invalid #email");
    // Each problem once, under its field: no summary above the button repeating it.
    const said = await page.locator(".auth-form").innerText();
    const problem = (await page.locator(".field.invalid .field-problem").innerText()).trim();
    assert.ok(problem.length > 0, said);
    assert.equal(said.split(problem).length - 1, 1, said);
    assert.equal(await page.locator("#form-message").count(), 0, said);
    await page.screenshot({ path: join(SHOTS, "signup-problems.png"), fullPage: true });
    errors.splice(before);
    // No password here: it is chosen on the mailed link's page.
    assert.equal(await page.locator(".auth-form #password").count(), 0);
    await page.fill("#name", "Mia Maintainer");
    await page.fill("#email", MIA);
    await page.screenshot({ path: join(SHOTS, "signup.png"), fullPage: true });
    await page.click("#submit");
    // Nothing is signed in yet: the page says where the link went.
    await page.waitForSelector("#check-inbox");
    assert.match(await page.locator("#check-inbox").innerText(), new RegExp(MIA.replace(/[.]/g, "\\.")));
    await page.screenshot({ path: join(SHOTS, "check-inbox.png"), fullPage: true });
    const link = await mailedLink(MIA, "/verify?token");
    assert.ok(link.startsWith(BASE + "/verify?token="), link);
    assert.match(link, /&next=\/new$/);
    await page.goto(link);
    // The link's page names the address, asks for the password, and offers this browser's
    // tries (it tried projects above) only as a box to tick.
    await page.waitForSelector("#link-email");
    assert.match(await page.locator("#link-email").innerText(), new RegExp(MIA.replace(/[.]/g, "\\.")));
    await page.waitForSelector("#bring");
    assert.match(await page.locator("label:has(#bring)").innerText(), /Bring my (try|\d+ tries) into this account/);
    assert.equal(await page.locator("#bring").isChecked(), false);
    before = errors.length;
    await page.fill("#password", "short");
    await page.click("#confirm");
    await page.waitForSelector(".invalid #password");
    assert.match(await page.locator(".auth-form").innerText(), /at least 10 characters/);
    errors.splice(before);
    await page.fill("#password", "mia's long password");
    await page.check("#bring");
    await page.screenshot({ path: join(SHOTS, "verify.png"), fullPage: true });
    await page.click("#confirm");
    await page.waitForURL(BASE + "/new");
    await page.waitForSelector("#publish");
    // Said once, on the page the link led to (kept in this tab's sessionStorage, not the URL).
    assert.match(await page.locator("#flash").innerText(), /Your email is confirmed/);
    await page.screenshot({ path: join(SHOTS, "email-confirmed.png"), fullPage: true });
    assert.equal(await page.locator("#nav-account").innerText(), "Mia Maintainer");
    await page.reload();
    await page.waitForSelector("#publish");
    assert.equal(await page.locator("#flash").count(), 0, "a notice is shown once");
    await page.click("#logout");
    await page.waitForSelector("#nav-login");
    // Log-in from a project page comes back to it; a wrong password is an error, read out.
    await page.goto(BASE + "/p/hello");
    await page.click("#nav-login");
    await page.waitForURL(/\/login\?next=\/p\/hello$/);
    await page.fill("#email", MIA.toUpperCase());
    await page.fill("#password", "not mia's password");
    const wrong = errors.length;
    await page.click("#submit");
    await page.waitForSelector("#form-message.error[role=alert]");
    assert.match(await page.locator("#form-message").innerText(), /email or password is not right/);
    assert.equal(await page.locator("#form-message").evaluate((e) => getComputedStyle(e).color), "rgb(207, 34, 46)");
    await page.screenshot({ path: join(SHOTS, "login-error.png"), fullPage: true });
    errors.splice(wrong);
    await page.fill("#password", "mia's long password");
    await page.screenshot({ path: join(SHOTS, "login.png"), fullPage: true });
    await page.click("#submit");
    await page.waitForURL(BASE + "/p/hello");
    await page.waitForSelector("#nav-account");
    await page.goto(BASE + "/new");
  });

  await check("a forgotten password: the mailed link sets a new one and signs in", async () => {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    watch(p);
    await p.goto(BASE + "/login");
    await p.click("#forgot");
    await p.waitForURL(BASE + "/reset");
    await p.fill("#email", MIA);
    await p.click("#submit");
    await p.waitForSelector("#reset-sent");
    const link = await mailedLink(MIA, "/reset?token");
    await p.goto(link);
    await p.waitForSelector("#password");
    const before = errors.length;
    await p.fill("#password", "short");
    await p.click("#submit");
    // Said once, under the field.
    await p.waitForFunction(() => /at least 10 characters/.test(document.querySelector(".field-problem")?.innerText ?? ""));
    assert.equal(await p.locator("#form-message").count(), 0);
    errors.splice(before);
    await p.fill("#password", "mia's new long password");
    await p.screenshot({ path: join(SHOTS, "reset.png"), fullPage: true });
    await p.click("#submit");
    await p.waitForURL(BASE + "/");
    await p.waitForSelector("#nav-account");
    assert.match(await p.locator("#flash").innerText(), /Password changed/);
    await p.screenshot({ path: join(SHOTS, "password-changed.png"), fullPage: true });
    await ctx.close();
    // The reset ended every other session, this page's too: log in with the new password.
    await page.goto(BASE + "/login?next=/new");
    await page.fill("#email", MIA);
    await page.fill("#password", "mia's new long password");
    await page.click("#submit");
    await page.waitForURL(BASE + "/new");
    await page.waitForSelector("#nav-account");
  });

  await check("a maintainer publishes an install script, watches the live log, and Try works", async () => {
    await page.goto(BASE + "/new");
    // The slug follows the name until edited; no category is preselected.
    await page.fill("#name", "Greeter Tool");
    assert.equal(await page.inputValue("#slug"), "greeter-tool");
    assert.equal(await page.inputValue("#category"), "");
    await page.fill("#name", "Greeter");
    await page.fill("#slug", "greeter");
    await page.fill("#summary", "Greets you from a converted install script.");
    await page.selectOption("#category", "CLI tools");
    await page.fill("#tags", "greeting, e2e");
    // Invalid first: a clear, field-level answer and nothing created.
    await page.fill("#slug", "Bad Slug");
    await page.fill("#script", "sudo mkdir -p /opt/greeter");
    const before = errors.length;
    await page.click("#publish");
    await page.waitForSelector('#problems li[data-field="slug"]');
    // Said under the field itself, and listed by the field's name (not its key).
    assert.match(await page.locator(".field.invalid #slug + .field-problem").innerText(), /\S/);
    assert.match(await page.locator('#problems li[data-field="slug"]').innerText(), /^Slug: /);
    // The browser logs the deliberate 400 as a failed resource load; that one is expected.
    const added = errors.splice(before);
    assert.ok(added.every((e) => /status of 400/.test(e)), added.join("\n"));
    await page.fill("#slug", "greeter");
    // Converting a script that installs a package proposes a smoke check for its command…
    await page.fill("#script", "sudo apt-get install -y cowsay");
    await page.click("#convert");
    await page.waitForFunction(() => document.querySelector("#check-command")?.value === "command -v cowsay");
    // The converter's note sits above the Dockerfile it is about.
    await page.waitForSelector("#converted-note");
    assert.ok(await page.evaluate(() => Boolean(document.querySelector("#converted-note")
      .compareDocumentPosition(document.querySelector("#dockerfile")) & Node.DOCUMENT_POSITION_FOLLOWING)));
    assert.equal(await page.locator("#form-message").count(), 0);
    assert.equal(await page.inputValue("#check-expect"), "/cowsay");
    // …but never overwrites one the maintainer wrote.
    await page.fill("#check-command", "greeter --version");
    await page.fill("#check-expect", "greeter 2.0.1");
    await page.click("#tab-script");
    await page.fill("#script", [
      "sudo mkdir -p /opt/greeter",
      "cat <<'EOF' > /usr/local/bin/greeter",
      "#!/bin/sh",
      'echo "greeter 2.0.1"',
      "EOF",
      "sudo chmod +x /usr/local/bin/greeter",
      "cd /opt/greeter",
    ].join("\n"));
    await page.click("#convert");
    await page.waitForFunction(() => document.querySelector("#dockerfile")?.value.includes("WORKDIR /opt/greeter"));
    assert.equal(await page.inputValue("#check-command"), "greeter --version");
    await page.screenshot({ path: join(SHOTS, "publish.png"), fullPage: true });
    await page.click("#publish");
    await page.waitForURL(/\/builds\/[a-z2-7]+$/);
    await page.waitForFunction(() => /Step \d+\/\d+/.test(document.querySelector("#build-log")?.textContent ?? ""), null, { timeout: 60000 });
    await page.waitForSelector("#open-project", { timeout: 120000 });
    assert.match(await page.locator("#build-state").innerText(), /Live/);
    assert.match(await page.locator("#build-log").innerText(), /\$ greeter --version\n\s*greeter 2\.0\.1\nSmoke check passed\./);
    assert.match(await page.locator("#build-log").innerText(), /Published .*greeter@sha256:/);
    await page.screenshot({ path: join(SHOTS, "build.png"), fullPage: true });
    await page.click("#open-project");
    await page.waitForURL(/\/p\/greeter$/);
    await page.locator("#try").click();
    await waitTerm(page, /root@.*[#$]/);
    await typeLine(page, "greeter --version; pwd");
    await waitTerm(page, /greeter 2\.0\.1[\s\S]*\/opt\/greeter/);
  });

  await check("a build whose smoke check fails is not published; Edit and retry fixes it", async () => {
    await page.goto(BASE + "/new");
    await page.fill("#name", "Broken Tool");
    await page.fill("#summary", "Fails at first, works after an edit.");
    await page.selectOption("#category", "CLI tools");
    await page.click("#tab-dockerfile");
    // Several problems with the Dockerfile: one per line under it.
    await page.fill("#dockerfile", "FROM trythis/base:bookworm\nCOPY app /app\nADD conf /etc/conf\n");
    const refused = errors.length;
    await page.click("#publish");
    await page.waitForFunction(() => (document.querySelector("#dockerfile-problems")?.innerText ?? "").includes("Line 3"));
    const dfProblems = (await page.locator("#dockerfile-problems").innerText()).split("\n");
    assert.deepEqual(dfProblems.map((l) => l.slice(0, 7)), ["Line 2:", "Line 3:"], dfProblems.join("\n"));
    await page.screenshot({ path: join(SHOTS, "publish-problems.png"), fullPage: true });
    errors.splice(refused);
    await page.fill("#dockerfile", "FROM trythis/base:bookworm\nRUN true\n");
    await page.fill("#check-command", "broken-tool --help");
    await page.click("#publish");
    await page.waitForURL(/\/builds\/[a-z2-7]+$/);
    const first = page.url();
    await page.waitForSelector("#edit-retry", { timeout: 120000 });
    assert.match(await page.locator("#build-state").innerText(), /Failed/);
    // Why, in words, with the command's own output in the log.
    assert.match(await page.locator("#build-error").innerText(), /smoke check failed: `broken-tool --help` exited with status 127 \(command not found/);
    assert.match(await page.locator("#build-log").innerText(), /broken-tool: (command )?not found/);
    await page.screenshot({ path: join(SHOTS, "build-failed.png"), fullPage: true });
    assert.equal(await page.inputValue("#retry-check-command"), "broken-tool --help");
    await page.fill("#retry-dockerfile", "FROM trythis/base:bookworm\nRUN printf '#!/bin/sh\\necho usage: broken-tool\\n' > /usr/local/bin/broken-tool && chmod +x /usr/local/bin/broken-tool\n");
    await page.fill("#retry-check-expect", "usage: broken-tool");
    await page.click("#retry");
    await page.waitForURL((u) => /\/builds\/[a-z2-7]+$/.test(u.pathname) && u.toString() !== first);
    await page.waitForSelector("#open-project", { timeout: 120000 });
    assert.match(await page.locator("#build-state").innerText(), /Live/);
    // The account page lists what this maintainer publishes, with each newest build.
    await page.goto(BASE + "/account");
    // Moderation is on here: a new maintainer's projects wait for an admin's review.
    const greeter = page.locator('#my-projects tr[data-project="greeter"]');
    assert.match(await greeter.innerText(), /Greeter\s+live\s+waiting for review\s+\d+\s+succeeded/);
    const fixed = page.locator('#my-projects tr[data-project="broken-tool"]');
    assert.match(await fixed.innerText(), /Broken Tool\s+live\s+waiting for review\s+\d+\s+succeeded/);
  });

  // Calls the JSON API from a page, as its scripts do (the page's CSRF token).
  const api = (p, method, path, body) => p.evaluate(async ([method, path, body]) => {
    const r = await fetch(path, {
      method, body: body ? JSON.stringify(body) : undefined,
      headers: { "content-type": "application/json", "x-csrf-token": document.querySelector("meta[name=csrf-token]").content },
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, [method, path, body]);
  async function adminPage() {
    const ctx = await browser.newContext();
    const a = await ctx.newPage();
    watch(a);
    await a.goto(BASE + "/login?next=/admin");
    await a.fill("#email", ADMIN.email);
    await a.fill("#password", ADMIN.password);
    await a.click("#submit");
    await a.waitForURL(BASE + "/admin");
    return { ctx, a };
  }

  await check("a failed build heads with the step's own error and the recipe's line; steps are the maintainer's", async () => {
    await page.goto(BASE + "/new");
    await page.fill("#name", "No Such Package");
    await page.fill("#summary", "Installs a package that does not exist.");
    await page.selectOption("#category", "CLI tools");
    await page.click("#tab-dockerfile");
    await page.fill("#dockerfile", "FROM trythis/base:bookworm\nRUN apt-get install -y no-such-package-xyz\n");
    await page.click("#publish");
    await page.waitForURL(/\/builds\/[a-z2-7]+$/);
    await page.locator("#build-state", { hasText: "Failed" }).waitFor({ timeout: 120000 });
    const heads = await page.locator("#build-error p").allInnerTexts();
    assert.deepEqual(heads, ["E: Unable to locate package no-such-package-xyz", "line 2: RUN apt-get install -y no-such-package-xyz"]);
    const engine = page.locator("#build-error-engine");
    assert.match(await engine.innerText(), /returned a non-zero code: 100$/);
    const size = (sel) => page.locator(sel).evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
    assert.ok(await size("#build-error-engine") < await size("#build-error p.failure-lines"), "the engine's sentence is small");
    // Two steps written, two counted: the platform's own steps are named, not numbered.
    assert.equal(await page.locator("#build-step").innerText(), "Step 2 of 2");
    const log = await page.locator("#build-log").innerText();
    assert.match(log, /Step 2\/2 : RUN apt-get install -y no-such-package-xyz/);
    assert.match(log, /Platform step : LABEL trythis\.build=/);
    assert.doesNotMatch(log, /Step \d+\/[3-9]/);
    await page.screenshot({ path: join(SHOTS, "build-failed-headline.png"), fullPage: true });
  });

  await check("a maintainer imports a public image by reference; the log streams, it goes live and Try works", async () => {
    // A small image in the local registry outside the projects' namespace, as a public registry
    // would hold it (the engine builds it from the base image; nothing is downloaded).
    const base = process.env.TRYTHIS_TEST_BASE_IMAGE ?? "trythis/base:bookworm";
    const reference = `127.0.0.1:5000/e2e-import/greeting:${Date.now()}`;
    execFileSync("docker", ["build", "-q", "-t", reference, "-"], {
      input: `FROM ${base}\nRUN echo 'imported by reference' > /imported.txt\n`, env: { ...process.env, DOCKER_BUILDKIT: "0" },
    });
    execFileSync("docker", ["push", reference], { stdio: "ignore" });
    spawnSync("docker", ["rmi", reference], { stdio: "ignore" });

    // A refused reference first, in a page of the same account that is not watched: the 400 is
    // logged by the browser as a failed load, by design. A clear answer under the field.
    const quiet = await browser.newContext();
    await quiet.addCookies(await page.context().cookies());
    const q = await quiet.newPage();
    await q.goto(BASE + "/new");
    await q.fill("#name", "Private Address");
    await q.fill("#summary", "Names a registry on a private address.");
    await q.selectOption("#category", "CLI tools");
    await q.click("#tab-image");
    await q.fill("#image", "10.0.0.1/x:1");
    await q.click("#publish");
    await q.waitForFunction(() => /10\.0\.0\.1 is a private address/.test(document.querySelector("#image-problems")?.innerText ?? ""));
    assert.match(await q.locator('#problems li[data-field="image"]').innerText(), /^Image reference: /);
    assert.equal((await fetch(BASE + "/api/projects/private-address")).status, 404, "nothing is created");
    await q.screenshot({ path: join(SHOTS, "import-refused.png"), fullPage: true });
    await quiet.close();

    await page.goto(BASE + "/new");
    await page.fill("#name", "Imported Greeting");
    await page.fill("#summary", "A public image, imported by reference.");
    await page.selectOption("#category", "CLI tools");
    await page.click("#tab-image");
    assert.match(await page.locator(".tab-panel:not(.hidden) .hint").innerText(), /Registries: 127\.0\.0\.1:5000/);
    await page.fill("#image", reference);
    await page.fill("#check-command", "cat /imported.txt");
    await page.fill("#check-expect", "imported by reference");
    await page.screenshot({ path: join(SHOTS, "import.png"), fullPage: true });
    await page.click("#publish");
    await page.waitForURL(/\/builds\/[a-z2-7]+$/);
    assert.equal(await page.locator("#build-source code").innerText(), reference);
    // The log streams while the build runs: resolving, then each layer copied and verified.
    // (A layer the registry already holds, e.g. the base image's, is named but not copied.)
    await page.waitForFunction(() => /copying layer \d+\/\d+/.test(document.querySelector("#build-log")?.textContent ?? ""), null, { timeout: 60000 });
    await page.waitForSelector("#open-project", { timeout: 120000 });
    assert.match(await page.locator("#build-state").innerText(), /Live/);
    const log = await page.locator("#build-log").innerText();
    assert.match(log, new RegExp(`Resolving ${reference.replace(/[.]/g, "\\.")}`));
    assert.match(log, /verified sha256:[0-9a-f]{64}/);
    assert.match(log, /Smoke check passed\./);
    assert.match(log, /Published .*imported-greeting@sha256:/);
    await page.screenshot({ path: join(SHOTS, "import-build.png"), fullPage: true });
    // Try it as a visitor (unlisted while moderation reviews it, but reachable by its link).
    const ctx = await browser.newContext();
    const v = await ctx.newPage();
    watch(v);
    await v.goto(BASE + "/p/imported-greeting");
    await v.locator("#try").click();
    await waitTerm(v, /root@.*[#$]/);
    await typeLine(v, "cat /imported.txt");
    await waitTerm(v, /imported by reference/);
    v.once("dialog", (d) => d.accept());
    await v.locator("#stop").click();
    await v.waitForSelector("#ended");
    await ctx.close();
  });

  await check("a queued build's line counts its place, the time waited and an estimate, live", async () => {
    // Mia's slow build holds the one builder; the admin's waits behind it.
    const slow = await api(page, "POST", "/api/projects", { slug: "slow-build", name: "Slow Build", summary: "Takes its time.",
      category: "CLI tools", dockerfile: "FROM trythis/base:bookworm\nRUN sleep 90\n" });
    assert.equal(slow.status, 202, JSON.stringify(slow.body));
    await waitFor(async () => (await api(page, "GET", `/api/builds/${slow.body.build_id}`)).body.state === "running", "the slow build runs", 30000);
    const { ctx, a } = await adminPage();
    const queued = await api(a, "POST", "/api/projects", { slug: "queued-build", name: "Queued Build", summary: "Waits in line.",
      category: "CLI tools", dockerfile: "FROM trythis/base:bookworm\nRUN true\n" });
    assert.equal(queued.status, 202, JSON.stringify(queued.body));
    await a.goto(BASE + queued.body.build_url);
    const line = a.locator("#build-step");
    await line.filter({ hasText: "in line" }).waitFor();
    const first = await line.innerText();
    assert.match(first, /^1st in line for a builder · waiting 0:\d\d · about \d+ min$/);
    // The wait ticks on in the page (no reload).
    const secs = (t) => Number(t.match(/waiting (\d+):(\d\d)/).slice(1).reduce((m, s) => m * 60 + Number(s), 0));
    await waitFor(async () => secs(await line.innerText()) >= secs(first) + 2, "the waiting time ticks", 10000);
    await a.screenshot({ path: join(SHOTS, "build-queued.png"), fullPage: true });
    await a.click("#cancel");
    await a.locator("#build-state", { hasText: "Cancelled" }).waitFor({ timeout: 20000 });
    assert.equal((await api(page, "DELETE", `/api/builds/${slow.body.build_id}`)).status, 200);
    await ctx.close();
  });

  await check("moderation: a new maintainer's project is unlisted until an admin approves it from the review list", async () => {
    // Reachable by its link, its badge works, but search does not list it.
    const search = async (q) => (await (await fetch(`${BASE}/api/projects?q=${q}`)).json()).items.map((i) => i.slug);
    assert.deepEqual(await search("broken"), []);
    assert.equal((await fetch(BASE + "/p/broken-tool")).status, 200);
    assert.doesNotMatch(await (await fetch(BASE + "/badge/broken-tool.svg")).text(), /not found/);
    const { ctx, a } = await adminPage();
    const row = a.locator('#admin-review tr[data-project="broken-tool"]');
    await row.waitFor();
    await a.locator('#admin-review tr[data-project="greeter"]').waitFor();
    await a.locator("#admin-review-panel").screenshot({ path: join(SHOTS, "admin-review.png") });
    await row.locator('button[data-action="approve"]').click();
    await row.waitFor({ state: "detached" });
    await waitFor(async () => (await search("broken")).includes("broken-tool"), "the approved project is listed");
    assert.equal(await a.locator('#admin-review tr[data-project="greeter"]').count(), 1, "one approval lists one project");
    await ctx.close();
  });

  await check("the project page shows its recipe; the maintainer edits the summary on the Edit page and search finds it at once", async () => {
    // Broken Tool: Mia's, fixed by Edit and retry, approved and listed above.
    await page.goto(BASE + "/p/broken-tool");
    await page.waitForSelector("body[data-hydrated]");
    // The recipe of the live image: the Dockerfile of the build that fixed it, not the failed one.
    assert.match(await page.locator("#recipe-dockerfile pre").innerText(), /^FROM trythis\/base:bookworm\nRUN printf /);
    assert.equal(await page.locator("#recipe-dockerfile").getAttribute("open"), "", "a short block is open");
    // A long line scrolls inside its block: the page does not widen.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no page wider than the window");
    await page.locator("#recipe").screenshot({ path: join(SHOTS, "project-recipe.png") });
    await page.click("#edit-project");
    await page.waitForURL(BASE + "/p/broken-tool/edit");
    await page.locator("#summary").waitFor();
    assert.equal(await page.inputValue("#summary"), "Fails at first, works after an edit.");
    assert.equal(await page.inputValue("#category"), "CLI tools");
    await page.fill("#summary", "Now it sails to Zanzibar.");
    await page.fill("#tags", "boats, e2e");
    await page.fill("#welcome", "Ahoy! Try:  broken-tool --help");
    await page.screenshot({ path: join(SHOTS, "edit.png"), fullPage: true });
    await page.click("#save");
    await page.waitForURL(BASE + "/p/broken-tool");
    await page.waitForSelector("#flash");
    assert.equal(await page.locator(".project-head .lead").innerText(), "Now it sails to Zanzibar.");
    // At once, without waiting: the search API, the search page, and an anonymous visitor's
    // (shared, cached) project page.
    const found = (await (await fetch(`${BASE}/api/projects?q=zanzibar`)).json()).items.map((i) => i.slug);
    assert.deepEqual(found, ["broken-tool"]);
    assert.match(await (await fetch(BASE + "/p/broken-tool")).text(), /Now it sails to Zanzibar\./);
    await page.goto(BASE + "/search?q=boats");
    await page.locator('.card[data-slug="broken-tool"]').waitFor({ timeout: 2000 });
    // The same page on a phone: the recipe fits the screen, its long lines scroll inside.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    watch(p);
    await p.goto(BASE + "/p/broken-tool");
    await p.locator("#recipe").scrollIntoViewIfNeeded();
    assert.ok(await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no page wider than the phone");
    await p.locator("#recipe").screenshot({ path: join(SHOTS, "project-recipe-phone.png") });
    await phone.close();
  });

  await check("a maintainer deletes their own project after a confirmation naming it; tries stay as 'deleted project'", async () => {
    await page.goto(BASE + "/account");
    const row = page.locator('#my-projects tr[data-project="greeter"]');
    await row.waitFor();
    let asked = "";
    page.once("dialog", (d) => { asked = d.message(); d.dismiss(); });
    await row.locator('button[data-action="delete-project"]').click();
    await waitFor(async () => asked !== "", "the confirmation");
    assert.match(asked, /^Delete Greeter \(greeter\)\?/);
    assert.equal((await fetch(BASE + "/api/projects/greeter")).status, 200, "dismissed: nothing happens");
    page.once("dialog", (d) => d.accept());
    await row.locator('button[data-action="delete-project"]').click();
    await waitFor(async () => (await fetch(BASE + "/api/projects/greeter")).status === 404, "the project is gone", 30000);
    await page.waitForURL(BASE + "/account");
    await row.waitFor({ state: "detached" });
    await page.goto(BASE + "/containers");
    const gone = page.locator(".deleted-project").first();
    await gone.waitFor();
    assert.equal(await gone.innerText(), "deleted project");
    await page.screenshot({ path: join(SHOTS, "containers-deleted-project.png"), fullPage: true });
  });

  // OAuth against the local provider, in fresh browsers: the whole redirect dance.
  async function oauthLogin(name, fields) {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    watch(p);
    await p.goto(BASE + "/login?next=/p/hello");
    await p.click(`#oauth-${name}`);
    await p.waitForURL(new RegExp(`^${P}/${name}/`));
    for (const [id, value] of Object.entries(fields)) await p.fill(`#${id}`, value);
    await p.click("#authorize");
    await p.waitForURL(BASE + "/p/hello");
    await p.waitForSelector("#nav-account");
    return { ctx, page: p };
  }
  let github;
  await check("sign in with GitHub (code + PKCE + state) against the local provider", async () => {
    github = await oauthLogin("github", { email: "octo@example.test", login: "octocat" });
    assert.equal(await github.page.locator("#nav-account").innerText(), "octocat");
    const me = await github.page.evaluate(() => fetch("/api/me").then((r) => r.json()));
    assert.equal(me.user.email, "octo@example.test");
    assert.ok(provider.log.some((e) => e.provider === "github" && e.endpoint === "token" && e.ok));
  });

  await check("sign in with Google links to the account with the same verified email", async () => {
    const { ctx, page: p } = await oauthLogin("google", { email: MIA, name: "Mia G" });
    const me = await p.evaluate(() => fetch("/api/me").then((r) => r.json()));
    assert.equal(me.user.email, MIA);
    assert.equal(me.user.name, "Mia Maintainer", "linked to the existing account, not a new one");
    await ctx.close();
  });

  await check("a tampered state and a code without its PKCE verifier are refused", async () => {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(BASE + "/auth/github/start");
    await p.waitForURL(new RegExp(`^${P}/github/`));
    // Consent outside the browser, so the code the provider sends back is not used yet.
    const form = await p.locator("form").evaluate((f) => Object.fromEntries(new FormData(f)));
    const consent = await fetch(`${P}/github/consent`, {
      method: "POST", redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ ...form, action: "allow" }),
    });
    const callback = new URL(consent.headers.get("location"));
    assert.equal(callback.pathname, "/auth/github/callback");
    // The callback with a tampered state is refused before any exchange.
    await p.goto(`${BASE}/auth/github/callback?code=${callback.searchParams.get("code")}&state=${callback.searchParams.get("state")}x`);
    await p.waitForURL(BASE + "/login?error=state");
    assert.match(await p.locator("#form-message").innerText(), /not valid or has expired/);
    // An intercepted code cannot be redeemed without the verifier the server kept.
    const r = await fetch(`${P}/github/login/oauth/access_token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams({ grant_type: "authorization_code", code: callback.searchParams.get("code"),
        redirect_uri: `${BASE}/auth/github/callback`, client_id: "gh-test-client", client_secret: "gh-test-secret" }),
    });
    assert.equal(r.status, 400);
    assert.match(JSON.stringify(await r.json()), /verifier/);
    const me = await p.evaluate(() => fetch("/api/me").then((r) => r.json()));
    assert.equal(me.signed_in, false);
    await ctx.close();
  });

  await check("admin: live sandboxes with CPU and memory; banning a user stops their sandbox", async () => {
    await github.page.goto(BASE + "/p/hello");
    await github.page.locator("#try").click();
    await waitTerm(github.page, /root@.*[#$]/);
    const ctx = await browser.newContext();
    const a = await ctx.newPage();
    watch(a);
    await a.goto(BASE + "/login?next=/admin");
    await a.fill("#email", ADMIN.email);
    await a.fill("#password", ADMIN.password);
    await a.click("#submit");
    await a.waitForURL(BASE + "/admin");
    const row = a.locator("#admin-sandboxes tr", { hasText: "octo@example.test" });
    await row.waitFor({ timeout: 15000 });
    assert.match(await row.innerText(), /hello[\s\S]*%[\s\S]*MB/);
    // What isolates the sandboxes, with the runtime's own version line.
    assert.match(await a.locator("#admin-runtime").innerText(), /Sandboxes run under runsc version \d/);
    await a.screenshot({ path: join(SHOTS, "admin.png"), fullPage: true });
    // A visitor's sandbox names who it is (a short hash of their key) and where from; Stop asks first.
    const vctx = await browser.newContext();
    const vp = await vctx.newPage();
    watch(vp);
    await vp.goto(BASE + "/try/hello");
    await waitTerm(vp, /root@.*[#$]/);
    const vrow = a.locator("#admin-sandboxes tr", { hasText: /visitor #[0-9a-f]{6} · 127\.0\.0\.1/ });
    await vrow.waitFor({ timeout: 15000 });
    const who = (await vrow.locator("td").first().innerText()).trim();
    await a.locator("#admin-sandboxes").screenshot({ path: join(SHOTS, "admin-sandboxes.png") });
    let asked = "";
    a.once("dialog", (d) => { asked = d.message(); d.dismiss(); });
    await vrow.locator('button[data-action="stop"]').click();
    await waitFor(async () => asked !== "", "Stop asks first");
    assert.equal(asked, `Stop the sandbox of ${who} (hello)? Everything in it is gone.`);
    assert.equal(await vrow.count(), 1, "dismissed: it keeps running");
    a.once("dialog", (d) => d.accept());
    await vrow.locator('button[data-action="stop"]').click();
    await vrow.waitFor({ state: "detached", timeout: 15000 });
    // Image sizes read the same here and on the project's page.
    const adminSize = (await a.locator('#admin-projects tr[data-project="hello"]').innerText()).match(/\d+\.\d MB/)?.[0];
    assert.ok(adminSize, "the admin list shows hello's image size");
    await vp.goto(BASE + "/p/hello");
    assert.ok((await vp.locator("main").innerText()).includes(adminSize), `the project page says ${adminSize} too`);
    await vctx.close();
    // The banner's fields are found by their labels, and setting it reaches the overview.
    const banner = async () => (await (await a.request.get(BASE + "/api/admin/overview")).json()).featured;
    const previous = await banner();
    await a.getByLabel("Project", { exact: true }).fill("hello");
    await a.getByLabel("Line", { exact: true }).fill("Say hello from the browser test");
    await a.getByRole("button", { name: "Set banner" }).click();
    await waitFor(async () => (await banner())?.line === "Say hello from the browser test", "banner set");
    if (previous) {
      await a.getByLabel("Project", { exact: true }).fill(previous.slug);
      await a.getByLabel("Line", { exact: true }).fill(previous.line);
      await a.getByRole("button", { name: "Set banner" }).click();
      await waitFor(async () => (await banner())?.line === previous.line, "banner restored");
    }
    // The banned user's open project page may poll its sandbox (and its ports) once more
    // before it notices the ban (403): those are expected, as is the visitor's 403 below.
    const beforeBan = errors.length;
    await a.locator('#admin-users tr[data-user="octo@example.test"] button[data-action="ban"]').click();
    await a.locator('#admin-users tr[data-user="octo@example.test"]', { hasText: "banned" }).waitFor();
    await row.waitFor({ state: "detached", timeout: 15000 });
    const me = await github.page.evaluate(() => fetch("/api/me").then((r) => r.json()));
    assert.equal(me.signed_in, false);
    // Others get no admin: the page says so and the API answers 403.
    const before = errors.length;
    const visitor = await browser.newPage();
    await visitor.goto(BASE + "/admin");
    await visitor.waitForSelector("#admin-forbidden");
    assert.equal((await visitor.request.get(BASE + "/api/admin/sandboxes")).status(), 403);
    await visitor.close();
    errors.splice(before);
    await ctx.close();
    await github.ctx.close();
    const afterBan = errors.splice(beforeBan);
    // (Its sandbox's status and its preview ports are both polled.)
    errors.push(...afterBan.filter((e) => !/status of 403 .*\/api\/sandboxes\/[a-z0-9]+(\/ports)? \(on /.test(e)));
  });

  await check("the maintainer deletes their account; logging in again fails", async () => {
    await page.goto(BASE + "/account");
    await page.waitForSelector("#delete-account");
    await page.screenshot({ path: join(SHOTS, "account.png"), fullPage: true });
    await page.fill("#delete-password", "mia's new long password");
    await page.click("#delete-account");
    await page.waitForURL(BASE + "/?account=deleted");
    await page.waitForSelector("#nav-login");
    const before = errors.length;
    await page.goto(BASE + "/login");
    await page.fill("#email", MIA);
    await page.fill("#password", "mia's new long password");
    await page.click("#submit");
    await page.waitForSelector("#form-message");
    assert.match(await page.locator("#form-message").innerText(), /email or password is not right/);
    errors.splice(before);
    // Hidden, not gone: the project (approved and listed) leaves the catalogue with its maintainer.
    const r = await fetch(BASE + "/api/projects?q=broken");
    assert.equal((await r.json()).items?.length ?? 0, 0);
  });

  // Full-screen and interactive programs, typed as a visitor would, in the real browser terminal:
  // each opens, takes Ctrl+C as its own key where it has one, redraws to a new window size and quits.
  {
    const tctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const tp = await tctx.newPage();
    watch(tp);
    const rows = () => tp.evaluate(() => document.querySelectorAll("#terminal .xterm-rows > div").length);
    const key = async (k) => { await tp.locator("#terminal .xterm-helper-textarea").focus(); await tp.keyboard.press(k); };
    const prompt = async () => { await typeLine(tp, "echo back-$((1000+1))"); await waitTerm(tp, /\nback-1001\s*\n/); await key("Control+L"); };
    // Resizes the window and waits until the terminal has other rows than before.
    const resize = async (width, height) => {
      const before = await rows();
      await tp.setViewportSize({ width, height });
      await waitFor(async () => (await rows()) !== before, "the terminal follows the window's size");
      await sleep(300);
      return rows();
    };

    await check("a Try of a project with full-screen programs opens its shell", async () => {
      await tp.goto(BASE + "/try/tui");
      await waitTerm(tp, /Welcome to Terminal Programs/);
      await waitTerm(tp, /root@[^\n]*#\s*$/);
    });

    await check("vim: insert, redraw on resize (its &lines follows the window), write and quit", async () => {
      await typeLine(tp, "vim /tmp/v.txt");
      await waitTerm(tp, /^~/m);
      await tp.keyboard.type("ihello-vim");
      await key("Escape");
      const r = await resize(1100, 600);
      await tp.keyboard.type(":echo &lines");
      await key("Enter");
      // vim's answer on its last line, beside its ruler (line,column).
      await waitTerm(tp, new RegExp(`\\n${r}\\s+\\d+,\\d+`));
      await tp.screenshot({ path: join(SHOTS, "tui-vim.png") });
      await tp.keyboard.type(":wq");
      await key("Enter");
      await typeLine(tp, "cat /tmp/v.txt");
      await waitTerm(tp, /\nhello-vim\s*\n/);
      await prompt();
    });

    await check("a reload after vim replays the screen without answering vim's old terminal queries", async () => {
      // The replayed output holds vim's queries (device attributes, colours, modes): answered
      // again, the answers were typed onto the prompt (`2RR0;276;0c10;rgb:…: command not found`).
      await tp.reload();
      await waitTerm(tp, /root@[^\n]*#\s*$/);
      await sleep(1000);
      await typeLine(tp, "echo clean-$((2+3))");
      const t = await waitTerm(tp, /\nclean-5\s*\n/);
      assert.match(t, /#\s*echo clean-\$\(\(2\+3\)\)/, t);
      assert.doesNotMatch(t, /rgb:|command not found/, t);
    });

    await check("less: fills the new height after a resize, G goes to the end, q quits", async () => {
      await typeLine(tp, "seq 1 500 | less");
      await waitTerm(tp, /\n:\s*$/);
      const r = await resize(1360, 900);
      // A full screen of lines (all rows but the prompt's), ending with the row count's number.
      await waitTerm(tp, new RegExp(`\\n${r - 1}\\s*\\n:\\s*$`));
      await tp.keyboard.press("G");
      await waitTerm(tp, /\n500\s*\n\(END\)\s*$/);
      await tp.keyboard.press("q");
      await prompt();
    });

    await check("top: runs, redraws after a resize, q quits", async () => {
      await typeLine(tp, "top -d 1");
      await waitTerm(tp, /load average/);
      await resize(1000, 560);
      await sleep(1500);
      await waitTerm(tp, /load average/);
      await tp.screenshot({ path: join(SHOTS, "tui-top.png") });
      await tp.keyboard.press("q");
      await prompt();
    });

    await check("nano: type, Ctrl+O writes, Ctrl+X leaves", async () => {
      await typeLine(tp, "nano /tmp/n.txt");
      await waitTerm(tp, /GNU nano/);
      await tp.keyboard.type("hello-nano");
      await resize(1360, 900);
      await waitTerm(tp, /\^X Exit/);
      await key("Control+O");
      await waitTerm(tp, /File Name to Write/);
      await key("Enter");
      await waitTerm(tp, /Wrote 1 line/);
      await key("Control+X");
      await typeLine(tp, "cat /tmp/n.txt");
      await waitTerm(tp, /\nhello-nano\s*\n/);
      await prompt();
    });

    await check("Python REPL: Ctrl+C stops a busy loop with KeyboardInterrupt and the REPL goes on", async () => {
      await typeLine(tp, "python3");
      await waitTerm(tp, />>>\s*$/);
      await typeLine(tp, "while True: pass");
      await key("Enter");
      await sleep(500);
      await key("Control+C");
      await waitTerm(tp, /KeyboardInterrupt/);
      await typeLine(tp, "print(6*7)");
      await waitTerm(tp, /\n42\s*\n>>>\s*$/);
      await typeLine(tp, "exit()");
      await prompt();
    });

    await check("Node REPL: Ctrl+C drops an unfinished line and the REPL goes on", async () => {
      await typeLine(tp, "node");
      await waitTerm(tp, /Welcome to Node/);
      await typeLine(tp, "7 *");
      await waitTerm(tp, /\.\.\.\s*$/);
      await key("Control+C");
      await typeLine(tp, "7 * 8");
      await waitTerm(tp, /\n56\s*\n>\s*$/);
      await typeLine(tp, ".exit");
      await prompt();
    });

    await check("redis-cli against a redis-server in the sandbox; Ctrl+C leaves it", async () => {
      await typeLine(tp, "redis-server --daemonize yes >/dev/null; sleep 0.5; redis-cli");
      await waitTerm(tp, /127\.0\.0\.1:6379>\s*$/);
      await typeLine(tp, "SET k v-redis");
      await waitTerm(tp, /\nOK\s*\n/);
      await typeLine(tp, "GET k");
      await waitTerm(tp, /"v-redis"/);
      await key("Control+C");
      await prompt();
    });

    await check("sqlite3: a query, then .quit", async () => {
      await typeLine(tp, "sqlite3");
      await waitTerm(tp, /sqlite>\s*$/);
      await typeLine(tp, "select 8*9;");
      await waitTerm(tp, /\n72\s*\nsqlite>\s*$/);
      await typeLine(tp, ".quit");
      await prompt();
    });

    await check("lua: Ctrl+C interrupts a loop, the interpreter goes on", async () => {
      await typeLine(tp, "lua5.4");
      await waitTerm(tp, /\n>\s*$/);
      await typeLine(tp, "for i = 1, 1e12 do end");
      await sleep(500);
      await key("Control+C");
      await waitTerm(tp, /interrupted/);
      await typeLine(tp, "print(9*11)");
      await waitTerm(tp, /\n99\s*\n>\s*$/);
      await typeLine(tp, "os.exit()");
      await prompt();
    });

    await check("Ctrl+D ends the shell; Enter starts a new one in the same sandbox", async () => {
      await typeLine(tp, "touch /tmp/still-here");
      // At the next prompt, as a person would (a ^D typed while `touch` runs is its EOF).
      await waitTerm(tp, /still-here\s*\n[^\n]*#\s*$/);
      await key("Control+D");
      await waitTerm(tp, /the shell exited · press Enter for a new one/);
      await key("Enter");
      await waitTerm(tp, /root@[^\n]*#\s*$/);
      await typeLine(tp, "ls /tmp/still-here && echo same-sandbox");
      await waitTerm(tp, /\nsame-sandbox\s*\n/);
      await tp.screenshot({ path: join(SHOTS, "tui-new-shell.png") });
    });

    await check("files: a file chosen with Upload… lands in the shell's directory; Download brings one back", async () => {
      await typeLine(tp, "mkdir -p /tmp/up && cd /tmp/up && echo in-$((6*7))-up");
      await waitTerm(tp, /\nin-42-up\s*\n/);
      const csv = "name,qty\npear,3\n".repeat(20000);
      await tp.setInputFiles("#upload-input", { name: "fruit.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
      await tp.waitForSelector("#files-note", { timeout: 20000 });
      const note = await tp.textContent("#files-note");
      assert.match(note, /^Uploaded fruit\.csv \(\d+ KB\) to \/tmp\/up\/fruit\.csv$/);
      assert.equal(await tp.locator("#files-note.error").count(), 0);
      await typeLine(tp, "wc -l < fruit.csv | sed s/^/rows=/");
      await waitTerm(tp, /\nrows=40000\s*\n/);
      await typeLine(tp, "seq 1 5 > out.txt && echo made-$((2+3))");
      await waitTerm(tp, /\nmade-5\s*\n/);
      await tp.fill("#download-path", "/tmp/up/out.txt");
      const [dl] = await Promise.all([tp.waitForEvent("download"), tp.click("#download")]);
      assert.equal(dl.suggestedFilename(), "out.txt");
      assert.equal(readFileSync(await dl.path(), "utf8"), "1\n2\n3\n4\n5\n");
      await tp.screenshot({ path: join(SHOTS, "tools-files.png") });
    });

    await check("web preview: python3 -m http.server and a WebSocket echo open in new tabs under their own host", async () => {
      await typeLine(tp, "cd /tmp/up && echo '<h1>hello-preview</h1>' > index.html && (python3 -m http.server 8000 >/dev/null 2>&1 &) ; echo started-$((1+1))");
      await waitTerm(tp, /\nstarted-2\s*\n/);
      const link = tp.locator('#ports a.preview[data-port="8000"]');
      await link.waitFor({ timeout: 20000 });
      const [pv] = await Promise.all([tctx.waitForEvent("page"), link.click()]);
      await pv.waitForLoadState();
      await waitFor(async () => (await pv.locator("h1").count()) > 0, "the preview page", 20000);
      assert.match(pv.url(), new RegExp(`^http://[a-z0-9]{26}-8000\\.preview\\.localhost:${port}/$`));
      assert.equal(await pv.textContent("h1"), "hello-preview");
      // The preview's own cookie is HttpOnly; the site's cookies are not there at all.
      assert.equal(await pv.evaluate(() => document.cookie), "");
      await pv.screenshot({ path: join(SHOTS, "preview-page.png") });
      await pv.close();

      // A WebSocket echo server (standard library only), uploaded and started in the shell.
      const echo = [
        "import socket, hashlib, base64, threading",
        "PAGE = b'<!doctype html><title>echo</title><h1>ws-echo</h1>'",
        "def serve(c):",
        "    data = b''",
        "    while b'\\r\\n\\r\\n' not in data:",
        "        d = c.recv(4096)",
        "        if not d: return",
        "        data += d",
        "    keys = [l.split(b':', 1)[1].strip() for l in data.split(b'\\r\\n') if l.lower().startswith(b'sec-websocket-key:')]",
        "    if not keys:",
        "        c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Type: text/html\\r\\nConnection: close\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(PAGE) + PAGE)",
        "        return",
        "    acc = base64.b64encode(hashlib.sha1(keys[0] + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())",
        "    c.sendall(b'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + acc + b'\\r\\n\\r\\n')",
        "    buf = b''",
        "    def need(n):",
        "        nonlocal buf",
        "        while len(buf) < n:",
        "            d = c.recv(4096)",
        "            if not d: raise EOFError",
        "            buf += d",
        "        out, buf = buf[:n], buf[n:]",
        "        return out",
        "    while True:",
        "        h = need(2); op = h[0] & 15; n = h[1] & 127",
        "        if n == 126: n = int.from_bytes(need(2), 'big')",
        "        mask = need(4); p = bytes(b ^ mask[i % 4] for i, b in enumerate(need(n)))",
        "        if op == 8: return",
        "        r = b'echo:' + p",
        "        c.sendall(bytes([0x81, len(r)]) + r)",
        "def run(c):",
        "    try: serve(c)",
        "    except Exception: pass",
        "    finally: c.close()",
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
        "s.bind(('0.0.0.0', 8765)); s.listen(8)",
        "while True:",
        "    c, _ = s.accept(); threading.Thread(target=run, args=(c,), daemon=True).start()",
      ].join("\n") + "\n";
      await tp.setInputFiles("#upload-input", { name: "echo.py", mimeType: "text/x-python", buffer: Buffer.from(echo) });
      await waitFor(async () => /Uploaded echo\.py/.test((await tp.textContent("#files-note")) ?? ""), "the upload of echo.py", 20000);
      await typeLine(tp, "(python3 echo.py >/tmp/echo.log 2>&1 &) ; echo echo-$((3+4))");
      await waitTerm(tp, /\necho-7\s*\n/);
      const wsLink = tp.locator('#ports a.preview[data-port="8765"]');
      await wsLink.waitFor({ timeout: 20000 });
      const [wp] = await Promise.all([tctx.waitForEvent("page"), wsLink.click()]);
      await wp.waitForLoadState();
      await waitFor(async () => (await wp.locator("h1").count()) > 0, "the echo server's page", 20000);
      assert.equal(await wp.textContent("h1"), "ws-echo");
      const answers = await wp.evaluate(() => new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/echo`);
        const got = [];
        ws.onopen = () => { ws.send("hello"); ws.send("again"); };
        ws.onmessage = (m) => { got.push(m.data); if (got.length === 2) { ws.close(); resolve(got); } };
        ws.onerror = () => reject(new Error("websocket failed"));
        setTimeout(() => reject(new Error(`no echo: ${JSON.stringify(got)}`)), 10000);
      }));
      assert.deepEqual(answers, ["echo:hello", "echo:again"]);
      await wp.close();
      await tp.screenshot({ path: join(SHOTS, "tools-preview.png") });
    });
    await tctx.close();
  }

  await check("phones: a working menu and no page wider than the screen", async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await ctx.newPage();
    watch(p);
    for (const path of ["/", "/p/hello", "/search?q=" + "x".repeat(3000), "/login"]) {
      await p.goto(BASE + path);
      const width = await p.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `${path} is ${width}px wide on a 390px screen`);
    }
    await p.goto(BASE + "/p/hello");
    assert.equal(await p.locator("#nav").isVisible(), false);
    await p.click("#menu-button");
    await p.waitForSelector("#nav-login", { state: "visible" });
    await p.screenshot({ path: join(SHOTS, "phone-menu.png") });
    // A Try on a phone: the terminal above the project's facts, and a bar of the keys a touch
    // keyboard lacks (arrows, sticky Ctrl).
    await p.goto(BASE + "/p/world");
    await p.locator("#try").click();
    await waitTerm(p, /root@.*[#$]/);
    const [tryTop, infoTop] = await p.evaluate(() => [".try-panel", ".project-info"].map((s) => document.querySelector(s).getBoundingClientRect().top));
    assert.ok(tryTop < infoTop, `terminal at ${tryTop}, facts at ${infoTop}`);
    await p.waitForSelector(".keys-bar");
    await typeLine(p, "echo phone-$((1+1))");
    await waitTerm(p, /phone-2/);
    await p.click('.keys-bar button[data-key="↑"]');
    await p.keyboard.press("Enter");
    await waitTerm(p, /phone-2[\s\S]*phone-2/);
    // Sticky Ctrl: the next letter is sent as its control character (Ctrl+L: readline clears
    // the screen, so the earlier output leaves the view).
    await p.click('.keys-bar button[data-key="Ctrl"]');
    assert.match(await p.locator('.keys-bar button[data-key="Ctrl"]').getAttribute("class"), /on/);
    await p.keyboard.type("l");
    for (let i = 0; i < 100 && /phone-2/.test(await termText(p)); i++) await sleep(100);
    assert.doesNotMatch(await termText(p), /phone-2/);
    assert.equal(await p.locator('.keys-bar button[data-key="Ctrl"]').getAttribute("class"), "");
    await p.screenshot({ path: join(SHOTS, "phone-try.png") });
    await ctx.close();
  });

  await check("the badge is an SVG", async () => {
    const r = await fetch(BASE + "/badge/hello.svg");
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /image\/svg\+xml/);
    assert.match(await r.text(), /try this/);
  });

  await check("catalogue: search finds the commands a project runs, and a corrected typo says what it searched for", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await ctx.newPage();
    watch(p);
    // `sqlite3` is in the description's code spans, `redis-server` only in the smoke check.
    for (const q of ["sqlite3", "redis-server", "lua5.4"]) {
      await p.goto(BASE + "/search?q=" + encodeURIComponent(q));
      assert.deepEqual(await p.locator(".card").evaluateAll((cs) => cs.map((c) => c.dataset.slug)), ["tui"], q);
    }
    await p.goto(BASE + "/search?q=helo");
    assert.equal(await p.locator("#searched-for").innerText(), "Nothing matches “helo”. Showing results for hello.");
    assert.equal(await p.locator('.card[data-slug="hello"]').count(), 1);
    await p.screenshot({ path: join(SHOTS, "search-corrected.png"), fullPage: true });
    const api = await (await fetch(BASE + "/api/projects?q=helo")).json();
    assert.equal(api.searched_for, "hello");
    const exact = await (await fetch(BASE + "/api/projects?q=hello")).json();
    assert.equal(exact.searched_for, undefined, "nothing corrected, nothing said");
    await ctx.close();
  });

  await check("project page: Try centred under its sentence, fact tiles of equal width", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await ctx.newPage();
    watch(p);
    await p.goto(BASE + "/p/world");
    const [btn, text] = await p.evaluate(() => ["#try", ".try-idle p"].map((sel) => {
      const r = document.querySelector(sel).getBoundingClientRect();
      return r.left + r.width / 2;
    }));
    assert.ok(Math.abs(btn - text) < 2, `Try's centre at ${btn}, its sentence's at ${text}`);
    const widths = await p.locator(".project-info .facts > div").evaluateAll((ds) => ds.map((d) => d.getBoundingClientRect().width));
    assert.ok(widths.length >= 3, `tiles: ${widths}`);
    assert.ok(Math.max(...widths) - Math.min(...widths) < 1, `tile widths ${widths}`);
    await p.screenshot({ path: join(SHOTS, "project.png"), fullPage: true });
    await ctx.close();
  });

  await check("Things to try: blocks start at their edge, ▶ run clear of the code, a REPL block typed line by line", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await ctx.newPage();
    watch(p);
    await p.goto(BASE + "/p/tui?try=1");
    await waitTerm(p, /root@[^\n]*#\s*$/);
    const g = await p.evaluate(() => {
      const pre = document.querySelector(".description pre");
      const cs = getComputedStyle(pre);
      const box = pre.getBoundingClientRect();
      const text = pre.querySelector("code").firstChild;
      const first = document.createRange();
      first.setStart(text, 0);
      first.setEnd(text, 1);
      const r = first.getBoundingClientRect();
      const after = getComputedStyle(pre, "::after");
      return {
        content: after.content,
        textLeft: r.left, textTop: r.top,
        edge: box.left + parseFloat(cs.borderLeftWidth) + parseFloat(cs.paddingLeft),
        labelBottom: box.top + parseFloat(cs.borderTopWidth) + parseFloat(after.top) + parseFloat(after.height),
      };
    });
    assert.equal(g.content, '"▶ run"');
    assert.ok(Math.abs(g.textLeft - g.edge) < 1, `the code starts ${g.textLeft - g.edge}px from the block's edge`);
    assert.ok(g.textTop >= g.labelBottom, `the code's first line (top ${g.textTop}) under "▶ run" (bottom ${g.labelBottom})`);
    await p.screenshot({ path: join(SHOTS, "things-to-try.png") });
    // `python3` starts the REPL, then `print(6*7)` goes to it, not to the shell.
    await p.locator(".description pre").first().click();
    await waitTerm(p, /\n42\s*\n>>>\s*$/, 30000);
    assert.doesNotMatch(await termText(p), /syntax error|command not found/);
    await typeLine(p, "exit()");
    await waitTerm(p, /root@[^\n]*#\s*$/);
    await ctx.close();
  });

  // Each cell of `glyphs` in the terminal's screenshot against the same glyph drawn unclipped on
  // a canvas in the terminal's font: the share of its ink the terminal shows (by pixels).
  async function glyphCoverage(p, shot, rows) {
    return p.evaluate(async ({ b64, rows }) => {
      const dpr = window.devicePixelRatio;
      const img = new Image();
      img.src = "data:image/png;base64," + b64;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width; c.height = img.height;
      const g = c.getContext("2d", { willReadFrequently: true });
      g.drawImage(img, 0, 0);
      const px = g.getImageData(0, 0, c.width, c.height).data;
      const lum = (r, gg, b) => 0.2126 * r + 0.7152 * gg + 0.0722 * b;
      const BG = lum(0x0d, 0x11, 0x17), FG = lum(0xe6, 0xed, 0xf3);
      const screen = document.querySelector("#terminal .xterm-screen").getBoundingClientRect();
      const rowsEl = document.querySelector("#terminal .xterm-rows");
      const cs = getComputedStyle(rowsEl);
      // Ink in a rectangle of the screenshot (CSS px relative to the viewport).
      const ink = (x0, y0, x1, y1) => {
        let sum = 0;
        const X0 = Math.max(0, Math.floor((x0 - screen.left) * dpr)), X1 = Math.min(c.width, Math.ceil((x1 - screen.left) * dpr));
        const Y0 = Math.max(0, Math.floor((y0 - screen.top) * dpr)), Y1 = Math.min(c.height, Math.ceil((y1 - screen.top) * dpr));
        for (let y = Y0; y < Y1; y++) for (let x = X0; x < X1; x++) {
          const i = (y * c.width + x) * 4;
          sum += Math.min(1, Math.max(0, (lum(px[i], px[i + 1], px[i + 2]) - BG) / (FG - BG)));
        }
        return sum;
      };
      // The same glyph, whole: a big canvas, device pixels, the terminal's font.
      const size = parseFloat(cs.fontSize) * dpr;
      const ref = document.createElement("canvas");
      ref.width = Math.ceil(size * 3); ref.height = Math.ceil(size * 3);
      const rg = ref.getContext("2d", { willReadFrequently: true });
      const whole = (ch) => {
        rg.fillStyle = "#0d1117"; rg.fillRect(0, 0, ref.width, ref.height);
        rg.fillStyle = "#e6edf3"; rg.font = `${cs.fontWeight} ${size}px ${cs.fontFamily}`;
        rg.textBaseline = "middle"; rg.fillText(ch, size, ref.height / 2);
        const d = rg.getImageData(0, 0, ref.width, ref.height).data;
        let sum = 0;
        for (let i = 0; i < d.length; i += 4) sum += Math.min(1, Math.max(0, (lum(d[i], d[i + 1], d[i + 2]) - BG) / (FG - BG)));
        return sum;
      };
      const lines = [...rowsEl.children];
      const out = [];
      for (const row of rows) {
        const line = lines.find((l) => l.textContent.replace(/\u00a0/g, " ").trimEnd() === row);
        if (!line) return { error: `no terminal row shows ${JSON.stringify(row)}` };
        const box = line.getBoundingClientRect();
        // Column k of the row: a range over its k-th character gives its cell's left and right.
        const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
        const chars = [];
        for (let n = walker.nextNode(); n; n = walker.nextNode()) for (let i = 0; i < n.length; i++) chars.push([n, i]);
        for (let k = 0; k < row.length; k += 2) {
          const [node, i] = chars[k];
          const range = document.createRange();
          range.setStart(node, i); range.setEnd(node, i + 1);
          const r = range.getBoundingClientRect();
          // Half a cell of slack sideways (the neighbours are blanks); none up or down: the
          // row's box is what the terminal shows of it.
          const half = r.width / 2;
          const shown = ink(r.left - half, box.top, r.right + half, box.bottom);
          out.push({ ch: row[k], coverage: shown / whole(row[k]) });
        }
      }
      return { cells: out };
    }, { b64: shot.toString("base64"), rows });
  }

  await check("the terminal draws every printable ASCII glyph whole at 100/125/150 % zoom", async () => {
    // The 94 printable ASCII glyphs, 24 a row, a blank between neighbours and between rows.
    const glyphs = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i));
    const rows = [];
    for (let i = 0; i < glyphs.length; i += 24) rows.push(glyphs.slice(i, i + 24).join(" "));
    const problems = [];
    for (const zoom of [1, 1.25, 1.5]) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: zoom });
      const p = await ctx.newPage();
      watch(p);
      await p.goto(BASE + "/p/hello?try=1");
      await waitTerm(p, /root@[^\n]*#\s*$/);
      await typeLine(p, `clear; awk 'BEGIN { for (i = 33; i < 127; i++) { printf "%c ", i; if ((i - 32) % 24 == 0) printf "\\n\\n" } print "" }'`);
      await waitTerm(p, /\| \} ~\s*\n[\s\S]*#\s*$/);
      // The cursor blinks on the prompt's row, away from the glyphs.
      const shot = await p.locator("#terminal .xterm-screen").screenshot();
      writeFileSync(join(SHOTS, `glyphs-${zoom * 100}.png`), shot);
      const r = await glyphCoverage(p, shot, rows);
      assert.ok(!r.error, r.error);
      assert.equal(r.cells.length, 94);
      for (const { ch, coverage } of r.cells) {
        if (!(coverage >= 0.8)) problems.push(`${zoom * 100}%: ${JSON.stringify(ch)} shows ${coverage.toFixed(2)} of its ink`);
      }
      const worst = r.cells.reduce((a, b) => (b.coverage < a.coverage ? b : a));
      console.log(`# ${zoom * 100}%: least ink shown ${worst.coverage.toFixed(2)} (${JSON.stringify(worst.ch)}), underscore ${r.cells.find((c) => c.ch === "_").coverage.toFixed(2)}`);
      await ctx.close();
    }
    assert.deepEqual(problems, []);
  });

  await check("phones: Try right under the project's name, no jump when it starts, the panel follows the on-screen keyboard", async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await ctx.newPage();
    watch(p);
    await p.goto(BASE + "/p/hello");
    await p.waitForSelector("body[data-hydrated]");
    const at = (sel) => p.evaluate((s) => { const r = document.querySelector(s).getBoundingClientRect(); return { top: r.top, bottom: r.bottom }; }, sel);
    const name = await at(".project-name"), panel = await at(".try-panel"), button = await at("#try");
    const badges = await at("#badges"), description = await at(".description");
    assert.ok(name.bottom <= panel.top && panel.top - name.bottom < 150, `the name ends at ${name.bottom}, Try starts at ${panel.top}`);
    assert.ok(button.bottom <= 844, `the Try button is on the first screen (bottom ${button.bottom})`);
    assert.ok(description.top > panel.bottom && badges.top > panel.bottom, "the description and the badges come after Try");
    await p.screenshot({ path: join(SHOTS, "phone-project.png") });
    await p.locator("#try").click();
    await waitTerm(p, /root@[^\n]*#\s*$/);
    const started = await at(".try-panel");
    assert.ok(Math.abs(started.top - panel.top) < 2, `the panel moved from ${panel.top} to ${started.top} as the sandbox started`);
    // The preview and file tools fit under the terminal, inside the panel and the screen.
    await p.waitForSelector("#sandbox-tools #no-ports");
    const tools = await p.evaluate(() => {
      const t = document.querySelector("#sandbox-tools"), r = t.getBoundingClientRect();
      const panel = document.querySelector(".try-panel").getBoundingClientRect();
      return { scroll: t.scrollWidth, width: t.clientWidth, right: r.right, bottom: r.bottom, panelBottom: panel.bottom, page: document.documentElement.scrollWidth };
    });
    assert.ok(tools.scroll <= tools.width + 1 && tools.right <= 390 && tools.page <= 390, `the tools fit the screen: ${JSON.stringify(tools)}`);
    assert.ok(tools.bottom <= tools.panelBottom + 1, `the tools are inside the panel: ${JSON.stringify(tools)}`);
    await p.screenshot({ path: join(SHOTS, "phone-tools.png") });
    // The on-screen keyboard leaves 450 px of the screen visible.
    await p.setViewportSize({ width: 390, height: 450 });
    await p.waitForSelector(".try-panel.keyboard");
    const view = async () => p.evaluate(() => {
      const vv = window.visualViewport;
      const r = (s) => document.querySelector(s).getBoundingClientRect();
      const rows = [...document.querySelectorAll("#terminal .xterm-rows > div")];
      const prompt = rows.filter((d) => /#\s*$/.test(d.textContent.replace(/\u00a0/g, " "))).pop();
      return {
        visibleTop: vv.offsetTop, visibleBottom: vv.offsetTop + vv.height,
        bar: r(".topbar").bottom, panel: r(".try-panel").top,
        keysTop: r(".keys-bar").top, keysBottom: r(".keys-bar").bottom,
        prompt: prompt && prompt.getBoundingClientRect().bottom,
      };
    });
    await waitFor(async () => { const v = await view(); return Math.abs(v.keysBottom - v.visibleBottom) < 12; }, "the keys bar right above the keyboard");
    await typeLine(p, "echo kb-$((2+3))");
    await waitTerm(p, /\nkb-5\s*\n[^\n]*#\s*$/);
    const v = await view();
    assert.ok(v.panel >= v.bar - 1 && v.panel - v.bar < 2, `the panel starts under the top bar: ${JSON.stringify(v)}`);
    assert.ok(v.prompt && v.prompt <= v.keysTop + 1 && v.prompt > v.panel, `the prompt is in view, above the keys: ${JSON.stringify(v)}`);
    assert.equal(await p.locator("#sandbox-tools").isVisible(), false, "with the keyboard up every row goes to the terminal");
    await p.screenshot({ path: join(SHOTS, "phone-keyboard.png") });
    // The keyboard closes: the panel is back in the page.
    await p.setViewportSize({ width: 390, height: 844 });
    await p.waitForSelector(".try-panel.keyboard", { state: "detached" });
    await ctx.close();
  });

  await check("phones: the home page has one search box with its button on one line; the menu opens by keyboard and shows ✕", async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await ctx.newPage();
    watch(p);
    await p.goto(BASE + "/");
    await p.waitForSelector("body[data-hydrated]");
    const boxes = await p.locator("input[type=search]").evaluateAll((is) => is.filter((i) => i.getClientRects().length > 0).length);
    assert.equal(boxes, 1, "one search box on the home page");
    const lines = await p.evaluate(() => {
      const b = document.querySelector(".search.big button");
      const r = document.createRange();
      r.selectNodeContents(b);
      return [...r.getClientRects()].map((x) => Math.round(x.top)).filter((t, i, a) => a.indexOf(t) === i).length;
    });
    assert.equal(lines, 1, "the Search button's word on one line");
    await p.screenshot({ path: join(SHOTS, "phone-home.png") });
    // Tab reaches the menu; Space opens it (☰ becomes ✕) and closes it again.
    let focused = "";
    for (let i = 0; i < 10 && focused !== "menu-toggle"; i++) {
      await p.keyboard.press("Tab");
      focused = await p.evaluate(() => document.activeElement?.id ?? "");
    }
    assert.equal(focused, "menu-toggle");
    assert.equal(await p.locator("#menu-button").innerText(), "☰");
    await p.keyboard.press("Space");
    await p.waitForSelector("#nav", { state: "visible" });
    assert.equal(await p.locator("#menu-button").innerText(), "✕");
    await p.screenshot({ path: join(SHOTS, "phone-menu-open.png") });
    await p.keyboard.press("Space");
    await p.waitForSelector("#nav", { state: "hidden" });
    assert.equal(await p.locator("#menu-button").innerText(), "☰");
    await ctx.close();
  });

  await check("every in-site link works when clicked (JavaScript on)", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await ctx.newPage();
    watch(p);
    await p.goto(BASE + "/login?next=/account");
    await p.fill("#email", ADMIN.email);
    await p.fill("#password", ADMIN.password);
    await p.click("#submit");
    await p.waitForURL(BASE + "/account");
    // An ended sandbox ("Try again") and a running one ("Open") in My containers.
    const call = (method, url, body) => p.evaluate(([m, u, b]) => fetch(u, {
      method: m,
      headers: { "content-type": "application/json", "x-csrf-token": document.querySelector("meta[name=csrf-token]").content },
      body: b ? JSON.stringify(b) : undefined,
    }).then((r) => r.text()).then((t) => (t ? JSON.parse(t) : {})), [method, url, body]);
    const world = await call("POST", "/api/projects/world/try", { replace: true });
    assert.ok(world.id, JSON.stringify(world));
    await call("DELETE", `/api/sandboxes/${world.id}`);
    assert.ok((await call("POST", "/api/projects/hello/try", { replace: true })).id);
    const builds = await (await fetch(BASE + "/api/projects/hello/builds")).json();
    const pages = ["/", "/search", "/search?q=test", "/p/hello", "/p/tui", "/containers", "/account",
                   "/admin", "/new", `/builds/${builds.items[0].id}`, "/nope/nothing"];
    const hydrated = () => p.waitForSelector("body[data-hydrated]");
    const settled = () => waitFor(async () => p.evaluate(() =>
      document.body.hasAttribute("data-hydrated") && !document.querySelector("main .loading")), "the page settles", 20000);
    const followed = new Set();
    const tries = [];
    const before = errors.length;
    for (const from of pages) {
      await p.goto(BASE + from);
      await hydrated();
      // Every visible link to this site, but for the home page's category chips (they filter
      // in place), the project page's own Try button (it starts the Try in place; its href is
      // for pages without JavaScript) and in-page anchors. One click per (address, text).
      const links = await p.evaluate(() => [...document.querySelectorAll("a[href]")]
        .filter((a) => a.origin === location.origin && !a.target && !a.getAttribute("href").startsWith("#")
          && !a.closest(".chips") && a.id !== "try" && a.getClientRects().length > 0)
        .map((a) => ({ href: a.getAttribute("href"), text: a.innerText.trim() })));
      for (const { href, text } of links) {
        const key = `${href} ${text}`;
        if (followed.has(key)) continue;
        followed.add(key);
        await p.goto(BASE + from);
        await settled();
        const present = await p.evaluate(([h, t]) => {
          const a = [...document.querySelectorAll("a[href]")].find((a) => a.getAttribute("href") === h && a.innerText.trim() === t && a.getClientRects().length > 0);
          a?.setAttribute("data-walk", "");
          return Boolean(a);
        }, [href, text]);
        // A link of the first look that is gone now (a Try link of a sandbox an earlier click
        // ended, a card of a list that moved): nothing to click.
        if (!present) { followed.delete(key); continue; }
        await p.locator("a[data-walk]").click();
        const target = new URL(href, BASE);
        const slug = target.pathname.match(/^\/try\/([^/]+)$/)?.[1];
        if (slug) {
          // A Try link: through the server's route to the project, its Try under way.
          tries.push(`${from} → ${text}`);
          await waitFor(async () => new RegExp(`/p/${slug}\\?try=1$`).test(p.url()),
            `${from}: "${text}" (${href}) leads to /p/${slug}?try=1`, 20000)
            .catch(async (e) => { throw new Error(`${e.message}; at ${p.url()}: ${(await p.locator("main").innerText().catch(() => "")).slice(0, 300)}`); });
        } else {
          await waitFor(async () => { const u = new URL(p.url()); return u.pathname + u.search === target.pathname + target.search; },
            `${from}: "${text}" leads to ${href} (at ${p.url()})`);
        }
        await settled();
        const heading = await p.locator("main h1").first().innerText().catch(() => "");
        assert.notEqual(heading, "Nothing here", `${from}: "${text}" (${href}) lands on "Nothing here"`);
        assert.doesNotMatch(await p.locator("main").innerText(), /Nothing here/, `${from}: "${text}" (${href})`);
      }
    }
    console.log(`# ${followed.size} links followed; Try links: ${tries.join("; ")}`);
    // The walk opens the "Nothing here" page on purpose (404), and its Try links meet the
    // sandbox the admin already runs (409, the page then offers to replace it): those only.
    const expected = (e) => /status of 404 .*\/nope\/nothing \(on /.test(e) || /status of 409 .*\/api\/projects\/[^/]+\/try \(on /.test(e);
    const walked = errors.splice(before);
    errors.push(...walked.filter((e) => !expected(e)));
    assert.ok(followed.size >= 20, `only ${followed.size} links`);
    assert.ok(tries.length >= 3, `Try links followed: ${tries}`);
    await ctx.close();
  });

  // axe-core's WCAG 2.1 A/AA rules on `paths`, at desktop and phone width; `signIn` (optional)
  // logs the fresh context in first. Returns one line per violation.
  async function axeAudit(paths, signIn) {
    const axe = readFileSync(join(ROOT, "node_modules/axe-core/axe.min.js"), "utf8");
    const found = [];
    for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
      const c = await browser.newContext({ viewport });
      // Not watched for console errors: the unknown path's 404 is logged as one, by design.
      const p = await c.newPage();
      if (signIn) await signIn(p);
      for (const path of paths) {
        await p.goto(BASE + path);
        await p.waitForLoadState("networkidle");
        await p.evaluate(axe);
        const r = await p.evaluate(() => window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
        for (const v of r.violations) {
          found.push(`${viewport.width}px ${path}: ${v.id} at ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
        }
      }
      await c.close();
    }
    return found;
  }

  await check("accessibility: axe-core finds no WCAG 2.1 A or AA problem on the public pages, desktop and phone", async () => {
    assert.deepEqual(await axeAudit(["/", "/search?q=hello", "/search?sort=name", "/p/hello", "/login", "/signup", "/reset", "/new", "/containers", "/nope/nothing"]), []);
  });

  await check("accessibility: the same audit of the signed-in pages (account, containers, publish, a build, admin)", async () => {
    const build = await (await fetch(BASE + "/api/projects/hello/builds")).json();
    const buildId = build.items?.[0]?.id;
    assert.ok(buildId, JSON.stringify(build));
    const signIn = async (p) => {
      await p.goto(BASE + "/login?next=/account");
      await p.fill("#email", ADMIN.email);
      await p.fill("#password", ADMIN.password);
      await p.click("#submit");
      await p.waitForURL(BASE + "/account");
    };
    assert.deepEqual(await axeAudit(["/account", "/containers", "/new", `/builds/${buildId}`, "/p/hello", "/p/hello/edit", "/admin"], signIn), []);
  });

  await check("no errors in the browser console", async () => {
    assert.deepEqual(errors, []);
  });
} finally {
  // The sandboxes this run left running (the admin sees them all) go with it.
  let leftovers = [];
  try {
    const c = await browser.newContext();
    const p = await c.newPage();
    await p.goto(BASE + "/login?next=/account");
    await p.fill("#email", ADMIN.email);
    await p.fill("#password", ADMIN.password);
    await p.click("#submit");
    await p.waitForURL(BASE + "/account");
    const listed = await p.evaluate(() => fetch("/api/admin/sandboxes").then((r) => r.json()));
    leftovers = (listed.sandboxes ?? []).map((s) => `trythis-${s.id}`);
    await c.close();
  } catch (e) {
    console.error(`could not list the run's sandboxes: ${e}`);
  }
  await browser.close();
  await provider.close();
  server.kill("SIGTERM");
  await new Promise((r) => server.on("exit", r));
  // The warm pool outlives the server (its shells are held beside the engine): everything of
  // this run's installation goes.
  const instance = spawnSync(BIN, ["instance"], { env, encoding: "utf8" }).stdout.trim();
  if (instance) {
    const ids = spawnSync("docker", ["ps", "-aq", "--filter", `label=trythis.instance=${instance}`], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    leftovers.push(...ids);
  } else {
    console.error("the run's installation id is unknown: its warm pool may be left running");
  }
  if (leftovers.length) spawnSync("docker", ["rm", "-fv", ...leftovers], { stdio: "ignore" });
  rmSync(data, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped (E2E_ONLY=${process.env.E2E_ONLY}): not a full run` : ""}`);
process.exit(failed || skipped ? 1 : 0);
