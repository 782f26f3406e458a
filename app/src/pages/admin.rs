//! Admin: live numbers, the featured banner, every running sandbox (CPU, memory, Stop), users
//! (promote, ban) and projects (hide, rebuild, delete). Data comes from `/api/admin/*`, which
//! answers 403 to everyone else; numbers and sandboxes refresh every 5 seconds.
use crate::api::load_me;
use crate::model::{
    AdminOverview, AdminProjects, AdminSandbox, AdminUsers, FeaturedSetting, ProjectChange,
    ProjectStatus, Role, UserChange,
};
use leptos::prelude::*;
use leptos_meta::Title;

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

/// An API request type as the body of `act`.
fn to_json<T: serde::Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

fn mb(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!("{:.0} MB", b as f64 / 1_048_576.0))
        .unwrap_or_else(|| "–".into())
}

/// "Page 2 of 7" with Previous / Next, for a list of `total` rows in pages of `size`.
#[component]
pub fn Pager(
    id: &'static str,
    page: RwSignal<u64>,
    total: Signal<u64>,
    size: Signal<u64>,
    on_change: Callback<()>,
) -> impl IntoView {
    let pages = move || total.get().div_ceil(size.get().max(1)).max(1);
    view! {
        <Show when=move || { pages() > 1 }>
            <nav class="pager" id=id aria-label="Pages">
                <button class="btn small" type="button" disabled={move || page.get() == 0}
                    on:click=move |_| { page.update(|p| *p = p.saturating_sub(1)); on_change.run(()); }>"Previous"</button>
                <span>{move || format!("Page {} of {} · {} in all", page.get() + 1, pages(), total.get())}</span>
                // Braces: a bare `>=` in an attribute ends the tag for the macro, and the rest of
                // the button became its text.
                <button class="btn small" type="button" disabled={move || page.get() + 1 >= pages()}
                    on:click=move |_| { page.update(|p| *p += 1); on_change.run(()); }>"Next"</button>
            </nav>
        </Show>
    }
}

#[component]
fn Admin() -> impl IntoView {
    let overview = RwSignal::new(AdminOverview::default());
    let sandboxes = RwSignal::new(Vec::<AdminSandbox>::new());
    let pool = RwSignal::new(Vec::<crate::model::PoolShare>::new());
    let runtime = RwSignal::new(String::new());
    let nodes = RwSignal::new(None::<Vec<crate::model::AdminNode>>);
    let users = RwSignal::new(AdminUsers::default());
    let projects = RwSignal::new(AdminProjects::default());
    let review = RwSignal::new(AdminProjects::default());
    let user_q = RwSignal::new(String::new());
    let project_q = RwSignal::new(String::new());
    let user_page = RwSignal::new(0u64);
    let project_page = RwSignal::new(0u64);
    let message = RwSignal::new(String::new());
    let feat_slug = RwSignal::new(String::new());
    let feat_line = RwSignal::new(String::new());

    let load = move |what: &'static str| {
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                use crate::client::call;
                let enc = crate::url::urlencode;
                match what {
                    "live" => {
                        if let Some(o) = call("GET", "/api/admin/overview", None)
                            .await
                            .ok()
                            .and_then(|r| r.json::<AdminOverview>())
                        {
                            if feat_slug.get_untracked().is_empty() {
                                let f = o.featured.clone().unwrap_or_default();
                                feat_slug.set(f.slug);
                                feat_line.set(f.line);
                            }
                            overview.set(o);
                        }
                        if let Some(s) = call("GET", "/api/admin/sandboxes", None)
                            .await
                            .ok()
                            .and_then(|r| r.json::<crate::model::AdminSandboxes>())
                        {
                            sandboxes.set(s.sandboxes);
                            pool.set(s.pool);
                            runtime.set(s.runtime);
                            nodes.set(s.nodes);
                        }
                    }
                    "users" => {
                        let url = format!(
                            "/api/admin/users?q={}&page={}",
                            enc(&user_q.get_untracked()),
                            user_page.get_untracked()
                        );
                        if let Some(u) = call("GET", &url, None)
                            .await
                            .ok()
                            .and_then(|r| r.json::<AdminUsers>())
                        {
                            users.set(u);
                        }
                    }
                    "review" => {
                        if let Some(p) = call("GET", "/api/admin/review", None)
                            .await
                            .ok()
                            .and_then(|r| r.json::<AdminProjects>())
                        {
                            review.set(p);
                        }
                    }
                    _ => {
                        let url = format!(
                            "/api/admin/projects?q={}&page={}",
                            enc(&project_q.get_untracked()),
                            project_page.get_untracked()
                        );
                        if let Some(p) = call("GET", &url, None)
                            .await
                            .ok()
                            .and_then(|r| r.json::<AdminProjects>())
                        {
                            projects.set(p);
                        }
                    }
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = what;
        });
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        load("users");
        load("projects");
        load("review");
        leptos::task::spawn_local(async move {
            loop {
                load("live");
                crate::client::sleep_ms(5000).await;
            }
        });
    });
    // One admin action: call, show the server's sentence on failure, refresh what it changed.
    let act = move |method: &'static str,
                    url: String,
                    body: Option<serde_json::Value>,
                    refresh: &'static str| {
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
                // Approving, hiding or deleting a project changes the review list too.
                if refresh == "projects" {
                    load("review");
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (method, url, body, refresh);
        });
    };
    let number = move |id: &'static str,
                       label: &'static str,
                       value: fn(&AdminOverview) -> String| {
        view! { <div class="stat"><b id=format!("stat-{id}")>{move || value(&overview.read())}</b><span>{label}</span></div> }
    };
    view! {
        <h1>"Admin"</h1>
        <div class="stats">
            {number("running", "running sandboxes", |o| o.running.to_string())}
            {number("queue", "waiting for a sandbox", |o| o.queue.to_string())}
            {number("tries_today", "tries today", |o| o.tries_today.to_string())}
            {number("builds_running", "builds running", |o| o.builds_running.to_string())}
            {number("builds_queued", "builds queued", |o| o.builds_queued.to_string())}
            {number("users", "accounts", |o| o.users.to_string())}
        </div>
        <Show when=move || !message.read().is_empty()>
            <p class="form-message" id="admin-message" role="alert">{move || message.get()}</p>
        </Show>
        <div class="panel">
            <h2>"Featured banner"</h2>
            <p class="muted">"Shown at the top of the home page: one live project and a line about it."</p>
            <form class="inline-form labelled" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let setting = FeaturedSetting { slug: feat_slug.get_untracked(), line: feat_line.get_untracked() };
                act("PUT", "/api/admin/featured".into(), to_json(&setting), "live");
            }>
                <label for="featured-slug">"Project"
                    <input id="featured-slug" placeholder="slug, e.g. ripgrep" bind:value=feat_slug/>
                </label>
                <label for="featured-line" class="grow">"Line"
                    <input id="featured-line" placeholder="one line, at most 140 characters" maxlength="140" bind:value=feat_line/>
                </label>
                <button class="btn" type="submit">"Set banner"</button>
                <button class="btn" type="button" on:click=move |_| {
                    feat_slug.set(String::new());
                    feat_line.set(String::new());
                    act("DELETE", "/api/admin/featured".into(), None, "live");
                }>"Clear"</button>
            </form>
        </div>
        <Show when=move || nodes.read().is_some()>
            <div class="panel" id="admin-nodes-panel">
                <h2>"Sandbox nodes"</h2>
                <p class="muted">"The machines of the Swarm that run sandboxes. A drained node takes no new sandboxes; the ones running on it keep running to their end. A node the Swarm reports down loses its sandboxes, and their visitors are told so."</p>
                <table class="table" id="admin-nodes">
                    <thead><tr><th>"Node"</th><th>"Address"</th><th>"State"</th><th>"Sandboxes"</th><th>"Capacity"</th><th>"Machine"</th><th></th></tr></thead>
                    <tbody>
                        {move || {
                            let list = nodes.get().unwrap_or_default();
                            if list.is_empty() {
                                return view! { <tr><td colspan="7" class="muted">"The Swarm lists no sandbox node (label trythis.sandbox=true)."</td></tr> }.into_any();
                            }
                            list.into_iter().map(|n| {
                                let drained = n.availability != "active";
                                let name = n.name.clone();
                                let state = match (n.state.as_str(), n.availability.as_str(), n.placeable) {
                                    ("ready", "active", true) => "ready".to_string(),
                                    ("ready", "active", false) => "ready · engine not answering".to_string(),
                                    ("ready", a, _) => format!("ready · {a}ed"),
                                    (s, _, _) => s.to_string(),
                                };
                                let state_class = if n.placeable { "node-state ok" } else { "node-state off" };
                                view! {
                                    <tr data-node=n.name.clone()>
                                        <td><strong>{n.name.clone()}</strong></td>
                                        <td><code>{n.address.clone()}</code></td>
                                        <td><span class=state_class>{state}</span></td>
                                        <td>{n.sandboxes}</td>
                                        <td>{format!("{} slots", n.slots)}</td>
                                        <td>{format!("{:.0} CPUs · {} GiB", n.cpus, n.memory_bytes / (1 << 30))}</td>
                                        <td><button class="btn small" data-action=if drained { "activate" } else { "drain" } on:click=move |_| {
                                            let action = if drained { "activate" } else { "drain" };
                                            #[cfg(feature = "hydrate")]
                                            {
                                                let ask = format!("Drain {name}? It takes no new sandboxes until you activate it again.");
                                                if !drained && !crate::client::confirm(&ask) { return; }
                                            }
                                            act("POST", format!("/api/admin/nodes/{name}/{action}"), None, "live")
                                        }>{if drained { "Activate" } else { "Drain" }}</button></td>
                                    </tr>
                                }
                            }).collect_view().into_any()
                        }}
                    </tbody>
                </table>
            </div>
        </Show>
        <div class="panel">
            <h2>"Running sandboxes"</h2>
            <table class="table" id="admin-sandboxes">
                <thead><tr><th>"Owner"</th><th>"Project"</th>{move || nodes.read().is_some().then(|| view! { <th>"Node"</th> })}<th>"Age"</th><th>"Left"</th><th>"CPU"</th><th>"Memory"</th><th></th></tr></thead>
                <tbody>
                    {move || {
                        let rows = sandboxes.get();
                        // The Node column only on the cluster runtime.
                        let on_nodes = nodes.read().is_some();
                        if rows.is_empty() {
                            return view! { <tr><td colspan="8" class="muted">"No sandbox is running."</td></tr> }.into_any();
                        }
                        rows.into_iter().map(|r| {
                            let id = r.id.clone();
                            let (owner, project) = (r.owner.clone(), r.project.clone());
                            #[cfg(not(feature = "hydrate"))]
                            let _ = (&owner, &project);
                            let cpu = r.cpu_percent.map(|c| format!("{c:.1} %")).unwrap_or_else(|| "–".into());
                            view! {
                                <tr data-sandbox=r.id.clone()>
                                    <td>{r.owner.clone()}</td>
                                    <td><a href=format!("/p/{}", r.project)>{r.project.clone()}</a></td>
                                    {on_nodes.then(|| view! { <td>{r.node.clone().unwrap_or_else(|| "this host".into())}</td> })}
                                    <td>{crate::model::human_duration(r.age_secs)}</td>
                                    <td>{crate::model::human_duration(r.seconds_left)}</td>
                                    <td>{cpu}</td>
                                    <td>{mb(r.memory_bytes)}" / "{mb(r.memory_limit_bytes)}</td>
                                    <td><button class="btn small danger" data-action="stop" on:click=move |_| {
                                        #[cfg(feature = "hydrate")]
                                        {
                                            let ask = format!("Stop the sandbox of {owner} ({project})? Everything in it is gone.");
                                            if !crate::client::confirm(&ask) { return; }
                                        }
                                        act("DELETE", format!("/api/admin/sandboxes/{id}"), None, "live")
                                    }>"Stop"</button></td>
                                </tr>
                            }
                        }).collect_view().into_any()
                    }}
                </tbody>
            </table>
            <p class="muted" id="admin-pool">
                {move || {
                    let shares = pool.get();
                    if shares.is_empty() {
                        return "Warm pool: empty. It keeps pre-started sandboxes for the projects tried in the last five minutes.".to_string();
                    }
                    let list: Vec<String> = shares.iter().map(|p| format!("{} {}", p.project, p.members)).collect();
                    format!("Warm pool, waiting for visitors: {}", list.join(", "))
                }}
            </p>
            <p class="muted" id="admin-runtime">
                {move || {
                    let r = runtime.get();
                    if r.is_empty() { String::new() } else { format!("Sandboxes run under {r}.") }
                }}
            </p>
        </div>
        <div class="panel">
            <h2>"Users"</h2>
            <form class="inline-form" role="search" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                user_page.set(0);
                load("users");
            }>
                <label for="user-q" class="sr-only">"Search users"</label>
                <input id="user-q" class="grow" placeholder="Search by email or name" bind:value=user_q/>
                <button class="btn" type="submit">"Search"</button>
            </form>
            <table class="table" id="admin-users">
                <thead><tr><th>"Email"</th><th>"Name"</th><th>"Role"</th><th>"Status"</th><th>"Joined"</th><th></th></tr></thead>
                <tbody>
                    {move || users.get().users.into_iter().map(|u| {
                        let is_admin = u.role == Role::Admin;
                        let banned = u.banned;
                        let (id, id2) = (u.id, u.id);
                        view! {
                            <tr data-user=u.email.clone()>
                                <td>{u.email.clone()}</td><td>{u.name.clone()}</td><td>{u.role.as_str()}</td>
                                <td>{if banned { "banned" } else { "active" }}</td>
                                <td>{u.created_at.chars().take(10).collect::<String>()}</td>
                                <td class="actions">
                                    <button class="btn small" on:click=move |_| {
                                        let change = UserChange { role: Some(if is_admin { Role::User } else { Role::Admin }), banned: None };
                                        act("PATCH", format!("/api/admin/users/{id}"), to_json(&change), "users")
                                    }>{if is_admin { "Make user" } else { "Make admin" }}</button>
                                    <button class="btn small danger" data-action="ban" on:click=move |_| {
                                        let change = UserChange { role: None, banned: Some(!banned) };
                                        act("PATCH", format!("/api/admin/users/{id2}"), to_json(&change), "users")
                                    }>{if banned { "Unban" } else { "Ban" }}</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <Pager id="users-pager" page=user_page
                total=Signal::derive(move || users.read().total)
                size=Signal::derive(move || users.read().page_size)
                on_change=Callback::new(move |_| load("users"))/>
        </div>
        <div class="panel" id="admin-review-panel">
            <h2>"Waiting for review"</h2>
            <p class="muted">"New maintainers' projects stay out of Explore, search and the home page until one is approved here (their link, Try and badge work meanwhile). After an approval, the maintainer's next projects are listed at once."</p>
            <table class="table" id="admin-review">
                <thead><tr><th>"Project"</th><th>"Status"</th><th>"Maintainer"</th><th>"Published"</th><th></th></tr></thead>
                <tbody>
                    {move || {
                        let rows = review.get().projects;
                        if rows.is_empty() {
                            return view! { <tr><td colspan="5" class="muted">"Nothing is waiting for review."</td></tr> }.into_any();
                        }
                        rows.into_iter().map(|p| {
                            let slug = p.slug.clone();
                            view! {
                                <tr data-project=p.slug.clone()>
                                    <td><a href=format!("/p/{}", p.slug)>{p.name.clone()}</a></td>
                                    <td>{p.status.as_str()}</td>
                                    <td>{p.maintainer.clone().unwrap_or_else(|| "site".into())}</td>
                                    <td>{p.updated_at.chars().take(10).collect::<String>()}</td>
                                    <td class="actions">
                                        <button class="btn small primary" data-action="approve" on:click=move |_| {
                                            act("POST", format!("/api/admin/projects/{slug}/approve"), None, "projects")
                                        }>"Approve"</button>
                                    </td>
                                </tr>
                            }
                        }).collect_view().into_any()
                    }}
                </tbody>
            </table>
        </div>
        <div class="panel">
            <h2>"Projects and images"</h2>
            <form class="inline-form" role="search" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                project_page.set(0);
                load("projects");
            }>
                <label for="project-q" class="sr-only">"Search projects"</label>
                <input id="project-q" class="grow" placeholder="Search by slug or name" bind:value=project_q/>
                <button class="btn" type="submit">"Search"</button>
            </form>
            <table class="table" id="admin-projects">
                <thead><tr><th>"Project"</th><th>"Status"</th><th>"Maintainer"</th><th>"Tries"</th><th>"Image"</th><th></th></tr></thead>
                <tbody>
                    {move || projects.get().projects.into_iter().map(|p| {
                        let hidden = p.status == ProjectStatus::Hidden;
                        let (a, b, c) = (p.slug.clone(), p.slug.clone(), p.slug.clone());
                        let image = p.image.clone().unwrap_or_default();
                        let short = image.rsplit_once('@').map(|(_, d)| d.chars().take(19).collect::<String>()).unwrap_or_default();
                        view! {
                            <tr data-project=p.slug.clone()>
                                <td><a href=format!("/p/{}", p.slug)>{p.name.clone()}</a></td>
                                <td>{p.status.as_str()}{(!p.listed).then_some(" · unlisted")}</td>
                                <td>{p.maintainer.clone().unwrap_or_else(|| "site".into())}</td>
                                <td>{p.tries}</td>
                                <td title=image><code>{short}</code>" "{p.image_size.map(crate::model::human_size).unwrap_or_else(|| "–".into())}</td>
                                <td class="actions">
                                    <button class="btn small" on:click=move |_| {
                                        act("PATCH", format!("/api/admin/projects/{a}"), to_json(&ProjectChange { hidden: !hidden }), "projects")
                                    }>{if hidden { "Show" } else { "Hide" }}</button>
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
            <Pager id="projects-pager" page=project_page
                total=Signal::derive(move || projects.read().total)
                size=Signal::derive(move || projects.read().page_size)
                on_change=Callback::new(move |_| load("projects"))/>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The users' pager as the server renders it: a real Next button, on page 1.
    #[test]
    fn the_pager_renders_its_buttons_on_page_one() {
        let owner = Owner::new();
        let html = owner.with(|| {
            let page = RwSignal::new(0u64);
            view! {
                <Pager id="users-pager" page=page total=Signal::derive(|| 60u64)
                    size=Signal::derive(|| 50u64) on_change=Callback::new(|_| ())/>
            }
            .to_html()
        });
        assert!(html.contains(">Next</button>"), "{html}");
        assert!(
            !html.contains("click"),
            "macro text leaked into the page: {html}"
        );
        assert!(html.contains("Page 1 of 2 · 60 in all"), "{html}");
        // Page 1: Previous is disabled, Next is not.
        let next = html.split("<button").nth(2).unwrap_or_default();
        assert!(!next.contains("disabled"), "{html}");
        let previous = html.split("<button").nth(1).unwrap_or_default();
        assert!(previous.contains("disabled"), "{html}");
    }
}
