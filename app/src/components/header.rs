use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// Top bar: logo, search box, navigation. The search is a plain GET form, so it works without JS.
#[component]
pub fn Header() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    view! {
        <header class="topbar">
            <a class="logo" href="/" aria-label="trythis home">
                <img src="/logo.svg" alt="" width="28" height="28"/>
                <span>"try"<b>"this"</b></span>
            </a>
            <form class="search" action="/search" method="get" role="search">
                <input type="search" name="q" placeholder="Search projects, tags, categories…"
                    aria-label="Search projects" prop:value=q autocomplete="off"/>
                <button type="submit">"Search"</button>
            </form>
            <nav class="nav">
                <a href="/search">"Explore"</a>
                <a href="/containers">"My containers"</a>
                <a href="/new" class="nav-cta">"Publish"</a>
            </nav>
        </header>
    }
}
