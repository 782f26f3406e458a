//! Under a running Try's terminal: the web previews of the servers listening in the sandbox,
//! and files in (the Upload button, or a drop on the terminal) and out (Download).
use crate::model::OpenPort;
use leptos::prelude::*;

/// How often the open ports are asked for while the panel shows.
#[cfg(feature = "hydrate")]
const PORTS_EVERY_MS: u64 = 2000;

/// A message under the tools: (is an error, text).
type Note = Option<(bool, String)>;

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / 1048576.0),
        b if b >= 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

#[component]
pub fn SandboxTools(id: String) -> impl IntoView {
    let ports = RwSignal::new(Vec::<OpenPort>::new());
    let previews_on = RwSignal::new(true);
    let upload_max = RwSignal::new(0u64);
    let note = RwSignal::new(Note::None);
    // (file name, fraction sent)
    let progress = RwSignal::new(None::<(String, f64)>);
    let download_path = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    #[cfg(not(feature = "hydrate"))]
    let _ = upload_max;

    #[cfg(feature = "hydrate")]
    let upload = {
        let id = id.clone();
        move |file: web_sys::File| {
            let (id, name, size) = (id.clone(), file.name(), file.size() as u64);
            let max = upload_max.get_untracked();
            if max > 0 && size > max {
                note.set(Some((
                    true,
                    format!(
                        "{name} is {}; uploads take at most {}.",
                        size_text(size),
                        size_text(max)
                    ),
                )));
                return;
            }
            progress.set(Some((name.clone(), 0.0)));
            note.set(None);
            leptos::task::spawn_local(async move {
                let url = format!(
                    "/api/sandboxes/{id}/files?path={}",
                    crate::client::encode_component(&name)
                );
                let n = name.clone();
                let r = crate::client::upload_file(&url, &file, move |sent, total| {
                    if total > 0.0 {
                        progress.set(Some((n.clone(), sent / total)));
                    }
                })
                .await;
                progress.set(None);
                note.set(Some(match r.status {
                    201 => (
                        false,
                        format!(
                            "Uploaded {name} ({}) to {}",
                            size_text(size),
                            r.body["path"].as_str().unwrap_or(&name)
                        ),
                    ),
                    0 => (
                        true,
                        format!("{name} could not be sent: check your connection."),
                    ),
                    _ => (true, r.message()),
                }));
            });
        }
    };

    #[cfg(feature = "hydrate")]
    {
        let poll = {
            let id = id.clone();
            move || {
                let id = id.clone();
                leptos::task::spawn_local(async move {
                    let url = format!("/api/sandboxes/{id}/ports");
                    if let Ok(r) = crate::client::call("GET", &url, None).await {
                        if let Some(p) = r.json::<crate::model::SandboxPorts>() {
                            if ports.get_untracked() != p.ports {
                                ports.set(p.ports);
                            }
                            upload_max.set(p.upload_max_bytes);
                            previews_on.set(p.previews);
                        }
                    }
                });
            }
        };
        poll();
        if let Ok(handle) =
            set_interval_with_handle(poll, std::time::Duration::from_millis(PORTS_EVERY_MS))
        {
            on_cleanup(move || handle.clear());
        }
        let upload = upload.clone();
        Effect::new(move |done: Option<bool>| {
            if done.is_none() {
                let wrap = web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.query_selector(".terminal-wrap").ok().flatten());
                if let Some(el) = wrap {
                    let upload = upload.clone();
                    crate::client::on_file_drop(&el, upload);
                }
            }
            true
        });
    }

    let on_pick = {
        #[cfg(feature = "hydrate")]
        let upload = upload.clone();
        move |ev: leptos::ev::Event| {
            let _ = &ev;
            #[cfg(feature = "hydrate")]
            {
                use wasm_bindgen::JsCast;
                let input = ev
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
                if let Some(input) = input {
                    if let Some(files) = input.files() {
                        for i in 0..files.length() {
                            if let Some(f) = files.get(i) {
                                upload(f);
                            }
                        }
                    }
                    input.set_value("");
                }
            }
        }
    };

    let on_download = {
        let id = id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let path = download_path.get_untracked().trim().to_string();
            if path.is_empty() {
                note.set(Some((
                    true,
                    "Type the path of a file or folder to download.".into(),
                )));
                return;
            }
            let id = id.clone();
            busy.set(true);
            note.set(None);
            leptos::task::spawn_local(async move {
                let _ = (&id, &path);
                #[cfg(feature = "hydrate")]
                {
                    let url = format!(
                        "/api/sandboxes/{id}/files?path={}",
                        crate::client::encode_component(&path)
                    );
                    let fallback = path.rsplit('/').next().unwrap_or("download").to_string();
                    note.set(Some(
                        match crate::client::download_file(&url, &fallback).await {
                            Ok(name) => (false, format!("Downloaded {name}")),
                            Err((_, m)) if !m.is_empty() => (true, m),
                            Err((status, _)) => (true, format!("The download failed ({status}).")),
                        },
                    ));
                }
                busy.set(false);
            });
        }
    };

    view! {
        <div class="sandbox-tools" id="sandbox-tools">
            <div class="tool-row" id="ports">
                <span class="tool-label">"Web preview"</span>
                {move || {
                    let list = ports.get();
                    if !previews_on.get() {
                        view! { <span class="muted small">"Previews are off on this installation."</span> }.into_any()
                    } else if list.is_empty() {
                        view! {
                            <span class="muted small" id="no-ports">
                                "Start a server (e.g. " <code>"python3 -m http.server 8000"</code> ") and its preview appears here."
                            </span>
                        }.into_any()
                    } else {
                        list.into_iter().map(|p| view! {
                            <a class="btn small preview" href=p.preview_url.clone() target="_blank" rel="noopener"
                               data-port=p.port.to_string() title=format!("Open port {} in a new tab", p.port)>
                                {format!("Open preview :{}", p.port)}
                            </a>
                        }).collect_view().into_any()
                    }
                }}
            </div>
            <div class="tool-row">
                <span class="tool-label">"Files"</span>
                <input type="file" id="upload-input" class="sr-only" multiple on:change=on_pick aria-label="Upload files into the sandbox"/>
                <label for="upload-input" class="btn small" id="upload">"Upload…"</label>
                <span class="muted small drop-hint">"or drop on the terminal"</span>
                <form class="download" on:submit=on_download>
                    <input type="text" id="download-path" placeholder="file or folder" aria-label="Path to download from the sandbox"
                        autocomplete="off" spellcheck="false"
                        prop:value=move || download_path.get()
                        on:input=move |ev| download_path.set(event_target_value(&ev))/>
                    <button class="btn small" id="download" type="submit" disabled=move || busy.get()>"Download"</button>
                </form>
            </div>
            {move || progress.get().map(|(name, f)| view! {
                <div class="upload-progress" id="upload-progress">
                    <span>{format!("Uploading {name}…")}</span>
                    <progress max="1" value=f.to_string() aria-label=format!("Uploading {name}")></progress>
                </div>
            })}
            {move || note.get().map(|(error, text)| view! {
                <p class="tool-note" class:error=error id="files-note" role="status">{text}</p>
            })}
        </div>
    }
}
