use crate::api::search_projects;
use crate::components::project_card::CardGrid;
use crate::url::urlencode;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Search results with filters (text, category, order) and pagination; everything is in the URL
/// (a GET form), so it works without JS and a filtered list can be shared.
/// A changed filter applies at once (without JavaScript, the Apply button does).
fn apply_filters(ev: leptos::ev::Event) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(form) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlSelectElement>().ok())
            .and_then(|s| s.form())
        {
            let _ = form.request_submit();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ev;
}

#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        let q = query.read();
        (
            q.get("q").unwrap_or_default(),
            q.get("category").unwrap_or_default(),
            q.get("sort").unwrap_or_default(),
            q.get("page")
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(1),
        )
    };
    let results = Resource::new(params, |(q, c, sort, p)| search_projects(q, c, sort, p));
    view! {
        <Title text="Search"/>
        <Suspense fallback=|| view! { <p class="loading">"Searching…"</p> }>
            {move || Suspend::new(async move {
                let (q, cat, sort, _) = params();
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
                            let (q, cat, sort) = (q.clone(), cat.clone(), sort.clone());
                            move |p: u64| format!("/search?q={}&category={}&sort={}&page={p}", urlencode(&q), urlencode(&cat), urlencode(&sort))
                        };
                        let categories = r.categories.clone();
                        view! {
                            <section class="section">
                                <h1 class="results-title">{title}</h1>
                                <form class="filters" method="get" action="/search" role="search" aria-label="Filter projects">
                                    <label>"Words"
                                        <input type="search" name="q" value=q.clone() maxlength="200" placeholder="name, tag, anything"/>
                                    </label>
                                    <label>"Category"
                                        <select name="category" id="filter-category" on:change=apply_filters>
                                            <option value="" selected=cat.is_empty()>"All categories"</option>
                                            {categories.into_iter().map(|c| {
                                                let selected = c == cat;
                                                view! { <option value=c.clone() selected=selected>{c.clone()}</option> }
                                            }).collect_view()}
                                        </select>
                                    </label>
                                    <label>"Order"
                                        <select name="sort" id="filter-sort" on:change=apply_filters>
                                            {crate::model::SORTS.iter().map(|(value, label)| {
                                                let selected = *value == sort || (sort.is_empty() && *value == "relevance");
                                                view! { <option value=*value selected=selected>{*label}</option> }
                                            }).collect_view()}
                                        </select>
                                    </label>
                                    <button class="btn" type="submit">"Apply"</button>
                                </form>
                                {r.searched_for.clone().map(|s| view! {
                                    <p class="corrected" id="searched-for">{format!("Nothing matches “{q}”. Showing results for ")}<b>{s}</b>"."</p>
                                })}
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
