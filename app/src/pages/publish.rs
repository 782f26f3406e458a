use crate::api::load_publish_form;
use crate::components::field_problems::FieldProblems;
use crate::components::project_fields::{ProblemList, ProjectFields, ProjectValues};
use crate::model::{FieldProblem, PublishInfo};
use leptos::prelude::*;
use leptos_meta::Title;

/// The problems of an `invalid` answer's body, each shown under its field.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn problems_of(body: &serde_json::Value) -> Vec<FieldProblem> {
    serde_json::from_value::<crate::model::ApiErrorBody>(body.clone())
        .map(|b| b.problems())
        .unwrap_or_default()
}

/// New project: metadata, then a Dockerfile (upload or paste), an install script (paste, then
/// convert: the generated Dockerfile is shown and editable before the build), or a public image
/// to import by reference.
#[component]
pub fn PublishPage() -> impl IntoView {
    let info = Resource::new(|| (), |_| load_publish_form());
    let me = Resource::new(|| (), |_| crate::api::load_me());
    view! {
        <Title text="Publish a project"/>
        <section class="publish">
            <h1>"Publish a project"</h1>
            <p class="lead-left">"Describe your project, then give a Dockerfile or paste the install script from your README. trythis builds the image, pushes it to its registry and streams the build log; when it is done, anyone can try your project in the browser."</p>
            <noscript><p class="error">"Publishing needs JavaScript (the build log streams live)."</p></noscript>
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let signed_in = me.await.map(|m| m.signed_in).unwrap_or(false);
                    match info.await {
                        Ok(_) if !signed_in => view! {
                            <div class="empty-state" id="publish-login">
                                <h2>"Log in to publish"</h2>
                                <p>"Projects belong to an account, so you can rebuild, hand over or hide them later."</p>
                                <p><a class="btn primary" href="/login?next=/new">"Log in"</a>" "<a class="btn" href="/signup?next=/new">"Create an account"</a></p>
                            </div>
                        }.into_any(),
                        Ok(i) => view! { <PublishForm info=i/> }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn PublishForm(info: PublishInfo) -> impl IntoView {
    let slug = RwSignal::new(String::new());
    // No category is preselected: the maintainer picks one (the server requires it).
    let values = ProjectValues::new(Default::default());
    let script = RwSignal::new(String::new());
    let dockerfile = RwSignal::new(String::new());
    let image = RwSignal::new(String::new());
    let check_command = RwSignal::new(String::new());
    let check_expect = RwSignal::new(String::new());
    // "script", "dockerfile" or "image": which recipe is sent.
    let tab = RwSignal::new("script".to_string());
    let problems = FieldProblems::default();
    let notes = RwSignal::new(Vec::<String>::new());
    // Said above the Dockerfile it is about, not at the foot of the form.
    let converted_note = RwSignal::new(false);
    let message = RwSignal::new(String::new());
    let busy = RwSignal::new(false);

    let convert = move |_| {
        busy.set(true);
        message.set(String::new());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let request = crate::model::ConvertRequest {
                    script: script.get_untracked(),
                };
                match crate::client::send("POST", "/api/recipe/convert", &request).await {
                    Ok(r) if r.status == 200 => {
                        let converted = r.json::<crate::model::Converted>();
                        // The proposed check fills the fields only if the maintainer left them empty.
                        if let Some(check) = converted.as_ref().and_then(|c| c.check.clone()) {
                            if check_command.get_untracked().trim().is_empty() {
                                check_command.set(check.command);
                                check_expect.set(check.expect);
                            }
                        }
                        let (text, shown) = converted
                            .map(|c| (c.dockerfile, c.notes.iter().map(|n| n.shown()).collect()))
                            .unwrap_or_default();
                        dockerfile.set(text);
                        notes.set(shown);
                        problems.set(Vec::new());
                        tab.set("dockerfile".into());
                        converted_note.set(true);
                    }
                    Ok(r) => {
                        problems.set(problems_of(&r.body));
                        message.set(r.message());
                    }
                    Err(e) => message.set(e),
                }
            }
            busy.set(false);
        });
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        message.set(String::new());
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let opt = |s: String| {
                    if s.trim().is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::String(s)
                    }
                };
                let mut body = values.body();
                body["slug"] = slug.get_untracked().into();
                body["check_command"] = opt(check_command.get_untracked());
                body["check_expect"] = opt(check_expect.get_untracked());
                match tab.get_untracked().as_str() {
                    "script" => body["script"] = script.get_untracked().into(),
                    "image" => body["image"] = image.get_untracked().trim().into(),
                    _ => body["dockerfile"] = dockerfile.get_untracked().into(),
                }
                match crate::client::call("POST", "/api/projects", Some(body)).await {
                    Ok(r) if r.status == 202 => {
                        let url = r
                            .json::<crate::model::BuildAccepted>()
                            .map(|a| a.build_url)
                            .unwrap_or_else(|| "/".into());
                        if let Some(w) = web_sys::window() {
                            let _ = w.location().set_href(&url);
                        }
                        return;
                    }
                    Ok(r) => {
                        problems.set(problems_of(&r.body));
                        message.set(r.message());
                    }
                    Err(e) => message.set(e),
                }
            }
            busy.set(false);
        });
    };

    #[cfg(feature = "hydrate")]
    let load_file = move |ev: leptos::ev::Event| {
        use wasm_bindgen::JsCast;
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        if file.size() > 64.0 * 1024.0 {
            message
                .set("That file is larger than 64 KB; a Dockerfile that large is refused.".into());
            return;
        }
        leptos::task::spawn_local(async move {
            if let Ok(text) = wasm_bindgen_futures::JsFuture::from(file.text()).await {
                dockerfile.set(text.as_string().unwrap_or_default());
                tab.set("dockerfile".into());
            }
        });
    };
    #[cfg(not(feature = "hydrate"))]
    let load_file = move |_ev: leptos::ev::Event| {};

    let categories = info.categories.clone();
    let registries = info.import_registries.join(", ");
    let can_import = !info.import_registries.is_empty();
    let import_max_mb = info.import_max_mb;
    view! {
        <form class="publish-form" on:submit=submit novalidate>
            <ProjectFields values problems categories slug/>
            <div class="tabs" role="tablist">
                <button type="button" role="tab" id="tab-script" class:active=move || tab.get() == "script"
                    on:click=move |_| tab.set("script".into())>"Install script"</button>
                <button type="button" role="tab" id="tab-dockerfile" class:active=move || tab.get() == "dockerfile"
                    on:click=move |_| tab.set("dockerfile".into())>"Dockerfile"</button>
                <Show when=move || can_import>
                    <button type="button" role="tab" id="tab-image" class:active=move || tab.get() == "image"
                        on:click=move |_| tab.set("image".into())>"Import an image"</button>
                </Show>
            </div>
            <div class="tab-panel" class:hidden=move || tab.get() != "image">
                <label class=problems.class_of("image")>"Image reference"
                    <input id="image" class="code" maxlength="512" spellcheck="false" autocomplete="off"
                        placeholder="ghcr.io/owner/app:1.0" bind:value=image/>
                    <small class="field-problem" id="image-problems">{problems.message_of("image")}</small>
                </label>
                <p class="hint">"A public image, "<code>"host/repo:tag"</code>" or "<code>"host/repo@sha256:…"</code>", is copied into the platform's registry (its linux/amd64 image, every layer checked against its digest) and goes live like a built one. Registries: "{registries.clone()}"; at most "{import_max_mb}" MB compressed."</p>
            </div>
            <div class="tab-panel" class:hidden=move || tab.get() != "script">
                <p class="hint">"Paste the install steps from your README. Each command becomes a build step on "<code>{info.base_image.clone()}</code>" ("<code>"# trythis: base=image"</code>" picks another base); "<code>"cd"</code>" becomes WORKDIR, "<code>"export"</code>" becomes ENV, "<code>"sudo"</code>" is dropped."</p>
                <textarea id="script" class=move || format!("code {}", problems.class_of("script")()) rows="10" spellcheck="false"
                    placeholder="sudo apt-get install -y cowsay\nexport PATH=/usr/games:$PATH" bind:value=script></textarea>
                <small class="field-problem" id="script-problems">{problems.message_of("script")}</small>
                <button type="button" class="btn" id="convert" on:click=convert disabled=move || busy.get()>"Convert to Dockerfile"</button>
            </div>
            <div class="tab-panel" class:hidden=move || tab.get() != "dockerfile">
                <Show when=move || converted_note.get()>
                    <p class="note" id="converted-note" role="status">"Converted. Review the Dockerfile below; edit it if you like, then publish."</p>
                </Show>
                <p class="hint">"The Dockerfile is the whole build context: COPY and ADD of local files are not available; download in a RUN step instead."</p>
                <textarea id="dockerfile" class=move || format!("code {}", problems.class_of("dockerfile")()) rows="14" spellcheck="false"
                    placeholder="FROM trythis/base:bookworm\nRUN apt-get update && apt-get install -y cowsay" bind:value=dockerfile></textarea>
                <small class="field-problem" id="dockerfile-problems">{problems.message_of("dockerfile")}</small>
                <label class="upload">"…or upload a Dockerfile "
                    <input id="dockerfile-file" type="file" on:change=load_file/>
                </label>
                <Show when=move || !notes.read().is_empty()>
                    <details class="notes" open>
                        <summary>"What the converter changed"</summary>
                        <ul>{move || notes.get().into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul>
                    </details>
                </Show>
            </div>
            <fieldset class="smoke-check">
                <legend>"Smoke check (recommended)"</legend>
                <p class="hint">"After every build, this command runs in a sandbox of the new image, as a visitor's shell would run it. The image goes live only if the command succeeds and its output contains the text below: a project page never promises what its Try cannot do. Converting a script proposes one."</p>
                <div class="form-grid">
                    <label class=problems.class_of("check_command")>"Command"
                        <input id="check-command" class="code" maxlength="1000" spellcheck="false" placeholder="cowsay hello" bind:value=check_command/>
                        <small class="field-problem">{problems.message_of("check_command")}</small>
                    </label>
                    <label class=problems.class_of("check_expect")>"Its output must contain"
                        <input id="check-expect" class="code" maxlength="200" spellcheck="false" placeholder="< hello >" bind:value=check_expect/>
                        <small class="field-problem">{problems.message_of("check_expect")}</small>
                    </label>
                </div>
            </fieldset>
            <Show when=move || !message.read().is_empty()>
                <p class="form-message" id="form-message">{move || message.get()}</p>
            </Show>
            <ProblemList problems/>
            <button type="submit" class="btn primary big" id="publish" disabled=move || busy.get()>"Build and publish"</button>
        </form>
    }
}
