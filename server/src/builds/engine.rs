//! What a build does outside this process — the build engine, the registry, the sandbox
//! engine — behind one trait, `ImageBuilder`, so the queue, the build states and retention are
//! tested against a fake in milliseconds (`builds/fast_tests.rs`). `DockerBuilder` is the real one.
use super::dockerfile::BUILD_LABEL;
use super::Failure;
use bollard::{
    query_parameters::{
        BuildImageOptionsBuilder, CreateImageOptionsBuilder, PruneImagesOptionsBuilder,
        PushImageOptionsBuilder, RemoveImageOptions,
    },
    Docker,
};
use futures::{stream::BoxStream, StreamExt};
use std::{collections::HashMap, time::Duration};

/// One build as the engine runs it.
pub struct BuildSpec {
    pub build_id: String,
    /// `repo:tag` the result is tagged as.
    pub image: String,
    /// The build context: `Dockerfile` and the files it copies.
    pub files: Vec<(&'static str, Vec<u8>)>,
    pub build_args: HashMap<String, String>,
    /// The (isolated) network the steps run on.
    pub network: String,
    pub memory_mb: u64,
    pub cpus: f64,
}

/// What the publishing limits look at in a built image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFacts {
    pub size: u64,
    pub volumes: usize,
}

/// A pushed image as the registry resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub digest: String,
    pub size: i64,
}

#[async_trait::async_trait]
pub trait ImageBuilder: Send + Sync {
    /// Runs a build: its output, a chunk of lines at a time, until it ends (an error item ends
    /// it). Dropping the stream stops the build; the engine removes its containers.
    fn build(&self, spec: BuildSpec) -> BoxStream<'static, Result<String, Failure>>;
    async fn inspect(&self, image: &str) -> Result<ImageFacts, Failure>;
    /// Pushes `repo:tag` to the registry and resolves its digest there.
    async fn push(&self, repo: &str, tag: &str) -> Result<Pushed, Failure>;
    /// Pulls a pushed `repo@digest` into the sandbox engine, so the first Try does not wait.
    async fn pull_for_sandboxes(&self, image: &str) -> Result<(), Failure>;
    /// Removes a finished build's image and everything its steps left in the build engine.
    async fn remove_leftovers(&self, image: &str, build_id: &str);
    /// Deletes the repository's tags other than `keep` (never an image whose digest is in
    /// `protect`) from the registry and the sandbox engine; returns the deleted tags.
    async fn retain(
        &self,
        repo: &str,
        keep: &[String],
        protect: &[String],
    ) -> Result<Vec<String>, String>;
    /// Whether a build can start from `image`. An engine that does not answer is an error.
    async fn image_available(&self, image: &str) -> Result<bool, bollard::errors::Error>;
    /// Removes what builds interrupted by a crash or restart left behind (older than `older_than`).
    async fn clean(&self, older_than: Duration);
    /// Whether the build engine lacks `image` (a build reading it pulls it).
    async fn missing(&self, _image: &str) -> bool {
        false
    }
    /// Removes images a build pulled, once it is over (one still in use by another build stays).
    async fn remove_pulled(&self, _images: &[String]) {}
    /// Copies the image `from` names into the platform's registry as `repo:tag` (import by
    /// reference; see `registry::Registry::import`), one log line per step.
    async fn import(
        &self,
        _from: &registry::ImportFrom<'_>,
        _repo: &str,
        _tag: &str,
        _max_bytes: u64,
        _log: &registry::ImportLog<'_>,
    ) -> Result<Pushed, registry::RegistryError> {
        Err(registry::RegistryError::Protocol(
            "this build service cannot import images".into(),
        ))
    }
    /// The VOLUMEs the image (pulled into the sandbox engine) declares.
    async fn served_volumes(&self, _image: &str) -> Result<usize, Failure> {
        Ok(0)
    }
    async fn ping(&self) -> Result<(), String>;
}

/// The two engines a build touches.
#[derive(Clone)]
pub struct Engines {
    /// Runs build steps (bounded disk, pids and memory, user namespace); pushes the result.
    pub build: Docker,
    /// Runs sandboxes; a published image is pulled into it before the project goes live.
    pub serve: Docker,
}

/// Builds in the build engine through the classic builder, pushes to the platform's registry,
/// pulls into the sandbox engine.
pub struct DockerBuilder {
    build: Docker,
    serve: Docker,
    registry: registry::Registry,
}

impl DockerBuilder {
    pub fn new(engines: Engines, registry: registry::Registry) -> Self {
        Self {
            build: engines.build,
            serve: engines.serve,
            registry,
        }
    }

    /// Removes an image from the sandbox engine (the build engine keeps none).
    async fn remove_from_sandbox_engine(&self, image: &str) {
        let _ = self
            .serve
            .remove_image(image, None::<RemoveImageOptions>, None)
            .await;
    }
}

#[async_trait::async_trait]
impl ImageBuilder for DockerBuilder {
    fn build(&self, spec: BuildSpec) -> BoxStream<'static, Result<String, Failure>> {
        let labels = HashMap::from([(BUILD_LABEL.to_string(), spec.build_id.clone())]);
        let memory = (spec.memory_mb * 1024 * 1024).min(i32::MAX as u64) as i32;
        let opts = BuildImageOptionsBuilder::default()
            .t(&spec.image)
            .rm(true)
            .forcerm(true)
            // Each build's layers are removed when it ends, so a cache would only let concurrent
            // builds stand on each other's layers.
            .nocache(true)
            .pull("false")
            .memory(memory)
            .memswap(memory)
            .cpuperiod(100_000)
            .cpuquota((spec.cpus * 100_000.0) as i32)
            .labels(&labels)
            .networkmode(&spec.network)
            .buildargs(&spec.build_args)
            .build();
        let files: Vec<(&str, &[u8])> =
            spec.files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let tar = crate::tar::tar_files(&files);
        // The engine's stream borrows its client: a task owns both and forwards the output. When
        // the receiver goes (cancel, timeout), the task drops the request at once, silent step
        // or not, and the engine stops the build.
        let docker = self.build.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let output = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
            let mut output = std::pin::pin!(crate::engine::until_stray_terminator(output));
            loop {
                let item = tokio::select! {
                    _ = tx.closed() => break,
                    item = output.next() => item,
                };
                let out = match item {
                    None => break,
                    Some(Err(e)) => Err(engine_error(e)),
                    Some(Ok(info)) => match info.error_detail.and_then(|d| d.message) {
                        Some(err) => Err(Failure::Build(build_error(&err))),
                        None => match info.stream {
                            Some(text) => Ok(text),
                            None => continue,
                        },
                    },
                };
                let end = out.is_err();
                if tx.send(out).await.is_err() || end {
                    break;
                }
            }
        });
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }

    async fn inspect(&self, image: &str) -> Result<ImageFacts, Failure> {
        let built = self
            .build
            .inspect_image(image)
            .await
            .map_err(|e| Failure::Engine(e.to_string()))?;
        let volumes = built
            .config
            .as_ref()
            .and_then(|c| c.volumes.as_ref())
            .map_or(0, |v| v.len());
        Ok(ImageFacts {
            size: built.size.unwrap_or(0).max(0) as u64,
            volumes,
        })
    }

    async fn push(&self, repo: &str, tag: &str) -> Result<Pushed, Failure> {
        let registry_failure = |e: &dyn std::fmt::Display| Failure::Registry(e.to_string());
        self.registry
            .ensure_namespace()
            .await
            .map_err(|e| registry_failure(&e))?;
        push(&self.build, repo, tag)
            .await
            .map_err(|e| registry_failure(&e))?;
        let resolved = self
            .registry
            .resolve(repo, tag)
            .await
            .map_err(|e| registry_failure(&e))?;
        Ok(Pushed {
            digest: resolved.digest,
            size: resolved.size,
        })
    }

    async fn pull_for_sandboxes(&self, image: &str) -> Result<(), Failure> {
        pull(&self.serve, image)
            .await
            .map_err(|e| Failure::Registry(e.to_string()))
    }

    /// Removes a finished build's image and every container and layer its steps made. They are
    /// found by the label `trythis.build=<id>` that `mark_build` puts after each `FROM`, never
    /// from the build's output, which a step can fake (` ---> Running in <someone else's id>`).
    /// Builds run without the layer cache, so no other build stands on these layers.
    async fn remove_leftovers(&self, image: &str, build_id: &str) {
        let label = format!("{BUILD_LABEL}={build_id}");
        let filters = HashMap::from([("label", vec![label.as_str()])]);
        // A cancelled or timed-out build's step may still run, and the engine may be removing it
        // itself: its containers go first (until none is left), or the engine refuses to remove
        // the layers under them.
        for _ in 0..40 {
            let listed = self
                .build
                .list_containers(Some(
                    bollard::query_parameters::ListContainersOptionsBuilder::default()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await
                .unwrap_or_default();
            if listed.is_empty() {
                break;
            }
            for id in listed.into_iter().filter_map(|c| c.id) {
                let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .build();
                let _ = self.build.remove_container(&id, Some(opts)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let _ = self
            .build
            .remove_image(image, None::<RemoveImageOptions>, None)
            .await;
        for _ in 0..20 {
            let mut layers = self
                .build
                .list_images(Some(
                    bollard::query_parameters::ListImagesOptionsBuilder::default()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await
                .unwrap_or_default();
            // Another build's pushed image is tagged; ours was removed above. (The engine lists
            // an untagged layer as `<none>:<none>`.)
            layers.retain(|l| l.repo_tags.iter().all(|t| t == "<none>:<none>"));
            if layers.is_empty() {
                return;
            }
            // Newest first: a layer goes before the one it stands on.
            layers.sort_by_key(|l| std::cmp::Reverse(l.created));
            for layer in layers {
                if let Err(e) = self
                    .build
                    .remove_image(&layer.id, None::<RemoveImageOptions>, None)
                    .await
                {
                    tracing::debug!(layer = %layer.id, error = %e, "build layer not removed yet");
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        tracing::warn!(
            build = build_id,
            "some layers of the build were left in the build engine"
        );
    }

    async fn retain(
        &self,
        repo: &str,
        keep: &[String],
        protect: &[String],
    ) -> Result<Vec<String>, String> {
        let report = self
            .registry
            .retain(repo, keep, protect)
            .await
            .map_err(|e| e.to_string())?;
        for tag in &report.deleted {
            self.remove_from_sandbox_engine(&format!("{repo}:{tag}"))
                .await;
        }
        Ok(report.deleted)
    }

    /// Whether a build can start from `image`: the build engine has it, or the platform's
    /// registry does. An engine that does not answer is an error, not a missing image.
    async fn image_available(&self, image: &str) -> Result<bool, bollard::errors::Error> {
        match self.build.inspect_image(image).await {
            Ok(_) => return Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(e),
        }
        let prefix = format!("{}/", self.registry.config().address);
        let Some(path) = image.strip_prefix(&prefix) else {
            return Ok(false);
        };
        let (repo, reference) = match path.split_once('@') {
            Some((repo, digest)) => (repo, digest),
            None => match path.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag),
                _ => (path, "latest"),
            },
        };
        Ok(self
            .registry
            .resolve(&format!("{prefix}{repo}"), reference)
            .await
            .is_ok())
    }

    /// Removes what builds interrupted by a crash or restart left in the build engine: stopped
    /// containers, and dangling layers older than any running build can be.
    async fn clean(&self, older_than: Duration) {
        let older = format!("{}s", older_than.as_secs());
        let stale = bollard::query_parameters::PruneContainersOptionsBuilder::default()
            .filters(&HashMap::from([("until", vec![older.as_str()])]))
            .build();
        if let Err(e) = self.build.prune_containers(Some(stale)).await {
            tracing::warn!(error = %e, "build engine: stopped containers not pruned");
        }
        let dangling = PruneImagesOptionsBuilder::default()
            .filters(&HashMap::from([
                ("dangling", vec!["true"]),
                ("until", vec![older.as_str()]),
            ]))
            .build();
        if let Err(e) = self.build.prune_images(Some(dangling)).await {
            tracing::warn!(error = %e, "build engine: dangling layers not pruned");
        }
    }

    async fn missing(&self, image: &str) -> bool {
        matches!(
            self.build.inspect_image(image).await,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        )
    }

    async fn remove_pulled(&self, images: &[String]) {
        for image in images {
            match self
                .build
                .remove_image(image, None::<RemoveImageOptions>, None)
                .await
            {
                Ok(_) => tracing::info!(image, "removed an image a build pulled"),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => {
                    tracing::warn!(image, error = %e, "an image a build pulled was not removed")
                }
            }
        }
    }

    async fn import(
        &self,
        from: &registry::ImportFrom<'_>,
        repo: &str,
        tag: &str,
        max_bytes: u64,
        log: &registry::ImportLog<'_>,
    ) -> Result<Pushed, registry::RegistryError> {
        self.registry.ensure_namespace().await?;
        let imported = self
            .registry
            .import(from, repo, tag, max_bytes, log)
            .await?;
        Ok(Pushed {
            digest: imported.digest,
            size: imported.size,
        })
    }

    async fn served_volumes(&self, image: &str) -> Result<usize, Failure> {
        let served = self
            .serve
            .inspect_image(image)
            .await
            .map_err(|e| Failure::Engine(e.to_string()))?;
        Ok(served
            .config
            .as_ref()
            .and_then(|c| c.volumes.as_ref())
            .map_or(0, |v| v.len()))
    }

    async fn ping(&self) -> Result<(), String> {
        self.build
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The engine's build errors, in plain words where we recognise them.
fn build_error(msg: &str) -> String {
    if msg.contains("pull access denied")
        || msg.contains("manifest unknown")
        || msg.contains("not found: manifest")
    {
        format!("The base image could not be found. Use an image the platform has (for example trythis/base:bookworm) or one in its registry. ({msg})")
    } else if msg.contains("no space left on device") {
        format!("The build ran out of disk space: builds run on a disk of bounded size, shared by the builds running at the time. Make the image smaller, or delete downloads in the same RUN step that fetched them. ({msg})")
    } else if msg.contains("returned a non-zero code") {
        format!("A build step failed: {msg}")
    } else {
        msg.to_string()
    }
}

fn engine_error(e: bollard::errors::Error) -> Failure {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => Failure::Build(build_error(&message)),
        E::DockerStreamError { error } => Failure::Build(build_error(&error)),
        other => Failure::Engine(other.to_string()),
    }
}

/// An image transfer between an engine and a registry that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Engine(#[from] bollard::errors::Error),
    /// The engine reported a failure in its progress stream (e.g. the registry refused).
    #[error("{0}")]
    Refused(String),
}

/// Pulls `image` (a `repo@digest` or `repo:tag` reference) into an engine.
pub async fn pull(docker: &Docker, image: &str) -> Result<(), TransferError> {
    let opts = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let stream = docker.create_image(Some(opts), None, None);
    let mut stream = std::pin::pin!(crate::engine::until_stray_terminator(stream));
    while let Some(item) = stream.next().await {
        if let Some(err) = item?.error_detail.and_then(|d| d.message) {
            return Err(TransferError::Refused(format!("pull of {image}: {err}")));
        }
    }
    // The stream may have ended early without a word (see `until_stray_terminator`).
    docker.inspect_image(image).await?;
    Ok(())
}

/// Pushes `repo:tag` to the registry the repo names.
pub async fn push(docker: &Docker, repo: &str, tag: &str) -> Result<(), TransferError> {
    let opts = PushImageOptionsBuilder::default().tag(tag).build();
    let stream = docker.push_image(repo, Some(opts), None);
    let mut stream = std::pin::pin!(crate::engine::until_stray_terminator(stream));
    while let Some(item) = stream.next().await {
        if let Some(err) = item?.error_detail.and_then(|d| d.message) {
            return Err(TransferError::Refused(format!(
                "push of {repo}:{tag}: {err}"
            )));
        }
    }
    Ok(())
}
