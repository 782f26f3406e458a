//! `trythis` — serve the site (default), apply migrations, or publish the starter catalogue.
use server::{config::Config, http::state::AppState};
use std::{process::ExitCode, sync::atomic::Ordering, time::Duration};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: trythis [serve | migrate | instance | seed [CATALOG_DIR] | feature SLUG LINE | feature --clear | admin EMAIL | admin --first EMAIL]";

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trythis: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log))
        .with_target(false)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve(config).await,
        Some("migrate") => db::connect_and_migrate(&config.database_url)
            .await
            .map(|_| ())
            .map_err(Into::into),
        // The installation's id: every container it starts carries it (label `trythis.instance`),
        // so a script can find them all, warm-pool members included, which outlive the server.
        Some("instance") => instance(config).await,
        Some("feature") => feature(config, &args[1..]).await,
        Some("admin") => admin(config, &args[1..]).await,
        Some("seed") => seed(config, args.get(1).map(String::as_str).unwrap_or("catalog")).await,
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trythis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn instance(config: Config) -> anyhow::Result<()> {
    let db = db::connect_and_migrate(&config.database_url).await?;
    println!(
        "{}",
        db::instance_id(&db, server::secrets::random_id).await?
    );
    Ok(())
}

async fn seed(config: Config, dir: &str) -> anyhow::Result<()> {
    // The same services as `serve` (smoke checks run in sandboxes of this installation), with
    // no job started: a server running meanwhile keeps its builds and its sandboxes.
    let platform = server::compose(config, None).await?;
    let st = &platform.state;
    let (published, reused) =
        server::builds::seed::seed_catalog(std::path::Path::new(dir), &st.db, &st.builds).await?;
    println!("    catalogue: {published} built, {reused} reused");
    Ok(())
}

/// The admin's featured banner, from the command line (the admin pages use the same checks).
async fn feature(config: Config, args: &[String]) -> anyhow::Result<()> {
    let db = db::connect_and_migrate(&config.database_url).await?;
    match args {
        [flag] if flag == "--clear" => {
            db::settings::set_featured(&db, None).await?;
            println!("featured banner cleared");
        }
        [slug, line] => {
            let f = db::settings::Featured {
                slug: slug.clone(),
                line: line.trim().to_string(),
            };
            db::settings::validate_featured(&db, &f).await?;
            db::settings::set_featured(&db, Some(&f)).await?;
            println!("featured: {} — {}", f.slug, f.line);
        }
        _ => anyhow::bail!("{USAGE}"),
    }
    Ok(())
}

/// Creates (or promotes) an admin account. `--first` does nothing when an admin exists: the run
/// command's admin step. A new account gets a random password, printed once and saved to
/// `{data_dir}/admin-password` (mode 600).
async fn admin(config: Config, args: &[String]) -> anyhow::Result<()> {
    let (first, email) = match args {
        [flag, email] if flag == "--first" => (true, email),
        [email] => (false, email),
        _ => anyhow::bail!("{USAGE}"),
    };
    let db = db::connect_and_migrate(&config.database_url).await?;
    if first && db::accounts::count_admins(&db).await? > 0 {
        println!("    admin: an admin account exists");
        return Ok(());
    }
    let auth = server::accounts::Auth::new(config.auth.clone(), &config.public_url);
    let password = config.auth.admin_password.as_deref();
    let (account, generated) = server::accounts::ensure_admin(&auth, &db, email, password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match generated {
        Some(pw) => {
            let path = config.data_dir.join("admin-password");
            std::fs::create_dir_all(&config.data_dir)?;
            server::secrets::write_private(&path, format!("{}\n{pw}\n", account.email).as_bytes())?;
            println!(
                "    admin: {} created, password {pw} (also in {})",
                account.email,
                path.display()
            );
        }
        None => println!("    admin: {} is an admin", account.email),
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let public_url = config.public_url.clone();
    let drain = config.drain;
    let (state, jobs) = server::compose(config, None).await?.start().await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(replica = %state.config.replica_id, "trythis listening on {public_url}");
    println!("trythis is up: {public_url}");
    let closed = CancellationToken::new();
    let serving = server::serve(
        listener,
        server::router(state.clone()),
        drain_then_close(state.clone(), drain, closed.clone()),
    );
    // Once the listener is closed, requests in flight get as long as the drain to finish.
    let grace = async {
        closed.cancelled().await;
        tokio::time::sleep(drain.max(Duration::from_secs(1))).await;
    };
    tokio::select! {
        served = serving => served?,
        () = grace => tracing::warn!("requests still open after the drain: ending them"),
    }
    // The jobs handed back: a running build's worker stops, the reaper and the refill run on in
    // the other replicas.
    jobs.stop().await;
    match state
        .sandboxes
        .remove_checks(&state.config.replica_id)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "smoke checks stopped"),
        Err(e) => tracing::warn!(error = %e, "could not remove the smoke checks"),
    }
    // The warm pool stays: its shells outlive this process (their holders run beside the
    // engine), and the other replicas, or this one restarted, hand them out.
    tracing::info!("shut down cleanly");
    Ok(())
}

/// On SIGTERM or Ctrl-C the server drains: `/healthz` answers 503 for `drain` while everything
/// is still served (the load balancer's checks take this replica out, and it sends no new
/// request here); a second signal cuts that short. Then open terminal sockets and log streams
/// are ended (browsers reconnect, through the load balancer, to another replica) and the
/// listener closes.
async fn drain_then_close(state: AppState, drain: Duration, closed: CancellationToken) {
    shutdown_signal().await;
    state.draining.store(true, Ordering::Relaxed);
    tracing::info!(
        seconds = drain.as_secs(),
        "draining: /healthz answers 503 while open requests, terminals and log streams go on (a second signal stops now)"
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => {}
        () = shutdown_signal() => {}
    }
    state.streams.close_all();
    tracing::info!("drained: terminals and log streams ended, no new connections");
    closed.cancel();
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received");
}
