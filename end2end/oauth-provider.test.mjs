// Self-test of the local OAuth provider, over real HTTP. Run: node end2end/oauth-provider.test.mjs
// Prints "N passed, M failed" and exits non-zero on failure.
import assert from "node:assert/strict";
import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { startProvider } from "./oauth-provider.mjs";

const p = await startProvider();
const CB = "http://127.0.0.1:9/auth/callback"; // never contacted: redirects are read, not followed
const CLIENTS = { github: { id: "gh-test-client", secret: "gh-test-secret" }, google: { id: "google-test-client", secret: "google-test-secret" } };
const PATHS = {
  github: { authorize: "/github/login/oauth/authorize", token: "/github/login/oauth/access_token", scope: "read:user user:email" },
  google: { authorize: "/google/auth", token: "/google/token", scope: "openid email profile" },
};

let passed = 0, failed = 0;
async function check(name, fn) {
  try { await fn(); passed++; console.log(`ok   ${name}`); }
  catch (e) { failed++; console.log(`FAIL ${name}\n     ${e.stack?.split("\n").slice(0, 3).join("\n     ")}`); }
}

function pkce() {
  const verifier = randomBytes(32).toString("base64url"); // 43 chars, like the oauth2 crate
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}
// The oauth2 crate's Basic auth: base64 of form-urlencoded id ":" form-urlencoded secret.
const basic = (id, secret) => {
  const enc = (s) => new URLSearchParams({ x: s }).toString().slice(2);
  return "Basic " + Buffer.from(`${enc(id)}:${enc(secret)}`).toString("base64");
};

function authorizeUrl(provider, over = {}, base = p.url) {
  const { challenge } = over.pkce ?? pkce();
  const q = { response_type: "code", client_id: CLIENTS[provider].id, redirect_uri: CB, scope: PATHS[provider].scope,
    state: "st-" + randomBytes(6).toString("hex"), code_challenge: challenge, code_challenge_method: "S256", ...over };
  delete q.pkce;
  for (const k of Object.keys(q)) if (q[k] === undefined) delete q[k];
  return `${base}${PATHS[provider].authorize}?${new URLSearchParams(q)}`;
}

// Reads the consent page's form the way a browser would: every input's name/value, checkboxes when checked.
function formOf(html) {
  const unesc = (s) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(+n));
  const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
  const fields = new URLSearchParams();
  for (const [tag] of html.matchAll(/<input\b[^>]*>/g)) {
    const attr = (a) => { const m = new RegExp(`\\b${a}="([^"]*)"`).exec(tag); return m && unesc(m[1]); };
    if (attr("type") === "checkbox" && !/\bchecked\b/.test(tag)) continue;
    fields.append(attr("name"), attr("value") ?? "on");
  }
  return { action, fields };
}

// Authorize page → consent POST; returns the callback URL the browser would be sent to.
async function consent(provider, { fields = {}, verified = true, action = "allow", ...over } = {}, base = p.url) {
  const page = await fetch(authorizeUrl(provider, over, base));
  assert.equal(page.status, 200);
  const form = formOf(await page.text());
  for (const [k, v] of Object.entries(fields)) form.fields.set(k, v);
  if (!verified) form.fields.delete("verified");
  form.fields.set("action", action);
  const r = await fetch(base + form.action, { method: "POST", body: form.fields, redirect: "manual" });
  assert.equal(r.status, 302);
  return new URL(r.headers.get("location"));
}

async function token(provider, body, headers = {}, base = p.url) {
  const r = await fetch(base + PATHS[provider].token, { method: "POST", headers: { accept: "application/json", ...headers }, body: new URLSearchParams(body) });
  return { status: r.status, type: r.headers.get("content-type"), json: await r.json() };
}
// Whole dance for GitHub; returns the token response and the code's verifier.
async function githubLogin(fields = {}, verified = true) {
  const k = pkce();
  const cb = await consent("github", { pkce: k, fields, verified });
  const t = await token("github", { grant_type: "authorization_code", code: cb.searchParams.get("code"), redirect_uri: CB, code_verifier: k.verifier },
    { authorization: basic(CLIENTS.github.id, CLIENTS.github.secret) });
  assert.equal(t.status, 200, JSON.stringify(t.json));
  return t.json.access_token;
}
async function googleLogin(fields = {}, verified = true) {
  const k = pkce();
  const cb = await consent("google", { pkce: k, fields, verified });
  const t = await token("google", { grant_type: "authorization_code", code: cb.searchParams.get("code"), redirect_uri: CB,
    code_verifier: k.verifier, client_id: CLIENTS.google.id, client_secret: CLIENTS.google.secret });
  assert.equal(t.status, 200, JSON.stringify(t.json));
  return t.json.access_token;
}
const api = async (path, tok, ua = "trythis-test") => {
  const r = await fetch(p.url + path, { headers: { authorization: `Bearer ${tok}`, "user-agent": ua } });
  return { status: r.status, json: await r.json() };
};
// fetch always sends a User-Agent, so requests that must lack one (or carry junk) go through node:http.
function raw(method, path, headers, body = "") {
  return new Promise((resolve, reject) => {
    const req = http.request(p.url + path, { method, headers }, (res) => {
      let data = ""; res.on("data", (c) => (data += c)); res.on("end", () => resolve({ status: res.statusCode, body: data }));
    });
    req.on("error", reject); req.end(body);
  });
}
// Gets a fresh code (and its verifier) without exchanging it.
async function freshCode(provider = "github") {
  const k = pkce();
  const cb = await consent(provider, { pkce: k });
  return { code: cb.searchParams.get("code"), verifier: k.verifier };
}
const ghAuth = { authorization: basic(CLIENTS.github.id, CLIENTS.github.secret) };

await check("github authorize page shows the consent form", async () => {
  const r = await fetch(authorizeUrl("github"));
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/html/);
  const html = await r.text();
  for (const id of ["email", "login", "verified", "authorize", "deny"]) assert.match(html, new RegExp(`id="${id}"`));
  const { action, fields } = formOf(html);
  assert.equal(action, "/github/consent");
  assert.equal(fields.get("email"), "octo@example.test");
  assert.equal(fields.get("login"), "octocat");
  assert.equal(fields.get("verified"), "1");
  assert.equal(fields.get("code_challenge_method"), "S256");
});

await check("github full flow: consent → code+state → token (Basic) → /user, /user/emails", async () => {
  const k = pkce();
  const cb = await consent("github", { pkce: k, state: "xyz state" });
  assert.equal(cb.origin + cb.pathname, CB);
  assert.equal(cb.searchParams.get("state"), "xyz state");
  assert.ok(cb.searchParams.get("code"));
  const t = await token("github", { grant_type: "authorization_code", code: cb.searchParams.get("code"), redirect_uri: CB, code_verifier: k.verifier }, ghAuth);
  assert.equal(t.status, 200, JSON.stringify(t.json));
  assert.match(t.type, /application\/json/);
  assert.equal(t.json.token_type, "bearer");
  assert.equal(t.json.scope, "read:user,user:email");
  const u = await api("/github/api/user", t.json.access_token);
  assert.equal(u.status, 200);
  assert.equal(typeof u.json.id, "number");
  assert.equal(u.json.login, "octocat");
  assert.equal(u.json.email, null);
  const e = await api("/github/api/user/emails", t.json.access_token);
  assert.deepEqual(e.json, [{ email: "octo@example.test", primary: true, verified: true, visibility: "private" }]);
  assert.ok(p.users.has(`github:${u.json.id}`));
});

await check("github: 'token X' authorization and an unverified email", async () => {
  const tok = await githubLogin({ email: "unverified@example.test", login: "nobody" }, false);
  const r = await fetch(p.url + "/github/api/user/emails", { headers: { authorization: `token ${tok}`, "user-agent": "t" } });
  assert.equal(r.status, 200);
  assert.equal((await r.json())[0].verified, false);
});

await check("google full flow: consent → token (secret in body) → /userinfo", async () => {
  const r = await fetch(authorizeUrl("google"));
  const html = await r.text();
  for (const id of ["email", "name", "verified", "authorize", "deny"]) assert.match(html, new RegExp(`id="${id}"`));
  assert.equal(formOf(html).action, "/google/consent");
  const k = pkce();
  const cb = await consent("google", { pkce: k, state: "g-state" });
  assert.equal(cb.searchParams.get("state"), "g-state");
  const t = await token("google", { grant_type: "authorization_code", code: cb.searchParams.get("code"), redirect_uri: CB,
    code_verifier: k.verifier, client_id: CLIENTS.google.id, client_secret: CLIENTS.google.secret });
  assert.equal(t.status, 200, JSON.stringify(t.json));
  assert.equal(t.json.token_type, "Bearer");
  assert.equal(t.json.expires_in, 3599);
  assert.equal(t.json.scope, "openid email profile");
  const u = await api("/google/userinfo", t.json.access_token);
  assert.equal(u.status, 200);
  assert.match(u.json.sub, /^\d+$/);
  assert.equal(u.json.email, "goo@example.test");
  assert.equal(u.json.email_verified, true);
  assert.equal(u.json.name, "Goo Gle");
});

await check("same person twice gets the same id / sub; another person a different one", async () => {
  const id = async (f) => (await api("/github/api/user", await githubLogin(f))).json.id;
  const sub = async (f) => (await api("/google/userinfo", await googleLogin(f))).json.sub;
  assert.equal(await id({}), await id({}));
  assert.notEqual(await id({}), await id({ email: "other@example.test", login: "other" }));
  assert.equal(await sub({ email: "a@example.test" }), await sub({ email: "a@example.test", name: "Renamed" }));
  assert.notEqual(await sub({ email: "a@example.test" }), await sub({ email: "b@example.test" }));
});

await check("deny redirects with error=access_denied and the state", async () => {
  const cb = await consent("github", { action: "deny", state: "s1" });
  assert.equal(cb.searchParams.get("error"), "access_denied");
  assert.equal(cb.searchParams.get("state"), "s1");
  assert.equal(cb.searchParams.get("code"), null);
  const g = await consent("google", { action: "deny", state: "s2" });
  assert.equal(g.searchParams.get("error"), "access_denied");
});

await check("redirect_uri with its own query keeps it", async () => {
  const cb = await consent("github", { redirect_uri: "http://127.0.0.1:9/cb?next=%2Fhome&a=1" });
  assert.equal(cb.searchParams.get("next"), "/home");
  assert.equal(cb.searchParams.get("a"), "1");
  assert.ok(cb.searchParams.get("code"));
});

await check("authorize refuses bad requests with a 400 page (no redirect)", async () => {
  const bad = [
    ["github", { code_challenge: undefined }, /code_challenge/],
    ["github", { code_challenge_method: "plain" }, /S256/],
    ["google", { code_challenge_method: undefined }, /S256/],
    ["github", { client_id: "nope" }, /client_id/],
    ["google", { client_id: CLIENTS.github.id }, /client_id/],
    ["github", { state: undefined }, /state/],
    ["github", { redirect_uri: undefined }, /redirect_uri/],
    ["github", { redirect_uri: "javascript:alert(1)" }, /redirect_uri/],
    ["github", { code_challenge: "short" }, /code_challenge/],
  ];
  for (const [provider, over, re] of bad) {
    const r = await fetch(authorizeUrl(provider, over), { redirect: "manual" });
    assert.equal(r.status, 400, JSON.stringify(over));
    assert.match(await r.text(), re);
  }
});

await check("consent POST re-validates its fields", async () => {
  const r = await fetch(p.url + "/github/consent", { method: "POST", redirect: "manual",
    body: new URLSearchParams({ client_id: CLIENTS.github.id, redirect_uri: CB, state: "s", code_challenge: pkce().challenge, code_challenge_method: "plain", action: "allow" }) });
  assert.equal(r.status, 400);
});

await check("token without code_verifier → 400, and the code is burned", async () => {
  const { code, verifier } = await freshCode();
  const t = await token("github", { grant_type: "authorization_code", code, redirect_uri: CB }, ghAuth);
  assert.equal(t.status, 400);
  assert.ok(["invalid_request", "invalid_grant"].includes(t.json.error));
  assert.ok(t.json.error_description);
  const again = await token("github", { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier }, ghAuth);
  assert.equal(again.status, 400);
  assert.equal(again.json.error, "invalid_grant");
});

await check("wrong code_verifier → 400 invalid_grant", async () => {
  const { code } = await freshCode();
  const t = await token("github", { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: pkce().verifier }, ghAuth);
  assert.equal(t.status, 400);
  assert.equal(t.json.error, "invalid_grant");
});

await check("reused code → 400 invalid_grant", async () => {
  const { code, verifier } = await freshCode("google");
  const body = { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier, client_id: CLIENTS.google.id, client_secret: CLIENTS.google.secret };
  assert.equal((await token("google", body)).status, 200);
  const t = await token("google", body);
  assert.equal(t.status, 400);
  assert.equal(t.json.error, "invalid_grant");
});

await check("wrong client secret → invalid_client (401 with Basic, 400 in body)", async () => {
  const { code, verifier } = await freshCode();
  const body = { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier };
  const t = await token("github", body, { authorization: basic(CLIENTS.github.id, "wrong") });
  assert.equal(t.status, 401);
  assert.equal(t.json.error, "invalid_client");
  const g = await token("google", { ...body, client_id: CLIENTS.google.id, client_secret: "wrong" });
  assert.equal(g.status, 400);
  assert.equal(g.json.error, "invalid_client");
  const none = await token("github", body);
  assert.equal(none.json.error, "invalid_client");
  // Client auth comes before the code is looked at: the code survives a bad client.
  assert.equal((await token("github", body, ghAuth)).status, 200);
});

await check("mismatched redirect_uri, wrong grant_type, other provider's code → 400", async () => {
  let { code, verifier } = await freshCode();
  const t = await token("github", { grant_type: "authorization_code", code, redirect_uri: CB + "x", code_verifier: verifier }, ghAuth);
  assert.equal(t.status, 400);
  assert.equal(t.json.error, "invalid_grant");
  ({ code, verifier } = await freshCode());
  const g = await token("github", { grant_type: "password", code, redirect_uri: CB, code_verifier: verifier }, ghAuth);
  assert.equal(g.status, 400);
  assert.ok(g.json.error);
  ({ code, verifier } = await freshCode("github"));
  const x = await token("google", { grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier,
    client_id: CLIENTS.google.id, client_secret: CLIENTS.google.secret });
  assert.equal(x.status, 400);
  assert.equal(x.json.error, "invalid_grant");
  const missing = await token("github", { grant_type: "authorization_code", redirect_uri: CB, code_verifier: verifier }, ghAuth);
  assert.equal(missing.json.error, "invalid_request");
});

await check("bad or missing tokens → 401", async () => {
  const g = await api("/google/userinfo", "ya29.nope");
  assert.equal(g.status, 401);
  const h = await api("/github/api/user", "gho_nope");
  assert.equal(h.status, 401);
  assert.equal(h.json.message, "Bad credentials");
  const none = await fetch(p.url + "/github/api/user/emails", { headers: { "user-agent": "t" } });
  assert.equal(none.status, 401);
  // A GitHub token is not a Google one.
  assert.equal((await api("/google/userinfo", await githubLogin())).status, 401);
});

await check("github api without User-Agent → 403", async () => {
  const tok = await githubLogin();
  const r = await raw("GET", "/github/api/user", { authorization: `Bearer ${tok}` });
  assert.equal(r.status, 403);
  assert.match(JSON.parse(r.body).message, /User-Agent/);
  assert.equal((await raw("GET", "/github/api/user", { authorization: `Bearer ${tok}`, "user-agent": "x" })).status, 200);
});

await check("expired code → invalid_grant; urlencoded Basic credentials decode", async () => {
  const clients = { github: { id: "gh id+1", secret: "s:e/c+r%t é" } };
  const q = await startProvider({ clients, codeTtlMs: 50 });
  try {
    const exchange = async (wait) => {
      const k = pkce();
      const cb = await consent("github", { pkce: k, client_id: clients.github.id }, q.url);
      if (wait) await new Promise((r) => setTimeout(r, wait));
      return token("github", { grant_type: "authorization_code", code: cb.searchParams.get("code"), redirect_uri: CB, code_verifier: k.verifier },
        { authorization: basic(clients.github.id, clients.github.secret) }, q.url);
    };
    const ok = await exchange(0);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const late = await exchange(120);
    assert.equal(late.status, 400);
    assert.equal(late.json.error, "invalid_grant");
    assert.match(late.json.error_description, /expired/);
  } finally { await q.close(); }
});

await check("garbage input → 400/401/404, never a crash", async () => {
  const tokenPath = PATHS.github.token;
  const cases = [
    [raw("POST", tokenPath, { authorization: "Basic %%%not-base64" }, "code=x"), [401]],
    [raw("POST", tokenPath, { authorization: "Basic " + Buffer.from("%zz:%E0%A4%A").toString("base64") }, "code=x"), [400]],
    [raw("POST", tokenPath, { authorization: "Basic " + Buffer.from("no-colon").toString("base64") }, ""), [401]],
    [raw("POST", tokenPath, { "content-type": "application/json" }, "{not json"), [400]],
    [raw("POST", tokenPath, { "content-type": "application/json" }, "[1,2]"), [400]],
    [raw("POST", "/google/token", { "content-type": "application/x-www-form-urlencoded" }, randomBytes(500)), [400]],
    [raw("POST", "/google/consent", {}, "%%%&&&==="), [400]],
    [raw("GET", "/github/login/oauth/authorize?%zz=%%", {}), [400]],
    [raw("GET", "/google/userinfo", { authorization: "Bearer" }), [401]],
    [raw("GET", "/nowhere", {}), [404]],
    [raw("DELETE", "/google/token", {}), [404]],
  ];
  for (const [i, [pending, statuses]] of cases.entries()) {
    const r = await pending;
    assert.ok(statuses.includes(r.status), `case ${i}: ${r.status} ${r.body}`);
  }
  assert.equal((await raw("GET", "/nowhere", {})).body.startsWith("{"), true);
  // JSON bodies (which GitHub also accepts) work when well-formed.
  const { code, verifier } = await freshCode();
  const r = await raw("POST", tokenPath, { ...ghAuth, "content-type": "application/json" },
    JSON.stringify({ grant_type: "authorization_code", code, redirect_uri: CB, code_verifier: verifier }));
  assert.equal(r.status, 200, r.body);
  // Still alive afterwards.
  assert.equal((await fetch(authorizeUrl("google"))).status, 200);
});

await check("log records refusals with reasons", async () => {
  const refused = p.log.filter((e) => !e.ok);
  assert.ok(p.log.some((e) => e.ok && e.endpoint === "token"));
  for (const endpoint of ["authorize", "token", "user", "userinfo"]) {
    assert.ok(refused.some((e) => e.endpoint === endpoint), `no refusal logged for ${endpoint}`);
  }
  for (const e of refused) assert.ok(typeof e.reason === "string" && e.reason.length > 0, JSON.stringify(e));
  for (const reason of [/code_challenge/, /S256/, /already used/, /does not match/, /redirect_uri differs/, /client secret/, /User-Agent/, /unknown access token/]) {
    assert.ok(refused.some((e) => reason.test(e.reason)), `no logged reason matching ${reason}`);
  }
  for (const e of p.log) assert.deepEqual(Object.keys(e).sort(), ["endpoint", "ok", "provider", "reason"]);
});

await p.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
