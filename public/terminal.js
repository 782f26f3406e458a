// trythis terminal: xterm.js speaking ttyd's WebSocket protocol to the platform's own proxy
// (/s/{id}/ws, subprotocol "tty"). Loaded as a classic script; the Leptos page calls
// window.trythisTerminal.attach(element, wsPath, options) and .detach(element, message).
// Options (all optional): ticketUrl (where the socket's ticket comes from; default the sandbox's),
// watch (a share link's viewer: the screen takes the owner's size, never sends one) and
// readOnly (a view-only link: no keys are sent; the server drops them anyway). Every close of
// the socket is told to the page as a "trythis-terminal" event on the element
// ({detail: {code, reason}}).
(function () {
  "use strict";
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const sessions = new WeakMap();

  function wsUrl(path) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + path;
  }

  function frame(cmd, payload) {
    const body = typeof payload === "string" ? enc.encode(payload) : payload;
    const out = new Uint8Array(body.length + 1);
    out[0] = cmd.charCodeAt(0);
    out.set(body, 1);
    return out;
  }

  // The socket opens only from the site's own pages and with a 60-second ticket, fetched (with
  // the page's CSRF token) before every connect and reconnect.
  function ticket(s) {
    const m = /^\/s\/([^/]+)\/ws$/.exec(s.path);
    const meta = document.querySelector("meta[name=csrf-token]");
    return fetch(s.ticketUrl || "/api/sandboxes/" + (m ? m[1] : "-") + "/ticket", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": meta ? meta.content : "" },
      body: "{}",
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (r.ok && b.ticket) return b.ticket;
        const e = new Error(b.message || "the terminal could not open");
        // A refusal (the sandbox ended, not yours) does not get better by retrying.
        e.final = r.status >= 400 && r.status < 500 && r.status !== 429;
        throw e;
      });
    });
  }

  // About 20 s of tries: long enough for a restarting app server (the shell outlives it).
  function retry(s, reason) {
    if (s.retries >= 10) {
      s.term.write("\r\n\x1b[90m[" + reason + "]\x1b[0m\r\n");
      return;
    }
    s.retries += 1;
    // The server replays the shell's recent output: the screen is redrawn from it, not doubled.
    s.reconnecting = true;
    setTimeout(function () { if (!s.disposed) connect(s); }, Math.min(500 * s.retries, 3000));
  }

  // A viewer waits for the owner's shell (it exited, or is not open yet): it asks again every
  // few seconds for a few minutes, and never opens one itself.
  function waitForShell(s, reason) {
    if (s.waits >= 100) {
      s.term.write("\r\n\x1b[90m[" + reason + "]\x1b[0m\r\n");
      return;
    }
    if (!s.waits) s.term.write("\r\n\x1b[90m[" + reason + " \u00b7 waiting for the owner]\x1b[0m\r\n");
    s.waits = (s.waits || 0) + 1;
    setTimeout(function () { if (!s.disposed) connect(s); }, 3000);
  }

  // The owner's terminal size, from the server's "9" frame: a viewer's screen takes it, the font
  // made smaller (down to 8 px) when the columns would not fit the element's width.
  function takeSize(s, data) {
    let size;
    try { size = JSON.parse(dec.decode(data.subarray(1))); } catch (e) { return; }
    const cols = size.columns | 0, rows = size.rows | 0;
    if (cols < 1 || rows < 1) return;
    const width = s.el.clientWidth || 640;
    // A monospace glyph is about 0.6 em wide; below 8 px the screen scrolls sideways instead.
    const font = Math.max(8, Math.min(14, Math.floor(width / (cols * 0.61))));
    s.lastSize = data;
    if (s.term.options.fontSize !== font) s.term.options.fontSize = font;
    if (s.term.cols !== cols || s.term.rows !== rows) s.term.resize(cols, rows);
    s.el.dataset.size = cols + "x" + rows;
  }

  function tell(s, code, reason) {
    s.el.dispatchEvent(new CustomEvent("trythis-terminal", { detail: { code: code, reason: reason } }));
  }

  // Keys typed before the shell is there (connecting, reconnecting) wait here, up to 64 KiB,
  // and go out right after the hello: a command typed into a terminal that is still connecting
  // is not lost.
  const QUEUE_MAX = 64 * 1024;
  function flush(s) {
    const q = s.queue;
    s.queue = [];
    s.queued = 0;
    q.forEach(function (f) { s.ws.send(f); });
  }

  function connect(s) {
    s.el.dataset.state = "connecting";
    ticket(s).then(function (t) {
      if (!s.disposed) open(s, t);
    }, function (e) {
      if (s.disposed) return;
      s.el.dataset.state = "closed";
      if (e.final) s.term.write("\r\n\x1b[90m[" + e.message + "]\x1b[0m\r\n");
      else retry(s, e.message);
    });
  }

  function open(s, t) {
    const ws = new WebSocket(wsUrl(s.path) + "?ticket=" + encodeURIComponent(t), ["tty"]);
    ws.binaryType = "arraybuffer";
    s.ws = ws;
    ws.onopen = function () {
      s.retries = 0;
      s.waits = 0;
      // The server sends the recent output first. Full-screen programs in it asked the terminal
      // questions (device attributes, colours, modes) that were answered when they ran; answered
      // again now, the answers would land on the shell's prompt as typed text.
      s.replayPending = true;
      s.el.dataset.state = "open";
      ws.send(enc.encode(JSON.stringify({ AuthToken: "", columns: s.term.cols, rows: s.term.rows })));
      flush(s);
      // A view-only viewer's page keeps the keyboard for itself.
      if (!s.readOnly) s.term.focus();
    };
    ws.onmessage = function (ev) {
      const data = new Uint8Array(ev.data);
      if (data.length === 0) return;
      const cmd = String.fromCharCode(data[0]);
      if (cmd === "0") {
        if (s.replayPending) {
          s.replayPending = false;
          s.replaying = true;
          if (s.reconnecting) s.term.reset();
          s.reconnecting = false;
          s.term.write(data.subarray(1), function () { s.replaying = false; });
        } else {
          s.term.write(data.subarray(1));
        }
        s.lastOutput = Date.now();
      } else if (cmd === "9" && s.watch) {
        takeSize(s, data);
      }
      // "1" is ttyd's window title: its command line and the container's hostname. The page
      // keeps its own title (the project's name).
      // "2" (ttyd preferences) is ignored: the platform sets the terminal's look itself.
    };
    ws.onclose = function (ev) {
      s.el.dataset.state = "closed";
      if (s.disposed) return;
      tell(s, ev.code, ev.reason);
      if (ev.code === 4003) {
        // The share link was revoked: nothing to reconnect to.
        s.term.write("\r\n\x1b[90m[" + (ev.reason || "the owner stopped sharing this session") + "]\x1b[0m\r\n");
        return;
      }
      if (s.watch && (ev.code === 4002 || ev.code === 1013)) {
        waitForShell(s, ev.code === 4002 ? "the owner's shell exited" : (ev.reason || "the terminal is busy"));
        return;
      }
      if (ev.code === 4002) {
        // `exit` or Ctrl+D: the sandbox runs on; Enter opens a new shell in it.
        s.exited = true;
        s.queue = [];
        s.queued = 0;
        s.term.write("\r\n\x1b[90m[the shell exited \u00b7 press Enter for a new one]\x1b[0m\r\n");
        return;
      }
      if (ev.code === 1000 || ev.code === 1008) {
        s.term.write("\r\n\x1b[90m[" + (ev.reason || "session closed") + "]\x1b[0m\r\n");
        return;
      }
      // Network hiccup: re-attach to the same shell (the server keeps it).
      retry(s, ev.reason || "session closed");
    };
  }

  function attach(el, path, options) {
    const opts = options || {};
    const existing = sessions.get(el);
    if (existing && existing.path === path && !existing.disposed) return;
    if (existing) detach(el);
    if (typeof Terminal === "undefined") {
      el.textContent = "The terminal could not load. Reload the page.";
      return;
    }
    el.textContent = "";
    const term = new Terminal({
      cursorBlink: !opts.readOnly,
      // A view-only viewer's keys go nowhere: the terminal takes none.
      disableStdin: !!opts.readOnly,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace",
      fontSize: 14,
      // At 1.0 the glyph's descender row is cut: underscores were invisible.
      lineHeight: 1.2,
      scrollback: 5000,
      theme: { background: "#0d1117", foreground: "#e6edf3", cursor: "#7ee787" },
    });
    // A viewer's screen takes the owner's size (the "9" frames), never the element's.
    const fit = typeof FitAddon !== "undefined" && !opts.watch ? new FitAddon.FitAddon() : null;
    if (fit) term.loadAddon(fit);
    term.open(el);
    if (fit) fit.fit();
    const s = { el: el, path: path, term: term, fit: fit, ws: null, retries: 0, disposed: false, queue: [], queued: 0,
                ticketUrl: opts.ticketUrl, watch: !!opts.watch, readOnly: !!opts.readOnly };
    el.dataset.mode = s.readOnly ? "view" : (s.watch ? "control" : "owner");
    // Copy and paste like a desktop terminal: Ctrl+C copies when text is selected (it interrupts
    // otherwise), Ctrl+Shift+C always copies; Ctrl+V and Ctrl+Shift+V paste (the browser's paste
    // event, which xterm turns into input) instead of sending ^V. Alt+Shift+Q leaves the
    // terminal for the page's next control (keyboard users: Tab stays with the shell).
    term.attachCustomKeyEventHandler(function (e) {
      if (e.type !== "keydown") return true;
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && key === "c" && (e.shiftKey || term.hasSelection())) {
        if (term.hasSelection() && navigator.clipboard) navigator.clipboard.writeText(term.getSelection());
        return false;
      }
      if (mod && key === "v") return false;
      if (e.altKey && e.shiftKey && key === "q") {
        const next = document.querySelector("#stop, #try-again, .try-bar button");
        if (next) next.focus();
        return false;
      }
      return true;
    });
    sessions.set(el, s);
    // Input: straight out when the shell is there, else queued until the next hello.
    function sendFrame(f) {
      if (s.el.dataset.state === "open" && s.ws && s.ws.readyState === 1) return s.ws.send(f);
      if (s.queued + f.length > QUEUE_MAX) return;
      s.queue.push(f);
      s.queued += f.length;
    }
    function send(d) { sendFrame(frame("0", d)); }
    s.send = send;
    term.onData(function (d) {
      // The terminal's own answers to queries in the replayed output (see onopen); a view-only
      // viewer's keys.
      if (s.replaying || s.readOnly) return;
      if (s.exited) {
        if (d.indexOf("\r") >= 0) { s.exited = false; s.retries = 0; connect(s); }
        return;
      }
      // The keys bar's sticky Ctrl: the next letter becomes its control character (Ctrl+C = \x03).
      if (s.ctrl && d.length === 1 && /[a-z@\[\\\]^_]/i.test(d)) {
        s.ctrl = false;
        if (s.ctrlButton) s.ctrlButton.classList.remove("on");
        return send(String.fromCharCode(d.toUpperCase().charCodeAt(0) & 31));
      }
      send(d);
    });
    if (!s.readOnly && window.matchMedia && window.matchMedia("(pointer: coarse)").matches) keysBar(s);
    term.onBinary(function (d) {
      if (!s.exited && !s.replaying && !s.readOnly) sendFrame(frame("0", Uint8Array.from(d, function (c) { return c.charCodeAt(0); })));
    });
    term.onResize(function (size) {
      if (!s.watch && s.ws && s.ws.readyState === 1) s.ws.send(frame("1", JSON.stringify({ columns: size.cols, rows: size.rows })));
    });
    s.onWindowResize = function () {
      if (s.fit) s.fit.fit();
      else if (s.lastSize) takeSize(s, s.lastSize);
    };
    window.addEventListener("resize", s.onWindowResize);
    // The element also changes size without the window (a panel opening above it).
    if (s.fit && typeof ResizeObserver !== "undefined") {
      s.observer = new ResizeObserver(function () { if (!s.disposed) s.fit.fit(); });
      s.observer.observe(el);
    }
    connect(s);
  }

  // Touch screens have no Esc, Tab, Ctrl or arrows: a bar of them under the terminal.
  function keysBar(s) {
    const keys = [
      ["Esc", "\x1b"], ["Tab", "\t"], ["Ctrl", null], ["←", "\x1b[D"], ["↑", "\x1b[A"],
      ["↓", "\x1b[B"], ["→", "\x1b[C"], ["|", "|"], ["~", "~"], ["/", "/"], ["-", "-"],
    ];
    const bar = document.createElement("div");
    bar.className = "keys-bar";
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", "Terminal keys");
    keys.forEach(function (k) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = k[0];
      b.dataset.key = k[0];
      // Keep the on-screen keyboard open: the terminal keeps the focus.
      b.addEventListener("mousedown", function (e) { e.preventDefault(); });
      b.addEventListener("click", function () {
        if (k[1] === null) {
          s.ctrl = !s.ctrl;
          b.classList.toggle("on", s.ctrl);
        } else {
          s.send(k[1]);
        }
        s.term.focus();
      });
      if (k[1] === null) s.ctrlButton = b;
      bar.appendChild(b);
    });
    s.el.parentNode.insertBefore(bar, s.el.nextSibling);
    s.bar = bar;
  }

  function detach(el, message) {
    const s = sessions.get(el);
    if (!s) return;
    s.disposed = true;
    if (s.bar) s.bar.remove();
    if (s.observer) s.observer.disconnect();
    window.removeEventListener("resize", s.onWindowResize);
    if (s.ws) s.ws.close(1000);
    if (message) s.term.write("\r\n\x1b[90m[" + message + "]\x1b[0m\r\n");
    sessions.delete(el);
  }

  // "Things to try": a click on a code block of the project's description runs it in the open
  // terminal, so nobody retypes the README. Typed line by line, each once the screen has gone
  // quiet after the one before: `python3` then `print(6*7)` feeds the REPL python3 started (a
  // single paste would all go to the shell, which reads it before python3 runs).
  document.addEventListener("click", function (ev) {
    const block = ev.target && ev.target.closest && ev.target.closest(".description pre");
    const el = document.getElementById("terminal");
    const s = block && el && sessions.get(el);
    if (!s || !s.ws || s.ws.readyState !== 1) return;
    const lines = block.innerText.replace(/\s+$/, "").split("\n");
    if (!lines[0]) return;
    const typing = (s.typing = {});
    (function next(i) {
      if (s.typing !== typing || s.disposed || !s.ws || s.ws.readyState !== 1) return;
      const sent = Date.now();
      s.ws.send(frame("0", lines[i] + "\r"));
      if (i + 1 >= lines.length) return;
      // Quiet: an answer came and nothing more for 400 ms (or no answer within 5 s).
      (function wait() {
        const now = Date.now(), last = s.lastOutput || 0;
        if ((last > sent && now - last >= 400) || now - sent >= 5000) next(i + 1);
        else setTimeout(wait, 100);
      })();
    })(0);
    s.term.focus();
  });

  // The panel's Copy button: the selection, or everything the terminal holds (scrollback too).
  document.addEventListener("click", function (ev) {
    const btn = ev.target && ev.target.closest && ev.target.closest("#copy-term");
    const el = document.getElementById("terminal");
    const s = btn && el && sessions.get(el);
    if (!s || !navigator.clipboard) return;
    let text = s.term.getSelection();
    if (!text) {
      const b = s.term.buffer.active;
      const lines = [];
      for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
      text = lines.join("\n").replace(/\s+$/, "") + "\n";
    }
    navigator.clipboard.writeText(text).then(function () {
      btn.textContent = "Copied";
      setTimeout(function () { btn.textContent = "Copy"; }, 1500);
    });
    s.term.focus();
  });

  window.trythisTerminal = { attach: attach, detach: detach };

  // Files in and out of the sandbox (the Try panel's tools): XHR for the upload's progress
  // events, fetch + a blob for a download that reports its errors on the page.
  function upload(url, file, csrf, onProgress) {
    return new Promise(function (resolve) {
      const x = new XMLHttpRequest();
      x.open("PUT", url);
      x.setRequestHeader("x-csrf-token", csrf);
      x.setRequestHeader("content-type", "application/octet-stream");
      x.upload.onprogress = function (e) { if (e.lengthComputable) onProgress(e.loaded, e.total); };
      x.onload = function () { resolve({ status: x.status, body: x.responseText }); };
      x.onerror = function () { resolve({ status: 0, body: "" }); };
      x.send(file);
    });
  }
  function nameFrom(disposition, fallback) {
    const exact = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
    if (exact) { try { return decodeURIComponent(exact[1]); } catch (e) { /* plain below */ } }
    const plain = /filename="([^"]*)"/i.exec(disposition || "");
    return plain ? plain[1] : fallback;
  }
  async function download(url, fallback) {
    let r;
    try { r = await fetch(url, { credentials: "same-origin" }); } catch (e) { return { status: 0, message: "" }; }
    if (!r.ok) {
      let message = "";
      try { message = (await r.json()).message || ""; } catch (e) { /* no JSON */ }
      return { status: r.status, message: message };
    }
    const blob = await r.blob();
    const name = nameFrom(r.headers.get("content-disposition"), fallback);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 30000);
    return { status: r.status, message: "", name: name };
  }
  // Files dropped on `el` go to `onFile(file)`; the element shows it takes them while dragged over.
  function onDrop(el, onFile) {
    let depth = 0;
    el.addEventListener("dragenter", function (e) { if (e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files")) { depth++; el.classList.add("dropping"); e.preventDefault(); } });
    el.addEventListener("dragover", function (e) { if (e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files")) { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; } });
    el.addEventListener("dragleave", function () { depth = Math.max(0, depth - 1); if (!depth) el.classList.remove("dropping"); });
    el.addEventListener("drop", function (e) {
      depth = 0;
      el.classList.remove("dropping");
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      e.preventDefault();
      for (const f of e.dataTransfer.files) onFile(f);
    });
  }
  window.trythisFiles = { upload: upload, download: download, onDrop: onDrop };
})();
