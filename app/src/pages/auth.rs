//! Log in and sign up: email and password, or GitHub / Google when the site has them configured.
use crate::api::load_me;
use crate::pages::publish::ShownProblem;
use crate::url::urlencode;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The sentence for an OAuth callback's `?error=` code.
fn oauth_error(code: &str) -> &'static str {
    match code {
        "state" => "That sign-in link is not valid or has expired. Please start again.",
        "denied" => "Sign-in was cancelled at the provider.",
        "exchange" => "The provider did not confirm the sign-in. Please try again.",
        "no_email" => "Your account at the provider has no verified email address, so we cannot sign you in with it.",
        "suspended" => "This account is suspended. Contact the site's admins if you think this is a mistake.",
        "provider" => "That sign-in provider is not available on this site.",
        "too_many" => "Too many sign-in attempts from your network. Please wait a minute and try again.",
        _ => "Signing in did not work. Please try again in a moment.",
    }
}

/// Only local paths (the server checks again).
fn local(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".into())
}

#[component]
pub fn LoginPage() -> impl IntoView {
    view! { <AuthForm signup=false/> }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    view! { <AuthForm signup=true/> }
}

#[component]
fn AuthForm(signup: bool) -> impl IntoView {
    let query = use_query_map();
    let next = Memo::new(move |_| local(query.read().get("next")));
    let me = Resource::new(|| (), |_| load_me());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let message = RwSignal::new(
        query
            .read_untracked()
            .get("error")
            .map(|c| oauth_error(&c).to_string())
            .unwrap_or_default(),
    );
    let problems = RwSignal::new(Vec::<ShownProblem>::new());
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        message.set(String::new());
        problems.set(Vec::new());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let (url, body) = if signup {
                    (
                        "/api/auth/signup",
                        serde_json::json!({"email": email.get_untracked(), "password": password.get_untracked(), "name": name.get_untracked()}),
                    )
                } else {
                    (
                        "/api/auth/login",
                        serde_json::json!({"email": email.get_untracked(), "password": password.get_untracked()}),
                    )
                };
                match crate::client::call("POST", url, Some(body)).await {
                    Ok(r) if r.status == 200 || r.status == 201 => {
                        crate::client::go(&next.get_untracked());
                        return;
                    }
                    Ok(r) => {
                        problems.set(crate::pages::publish::problems_of(&r.body));
                        message.set(r.message());
                    }
                    Err(e) => message.set(e),
                }
            }
            busy.set(false);
        });
    };
    let field_class = move |f: &'static str| {
        move || {
            if problems.read().iter().any(|p| p.field == f) {
                "field invalid"
            } else {
                "field"
            }
        }
    };
    let problem_of = move |f: &'static str| {
        move || {
            problems
                .read()
                .iter()
                .find(|p| p.field == f)
                .map(|p| p.message.clone())
                .unwrap_or_default()
        }
    };
    // Editing a field clears what was said about it.
    let clear = move |f: &'static str| {
        move |_: leptos::ev::Event| {
            problems.update(|p| p.retain(|x| x.field != f));
            message.set(String::new());
        }
    };
    let (title, action) = if signup {
        ("Create your account", "Sign up")
    } else {
        ("Log in", "Log in")
    };
    view! {
        <Title text=title/>
        <section class="auth">
            <div class="auth-card">
                <h1>{title}</h1>
                <p class="muted">{if signup {
                    "An account keeps your Try history, lets you publish projects and gives you API tokens for your CI."
                } else {
                    "Welcome back. Your Try history and your projects are waiting."
                }}</p>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        let providers = me.await.map(|m| m.providers).unwrap_or_default();
                        (!providers.is_empty()).then(|| view! {
                            <div class="oauth">
                                {providers.into_iter().map(|p| {
                                    let label = if p == "github" { "Continue with GitHub" } else { "Continue with Google" };
                                    let href = format!("/auth/{p}/start?next={}", urlencode(&next.get_untracked()));
                                    view! { <a class=format!("btn oauth-btn oauth-{p}") id=format!("oauth-{p}") href=href rel="external">{label}</a> }
                                }).collect_view()}
                                <p class="or"><span>"or with email"</span></p>
                            </div>
                        })
                    })}
                </Suspense>
                <form class="auth-form" on:submit=submit novalidate>
                    {signup.then(|| view! {
                        <label class=field_class("name")>"Name (optional)"
                            <input id="name" autocomplete="name" maxlength="80" bind:value=name on:input=clear("name")/>
                            <small class="field-problem">{problem_of("name")}</small>
                        </label>
                    })}
                    <label class=field_class("email")>"Email"
                        <input id="email" type="email" autocomplete="email" required maxlength="254" bind:value=email on:input=clear("email")/>
                        <small class="field-problem">{problem_of("email")}</small>
                    </label>
                    <label class=field_class("password")>"Password"
                        <input id="password" type="password" required maxlength="128"
                            autocomplete=if signup { "new-password" } else { "current-password" } bind:value=password on:input=clear("password")/>
                        <small class="field-problem">{problem_of("password")}</small>
                    </label>
                    {signup.then(|| view! { <p class="hint">"At least 10 characters. A few random words work well."</p> })}
                    <Show when=move || !message.read().is_empty()>
                        <p class="form-message" id="form-message" role="alert">{move || message.get()}</p>
                    </Show>
                    <button type="submit" class="btn primary big wide" id="submit" disabled=move || busy.get()>{action}</button>
                </form>
                <p class="switch">{if signup {
                    view! { "Already have an account? "<a href=move || format!("/login?next={}", urlencode(&next.get()))>"Log in"</a> }.into_any()
                } else {
                    view! { "New here? "<a id="to-signup" href=move || format!("/signup?next={}", urlencode(&next.get()))>"Create an account"</a> }.into_any()
                }}</p>
            </div>
        </section>
    }
}
