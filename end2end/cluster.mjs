// Helpers for the cluster tests and benchmark (end2end/replicas.mjs): the cluster of
// scripts/replicas.sh, HTTP and the terminal's WebSocket from Node to any replica or the load
// balancer (each client from a loopback address of its own, so rate limits and client addresses
// can be told apart), and the load balancer's view from its stats socket.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import crypto from "node:crypto";
import http from "node:http";
import net from "node:net";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Two free consecutive ports and one more: [lb, replica 1, replica 2]. */
export async function freePorts() {
  const free = (p) => new Promise((res) => {
    const s = net.createServer().once("error", () => res(false)).listen(p, "127.0.0.1", () => s.close(() => res(true)));
  });
  for (let tries = 0; tries < 200; tries++) {
    const base = 20000 + Math.floor(Math.random() * 20000);
    if ((await free(base)) && (await free(base + 1)) && (await free(base + 2))) return [base, base + 1, base + 2];
  }
  throw new Error("no free ports");
}

/** The cluster of scripts/replicas.sh, run with `env` (its settings). */
export class Cluster {
  constructor(env) {
    this.env = env;
    this.state = env.TRYTHIS_REPLICAS_DIR;
    this.lbPort = Number(env.TRYTHIS_REPLICAS_LB_PORT);
    this.ports = [1, 2].map((i) => Number(env.TRYTHIS_REPLICAS_PORT) + i - 1);
    this.lb = `http://127.0.0.1:${this.lbPort}`;
    this.replicas = this.ports.map((p) => `http://127.0.0.1:${p}`);
  }

  script(...args) {
    const r = spawnSync(join(ROOT, "scripts/replicas.sh"), args, { env: this.env, encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`replicas.sh ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** `up`; returns the load balancer's URL (its last line). */
  up() {
    const lines = this.script("up").trim().split("\n");
    return lines[lines.length - 1].trim();
  }

  pid(name) {
    return Number(readFileSync(join(this.state, `${name}.pid`), "utf8").trim());
  }

  /** HAProxy's answer to a stats socket command. */
  lbCommand(cmd) {
    return new Promise((res, rej) => {
      const s = net.createConnection(join(this.state, "haproxy.sock"));
      let out = "";
      s.on("connect", () => s.write(cmd + "\n"));
      s.on("data", (d) => (out += d));
      s.on("end", () => res(out));
      s.on("error", rej);
    });
  }

  /** Each replica as the load balancer sees it: {r1: {status, total, current}, …}. */
  async servers() {
    const csv = await this.lbCommand("show stat");
    const lines = csv.split("\n");
    const head = lines[0].replace(/^# /, "").split(",");
    const col = (n) => head.indexOf(n);
    const out = {};
    for (const l of lines.slice(1)) {
      const f = l.split(",");
      if (f[0] !== "replicas" || f[1] === "BACKEND" || !f[1]) continue;
      out[f[1]] = { status: f[col("status")], total: Number(f[col("stot")]), current: Number(f[col("scur")]) };
    }
    return out;
  }
}

/** A visitor (a cookie jar) speaking to the site at `site` (the public URL, whose host every
 * request names) through any replica or the load balancer, from loopback address `from`. */
export class Visitor {
  constructor(site, from = "127.0.0.1") {
    this.site = new URL(site);
    this.from = from;
    this.cookies = new Map();
    this.csrf = "";
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  /** One request to `base` (a replica or the load balancer): {status, headers, body, json}. */
  request(base, method, path, body, extraHeaders = {}) {
    const u = new URL(path, base);
    const headers = { host: this.site.host, ...extraHeaders };
    if (this.cookies.size) headers.cookie = this.cookieHeader();
    let data;
    if (body !== undefined) {
      data = JSON.stringify(body);
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(data);
    }
    if (method !== "GET") {
      headers.origin = this.site.origin;
      headers["x-csrf-token"] = this.csrf;
    }
    return new Promise((res, rej) => {
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, localAddress: this.from, agent: false }, (r) => {
        for (const c of r.headers["set-cookie"] ?? []) {
          const [kv] = c.split(";");
          const i = kv.indexOf("=");
          this.cookies.set(kv.slice(0, i).trim(), kv.slice(i + 1).trim());
        }
        const chunks = [];
        r.on("data", (c) => chunks.push(c));
        r.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try { json = JSON.parse(text); } catch {}
          res({ status: r.statusCode, headers: r.headers, body: text, json });
        });
      });
      req.setTimeout(60000, () => req.destroy(new Error(`${method} ${u} timed out`)));
      req.on("error", rej);
      if (data) req.write(data);
      req.end();
    });
  }

  /** Gets a visitor identity and its CSRF token (GET /api/me) through `base`. */
  async hello(base) {
    const r = await this.request(base, "GET", "/api/me");
    if (r.status !== 200) throw new Error(`/api/me: ${r.status} ${r.body}`);
    this.csrf = r.json.csrf_token;
    return r.json;
  }

  async logIn(base, email, password) {
    await this.hello(base);
    const r = await this.request(base, "POST", "/api/auth/login", { email, password });
    if (r.status !== 200) throw new Error(`log-in: ${r.status} ${r.body}`);
    await this.hello(base);
  }

  /** Starts a Try of `slug` through `base`; the sandbox's id. */
  async try(base, slug, replace = true) {
    const r = await this.request(base, "POST", `/api/projects/${slug}/try`, { replace });
    if (r.status !== 200 && r.status !== 201) throw new Error(`Try ${slug}: ${r.status} ${r.body}`);
    return r.json.id;
  }

  /** The sandbox's terminal, ticket and socket both through `base`. */
  async terminal(base, id, cols = 100, rows = 30) {
    const t = await this.request(base, "POST", `/api/sandboxes/${id}/ticket`, {});
    if (t.status !== 200) throw new Error(`ticket: ${t.status} ${t.body}`);
    return Terminal.open(base, `/s/${id}/ws?ticket=${encodeURIComponent(t.json.ticket)}`, {
      host: this.site.host, origin: this.site.origin, cookie: this.cookieHeader(),
    }, this.from, cols, rows);
  }
}

/** The browser's side of a terminal socket (RFC 6455 client frames, ttyd's protocol), small
 * enough to live here: Node 20 has no WebSocket client that sends an Origin. */
export class Terminal {
  static open(base, path, headers, from, cols, rows) {
    const u = new URL(base);
    const key = crypto.randomBytes(16).toString("base64");
    return new Promise((res, rej) => {
      const sock = net.createConnection({ host: u.hostname, port: Number(u.port), localAddress: from });
      const t = new Terminal(sock);
      let head = Buffer.alloc(0);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        sock.off("data", onData);
        const status = head.subarray(0, end).toString().split("\r\n")[0];
        if (!/ 101 /.test(status)) { sock.destroy(); rej(new Error(`terminal upgrade refused: ${status}\n${head.subarray(end + 4)}`)); return; }
        sock.on("data", (d2) => t.feed(d2));
        t.feed(head.subarray(end + 4));
        t.send(Buffer.from(JSON.stringify({ AuthToken: "", columns: cols, rows })));
        res(t);
      };
      sock.on("data", onData);
      sock.on("error", (e) => { t.closed ??= { code: 1006, reason: String(e) }; rej(e); });
      sock.on("close", () => { t.closed ??= { code: 1006, reason: "connection lost" }; });
      sock.on("connect", () => {
        const lines = [`GET ${path} HTTP/1.1`, `Host: ${headers.host}`, "Upgrade: websocket", "Connection: Upgrade",
          `Sec-WebSocket-Key: ${key}`, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: tty",
          `Origin: ${headers.origin}`, `Cookie: ${headers.cookie}`];
        sock.write(lines.join("\r\n") + "\r\n\r\n");
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.output = "";
    this.closed = null;
    this.firstOutputAt = null;
  }

  feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f, off = 2;
      if (len === 126) { if (this.buf.length < 4) return; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) return; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (op === 2 || op === 1) {
        if (payload[0] === 0x30) {
          this.firstOutputAt ??= performance.now();
          this.output += payload.subarray(1).toString("utf8");
        }
      } else if (op === 8) {
        this.closed = { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString() };
        this.sock.end();
      } else if (op === 9) {
        this.frame(0xa, payload);
      }
    }
  }

  frame(op, payload) {
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, 0x80 | len])
      : Buffer.from([0x80 | op, 0x80 | 126, len >> 8, len & 0xff]);
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i % 4];
    this.sock.write(Buffer.concat([head, mask, body]));
  }

  send(bytes) { this.frame(2, bytes); }

  /** Types `text` (ttyd's input frame). */
  type(text) { this.send(Buffer.concat([Buffer.from("0"), Buffer.from(text)])); }

  /** Waits until the output matches `re`; the match. */
  async waitFor(re, timeout = 20000) {
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      const m = this.output.match(re);
      if (m) return m;
      if (this.closed) throw new Error(`terminal closed (${this.closed.code} ${this.closed.reason}) before ${re}; it showed:\n${this.output.slice(-2000)}`);
      await sleep(50);
    }
    throw new Error(`terminal never showed ${re}; it showed:\n${this.output.slice(-2000)}`);
  }

  close() {
    if (!this.closed) { this.frame(8, Buffer.from([0x03, 0xe8])); this.closed = { code: 1000, reason: "client" }; }
    this.sock.end();
  }
}
