//! `trythis` — serve the site (default), apply migrations, or publish the starter catalogue.
use server::{config::Config, sandbox};
use std::{process::ExitCode, sync::Arc, time::Duration};

const USAGE: &str = "usage: trythis [serve | migrate | seed [CATALOG_DIR] | feature SLUG LINE | feature --clear | admin EMAIL | admin --first EMAIL]";

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

async fn seed(config: Config, dir: &str) -> anyhow::Result<()> {
    let db = db::connect_and_migrate(&config.database_url).await?;
    let docker = server::engine::connect_docker(&config).await?;
    let registry = config.registry_client();
    let build_engine = server::engine::connect_build_engine(&config).await?;
    let networks = server::network::Networks::setup(&config, &docker, &build_engine).await?;
    // Smoke checks run in sandboxes of this installation, as the server's builds do.
    let runtime = server::sandbox_runtime(&config, &db, &docker).await?;
    let builds = server::builds::BuildService::new(
        db.clone(),
        server::builds::Engines {
            build: build_engine,
            serve: docker,
        },
        registry,
        config.builds.clone(),
        std::sync::Arc::new(server::metrics::Metrics::default()),
        networks,
        sandbox::checks::SandboxChecks::new(runtime),
    );
    let (published, reused) =
        server::builds::seed::seed_catalog(std::path::Path::new(dir), &db, &builds).await?;
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
    let state = server::build_state(config).await?;
    let (removed, ended) = state.sandboxes.reconcile().await?;
    tracing::info!(removed, ended, "reconciled engine and database");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reaper = tokio::spawn(sandbox::reaper_loop(
        Arc::clone(&state.sandboxes),
        Duration::from_secs(5),
        stop_rx,
    ));

    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!("trythis listening on {public_url}");
    println!("trythis is up: {public_url}");
    server::serve(listener, server::router(state.clone()), shutdown_signal()).await?;
    let _ = stop_tx.send(true);
    let _ = reaper.await;
    match state.sandboxes.remove_checks().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "smoke checks stopped"),
        Err(e) => tracing::warn!(error = %e, "could not remove the smoke checks"),
    }
    match state.sandboxes.drain_pool().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(stopped = n, "warm pool given back"),
        Err(e) => tracing::warn!(error = %e, "could not give back the warm pool"),
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// SIGTERM or Ctrl-C: stop accepting, finish in-flight requests, stop the background tasks.
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
