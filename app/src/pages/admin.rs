//! Admin: live numbers, the featured banner, every running sandbox (CPU, memory, Stop), users
//! (promote, ban) and projects (hide, rebuild, delete). Data comes from `/api/admin/*`, which
//! answers 403 to everyone else; numbers and sandboxes refresh every 5 seconds.
use crate::api::load_me;
use leptos::prelude::*;
use leptos_meta::Title;
use serde_json::Value;

#[component]
pub fn AdminPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| load_me());
    view! {
        <Title text="Admin"/>
        <section class="section admin">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(m) if m.is_admin => view! { <Admin/> }.into_any(),
                        Ok(_) => view! {
                            <div class="empty-state" id="admin-forbidden">
                                <h2>"Admins only"</h2>
                                <p>"This page is for the site's admins."</p>
                            </div>
                        }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn mb(v: &Value) -> String {
    v.as_u64()
        .map(|b| format!("{:.0} MB", b as f64 / 1_048_576.0))
        .unwrap_or_else(|| "–".into())
}

#[component]
fn Admin() -> impl IntoView {
    let overview = RwSignal::new(Value::Null);
    let sandboxes = RwSignal::new(Vec::<Value>::new());
    let users = RwSignal::new(Vec::<Value>::new());
    let projects = RwSignal::new(Vec::<Value>::new());
    let user_q = RwSignal::new(String::new());
    let project_q = RwSignal::new(String::new());
    let message = RwSignal::new(String::new());
    let feat_slug = RwSignal::new(String::new());
    let feat_line = RwSignal::new(String::new());

    #[cfg(feature = "hydrate")]
    let load = move |what: &'static str| {
        leptos::task::spawn_local(async move {
            use crate::client::call;
            let enc = crate::url::urlencode;
            match what {
                "live" => {
                    if let Ok(r) = call("GET", "/api/admin/overview", None).await {
                        if feat_slug.get_untracked().is_empty() {
                            feat_slug.set(s(&r.body["featured"], "slug"));
                            feat_line.set(s(&r.body["featured"], "line"));
                        }
                        overview.set(r.body);
                    }
                    if let Ok(r) = call("GET", "/api/admin/sandboxes", None).await {
                        sandboxes.set(r.body["sandboxes"].as_array().cloned().unwrap_or_default());
                    }
                }
                "users" => {
                    let url = format!("/api/admin/users?q={}", enc(&user_q.get_untracked()));
                    if let Ok(r) = call("GET", &url, None).await {
                        users.set(r.body["users"].as_array().cloned().unwrap_or_default());
                    }
                }
                _ => {
                    let url = format!("/api/admin/projects?q={}", enc(&project_q.get_untracked()));
                    if let Ok(r) = call("GET", &url, None).await {
                        projects.set(r.body["projects"].as_array().cloned().unwrap_or_default());
                    }
                }
            }
        });
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        load("users");
        load("projects");
        leptos::task::spawn_local(async move {
            loop {
                load("live");
                crate::client::sleep_ms(5000).await;
            }
        });
    });
    // One admin action: call, show the server's sentence on failure, refresh what it changed.
    let act =
        move |method: &'static str, url: String, body: Option<Value>, refresh: &'static str| {
            leptos::task::spawn_local(async move {
                #[cfg(feature = "hydrate")]
                {
                    match crate::client::call(method, &url, body).await {
                        Ok(r) if r.status < 300 => message.set(String::new()),
                        Ok(r) => message.set(r.message()),
                        Err(e) => message.set(e),
                    }
                    load(refresh);
                    if refresh != "live" {
                        load("live");
                    }
                }
                #[cfg(not(feature = "hydrate"))]
                let _ = (method, url, body, refresh);
            });
        };
    let number = move |k: &'static str, label: &'static str| {
        view! { <div class="stat"><b id=format!("stat-{k}")>{move || s(&overview.read(), k)}</b><span>{label}</span></div> }
    };
    view! {
        <h1>"Admin"</h1>
        <div class="stats">
            {number("running", "running sandboxes")}
            {number("queue", "waiting for a sandbox")}
            {number("tries_today", "tries today")}
            {number("builds_running", "builds running")}
            {number("builds_queued", "builds queued")}
            {number("users", "accounts")}
        </div>
        <Show when=move || !message.read().is_empty()>
            <p class="form-message" id="admin-message" role="alert">{move || message.get()}</p>
        </Show>
        <div class="panel">
            <h2>"Featured banner"</h2>
            <form class="inline-form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                act("PUT", "/api/admin/featured".into(), Some(serde_json::json!({"slug": feat_slug.get_untracked(), "line": feat_line.get_untracked()})), "live");
            }>
                <input id="featured-slug" placeholder="project slug" bind:value=feat_slug/>
                <input id="featured-line" class="grow" placeholder="one line, at most 140 characters" maxlength="140" bind:value=feat_line/>
                <button class="btn" type="submit">"Set banner"</button>
                <button class="btn" type="button" on:click=move |_| {
                    feat_slug.set(String::new());
                    feat_line.set(String::new());
                    act("DELETE", "/api/admin/featured".into(), None, "live");
                }>"Clear"</button>
            </form>
        </div>
        <div class="panel">
            <h2>"Running sandboxes"</h2>
            <table class="table" id="admin-sandboxes">
                <thead><tr><th>"Owner"</th><th>"Project"</th><th>"Age"</th><th>"Left"</th><th>"CPU"</th><th>"Memory"</th><th></th></tr></thead>
                <tbody>
                    {move || {
                        let rows = sandboxes.get();
                        if rows.is_empty() {
                            return view! { <tr><td colspan="7" class="muted">"No sandbox is running."</td></tr> }.into_any();
                        }
                        rows.into_iter().map(|r| {
                            let id = s(&r, "id");
                            let row_id = id.clone();
                            let cpu = r["cpu_percent"].as_f64().map(|c| format!("{c:.1} %")).unwrap_or_else(|| "–".into());
                            view! {
                                <tr data-sandbox=row_id>
                                    <td>{s(&r, "owner")}</td>
                                    <td><a href=format!("/p/{}", s(&r, "project"))>{s(&r, "project")}</a></td>
                                    <td>{crate::model::human_duration(r["age_secs"].as_i64().unwrap_or(0))}</td>
                                    <td>{crate::model::human_duration(r["seconds_left"].as_i64().unwrap_or(0))}</td>
                                    <td>{cpu}</td>
                                    <td>{mb(&r["memory_bytes"])}" / "{mb(&r["memory_limit_bytes"])}</td>
                                    <td><button class="btn small danger" on:click=move |_| act("DELETE", format!("/api/admin/sandboxes/{id}"), None, "live")>"Stop"</button></td>
                                </tr>
                            }
                        }).collect_view().into_any()
                    }}
                </tbody>
            </table>
        </div>
        <div class="panel">
            <h2>"Users"</h2>
            <form class="inline-form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                #[cfg(feature = "hydrate")]
                load("users");
            }>
                <input id="user-q" class="grow" placeholder="Search by email or name" bind:value=user_q/>
                <button class="btn" type="submit">"Search"</button>
            </form>
            <table class="table" id="admin-users">
                <thead><tr><th>"Email"</th><th>"Name"</th><th>"Role"</th><th>"Status"</th><th>"Joined"</th><th></th></tr></thead>
                <tbody>
                    {move || users.get().into_iter().map(|u| {
                        let id = s(&u, "id");
                        let is_admin = s(&u, "role") == "admin";
                        let banned = u["banned"].as_bool().unwrap_or(false);
                        let id2 = id.clone();
                        view! {
                            <tr data-user=s(&u, "email")>
                                <td>{s(&u, "email")}</td><td>{s(&u, "name")}</td><td>{s(&u, "role")}</td>
                                <td>{if banned { "banned" } else { "active" }}</td>
                                <td>{s(&u, "created_at").chars().take(10).collect::<String>()}</td>
                                <td class="actions">
                                    <button class="btn small" on:click=move |_| act("PATCH", format!("/api/admin/users/{id}"),
                                        Some(serde_json::json!({"role": if is_admin { "user" } else { "admin" }})), "users")>
                                        {if is_admin { "Make user" } else { "Make admin" }}</button>
                                    <button class="btn small danger" data-action="ban" on:click=move |_| act("PATCH", format!("/api/admin/users/{id2}"),
                                        Some(serde_json::json!({"banned": !banned})), "users")>
                                        {if banned { "Unban" } else { "Ban" }}</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <div class="panel">
            <h2>"Projects and images"</h2>
            <form class="inline-form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                #[cfg(feature = "hydrate")]
                load("projects");
            }>
                <input id="project-q" class="grow" placeholder="Search by slug or name" bind:value=project_q/>
                <button class="btn" type="submit">"Search"</button>
            </form>
            <table class="table" id="admin-projects">
                <thead><tr><th>"Project"</th><th>"Status"</th><th>"Maintainer"</th><th>"Tries"</th><th>"Image"</th><th></th></tr></thead>
                <tbody>
                    {move || projects.get().into_iter().map(|p| {
                        let slug = s(&p, "slug");
                        let hidden = s(&p, "status") == "hidden";
                        let (a, b, c) = (slug.clone(), slug.clone(), slug.clone());
                        let image = s(&p, "image");
                        let short = image.rsplit_once('@').map(|(_, d)| d.chars().take(19).collect::<String>()).unwrap_or_default();
                        view! {
                            <tr data-project=slug.clone()>
                                <td><a href=format!("/p/{slug}")>{s(&p, "name")}</a></td>
                                <td>{s(&p, "status")}</td>
                                <td>{let m = s(&p, "maintainer"); if m.is_empty() { "site".to_string() } else { m }}</td>
                                <td>{s(&p, "tries")}</td>
                                <td title=image><code>{short}</code>" "{mb(&p["image_size"])}</td>
                                <td class="actions">
                                    <button class="btn small" on:click=move |_| act("PATCH", format!("/api/admin/projects/{a}"),
                                        Some(serde_json::json!({"hidden": !hidden})), "projects")>{if hidden { "Show" } else { "Hide" }}</button>
                                    <button class="btn small" on:click=move |_| act("POST", format!("/api/projects/{b}/builds"), None, "projects")>"Rebuild"</button>
                                    <button class="btn small danger" on:click=move |_| {
                                        #[cfg(feature = "hydrate")]
                                        {
                                            let ok = web_sys::window().and_then(|w| w.confirm_with_message(&format!("Delete {c} and its images?")).ok()).unwrap_or(false);
                                            if !ok { return; }
                                        }
                                        act("DELETE", format!("/api/admin/projects/{c}"), None, "projects")
                                    }>"Delete"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
