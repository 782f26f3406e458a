//! The Try panel: start/queue/replace a sandbox, the terminal, countdown, extend, stop, restart,
//! sharing the session (`share_panel`), and web previews and files (`sandbox_tools`).
use crate::components::sandbox_tools::SandboxTools;
use crate::components::share_panel::SharePanel;
use crate::model::{clock, EndReason, SandboxInfo};
use leptos::prelude::*;

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))] // only the browser moves between states
enum Panel {
    Idle,
    Starting,
    /// Capacity is full: place in line.
    Queued(u64),
    Running(SandboxInfo),
    /// Another project's sandbox is running: ask before replacing it.
    Confirm(String),
    Error(String),
    Ended(String),
}

#[component]
pub fn TryPanel(
    slug: String,
    name: String,
    tryable: bool,
    initial: Option<SandboxInfo>,
    autostart: bool,
) -> impl IntoView {
    let seconds_left = RwSignal::new(initial.as_ref().map(|s| s.seconds_left).unwrap_or(0));
    let can_extend = RwSignal::new(initial.as_ref().map(|s| s.can_extend).unwrap_or(false));
    // Seconds until the idle timeout ends it (None until the server said).
    let idle_left = RwSignal::new(initial.as_ref().and_then(|s| s.idle_seconds_left));
    let clocks = Clocks {
        seconds_left,
        can_extend,
        idle_left,
    };
    #[cfg(not(feature = "hydrate"))]
    let _ = clocks;
    let panel = RwSignal::new(match initial {
        Some(info) => Panel::Running(info),
        None => Panel::Idle,
    });
    let term_ref = NodeRef::<leptos::html::Div>::new();
    let running = move || matches!(panel.get(), Panel::Running(_));
    // The running sandbox's id: the Share drawer and the tools below the terminal live as long
    // as it does (not per status refresh).
    let running_id = Memo::new(move |_| match panel.get() {
        Panel::Running(info) => Some(info.id),
        _ => None,
    });
    let share_open = RwSignal::new(false);
    let watching = RwSignal::new(0usize);

    let start = {
        let slug = slug.clone();
        move |replace: bool| {
            let slug = slug.clone();
            panel.set(Panel::Starting);
            leptos::task::spawn_local(async move {
                let _ = (&slug, replace);
                #[cfg(feature = "hydrate")]
                start_try(slug, replace, panel, clocks).await;
            });
        }
    };

    // Browser only: attach xterm.js when running, tick the countdown, resync with the server.
    #[cfg(feature = "hydrate")]
    {
        Effect::new(move |_| {
            if let (Panel::Running(info), Some(el)) = (panel.get(), term_ref.get()) {
                crate::client::attach_terminal(&el, &info.terminal_ws);
            }
        });
        // A terminal that loses its socket may mean the sandbox ended (its machine stopped, an
        // admin stopped it): ask the server at once instead of at the next resync.
        Effect::new(move |registered: Option<bool>| {
            if registered == Some(true) {
                return true;
            }
            let Some(el) = term_ref.get() else {
                return false;
            };
            crate::client::on_terminal_closed(&el, move |_code, _reason| {
                let Panel::Running(info) = panel.get_untracked() else {
                    return;
                };
                // At once, then a few times more: the server may learn of the end (a node's
                // loss takes Swarm a few seconds) after the socket closed.
                leptos::task::spawn_local(async move {
                    for wait in [0, 1500, 1500, 3000, 3000] {
                        crate::client::sleep_ms(wait).await;
                        match panel.get_untracked() {
                            Panel::Running(now) if now.id == info.id => {
                                resync(info.id.clone(), panel, clocks, term_ref).await
                            }
                            _ => return,
                        }
                    }
                });
            });
            true
        });
        let tick = set_interval_with_handle(
            move || {
                if let Panel::Running(info) = panel.get_untracked() {
                    let left = seconds_left.get_untracked() - 1;
                    seconds_left.set(left.max(0));
                    let idle = idle_left.get_untracked().map(|i| (i - 1).max(0));
                    idle_left.set(idle);
                    // Near the idle end the server is asked more often (a keystroke resets it).
                    let every = if idle.is_some_and(|i| i <= IDLE_WARNING) {
                        5
                    } else {
                        15
                    };
                    if left <= 0 {
                        end(panel, term_ref, "Time is up: this sandbox has ended.");
                    } else if left % every == 0 || idle == Some(0) {
                        leptos::task::spawn_local(resync(info.id, panel, clocks, term_ref));
                    }
                }
            },
            std::time::Duration::from_secs(1),
        );
        if let Ok(handle) = tick {
            on_cleanup(move || handle.clear());
        }
        if autostart && matches!(panel.get_untracked(), Panel::Idle) && tryable {
            let start = start.clone();
            Effect::new(move |done: Option<bool>| {
                if done.is_none() {
                    start(false);
                }
                true
            });
        }
    }
    let _ = autostart;

    let on_try = {
        let start = start.clone();
        move |ev: leptos::ev::MouseEvent| {
            ev.prevent_default();
            start(false);
        }
    };
    let on_replace = {
        let start = start.clone();
        move |_| start(true)
    };
    let on_restart = {
        let start = start.clone();
        move |_| {
            let start = start.clone();
            if !confirmed(
                "Restart? The shell and everything in it start over, and it counts as a new try.",
            ) {
                return;
            }
            if let Panel::Running(info) = panel.get_untracked() {
                leptos::task::spawn_local(async move {
                    let _ = &info;
                    #[cfg(feature = "hydrate")]
                    {
                        let _ = crate::client::call(
                            "DELETE",
                            &format!("/api/sandboxes/{}", info.id),
                            None,
                        )
                        .await;
                        if let Some(el) = term_ref.get_untracked() {
                            crate::client::detach_terminal(&el, "Restarting…");
                        }
                    }
                    start(false);
                });
            }
        }
    };
    let on_stop = move |_| {
        if !confirmed("Stop this sandbox? Everything in it is gone.") {
            return;
        }
        if let Panel::Running(info) = panel.get_untracked() {
            leptos::task::spawn_local(async move {
                let _ = &info;
                #[cfg(feature = "hydrate")]
                {
                    let r =
                        crate::client::call("DELETE", &format!("/api/sandboxes/{}", info.id), None)
                            .await;
                    match r {
                        Ok(r) if r.status < 300 || r.status == 404 => {
                            end(panel, term_ref, "You stopped this sandbox.")
                        }
                        Ok(r) => panel.set(Panel::Error(r.message())),
                        Err(e) => panel.set(Panel::Error(e)),
                    }
                }
            });
        }
    };
    let on_extend = move |_| {
        if let Panel::Running(info) = panel.get_untracked() {
            leptos::task::spawn_local(async move {
                let _ = &info;
                #[cfg(feature = "hydrate")]
                {
                    let url = format!("/api/sandboxes/{}/extend", info.id);
                    if let Ok(r) =
                        crate::client::call("POST", &url, Some(serde_json::json!({}))).await
                    {
                        if let Ok(i) = serde_json::from_value::<SandboxInfo>(r.body.clone()) {
                            clocks.update(&i);
                        }
                    }
                }
            });
        }
    };
    let on_still_here = move |_| {
        if let Panel::Running(info) = panel.get_untracked() {
            leptos::task::spawn_local(async move {
                let _ = &info;
                #[cfg(feature = "hydrate")]
                {
                    let url = format!("/api/sandboxes/{}/active", info.id);
                    if let Ok(r) = crate::client::call("POST", &url, None).await {
                        if let Ok(i) = serde_json::from_value::<SandboxInfo>(r.body.clone()) {
                            clocks.update(&i);
                        }
                    }
                }
            });
        }
    };

    let try_href = format!("/try/{slug}");
    let title = format!("Try {name}");
    // What a screen reader announces as the sandbox starts, runs and ends.
    let announcement = move || match panel.get() {
        Panel::Idle | Panel::Confirm(_) => String::new(),
        Panel::Starting => "Starting your sandbox.".to_string(),
        Panel::Queued(pos) => format!("All sandboxes are busy: you are number {pos} in line."),
        Panel::Running(_) => {
            "Your sandbox is running: the terminal has the keyboard. Alt+Shift+Q leaves it."
                .to_string()
        }
        Panel::Error(msg) => msg,
        // The reason is said once, by the panel itself (#ended); this only marks the moment.
        Panel::Ended(_) => "Your sandbox has ended.".to_string(),
    };
    view! {
        <section class="try-panel" class:running=running aria-label="Try it">
            <p class="sr-only" aria-live="polite" id="try-live">{announcement}</p>
            <div class="try-bar">
                {move || match panel.get() {
                    Panel::Running(_) => view! {
                        <span class="status live">"● Running"</span>
                        <span class="countdown" class:warn=move || seconds_left.get() <= 120 title="Time left">
                            "Ends in "{move || clock(seconds_left.get())}
                        </span>
                        <span class="spacer"></span>
                        {move || can_extend.get().then(|| view! {
                            <button class="btn small" id="extend" title="More time" on:click=on_extend>"Extend"</button>
                        })}
                        <button class="btn small" id="share" class:on=move || share_open.get() class:watched=move || watching.get() != 0
                            aria-expanded=move || share_open.get().to_string() aria-controls="share-panel"
                            title="Let others watch this terminal live" on:click=move |_| share_open.update(|o| *o = !*o)>
                            {move || match watching.get() {
                                0 => "Share".to_string(),
                                n => format!("Share · {n} watching"),
                            }}
                        </button>
                        <button class="btn small" id="copy-term" title="Copy the selection, or the whole terminal">"Copy"</button>
                        <button class="btn small" id="restart" on:click=on_restart.clone()>"Restart"</button>
                        <button class="btn small danger" id="stop" on:click=on_stop>"Stop"</button>
                    }.into_any(),
                    _ => view! { <span class="status">{title.clone()}</span> }.into_any(),
                }}
            </div>
            {move || (running() && seconds_left.get() <= 120).then(|| view! {
                <div class="warning" role="alert">
                    <span>{move || format!("This sandbox ends in {}.", clock(seconds_left.get()))}</span>
                    {move || if can_extend.get() {
                        view! { <span>" Extend gives it more time."</span> }.into_any()
                    } else {
                        view! { <span class="muted">" It can't be extended further."</span> }.into_any()
                    }}
                </div>
            })}
            {move || {
                let idle = idle_left.get()?;
                (running() && idle <= IDLE_WARNING && idle < seconds_left.get()).then(|| view! {
                    <div class="warning" role="alert" id="idle-warning">
                        <span>{move || format!("No keystroke for a while: this sandbox ends in {} unless you are still here.", clock(idle_left.get().unwrap_or(0)))}</span>
                        <button class="btn small" id="still-here" on:click=on_still_here>"I'm here"</button>
                    </div>
                })
            }}
            {move || running_id.get().map(|id| view! { <SharePanel sandbox_id=id open=share_open watching/> })}
            // After the end the last screen stays readable (scrollback included).
            <div class="terminal-wrap" class:hidden=move || !(running() || matches!(panel.get(), Panel::Ended(_)))>
                <div class="terminal" id="terminal" node_ref=term_ref></div>
            </div>
            {move || running_id.get().map(|id| view! { <SandboxTools id=id/> }.into_any())}
            {move || match panel.get() {
                Panel::Running(_) => ().into_any(),
                Panel::Idle if !tryable => view! {
                    <div class="try-idle"><p>"This project has no live image yet, so it can't be tried right now."</p></div>
                }.into_any(),
                Panel::Idle => view! {
                    <div class="try-idle">
                        <p>"Start a disposable sandbox with "<b>{name.clone()}</b>" installed and get a shell in it, right here."</p>
                        <a class="btn primary big" id="try" href=try_href.clone() on:click=on_try.clone()>"▶ Try it"</a>
                        <p class="muted small">"Offline by default · 512 MB memory · ends after 30 min"</p>
                    </div>
                }.into_any(),
                Panel::Starting => view! { <div class="try-idle"><p class="loading">"Starting your sandbox…"</p></div> }.into_any(),
                Panel::Queued(pos) => view! {
                    <div class="try-idle"><p class="loading">{format!("All sandboxes are busy. You are number {pos} in line; your terminal opens as soon as a slot frees.")}</p></div>
                }.into_any(),
                Panel::Confirm(other) => view! {
                    <div class="try-idle confirm">
                        <p>{format!("You already have a {other} sandbox running. You can have one at a time.")}</p>
                        <button class="btn primary" id="replace" on:click=on_replace.clone()>{format!("Stop {other} and try {name}")}</button>
                        <a class="btn" href=format!("/p/{other}")>{format!("Back to {other}")}</a>
                    </div>
                }.into_any(),
                Panel::Error(msg) => view! {
                    <div class="try-idle"><p class="error" id="try-error">{msg}</p>
                    <a class="btn" href=try_href.clone() on:click=on_try.clone()>"Try again"</a></div>
                }.into_any(),
                Panel::Ended(msg) => view! {
                    <div class="try-idle"><p id="ended">{msg}</p>
                    <a class="btn primary" id="try-again" href=try_href.clone() on:click=on_try.clone()>"Try again"</a></div>
                }.into_any(),
            }}
        </section>
    }
    // Type-erased: the project page's view type stays within the compiler's depth limit.
    .into_any()
}

/// The warning before an idle end starts this many seconds ahead.
const IDLE_WARNING: i64 = 120;

/// The panel's clocks, set from each answer of the server.
#[derive(Clone, Copy)]
struct Clocks {
    seconds_left: RwSignal<i64>,
    can_extend: RwSignal<bool>,
    idle_left: RwSignal<Option<i64>>,
}

impl Clocks {
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn update(&self, info: &SandboxInfo) {
        self.seconds_left.set(info.seconds_left);
        self.can_extend.set(info.can_extend);
        self.idle_left.set(info.idle_seconds_left);
    }
}

/// The browser's confirmation dialog (always yes on the server, where nothing is clicked).
fn confirmed(question: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.confirm_with_message(question).ok())
            .unwrap_or(true)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = question;
        true
    }
}

/// Why a sandbox ended, as the panel says it.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn ended_because(reason: Option<EndReason>) -> String {
    match reason {
        Some(r @ EndReason::Idle) => format!("{} Its last screen is above.", r.sentence()),
        Some(r) => r.sentence().into(),
        None => EndReason::Other.sentence().into(),
    }
}

#[cfg(feature = "hydrate")]
fn end(panel: RwSignal<Panel>, term_ref: NodeRef<leptos::html::Div>, msg: &str) {
    // The last screen stays as it was; the reason is said once, under it.
    if let Some(el) = term_ref.get_untracked() {
        crate::client::detach_terminal(&el, "");
    }
    panel.set(Panel::Ended(msg.to_string()));
}

#[cfg(feature = "hydrate")]
async fn start_try(slug: String, replace: bool, panel: RwSignal<Panel>, clocks: Clocks) {
    use crate::client::{call, sleep_ms};
    let url = format!("/api/projects/{slug}/try");
    loop {
        let reply = match call(
            "POST",
            &url,
            Some(serde_json::json!({ "replace": replace })),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => return panel.set(Panel::Error(e)),
        };
        match reply.status {
            200 | 201 => match serde_json::from_value::<SandboxInfo>(reply.body.clone()) {
                Ok(info) => {
                    clocks.update(&info);
                    return panel.set(Panel::Running(info));
                }
                Err(e) => {
                    return panel.set(Panel::Error(format!(
                        "Unexpected answer from the server: {e}"
                    )))
                }
            },
            409 if reply.code() == "sandbox_active" => {
                let other = reply
                    .body
                    .pointer("/sandbox/project")
                    .and_then(|v| v.as_str())
                    .unwrap_or("another project")
                    .to_string();
                return panel.set(Panel::Confirm(other));
            }
            503 if reply.code() == "queued" => {
                let pos = reply
                    .body
                    .get("queue_position")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(1);
                panel.set(Panel::Queued(pos));
                sleep_ms(reply.retry_after.unwrap_or(2).clamp(1, 10) as i32 * 1000).await;
            }
            _ => return panel.set(Panel::Error(reply.message())),
        }
    }
}

#[cfg(feature = "hydrate")]
async fn resync(
    id: String,
    panel: RwSignal<Panel>,
    clocks: Clocks,
    term_ref: NodeRef<leptos::html::Div>,
) {
    let Ok(r) = crate::client::call("GET", &format!("/api/sandboxes/{id}"), None).await else {
        return;
    };
    match serde_json::from_value::<SandboxInfo>(r.body.clone()) {
        Ok(info) if info.state.is_running() => clocks.update(&info),
        Ok(info) => end(panel, term_ref, &ended_because(info.end_reason)),
        Err(_) if r.status == 404 => end(panel, term_ref, &ended_because(None)),
        Err(_) => {}
    }
}
