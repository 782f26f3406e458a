//! Browser-only glue: JSON API calls, timers, clipboard and the terminal script.
use wasm_bindgen::{prelude::*, JsCast};
use wasm_bindgen_futures::JsFuture;

/// An API answer: status, `Retry-After` seconds if given, and the JSON body (Null if none).
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: serde_json::Value,
}

impl Reply {
    /// The error body, when the answer is an API error.
    pub fn error(&self) -> Option<crate::model::ApiErrorBody> {
        serde_json::from_value(self.body.clone()).ok()
    }
    /// The server's human sentence, or a fallback.
    pub fn message(&self) -> String {
        self.error()
            .map(|e| e.message)
            .unwrap_or_else(|| format!("The server answered {}.", self.status))
    }
    /// The body as the API type `T` (None when it is something else, e.g. an error).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value(self.body.clone()).ok()
    }
    /// The error's code ("" when the answer is not an API error).
    pub fn code(&self) -> String {
        self.error().map(|e| e.error).unwrap_or_default()
    }
}

fn js_err(e: JsValue) -> String {
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

/// This page's CSRF token (the server renders it into `<meta name="csrf-token">`).
pub fn csrf_token() -> String {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("meta[name=csrf-token]").ok().flatten())
        .and_then(|m| m.get_attribute("content"))
        .unwrap_or_default()
}

/// Navigates the whole page (after sign-in or out: the new session's page and token).
pub fn go(url: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(url);
    }
}

/// Asks the person a yes/no question (the browser's dialog); false when it cannot be asked.
pub fn confirm(question: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.confirm_with_message(question).ok())
        .unwrap_or(false)
}

/// A one-time notice for the next page of this tab ("Your email is confirmed"): kept in the
/// tab's sessionStorage, so a link cannot fake it, and shown once by `components::flash`.
pub fn flash(text: &str) {
    if let Some(s) = web_sys::window().and_then(|w| w.session_storage().ok().flatten()) {
        let _ = s.set_item(FLASH_KEY, text);
    }
}

/// Takes the notice `flash` left for this page, if any (it is shown once).
pub fn take_flash() -> Option<String> {
    let s = web_sys::window().and_then(|w| w.session_storage().ok().flatten())?;
    let text = s.get_item(FLASH_KEY).ok().flatten()?;
    let _ = s.remove_item(FLASH_KEY);
    Some(text).filter(|t| !t.is_empty())
}

const FLASH_KEY: &str = "trythis.flash";

/// Sends `body` (an API request type) to the JSON API.
pub async fn send<B: serde::Serialize>(method: &str, url: &str, body: &B) -> Result<Reply, String> {
    let value = serde_json::to_value(body).map_err(|e| e.to_string())?;
    call(method, url, Some(value)).await
}

/// Calls the JSON API with the same-origin cookies and, for changes, the page's CSRF token.
pub async fn call(
    method: &str,
    url: &str,
    body: Option<serde_json::Value>,
) -> Result<Reply, String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().map_err(js_err)?;
    headers.set("accept", "application/json").map_err(js_err)?;
    if let Some(b) = body {
        headers
            .set("content-type", "application/json")
            .map_err(js_err)?;
        init.set_body(&JsValue::from_str(&b.to_string()));
    } else if method != "GET" {
        headers
            .set("content-type", "application/json")
            .map_err(js_err)?;
    }
    if method != "GET" {
        headers.set("x-csrf-token", &csrf_token()).map_err(js_err)?;
    }
    init.set_headers(&headers);
    let resp = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|_| {
            "The network is unreachable. Check your connection and try again.".to_string()
        })?;
    let resp: web_sys::Response = resp.dyn_into().map_err(js_err)?;
    let retry_after = resp
        .headers()
        .get("retry-after")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok());
    let text = JsFuture::from(resp.text().map_err(js_err)?)
        .await
        .map_err(js_err)?;
    let body = text
        .as_string()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok(Reply {
        status: resp.status(),
        retry_after,
        body,
    })
}

pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

fn terminal_fn(name: &str) -> Option<(JsValue, js_sys::Function)> {
    let window = web_sys::window()?;
    let obj = js_sys::Reflect::get(&window, &"trythisTerminal".into()).ok()?;
    let f = js_sys::Reflect::get(&obj, &name.into())
        .ok()?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    Some((obj, f))
}

/// Opens (or keeps) the xterm.js terminal in `el`, connected to the sandbox's WebSocket.
pub fn attach_terminal(el: &web_sys::HtmlElement, ws_path: &str) {
    match terminal_fn("attach") {
        Some((obj, f)) => {
            let _ = f.call2(&obj, el, &JsValue::from_str(ws_path));
        }
        None => leptos::logging::error!("terminal script not loaded"),
    }
}

/// Opens the terminal of a share link in `el`: its socket's ticket comes from `ticket_url`, the
/// screen takes the owner's size, and with `read_only` no key is sent.
pub fn watch_terminal(el: &web_sys::HtmlElement, ws_path: &str, ticket_url: &str, read_only: bool) {
    let opts = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&opts, &"ticketUrl".into(), &ticket_url.into());
    let _ = js_sys::Reflect::set(&opts, &"watch".into(), &JsValue::TRUE);
    let _ = js_sys::Reflect::set(&opts, &"readOnly".into(), &read_only.into());
    match terminal_fn("attach") {
        Some((obj, f)) => {
            let _ = f.call3(&obj, el, &JsValue::from_str(ws_path), &opts);
        }
        None => leptos::logging::error!("terminal script not loaded"),
    }
}

/// Calls `on(code, reason)` each time the terminal in `el` loses its socket (terminal.js's
/// `trythis-terminal` event), for as long as the page lives.
pub fn on_terminal_closed(el: &web_sys::HtmlElement, on: impl Fn(u16, String) + 'static) {
    let cb = Closure::<dyn Fn(web_sys::CustomEvent)>::new(move |ev: web_sys::CustomEvent| {
        let detail = ev.detail();
        let get = |k: &str| js_sys::Reflect::get(&detail, &k.into()).ok();
        let code = get("code").and_then(|v| v.as_f64()).unwrap_or(0.0) as u16;
        let reason = get("reason")
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        on(code, reason);
    });
    let _ = el.add_event_listener_with_callback("trythis-terminal", cb.as_ref().unchecked_ref());
    cb.forget();
}

pub fn detach_terminal(el: &web_sys::HtmlElement, message: &str) {
    if let Some((obj, f)) = terminal_fn("detach") {
        let _ = f.call2(&obj, el, &JsValue::from_str(message));
    }
}

pub fn copy_text(text: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
}

/// Follows a build's Server-Sent Events: calls `on(kind, data)` for each `log`, `step` and
/// `state` event, and closes when the build has finished (or the stream breaks: a reconnect
/// would replay the whole log, so the page says so instead).
pub fn follow_build_log(url: &str, on: impl Fn(String, String) + 'static) {
    let Ok(source) = web_sys::EventSource::new(url) else {
        return;
    };
    let on = std::rc::Rc::new(on);
    for kind in ["log", "step", "state"] {
        let on = on.clone();
        let src = source.clone();
        let cb = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let data = ev.data().as_string().unwrap_or_default();
            if kind == "state" {
                let done = serde_json::from_str::<crate::model::BuildStateChange>(&data)
                    .is_ok_and(|c| c.state.is_finished());
                if done {
                    src.close();
                }
            }
            on(kind.to_string(), data);
        });
        let _ = source.add_event_listener_with_callback(kind, cb.as_ref().unchecked_ref());
        cb.forget();
    }
    let src = source.clone();
    let on_err = Closure::<dyn Fn(web_sys::Event)>::new(move |_| {
        if src.ready_state() != web_sys::EventSource::CLOSED {
            src.close();
            on(
                "log".into(),
                "[connection to the build log lost: reload the page to follow it again]".into(),
            );
        }
    });
    source.set_onerror(Some(on_err.as_ref().unchecked_ref()));
    on_err.forget();
}

fn files_fn(name: &str) -> Option<(JsValue, js_sys::Function)> {
    let window = web_sys::window()?;
    let obj = js_sys::Reflect::get(&window, &"trythisFiles".into()).ok()?;
    let f = js_sys::Reflect::get(&obj, &name.into())
        .ok()?
        .dyn_into::<js_sys::Function>()
        .ok()?;
    Some((obj, f))
}

fn field(v: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(v, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// PUTs `file` to `url` with the page's CSRF token; `on_progress(sent, total)` as it goes.
/// Returns the status and the JSON answer.
pub async fn upload_file(
    url: &str,
    file: &web_sys::File,
    on_progress: impl Fn(f64, f64) + 'static,
) -> Reply {
    let failed = Reply {
        status: 0,
        retry_after: None,
        body: serde_json::Value::Null,
    };
    let Some((obj, f)) = files_fn("upload") else {
        return failed;
    };
    let progress = Closure::<dyn Fn(f64, f64)>::new(on_progress);
    let args = js_sys::Array::of4(
        &JsValue::from_str(url),
        file,
        &JsValue::from_str(&csrf_token()),
        progress.as_ref(),
    );
    let Ok(promise) = f.apply(&obj, &args) else {
        return failed;
    };
    let Ok(answer) = JsFuture::from(js_sys::Promise::from(promise)).await else {
        return failed;
    };
    drop(progress);
    Reply {
        status: field(&answer, "status").as_f64().unwrap_or(0.0) as u16,
        retry_after: None,
        body: field(&answer, "body")
            .as_string()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null),
    }
}

/// Downloads `url` as a file named by the server; Err(message) when it answered an error.
pub async fn download_file(url: &str, fallback_name: &str) -> Result<String, (u16, String)> {
    let Some((obj, f)) = files_fn("download") else {
        return Err((0, String::new()));
    };
    let Ok(promise) = f.call2(
        &obj,
        &JsValue::from_str(url),
        &JsValue::from_str(fallback_name),
    ) else {
        return Err((0, String::new()));
    };
    let answer = JsFuture::from(js_sys::Promise::from(promise))
        .await
        .map_err(|_| (0, String::new()))?;
    let status = field(&answer, "status").as_f64().unwrap_or(0.0) as u16;
    if (200..300).contains(&status) {
        Ok(field(&answer, "name").as_string().unwrap_or_default())
    } else {
        Err((
            status,
            field(&answer, "message").as_string().unwrap_or_default(),
        ))
    }
}

/// Files dropped on `el` go to `on_file`.
pub fn on_file_drop(el: &web_sys::Element, on_file: impl Fn(web_sys::File) + 'static) {
    if let Some((obj, f)) = files_fn("onDrop") {
        let cb = Closure::<dyn Fn(web_sys::File)>::new(on_file);
        let _ = f.call2(&obj, el, cb.as_ref());
        // Lives as long as the element's listeners (the page).
        cb.forget();
    }
}

pub fn encode_component(s: &str) -> String {
    String::from(js_sys::encode_uri_component(s))
}
