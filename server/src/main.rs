//! `trythis` — serve the site (default), apply migrations, or publish the starter catalogue.
use server::config::Config;
use std::process::ExitCode;

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
    let (state, jobs) = server::compose(config, None).await?.start().await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(replica = %state.config.replica_id, "trythis listening on {public_url}");
    println!("trythis is up: {public_url}");
    server::serve(listener, server::router(state.clone()), shutdown_signal()).await?;
    jobs.stop().await;
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
