//! The HTTP edge: the router (pages, JSON API, terminal WebSocket, badges, site files), the one
//! error type every handler answers with (`error::ApiError`, mapped from each domain's errors),
//! client addresses, CSRF and per-identity caps, the shared page cache and static files.
//! Domain modules (`sandbox`, `builds`, `accounts`) know nothing of status codes.
pub mod api;
pub mod assets;
pub mod caps;
pub mod client_ip;
pub mod error;
pub mod identity;
pub mod oauth;
pub mod page_cache;
pub mod preview;
pub mod state;

use crate::config;
use app::{shell, App};
use axum::{
    extract::{Request, State},
    http::{header, HeaderName, HeaderValue},
    middleware::{self, Next},
    response::Response,
    routing::{delete, get, patch, post, put},
    Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use state::AppState;
use std::sync::Arc;
use tower_http::{
    compression::{CompressionLayer, CompressionLevel},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

/// Leptos options from our config (no Cargo.toml metadata needed at run time).
/// `site_version` is the loaded site's (`assets::Memory::version`), so the pages' URLs and the
/// immutable caching of versioned files agree by construction.
pub fn leptos_options(config: &config::Config, site_version: &str) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("trythis")
        .site_root(config.site_root.display().to_string())
        .site_pkg_dir(format!("{}{site_version}/pkg", &assets::PREFIX[1..]))
        .site_addr(config.listen)
        .build()
}

/// Serves `router` on `listener` until `shutdown` completes: TCP_NODELAY on every connection
/// (terminal frames are tiny; Nagle + delayed ACK would add ~40 ms) and client addresses for
/// per-IP rate limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn count_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let resp = next.run(req).await;
    st.metrics.http(&method, resp.status().as_u16());
    resp
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    // `/try/{slug}` is the server's (it starts a Try); the app's route of that path only catches
    // links clicked inside the site and must not shadow it.
    let routes: Vec<_> = generate_route_list(App)
        .into_iter()
        .filter(|r| !r.path().starts_with(app::pages::try_link::PREFIX))
        .collect();
    let context = app::api::ServerContext {
        db: state.db.clone(),
        search: Arc::clone(&state.search),
        public_url: state.config.public_url.clone(),
        max_extensions: state.config.limits.max_extensions,
        base_image: state.config.builds.base_image.clone(),
        import_registries: state
            .config
            .builds
            .import_registries
            .iter()
            .map(|r| r.host.clone())
            .collect(),
        import_max_mb: state.config.builds.import_max_mb,
        build_concurrency: state.config.builds.concurrency,
        providers: api::auth::providers(&state),
        shares: Arc::new(api::shares::SharePages(Arc::clone(&state.sandboxes))),
    };
    let api = Router::new()
        .route("/projects", get(api::projects::list))
        .route(
            "/projects/{slug}",
            get(api::projects::get)
                .patch(api::projects::edit)
                .delete(api::projects::delete),
        )
        .route("/recommendations", get(api::projects::recommendations))
        .route("/projects/{slug}/try", post(api::sandboxes::start))
        .route(
            "/sandboxes/{id}",
            get(api::sandboxes::status).delete(api::sandboxes::stop),
        )
        .route("/sandboxes/{id}/extend", post(api::sandboxes::extend))
        .route("/sandboxes/{id}/active", post(api::sandboxes::still_here))
        .route("/sandboxes/{id}/ticket", post(api::terminal::ticket))
        .route("/sandboxes/{id}/ports", get(api::files::ports))
        .route(
            "/sandboxes/{id}/files",
            get(api::files::download).put(api::files::upload),
        )
        .route(
            "/sandboxes/{id}/shares",
            post(api::shares::create).get(api::shares::list),
        )
        .route(
            "/sandboxes/{id}/shares/{share_id}",
            delete(api::shares::revoke),
        )
        .route("/shares/{token}", get(api::shares::describe))
        .route("/shares/{token}/ticket", post(api::shares::ticket))
        .route("/projects", post(api::builds::create))
        .route(
            "/projects/{slug}/builds",
            post(api::builds::rebuild).get(api::builds::list),
        )
        .route(
            "/builds/{id}",
            get(api::builds::get).delete(api::builds::cancel),
        )
        .route("/builds/{id}/log", get(api::builds::log))
        .route("/recipe/convert", post(api::builds::convert))
        .route("/recipe/check", post(api::builds::check))
        .route("/auth/signup", post(api::auth::signup))
        .route("/auth/verify", post(api::auth::verify))
        .route("/auth/link", get(api::auth::link_info))
        .route("/auth/reset", post(api::auth::reset_request))
        .route("/auth/reset/confirm", post(api::auth::reset_confirm))
        .route("/auth/login", post(api::auth::login))
        .route("/auth/logout", post(api::auth::logout))
        .route("/me", get(api::auth::me))
        .route("/me/password", post(api::account::change_password))
        .route("/me/verify-email", post(api::account::send_verification))
        .route("/me/delete", post(api::account::delete_account))
        .route(
            "/me/tokens",
            get(api::account::list_tokens).post(api::account::create_token),
        )
        .route("/me/tokens/{id}", delete(api::account::revoke_token))
        .route("/admin/overview", get(api::admin::overview))
        .route("/admin/sandboxes", get(api::admin::sandboxes))
        .route("/admin/sandboxes/{id}", delete(api::admin::stop_sandbox))
        .route(
            "/admin/nodes/{name}/{action}",
            post(api::admin::node_availability),
        )
        .route("/admin/users", get(api::admin::users))
        .route("/admin/users/{id}", patch(api::admin::change_user))
        .route("/admin/projects", get(api::admin::projects))
        .route("/admin/review", get(api::admin::review))
        .route(
            "/admin/projects/{slug}/approve",
            post(api::admin::approve_project),
        )
        .route(
            "/admin/projects/{slug}",
            patch(api::admin::change_project).delete(api::admin::delete_project),
        )
        .route(
            "/admin/featured",
            put(api::admin::set_featured).delete(api::admin::clear_featured),
        )
        .fallback(|| async { error::ApiError::NotFound("No such API endpoint.".into()) });
    let site_root = state.config.site_root.clone();
    let leptos_options = state.leptos_options.clone();
    let ctx_for_sfn = context.clone();
    // Unknown paths get the site's own "Nothing here" page (404), not an empty answer.
    let not_found = {
        let options = leptos_options.clone();
        let ctx = context.clone();
        let page = leptos_axum::render_app_async_with_context(
            move || provide_context(ctx.clone()),
            move || shell(options.clone()),
        );
        axum::handler::HandlerWithoutStateExt::into_service(move |req: Request| page(req))
    };
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(api::health::healthz))
        .route("/readyz", get(api::health::readyz))
        .route("/metrics", get(api::health::metrics))
        .route("/try/{slug}", get(api::sandboxes::try_redirect))
        .route("/badge/{file}", get(api::badge::badge))
        .route("/v/{version}/{*file}", get(assets::versioned))
        .route("/s/{id}/ws", get(api::terminal::connect))
        .route("/preview/{id}/{port}", get(preview::entry))
        .route("/shares/{share_id}/ws", get(api::shares::connect))
        .route("/auth/{provider}/start", get(oauth::start))
        .route("/auth/{provider}/callback", get(oauth::callback))
        .route(
            "/sfn/{*fn_name}",
            // Page data only (GET): state changes go through the JSON API.
            get(move |req: Request| {
                let ctx = ctx_for_sfn.clone();
                leptos_axum::handle_server_fns_with_context(move || provide_context(ctx.clone()), req)
            }),
        )
        .merge(
            Router::new()
                .leptos_routes_with_context(
                    &state,
                    routes,
                    move || provide_context(context.clone()),
                    move || shell(leptos_options.clone()),
                )
                .layer(middleware::from_fn_with_state(
                    (Arc::clone(&state.pages), state.db.clone()),
                    page_cache::serve,
                )),
        )
        .nest_service("/pkg", assets::dir(site_root.join("pkg")))
        .fallback_service(assets::dir(site_root).fallback(not_found))
        .layer(middleware::from_fn_with_state(state.clone(), identity::csrf_guard))
        .layer(middleware::from_fn_with_state(state.clone(), identity::identify))
        .layer(middleware::from_fn_with_state((Arc::clone(&state.pages), state.db.clone()), page_cache::invalidate_on_change))
        .layer(middleware::from_fn(assets::revalidate))
        .layer(CompressionLayer::new().gzip(true).quality(CompressionLevel::Fastest))
        .layer(middleware::from_fn_with_state(Arc::clone(&state.static_files), assets::from_memory))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&app::content_security_policy(None)).unwrap_or(HeaderValue::from_static("default-src 'self'")),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static("x-request-id")))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(HeaderName::from_static("x-request-id"), MakeRequestUuid))
        // Outermost: a preview host's request never reaches the site (pages, API, identity,
        // the site's headers).
        .layer(middleware::from_fn_with_state(state.clone(), preview::dispatch))
        .with_state(state)
}
