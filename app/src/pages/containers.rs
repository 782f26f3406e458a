use crate::api::my_containers;
use crate::model::{clock, human_duration, EndReason, SandboxState};
use leptos::prelude::*;
use leptos_meta::Title;

/// My Containers: the visitor's sandboxes, newest first, with Try again.
#[component]
pub fn ContainersPage() -> impl IntoView {
    let rows = Resource::new(|| (), |_| my_containers());
    view! {
        <Title text="My containers"/>
        <section class="section">
            <h1>"My containers"</h1>
            <p class="muted">"Every sandbox you started. One runs at a time; it ends when its time is up or when you stop it."</p>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        Ok(rows) if rows.is_empty() => view! {
                            <p class="empty">"You haven't tried anything yet. "<a href="/">"Find a project"</a>" and press Try."</p>
                        }.into_any(),
                        Ok(rows) => view! {
                            <table class="table">
                                <thead><tr><th>"Project"</th><th>"Started"</th><th>"Duration"</th><th>"Status"</th><th>"Time left"</th><th></th></tr></thead>
                                <tbody>
                                {rows.into_iter().map(|r| {
                                    let status = match r.state {
                                        SandboxState::Ready => "running",
                                        s => s.as_str(),
                                    };
                                    let why = r.end_reason.map(EndReason::sentence);
                                    let running = r.state.is_running();
                                    let id = r.id.clone();
                                    view! {
                                        <tr data-sandbox=r.id.clone()>
                                            <td>{if r.project.is_empty() {
                                                view! { <span class="muted deleted-project">{r.project_name.clone()}</span> }.into_any()
                                            } else {
                                                view! { <a href=format!("/p/{}", r.project)>{r.project_name.clone()}</a> }.into_any()
                                            }}</td>
                                            <td title=r.started_at.clone()>{format!("{} ago", human_duration(r.started_ago_secs))}</td>
                                            <td>{human_duration(r.duration_secs)}</td>
                                            <td><span class="status" class:live=running>{status}</span>
                                                {why.map(|w| view! { " "<span class="muted end-reason">{w}</span> })}
                                            </td>
                                            <td>{r.seconds_left.map(clock).unwrap_or_default()}</td>
                                            <td class="row-actions">
                                                {(!r.project.is_empty()).then(|| view! {
                                                    <a class="btn small" href=format!("/try/{}", r.project)>{if running { "Open" } else { "Try again" }}</a>
                                                })}
                                                {running.then(|| view! { <StopButton id=id/> })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Stops a running sandbox from the list (after asking), then reloads the list.
#[component]
fn StopButton(id: String) -> impl IntoView {
    let stop = move |_| {
        let id = id.clone();
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let sure = web_sys::window()
                    .and_then(|w| {
                        w.confirm_with_message("Stop this sandbox? Everything in it is gone.")
                            .ok()
                    })
                    .unwrap_or(false);
                if sure {
                    let _ =
                        crate::client::call("DELETE", &format!("/api/sandboxes/{id}"), None).await;
                    crate::client::go("/containers");
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = id;
        });
    };
    view! { <button class="btn small danger" on:click=stop>"Stop"</button> }
}
