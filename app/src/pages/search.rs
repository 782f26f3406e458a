use crate::api::search_projects;
use crate::components::project_card::CardGrid;
use crate::url::urlencode;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Search results with category filter and pagination; everything is in the URL, so it works without JS.
#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        let q = query.read();
        (
            q.get("q").unwrap_or_default(),
            q.get("category").unwrap_or_default(),
            q.get("page")
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(1),
        )
    };
    let results = Resource::new(params, |(q, c, p)| search_projects(q, c, p));
    view! {
        <Title text="Search"/>
        <Suspense fallback=|| view! { <p class="loading">"Searching…"</p> }>
            {move || Suspend::new(async move {
                let (q, cat, _) = params();
                match results.await {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(r) => {
                        let title = match (q.is_empty(), cat.is_empty()) {
                            (true, true) => "All projects".to_string(),
                            (true, false) => cat.clone(),
                            (false, true) => format!("Results for “{q}”"),
                            (false, false) => format!("“{q}” in {cat}"),
                        };
                        let pages = r.total.div_ceil(r.per_page).max(1);
                        let link = {
                            let (q, cat) = (q.clone(), cat.clone());
                            move |p: u64| format!("/search?q={}&category={}&page={p}", urlencode(&q), urlencode(&cat))
                        };
                        view! {
                            <section class="section">
                                <h1 class="results-title">{title}</h1>
                                <p class="muted results-count">{format!("{} project{}", r.total, if r.total == 1 { "" } else { "s" })}</p>
                                <CardGrid cards=r.items empty="No project matches. Try a shorter word or another category."/>
                                {(pages > 1).then(|| view! {
                                    <nav class="pager">
                                        {(r.page > 1).then(|| view! { <a href=link(r.page - 1)>"← Previous"</a> })}
                                        <span>{format!("Page {} of {pages}", r.page)}</span>
                                        {(r.page < pages).then(|| view! { <a href=link(r.page + 1)>"Next →"</a> })}
                                    </nav>
                                })}
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
