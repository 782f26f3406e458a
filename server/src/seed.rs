//! The starter catalogue: `catalog/<slug>/{project.json,Dockerfile}` published through the same
//! pipeline as a maintainer's project (validate, build, push, go live) — skipped when the same
//! Dockerfile is already live, so later starts are fast.
use anyhow::{anyhow, bail, Context};
use bollard::{query_parameters::BuildImageOptionsBuilder, Docker};
use futures::StreamExt;
use std::path::Path;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    name: String,
    summary: String,
    description: String,
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    homepage: Option<String>,
    repository: Option<String>,
    license: Option<String>,
    welcome: Option<String>,
    #[serde(default)]
    egress: bool,
}

/// Builds `dockerfile` as `tag` through the engine, printing each step; errors carry the log tail.
pub async fn build(
    docker: &Docker,
    dockerfile: &str,
    tag: &str,
    mut log: impl FnMut(&str),
) -> anyhow::Result<()> {
    let opts = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .pull("false")
        .build();
    let tar = crate::tar::tar_single_file("Dockerfile", dockerfile.as_bytes());
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| anyhow!("build failed: {e}"))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            bail!("build failed: {err}");
        }
        if let Some(s) = info.stream {
            for line in s.lines().filter(|l| !l.trim().is_empty()) {
                log(line);
            }
        }
    }
    Ok(())
}

pub use crate::build::push;

/// Publishes every project under `dir` through the publishing pipeline (validation, build,
/// push, go live), one at a time with progress. A project whose live image was built from the
/// same Dockerfile is reused. Returns (published, reused).
pub async fn seed_catalog(
    dir: &Path,
    db: &db::DatabaseConnection,
    builds: &crate::build::BuildService,
) -> anyhow::Result<(usize, usize)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading catalogue {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("project.json").is_file())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let total = entries.len();
    let (mut published, mut reused) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let slug = entry.file_name().to_string_lossy().to_string();
        let meta: Meta =
            serde_json::from_str(&std::fs::read_to_string(entry.path().join("project.json"))?)
                .with_context(|| format!("{slug}/project.json"))?;
        let source = std::fs::read_to_string(entry.path().join("Dockerfile"))
            .with_context(|| format!("{slug}/Dockerfile"))?;
        let recipe = recipe::validate_dockerfile(&source).map_err(|ps| {
            let list: Vec<String> = ps.iter().map(ToString::to_string).collect();
            anyhow!("{slug}/Dockerfile: {}", list.join("; "))
        })?;
        let project = db::projects::upsert(
            db,
            &db::projects::NewProject {
                slug: slug.clone(),
                name: meta.name,
                summary: meta.summary,
                description: meta.description,
                category: meta.category,
                tags: meta.tags,
                homepage: meta.homepage,
                repository: meta.repository,
                license: meta.license,
                welcome: meta.welcome,
                egress: meta.egress,
                maintainer: None,
            },
        )
        .await?;
        let last_good = db::builds::for_project(db, project.id, 20)
            .await?
            .into_iter()
            .find(|b| b.state == db::BuildState::Succeeded);
        if project.status == db::ProjectStatus::Live
            && last_good.as_ref().is_some_and(|b| {
                b.dockerfile == recipe.dockerfile && b.image_digest == project.image_digest
            })
        {
            println!("    [{}/{total}] {slug}: up to date", i + 1);
            reused += 1;
            continue;
        }
        println!("    [{}/{total}] {slug}: building", i + 1);
        let started = std::time::Instant::now();
        let id = crate::secrets::random_id();
        db::builds::insert_queued(
            db,
            db::builds::NewBuild {
                id: id.clone(),
                project_id: project.id,
                project_slug: slug.clone(),
                owner: "catalogue".into(),
                source_kind: "dockerfile".into(),
                source: source.clone(),
                dockerfile: recipe.dockerfile,
                steps: recipe.steps as i32,
            },
        )
        .await?;
        builds.register(&id);
        let printer = builds.watch(&id).map(|(_, mut rx)| {
            tokio::spawn(async move {
                while let Ok(ev) = rx.recv().await {
                    if let crate::build::BuildEvent::Log { line } = ev {
                        if line.starts_with("Step ") {
                            println!("        {line}");
                        }
                    }
                }
            })
        });
        builds.run(&id).await;
        if let Some(p) = printer {
            p.abort();
        }
        let b = db::builds::get(db, &id)
            .await?
            .ok_or_else(|| anyhow!("{slug}: build record vanished"))?;
        if b.state != db::BuildState::Succeeded {
            bail!(
                "{slug}: {}\n{}",
                b.error.unwrap_or_default(),
                b.log
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        println!(
            "    [{}/{total}] {slug}: live in {:.0?} ({})",
            i + 1,
            started.elapsed(),
            b.image_digest
                .as_deref()
                .map(|d| &d[..d.len().min(19)])
                .unwrap_or("?")
        );
        published += 1;
    }
    seed_featured(dir, db).await?;
    Ok((published, reused))
}

/// The catalogue's `featured.json` becomes the banner on first start; an admin's choice is kept.
async fn seed_featured(dir: &Path, db: &db::DatabaseConnection) -> anyhow::Result<()> {
    let path = dir.join("featured.json");
    if !path.is_file() || db::settings::featured(db).await?.is_some() {
        return Ok(());
    }
    let f: db::settings::Featured =
        serde_json::from_str(&std::fs::read_to_string(&path)?).context("catalog/featured.json")?;
    db::settings::validate_featured(db, &f)
        .await
        .map_err(anyhow::Error::msg)
        .context("catalog/featured.json")?;
    db::settings::set_featured(db, Some(&f)).await?;
    println!("    featured banner: {}", f.slug);
    Ok(())
}
