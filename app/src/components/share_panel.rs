//! The Try panel's Share drawer: make a view-only link or one that can type, copy it, see who is
//! watching, revoke. A link is shown once, in the answer that made it (the site keeps only its
//! hash): links made earlier are listed without it.
use crate::model::{ShareInfo, ShareMode};
use leptos::prelude::*;
use std::collections::HashMap;

/// How often the list (who is watching) is asked for while the drawer is open or links exist.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const POLL_SECONDS: u64 = 5;

#[component]
pub fn SharePanel(
    sandbox_id: String,
    /// Whether the drawer shows (the bar's Share button toggles it).
    open: RwSignal<bool>,
    /// People watching through all links, for the bar's button.
    watching: RwSignal<usize>,
) -> impl IntoView {
    #[cfg(not(feature = "hydrate"))]
    let _ = watching;
    let items = RwSignal::new(Vec::<ShareInfo>::new());
    // Links made on this page, by share id (only here is the token known).
    let urls = RwSignal::new(HashMap::<String, String>::new());
    let copied = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let base = format!("/api/sandboxes/{sandbox_id}/shares");

    let refresh = {
        let base = base.clone();
        move || {
            let base = base.clone();
            leptos::task::spawn_local(async move {
                let _ = &base;
                #[cfg(feature = "hydrate")]
                if let Ok(r) = crate::client::call("GET", &base, None).await {
                    if let Some(list) = r.json::<crate::model::ShareList>() {
                        watching.set(list.items.iter().map(|i| i.watching).sum());
                        items.set(list.items);
                    }
                }
            });
        }
    };

    #[cfg(feature = "hydrate")]
    {
        let first = refresh.clone();
        Effect::new(move |done: Option<()>| {
            if done.is_none() {
                first();
            }
        });
        let poll = refresh.clone();
        let tick = set_interval_with_handle(
            move || {
                if open.get_untracked() || !items.with_untracked(Vec::is_empty) {
                    poll();
                }
            },
            std::time::Duration::from_secs(POLL_SECONDS),
        );
        if let Ok(handle) = tick {
            on_cleanup(move || handle.clear());
        }
    }

    let create = {
        let base = base.clone();
        let refresh = refresh.clone();
        move |mode: ShareMode| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            error.set(None);
            let (base, refresh) = (base.clone(), refresh.clone());
            leptos::task::spawn_local(async move {
                let _ = (&base, mode, &refresh);
                #[cfg(feature = "hydrate")]
                {
                    let body = crate::model::NewShare { mode };
                    match crate::client::send("POST", &base, &body).await {
                        Ok(r) if r.status == 201 => {
                            if let Some(made) = r.json::<ShareInfo>() {
                                if let Some(url) = made.url.clone() {
                                    urls.update(|u| {
                                        u.insert(made.id.clone(), url);
                                    });
                                }
                                items.update(|i| i.push(made));
                            }
                            refresh();
                        }
                        Ok(r) => error.set(Some(r.message())),
                        Err(e) => error.set(Some(e)),
                    }
                }
                busy.set(false);
            });
        }
    };
    let revoke = {
        let base = base.clone();
        let refresh = refresh.clone();
        move |id: String| {
            let (base, refresh) = (base.clone(), refresh.clone());
            leptos::task::spawn_local(async move {
                let _ = (&base, &id, &refresh);
                #[cfg(feature = "hydrate")]
                match crate::client::call("DELETE", &format!("{base}/{id}"), None).await {
                    Ok(r) if r.status < 300 || r.status == 404 => {
                        items.update(|i| i.retain(|s| s.id != id));
                        urls.update(|u| {
                            u.remove(&id);
                        });
                        refresh();
                    }
                    Ok(r) => error.set(Some(r.message())),
                    Err(e) => error.set(Some(e)),
                }
            });
        }
    };
    let copy = move |id: String| {
        if let Some(url) = urls.with_untracked(|u| u.get(&id).cloned()) {
            #[cfg(feature = "hydrate")]
            crate::client::copy_text(&url);
            let _ = url;
            copied.set(Some(id.clone()));
            leptos::task::spawn_local(async move {
                #[cfg(feature = "hydrate")]
                {
                    crate::client::sleep_ms(2000).await;
                    if copied.get_untracked().as_deref() == Some(id.as_str()) {
                        copied.set(None);
                    }
                }
                let _ = id;
            });
        }
    };

    let on_view = {
        let create = create.clone();
        move |_| create(ShareMode::View)
    };
    let on_control = move |_| create(ShareMode::Control);
    view! {
        <div class="share-panel" id="share-panel" class:hidden=move || !open.get() role="region" aria-label="Share this session">
            <div class="share-head">
                <div>
                    <strong>"Share this session"</strong>
                    <p class="share-note">"Anyone with a link watches this terminal live until the sandbox ends or you revoke the link."</p>
                </div>
                <button class="btn small share-close" title="Close" aria-label="Close the share panel" on:click=move |_| open.set(false)>"✕"</button>
            </div>
            <div class="share-actions">
                <button class="btn small" id="share-view" disabled=move || busy.get() on:click=on_view>"View-only link"</button>
                <button class="btn small" id="share-control" disabled=move || busy.get() on:click=on_control>"Link that can type"</button>
            </div>
            {move || error.get().map(|e| view! { <p class="share-error" role="alert">{e}</p> })}
            <ul class="share-list" aria-live="polite">
                <For
                    each=move || items.get()
                    key=|s| (s.id.clone(), s.watching, s.viewers.clone())
                    children=move |share: ShareInfo| {
                        let id = share.id.clone();
                        let url = urls.with_untracked(|u| u.get(&id).cloned());
                        let revoke = revoke.clone();
                        let (copy_id, revoke_id, copied_id) = (id.clone(), id.clone(), id.clone());
                        let live = share.watching != 0;
                        let watchers = match share.watching {
                            0 => "nobody watching yet".to_string(),
                            n => format!("{n} watching: {}", share.viewers.join(", ")),
                        };
                        view! {
                            <li class="share-row" data-share=id.clone() data-mode=share.mode.as_str()>
                                <span class=format!("share-mode {}", share.mode.as_str())>{match share.mode {
                                    ShareMode::View => "View only",
                                    ShareMode::Control => "Can type",
                                }}</span>
                                {match url {
                                    Some(url) => view! {
                                        <input class="share-url" readonly value=url aria-label="Share link"/>
                                        <button class="btn small copy-share" on:click=move |_| copy(copy_id.clone())>
                                            {move || if copied.get().as_deref() == Some(copied_id.as_str()) { "Copied ✓" } else { "Copy link" }}
                                        </button>
                                    }.into_any(),
                                    None => view! { <span class="share-url muted">"made earlier (its link is shown once)"</span> }.into_any(),
                                }}
                                <span class="share-watching" class:live=live>{watchers}</span>
                                <button class="btn small danger revoke-share" on:click=move |_| revoke(revoke_id.clone())>"Revoke"</button>
                            </li>
                        }
                    }
                />
            </ul>
        </div>
    }
}
