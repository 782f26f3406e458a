use crate::api::load_home;
use crate::components::project_card::CardGrid;
use crate::model::{FeaturedBanner, HomeData};
use crate::url::urlencode;
use leptos::prelude::*;
use leptos_meta::Title;

/// Home: hero with search, category chips (filter in place once hydrated), the featured banner,
/// trending, "you may like" and newest.
#[component]
pub fn HomePage() -> impl IntoView {
    let data = Resource::new(|| (), |_| load_home());
    view! {
        <Title text=""/>
        <section class="hero">
            <h1>"Try open source in your browser"</h1>
            <p class="lead">"Pick a project, press "<b>"Try"</b>", and type into a real shell inside its image within a second. Nothing to install."</p>
            <form class="search big" action="/search" method="get" role="search">
                <input type="search" name="q" placeholder="jq, redis, python, sqlite…" aria-label="Search the catalogue"/>
                <button type="submit">"Search"</button>
            </form>
        </section>
        <Suspense fallback=|| view! { <p class="loading">"Loading the catalogue…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! { <HomeSections data=d/> }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn HomeSections(data: HomeData) -> impl IntoView {
    // None = all categories. Without JS the chips are links to the search page.
    let selected = RwSignal::new(None::<String>);
    let trending = data.trending.clone();
    let shown = move || {
        let cat = selected.get();
        trending
            .iter()
            .filter(|c| cat.as_ref().is_none_or(|cat| &c.category == cat))
            .cloned()
            .collect::<Vec<_>>()
    };
    let heading = move || match selected.get() {
        None => "Trending".to_string(),
        Some(c) => format!("Trending in {c}"),
    };
    let empty_catalogue = data.total == 0;
    view! {
        <nav class="chips" aria-label="Categories">
            <a href="/search" class="chip" class:active=move || selected.get().is_none()
                on:click=move |ev| { ev.prevent_default(); selected.set(None); }>"All"</a>
            {data.categories.iter().map(|c| {
                let name = c.clone();
                let name2 = c.clone();
                let href = format!("/search?category={}", urlencode(c));
                view! {
                    <a href=href class="chip" data-category=c.clone()
                        class:active=move || selected.get().as_deref() == Some(name.as_str())
                        on:click=move |ev| { ev.prevent_default(); selected.set(Some(name2.clone())); }>{c.clone()}</a>
                }
            }).collect_view()}
        </nav>
        {if empty_catalogue {
            view! {
                <section class="empty-state">
                    <div class="empty-icon">"⌘"</div>
                    <h2>"The catalogue is empty"</h2>
                    <p>"No project is live yet. The starter catalogue is published on first start; refresh in a minute, or publish your own project."</p>
                </section>
            }.into_any()
        } else {
            view! {
                {data.featured.clone().map(|f| view! { <FeaturedBannerView banner=f/> })}
                <section class="section">
                    <h2 id="trending-heading">{heading}</h2>
                    {move || view! { <CardGrid cards=shown() empty="Nothing tried in this category yet."/> }}
                    // Trending shows the most tried only: the whole category is one click away.
                    {move || selected.get().map(|c| view! {
                        <p class="see-all"><a id="all-in-category" href=format!("/search?category={}", urlencode(&c))>{format!("Every project in {c} →")}</a></p>
                    })}
                </section>
                // Hidden when there is nothing to add to what the page shows already.
                {(!data.for_you.is_empty()).then(|| view! {
                    <section class="section" id="for-you">
                        <h2>"Open source you may like"</h2>
                        <p class="section-note">{if data.for_you_personal {
                            "Picked in proportion to the categories you try most."
                        } else {
                            "A tour of the catalogue, one project from each category. Try a few and this list follows your taste."
                        }}</p>
                        <CardGrid cards=data.for_you.clone() empty="Nothing to recommend yet."/>
                    </section>
                })}
                <section class="section">
                    <h2>"New in the catalogue"</h2>
                    <CardGrid cards=data.newest.clone() empty="No projects yet."/>
                </section>
            }.into_any()
        }}
    }
}

/// The admin's pick: one project, one line, a Try button.
#[component]
fn FeaturedBannerView(banner: FeaturedBanner) -> impl IntoView {
    let page = format!("/p/{}", banner.card.slug);
    let try_href = format!("/try/{}", banner.card.slug);
    view! {
        <section class="featured" aria-label="Featured project">
            <div class="featured-text">
                <span class="featured-kicker">"Featured · "{banner.card.category.clone()}</span>
                <h2><a href=page>{banner.card.name.clone()}</a></h2>
                <p>{banner.line}</p>
            </div>
            <a class="btn primary featured-try" href=try_href>"Try "{banner.card.name}" now"</a>
        </section>
    }
}
