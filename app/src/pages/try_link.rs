//! `/try/{slug}` followed inside the site (a "Try jq now" or "Open" link the router caught).
//!
//! The server owns that URL (it starts the Try and redirects to the project); this route exists
//! only in the browser, so such a click does not end on "Nothing here". It hands the URL back to
//! the server with a full page load. The server's route list leaves it out (server/src/http.rs).
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

/// The path prefix of the client-only route.
pub const PREFIX: &str = "/try/";

#[component]
pub fn TryLinkPage() -> impl IntoView {
    let params = use_params_map();
    let slug = params.read_untracked().get("slug").unwrap_or_default();
    #[cfg(feature = "hydrate")]
    {
        let href = format!("{PREFIX}{}", crate::url::urlencode(&slug));
        Effect::new(move |_| {
            // Replace: Back leads to the page the link was on, not to this stop-over.
            if let Some(w) = web_sys::window() {
                let _ = w.location().replace(&href);
            }
        });
    }
    view! { <p class="loading" id="try-link">{format!("Opening {slug}…")}</p> }
}
