use crate::api::load_build;
use crate::model::{failure_parts, queue_line, BuildState, BuildView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// A build: progress (step n/m), the live log (SSE), cancel, and where to go when it is done.
#[component]
pub fn BuildPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, load_build);
    view! {
        <Title text="Build"/>
        <Suspense fallback=|| view! { <p class="loading">"Loading the build…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(Some(b)) => view! { <BuildDetail data=b/> }.into_any(),
                    Ok(None) => view! {
                        <section class="notice"><h1>"No such build"</h1><p><a href="/">"Back to the catalogue"</a></p></section>
                    }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn state_label(state: BuildState) -> &'static str {
    match state {
        BuildState::Queued => "Waiting for a builder",
        BuildState::Running => "Building",
        BuildState::Pushing => "Pushing to the registry",
        BuildState::Checking => "Running the smoke check",
        BuildState::Succeeded => "Live",
        BuildState::Failed => "Failed",
        BuildState::Cancelled => "Cancelled",
    }
}

#[component]
fn BuildDetail(data: BuildView) -> impl IntoView {
    let state = RwSignal::new(data.state);
    let step = RwSignal::new(data.step);
    let steps = RwSignal::new(data.steps);
    let error = RwSignal::new(data.error.clone());
    let log = RwSignal::new(data.log.clone());
    let cancel_msg = RwSignal::new(String::new());
    let queue_position = RwSignal::new(data.queue_position);
    // The queue line ticks every second from the server's count, which each poll refreshes.
    let waited = RwSignal::new(data.waited_secs);
    let estimate = RwSignal::new(data.estimate_secs);
    let log_ref = NodeRef::<leptos::html::Pre>::new();
    let id = data.id.clone();
    let slug = data.project.clone();

    #[cfg(feature = "hydrate")]
    {
        let log_id = id.clone();
        Effect::new(move |started: Option<bool>| {
            if started.unwrap_or(false) || state.get_untracked().is_finished() {
                return true;
            }
            // The stream replays the log so far, then follows.
            log.set(String::new());
            crate::client::follow_build_log(
                &format!("/api/builds/{log_id}/log"),
                move |kind, data| match kind.as_str() {
                    "log" => log.update(|l| {
                        l.push_str(&data);
                        l.push('\n');
                    }),
                    "step" => {
                        if let Ok(v) = serde_json::from_str::<crate::model::BuildStep>(&data) {
                            step.set(v.step);
                            steps.set(v.steps);
                        }
                    }
                    "state" => {
                        if let Ok(v) = serde_json::from_str::<crate::model::BuildStateChange>(&data)
                        {
                            state.set(v.state);
                            error.set(v.error);
                        }
                    }
                    _ => {}
                },
            );
            true
        });
        // While queued, the place in line moves without an event: ask every few seconds.
        {
            let id = id.clone();
            let poll = set_interval_with_handle(
                move || {
                    if state.get_untracked() != BuildState::Queued {
                        return;
                    }
                    let id = id.clone();
                    leptos::task::spawn_local(async move {
                        if let Some(b) =
                            crate::client::call("GET", &format!("/api/builds/{id}"), None)
                                .await
                                .ok()
                                .and_then(|r| r.json::<crate::model::BuildRecord>())
                        {
                            queue_position.set(b.queue_position);
                            estimate.set(b.estimate_secs);
                            if let Some(w) = b.waited_secs {
                                waited.set(w);
                            }
                        }
                    });
                },
                std::time::Duration::from_secs(3),
            );
            if let Ok(handle) = poll {
                on_cleanup(move || handle.clear());
            }
        }
        {
            let tick = set_interval_with_handle(
                move || {
                    if state.get_untracked() == BuildState::Queued {
                        waited.update(|w| *w += 1);
                    }
                },
                std::time::Duration::from_secs(1),
            );
            if let Ok(handle) = tick {
                on_cleanup(move || handle.clear());
            }
        }
        // Keep the newest line in view.
        Effect::new(move |_| {
            log.track();
            if let Some(el) = log_ref.get() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }

    let percent = move || {
        let (n, m) = (step.get(), steps.get());
        match state.get() {
            BuildState::Succeeded | BuildState::Pushing | BuildState::Checking => 100,
            _ if m > 0 => (n.max(0) * 100 / m).min(100),
            _ => 0,
        }
    };
    let cancel = {
        let id = id.clone();
        move |_| {
            let id = id.clone();
            leptos::task::spawn_local(async move {
                #[cfg(feature = "hydrate")]
                match crate::client::call("DELETE", &format!("/api/builds/{id}"), None).await {
                    Ok(r) if r.status == 200 => cancel_msg.set("Cancelling…".into()),
                    Ok(r) => cancel_msg.set(r.message()),
                    Err(e) => cancel_msg.set(e),
                }
                #[cfg(not(feature = "hydrate"))]
                let _ = (id, cancel_msg);
            });
        }
    };
    let project_href = format!("/p/{slug}");
    let (retry_slug, retry_dockerfile) = (slug.clone(), data.dockerfile.clone());
    let retry_check = data.check.clone();
    let imported = data.image_source.clone();
    let importing = imported.clone();
    let is_import = imported.is_some();
    let check_command = data.check.as_ref().map(|c| c.command.clone());
    let try_href = format!("/try/{slug}");
    let can_cancel = data.can_cancel;
    view! {
        <section class="build-page">
            <p class="crumbs"><a href=project_href.clone()>{data.project_name.clone()}</a>" › build "<code>{id.clone()}</code></p>
            <div class="build-head">
                <h1>"Build of "{data.project_name.clone()}</h1>
                <span id="build-state" class=move || format!("state-badge {}", state.get())>{move || state_label(state.get())}</span>
            </div>
            <div class="progress" role="progressbar" aria-label="Build progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow=percent>
                <div class="progress-bar" style=move || format!("width: {}%", percent())></div>
            </div>
            <p class="progress-text" id="build-step" aria-live="polite">{move || {
                let (n, m) = (step.get(), steps.get());
                match state.get() {
                    BuildState::Queued => queue_line(queue_position.get(), waited.get(), estimate.get()),
                    BuildState::Pushing if importing.is_some() => "Imported and verified; pulling it into the sandbox engine…".to_string(),
                    BuildState::Pushing => "All steps done; pushing the image…".to_string(),
                    BuildState::Checking => match &check_command {
                        Some(c) => format!("Built and pushed; running the smoke check in a sandbox: {c}"),
                        None => "Built and pushed; running the smoke check in a sandbox…".to_string(),
                    },
                    BuildState::Succeeded if importing.is_some() => "Done: imported, verified and pushed.".to_string(),
                    BuildState::Succeeded => format!("Done: {m} steps built and pushed."),
                    BuildState::Running if importing.is_some() => format!("Importing {}…", importing.clone().unwrap_or_default()),
                    _ if n > 0 => format!("Step {n} of {m}"),
                    _ => "Starting…".to_string(),
                }
            }}</p>
            <Show when=move || error.read().is_some()>
                // The step's own error lines and the recipe's line first; the engine's words last.
                <div class="error build-error" id="build-error" role="alert">{move || {
                    let (head, engine) = failure_parts(&error.get().unwrap_or_default());
                    view! {
                        {head.into_iter().map(|l| {
                            let class = if l.starts_with("line ") || l.starts_with("in: ") { "failure-line" } else { "failure-lines" };
                            view! { <p class=class>{l}</p> }
                        }).collect_view()}
                        {engine.map(|e| view! { <small class="failure-engine" id="build-error-engine">{e}</small> })}
                    }
                }}</div>
            </Show>
            <div class="build-actions">
                <Show when=move || state.get() == BuildState::Succeeded>
                    <a class="btn primary" id="open-project" href=project_href.clone()>"Open the project"</a>
                    <a class="btn" href=try_href.clone()>"Try it now"</a>
                </Show>
                <Show when=move || can_cancel && !state.get().is_finished()>
                    <button class="btn danger" id="cancel" on:click=cancel.clone()>"Cancel build"</button>
                </Show>
                <span class="muted">{move || cancel_msg.get()}</span>
            </div>
            <pre class="build-log" id="build-log" tabindex="0" aria-label="Build log" node_ref=log_ref>{move || log.get()}</pre>
            <Show when=move || can_cancel && state.get() == BuildState::Failed && !is_import>
                <RetryEditor slug=retry_slug.clone() dockerfile=retry_dockerfile.clone() check=retry_check.clone()/>
            </Show>
            {data.check.clone().map(|c| view! {
                <p class="check-used" id="build-check">"Smoke check: "<code>{c.command.clone()}</code>
                    {(!c.expect.is_empty()).then(|| view! { " must print "<code>{c.expect.clone()}</code> })}
                </p>
            })}
            {match imported {
                Some(reference) => view! {
                    <p class="image-used" id="build-source">"Imported from "<code>{reference}</code>" (linux/amd64, every blob checked against its sha256 digest)"</p>
                }.into_any(),
                None => view! {
                    <details class="dockerfile-used">
                        <summary>{format!("The Dockerfile built ({})", if data.source_kind == "script" { "converted from an install script" } else { "as submitted" })}</summary>
                        <pre class="code">{data.dockerfile.clone()}</pre>
                    </details>
                }.into_any(),
            }}
        </section>
    }
}

/// A failed build's "Edit and retry": the Dockerfile it built, editable, and a new build of it
/// (`POST /api/projects/{slug}/builds`), whose page opens next.
#[component]
fn RetryEditor(
    slug: String,
    dockerfile: String,
    check: Option<crate::model::SmokeCheck>,
) -> impl IntoView {
    let text = RwSignal::new(dockerfile);
    let (command, expect) = check.map(|c| (c.command, c.expect)).unwrap_or_default();
    let check_command = RwSignal::new(command);
    let check_expect = RwSignal::new(expect);
    let message = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let retry = move |_| {
        let slug = slug.clone();
        busy.set(true);
        message.set(String::new());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let url = format!("/api/projects/{slug}/builds");
                let request = crate::model::RebuildRequest {
                    dockerfile: text.get_untracked(),
                    check_command: check_command.get_untracked(),
                    check_expect: check_expect.get_untracked(),
                };
                match crate::client::send("POST", &url, &request).await {
                    Ok(r) if r.status == 202 => {
                        if let Some(next) = r.json::<crate::model::BuildAccepted>() {
                            crate::client::go(&next.build_url);
                            return;
                        }
                    }
                    Ok(r) => {
                        let problems = crate::pages::publish::problems_of(&r.body);
                        let detail: Vec<String> = problems
                            .iter()
                            .map(|p| match p.line {
                                Some(l) => format!("line {l}: {}", p.message),
                                None => p.message.clone(),
                            })
                            .collect();
                        message.set(if detail.is_empty() {
                            r.message()
                        } else {
                            detail.join(" · ")
                        });
                    }
                    Err(e) => message.set(e),
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (slug, text, check_command, check_expect);
            busy.set(false);
        });
    };
    view! {
        <details class="retry" id="edit-retry" open>
            <summary>"Edit and retry"</summary>
            <p class="hint">"Fix the Dockerfile or the smoke check (the log above says where it failed) and build again."</p>
            <textarea id="retry-dockerfile" class="code" rows="10" spellcheck="false" aria-label="Dockerfile" bind:value=text></textarea>
            <div class="form-grid">
                <label>"Smoke check command"
                    <input id="retry-check-command" class="code" spellcheck="false" bind:value=check_command/>
                </label>
                <label>"Its output must contain"
                    <input id="retry-check-expect" class="code" spellcheck="false" bind:value=check_expect/>
                </label>
            </div>
            <Show when=move || !message.read().is_empty()>
                <p class="form-message" id="retry-message">{move || message.get()}</p>
            </Show>
            <button class="btn primary" id="retry" disabled=move || busy.get() on:click=retry>"Build again"</button>
        </details>
    }
}
