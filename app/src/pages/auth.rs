//! Log in and sign up (email and password, or GitHub / Google when the site has them configured),
//! the mailed links that finish a sign-up or verify an address, and password reset.
use crate::api::load_me;
use crate::components::field_problems::FieldProblems;
use crate::url::{safe_next, urlencode};
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
        "unverified" => "An account with this email exists, but its address is not verified yet. Log in with its password (or reset it) and verify the address from your account page, then continue with the provider.",
        _ => "Signing in did not work. Please try again in a moment.",
    }
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
    let next = Memo::new(move |_| safe_next(query.read().get("next").as_deref()));
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
    let problems = FieldProblems::default();
    let busy = RwSignal::new(false);
    // A sign-up's answer: the address the link went to.
    let sent_to = RwSignal::new(None::<String>);
    let send = move || {
        busy.set(true);
        message.set(String::new());
        problems.set(Vec::new());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let (url, body) = if signup {
                    (
                        "/api/auth/signup",
                        serde_json::json!({"email": email.get_untracked(), "password": password.get_untracked(), "name": name.get_untracked(), "next": next.get_untracked()}),
                    )
                } else {
                    (
                        "/api/auth/login",
                        serde_json::json!({"email": email.get_untracked(), "password": password.get_untracked()}),
                    )
                };
                let form = AccountForm {
                    email: email.get_untracked(),
                    sent_to,
                    problems,
                    message,
                    done: None,
                };
                if form.post(url, body, &next.get_untracked()).await {
                    return;
                }
            }
            busy.set(false);
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        send();
    };
    // Editing a field clears what was said about it.
    let clear = move |f: &'static str| {
        move |_: leptos::ev::Event| {
            problems.forget(f);
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
            <Show when=move || sent_to.read().is_some()>
                <div class="auth-card" id="check-inbox">
                    <h1>"Check your inbox"</h1>
                    <p>"We sent a link to "<strong>{move || sent_to.get().unwrap_or_default()}</strong>". Open it to finish creating your account: it works once, for 24 hours."</p>
                    <p class="muted">"Nothing after a few minutes? Look in your spam folder, or send it again. If this address already has an account, the mail says so."</p>
                    <div class="row-actions">
                        <button class="btn" id="send-again" disabled=move || busy.get() on:click=move |_| send()>"Send again"</button>
                        <a class="btn ghost" href="/login">"Log in"</a>
                    </div>
                </div>
            </Show>
            <div class="auth-card" class:hidden=move || sent_to.read().is_some()>
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
                        <label class=problems.class_of("name")>"Name (optional)"
                            <input id="name" autocomplete="name" maxlength="80" bind:value=name on:input=clear("name")/>
                            <small class="field-problem">{problems.message_of("name")}</small>
                        </label>
                    })}
                    <label class=problems.class_of("email")>"Email"
                        <input id="email" type="email" autocomplete="email" required maxlength="254" bind:value=email on:input=clear("email")/>
                        <small class="field-problem">{problems.message_of("email")}</small>
                    </label>
                    <label class=problems.class_of("password")>"Password"
                        <input id="password" type="password" required maxlength="128"
                            autocomplete=if signup { "new-password" } else { "current-password" } bind:value=password on:input=clear("password")/>
                        <small class="field-problem">{problems.message_of("password")}</small>
                    </label>
                    // The rule, until the password breaks it: then the problem under the field says it.
                    {signup.then(|| view! { <Show when=move || !problems.has("password")()><p class="hint" id="password-hint">"At least 10 characters. A few random words work well."</p></Show> })}
                    <Show when=move || !message.read().is_empty()>
                        <p class="form-message error" id="form-message" role="alert">{move || message.get()}</p>
                    </Show>
                    <button type="submit" class="btn primary big wide" id="submit" disabled=move || busy.get()>{action}</button>
                    {(!signup).then(|| view! { <p class="forgot"><a id="forgot" href="/reset">"Forgot your password?"</a></p> })}
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

/// `/verify?token=…`: the link of a sign-up (creates the account and signs in) or of an address
/// verification. It asks for a click first: mail scanners that open links must not use them up.
#[component]
pub fn VerifyPage() -> impl IntoView {
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let next = Memo::new(move |_| safe_next(query.read().get("next").as_deref()));
    let message = RwSignal::new(String::new());
    let verified = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let confirm = move |_| {
        busy.set(true);
        message.set(String::new());
        let token = token();
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            match crate::client::call(
                "POST",
                "/api/auth/verify",
                Some(serde_json::json!({ "token": token })),
            )
            .await
            {
                Ok(r) if r.status == 201 => {
                    crate::client::flash(
                        "Your email is confirmed: your account is ready and you are signed in.",
                    );
                    crate::client::go(&next.get_untracked());
                    return;
                }
                Ok(r) if r.status == 200 => verified.set(true),
                Ok(r) => message.set(r.message()),
                Err(e) => message.set(e),
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (token, next);
            busy.set(false);
        });
    };
    view! {
        <Title text="Confirm your email"/>
        <section class="auth">
            <div class="auth-card">
                <Show when=move || verified.get() fallback=move || view! {
                    <h1>"Confirm your email"</h1>
                    <p class="muted">"One click and your address is confirmed. A new account is created and signed in on this browser."</p>
                    <Show when=move || !message.read().is_empty()>
                        <p class="form-message error" id="form-message" role="alert">{move || message.get()}</p>
                        <p class="switch"><a href="/signup">"Sign up again"</a>" · "<a href="/login">"Log in"</a></p>
                    </Show>
                    <button class="btn primary big wide" id="confirm" disabled=move || busy.get() || token().is_empty() on:click=confirm>"Confirm my email"</button>
                }>
                    <h1>"Email verified"</h1>
                    <p id="verified">"Your address is verified. Provider sign-ins with this email now reach your account."</p>
                    <a class="btn primary" href="/account">"Back to your account"</a>
                </Show>
            </div>
        </section>
    }
}

/// `/reset`: ask for a link; `/reset?token=…`: choose a new password.
#[component]
pub fn ResetPage() -> impl IntoView {
    let query = use_query_map();
    let token = Memo::new(move |_| query.read().get("token").unwrap_or_default());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let message = RwSignal::new(String::new());
    let problems = FieldProblems::default();
    let sent_to = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        message.set(String::new());
        problems.set(Vec::new());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let t = token.get_untracked();
                let (url, body) = if t.is_empty() {
                    (
                        "/api/auth/reset",
                        serde_json::json!({ "email": email.get_untracked() }),
                    )
                } else {
                    (
                        "/api/auth/reset/confirm",
                        serde_json::json!({ "token": t, "password": password.get_untracked() }),
                    )
                };
                let mut form = AccountForm {
                    email: email.get_untracked(),
                    sent_to,
                    problems,
                    message,
                    done: None,
                };
                if !t.is_empty() {
                    form.done = Some("Password changed: you are signed in with the new one.");
                }
                if form.post(url, body, "/").await {
                    return;
                }
            }
            busy.set(false);
        });
    };
    view! {
        <Title text="Reset your password"/>
        <section class="auth">
            <div class="auth-card">
                <Show when=move || sent_to.read().is_none() fallback=move || view! {
                    <h1>"Check your inbox"</h1>
                    <p id="reset-sent">"If an account uses "<strong>{move || sent_to.get().unwrap_or_default()}</strong>", we sent it a link to choose a new password. It works once, for 30 minutes."</p>
                    <a class="btn" href="/login">"Back to log in"</a>
                }>
                    <h1>"Reset your password"</h1>
                    <p class="muted">{move || if token.get().is_empty() {
                        "Enter your account's email and we mail you a link to choose a new password."
                    } else {
                        "Choose a new password. Every browser signed in to your account is signed out."
                    }}</p>
                    <form class="auth-form" on:submit=submit novalidate>
                        {move || if token.get().is_empty() {
                            view! {
                                <label class="field">"Email"
                                    <input id="email" type="email" autocomplete="email" required maxlength="254" bind:value=email/>
                                    <small class="field-problem">{problems.message_of("email")}</small>
                                </label>
                            }.into_any()
                        } else {
                            view! {
                                <label class="field">"New password"
                                    <input id="password" type="password" autocomplete="new-password" required maxlength="128" bind:value=password/>
                                    <small class="field-problem">{problems.message_of("password")}</small>
                                </label>
                                <p class="hint">"At least 10 characters. A few random words work well."</p>
                            }.into_any()
                        }}
                        <Show when=move || !message.read().is_empty()>
                            <p class="form-message error" id="form-message" role="alert">{move || message.get()}</p>
                        </Show>
                        <button type="submit" class="btn primary big wide" id="submit" disabled=move || busy.get()>
                            {move || if token.get().is_empty() { "Send me a link" } else { "Set the new password" }}
                        </button>
                    </form>
                    <p class="switch"><a href="/login">"Back to log in"</a></p>
                </Show>
            </div>
        </section>
    }
}

/// Where an account form (log in, sign up, reset) shows its answer.
#[cfg(feature = "hydrate")]
struct AccountForm {
    /// The address typed, shown when the answer does not name one.
    email: String,
    sent_to: RwSignal<Option<String>>,
    problems: FieldProblems,
    message: RwSignal<String>,
    /// The notice for the next page when the form succeeds ("Password changed").
    done: Option<&'static str>,
}

#[cfg(feature = "hydrate")]
impl AccountForm {
    /// Posts the form: a mail sent (202) shows where it went, success (200/201) goes to `then`
    /// (true: the page is leaving), anything else shows its problems and message.
    async fn post(self, url: &str, body: serde_json::Value, then: &str) -> bool {
        match crate::client::call("POST", url, Some(body)).await {
            Ok(r) if r.status == 202 => {
                let sent: Option<crate::model::MailSent> = serde_json::from_value(r.body).ok();
                self.sent_to
                    .set(Some(sent.map(|m| m.email).unwrap_or(self.email)));
            }
            Ok(r) if r.status == 200 || r.status == 201 => {
                if let Some(notice) = self.done {
                    crate::client::flash(notice);
                }
                crate::client::go(then);
                return true;
            }
            Ok(r) => {
                // Each problem once, under its field; the sentence only when no field has one.
                let problems = crate::pages::publish::problems_of(&r.body);
                let shown = ["email", "password", "name"];
                if problems.is_empty()
                    || problems.iter().any(|p| !shown.contains(&p.field.as_str()))
                {
                    self.message.set(r.message());
                }
                self.problems.set(problems);
            }
            Err(e) => self.message.set(e),
        }
        false
    }
}
