//! A bare engine build and push, outside the platform: for test fixtures and as the benchmarks'
//! reference floor. The platform itself builds only through `BuildService`.
use bollard::{query_parameters::BuildImageOptionsBuilder, Docker};
use futures::StreamExt;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Builds `dockerfile` (no context besides it) as `tag`.
pub async fn plain_build(docker: &Docker, dockerfile: &str, tag: &str) -> Result<(), Error> {
    let opts = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .pull("false")
        .build();
    let tar = server::tar::tar_single_file("Dockerfile", dockerfile.as_bytes());
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
    while let Some(item) = stream.next().await {
        if let Some(err) = item?.error_detail.and_then(|d| d.message) {
            return Err(format!("build of {tag} failed: {err}").into());
        }
    }
    Ok(())
}

/// Builds `dockerfile` as `repo:tag` and pushes it to the registry the repository names.
pub async fn plain_build_and_push(
    docker: &Docker,
    dockerfile: &str,
    repo: &str,
    tag: &str,
) -> Result<(), Error> {
    plain_build(docker, dockerfile, &format!("{repo}:{tag}")).await?;
    server::builds::push(docker, repo, tag).await?;
    Ok(())
}
