use crate::api::my_containers;
use crate::model::human_duration;
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
                                <thead><tr><th>"Project"</th><th>"Started"</th><th>"Duration"</th><th>"Status"</th><th></th></tr></thead>
                                <tbody>
                                {rows.into_iter().map(|r| {
                                    let status = match (&r.state[..], &r.end_reason) {
                                        ("ready", _) => "running".to_string(),
                                        (s, Some(reason)) => format!("{s} ({reason})"),
                                        (s, None) => s.to_string(),
                                    };
                                    let running = r.state == "ready" || r.state == "starting";
                                    view! {
                                        <tr data-sandbox=r.id.clone()>
                                            <td><a href=format!("/p/{}", r.project)>{r.project.clone()}</a></td>
                                            <td>{r.started_at}</td>
                                            <td>{human_duration(r.duration_secs)}</td>
                                            <td><span class="status" class:live=running>{status}</span></td>
                                            <td><a class="btn small" href=format!("/try/{}", r.project)>{if running { "Open" } else { "Try again" }}</a></td>
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
