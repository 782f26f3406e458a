use crate::{
    http::error::{ApiError, ApiResult},
    http::state::AppState,
};
use app::{
    api::ssr::{card, detail},
    model::{Identity, ProjectInfo, Recommendations, SearchResults, PER_PAGE},
};
use axum::response::IntoResponse;
use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    Extension, Json,
};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    sort: String,
    page: Option<String>,
}

/// `GET /api/projects?q=&category=&sort=&page=` (sort: relevance, newest, name) — the same for everyone: answers are kept per
/// catalogue version and query for a couple of seconds (`page_cache::Memo`).
pub async fn list(
    State(st): State<AppState>,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::response::Response> {
    if p.q.len() > 200 {
        return Err(ApiError::bad(
            "bad_query",
            "The search text is too long (200 characters at most).",
        ));
    }
    let page = match p.page.as_deref() {
        None | Some("") => 1,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| ApiError::bad("bad_page", "page must be a whole number from 1."))?,
    };
    let sort = db::projects::SearchSort::parse(&p.sort)
        .ok_or_else(|| ApiError::bad("bad_sort", "sort is one of relevance, newest or name."))?;
    let version = st.search.version(&st.db).await?.unwrap_or_default();
    let key = format!(
        "{version}\n{}\n{}\n{}\n{page}",
        p.q,
        p.category,
        sort.as_str()
    );
    let json = match st.pages.searches.get(&st.pages, &key) {
        Some(hit) => hit,
        None => {
            let generation = st.pages.generation();
            let search = db::projects::Search {
                q: p.q,
                category: Some(p.category).filter(|c| !c.is_empty()),
                page,
                per_page: PER_PAGE,
                sort,
            };
            let found = st.search.find(&st.db, &search).await?;
            let results = SearchResults {
                items: found.items.iter().map(card).collect(),
                total: found.total,
                page,
                per_page: PER_PAGE,
                searched_for: found.searched_for,
                categories: Vec::new(),
            };
            let json = bytes::Bytes::from(serde_json::to_vec(&results).unwrap_or_default());
            st.pages
                .searches
                .put(&st.pages, generation, key, json.clone());
            json
        }
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response())
}

/// `GET /api/projects/{slug}`
pub async fn get(
    State(st): State<AppState>,
    Path(slug): Path<String>,
) -> ApiResult<Json<ProjectInfo>> {
    let p = db::projects::by_slug(&st.db, &slug)
        .await?
        .filter(|p| p.status != db::ProjectStatus::Hidden)
        .ok_or_else(|| ApiError::NotFound(format!("There is no project called {slug:?}.")))?;
    Ok(Json(info(p)))
}

/// `PATCH /api/projects/{slug}` — 200 with the project as `GET` gives it: its maintainer (or an
/// admin) changes its metadata (any subset of `builds::edit::FIELDS`, each checked as publishing
/// checks it; nothing changes unless all pass), without a rebuild. Search and every page show
/// the change at once (the catalogue version and the page cache follow every successful write).
pub async fn edit(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(slug): Path<String>,
    form: Result<Json<serde_json::Value>, JsonRejection>,
) -> ApiResult<Json<ProjectInfo>> {
    let form = crate::builds::edit::parse(super::body(form)?)?;
    let edited = crate::builds::edit::edit(&st.db, &me.key, me.is_admin, &slug, &form).await?;
    if edited.welcome_changed {
        // Pre-started sandboxes print the welcome text they started with.
        if let Err(e) = st.sandboxes.renew_pool(edited.project.id).await {
            tracing::warn!(project = %slug, error = %e, "could not renew the warm pool after an edit");
        }
    }
    Ok(Json(info(edited.project)))
}

/// A project as the API gives it.
fn info(p: db::projects::Model) -> ProjectInfo {
    let d = detail(&p);
    let image = p
        .image_repo
        .as_ref()
        .zip(p.image_digest.as_ref())
        .map(|(r, dg)| format!("{r}@{dg}"));
    ProjectInfo {
        image,
        description_html: d.description_html,
        tags: d.card.tags,
        status: p.status,
        created_at: p.created_at.to_rfc3339(),
        updated_at: p.updated_at.to_rfc3339(),
        slug: p.slug,
        name: p.name,
        summary: p.summary,
        description: p.description,
        category: p.category,
        tries: p.tries,
        homepage: p.homepage,
        repository: p.repository,
        license: p.license,
        image_size: p.image_size,
        egress: p.egress,
        listed: p.listed,
        welcome: p.welcome,
    }
}

/// `DELETE /api/projects/{slug}` — 204: its maintainer (or an admin) deletes it: sandboxes
/// stopped, images removed from the registry, builds gone, tries kept anonymised.
pub async fn delete(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(slug): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    let p = db::projects::by_slug(&st.db, &slug)
        .await?
        .filter(|p| p.status != db::ProjectStatus::Hidden || me.is_admin)
        .ok_or_else(|| ApiError::NotFound(format!("There is no project called {slug:?}.")))?;
    let mine = p.maintainer.as_ref() == Some(&me.key);
    if !(mine || me.is_admin) {
        return Err(ApiError::Forbidden(
            "Only the project's maintainer (or an admin) can delete it.".into(),
        ));
    }
    st.lifecycle.remove_project(&p, !mine).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /api/recommendations`: "open source you may like" for the caller (trending without history).
pub async fn recommendations(
    State(st): State<AppState>,
    Extension(who): Extension<Identity>,
) -> ApiResult<Json<Recommendations>> {
    // As on the home page: a newcomer's tour leaves out what Trending shows.
    let shown: Vec<i32> = db::recommend::trending(&st.db, 12)
        .await?
        .iter()
        .map(|p| p.id)
        .collect();
    let recs = db::recommend::for_owner(&st.db, &who.key, 10, &shown).await?;
    Ok(Json(Recommendations {
        items: recs.items.iter().map(card).collect(),
        personal: recs.personal,
    }))
}
