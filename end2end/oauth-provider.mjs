// A local stand-in for GitHub's and Google's OAuth apps, so the browser tests can run the whole
// authorization-code + PKCE (S256) + state dance against the real server without the internet.
// It is deliberately strict: every check a real provider makes (and a few it makes silently) is
// enforced and refusals are recorded in `log`, so a test can tell *why* a login failed.
//
//   GitHub: /github/login/oauth/authorize, /github/login/oauth/access_token, /github/api/user(/emails)
//   Google: /google/auth, /google/token, /google/userinfo
//
// Node built-ins only. Run directly (`node end2end/oauth-provider.mjs [PORT]`) for manual poking.
import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";

const DEFAULT_CLIENTS = {
  github: { id: "gh-test-client", secret: "gh-test-secret" },
  google: { id: "google-test-client", secret: "google-test-secret" },
};

// Per-provider differences; everything else (PKCE, codes, client auth) is shared.
const FLAVOURS = {
  github: {
    authorize: "/github/login/oauth/authorize",
    token: "/github/login/oauth/access_token",
    title: "GitHub",
    fields: [["email", "Email", "octo@example.test"], ["login", "Login", "octocat"]],
    tokenPrefix: "gho_",
    tokenReply: () => ({ token_type: "bearer", scope: "read:user,user:email" }),
  },
  google: {
    authorize: "/google/auth",
    token: "/google/token",
    title: "Google",
    fields: [["email", "Email", "goo@example.test"], ["name", "Name", "Goo Gle"]],
    tokenPrefix: "ya29.",
    tokenReply: () => ({ token_type: "Bearer", expires_in: 3599, scope: "openid email profile" }),
  },
};

const b64url = (buf) => buf.toString("base64url"); // Node's base64url never pads, as RFC 7636 wants
const sha256 = (s) => createHash("sha256").update(s).digest();
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
// RFC 7636 §4.1/§4.2: a verifier is 43–128 unreserved chars; an S256 challenge is always 43.
const VERIFIER_RE = /^[A-Za-z0-9._~-]{43,128}$/;
const CHALLENGE_RE = /^[A-Za-z0-9_-]{43}$/;

// A refusal carries its HTTP answer plus the short reason that goes into `log`.
class Refusal extends Error {
  constructor(status, reason, body, headers = {}) {
    super(reason);
    Object.assign(this, { status, reason, body, headers });
  }
}
const page = (title, body) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>` +
  `<style>body{font:16px system-ui,sans-serif;max-width:32rem;margin:3rem auto}label{display:block;margin:.6rem 0}` +
  `input[type=text]{width:100%;padding:.3rem}button{margin:.8rem .6rem 0 0;padding:.4rem 1rem}</style>` +
  `</head><body>${body}</body></html>`;
const htmlRefusal = (reason) =>
  new Refusal(400, reason, page("Invalid request", `<h1>Invalid authorization request</h1><p id="error">${esc(reason)}.</p>`), { "content-type": "text/html; charset=utf-8" });
const oauthError = (status, error, description, headers) =>
  new Refusal(status, description, { error, error_description: description }, headers);

export async function startProvider(options = {}) {
  const clients = options.clients ?? DEFAULT_CLIENTS;
  const codeTtlMs = options.codeTtlMs ?? 60_000;
  const log = [];
  const users = new Map(); // "provider:id" → last consented user, for tests to inspect
  const codes = new Map(); // code → { provider, clientId, redirectUri, challenge, user, expires, used }
  const tokens = new Map(); // access token → { provider, user }

  const record = (entry) => {
    log.push(entry);
    if (options.verbose) console.error(`[oauth] ${entry.provider} ${entry.endpoint} ${entry.ok ? "ok" : "REFUSED: " + entry.reason}`);
  };

  // The same checks guard the authorize page and the consent POST: the form's hidden fields come
  // back from the browser, so they are re-validated rather than trusted.
  function checkAuthRequest(provider, p) {
    const client = clients[provider];
    if (!client || p.get("client_id") !== client.id) throw htmlRefusal(`unknown client_id "${p.get("client_id") ?? ""}"`);
    if (p.has("response_type") && p.get("response_type") !== "code") throw htmlRefusal("response_type must be code");
    let redirect;
    try { redirect = new URL(p.get("redirect_uri") ?? ""); } catch { throw htmlRefusal("redirect_uri is missing or not a URL"); }
    if (redirect.protocol !== "http:" && redirect.protocol !== "https:") throw htmlRefusal("redirect_uri must be an http(s) URL");
    if (!p.get("state")) throw htmlRefusal("state is missing");
    if (!p.get("code_challenge")) throw htmlRefusal("code_challenge is missing (PKCE is required)");
    if (p.get("code_challenge_method") !== "S256") throw htmlRefusal(`code_challenge_method must be S256, got "${p.get("code_challenge_method") ?? ""}"`);
    if (!CHALLENGE_RE.test(p.get("code_challenge"))) throw htmlRefusal("code_challenge is not 43 base64url characters");
    return p;
  }

  function consentPage(provider, p) {
    const f = FLAVOURS[provider];
    const hidden = ["client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"]
      .map((k) => `<input type="hidden" name="${k}" value="${esc(p.get(k) ?? "")}">`).join("");
    const inputs = f.fields
      .map(([k, label, v]) => `<label>${label} <input type="text" name="${k}" id="${k}" value="${esc(v)}"></label>`).join("");
    return page(`Sign in with ${f.title} (test)`,
      `<h1>Sign in with ${f.title} <small>(local test provider)</small></h1>` +
      `<p>Application <b>${esc(p.get("client_id"))}</b> asks for <code>${esc(p.get("scope") ?? "")}</code>.</p>` +
      `<form method="post" action="/${provider}/consent">${hidden}${inputs}` +
      `<label><input type="checkbox" name="verified" id="verified" value="1" checked> Email is verified</label>` +
      `<button type="submit" name="action" value="allow" id="authorize">Authorize</button>` +
      `<button type="submit" name="action" value="deny" id="deny">Deny</button></form>`);
  }

  // Ids must be stable so that logging in twice as the same person lands on the same account:
  // derive them from what identifies the person on the form (GitHub: login + email; Google: email).
  function makeUser(provider, form) {
    const email = (form.get("email") ?? "").trim();
    const verified = form.has("verified");
    if (provider === "github") {
      const login = (form.get("login") ?? "").trim() || "octocat";
      const id = sha256(`github:${login.toLowerCase()}:${email.toLowerCase()}`).readUInt32BE(0) & 0x7fffffff || 1;
      return { provider, id, login, name: login, email, verified };
    }
    const name = (form.get("name") ?? "").trim();
    const id = "1" + BigInt("0x" + sha256(`google:${email.toLowerCase()}`).toString("hex").slice(0, 16)).toString().padStart(20, "0");
    return { provider, id, email, name, verified };
  }

  function consent(provider, form) {
    const p = checkAuthRequest(provider, form);
    const target = new URL(p.get("redirect_uri"));
    if (form.get("action") === "deny") {
      target.searchParams.set("error", "access_denied");
      target.searchParams.set("state", p.get("state"));
      return { status: 302, headers: { location: target.href }, reason: "user denied" };
    }
    const user = makeUser(provider, form);
    users.set(`${provider}:${user.id}`, user);
    const code = b64url(randomBytes(24));
    codes.set(code, { provider, clientId: p.get("client_id"), redirectUri: p.get("redirect_uri"),
      challenge: p.get("code_challenge"), user, expires: Date.now() + codeTtlMs, used: false });
    target.searchParams.set("code", code);
    target.searchParams.set("state", p.get("state"));
    return { status: 302, headers: { location: target.href } };
  }

  // Client authentication: HTTP Basic with form-urlencoded id and secret (RFC 6749 §2.3.1, the
  // oauth2 crate's default) or client_id/client_secret in the body. 401 when Basic was tried.
  function authenticateClient(provider, req, form) {
    const client = clients[provider];
    const auth = req.headers.authorization;
    let id = form.get("client_id"), secret = form.get("client_secret");
    if (auth) {
      const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(auth);
      const decoded = m ? Buffer.from(m[1], "base64").toString("utf8") : "";
      const colon = decoded.indexOf(":");
      if (colon < 0) throw oauthError(401, "invalid_client", "malformed Basic authorization header", { "www-authenticate": "Basic" });
      const unform = (s) => decodeURIComponent(s.replace(/\+/g, " ")); // may throw: caught as a 400
      [id, secret] = [unform(decoded.slice(0, colon)), unform(decoded.slice(colon + 1))];
    }
    if (!client || id !== client.id || secret !== client.secret) {
      throw oauthError(auth ? 401 : 400, "invalid_client", id === client?.id ? "wrong client secret" : `unknown client "${id ?? ""}"`,
        auth ? { "www-authenticate": "Basic" } : {});
    }
    return client;
  }

  function exchange(provider, req, form) {
    const client = authenticateClient(provider, req, form);
    // RFC 6749 §5.2 has a dedicated error for this one; the oauth2 crate knows it.
    if (form.get("grant_type") !== "authorization_code") {
      throw oauthError(400, "unsupported_grant_type", `grant_type must be authorization_code, got "${form.get("grant_type") ?? ""}"`);
    }
    const code = form.get("code");
    if (!code) throw oauthError(400, "invalid_request", "code is missing");
    const grant = codes.get(code);
    if (!grant || grant.provider !== provider) throw oauthError(400, "invalid_grant", "unknown code");
    // Burn the code before any further check: a failed exchange must not leave it replayable.
    const wasUsed = grant.used;
    grant.used = true;
    if (wasUsed) throw oauthError(400, "invalid_grant", "code already used");
    if (Date.now() > grant.expires) throw oauthError(400, "invalid_grant", "code expired");
    if (grant.clientId !== client.id) throw oauthError(400, "invalid_grant", "code was issued to another client");
    if (form.get("redirect_uri") !== grant.redirectUri) throw oauthError(400, "invalid_grant", "redirect_uri differs from the authorize request");
    const verifier = form.get("code_verifier");
    if (!verifier) throw oauthError(400, "invalid_request", "code_verifier is missing");
    if (!VERIFIER_RE.test(verifier)) throw oauthError(400, "invalid_grant", "code_verifier is malformed");
    if (b64url(sha256(verifier)) !== grant.challenge) throw oauthError(400, "invalid_grant", "code_verifier does not match code_challenge");
    const accessToken = FLAVOURS[provider].tokenPrefix + b64url(randomBytes(24));
    tokens.set(accessToken, { provider, user: grant.user });
    return { access_token: accessToken, ...FLAVOURS[provider].tokenReply() };
  }

  function bearerUser(provider, req) {
    if (provider === "github" && !req.headers["user-agent"]) {
      // GitHub's API refuses anonymous clients this way; reqwest sends no User-Agent by default.
      throw new Refusal(403, "User-Agent header missing", { message: "Request forbidden by administrative rules. Please make sure your request has a User-Agent header" });
    }
    const m = /^(?:Bearer|token)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    const t = m && tokens.get(m[1]);
    if (!t || t.provider !== provider) {
      throw new Refusal(401, m ? "unknown access token" : "no bearer token",
        provider === "github" ? { message: "Bad credentials" } : { error: "invalid_token", error_description: "Invalid Credentials" },
        { "www-authenticate": 'Bearer error="invalid_token"' });
    }
    return t.user;
  }

  async function readForm(req) {
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
      if ((size += chunk.length) > 1 << 20) throw oauthError(413, "invalid_request", "body too large");
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString("utf8");
    // GitHub also takes JSON bodies; accept both so either client style works.
    if (/json/i.test(req.headers["content-type"] ?? "")) {
      const obj = JSON.parse(text); // a SyntaxError becomes a 400 below
      if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw new Error("JSON body must be an object");
      return new URLSearchParams(Object.entries(obj).map(([k, v]) => [k, String(v)]));
    }
    return new URLSearchParams(text);
  }

  // Route table: "METHOD path" → [provider, endpoint name for the log, handler returning a reply].
  const json = (body, status = 200) => ({ status, body });
  const routes = {};
  for (const provider of Object.keys(FLAVOURS)) {
    const f = FLAVOURS[provider];
    const html = (s) => ({ status: 200, body: s, headers: { "content-type": "text/html; charset=utf-8" } });
    routes[`GET ${f.authorize}`] = [provider, "authorize", (req, url) => html(consentPage(provider, checkAuthRequest(provider, url.searchParams)))];
    routes[`POST /${provider}/consent`] = [provider, "consent", async (req) => consent(provider, await readForm(req))];
    routes[`POST ${f.token}`] = [provider, "token", async (req) => json(exchange(provider, req, await readForm(req)))];
  }
  routes["GET /github/api/user"] = ["github", "user", (req) => {
    const u = bearerUser("github", req);
    return json({ id: u.id, login: u.login, name: u.name, email: null }); // email is private, as for most users
  }];
  routes["GET /github/api/user/emails"] = ["github", "emails", (req) => {
    const u = bearerUser("github", req);
    return json([{ email: u.email, primary: true, verified: u.verified, visibility: "private" }]);
  }];
  routes["GET /google/userinfo"] = ["google", "userinfo", (req) => {
    const u = bearerUser("google", req);
    return json({ sub: u.id, email: u.email, email_verified: u.verified, name: u.name });
  }];

  const server = http.createServer(async (req, res) => {
    let reply, entry = null;
    try {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const route = routes[`${req.method} ${url.pathname.replace(/\/+$/, "") || "/"}`];
      if (!route && url.pathname === "/favicon.ico") {
        // Browsers ask on every consent page; an empty answer keeps their consoles clean.
        res.writeHead(204).end();
        return;
      } else if (!route) {
        reply = json({ error: "not_found", message: `no route for ${req.method} ${url.pathname}` }, 404);
      } else {
        entry = { provider: route[0], endpoint: route[1] };
        reply = await route[2](req, url);
      }
    } catch (e) {
      // Malformed input of any kind (bad base64, %-escapes, JSON, …) is the client's fault: 400, never a crash.
      reply = e instanceof Refusal ? e : oauthError(400, "invalid_request", `malformed request: ${e.message}`);
    }
    if (entry) record({ ...entry, ok: reply.status < 400 && !reply.reason, reason: reply.reason ?? null });
    const headers = { "cache-control": "no-store", ...reply.headers };
    let body = reply.body ?? "";
    if (typeof body !== "string") { body = JSON.stringify(body); headers["content-type"] ??= "application/json"; }
    if (!res.headersSent) res.writeHead(reply.status, headers).end(body);
  });
  server.on("clientError", (_e, socket) => socket.destroy()); // unparseable HTTP: just hang up

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", resolve);
  });
  const port = server.address().port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    log,
    users,
    close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const p = await startProvider({ port: process.argv[2] ? Number(process.argv[2]) : 0, verbose: true });
  console.log(p.url);
}
