//! The account page: who you are, password, personal API tokens, and deleting the account.
use crate::api::load_me;
use crate::model::{ProjectFate, UserBrief};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AccountPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| load_me());
    view! {
        <Title text="Your account"/>
        <section class="section account">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(m) => match m.user {
                            Some(u) => view! { <Account user=u site=m.site/> }.into_any(),
                            None => view! {
                                <div class="empty-state">
                                    <h2>"Log in to see your account"</h2>
                                    <p><a class="btn primary" href="/login?next=/account">"Log in"</a></p>
                                </div>
                            }.into_any(),
                        },
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Account(user: UserBrief, site: String) -> impl IntoView {
    let has_password = user.has_password;
    let verified = user.email_verified;
    let verify_msg = RwSignal::new(String::new());
    let send_verification = move |_| {
        verify_msg.set("Sending…".into());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            match crate::client::call("POST", "/api/me/verify-email", None).await {
                Ok(r) if r.status == 202 => {
                    verify_msg.set("We sent you a link: open it to verify your address.".into())
                }
                Ok(r) => verify_msg.set(r.message()),
                Err(e) => verify_msg.set(e),
            }
        });
    };
    // Password
    let current = RwSignal::new(String::new());
    // Also revoke every API token with the new password (a token may be what leaked).
    let revoke_tokens = RwSignal::new(false);
    let new_pw = RwSignal::new(String::new());
    let pw_msg = RwSignal::new(String::new());
    // Tokens
    let tokens = RwSignal::new(Vec::<crate::model::ApiToken>::new());
    let token_name = RwSignal::new(String::new());
    let new_token = RwSignal::new(String::new());
    let token_msg = RwSignal::new(String::new());
    // Deletion
    let del_password = RwSignal::new(String::new());
    let del_confirm = RwSignal::new(String::new());
    let fate = RwSignal::new(ProjectFate::Hide);
    let successor = RwSignal::new(String::new());
    let del_msg = RwSignal::new(String::new());

    #[cfg(feature = "hydrate")]
    let reload_tokens = move || {
        leptos::task::spawn_local(async move {
            if let Ok(r) = crate::client::call("GET", "/api/me/tokens", None).await {
                let rows = r
                    .json::<crate::model::ApiTokens>()
                    .map(|t| t.tokens)
                    .unwrap_or_default();
                tokens.set(rows);
            }
        });
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| reload_tokens());

    let change_password = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let revoked = revoke_tokens.get_untracked();
                let body = serde_json::json!({"current": current.get_untracked(), "new": new_pw.get_untracked(), "revoke_tokens": revoked});
                match crate::client::call("POST", "/api/me/password", Some(body)).await {
                    Ok(r) if r.status == 204 => {
                        current.set(String::new());
                        new_pw.set(String::new());
                        revoke_tokens.set(false);
                        pw_msg.set(if revoked {
                            "Password changed. Your other devices were signed out and every API token was revoked.".into()
                        } else {
                            "Password changed. Your other devices were signed out.".into()
                        });
                        reload_tokens();
                    }
                    Ok(r) => pw_msg.set(r.message()),
                    Err(e) => pw_msg.set(e),
                }
            }
        });
    };
    let create_token = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let request = crate::model::NewTokenRequest {
                    name: token_name.get_untracked(),
                    admin: false,
                };
                match crate::client::send("POST", "/api/me/tokens", &request).await {
                    Ok(r) if r.status == 201 => {
                        new_token.set(
                            r.json::<crate::model::NewToken>()
                                .map(|t| t.secret)
                                .unwrap_or_default(),
                        );
                        token_name.set(String::new());
                        token_msg.set(String::new());
                        reload_tokens();
                    }
                    Ok(r) => token_msg.set(r.message()),
                    Err(e) => token_msg.set(e),
                }
            }
        });
    };
    let revoke = move |id: i32| {
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                match crate::client::call("DELETE", &format!("/api/me/tokens/{id}"), None).await {
                    Ok(r) if r.status == 204 => reload_tokens(),
                    Ok(r) => token_msg.set(r.message()),
                    Err(e) => token_msg.set(e),
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = id;
        });
    };
    let delete_account = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let body = serde_json::json!({
                    "password": del_password.get_untracked(),
                    "confirm_email": del_confirm.get_untracked(),
                    "projects": fate.get_untracked(),
                    "successor_email": successor.get_untracked(),
                });
                match crate::client::call("POST", "/api/me/delete", Some(body)).await {
                    Ok(r) if r.status == 204 => crate::client::go("/?account=deleted"),
                    Ok(r) => del_msg.set(r.message()),
                    Err(e) => del_msg.set(e),
                }
            }
        });
    };
    let example = format!("curl -X POST -H \"Authorization: Bearer $TRYTHIS_TOKEN\" {site}/api/projects/<slug>/builds");
    view! {
        <h1>"Your account"</h1>
        <div class="account-grid">
            <div class="panel">
                <h2>"Profile"</h2>
                <dl class="facts">
                    <dt>"Name"</dt><dd id="account-name">{user.name.clone()}</dd>
                    <dt>"Email"</dt><dd id="account-email">{user.email.clone()}
                        {if verified {
                            view! { <span class="badge ok" id="email-verified">"verified"</span> }.into_any()
                        } else {
                            view! { <span class="badge warn" id="email-unverified">"not verified"</span> }.into_any()
                        }}
                    </dd>
                    <dt>"Role"</dt><dd>{user.role.as_str()}</dd>
                </dl>
                {(!verified).then(|| view! {
                    <p class="muted">"Verify your address to sign in with GitHub or Google under this email."</p>
                    <button class="btn small" id="send-verification" on:click=send_verification>"Send a verification link"</button>
                    <Show when=move || !verify_msg.read().is_empty()><p class="form-message">{move || verify_msg.get()}</p></Show>
                })}
            </div>
            <form class="panel" on:submit=change_password>
                <h2>{if has_password { "Change password" } else { "Set a password" }}</h2>
                {has_password.then(|| view! {
                    <label class="field">"Current password"
                        <input id="current-password" type="password" autocomplete="current-password" bind:value=current/>
                    </label>
                })}
                <label class="field">"New password (at least 10 characters)"
                    <input id="new-password" type="password" autocomplete="new-password" bind:value=new_pw/>
                </label>
                <label class="check">
                    <input id="revoke-tokens" type="checkbox" bind:checked=revoke_tokens/>
                    " Also revoke all my API tokens (CI jobs using them stop working)"
                </label>
                <Show when=move || !pw_msg.read().is_empty()><p class="form-message" id="password-message">{move || pw_msg.get()}</p></Show>
                <button class="btn" type="submit" id="change-password">"Save password"</button>
            </form>
        </div>
        <MyProjects/>
        <div class="panel">
            <h2>"API tokens"</h2>
            <p class="muted">"For your own CI: rebuild your project on every push with "<code>{example}</code>". A token acts as you; it is shown once and stored only as a hash."</p>
            <form class="inline-form" on:submit=create_token>
                <input id="token-name" placeholder="Token name, e.g. GitHub Actions" maxlength="60" bind:value=token_name/>
                <button class="btn" type="submit" id="create-token">"Create token"</button>
            </form>
            <Show when=move || !new_token.read().is_empty()>
                <p class="new-token">"Copy it now, it will not be shown again: "<code id="new-token">{move || new_token.get()}</code>
                    <button type="button" class="btn small" id="copy-token" on:click=move |_| {
                        #[cfg(feature = "hydrate")]
                        crate::client::copy_text(&new_token.get_untracked());
                    }>"Copy"</button>
                </p>
            </Show>
            <Show when=move || !token_msg.read().is_empty()><p class="form-message">{move || token_msg.get()}</p></Show>
            <table class="table" id="tokens">
                <thead><tr><th>"Name"</th><th>"Token"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                <tbody>
                    {move || tokens.read().is_empty().then(|| view! {
                        <tr><td colspan="5" class="muted">"No tokens yet."</td></tr>
                    })}
                    {move || tokens.get().into_iter().map(|t| {
                        let id = t.id;
                        view! {
                            <tr>
                                <td>{t.name}</td><td><code>{t.hint}</code></td><td>{t.created_at.chars().take(10).collect::<String>()}</td>
                                <td class="last-used">{t.last_used_at.map(|d| d.chars().take(16).collect::<String>().replace('T', " ") + " UTC").unwrap_or_else(|| "never".into())}</td>
                                <td><button class="btn small" on:click=move |_| revoke(id)>"Revoke"</button></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <form class="panel danger-zone" on:submit=delete_account>
            <h2>"Delete account"</h2>
            <p class="muted">"Your running sandbox stops and your email, password, sessions, tokens and sign-in links are deleted. Try counts stay, anonymised."</p>
            <fieldset class="choice">
                <legend>"Your projects"</legend>
                <label><input type="radio" name="fate" value=ProjectFate::Hide.as_str() checked on:change=move |_| fate.set(ProjectFate::Hide)/>" Hide them from the catalogue"</label>
                <label><input type="radio" name="fate" value=ProjectFate::HandOver.as_str() id="fate-hand-over" on:change=move |_| fate.set(ProjectFate::HandOver)/>" Hand them over to another account"</label>
                <Show when=move || fate.get() == ProjectFate::HandOver>
                    <input id="successor" type="email" placeholder="their email" bind:value=successor/>
                    <p class="hint">"If this email belongs to a trythis account, its owner becomes the maintainer and gets a mail; otherwise your projects are hidden."</p>
                </Show>
            </fieldset>
            {if has_password {
                view! { <label class="field">"Your password" <input id="delete-password" type="password" autocomplete="current-password" bind:value=del_password/></label> }.into_any()
            } else {
                view! { <label class="field">"Type your email to confirm" <input id="delete-confirm" type="email" bind:value=del_confirm/></label> }.into_any()
            }}
            <Show when=move || !del_msg.read().is_empty()><p class="form-message" id="delete-message">{move || del_msg.get()}</p></Show>
            <button class="btn danger" type="submit" id="delete-account">"Delete my account"</button>
        </form>
    }
}

/// Deletes one of the maintainer's projects, after a confirmation naming it; the list reloads.
#[component]
fn DeleteProject(slug: String, name: String) -> impl IntoView {
    let message = RwSignal::new(String::new());
    let delete = move |_| {
        let (slug, name) = (slug.clone(), name.clone());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let ask = format!("Delete {name} ({slug})? Its page, builds and images are removed for good; the tries people made stay in their history, without its name.");
                if !crate::client::confirm(&ask) {
                    return;
                }
                match crate::client::call("DELETE", &format!("/api/projects/{slug}"), None).await {
                    Ok(r) if r.status == 204 => crate::client::go("/account"),
                    Ok(r) => message.set(r.message()),
                    Err(e) => message.set(e),
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (slug, name, message);
        });
    };
    view! {
        <button class="btn small danger" data-action="delete-project" on:click=delete>"Delete"</button>
        <Show when=move || !message.read().is_empty()>
            <p class="form-message error" role="alert">{move || message.get()}</p>
        </Show>
    }
}

/// The projects this account publishes: status, tries and the newest build, each a link.
#[component]
fn MyProjects() -> impl IntoView {
    let projects = Resource::new(|| (), |_| crate::api::my_projects());
    view! {
        <div class="panel" id="my-projects">
            <div class="panel-head">
                <h2>"Your projects"</h2>
                <a class="btn small" href="/new">"Publish a project"</a>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match projects.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted">"You have not published a project yet. Publish one: a Dockerfile or the install script from your README is enough."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <table class="table">
                                <thead><tr><th>"Project"</th><th>"Status"</th><th>"Tries"</th><th>"Newest build"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|p| {
                                        let build = p.latest_build.clone().map(|(id, state)| view! {
                                            <a href=format!("/builds/{id}")><span class=format!("state-badge {state}")>{state.as_str()}</span></a>
                                        });
                                        view! {
                                            <tr data-project=p.slug.clone()>
                                                <td><a href=format!("/p/{}", p.slug)>{p.name.clone()}</a></td>
                                                <td><span class=format!("status-badge {}", p.status)>{p.status.as_str()}</span>
                                                    {(!p.listed).then(|| view! { " "<span class="status-badge review" title="Reachable by its link, and Try and its badge work; Explore and search list it once an admin has reviewed it.">"waiting for review"</span> })}
                                                </td>
                                                <td>{p.tries}</td>
                                                <td>{build}</td>
                                                <td><DeleteProject slug=p.slug.clone() name=p.name.clone()/></td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}
