//! The starter catalogue: `catalog/<slug>/{project.json,Dockerfile}` published through the same
//! pipeline as a maintainer's project (validate, build, push, go live) — skipped when the same
//! Dockerfile is already live, so later starts are fast.
use std::path::{Path, PathBuf};

/// Why seeding stopped; each names the catalogue file or project it is about.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{slug}: {problems}")]
    Recipe { slug: String, problems: String },
    #[error("{slug}: {error}\n{log_tail}")]
    BuildFailed {
        slug: String,
        error: String,
        log_tail: String,
    },
    #[error("{slug}: the build record vanished")]
    BuildVanished { slug: String },
    #[error("catalog/featured.json: {0}")]
    Featured(#[from] db::settings::FeaturedError),
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
}

fn read(path: PathBuf) -> Result<String, SeedError> {
    std::fs::read_to_string(&path).map_err(|source| SeedError::Read { path, source })
}

fn parse<T: serde::de::DeserializeOwned>(path: PathBuf) -> Result<T, SeedError> {
    let text = read(path.clone())?;
    serde_json::from_str(&text).map_err(|source| SeedError::Parse { path, source })
}

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
    /// Every starter project says how to see that it works; each build runs it in a sandbox.
    check: CatalogCheck,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogCheck {
    command: String,
    expect: String,
}

/// Publishes every project under `dir` through the publishing pipeline (validation, build,
/// push, go live), one at a time with progress. A project whose live image was built from the
/// same Dockerfile is reused. Returns (published, reused).
pub async fn seed_catalog(
    dir: &Path,
    db: &db::DatabaseConnection,
    builds: &crate::builds::BuildService,
) -> Result<(usize, usize), SeedError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| SeedError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("project.json").is_file())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let total = entries.len();
    let (mut published, mut reused) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let slug = entry.file_name().to_string_lossy().to_string();
        let meta: Meta = parse(entry.path().join("project.json"))?;
        let source = read(entry.path().join("Dockerfile"))?;
        let recipe = recipe::validate_dockerfile(&source).map_err(|ps| SeedError::Recipe {
            slug: slug.clone(),
            problems: ps
                .iter()
                .map(|p| format!("Dockerfile {p}"))
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let check = crate::builds::publish::check_smoke(
            Some(&meta.check.command),
            Some(&meta.check.expect),
        )
        .map_err(|ps| SeedError::Recipe {
            slug: slug.clone(),
            problems: ps
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let Some(check) = check else {
            return Err(SeedError::Recipe {
                slug,
                problems: "project.json: the check's command is empty".into(),
            });
        };
        let (check_command, check_expect) = (Some(check.command), check.expect);
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
                unlisted: false,
            },
        )
        .await?;
        let last_good = db::builds::for_project(db, project.id, 20)
            .await?
            .into_iter()
            .find(|b| b.state == db::BuildState::Succeeded);
        if project.status == db::ProjectStatus::Live
            && last_good.as_ref().is_some_and(|b| {
                b.dockerfile == recipe.dockerfile
                    && b.image_digest == project.image_digest
                    && b.check_command == check_command
                    && b.check_expect == check_expect
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
                owner: vocab::OwnerKey::Catalogue,
                source_kind: "dockerfile".into(),
                source: source.clone(),
                dockerfile: recipe.dockerfile,
                steps: recipe.steps as i32,
                check_command,
                check_expect,
            },
        )
        .await?;
        builds.register(&id);
        let printer = builds.watch(&id).map(|(_, mut rx)| {
            tokio::spawn(async move {
                while let Ok(ev) = rx.recv().await {
                    if let crate::builds::BuildEvent::Log { line } = ev {
                        if line.starts_with("Step ") || line.starts_with("Smoke check") {
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
            .ok_or_else(|| SeedError::BuildVanished { slug: slug.clone() })?;
        if b.state != db::BuildState::Succeeded {
            let lines: Vec<&str> = b.log.lines().collect();
            return Err(SeedError::BuildFailed {
                slug,
                error: b.error.unwrap_or_default(),
                log_tail: lines[lines.len().saturating_sub(15)..].join("\n"),
            });
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
async fn seed_featured(dir: &Path, db: &db::DatabaseConnection) -> Result<(), SeedError> {
    let path = dir.join("featured.json");
    if !path.is_file() || db::settings::featured(db).await?.is_some() {
        return Ok(());
    }
    let f: db::settings::Featured = parse(path)?;
    db::settings::validate_featured(db, &f).await?;
    db::settings::set_featured(db, Some(&f)).await?;
    println!("    featured banner: {}", f.slug);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every starter project declares a smoke check the publishing form would accept.
    #[test]
    fn every_catalogue_project_declares_a_valid_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if !path.join("project.json").is_file() {
                continue;
            }
            let meta: Meta = parse(path.join("project.json")).unwrap_or_else(|e| panic!("{e}"));
            let check = crate::builds::publish::check_smoke(
                Some(&meta.check.command),
                Some(&meta.check.expect),
            );
            assert!(
                matches!(&check, Ok(Some(c)) if c.expect.is_some()),
                "{}: {check:?}",
                path.display()
            );
            seen += 1;
        }
        assert!(seen >= 16, "only {seen} catalogue projects found");
    }
}
