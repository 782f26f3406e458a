//! A maintainer's change of a published project's metadata, without a rebuild: every field sent
//! is checked exactly as publishing checks it (`publish::check_*`), then only those fields are
//! written, the project's search text following in the same transaction.
use crate::builds::publish::{self, Problems, PublishError};
use serde::{Deserialize, Deserializer};
use vocab::{FieldProblem, OwnerKey};

/// `PATCH /api/projects/{slug}`: any subset of these fields. A field left out stays as it is;
/// `null` empties it (refused for the required ones, as publishing refuses an empty one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectEdit {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub summary: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub category: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub homepage: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub repository: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub license: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub welcome: Option<Option<String>>,
}

/// The fields an edit may name, as `ProjectEdit` spells them.
pub const FIELDS: &[&str] = &[
    "name",
    "summary",
    "description",
    "category",
    "tags",
    "homepage",
    "repository",
    "license",
    "welcome",
];

/// A field that is in the request: `Some(None)` for `null` (an absent one is `None` by default).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The request body as an edit: an unknown field is a problem named after it (a typo must not
/// pass as "nothing to change"), a value of the wrong type a bad request.
pub fn parse(body: serde_json::Value) -> Result<ProjectEdit, PublishError> {
    let serde_json::Value::Object(fields) = &body else {
        return Err(PublishError::BadJson(
            "Send a JSON object with the fields to change.".into(),
        ));
    };
    let unknown: Vec<FieldProblem> = fields
        .keys()
        .filter(|k| !FIELDS.contains(&k.as_str()))
        .map(|k| {
            FieldProblem::new(
                k,
                format!(
                    "There is no field '{k}' to edit; the fields are {}.",
                    FIELDS.join(", ")
                ),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(PublishError::Invalid(unknown));
    }
    serde_json::from_value(body).map_err(|e| PublishError::BadJson(e.to_string()))
}

/// Checks every field of `edit` as publishing would; all problems at once.
pub fn check_edit(edit: &ProjectEdit) -> Result<db::projects::MetadataChange, Vec<FieldProblem>> {
    let mut p = Problems::default();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let change = db::projects::MetadataChange {
        name: edit
            .name
            .as_ref()
            .and_then(|v| p.one(publish::check_name(&text(v)))),
        summary: edit
            .summary
            .as_ref()
            .and_then(|v| p.one(publish::check_summary(&text(v)))),
        description: edit
            .description
            .as_ref()
            .and_then(|v| p.one(publish::check_description(&text(v)))),
        category: edit
            .category
            .as_ref()
            .and_then(|v| p.one(publish::check_category(&text(v)))),
        tags: edit
            .tags
            .as_ref()
            .and_then(|v| p.many(publish::check_tags(v.as_deref().unwrap_or_default()))),
        homepage: edit
            .homepage
            .as_ref()
            .and_then(|v| p.one(publish::check_homepage(v.as_deref()))),
        repository: edit
            .repository
            .as_ref()
            .and_then(|v| p.one(publish::check_repository(v.as_deref()))),
        license: edit
            .license
            .as_ref()
            .and_then(|v| p.one(publish::check_license(v.as_deref()))),
        welcome: edit
            .welcome
            .as_ref()
            .and_then(|v| p.one(publish::check_welcome(v.as_deref()))),
    };
    if p.0.is_empty() {
        Ok(change)
    } else {
        Err(p.0)
    }
}

/// What an edit did.
pub struct Edited {
    /// The project as it is now.
    pub project: db::projects::Model,
    /// Its welcome text changed: sandboxes started before print the old one.
    pub welcome_changed: bool,
}

/// Applies `edit` to project `slug` for its maintainer or an admin: nothing is written unless
/// every field passes. A hidden project is an admin's only (its maintainer may be banned).
pub async fn edit(
    db: &db::DatabaseConnection,
    owner: &OwnerKey,
    is_admin: bool,
    slug: &str,
    edit: &ProjectEdit,
) -> Result<Edited, PublishError> {
    let no_such = || PublishError::NoSuchProject(slug.to_string());
    let project = db::projects::by_slug(db, slug)
        .await?
        .filter(|p| p.status != db::ProjectStatus::Hidden || is_admin)
        .ok_or_else(no_such)?;
    if !is_admin && project.maintainer.as_ref() != Some(owner) {
        return Err(PublishError::NotMaintainer("edit"));
    }
    let change = check_edit(edit).map_err(PublishError::Invalid)?;
    let welcome_changed = change
        .welcome
        .as_ref()
        .is_some_and(|w| *w != project.welcome);
    let project = db::projects::edit(db, project.id, &change)
        .await?
        .ok_or_else(no_such)?;
    Ok(Edited {
        project,
        welcome_changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(r: Result<ProjectEdit, PublishError>) -> Vec<String> {
        match r {
            Err(PublishError::Invalid(ps)) => ps.into_iter().map(|p| p.field).collect(),
            other => panic!("expected field problems, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn only_the_fields_sent_change_and_null_empties() {
        let edit =
            parse(json!({"summary": "  New words.  ", "license": null, "tags": ["Ça", "ça", "x"]}))
                .unwrap_or_else(|e| panic!("{e}"));
        let change = check_edit(&edit).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            change,
            db::projects::MetadataChange {
                summary: Some("New words.".into()),
                license: Some(None),
                tags: Some(vec!["ca".into(), "x".into()]),
                ..Default::default()
            }
        );
        // Empty strings clear optional fields, as publishing stores them.
        let edit = parse(json!({"homepage": "", "welcome": " "})).unwrap_or_else(|e| panic!("{e}"));
        let change = check_edit(&edit).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((change.homepage, change.welcome), (Some(None), Some(None)));
    }

    /// The same problems publishing reports for the same values, field by field.
    #[test]
    fn bad_fields_get_publishings_answers() {
        let bad = json!({
            "name": null, "summary": "s".repeat(161), "category": "Nope", "tags": ["not ok!"],
            "homepage": "javascript:alert(1)", "repository": "https://exa mple.com",
            "license": "l".repeat(41), "welcome": "bell\u{7}", "description": "x\u{0}"
        });
        let edit = parse(bad.clone()).unwrap_or_else(|e| panic!("{e}"));
        let edited = check_edit(&edit).err().unwrap_or_default();
        let mut form = bad;
        form["name"] = json!("");
        form["slug"] = json!("ok-slug");
        form["script"] = json!("ls\n");
        let form: publish::ProjectForm =
            serde_json::from_value(form).unwrap_or_else(|e| panic!("{e}"));
        let published = publish::check_form(&form, "base").err().unwrap_or_default();
        assert_eq!(edited.len(), 9, "{edited:?}");
        assert_eq!(edited, published);
    }

    #[test]
    fn unknown_fields_are_named_and_wrong_types_refused() {
        assert_eq!(
            fields_of(parse(
                json!({"summary": "ok", "sumary": "typo", "slug": "x"})
            )),
            // In key order (the body is read as a sorted map).
            ["slug", "sumary"]
        );
        assert!(matches!(
            parse(json!({"tags": "one,two"})),
            Err(PublishError::BadJson(_))
        ));
        assert!(matches!(parse(json!([1])), Err(PublishError::BadJson(_))));
    }
}
