use crate::api::load_project;
use crate::components::try_panel::TryPanel;
use crate::model::{BuildState, ProjectPage as PageData, ProjectStatus, RecipeView};
use crate::pages::not_found::NotFoundPage;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

/// A project: description on one side, the Try panel (terminal) on the other.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let data = Resource::new(slug, load_project);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let autostart = query.read_untracked().get("try").is_some();
                match data.await {
                    Ok(Some((page, base))) => view! { <ProjectView page base autostart/> }.into_any(),
                    Ok(None) => view! { <NotFoundPage/> }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProjectView(page: PageData, base: String, autostart: bool) -> impl IntoView {
    let p = page.project;
    let slug = p.card.slug.clone();
    let badge_md =
        format!("[![try this in your browser]({base}/badge/{slug}.svg)]({base}/try/{slug})");
    let badge_html = format!(
        "<a href=\"{base}/try/{slug}\"><img src=\"{base}/badge/{slug}.svg\" alt=\"try this in your browser\"></a>"
    );
    let size = p.image_size.map(crate::model::human_size);
    let tries = p.card.tries;
    view! {
        <Title text=p.card.name.clone()/>
        <div class="project-layout">
            // What it is, then Try right under its name (on a phone the first screen), then the
            // facts, the description and the badge snippets. On a wide screen Try is on the right.
            <header class="project-head">
                <div class="crumbs"><a href="/">"Catalogue"</a>" / "<a href=format!("/search?category={}", crate::url::urlencode(&p.card.category))>{p.card.category.clone()}</a></div>
                <h1 class="project-name">{p.card.name.clone()}</h1>
                <p class="lead">{p.card.summary.clone()}</p>
                <div class="meta">
                    <span class="chip cat">{p.card.category.clone()}</span>
                    {p.card.tags.iter().map(|t| view! { <a class="tag" href=format!("/search?q={}", crate::url::urlencode(t))>"#"{t.clone()}</a> }).collect_view()}
                </div>
            </header>
            <TryPanel slug=slug.clone() name=p.card.name.clone() tryable=p.tryable initial=page.sandbox autostart/>
            <article class="project-info">
                <dl class="facts">
                    <div><dt>"Tries"</dt><dd class="try-count">{tries}</dd></div>
                    {size.map(|s| view! { <div><dt>"Image"</dt><dd>{s}</dd></div> })}
                    {p.license.clone().map(|l| view! { <div><dt>"License"</dt><dd>{l}</dd></div> })}
                    <div><dt>"Network"</dt><dd>{if p.egress { "internet access" } else { "offline sandbox" }}</dd></div>
                </dl>
                <div class="links">
                    {p.homepage.clone().map(|u| view! { <a href=u.clone() rel="nofollow noopener" target="_blank">"Homepage ↗"</a> })}
                    {p.repository.clone().map(|u| view! { <a href=u.clone() rel="nofollow noopener" target="_blank">"Source ↗"</a> })}
                    {page.can_maintain.then(|| view! { <a id="edit-project" href=format!("/p/{slug}/edit")>"Edit project"</a> })}
                </div>
                {page.latest_build.clone().filter(|b| page.can_maintain || !b.state.is_finished() || p.status != ProjectStatus::Live).map(|b| {
                    let href = format!("/builds/{}", b.id);
                    let label = match b.state {
                        BuildState::Queued | BuildState::Running | BuildState::Pushing | BuildState::Checking => "A new image is being built",
                        BuildState::Failed => "The latest build failed",
                        BuildState::Cancelled => "The latest build was cancelled",
                        BuildState::Succeeded => "Latest build succeeded",
                    };
                    view! {
                        <div class=format!("build-note {}", b.state) id="latest-build">
                            <span>{label}" · "{b.created_at.clone()}</span>
                            <a href=href>"View the build log"</a>
                            {page.can_maintain.then(|| view! { <RebuildButton slug=slug.clone()/> })}
                        </div>
                    }
                })}
                <div class="description" inner_html=p.description_html.clone()></div>
                {page.recipe.clone().map(|recipe| view! { <Recipe recipe/> })}
                // A badge only for a project people can try: one that never went live would
                // send README readers to a dead end.
                {p.tryable.then(|| view! {
                    <section class="badges" id="badges">
                        <h3>"Add a Try badge to your README"</h3>
                        <img src=format!("/badge/{slug}.svg") alt="try this in your browser"/>
                        <Snippet label="Markdown" text=badge_md/>
                        <Snippet label="HTML" text=badge_html/>
                    </section>
                })}
            </article>
        </div>
    }
}

/// Blocks longer than this many lines start folded.
const LONG_CODE_LINES: usize = 20;

/// How the image a Try starts was made: the Dockerfile of the build that is live, and the install
/// script it was converted from; or the image it was imported from as it is.
#[component]
fn Recipe(recipe: RecipeView) -> impl IntoView {
    let RecipeView {
        kind,
        dockerfile,
        source,
        build_id,
        built_at,
    } = recipe;
    let how = match (kind.as_str(), source) {
        ("image", reference) => view! {
            <p id="recipe-image">"Imported as it is from the image "<code>{reference.unwrap_or_default()}</code></p>
        }
        .into_any(),
        (kind, script) => view! {
            <p class="recipe-note">"Built from this Dockerfile ("<a href=format!("/builds/{build_id}")>"build " {build_id.clone()}</a>", "{built_at}")."</p>
            <CodeBlock id="recipe-dockerfile" label="Dockerfile" text=dockerfile/>
            {script.filter(|_| kind == "script").map(|s| view! {
                <CodeBlock id="recipe-script" label="The install script it was converted from" text=s/>
            })}
        }
        .into_any(),
    };
    view! {
        <section class="recipe" id="recipe" aria-labelledby="recipe-title">
            <h2 id="recipe-title">"Recipe"</h2>
            {how}
        </section>
    }
}

/// A block of code to read (never run: only the description's blocks run in the terminal): long
/// lines scroll inside it, and a long block starts folded.
#[component]
fn CodeBlock(id: &'static str, label: &'static str, text: String) -> impl IntoView {
    let lines = text.lines().count();
    let summary = format!(
        "{label} · {lines} line{}",
        if lines == 1 { "" } else { "s" }
    );
    let short = lines <= LONG_CODE_LINES;
    view! {
        <details class="code-block" id=id open=short>
            <summary>{summary}</summary>
            // Focusable, so a keyboard can scroll a long line sideways.
            <pre tabindex="0"><code>{text}</code></pre>
        </details>
    }
}

/// A code snippet with a one-click Copy button.
#[component]
fn Snippet(label: &'static str, text: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let value = text.clone();
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        crate::client::copy_text(&value);
        let _ = &value;
        copied.set(true);
    };
    view! {
        <div class="snippet">
            <span class="snippet-label">{label}</span>
            // It scrolls sideways when long: focusable, so a keyboard can scroll it too.
            <code tabindex="0">{text}</code>
            <button class="btn small copy" data-snippet=label on:click=copy>
                {move || if copied.get() { "Copied!" } else { "Copy" }}
            </button>
        </div>
    }
}

/// Starts a new build of the project from its last recipe (maintainers and admins).
#[component]
fn RebuildButton(slug: String) -> impl IntoView {
    let msg = RwSignal::new(String::new());
    let rebuild = move |_| {
        let slug = slug.clone();
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            match crate::client::call(
                "POST",
                &format!("/api/projects/{slug}/builds"),
                Some(serde_json::json!({})),
            )
            .await
            {
                Ok(r) if r.status == 202 => {
                    if let Some(accepted) = r.json::<crate::model::BuildAccepted>() {
                        crate::client::go(&accepted.build_url);
                    }
                }
                Ok(r) => msg.set(r.message()),
                Err(e) => msg.set(e),
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (slug, msg);
        });
    };
    view! {
        <button class="btn" id="rebuild" on:click=rebuild>"Rebuild"</button>
        <span class="muted">{move || msg.get()}</span>
    }
}
