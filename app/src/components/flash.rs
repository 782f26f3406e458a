//! The one-time notice a form leaves for the page it leads to ("Your email is confirmed",
//! "Password changed"). It lives in this tab's sessionStorage (see `client::flash`), never in the
//! URL: a link cannot make the site say something it did not.
use leptos::prelude::*;

#[component]
pub fn Flash() -> impl IntoView {
    let text = RwSignal::new(None::<String>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(t) = crate::client::take_flash() {
            text.set(Some(t));
        }
    });
    view! {
        <Show when=move || text.read().is_some()>
            <div class="flash" id="flash" role="status">
                <span>{move || text.get().unwrap_or_default()}</span>
                <button type="button" class="flash-close" aria-label="Dismiss" on:click=move |_| text.set(None)>"×"</button>
            </div>
        </Show>
    }
}
