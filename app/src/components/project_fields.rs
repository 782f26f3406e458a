//! The metadata fields of a project, shared by the publish page and the edit page: one set of
//! inputs (ids, limits, the problem under each), and one `field_label` for every place a field is
//! named (its label, the list of problems).
use crate::components::field_problems::FieldProblems;
use crate::model::ProjectMetadata;
use leptos::prelude::*;

/// A field's name as the forms show it: its label, and how the list of problems names it.
pub fn field_label(field: &str) -> &str {
    match field {
        "name" => "Name",
        "slug" => "Slug",
        "summary" => "Summary",
        "category" => "Category",
        "tags" => "Tags",
        "license" => "License",
        "homepage" => "Homepage",
        "repository" => "Repository",
        "description" => "Description",
        "welcome" => "Welcome text",
        "script" => "Install script",
        "dockerfile" => "Dockerfile",
        "image" => "Image reference",
        "check_command" => "Smoke check command",
        "check_expect" => "Smoke check output",
        other => other,
    }
}

/// The values of the metadata fields as they are being edited.
#[derive(Clone, Copy)]
pub struct ProjectValues {
    pub name: RwSignal<String>,
    pub summary: RwSignal<String>,
    pub description: RwSignal<String>,
    pub category: RwSignal<String>,
    /// Comma-separated, as typed.
    pub tags: RwSignal<String>,
    pub homepage: RwSignal<String>,
    pub repository: RwSignal<String>,
    pub license: RwSignal<String>,
    pub welcome: RwSignal<String>,
}

impl ProjectValues {
    pub fn new(m: ProjectMetadata) -> Self {
        let text = |v: Option<String>| RwSignal::new(v.unwrap_or_default());
        Self {
            name: RwSignal::new(m.name),
            summary: RwSignal::new(m.summary),
            description: RwSignal::new(m.description),
            category: RwSignal::new(m.category),
            tags: RwSignal::new(m.tags.join(", ")),
            homepage: text(m.homepage),
            repository: text(m.repository),
            license: text(m.license),
            welcome: text(m.welcome),
        }
    }

    /// The fields as `POST /api/projects` and `PATCH /api/projects/{slug}` take them: tags as a
    /// list, an empty optional field as `null`.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub fn body(self) -> serde_json::Value {
        let opt = |s: RwSignal<String>| {
            let s = s.get_untracked();
            if s.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(s)
            }
        };
        serde_json::json!({
            "name": self.name.get_untracked(),
            "summary": self.summary.get_untracked(),
            "description": self.description.get_untracked(),
            "category": self.category.get_untracked(),
            "tags": self.tags.get_untracked().split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect::<Vec<_>>(),
            "homepage": opt(self.homepage),
            "repository": opt(self.repository),
            "license": opt(self.license),
            "welcome": opt(self.welcome),
        })
    }
}

/// A field's label text, with an optional hint after it.
#[component]
fn LabelText(field: &'static str, #[prop(optional)] hint: &'static str) -> impl IntoView {
    view! {
        <span class="field-name">{field_label(field)}
            {(!hint.is_empty()).then(|| view! { <span class="label-hint">" "{hint}</span> })}
        </span>
    }
}

/// The metadata inputs. With `slug` (publishing), the slug field follows the name until it is
/// edited by hand; an edit keeps the slug (it is the project's address and its badges').
#[component]
pub fn ProjectFields(
    values: ProjectValues,
    problems: FieldProblems,
    categories: Vec<String>,
    #[prop(optional)] slug: Option<RwSignal<String>>,
) -> impl IntoView {
    let slug_edited = RwSignal::new(false);
    let on_name = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        if let Some(slug) = slug {
            if !slug_edited.get_untracked() {
                slug.set(slug_from(&value));
            }
        }
        values.name.set(value);
    };
    let category = values.category;
    view! {
        <div class="form-grid">
            <label class=problems.class_of("name")><LabelText field="name"/>
                <input id="name" required maxlength="60" placeholder="Hello Tool" value=values.name.get_untracked()
                    prop:value=move || values.name.get() on:input=on_name/>
                <small class="field-problem">{problems.message_of("name")}</small>
            </label>
            {slug.map(|slug| view! {
                <label class=problems.class_of("slug")><LabelText field="slug" hint="(the address: /p/slug)"/>
                    <input id="slug" required maxlength="40" placeholder="hello-tool" prop:value=move || slug.get()
                        on:input=move |ev| { slug_edited.set(true); slug.set(event_target_value(&ev)); }/>
                    <small class="field-problem">{problems.message_of("slug")}</small>
                </label>
            })}
            <label class=problems.class_of("summary")><LabelText field="summary" hint="(one line)"/>
                <input id="summary" required maxlength="160" placeholder="What it does, in one line."
                    value=values.summary.get_untracked() bind:value=values.summary/>
                <small class="field-problem">{problems.message_of("summary")}</small>
            </label>
            <label class=problems.class_of("category")><LabelText field="category"/>
                <select id="category" on:change=move |ev| category.set(event_target_value(&ev)) prop:value=move || category.get()>
                    // No category is preselected when publishing: the maintainer picks one.
                    <option value="" disabled=true selected=category.get_untracked().is_empty()>"Choose a category"</option>
                    {categories.into_iter().map(|c| {
                        let selected = category.get_untracked() == c;
                        view! { <option value=c.clone() selected=selected>{c.clone()}</option> }
                    }).collect_view()}
                </select>
                <small class="field-problem">{problems.message_of("category")}</small>
            </label>
            <label class=problems.class_of("tags")><LabelText field="tags" hint="(comma-separated)"/>
                <input id="tags" placeholder="json, cli" value=values.tags.get_untracked() bind:value=values.tags/>
                <small class="field-problem">{problems.message_of("tags")}</small>
            </label>
            <label class=problems.class_of("license")><LabelText field="license"/>
                <input id="license" maxlength="40" placeholder="MIT" value=values.license.get_untracked() bind:value=values.license/>
                <small class="field-problem">{problems.message_of("license")}</small>
            </label>
            <label class=problems.class_of("homepage")><LabelText field="homepage"/>
                <input id="homepage" type="url" placeholder="https://…" value=values.homepage.get_untracked() bind:value=values.homepage/>
                <small class="field-problem">{problems.message_of("homepage")}</small>
            </label>
            <label class=problems.class_of("repository")><LabelText field="repository"/>
                <input id="repository" type="url" placeholder="https://github.com/…" value=values.repository.get_untracked() bind:value=values.repository/>
                <small class="field-problem">{problems.message_of("repository")}</small>
            </label>
        </div>
        <label class=problems.class_of("description")><LabelText field="description" hint="(Markdown: what to try first)"/>
            <textarea id="description" rows="6" bind:value=values.description></textarea>
            <small class="field-problem">{problems.message_of("description")}</small>
        </label>
        <label class=problems.class_of("welcome")><LabelText field="welcome" hint="(printed in the terminal before the first prompt)"/>
            <textarea id="welcome" rows="2" maxlength="300" placeholder="Try:  hello-tool --help" bind:value=values.welcome></textarea>
            <small class="field-problem">{problems.message_of("welcome")}</small>
        </label>
    }
}

/// Every problem the server named, each by its field's label (and line, for recipes).
#[component]
pub fn ProblemList(problems: FieldProblems) -> impl IntoView {
    view! {
        <Show when=move || !problems.is_empty()>
            <ul class="problems" id="problems">
                {move || problems.all().into_iter().map(|p| {
                    let label = field_label(&p.field).to_string();
                    let where_ = match p.line { Some(l) => format!("{label}, line {l}"), None => label };
                    view! { <li data-field=p.field.clone()><b>{where_}</b>": "{p.message}</li> }
                }).collect_view()}
            </ul>
        </Show>
    }
}

/// The address a name suggests: lower case, words joined by `-` (`Hello Tool` → `hello-tool`).
fn slug_from(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-')
        .chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::{field_label, slug_from};

    #[test]
    fn slugs_follow_names() {
        assert_eq!(slug_from("Hello Tool"), "hello-tool");
        assert_eq!(slug_from("  cowsay & fortune!! "), "cowsay-fortune");
        assert_eq!(slug_from("Café Crème"), "cafe-creme");
        assert_eq!(slug_from(&"x".repeat(50)).len(), 40);
    }

    #[test]
    fn every_field_the_server_names_has_a_label() {
        for f in [
            "name",
            "slug",
            "summary",
            "category",
            "tags",
            "license",
            "homepage",
            "repository",
            "description",
            "welcome",
            "script",
            "dockerfile",
            "check_command",
            "check_expect",
        ] {
            assert_ne!(field_label(f), f, "{f}");
        }
    }
}
