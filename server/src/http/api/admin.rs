//! `/api/admin/*`: every running sandbox (with live CPU and memory) and Stop; users (promote,
//! ban); projects and images (hide, delete; rebuild is `POST /api/projects/{slug}/builds`); the
//! featured banner; live numbers. Everyone who is not an admin gets 403.
use super::body;
use crate::{
    http::error::{ApiError, ApiResult},
    http::state::AppState,
};
use app::model::{
    AdminOverview, AdminProject, AdminProjects, AdminSandbox, AdminSandboxes, AdminUser,
    AdminUsers, EndReason, FeaturedSetting, Identity, OwnerKey, PoolShare, ProjectChange,
    ProjectStatusNow, UserChange,
};
use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::StatusCode,
    Extension, Json,
};
use db::accounts;
use std::collections::HashMap;

pub fn require_admin(me: &Identity) -> ApiResult<()> {
    if me.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "This page is for the site's admins.".into(),
        ))
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: u64,
}

const PAGE: u64 = 50;

impl ListQuery {
    fn check(&self) -> ApiResult<()> {
        if self.q.len() > 200 {
            return Err(ApiError::field("q", "A search has at most 200 characters."));
        }
        Ok(())
    }

    fn offset(&self) -> u64 {
        self.page.min(10_000) * PAGE
    }
}

/// Who an owner key is, for people: an account's email, or "visitor #1a2b3c · 192.0.2.7" (a
/// short hash of the visitor's key, never the key itself, which is their cookie's identity; and
/// the address their sandbox came from, when known).
async fn owner_labels<'a>(
    st: &AppState,
    owners: impl Iterator<Item = (&'a OwnerKey, Option<&'a str>)>,
) -> HashMap<OwnerKey, String> {
    let mut out = HashMap::new();
    for (key, ip) in owners {
        if out.contains_key(key) {
            continue;
        }
        let label = match key.user_id() {
            Some(id) => match accounts::by_id(&st.db, id).await {
                Ok(Some(u)) => u.email,
                _ => "deleted account".into(),
            },
            None => visitor_label(key, ip),
        };
        out.insert(key.clone(), label);
    }
    out
}

/// "visitor #1a2b3c", and " · <ip>" when the client address is known.
pub fn visitor_label(key: &OwnerKey, ip: Option<&str>) -> String {
    let short: String = crate::secrets::sha256_hex(&key.to_string())
        .chars()
        .take(6)
        .collect();
    match ip.filter(|ip| !ip.is_empty()) {
        Some(ip) => format!("visitor #{short} · {ip}"),
        None => format!("visitor #{short}"),
    }
}

/// `GET /api/admin/overview` — live numbers and the banner.
pub async fn overview(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
) -> ApiResult<Json<AdminOverview>> {
    require_admin(&me)?;
    let today = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .unwrap_or_else(chrono::Utc::now);
    Ok(Json(AdminOverview {
        running: db::sandboxes::count_active(&st.db).await?,
        queue: st.sandboxes.queue_length(),
        tries_today: db::sandboxes::count_tries_since(&st.db, today).await?,
        builds_queued: st.metrics.builds_queued.get().max(0),
        builds_running: st.metrics.builds_running.get().max(0),
        users: accounts::count(&st.db).await?,
        featured: db::settings::featured(&st.db)
            .await?
            .map(|f| FeaturedSetting {
                slug: f.slug,
                line: f.line,
            }),
    }))
}

/// `GET /api/admin/sandboxes` — every running sandbox with owner, project, age, CPU and memory.
pub async fn sandboxes(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
) -> ApiResult<Json<AdminSandboxes>> {
    require_admin(&me)?;
    let (pooled, active): (Vec<_>, Vec<_>) = db::sandboxes::all_active(&st.db)
        .await?
        .into_iter()
        .partition(|s| s.owner == OwnerKey::Pool);
    let mut pool: Vec<PoolShare> = Vec::new();
    for m in &pooled {
        match pool.iter_mut().find(|p| p.project == m.project_slug) {
            Some(p) => p.members += 1,
            None => pool.push(PoolShare {
                project: m.project_slug.clone(),
                members: 1,
            }),
        }
    }
    pool.sort_by(|a, b| b.members.cmp(&a.members).then(a.project.cmp(&b.project)));
    let labels = owner_labels(
        &st,
        active.iter().map(|s| (&s.owner, s.client_ip.as_deref())),
    )
    .await;
    let ids: Vec<&str> = active.iter().map(|s| s.id.as_str()).collect();
    let usage = st.sandboxes.usage(&ids).await;
    let now = chrono::Utc::now();
    let sandboxes = active
        .iter()
        .zip(usage)
        .map(|(s, u)| AdminSandbox {
            id: s.id.clone(),
            owner: labels.get(&s.owner).cloned().unwrap_or_default(),
            project: s.project_slug.clone(),
            state: s.state,
            age_secs: (now - s.created_at).num_seconds().max(0),
            seconds_left: (s.expires_at - now).num_seconds().max(0),
            cpu_percent: u.map(|u| u.cpu_percent),
            memory_bytes: u.map(|u| u.memory_bytes),
            memory_limit_bytes: u.map(|u| u.memory_limit_bytes),
            node: s.node.clone(),
        })
        .collect();
    let nodes = st.sandboxes.nodes().await;
    Ok(Json(AdminSandboxes {
        sandboxes,
        pool,
        runtime: st.sandboxes.engine_facts().1,
        nodes,
    }))
}

/// `POST /api/admin/nodes/{name}/drain` and `…/activate` — 204: the node takes no new sandboxes
/// (its running ones keep running to their end) or takes them again, through the Swarm manager.
pub async fn node_availability(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path((name, action)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    let drained = match action.as_str() {
        "drain" => true,
        "activate" => false,
        _ => {
            return Err(ApiError::NotFound(
                "Nodes can be drained or activated.".into(),
            ))
        }
    };
    let Some(nodes) = st.sandboxes.nodes().await else {
        return Err(ApiError::Conflict(
            "no_nodes",
            "This site runs its sandboxes on one engine: it has no nodes to drain.".into(),
        ));
    };
    if !nodes.iter().any(|n| n.name == name) {
        return Err(ApiError::NotFound("No sandbox node has this name.".into()));
    }
    st.sandboxes
        .set_node_drained(&name, drained)
        .await
        .map_err(|e| ApiError::Unavailable(format!("The swarm manager refused: {e}")))?;
    tracing::info!(node = %name, drained, "an admin changed a sandbox node's availability");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/admin/sandboxes/{id}` — 204.
pub async fn stop_sandbox(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    let s = match db::sandboxes::get(&st.db, &id).await? {
        Some(s) if s.active => s,
        _ => return Err(ApiError::NotFound("No running sandbox has this id.".into())),
    };
    st.sandboxes.stop(&s.id, EndReason::StoppedByAdmin).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn admin_user(u: &accounts::Account) -> AdminUser {
    AdminUser {
        id: u.id,
        email: u.email.clone(),
        name: u.name.clone(),
        role: u.role,
        banned: u.banned,
        created_at: u.created_at.to_rfc3339(),
        last_login_at: u.last_login_at.map(|d| d.to_rfc3339()),
    }
}

/// `GET /api/admin/users?q=&page=`
pub async fn users(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AdminUsers>> {
    require_admin(&me)?;
    q.check()?;
    let (rows, total) = accounts::list(&st.db, &q.q, PAGE, q.offset()).await?;
    Ok(Json(AdminUsers {
        users: rows.iter().map(admin_user).collect(),
        total,
        page_size: PAGE,
    }))
}

/// `PATCH /api/admin/users/{id} {role?, banned?}` — a ban also stops the person's sandbox and
/// ends their sessions and API tokens.
pub async fn change_user(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
    change: Result<Json<UserChange>, JsonRejection>,
) -> ApiResult<Json<AdminUser>> {
    require_admin(&me)?;
    let change = body(change)?;
    let not_found = || ApiError::NotFound("There is no such account.".into());
    let id: i32 = id.parse().map_err(|_| not_found())?;
    let user = accounts::by_id(&st.db, id).await?.ok_or_else(not_found)?;
    if me.user.as_ref().map(|u| u.id) == Some(id) {
        return Err(ApiError::bad(
            "own_account",
            "You cannot change your own role or ban yourself; ask another admin.",
        ));
    }
    if let Some(role) = change.role {
        accounts::set_role(&st.db, id, role).await?;
    }
    match change.banned {
        Some(true) => {
            st.lifecycle.ban(id).await?;
        }
        Some(false) => st.lifecycle.unban(id).await?,
        None => {}
    }
    let user = accounts::by_id(&st.db, user.id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(admin_user(&user)))
}

/// `GET /api/admin/projects?q=&page=` — every project, any status, with its image.
pub async fn projects(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AdminProjects>> {
    require_admin(&me)?;
    q.check()?;
    let (rows, total) = db::projects::list_all(&st.db, &q.q, PAGE, q.offset()).await?;
    let projects = admin_projects(&st, &rows).await;
    Ok(Json(AdminProjects {
        projects,
        total,
        page_size: PAGE,
    }))
}

async fn admin_projects(st: &AppState, rows: &[db::projects::Model]) -> Vec<AdminProject> {
    let labels = owner_labels(
        st,
        rows.iter()
            .filter_map(|p| p.maintainer.as_ref())
            .map(|k| (k, None)),
    )
    .await;
    rows.iter()
        .map(|p| AdminProject {
            slug: p.slug.clone(),
            name: p.name.clone(),
            status: p.status,
            category: p.category.clone(),
            tries: p.tries,
            maintainer: p.maintainer.as_ref().and_then(|m| labels.get(m)).cloned(),
            image: p
                .image_repo
                .as_ref()
                .map(|r| format!("{r}@{}", p.image_digest.as_deref().unwrap_or_default())),
            image_size: p.image_size,
            updated_at: p.updated_at.to_rfc3339(),
            listed: p.listed,
        })
        .collect()
}

/// `PATCH /api/admin/projects/{slug} {hidden}` — hide from the catalogue, or bring back.
pub async fn change_project(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(slug): Path<String>,
    change: Result<Json<ProjectChange>, JsonRejection>,
) -> ApiResult<Json<ProjectStatusNow>> {
    require_admin(&me)?;
    let change = body(change)?;
    let p = db::projects::by_slug(&st.db, &slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("There is no project '{slug}'.")))?;
    let status = match (change.hidden, p.image_digest.is_some()) {
        (true, _) => db::ProjectStatus::Hidden,
        (false, true) => db::ProjectStatus::Live,
        (false, false) => {
            return Err(ApiError::Conflict(
                "no_image",
                "This project has no published image yet: rebuild it instead.".into(),
            ))
        }
    };
    // Already there (hiding a hidden project) is not an error: the answer says where it is.
    let now = if db::projects::set_status(&st.db, p.id, status).await? {
        status
    } else {
        p.status
    };
    Ok(Json(ProjectStatusNow {
        slug: p.slug,
        status: now,
    }))
}

/// `DELETE /api/admin/projects/{slug}` — see `Lifecycle::remove_project`. Try statistics stay.
pub async fn delete_project(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    let p = db::projects::by_slug(&st.db, &slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("There is no project '{slug}'.")))?;
    st.lifecycle.remove_project(&p, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/review` — projects waiting for an admin's review (moderation), oldest first.
pub async fn review(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
) -> ApiResult<Json<AdminProjects>> {
    require_admin(&me)?;
    let rows = db::projects::awaiting_review(&st.db, PAGE).await?;
    let projects = admin_projects(&st, &rows).await;
    Ok(Json(AdminProjects {
        total: projects.len() as u64,
        projects,
        page_size: PAGE,
    }))
}

/// `POST /api/admin/projects/{slug}/approve` — lists the project, and its maintainer's next
/// projects are listed at once.
pub async fn approve_project(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(slug): Path<String>,
) -> ApiResult<Json<ProjectStatusNow>> {
    require_admin(&me)?;
    let p = db::projects::by_slug(&st.db, &slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("There is no project '{slug}'.")))?;
    db::projects::set_listed(&st.db, p.id, true).await?;
    if let Some(id) = p.maintainer.as_ref().and_then(OwnerKey::user_id) {
        accounts::set_approved_publisher(&st.db, id).await?;
    }
    tracing::info!(project = %slug, "project approved");
    Ok(Json(ProjectStatusNow {
        slug: p.slug,
        status: p.status,
    }))
}

/// `PUT /api/admin/featured {slug, line}`
pub async fn set_featured(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    form: Result<Json<FeaturedSetting>, JsonRejection>,
) -> ApiResult<Json<FeaturedSetting>> {
    require_admin(&me)?;
    let f = body(form)?;
    let featured = db::settings::Featured {
        slug: f.slug.trim().to_string(),
        line: f.line.trim().to_string(),
    };
    match db::settings::validate_featured(&st.db, &featured).await {
        Ok(()) => {}
        Err(db::settings::FeaturedError::Db(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::field(e.field(), e.to_string())),
    }
    db::settings::set_featured(&st.db, Some(&featured)).await?;
    Ok(Json(FeaturedSetting {
        slug: featured.slug,
        line: featured.line,
    }))
}

/// `DELETE /api/admin/featured`
pub async fn clear_featured(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    db::settings::set_featured(&st.db, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::visitor_label;
    use app::model::OwnerKey;

    fn v(id: &str) -> OwnerKey {
        OwnerKey::Visitor(id.into())
    }

    #[test]
    fn visitors_are_told_apart_without_their_key() {
        let a = visitor_label(&v("alpha-secret"), Some("192.0.2.7"));
        let b = visitor_label(&v("beta-secret"), None);
        assert!(
            a.starts_with("visitor #") && a.ends_with(" · 192.0.2.7"),
            "{a}"
        );
        assert_eq!(b.len(), "visitor #".len() + 6, "{b}");
        assert_ne!(&a[..15], &b[..15], "two visitors, two labels");
        assert!(
            !a.contains("alpha") && !b.contains("beta"),
            "the key stays secret"
        );
        assert_eq!(visitor_label(&v("alpha-secret"), Some("")), &a[..15]);
    }
}
