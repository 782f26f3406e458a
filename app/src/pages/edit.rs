//! A maintainer edits a published project's metadata (`PATCH /api/projects/{slug}`): the same
//! fields and checks as publishing, no rebuild; search and the project page show it at once.
use crate::api::load_project_edit;
use crate::components::field_problems::FieldProblems;
use crate::components::project_fields::{ProblemList, ProjectFields, ProjectValues};
use crate::model::{ProjectEditInfo, ProjectMetadata};
use crate::pages::not_found::NotFoundPage;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn EditPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let data = Resource::new(slug, load_project_edit);
    view! {
        <section class="publish">
            <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(Some(info)) => view! { <EditView info/> }.into_any(),
                        Ok(None) => view! { <NotFoundPage/> }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn EditView(info: ProjectEditInfo) -> impl IntoView {
    let ProjectEditInfo {
        slug,
        name,
        signed_in,
        metadata,
        categories,
        ..
    } = info;
    let back = format!("/p/{slug}");
    let body = match metadata {
        Some(m) => view! { <EditForm slug=slug.clone() metadata=m categories/> }.into_any(),
        None if !signed_in => {
            let login = format!(
                "/login?next={}",
                crate::url::urlencode(&format!("/p/{slug}/edit"))
            );
            view! {
                <div class="empty-state" id="edit-login">
                    <h2>"Log in to edit"</h2>
                    <p>"Only the project's maintainer can edit it."</p>
                    <p><a class="btn primary" href=login>"Log in"</a></p>
                </div>
            }
            .into_any()
        }
        None => view! {
            <div class="empty-state" id="edit-refused">
                <h2>"Not your project"</h2>
                <p>"Only the project's maintainer (or an admin) can edit it."</p>
            </div>
        }
        .into_any(),
    };
    view! {
        <Title text=format!("Edit {name}")/>
        <div class="crumbs"><a href=back>{name.clone()}</a>" / Edit"</div>
        <h1>"Edit " {name}</h1>
        <p class="lead-left">"Change how the project is described. The image is not rebuilt: the catalogue, search and the project page show the change at once, and the next Try prints the new welcome text."</p>
        <noscript><p class="error">"Editing needs JavaScript."</p></noscript>
        {body}
    }
}

#[component]
fn EditForm(slug: String, metadata: ProjectMetadata, categories: Vec<String>) -> impl IntoView {
    let values = ProjectValues::new(metadata);
    let problems = FieldProblems::default();
    let message = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let back = format!("/p/{slug}");
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        message.set(String::new());
        let slug = slug.clone();
        leptos::task::spawn_local(async move {
            #[cfg(feature = "hydrate")]
            {
                let url = format!("/api/projects/{slug}");
                match crate::client::call("PATCH", &url, Some(values.body())).await {
                    Ok(r) if r.status == 200 => {
                        crate::client::flash("Saved. The project page and search show the change.");
                        crate::client::go(&format!("/p/{slug}"));
                        return;
                    }
                    Ok(r) => {
                        problems.set(crate::pages::publish::problems_of(&r.body));
                        message.set(r.message());
                    }
                    Err(e) => message.set(e),
                }
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = (slug, values);
            busy.set(false);
        });
    };
    view! {
        <form class="publish-form" id="edit-form" on:submit=submit novalidate>
            <ProjectFields values problems categories/>
            <Show when=move || !message.read().is_empty()>
                <p class="form-message" id="form-message">{move || message.get()}</p>
            </Show>
            <ProblemList problems/>
            <div class="form-actions">
                <button type="submit" class="btn primary big" id="save" disabled=move || busy.get()>"Save changes"</button>
                <a class="btn" href=back>"Cancel"</a>
            </div>
        </form>
    }
}
