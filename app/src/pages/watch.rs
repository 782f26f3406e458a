//! `/watch/{token}`: a shared session. The owner's live terminal, the project's name and what the
//! link allows ("View only" or "You can type"). An ended or revoked link answers 410 with a
//! sentence. Under the terminal, "Open preview :P" for each server listening in the sandbox,
//! entered through this link (`/preview/{id}/{port}?share=TOKEN`).
use crate::api::load_share;
use crate::model::{clock, ShareLookup, SharedSession};
use crate::pages::not_found::NotFoundPage;
use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

#[component]
pub fn WatchPage() -> impl IntoView {
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let data = Resource::new(token, load_share);
    view! {
        // The link is a secret: it is not sent on to the pages a viewer follows from here.
        <Meta name="referrer" content="no-referrer"/>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(ShareLookup::Live(session)) => view! { <WatchView session token=token()/> }.into_any(),
                    Ok(ShareLookup::Gone(why)) => view! { <SessionEnded why/> }.into_any(),
                    Ok(ShareLookup::NotFound) => view! { <NotFoundPage/> }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// An ended or revoked link: 410, and why.
#[component]
fn SessionEnded(why: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(axum::http::StatusCode::GONE);
    }
    view! {
        <Title text="Shared session ended"/>
        <section class="notice" id="watch-gone">
            <h1>"This session has ended"</h1>
            <p>{why}</p>
            <p><a href="/">"Find something to try yourself"</a></p>
        </section>
    }
}

#[component]
fn WatchView(session: SharedSession, token: String) -> impl IntoView {
    let seconds_left = RwSignal::new(session.seconds_left);
    let ports = RwSignal::new(session.ports.clone());
    // Set once the session can no longer be watched: the sentence to show.
    let ended = RwSignal::new(None::<String>);
    let term_ref = NodeRef::<leptos::html::Div>::new();
    let mode = session.mode;
    let can_type = mode.can_type();

    #[cfg(feature = "hydrate")]
    {
        let (ws, ticket_url) = (
            session.terminal_ws.clone(),
            format!("/api/shares/{token}/ticket"),
        );
        let resync_token = token.clone();
        Effect::new(move |attached: Option<bool>| {
            if attached == Some(true) {
                return true;
            }
            let Some(el) = term_ref.get() else {
                return false;
            };
            let token = resync_token.clone();
            crate::client::on_terminal_closed(&el, move |code, _reason| match code {
                4003 => stop(ended, term_ref, "The owner stopped sharing this session."),
                // The sandbox or its shell ended: the server says which.
                1000 | 4002 => leptos::task::spawn_local(resync(
                    token.clone(),
                    seconds_left,
                    ports,
                    ended,
                    term_ref,
                )),
                _ => {}
            });
            crate::client::watch_terminal(&el, &ws, &ticket_url, !can_type);
            true
        });
        let poll_token = token.clone();
        let tick = set_interval_with_handle(
            move || {
                if ended.get_untracked().is_some() {
                    return;
                }
                let left = (seconds_left.get_untracked() - 1).max(0);
                seconds_left.set(left);
                // Often enough for a server the owner starts to show its preview soon.
                if left == 0 || left % 3 == 0 {
                    leptos::task::spawn_local(resync(
                        poll_token.clone(),
                        seconds_left,
                        ports,
                        ended,
                        term_ref,
                    ));
                }
            },
            std::time::Duration::from_secs(1),
        );
        if let Ok(handle) = tick {
            on_cleanup(move || handle.clear());
        }
    }
    let _ = &token;

    let title = format!("Watching {}", session.project_name);
    let lead = if can_type {
        "Someone shared their live terminal with you, and you can type into it: what you type runs in their sandbox."
    } else {
        "Someone shared their live terminal with you. You watch as they type; your keys go nowhere."
    };
    let try_href = format!("/p/{}", session.project);
    view! {
        <Title text=title/>
        <div class="watch-layout">
            <header class="watch-head">
                <div class="crumbs">"Shared session"</div>
                <div class="watch-title">
                    <h1 class="project-name" id="watch-project">{session.project_name.clone()}</h1>
                    <span class=format!("mode-badge {}", mode.as_str()) id="watch-mode">
                        {mode.badge()}
                    </span>
                </div>
                <p class="lead">{lead}</p>
                <a class="btn" href=try_href>{format!("Try {} yourself", session.project_name)}</a>
            </header>
            <section class="try-panel watch-panel" class:running=move || ended.get().is_none() aria-label="Shared terminal">
                <div class="try-bar">
                    {move || match ended.get() {
                        None => view! {
                            <span class="status live">"● Live"</span>
                            <span class="countdown" title="Time left">"Ends in "{move || clock(seconds_left.get())}</span>
                        }.into_any(),
                        Some(_) => view! { <span class="status">"Ended"</span> }.into_any(),
                    }}
                    <span class="spacer"></span>
                    <button class="btn small" id="copy-term" title="Copy the selection, or the whole terminal">"Copy"</button>
                </div>
                {move || ended.get().map(|why| view! {
                    <div class="warning" role="alert" id="watch-ended"><span>{why}</span></div>
                })}
                <div class="terminal-wrap">
                    <div class="terminal" id="terminal" class:view-only=!can_type node_ref=term_ref></div>
                </div>
                {move || (ended.get().is_none() && !ports.get().is_empty()).then(|| view! {
                    <div class="sandbox-tools" id="watch-tools">
                        <div class="tool-row" id="ports">
                            <span class="tool-label">"Web preview"</span>
                            {ports.get().into_iter().map(|p| view! {
                                <a class="btn small preview" href=p.preview_url.clone() target="_blank" rel="noopener noreferrer"
                                   data-port=p.port.to_string() title=format!("Open port {} in a new tab", p.port)>
                                    {format!("Open preview :{}", p.port)}
                                </a>
                            }).collect_view()}
                        </div>
                    </div>
                })}
            </section>
        </div>
    }
}

#[cfg(feature = "hydrate")]
fn stop(ended: RwSignal<Option<String>>, term_ref: NodeRef<leptos::html::Div>, why: &str) {
    if ended.get_untracked().is_some() {
        return;
    }
    // The last screen stays; the reason is said once, above it.
    if let Some(el) = term_ref.get_untracked() {
        crate::client::detach_terminal(&el, "");
    }
    ended.set(Some(why.to_string()));
}

/// Asks the server how the session is: its clock, or why it ended.
#[cfg(feature = "hydrate")]
async fn resync(
    token: String,
    seconds_left: RwSignal<i64>,
    ports: RwSignal<Vec<crate::model::OpenPort>>,
    ended: RwSignal<Option<String>>,
    term_ref: NodeRef<leptos::html::Div>,
) {
    let Ok(r) = crate::client::call("GET", &format!("/api/shares/{token}"), None).await else {
        return;
    };
    match r.json::<SharedSession>() {
        Some(s) => {
            seconds_left.set(s.seconds_left);
            if ports.get_untracked() != s.ports {
                ports.set(s.ports);
            }
        }
        None if r.status == 410 || r.status == 404 => stop(ended, term_ref, &r.message()),
        None => {}
    }
}
