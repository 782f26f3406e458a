//! trythis UI: one module per page, shared components, server functions for page data.
//!
//! Builds twice: with `ssr` inside the server, with `hydrate` as the browser's WASM bundle.
#![recursion_limit = "256"]

pub mod api;
#[cfg(feature = "hydrate")]
pub mod client;
pub mod components;
#[cfg(feature = "hydrate")]
mod keyboard;
#[cfg(feature = "ssr")]
pub mod markdown;
pub mod model;
pub mod pages;
/// The link helpers, shared with the server (`vocab::url`).
pub use vocab::url;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Meta, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The CSRF token of this browser, for the API calls the page makes (see client::call).
    #[cfg(feature = "ssr")]
    let csrf = use_context::<axum::http::request::Parts>()
        .and_then(|p| {
            p.extensions
                .get::<model::Identity>()
                .map(|i| i.csrf.clone())
        })
        .unwrap_or_default();
    #[cfg(not(feature = "ssr"))]
    let csrf = String::new();
    // Only this page's own scripts run: the files served by the site, and Leptos' inline bootstrap
    // and resource scripts, which carry this response's nonce.
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) {
        if let Ok(v) =
            axum::http::HeaderValue::from_str(&content_security_policy(Some(&nonce.to_string())))
        {
            res.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, v);
        }
    }
    // Versioned URLs (`/v/<hash>/…`, cached as immutable): the pkg dir is `v/<hash>/pkg`.
    let assets = format!(
        "/{}",
        options
            .site_pkg_dir
            .strip_suffix("/pkg")
            .unwrap_or_default()
    );
    let assets = assets.trim_end_matches('/').to_string();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="csrf-token" content=csrf/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <link rel="stylesheet" href=format!("{assets}/pkg/trythis.css")/>
                <link rel="stylesheet" href=format!("{assets}/vendor/xterm.css")/>
                <script src=format!("{assets}/vendor/xterm.js") defer></script>
                <script src=format!("{assets}/vendor/addon-fit.js") defer></script>
                <script src=format!("{assets}/terminal.js") defer></script>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The Content-Security-Policy: scripts from this site only (plus the page's nonce for Leptos'
/// inline bootstrap; the wasm bundle needs 'wasm-unsafe-eval'), no framing, forms post here.
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; \
         form-action 'self'; object-src 'none'"
    )
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|t: String| if t.is_empty() { "trythis — try open source in your browser".to_string() } else { format!("{t} · trythis") }/>
        <Meta name="description" content="Try any open-source project in your browser: a real shell in its image, nothing to install."/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <components::header::Header/>
            <main class="page" id="main" tabindex="-1">
                <components::flash::Flash/>
                // Async SSR: pages arrive complete, so they work with JavaScript off.
                <Routes fallback=pages::not_found::NotFoundPage>
                    <Route path=path!("/") view=pages::home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/search") view=pages::search::SearchPage ssr=SsrMode::Async/>
                    <Route path=path!("/p/:slug") view=pages::project::ProjectPage ssr=SsrMode::Async/>
                    <Route path=path!("/p/:slug/edit") view=pages::edit::EditPage ssr=SsrMode::Async/>
                    <Route path=path!("/containers") view=pages::containers::ContainersPage ssr=SsrMode::Async/>
                    <Route path=path!("/new") view=pages::publish::PublishPage ssr=SsrMode::Async/>
                    <Route path=path!("/builds/:id") view=pages::build::BuildPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=pages::auth::LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/signup") view=pages::auth::SignupPage ssr=SsrMode::Async/>
                    <Route path=path!("/verify") view=pages::auth::VerifyPage ssr=SsrMode::Async/>
                    <Route path=path!("/reset") view=pages::auth::ResetPage ssr=SsrMode::Async/>
                    <Route path=path!("/account") view=pages::account::AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin") view=pages::admin::AdminPage ssr=SsrMode::Async/>
                    <Route path=path!("/watch/:token") view=pages::watch::WatchPage ssr=SsrMode::Async/>
                    // Browser only (the server's own /try/{slug} answers page loads).
                    <Route path=path!("/try/:slug") view=pages::try_link::TryLinkPage/>
                </Routes>
            </main>
            <components::footer::Footer/>
        </Router>
    }
}

/// Entry point of the browser bundle.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // From here on the router handles link clicks (the browser tests wait for this mark).
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-hydrated", "");
    }
    keyboard::follow_keyboard();
}
