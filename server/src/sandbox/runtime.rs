//! Where sandboxes run. `Runtime` is the seam for another driver (Kubernetes later) and for fakes in
//! unit tests; `DockerRuntime` is the real one, speaking the Engine API through bollard.
use crate::config::{Config, SandboxLimits};
use bollard::{
    models::{
        ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions,
        MountVolumeOptionsDriverConfig,
    },
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
        DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder,
        RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
    },
    Docker,
};
use bytes::Bytes;
use futures::StreamExt;
use std::{collections::HashMap, path::PathBuf, sync::Mutex, time::Duration};

pub const LABEL_SANDBOX: &str = "trythis.sandbox";
pub const LABEL_OWNER: &str = "trythis.owner";
pub const LABEL_PROJECT: &str = "trythis.project";
pub const LABEL_EXPIRES: &str = "trythis.expires";
/// The installation a container belongs to: reconciliation only ever touches its own.
pub const LABEL_INSTANCE: &str = "trythis.instance";

/// Inside every sandbox: ttyd (read-only) and its socket directory.
const TTYD_IN_CONTAINER: &str = "/opt/trythis/ttyd";
const SOCKET_DIR: &str = "/run/trythis";
const SOCKET_NAME: &str = "tty.sock";

/// Capabilities kept (all others dropped): what a root shell needs to own, chown and switch
/// users inside its own files; none grants access outside the container.
pub const KEPT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETUID",
    "SETGID",
    "KILL",
    "NET_BIND_SERVICE",
];

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the image {0} is not available")]
    ImageMissing(String),
    #[error("the container engine is not answering: {0}")]
    EngineDown(String),
    #[error("the sandbox did not become ready: {0}")]
    NotReady(String),
    #[error("container engine error: {0}")]
    Engine(String),
}

impl From<bollard::errors::Error> for RuntimeError {
    fn from(e: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError {
                status_code: 404,
                message,
            } => RuntimeError::ImageMissing(message),
            E::HyperResponseError { .. } | E::IOError { .. } | E::RequestTimeoutError => {
                RuntimeError::EngineDown(e.to_string())
            }
            other => RuntimeError::Engine(other.to_string()),
        }
    }
}

/// Everything needed to start one sandbox.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub sandbox_id: String,
    pub owner: String,
    pub project: String,
    /// `repo@sha256:…`
    pub image: String,
    pub expires_unix: i64,
    pub egress: bool,
    pub welcome: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Launched {
    pub container_id: String,
    /// Host path of ttyd's UNIX socket.
    pub socket: PathBuf,
}

/// A container found by label (reconciliation).
#[derive(Debug, Clone)]
pub struct Listed {
    pub sandbox_id: String,
    pub container_id: String,
}

#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// Creates and starts the sandbox; returns once ttyd's socket exists.
    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, RuntimeError>;
    /// Kills and removes the container and its volumes. Idempotent.
    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError>;
    /// Host path of a running sandbox's socket, if it runs.
    async fn socket(&self, sandbox_id: &str) -> Result<Option<PathBuf>, RuntimeError>;
    /// Every container of this installation carrying the sandbox label.
    async fn list(&self) -> Result<Vec<Listed>, RuntimeError>;
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// Live CPU and memory use of a running sandbox (None: not running, or not measurable).
    async fn usage(&self, _sandbox_id: &str) -> Result<Option<Usage>, RuntimeError> {
        Ok(None)
    }
}

/// A running sandbox's resource use, for the admin page.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Usage {
    /// Percent of one CPU over the engine's sampling interval (~1 s).
    pub cpu_percent: f64,
    /// Memory in use without the page cache (what counts towards the limit's pressure).
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
}

pub struct DockerRuntime {
    docker: Docker,
    instance: String,
    limits: SandboxLimits,
    ttyd: PathBuf,
    /// The image's own files under each writable directory, per image (tar, `None` = too big to
    /// copy into a tmpfs: that directory stays read-only).
    seeds: Mutex<HashMap<(String, String), Option<Bytes>>>,
}

/// What a launch needs from the image's config.
struct ImageFacts {
    workdir: Option<String>,
    /// The image's `VOLUME`s: each gets a bounded tmpfs, or the engine would make a host-disk
    /// anonymous volume there that no sandbox limit bounds.
    volumes: Vec<String>,
}

impl ImageFacts {
    fn of(config: Option<bollard::models::ImageConfig>) -> Self {
        let config = config.unwrap_or_default();
        Self {
            workdir: config.working_dir.filter(|w| !w.is_empty()),
            volumes: config
                .volumes
                .unwrap_or_default()
                .into_iter()
                .filter(|v| v.starts_with('/') && v != "/")
                .map(|v| v.trim_end_matches('/').to_string())
                .collect(),
        }
    }
}

/// Largest directory copied from the image into a sandbox's writable tmpfs at launch.
const MAX_SEED_BYTES: usize = 64 * 1024 * 1024;
/// An archive of an empty directory: its own header plus the end-of-archive blocks.
const EMPTY_DIR_ARCHIVE: usize = 1536;

/// Connects to the configured engine and negotiates the API version (the engine here is 20.10).
pub async fn connect_docker(config: &Config) -> Result<Docker, RuntimeError> {
    let ep = &config.docker_endpoint;
    let docker = if ep.starts_with("unix://") {
        Docker::connect_with_unix(ep, 120, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(
            &ep.replacen("tcp://", "http://", 1),
            120,
            bollard::API_DEFAULT_VERSION,
        )
    }
    .map_err(|e| RuntimeError::EngineDown(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| RuntimeError::EngineDown(e.to_string()))
}

/// Usual permissions of each writable directory (sticky world-writable temp dirs, private home).
fn dir_mode(dir: &str) -> &'static str {
    match dir {
        "/tmp" | "/var/tmp" => "1777",
        "/root" | "/run/trythis" => "0700",
        _ => "0755",
    }
}

fn container_name(sandbox_id: &str) -> String {
    format!("trythis-{sandbox_id}")
}

/// The shell the visitor gets: the welcome text, then bash if the image has it, else sh.
const SHELL_SCRIPT: &str = r#"[ -n "$TRYTHIS_WELCOME" ] && printf '%s\n\n' "$TRYTHIS_WELCOME"; unset TRYTHIS_WELCOME; if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"#;

impl DockerRuntime {
    /// `instance`: this installation's id (`db::instance_id`), labelled on every container.
    pub fn new(docker: Docker, config: &Config, instance: String) -> Self {
        Self {
            docker,
            instance,
            limits: config.limits.clone(),
            ttyd: config.ttyd_path.clone(),
            seeds: Mutex::default(),
        }
    }

    /// The image's files under `dirs`, as tar archives, read once per image through a
    /// never-started helper container (the Engine's archive API).
    async fn image_dirs(
        &self,
        image: &str,
        dirs: &[String],
    ) -> Result<HashMap<String, Option<Bytes>>, RuntimeError> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.seeds.lock().unwrap_or_else(|p| p.into_inner());
            for d in dirs {
                match cache.get(&(image.to_string(), d.clone())) {
                    Some(v) => {
                        out.insert(d.clone(), v.clone());
                    }
                    None => missing.push(d.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/nonexistent".into()]),
            labels: Some(HashMap::from([(
                LABEL_SANDBOX.to_string(),
                "helper".to_string(),
            )])),
            network_disabled: Some(true),
            ..Default::default()
        };
        let helper = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await?;
        let mut fetched = Vec::new();
        for d in &missing {
            let opts = DownloadFromContainerOptionsBuilder::default()
                .path(&format!("{d}/."))
                .build();
            let mut stream = self.docker.download_from_container(&helper.id, Some(opts));
            let mut buf: Option<Vec<u8>> = Some(Vec::new());
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        if let Some(b) = buf.as_mut() {
                            b.extend_from_slice(&c);
                            if b.len() > MAX_SEED_BYTES {
                                buf = None;
                                break;
                            }
                        }
                    }
                    // The image has no such directory: an empty writable one is right.
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => {
                        buf = Some(Vec::new());
                        break;
                    }
                    Err(e) => {
                        let _ = self.remove_by_id(&helper.id).await;
                        return Err(e.into());
                    }
                }
            }
            fetched.push((d.clone(), buf.map(Bytes::from)));
        }
        let _ = self.remove_by_id(&helper.id).await;
        let mut cache = self.seeds.lock().unwrap_or_else(|p| p.into_inner());
        for (d, v) in fetched {
            cache.insert((image.to_string(), d.clone()), v.clone());
            out.insert(d, v);
        }
        Ok(out)
    }

    async fn remove_by_id(&self, id: &str) -> Result<(), bollard::errors::Error> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.docker.remove_container(id, Some(opts)).await
    }

    /// Pulls the image if absent; returns what a launch needs from its config.
    async fn ensure_image(&self, image: &str) -> Result<ImageFacts, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => return Ok(ImageFacts::of(info.config)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut pull = self.docker.create_image(Some(opts), None, None);
        while let Some(step) = pull.next().await {
            step.map_err(|e| RuntimeError::ImageMissing(format!("{image}: {e}")))?;
        }
        let info = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| RuntimeError::ImageMissing(format!("{image}: {e}")))?;
        Ok(ImageFacts::of(info.config))
    }

    /// A size-bounded tmpfs volume mounted at `target`, pre-filled with the image's files there
    /// (the engine copies them in), removed with the container. The root itself is read-only.
    fn tmpfs_volume(&self, target: &str, size_mb: u64, labels: &HashMap<String, String>) -> Mount {
        Mount {
            target: Some(target.to_string()),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(false),
                labels: Some(labels.clone()),
                driver_config: Some(MountVolumeOptionsDriverConfig {
                    name: Some("local".into()),
                    options: Some(HashMap::from([
                        ("type".to_string(), "tmpfs".to_string()),
                        ("device".to_string(), "tmpfs".to_string()),
                        (
                            "o".to_string(),
                            format!(
                                "size={size_mb}m,nr_inodes=65536,nosuid,nodev,mode={}",
                                dir_mode(target)
                            ),
                        ),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, RuntimeError> {
        let facts = self.ensure_image(&spec.image).await?;
        let workdir = facts.workdir;
        let labels = HashMap::from([
            (LABEL_SANDBOX.to_string(), spec.sandbox_id.clone()),
            (LABEL_OWNER.to_string(), spec.owner.clone()),
            (LABEL_PROJECT.to_string(), spec.project.clone()),
            (LABEL_EXPIRES.to_string(), spec.expires_unix.to_string()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
        ]);
        let l = &self.limits;
        let mut mounts = vec![Mount {
            target: Some(TTYD_IN_CONTAINER.into()),
            source: Some(self.ttyd.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        }];
        // ttyd's socket directory: tiny, and only this sandbox's.
        let mut sock = self.tmpfs_volume(SOCKET_DIR, 1, &labels);
        if let Some(v) = sock.volume_options.as_mut() {
            v.no_copy = Some(true);
        }
        mounts.push(sock);
        let mut wanted = vec![
            "/tmp".to_string(),
            "/var/tmp".into(),
            "/root".into(),
            "/home".into(),
        ];
        if let Some(w) = &workdir {
            let covered = w == "/"
                || wanted
                    .iter()
                    .any(|d| w == d || w.starts_with(&format!("{d}/")));
            let system = [
                "/proc",
                "/sys",
                "/dev",
                "/usr",
                "/etc",
                "/bin",
                "/lib",
                "/opt/trythis",
            ]
            .iter()
            .any(|p| w.starts_with(p));
            if !covered && !system {
                wanted.push(w.clone());
            }
        }
        for v in &facts.volumes {
            if !wanted.contains(v) && v != SOCKET_DIR {
                wanted.push(v.clone());
            }
        }
        let seeds = self.image_dirs(&spec.image, &wanted).await?;
        // A directory too big to copy keeps the image's (read-only) files instead of a tmpfs;
        // an image VOLUME that big gets an empty tmpfs (never a host-disk volume).
        let writable: Vec<(String, Bytes)> = wanted
            .iter()
            .filter_map(|d| seeds.get(d).cloned().flatten().map(|tar| (d.clone(), tar)))
            .collect();
        for (dir, _) in &writable {
            mounts.push(self.tmpfs_volume(dir, l.disk_mb, &labels));
        }
        for v in &facts.volumes {
            if !writable.iter().any(|(d, _)| d == v) && v != SOCKET_DIR {
                mounts.push(self.tmpfs_volume(v, l.disk_mb, &labels));
            }
        }
        let memory = (l.memory_mb * 1024 * 1024) as i64;
        let host = HostConfig {
            mounts: Some(mounts),
            network_mode: Some(if spec.egress {
                "bridge".into()
            } else {
                "none".into()
            }),
            readonly_rootfs: Some(true),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some((l.cpus * 1e9) as i64),
            pids_limit: Some(l.pids),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(KEPT_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            init: Some(true),
            oom_score_adj: Some(500),
            ..Default::default()
        };
        let mut cmd = vec![
            "-W",
            "-i",
            "/run/trythis/tty.sock",
            "-t",
            "disableLeaveAlert=true",
            "sh",
            "-c",
            SHELL_SCRIPT,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if let Some(w) = &workdir {
            cmd.splice(0..0, ["-w".to_string(), w.clone()]);
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(vec![TTYD_IN_CONTAINER.into()]),
            cmd: Some(cmd),
            env: Some(vec![
                "TERM=xterm-256color".into(),
                format!(
                    "TRYTHIS_WELCOME={}",
                    spec.welcome.clone().unwrap_or_default()
                ),
            ]),
            labels: Some(labels),
            host_config: Some(host),
            network_disabled: Some(!spec.egress),
            // An image's HEALTHCHECK would run its command in the sandbox every interval.
            healthcheck: Some(bollard::models::HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = container_name(&spec.sandbox_id);
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(opts), body).await?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self.destroy(&spec.sandbox_id).await;
            return Err(e.into());
        }
        // Put the image's own files back into the fresh tmpfs directories (dotfiles, project files).
        let uploads = writable
            .iter()
            .filter(|(_, tar)| tar.len() > EMPTY_DIR_ARCHIVE)
            .map(|(dir, tar)| {
                let opts = UploadToContainerOptionsBuilder::default().path(dir).build();
                self.docker.upload_to_container(
                    &created.id,
                    Some(opts),
                    bollard::body_full(tar.clone()),
                )
            });
        if let Err(e) = futures::future::try_join_all(uploads).await {
            let _ = self.destroy(&spec.sandbox_id).await;
            return Err(e.into());
        }
        let socket = match self.socket(&spec.sandbox_id).await? {
            Some(s) => s,
            None => {
                let _ = self.destroy(&spec.sandbox_id).await;
                return Err(RuntimeError::NotReady("no socket mount".into()));
            }
        };
        // ttyd creates its socket a few milliseconds after start.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::fs::metadata(&socket).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                let _ = self.destroy(&spec.sandbox_id).await;
                return Err(RuntimeError::NotReady(
                    "ttyd did not open its socket within 10 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        Ok(Launched {
            container_id: created.id,
            socket,
        })
    }

    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .docker
            .remove_container(&container_name(sandbox_id), Some(opts))
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // 409: removal already in progress.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn socket(&self, sandbox_id: &str) -> Result<Option<PathBuf>, RuntimeError> {
        let info = match self
            .docker
            .inspect_container(&container_name(sandbox_id), None)
            .await
        {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !info.state.and_then(|s| s.running).unwrap_or(false) {
            return Ok(None);
        }
        Ok(info
            .mounts
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.destination.as_deref() == Some(SOCKET_DIR))
            .and_then(|m| m.source)
            .map(|src| PathBuf::from(src).join(SOCKET_NAME)))
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                LABEL_SANDBOX.to_string(),
                format!("{LABEL_INSTANCE}={}", self.instance),
            ],
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(opts)).await?;
        for c in &containers {
            // A helper left by a crash mid-launch: never a sandbox, always safe to remove.
            if c.labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SANDBOX))
                .map(String::as_str)
                == Some("helper")
            {
                if let Some(id) = &c.id {
                    let _ = self.remove_by_id(id).await;
                }
            }
        }
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let id = c.labels.as_ref()?.get(LABEL_SANDBOX)?.clone();
                (id != "helper").then_some(())?;
                Some(Listed {
                    sandbox_id: id,
                    container_id: c.id?,
                })
            })
            .collect())
    }

    async fn usage(&self, sandbox_id: &str) -> Result<Option<Usage>, RuntimeError> {
        use futures::StreamExt;
        let opts = bollard::query_parameters::StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(false)
            .build();
        let mut stream = self.docker.stats(&container_name(sandbox_id), Some(opts));
        let stats = match stream.next().await {
            Some(Ok(s)) => s,
            Some(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }))
            | None => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
        };
        let total = |c: &Option<bollard::models::ContainerCpuStats>| {
            let c = c.as_ref();
            (
                c.and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0),
                c.and_then(|c| c.system_cpu_usage).unwrap_or(0),
                c.and_then(|c| c.online_cpus).unwrap_or(1).max(1),
            )
        };
        let (cpu, system, cpus) = total(&stats.cpu_stats);
        let (pre_cpu, pre_system, _) = total(&stats.precpu_stats);
        let cpu_percent = if system > pre_system && cpu >= pre_cpu {
            (cpu - pre_cpu) as f64 / (system - pre_system) as f64 * f64::from(cpus) * 100.0
        } else {
            0.0
        };
        let mem = stats.memory_stats.unwrap_or_default();
        let cache = mem
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("total_inactive_file")
                    .or_else(|| s.get("inactive_file"))
            })
            .copied()
            .unwrap_or(0);
        Ok(Some(Usage {
            cpu_percent: (cpu_percent * 10.0).round() / 10.0,
            memory_bytes: mem.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: mem.limit.unwrap_or(0),
        }))
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::EngineDown(e.to_string()))
    }
}
