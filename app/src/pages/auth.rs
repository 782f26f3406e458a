//! Log in and sign up (email and password, or GitHub / Google when the site has them configured),
//! the mailed links that finish a sign-up or verify an address, and password reset.
use crate::api::load_me;
use crate::components::field_problems::FieldProblems;
use crate::model::LinkKind;
#[cfg(feature = "hydrate")]
use crate::model::LinkState;
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
                // A sign-up's password is chosen on the mailed link's page: a pending sign-up
                // holds none that someone else's sign-up of the address could have set.
                let (url, body) = if signup {
                    (
                        "/api/auth/signup",
                        serde_json::json!({"email": email.get_untracked(), "name": name.get_untracked(), "next": next.get_untracked()}),
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
                    <p>"We sent a link to "<strong>{move || sent_to.get().unwrap_or_default()}</strong>". Open it in this browser to choose your password and finish creating your account: it works once, for 24 hours."</p>
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
                    {(!signup).then(|| view! {
                        <label class=problems.class_of("password")>"Password"
                            <input id="password" type="password" required maxlength="128"
                                autocomplete="current-password" bind:value=password on:input=clear("password")/>
                            <small class="field-problem">{problems.message_of("password")}</small>
                        </label>
                    })}
                    {signup.then(|| view! { <p class="hint">"We mail you a link; you choose your password on its page."</p> })}
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

/// What a mailed link's page knows of its link before using it (`GET /api/auth/link`): None
/// while asking; Err with the sentence to show when the link cannot be used.
type LinkCheck = RwSignal<Option<Result<crate::model::LinkInfo, String>>>;

/// Asks the server what the link `token` is, so a used or expired link is refused as soon as its
/// page opens, and the page can name the address.
fn check_link(token: Memo<String>, kinds: &'static [LinkKind]) -> LinkCheck {
    let info: LinkCheck = RwSignal::new(None);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let t = token.get();
        // No link to check: the reset page asks for an address; any other page needs its link.
        if t.is_empty() {
            if !kinds.contains(&LinkKind::Reset) {
                info.set(Some(Err(
                    "This page opens from the link in your mail: open it exactly as it was mailed."
                        .into(),
                )));
            }
            return;
        }
        leptos::task::spawn_local(async move {
            let url = format!("/api/auth/link?token={}", urlencode(&t));
            let answer = match crate::client::call("GET", &url, None).await {
                Ok(r) if r.status == 200 => match r.json::<crate::model::LinkInfo>() {
                    Some(i) if !kinds.contains(&i.kind) => Err(
                        "This link is not for this page. Open the link exactly as it was mailed."
                            .into(),
                    ),
                    Some(i) if i.state == LinkState::Used => Err(
                        "This link was used already. Each link works once: ask for a new one."
                            .into(),
                    ),
                    Some(i) if i.state == LinkState::Expired => {
                        Err("This link has expired. Ask for a new one.".into())
                    }
                    Some(i) => Ok(i),
                    None => Err("This link could not be checked. Reload the page.".into()),
                },
                Ok(r) => Err(r.message()),
                Err(e) => Err(e),
            };
            info.set(Some(answer));
        });
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (token, kinds);
    info
}

/// The `#bring` box: offered only in the browser that asked for the link, when it has Tries.
fn bring_box(info: LinkCheck, bring: RwSignal<bool>) -> impl IntoView {
    move || {
        let tries = match info.get() {
            Some(Ok(i)) if i.this_browser => i.tries,
            _ => 0,
        };
        (tries > 0).then(|| {
            let what = if tries == 1 {
                "try".to_string()
            } else {
                format!("{tries} tries")
            };
            let label = if tries == 1 {
                "Bring my try into this account".to_string()
            } else {
                format!("Bring my {what} into this account")
            };
            view! {
                <label class="check">
                    <input id="bring" type="checkbox" bind:checked=bring/>
                    " "{label}
                </label>
            }
        })
    }
}

/// `/verify?token=…`: the link of a sign-up (choose the password, create the account) or of an
/// address verification. It asks for a click first: mail scanners that open links must not use
/// them up. It names the address, signs in only the browser that asked for the link, and brings
/// this browser's Tries only when asked.
#[component]
pub fn VerifyPage() -> impl IntoView {
    let query = use_query_map();
    let token = Memo::new(move |_| query.read().get("token").unwrap_or_default());
    let next = Memo::new(move |_| safe_next(query.read().get("next").as_deref()));
    let info = check_link(token, &[LinkKind::Signup, LinkKind::Verify]);
    let password = RwSignal::new(String::new());
    let bring = RwSignal::new(false);
    let message = RwSignal::new(String::new());
    let problems = FieldProblems::default();
    let verified = RwSignal::new(false);
    // Created, but this browser did not ask for the link: log in here.
    let created_elsewhere = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let is_signup = move || matches!(info.get(), Some(Ok(i)) if i.kind == LinkKind::Signup);
    let email = move || match info.get() {
        Some(Ok(i)) => i.email,
        _ => String::new(),
    };
    let confirm = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        message.set(String::new());
        problems.set(Vec::new());
        let body = serde_json::json!({
            "token": token.get_untracked(),
            "password": password.get_untracked(),
            "bring": bring.get_untracked(),
        });
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            match crate::client::call("POST", "/api/auth/verify", Some(body)).await {
                Ok(r) if r.status == 201 => {
                    let signed = r
                        .json::<crate::model::SignedIn>()
                        .is_some_and(|s| s.signed_in);
                    if signed {
                        crate::client::flash(
                            "Your email is confirmed: your account is ready and you are signed in.",
                        );
                        crate::client::go(&next.get_untracked());
                        return;
                    }
                    created_elsewhere.set(true);
                }
                Ok(r) if r.status == 200 => verified.set(true),
                Ok(r) => {
                    // Each problem once: under its field, or above the button when no field has it.
                    let found = crate::pages::publish::problems_of(&r.body);
                    if found.is_empty() {
                        message.set(r.message());
                    }
                    problems.set(found);
                }
                Err(e) => message.set(e),
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (body, next);
            busy.set(false);
        });
    };
    let refused = move || matches!(info.get(), Some(Err(_)));
    // Type-erased: the page's view type is otherwise too deep for the compiler.
    let form = move || {
        view! {
                    <form class="auth-form" on:submit=confirm novalidate class:hidden=refused>
                        <Show when=is_signup>
                            <label class=problems.class_of("password")>"Password"
                                <input id="password" type="password" required maxlength="128" autocomplete="new-password" bind:value=password/>
                                <small class="field-problem">{problems.message_of("password")}</small>
                            </label>
                            <p class="hint">"At least 10 characters. A few random words work well."</p>
                            {bring_box(info, bring)}
                        </Show>
                        <Show when=move || !message.read().is_empty()>
                            <p class="form-message" id="form-message" role="alert">{move || message.get()}</p>
                        </Show>
                        <button type="submit" class="btn primary big wide" id="confirm"
                            disabled=move || busy.get() || !matches!(info.get(), Some(Ok(_)))>
                            {move || if is_signup() { "Create my account" } else { "Confirm my email" }}
                        </button>
                    </form>
        }
        .into_any()
    };
    view! {
        <Title text="Confirm your email"/>
        <section class="auth">
            <div class="auth-card">
                <Show when=move || !verified.get() && !created_elsewhere.get() fallback=move || view! {
                    <Show when=move || created_elsewhere.get() fallback=|| view! {
                        <h1>"Email verified"</h1>
                        <p id="verified">"Your address is verified. Provider sign-ins with this email now reach your account."</p>
                        <a class="btn primary" href="/account">"Back to your account"</a>
                    }>
                        <h1>"Account created"</h1>
                        <p id="created-elsewhere">"The account of "<strong>{email}</strong>" exists now. This link was asked for in another browser, so it did not sign this one in: log in with your new password."</p>
                        <a class="btn primary" id="to-login" href=move || format!("/login?next={}", urlencode(&next.get()))>"Log in"</a>
                    </Show>
                }>
                    <h1>{move || if is_signup() { "Finish creating your account" } else { "Confirm your email" }}</h1>
                    {move || match info.get() {
                        None => view! { <p class="muted" id="link-checking">"Checking your link…"</p> }.into_any(),
                        Some(Err(m)) => view! {
                            <p class="form-message error" id="link-refused" role="alert">{m}</p>
                            <p class="switch"><a href="/signup">"Sign up again"</a>" · "<a href="/reset">"Reset a password"</a>" · "<a href="/login">"Log in"</a></p>
                        }.into_any(),
                        Some(Ok(i)) if i.kind == LinkKind::Signup => view! {
                            <p id="link-email">"This link creates the account of "<strong>{i.email.clone()}</strong>". Choose its password."</p>
                            {(!i.this_browser).then(|| view! {
                                <p class="muted" id="other-browser">"This link was asked for in another browser: it creates the account but does not sign this browser in."</p>
                            })}
                        }.into_any(),
                        Some(Ok(i)) => view! {
                            <p id="link-email">"One click and "<strong>{i.email.clone()}</strong>" is confirmed as your account's address."</p>
                        }.into_any(),
                    }}
                    {form}
                </Show>
            </div>
        </section>
    }
}

/// `/reset`: ask for a link; `/reset?token=…`: choose a new password (the page names the
/// address, refuses a used or expired link at once, signs in only the browser that asked).
#[component]
pub fn ResetPage() -> impl IntoView {
    let query = use_query_map();
    let token = Memo::new(move |_| query.read().get("token").unwrap_or_default());
    let info = check_link(token, &[LinkKind::Reset]);
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let bring = RwSignal::new(false);
    let message = RwSignal::new(String::new());
    let problems = FieldProblems::default();
    let sent_to = RwSignal::new(None::<String>);
    // The new password is set, but this browser did not ask for the link: log in here.
    let set_elsewhere = RwSignal::new(false);
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
                if t.is_empty() {
                    let form = AccountForm {
                        email: email.get_untracked(),
                        sent_to,
                        problems,
                        message,
                        done: None,
                    };
                    let body = serde_json::json!({ "email": email.get_untracked() });
                    if form.post("/api/auth/reset", body, "/").await {
                        return;
                    }
                } else {
                    let body = serde_json::json!({ "token": t, "password": password.get_untracked(), "bring": bring.get_untracked() });
                    match crate::client::call("POST", "/api/auth/reset/confirm", Some(body)).await {
                        Ok(r) if r.status == 200 => {
                            if r.json::<crate::model::SignedIn>()
                                .is_some_and(|s| s.signed_in)
                            {
                                crate::client::flash(
                                    "Password changed: you are signed in with the new one.",
                                );
                                crate::client::go("/");
                                return;
                            }
                            set_elsewhere.set(true);
                        }
                        Ok(r) => {
                            // Each problem once: under its field, or above the button when no field has it.
                            let found = crate::pages::publish::problems_of(&r.body);
                            if found.is_empty() {
                                message.set(r.message());
                            }
                            problems.set(found);
                        }
                        Err(e) => message.set(e),
                    }
                }
            }
            busy.set(false);
        });
    };
    let with_token = move || !token.get().is_empty();
    let refused = move || with_token() && matches!(info.get(), Some(Err(_)));
    // Type-erased: the page's view type is otherwise too deep for the compiler.
    let form = move || {
        view! {
                    <form class="auth-form" on:submit=submit novalidate class:hidden=refused>
                        {move || if !with_token() {
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
                                {bring_box(info, bring)}
                            }.into_any()
                        }}
                        <Show when=move || !message.read().is_empty()>
                            <p class="form-message error" id="form-message" role="alert">{move || message.get()}</p>
                        </Show>
                        <button type="submit" class="btn primary big wide" id="submit"
                            disabled=move || busy.get() || (with_token() && !matches!(info.get(), Some(Ok(_))))>
                            {move || if with_token() { "Set the new password" } else { "Send me a link" }}
                        </button>
                    </form>
        }
        .into_any()
    };
    view! {
        <Title text="Reset your password"/>
        <section class="auth">
            <div class="auth-card">
                <Show when=move || sent_to.read().is_none() && !set_elsewhere.get() fallback=move || view! {
                    <Show when=move || set_elsewhere.get() fallback=move || view! {
                        <h1>"Check your inbox"</h1>
                        <p id="reset-sent">"If an account uses "<strong>{move || sent_to.get().unwrap_or_default()}</strong>", we sent it a link to choose a new password. Open it in this browser: it works once, for 30 minutes."</p>
                        <a class="btn" href="/login">"Back to log in"</a>
                    }>
                        <h1>"Password set"</h1>
                        <p id="set-elsewhere">"Your new password is set and every browser and API token of the account was signed out. This link was asked for in another browser, so log in here with the new password."</p>
                        <a class="btn primary" id="to-login" href="/login">"Log in"</a>
                    </Show>
                }>
                    <h1>"Reset your password"</h1>
                    {move || if !with_token() {
                        view! { <p class="muted">"Enter your account's email and we mail you a link to choose a new password."</p> }.into_any()
                    } else {
                        match info.get() {
                            None => view! { <p class="muted" id="link-checking">"Checking your link…"</p> }.into_any(),
                            Some(Err(m)) => view! {
                                <p class="form-message error" id="link-refused" role="alert">{m}</p>
                                <p class="switch"><a href="/reset">"Ask for a new link"</a></p>
                            }.into_any(),
                            Some(Ok(i)) => view! {
                                <p class="muted" id="link-email">"Choose a new password for "<strong>{i.email.clone()}</strong>". Every browser and API token of the account is signed out."</p>
                            }.into_any(),
                        }
                    }}
                    {form}
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
