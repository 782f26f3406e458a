//! The starter catalogue: `catalog/<slug>/{project.json,Dockerfile}` built through the engine,
//! pushed to the platform's registry and published — skipped when the same Dockerfile is already
//! live, so later starts are fast.
use anyhow::{anyhow, bail, Context};
use bollard::{
    query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder},
    Docker,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
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

/// A one-file tar archive (the build context is the Dockerfile alone).
pub fn tar_single_file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
    let octal = |buf: &mut [u8], v: u64| {
        let s = format!("{:0width$o}\0", v, width = buf.len() - 1);
        buf.copy_from_slice(s.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
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
    let tar = tar_single_file("Dockerfile", dockerfile.as_bytes());
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

/// Pushes `repo:tag` to the registry the repo names.
pub async fn push(docker: &Docker, repo: &str, tag: &str) -> anyhow::Result<()> {
    let opts = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(repo, Some(opts), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| anyhow!("push failed: {e}"))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            bail!("push failed: {err}");
        }
    }
    Ok(())
}

/// Publishes every project under `dir`. Returns (published, reused).
pub async fn seed_catalog(
    dir: &Path,
    db: &db::DatabaseConnection,
    docker: &Docker,
    registry: &registry::Registry,
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
        let dockerfile = std::fs::read_to_string(entry.path().join("Dockerfile"))
            .with_context(|| format!("{slug}/Dockerfile"))?;
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
            },
        )
        .await?;
        let hash = hex::encode(&Sha256::digest(dockerfile.as_bytes())[..6]);
        let repo = registry.config().repository_for(&slug);
        let tag = format!("seed-{hash}");
        if let Ok(img) = registry.resolve(&repo, &tag).await {
            if project.image_digest.as_deref() == Some(img.digest.as_str())
                && project.status == "live"
            {
                println!("    [{}/{total}] {slug}: up to date", i + 1);
                reused += 1;
                continue;
            }
        }
        println!("    [{}/{total}] {slug}: building", i + 1);
        let started = std::time::Instant::now();
        let mut last = String::new();
        build(docker, &dockerfile, &format!("{repo}:{tag}"), |l| {
            if l.starts_with("Step ") {
                println!("        {l}");
            }
            last = l.to_string();
        })
        .await
        .with_context(|| format!("{slug}: {last}"))?;
        push(docker, &repo, &tag)
            .await
            .with_context(|| format!("{slug}: pushing"))?;
        let img = registry
            .resolve(&repo, &tag)
            .await
            .with_context(|| format!("{slug}: resolving digest"))?;
        db::projects::set_image(db, project.id, &repo, &img.digest, img.size).await?;
        println!(
            "    [{}/{total}] {slug}: live in {:.0?} ({})",
            i + 1,
            started.elapsed(),
            &img.digest[..19]
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

#[cfg(test)]
mod tests {
    use super::tar_single_file;

    #[test]
    fn tar_has_header_payload_and_end_blocks() {
        let t = tar_single_file("Dockerfile", b"FROM x\n");
        assert_eq!(t.len() % 512, 0);
        assert_eq!(&t[..10], b"Dockerfile");
        assert_eq!(&t[257..262], b"ustar");
        assert_eq!(&t[512..519], b"FROM x\n");
        assert!(t.len() >= 512 * 4);
    }
}
