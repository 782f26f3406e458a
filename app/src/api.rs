//! Server functions: the data behind each page. They run on the server; the browser calls them
//! over HTTP under `/sfn/…`. The JSON API of ARCHITECTURE.md §3 lives in the server crate.
use crate::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

/// What the server hands to server functions (through Leptos context).
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct ServerContext {
    pub db: db::DatabaseConnection,
    pub search: std::sync::Arc<db::search::SearchIndex>,
    /// Public base URL of the site (badge snippets).
    pub public_url: String,
    pub max_extensions: i32,
    pub base_image: String,
    /// Registries images may be imported from (`TRYTHIS_IMPORT_REGISTRIES`), as the form lists them.
    pub import_registries: Vec<String>,
    /// The largest image an import copies, MB compressed.
    pub import_max_mb: u64,
    /// Builds that run at once (the queue's estimate).
    pub build_concurrency: u64,
    /// OAuth providers configured (`github`, `google`): their buttons show only then.
    pub providers: Vec<String>,
    /// Share links, as the sandbox service reads them (the `/watch/{token}` page).
    pub shares: std::sync::Arc<dyn ShareDirectory>,
}

/// What a share link opens, answered by the server's sandbox service (its rules live there).
#[cfg(feature = "ssr")]
pub trait ShareDirectory: Send + Sync {
    /// The share link with `token` as a viewer finds it now; Err: a failure of ours.
    fn look_up(
        &self,
        token: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ShareLookup, String>> + Send>>;
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Server-side helpers shared with the server crate's JSON API.
    use super::*;
    use db::entities::{project, sandbox};

    pub fn context() -> Result<ServerContext, ServerFnError> {
        use_context::<ServerContext>().ok_or_else(|| ServerFnError::new("server context missing"))
    }

    pub async fn identity() -> Result<Identity, ServerFnError> {
        let axum::Extension(id) = leptos_axum::extract::<axum::Extension<Identity>>().await?;
        Ok(id)
    }

    pub fn internal(e: impl std::fmt::Display) -> ServerFnError {
        leptos::logging::error!("server function failed: {e}");
        ServerFnError::new("Something went wrong on our side. Please try again.")
    }

    /// Whether `me` may rebuild, edit or delete project `p`: its maintainer or an admin.
    pub fn may_maintain(p: &project::Model, me: &Identity) -> bool {
        me.is_admin || p.maintainer.as_ref() == Some(&me.key)
    }

    pub fn card(p: &project::Model) -> ProjectCard {
        ProjectCard {
            slug: p.slug.clone(),
            name: p.name.clone(),
            summary: p.summary.clone(),
            category: p.category.clone(),
            tags: p
                .tags
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            tries: p.tries,
        }
    }

    pub fn detail(p: &project::Model) -> ProjectDetail {
        ProjectDetail {
            card: card(p),
            description_html: crate::markdown::render(&p.description),
            homepage: p.homepage.clone(),
            repository: p.repository.clone(),
            license: p.license.clone(),
            image_size: p.image_size,
            status: p.status,
            egress: p.egress,
            tryable: p.status == db::ProjectStatus::Live && p.image_digest.is_some(),
        }
    }

    /// A sandbox's row as its owner sees it; `can_extend` and the idle clock are the sandbox
    /// service's to say.
    pub fn sandbox_info(
        s: &sandbox::Model,
        can_extend: bool,
        idle_seconds_left: Option<i64>,
    ) -> SandboxInfo {
        let left = (s.expires_at - chrono::Utc::now()).num_seconds().max(0);
        SandboxInfo {
            id: s.id.clone(),
            project: s.project_slug.clone(),
            state: s.state,
            terminal_ws: format!("/s/{}/ws", s.id),
            expires_at: s.expires_at.to_rfc3339(),
            seconds_left: if s.active { left } else { 0 },
            can_extend,
            end_reason: s.end_reason,
            idle_seconds_left,
            ports: Vec::new(),
        }
    }

    pub fn build_view(
        b: &db::builds::Model,
        project_name: &str,
        viewer: &Identity,
        maintainer: Option<&OwnerKey>,
    ) -> BuildView {
        BuildView {
            id: b.id.clone(),
            project: b.project_slug.clone(),
            project_name: project_name.to_string(),
            state: b.state,
            step: b.step,
            steps: b.steps,
            error: b.error.clone(),
            log: b.log.clone(),
            source_kind: b.source_kind.clone(),
            dockerfile: b.dockerfile.clone(),
            image_source: (b.source_kind == "image").then(|| b.source.clone()),
            created_at: b.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            can_cancel: viewer.is_admin || b.owner == viewer.key || maintainer == Some(&viewer.key),
            queue_position: None,
            typical_secs: None,
            check: SmokeCheck::of(b.check_command.as_deref(), b.check_expect.as_deref()),
            waited_secs: (chrono::Utc::now() - b.created_at).num_seconds().max(0),
            estimate_secs: None,
        }
    }

    pub fn sandbox_row(s: &sandbox::Model) -> SandboxRow {
        let end = s.ended_at.unwrap_or_else(chrono::Utc::now);
        SandboxRow {
            id: s.id.clone(),
            project: s.project_slug.clone(),
            state: s.state,
            started_at: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            duration_secs: (end - s.created_at).num_seconds().max(0),
            end_reason: s.end_reason,
            launch_ms: s.launch_ms,
            project_name: s.project_slug.clone(),
            started_ago_secs: (chrono::Utc::now() - s.created_at).num_seconds().max(0),
            seconds_left: s
                .active
                .then(|| (s.expires_at - chrono::Utc::now()).num_seconds().max(0)),
        }
    }
}

#[server(prefix = "/sfn", endpoint = "home", input = GetUrl)]
pub async fn load_home() -> Result<HomeData, ServerFnError> {
    let cx = ssr::context()?;
    let who = ssr::identity().await?;
    let trending = db::recommend::trending(&cx.db, 12)
        .await
        .map_err(ssr::internal)?;
    // A newcomer's suggestions leave out what Trending shows right above them.
    let shown: Vec<i32> = trending.iter().map(|p| p.id).collect();
    let for_you = db::recommend::for_owner(&cx.db, &who.key, 10, &shown)
        .await
        .map_err(ssr::internal)?;
    let newest = db::projects::newest(&cx.db, 6)
        .await
        .map_err(ssr::internal)?;
    let (_, total) = cx
        .search
        .search(
            &cx.db,
            &db::projects::Search {
                per_page: 1,
                ..Default::default()
            },
        )
        .await
        .map_err(ssr::internal)?;
    let featured = match db::settings::featured(&cx.db)
        .await
        .map_err(ssr::internal)?
    {
        Some(f) => db::projects::by_slug(&cx.db, &f.slug)
            .await
            .map_err(ssr::internal)?
            .filter(|p| p.status == db::ProjectStatus::Live)
            .map(|p| FeaturedBanner {
                card: ssr::card(&p),
                line: f.line,
            }),
        None => None,
    };
    Ok(HomeData {
        featured,
        trending: trending.iter().map(ssr::card).collect(),
        for_you: for_you.items.iter().map(ssr::card).collect(),
        for_you_personal: for_you.personal,
        newest: newest.iter().map(ssr::card).collect(),
        categories: db::projects::CATEGORIES
            .iter()
            .map(|c| c.to_string())
            .collect(),
        total,
    })
}

#[server(prefix = "/sfn", endpoint = "search", input = GetUrl)]
pub async fn search_projects(
    q: String,
    category: String,
    sort: String,
    page: u64,
) -> Result<SearchResults, ServerFnError> {
    let cx = ssr::context()?;
    let q: String = q.chars().take(200).collect();
    let mut search = db::projects::Search {
        q,
        category: Some(category).filter(|c| !c.is_empty()),
        page: page.max(1),
        per_page: PER_PAGE,
        // An unknown order (a hand-edited URL) is the default one.
        sort: db::projects::SearchSort::parse(&sort).unwrap_or_default(),
    };
    let db::search::Found {
        mut items,
        total,
        searched_for,
    } = cx
        .search
        .find(&cx.db, &search)
        .await
        .map_err(ssr::internal)?;
    // Past the last page (`?page=999`): the last page, not "Page 999 of 2".
    let pages = total.div_ceil(PER_PAGE).max(1);
    if search.page > pages {
        search.page = pages;
        items = cx
            .search
            .search(&cx.db, &search)
            .await
            .map_err(ssr::internal)?
            .0;
    }
    Ok(SearchResults {
        items: items.iter().map(ssr::card).collect(),
        total,
        page: search.page,
        per_page: PER_PAGE,
        searched_for,
        categories: db::projects::CATEGORIES
            .iter()
            .map(|c| c.to_string())
            .collect(),
    })
}

#[server(prefix = "/sfn", endpoint = "project", input = GetUrl)]
pub async fn load_project(slug: String) -> Result<Option<(ProjectPage, String)>, ServerFnError> {
    let cx = ssr::context()?;
    let me = ssr::identity().await?;
    let Some(p) = db::projects::by_slug(&cx.db, &slug)
        .await
        .map_err(ssr::internal)?
    else {
        return Ok(None);
    };
    if p.status == db::ProjectStatus::Hidden && !me.is_admin {
        return Ok(None);
    }
    let sandbox = db::sandboxes::active_for_owner(&cx.db, &me.key)
        .await
        .map_err(ssr::internal)?
        .filter(|s| s.project_id == p.id)
        .map(|s| ssr::sandbox_info(&s, s.active && s.extensions < cx.max_extensions, None));
    let can_maintain = ssr::may_maintain(&p, &me);
    let latest_build = db::builds::for_project(&cx.db, p.id, 1)
        .await
        .map_err(ssr::internal)?
        .first()
        .filter(|b| db::builds::visible_to(b, Some(&p), &me.key, me.is_admin))
        .map(|b| {
            let mut v = ssr::build_view(b, &p.name, &me, p.maintainer.as_ref());
            v.log.clear(); // the build page has it
            v.dockerfile.clear();
            v
        });
    let recipe = db::builds::served(&cx.db, &p)
        .await
        .map_err(ssr::internal)?
        .filter(|b| db::builds::visible_to(b, Some(&p), &me.key, me.is_admin))
        .map(|b| RecipeView {
            source: match b.source_kind.as_str() {
                "script" | "image" => Some(b.source),
                _ => None,
            },
            kind: b.source_kind,
            dockerfile: b.dockerfile,
            build_id: b.id,
            built_at: b.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        });
    Ok(Some((
        ProjectPage {
            project: ssr::detail(&p),
            sandbox,
            latest_build,
            can_maintain,
            recipe,
        },
        cx.public_url.clone(),
    )))
}

#[server(prefix = "/sfn", endpoint = "containers", input = GetUrl)]
pub async fn my_containers() -> Result<Vec<SandboxRow>, ServerFnError> {
    let cx = ssr::context()?;
    let me = ssr::identity().await?;
    let rows = db::sandboxes::history(&cx.db, &me.key, 100)
        .await
        .map_err(ssr::internal)?;
    let names = db::projects::names(&cx.db, rows.iter().map(|r| r.project_id))
        .await
        .map_err(ssr::internal)?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut row = ssr::sandbox_row(r);
            if let Some(name) = names.get(&r.project_id) {
                row.project_name = name.clone();
            } else if r.project_slug.is_empty() {
                // Its project was deleted (the row was anonymised then).
                row.project_name = "deleted project".into();
            }
            row
        })
        .collect())
}

#[server(prefix = "/sfn", endpoint = "build", input = GetUrl)]
pub async fn load_build(id: String) -> Result<Option<BuildView>, ServerFnError> {
    let cx = ssr::context()?;
    let me = ssr::identity().await?;
    let Some(b) = db::builds::get(&cx.db, &id).await.map_err(ssr::internal)? else {
        return Ok(None);
    };
    let p = db::projects::by_id(&cx.db, b.project_id)
        .await
        .map_err(ssr::internal)?;
    let name = p
        .as_ref()
        .map_or(b.project_slug.clone(), |p| p.name.clone());
    if !db::builds::visible_to(&b, p.as_ref(), &me.key, me.is_admin) {
        return Ok(None);
    }
    let maintainer = p.as_ref().and_then(|p| p.maintainer.clone());
    let mut view = ssr::build_view(&b, &name, &me, maintainer.as_ref());
    view.queue_position = db::builds::queue_position(&cx.db, &b)
        .await
        .map_err(ssr::internal)?;
    view.typical_secs = db::builds::typical_seconds(&cx.db)
        .await
        .map_err(ssr::internal)?;
    view.estimate_secs =
        crate::model::start_estimate(view.queue_position, view.typical_secs, cx.build_concurrency);
    Ok(Some(view))
}

/// The projects the signed-in person maintains, with their newest build (empty for visitors).
#[server(prefix = "/sfn", endpoint = "my_projects", input = GetUrl)]
pub async fn my_projects() -> Result<Vec<MyProject>, ServerFnError> {
    let cx = ssr::context()?;
    let me = ssr::identity().await?;
    if !me.signed_in {
        return Ok(Vec::new());
    }
    let projects = db::projects::maintained_by(&cx.db, &me.key)
        .await
        .map_err(ssr::internal)?;
    let mut out = Vec::with_capacity(projects.len());
    for p in projects {
        let latest = db::builds::for_project(&cx.db, p.id, 1)
            .await
            .map_err(ssr::internal)?
            .into_iter()
            .next()
            .map(|b| (b.id, b.state));
        out.push(MyProject {
            slug: p.slug,
            name: p.name,
            status: p.status,
            tries: p.tries,
            latest_build: latest,
            listed: p.listed,
        });
    }
    Ok(out)
}

#[server(prefix = "/sfn", endpoint = "publish_form", input = GetUrl)]
pub async fn load_publish_form() -> Result<PublishInfo, ServerFnError> {
    let cx = ssr::context()?;
    Ok(PublishInfo {
        categories: db::projects::CATEGORIES
            .iter()
            .map(|c| c.to_string())
            .collect(),
        base_image: cx.base_image.clone(),
        import_registries: cx.import_registries.clone(),
        import_max_mb: cx.import_max_mb,
    })
}

/// The edit page: the project's metadata for its maintainer or an admin (None: no such project,
/// or a hidden one and the viewer is no admin).
#[server(prefix = "/sfn", endpoint = "project_edit", input = GetUrl)]
pub async fn load_project_edit(slug: String) -> Result<Option<ProjectEditInfo>, ServerFnError> {
    let cx = ssr::context()?;
    let me = ssr::identity().await?;
    let Some(p) = db::projects::by_slug(&cx.db, &slug)
        .await
        .map_err(ssr::internal)?
        .filter(|p| p.status != db::ProjectStatus::Hidden || me.is_admin)
    else {
        return Ok(None);
    };
    let may_edit = ssr::may_maintain(&p, &me);
    Ok(Some(ProjectEditInfo {
        metadata: may_edit.then(|| ProjectMetadata {
            name: p.name.clone(),
            summary: p.summary.clone(),
            description: p.description.clone(),
            category: p.category.clone(),
            tags: ssr::card(&p).tags,
            homepage: p.homepage.clone(),
            repository: p.repository.clone(),
            license: p.license.clone(),
            welcome: p.welcome.clone(),
        }),
        slug: p.slug,
        name: p.name,
        signed_in: me.signed_in,
        may_edit,
        categories: db::projects::CATEGORIES
            .iter()
            .map(|c| c.to_string())
            .collect(),
    }))
}

/// A share link's session, for its `/watch/{token}` page.
#[server(prefix = "/sfn", endpoint = "share", input = GetUrl)]
pub async fn load_share(token: String) -> Result<ShareLookup, ServerFnError> {
    let cx = ssr::context()?;
    cx.shares.look_up(token).await.map_err(ssr::internal)
}

/// Who is asking, for the header and the account pages.
#[server(prefix = "/sfn", endpoint = "me", input = GetUrl)]
pub async fn load_me() -> Result<Me, ServerFnError> {
    let me = ssr::identity().await?;
    let ctx = ssr::context()?;
    Ok(Me {
        signed_in: me.signed_in,
        is_admin: me.is_admin,
        user: me.user,
        csrf_token: me.csrf,
        site: ctx.public_url.clone(),
        providers: ctx.providers,
    })
}
