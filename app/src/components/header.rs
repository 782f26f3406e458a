use crate::api::load_me;
use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_query_map};

/// Top bar: logo, search box, navigation, and who is signed in. The search is a plain GET form,
/// so it works without JS.
#[component]
pub fn Header() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let me = Resource::new(|| (), |_| load_me());
    let location = use_location();
    let login_href = move || {
        let path = location.pathname.get();
        if path == "/login" || path == "/signup" {
            "/login".to_string()
        } else {
            // The page as it is (its query too: a search), so log-in returns right here.
            let here = format!("{path}{}", location.search.get());
            format!("/login?next={}", crate::url::urlencode(&here))
        }
    };
    let logout = move |_| {
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let _ = crate::client::call("POST", "/api/auth/logout", None).await;
                crate::client::go("/");
            }
        });
    };
    view! {
        // The home page has its own big search box (phones hide this one there).
        <header class="topbar" class:home=move || location.pathname.get() == "/">
            <a class="logo" href="/" aria-label="trythis home">
                <img src="/logo.svg" alt="" width="28" height="28"/>
                <span>"try"<b>"this"</b></span>
            </a>
            <form class="search" action="/search" method="get" role="search">
                <input type="search" name="q" placeholder="Search projects, tags, categories…"
                    aria-label="Search projects" prop:value=q autocomplete="off"/>
                <button type="submit">"Search"</button>
            </form>
            // Phones: the menu folds behind a button (a checkbox: it works without JavaScript, and
            // Tab reaches it, Space opens it); ☰ becomes ✕ while it is open.
            <input type="checkbox" id="menu-toggle" class="menu-toggle" aria-label="Menu" aria-controls="nav"/>
            <label for="menu-toggle" class="menu-button" id="menu-button" aria-hidden="true">
                <span class="menu-open">"☰"</span><span class="menu-close">"✕"</span>
            </label>
            <nav class="nav" id="nav">
                <a href="/search">"Explore"</a>
                <a href="/containers">"My containers"</a>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        match me.await.ok().and_then(|m| m.user.map(|u| (u, m.is_admin))) {
                            Some((u, admin)) => view! {
                                {admin.then(|| view! { <a href="/admin" id="nav-admin">"Admin"</a> })}
                                <a href="/account" id="nav-account" class="nav-user" title=u.email.clone()>{u.name.clone()}</a>
                                <button type="button" class="nav-link" id="logout" on:click=logout>"Log out"</button>
                            }.into_any(),
                            None => view! { <a href=login_href id="nav-login">"Log in"</a> }.into_any(),
                        }
                    })}
                </Suspense>
                <a href="/new" class="nav-cta">"Publish"</a>
            </nav>
        </header>
    }
}
