//! Publishing overhead: the same Dockerfile built and pushed (a) directly through the engine
//! (build, push, resolve digest) and (b) through trythis (validation, queue record, live log,
//! build with limits, push, resolve, go live, retention). Alternating rounds, each with a fresh
//! 64 MB layer so nothing is cached. Prints medians, the overhead and push throughput.
//! Run with `scripts/bench.sh`.
// Timed in two parts here, so the build-and-push helper is unused.
#[allow(dead_code)]
#[path = "../tests/common/plain_build.rs"]
mod plain_build;
use plain_build::plain_build;
use std::time::Instant;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const ROUNDS: usize = 3;
const LAYER_MB: usize = 64;

fn dockerfile(base: &str, nonce: &str) -> String {
    format!(
        "FROM {base}\nRUN echo {nonce} && head -c {LAYER_MB}M /dev/urandom > /blob\nRUN echo done\nWORKDIR /root\n"
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result {
    let dir = std::env::temp_dir().join(format!("trythis-build-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db_url = format!("sqlite://{}/b.db?mode=rwc", dir.display());
    let data = dir.display().to_string();
    let config = server::config::Config::from_pairs([
        ("TRYTHIS_DATA_DIR", data.as_str()),
        ("TRYTHIS_DATABASE_URL", db_url.as_str()),
        ("TRYTHIS_BUILDS_PER_HOUR", "1000"),
    ])?;
    let base = config.builds.base_image.clone();
    let db = db::connect_and_migrate(&config.database_url).await?;
    let docker = server::engine::connect_docker(&config).await?;
    let registry = registry::Registry::new(config.registry.clone());
    let build_engine = server::engine::connect_build_engine(&config).await?;
    let networks = server::network::Networks::setup(&config, &docker, &build_engine).await?;
    let builds = server::builds::BuildService::new(
        db.clone(),
        server::builds::Engines {
            build: build_engine.clone(),
            serve: docker.clone(),
        },
        registry.clone(),
        config.builds.clone(),
        std::sync::Arc::new(server::metrics::Metrics::default()),
        networks,
        server::sandbox::checks::SandboxChecks::new(
            server::sandbox_runtime(&config, &db, &docker).await?,
        ),
    );
    let (mut plain, mut plain_pull, mut ours, mut push_secs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut pushed_bytes = 0i64;
    let slug = format!("bench-build-{}", std::process::id());
    for round in 0..ROUNDS {
        // (a) the build engine directly.
        let repo = registry.config().repository_for(&format!("{slug}-plain"));
        let t = Instant::now();
        plain_build(
            &build_engine,
            &dockerfile(&base, &format!("plain-{round}-{}", std::process::id())),
            &format!("{repo}:r{round}"),
        )
        .await?;
        let tp = Instant::now();
        server::builds::push(&build_engine, &repo, &format!("r{round}")).await?;
        let img = registry.resolve(&repo, &format!("r{round}")).await?;
        push_secs.push(tp.elapsed().as_secs_f64());
        pushed_bytes = img.size;
        plain.push(t.elapsed().as_secs_f64());
        // What publishing must also do before a first Try is fast: the sandbox engine pulls it.
        let pulled_ref = format!("{repo}@{}", img.digest);
        server::builds::pull(&docker, &pulled_ref).await?;
        plain_pull.push(t.elapsed().as_secs_f64());
        let _ = docker
            .remove_image(
                &pulled_ref,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
        // The build engine keeps no images (as trythis leaves it after each build).
        let _ = build_engine
            .remove_image(
                &format!("{repo}:r{round}"),
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;

        // (b) through trythis.
        let df = dockerfile(&base, &format!("ours-{round}-{}", std::process::id()));
        let t = Instant::now();
        let id = if round == 0 {
            let form: server::builds::publish::ProjectForm =
                serde_json::from_value(serde_json::json!({
                    "slug": slug, "name": "Build bench", "summary": "Benchmark project.",
                    "category": "Other", "dockerfile": df,
                }))?;
            server::builds::publish::submit(
                &builds,
                &db,
                &vocab::OwnerKey::Visitor("bench".into()),
                &form,
                true,
            )
            .await
            .map_err(|e| e.to_string())?
        } else {
            server::builds::publish::rebuild(
                &builds,
                &db,
                &vocab::OwnerKey::Visitor("bench".into()),
                false,
                &slug,
                &server::builds::publish::RecipeForm {
                    dockerfile: Some(df),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?
        };
        builds.run(&id).await;
        ours.push(t.elapsed().as_secs_f64());
        let b = db::builds::get(&db, &id).await?.ok_or("build")?;
        if b.state != db::BuildState::Succeeded {
            return Err(format!("build failed: {:?}\n{}", b.error, b.log).into());
        }
        println!(
            "round {}: engine build+push {:.2} s (+ pull into the sandbox engine {:.2} s), trythis {:.2} s",
            round + 1,
            plain[round],
            plain_pull[round],
            ours[round]
        );
    }
    let (p, pp, o) = (median(plain), median(plain_pull), median(ours));
    println!(
        "build+push median: engine {p:.2} s, trythis {o:.2} s, overhead {:+.1} % (target ≤ 10 %)",
        (o - p) / p * 100.0
    );
    println!(
        "build+push+pull median (everything a publish must do before a fast first Try): engine {pp:.2} s, trythis {o:.2} s, overhead {:+.1} %",
        (o - pp) / pp * 100.0
    );
    let push = median(push_secs);
    println!(
        "push to the local registry: {LAYER_MB} MB new layer (image {:.0} MB; base layers already there) in {push:.2} s = {:.0} MB/s of new data",
        pushed_bytes as f64 / 1e6,
        LAYER_MB as f64 * 1.048_576 / push
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
