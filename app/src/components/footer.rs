use leptos::prelude::*;

#[component]
pub fn Footer() -> impl IntoView {
    view! {
        <footer class="footer">
            <span>"trythis — open source, tried in the browser. Sandboxes are disposable: nothing you type is kept."</span>
        </footer>
    }
}
