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
use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    pin::Pin,
    sync::Mutex,
};
use tokio::io::{AsyncRead, AsyncWrite};

pub const LABEL_SANDBOX: &str = "trythis.sandbox";
pub const LABEL_OWNER: &str = "trythis.owner";
pub const LABEL_PROJECT: &str = "trythis.project";
pub const LABEL_EXPIRES: &str = "trythis.expires";
/// The installation a container belongs to: reconciliation only ever touches its own.
pub const LABEL_INSTANCE: &str = "trythis.instance";

/// The only platform file inside a sandbox (read-only): the relay, its idle main process and
/// the session leader of each shell the engine execs (`relay/src/inside.rs`).
const RELAY_IN_CONTAINER: &str = "/opt/trythis/relay";
/// gVisor only, beside the relay on the host (`scripts/lib.sh`): a workaround for gVisor's EBADF
/// on symlink xattrs (google/gvisor#11049, `ls -l` errors), preloaded before the image's own
/// `LD_PRELOAD`. See relay/compat/gvisor-xattr.c for what removes it.
pub const GVISOR_XATTR_SHIM: &str = "gvisor-xattr.so";
const GVISOR_XATTR_IN_CONTAINER: &str = "/opt/trythis/gvisor-xattr.so";

/// Engine runtimes the setup registers (`scripts/lib.sh`, `/etc/docker/daemon.json`): gVisor with
/// no network, and gVisor on the network of its container's own namespace (`--network=host`; its
/// own network stack does not start on this engine) for egress projects. Both keep every write
/// (root and volumes) in the sandbox's memory (`--overlay2=all:memory`), so the memory limit
/// bounds the disk a sandbox can use.
pub const RUNSC_RUNTIME: &str = "trythis-runsc";
pub const RUNSC_NET_RUNTIME: &str = "trythis-runsc-net";

/// How sandboxes are isolated from the host kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// gVisor: the sandbox's root talks to gVisor's kernel, not the host's. Writable root.
    Gvisor,
    /// runc in the engine's user namespace (`userns-remap`): namespaces, dropped capabilities,
    /// seccomp, and root inside is an unprivileged uid on the host. Read-only root plus bounded
    /// tmpfs. The fallback where gVisor does not run.
    RuncUserns,
    /// runc sharing the host's uids: root inside is root on the host's kernel. Only on demand
    /// (`TRYTHIS_SANDBOX_RUNTIME=runc` on an engine without a user namespace).
    Runc,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Gvisor => "runsc",
            Isolation::RuncUserns => "runc+userns",
            Isolation::Runc => "runc",
        }
    }

    /// runc either way: the read-only root, seeded tmpfs directories and the engine's pids limit.
    pub fn is_runc(self) -> bool {
        !matches!(self, Isolation::Gvisor)
    }

    /// The runtime for `wanted`, given what the engine has: gVisor registered, and whether it
    /// remaps container uids into a user namespace. `auto` never settles for root-on-the-host.
    pub fn choose(
        wanted: crate::config::RuntimeChoice,
        has_runsc: bool,
        has_userns: bool,
    ) -> Result<Isolation, RuntimeError> {
        use crate::config::RuntimeChoice;
        let runc = if has_userns {
            Isolation::RuncUserns
        } else {
            Isolation::Runc
        };
        match (wanted, has_runsc) {
            (RuntimeChoice::Runc, _) => Ok(runc),
            (_, true) => Ok(Isolation::Gvisor),
            (RuntimeChoice::Runsc, false) => Err(RuntimeError::Engine(format!(
                "TRYTHIS_SANDBOX_RUNTIME=runsc but the engine has no {RUNSC_RUNTIME} and {RUNSC_NET_RUNTIME} runtimes (scripts/run.sh registers them)"
            ))),
            (RuntimeChoice::Auto, false) if has_userns => Ok(Isolation::RuncUserns),
            (RuntimeChoice::Auto, false) => Err(RuntimeError::Engine(
                "the engine has neither gVisor (runsc) nor a user namespace (userns-remap): root in a sandbox would be root on the host. scripts/run.sh sets up one of them; TRYTHIS_SANDBOX_RUNTIME=runc accepts the risk".into(),
            )),
        }
    }
}

/// The host uid and gid that root in a container maps to, when the engine remaps
/// (`userns-remap`): its data root then ends in `<uid>.<gid>`.
pub type UsernsRoot = Option<(u32, u32)>;

/// What runs the sandboxes, for `/healthz` and the admin page: gVisor's own version line (its
/// binary, as the engine registered it, when it is on this host), or runc's commit.
pub async fn runtime_version(docker: &Docker, isolation: Isolation) -> String {
    let Ok(info) = docker.info().await else {
        return "unknown (the engine did not answer)".into();
    };
    match isolation {
        Isolation::Gvisor => {
            let path = info
                .runtimes
                .unwrap_or_default()
                .get(RUNSC_RUNTIME)
                .and_then(|r| r.path.clone())
                .unwrap_or_else(|| "runsc".into());
            match tokio::process::Command::new(&path)
                .arg("--version")
                .output()
                .await
            {
                Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("runsc")
                    .trim()
                    .to_string(),
                _ => format!("runsc ({path} is not on this host)"),
            }
        }
        Isolation::Runc | Isolation::RuncUserns => format!(
            "runc {}",
            info.runc_commit
                .and_then(|c| c.id)
                .unwrap_or_else(|| "(commit unknown)".into())
        ),
    }
}

/// Picks the sandbox runtime from what the engine reports (see `Isolation::choose`).
pub async fn detect_isolation(
    docker: &Docker,
    wanted: crate::config::RuntimeChoice,
) -> Result<(Isolation, UsernsRoot), RuntimeError> {
    let info = docker
        .info()
        .await
        .map_err(|e| RuntimeError::EngineDown(e.to_string()))?;
    let runtimes = info.runtimes.unwrap_or_default();
    let has_runsc =
        runtimes.contains_key(RUNSC_RUNTIME) && runtimes.contains_key(RUNSC_NET_RUNTIME);
    let has_userns = info
        .security_options
        .unwrap_or_default()
        .iter()
        .any(|o| o.split(',').any(|part| part == "name=userns"));
    let root = if has_userns {
        let dir = info.docker_root_dir.unwrap_or_default();
        let ids = dir.rsplit('/').next().and_then(|last| {
            let (u, g) = last.split_once('.')?;
            Some((u.parse().ok()?, g.parse().ok()?))
        });
        Some(ids.ok_or_else(|| {
            RuntimeError::Engine(format!(
                "the engine remaps uids but its data root {dir:?} does not name the mapping"
            ))
        })?)
    } else {
        None
    };
    Ok((Isolation::choose(wanted, has_runsc, has_userns)?, root))
}

/// A byte stream to the platform's ttyd.
pub trait TerminalIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> TerminalIo for T {}
pub type TerminalStream = Pin<Box<dyn TerminalIo>>;

/// Where a sandbox's terminal is: a stream to ttyd and the WebSocket path that names the sandbox.
pub struct TerminalUpstream {
    pub io: TerminalStream,
    pub path: String,
}

impl TerminalUpstream {
    /// A stream that is itself the sandbox's ttyd (fakes in tests and benches).
    pub fn direct(io: impl TerminalIo + 'static) -> Self {
        Self {
            io: Box::pin(io),
            path: "/ws".into(),
        }
    }
}

/// Egress for one sandbox: the proxy it must use and the CA bundle it should trust.
#[derive(Debug, Clone)]
pub struct Egress {
    pub network: String,
    pub proxy_url: String,
}

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
    /// `Some` for projects that opted into egress: the network and proxy they go out through.
    pub egress: Option<Egress>,
    pub welcome: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Launched {
    pub container_id: String,
}

/// A container found by label (reconciliation).
#[derive(Debug, Clone)]
pub struct Listed {
    pub sandbox_id: String,
    pub container_id: String,
}

#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// Creates and starts the sandbox (idle until a terminal execs a shell in it).
    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, RuntimeError>;
    /// Kills and removes the container and its volumes. Idempotent.
    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError>;
    /// A connection to a ttyd that starts a new shell in the running sandbox per WebSocket.
    async fn open_terminal(&self, sandbox_id: &str) -> Result<TerminalUpstream, RuntimeError>;
    /// How sandboxes are isolated (`/healthz` reports it).
    fn isolation(&self) -> Isolation;
    /// The runtime's version line (`/healthz` and the admin page).
    fn version(&self) -> String {
        self.isolation().as_str().to_string()
    }
    /// Resolves when the sandbox's container has stopped (or is gone). Under gVisor a sandbox
    /// that dies (out of memory) can leave its exec streams open; this is how sessions notice.
    async fn wait_exit(&self, _sandbox_id: &str) -> Exit {
        std::future::pending::<Exit>().await
    }
    /// Every container of this installation carrying the sandbox label.
    async fn list(&self) -> Result<Vec<Listed>, RuntimeError>;
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// Live CPU and memory use of a running sandbox (None: not running, or not measurable).
    async fn usage(&self, _sandbox_id: &str) -> Result<Option<Usage>, RuntimeError> {
        Ok(None)
    }
}

/// A command typed into a sandbox's shell: what the screen showed (the first
/// `MAX_COMMAND_OUTPUT` bytes, as plain text) and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// None when it did not end in time (it was killed with the sandbox).
    pub exit_code: Option<i64>,
    pub output: String,
    pub truncated: bool,
}

/// How a sandbox's container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Killed for exceeding its memory limit (under gVisor: any write, files included).
    OutOfMemory,
    /// Its processes ended (or it is gone).
    Ended,
}

impl Exit {
    /// The end reason stored on the sandbox and shown to its owner.
    pub fn reason(self) -> &'static str {
        match self {
            Exit::OutOfMemory => "out of memory",
            Exit::Ended => "its processes ended",
        }
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
    relay: PathBuf,
    terminals: super::ttyd_host::TtydHost,
    /// Trusted by egress sandboxes (system roots plus the configured extra CA), if any.
    ca_bundle: Option<PathBuf>,
    isolation: Isolation,
    version: String,
    /// Where root inside maps to on the host: the owner of the writable tmpfs directories (the
    /// engine mounts them as host root, which a remapped root may not write).
    userns_root: UsernsRoot,
    /// runc only: the image's own files under each writable directory, per image.
    seeds: Mutex<SeedCache>,
}

/// Seed archives by (image, directory), evicted least-recently-used beyond a byte budget.
/// `None` = too big to copy into a tmpfs: that directory stays read-only.
#[derive(Default)]
struct SeedCache {
    entries: HashMap<(String, String), Option<Bytes>>,
    order: VecDeque<(String, String)>,
    bytes: usize,
}

impl SeedCache {
    fn get(&mut self, key: &(String, String)) -> Option<Option<Bytes>> {
        let v = self.entries.get(key)?.clone();
        if let Some(i) = self.order.iter().position(|k| k == key) {
            if let Some(k) = self.order.remove(i) {
                self.order.push_back(k);
            }
        }
        Some(v)
    }

    fn insert(&mut self, key: (String, String), value: Option<Bytes>) {
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.map_or(0, |b| b.len());
            self.order.retain(|k| k != &key);
        }
        self.bytes += value.as_ref().map_or(0, |b| b.len());
        self.entries.insert(key.clone(), value);
        self.order.push_back(key);
        while self.bytes > SEED_CACHE_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.entries.remove(&oldest) {
                self.bytes -= v.map_or(0, |b| b.len());
            }
        }
    }
}

/// What a launch needs from the image's config.
struct ImageFacts {
    workdir: Option<String>,
    /// The image's own `LD_PRELOAD`, if any (the gVisor workaround goes before it).
    preload: Option<String>,
    /// The image's `VOLUME`s: each gets a bounded tmpfs, or the engine would make a host-disk
    /// anonymous volume there that no sandbox limit bounds.
    volumes: Vec<String>,
}

impl ImageFacts {
    fn of(config: Option<bollard::models::ImageConfig>) -> Self {
        let config = config.unwrap_or_default();
        Self {
            workdir: config.working_dir.filter(|w| !w.is_empty()),
            preload: config.env.as_ref().and_then(|env| {
                env.iter()
                    .find_map(|e| e.strip_prefix("LD_PRELOAD="))
                    .filter(|p| !p.is_empty())
                    .map(String::from)
            }),
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

/// runc: most bytes copied from the image into one sandbox's writable tmpfs directories at launch
/// (all directories together; one that would pass it keeps the image's read-only files).
pub const MAX_SEED_BYTES: usize = 64 * 1024 * 1024;
/// Host PIDs (threads) a gVisor sandbox may hold per task it may run. gVisor backs its tasks with
/// host threads (~10 per task measured here when every task is busy, 107 for an idle sandbox);
/// when the cgroup's `pids.max` is reached the sentry gets EAGAIN and keeps running its tasks on
/// the threads it has, so the bound costs speed inside one sandbox, never the host's process
/// table. 4 keeps 256 tasks at 1,024 host PIDs: 32 sandboxes fill the sandboxes' total budget.
const GVISOR_HOST_THREADS_PER_PROCESS: i64 = 4;
/// What an idle gVisor sandbox needs whatever its task limit (107 host threads measured idle).
const GVISOR_MIN_HOST_PIDS: i64 = 512;
/// Most image `VOLUME`s a published image may declare (each costs a tmpfs and a copy per Try).
pub const MAX_IMAGE_VOLUMES: usize = 8;
/// Bytes of seed archives kept in memory across images.
const SEED_CACHE_BYTES: usize = 256 * 1024 * 1024;
/// An archive of an empty directory: its own header plus the end-of-archive blocks.
const EMPTY_DIR_ARCHIVE: usize = 1536;

/// Connects to the sandbox engine and negotiates the API version (the engine here is 20.10).
pub async fn connect_docker(config: &Config) -> Result<Docker, RuntimeError> {
    connect_engine(&config.docker_endpoint).await
}

/// Connects to the engine that runs build steps (see `Config::build_engine`).
pub async fn connect_build_engine(config: &Config) -> Result<Docker, RuntimeError> {
    connect_engine(&config.build_engine).await.map_err(|e| {
        RuntimeError::EngineDown(format!(
            "build engine {} (TRYTHIS_BUILD_ENGINE; scripts/run.sh starts it): {e}",
            config.build_engine
        ))
    })
}

async fn connect_engine(ep: &str) -> Result<Docker, RuntimeError> {
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

/// Where egress sandboxes find the platform's CA bundle (system roots plus the extra CA).
const CA_IN_CONTAINER: &str = "/opt/trythis/ca-certificates.crt";

/// The variables HTTP clients read for their proxy (curl, apt, pip, npm, git, cargo).
pub fn proxy_env(url: &str) -> Vec<String> {
    ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .iter()
        .map(|k| format!("{k}={url}"))
        .chain(["NO_PROXY=".to_string(), "no_proxy=".to_string()])
        .collect()
}

/// The variables TLS clients read for a CA bundle (OpenSSL, curl, pip/requests, Node, git).
pub fn ca_env(path: &str) -> Vec<String> {
    [
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "PIP_CERT",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "GIT_SSL_CAINFO",
        "CARGO_HTTP_CAINFO",
    ]
    .iter()
    .map(|k| format!("{k}={path}"))
    .collect()
}

/// Usual permissions of each writable directory (sticky world-writable temp dirs, private home).
fn dir_mode(dir: &str) -> &'static str {
    match dir {
        "/tmp" | "/var/tmp" => "1777",
        "/root" => "0700",
        _ => "0755",
    }
}

fn container_name(sandbox_id: &str) -> String {
    format!("trythis-{sandbox_id}")
}

/// CFS period of a sandbox's CPU limit; its quota is `cpus` of it. The engine's default period
/// (100 ms) throttles the start-up itself (gVisor's kernel, ttyd and the shell need about
/// 0.1 CPU-s in the sandbox's cgroup: +57 ms at 0.5 CPU, `server/examples/bench.rs`); over one
/// second the start runs at full speed and the average stays at `cpus` in every period.
const CPU_PERIOD_US: i64 = 1_000_000;

/// Most output kept from a command run in a sandbox (the rest is counted, not stored).
pub const MAX_COMMAND_OUTPUT: usize = 16 * 1024;

impl DockerRuntime {
    /// `instance`: this installation's id (`db::instance_id`), labelled on every container.
    pub fn new(
        docker: Docker,
        config: &Config,
        instance: String,
        (isolation, userns_root): (Isolation, UsernsRoot),
    ) -> Self {
        Self {
            docker,
            instance,
            limits: config.limits.clone(),
            relay: config.relay_path.clone(),
            terminals: super::ttyd_host::TtydHost::new(
                &config.ttyd_path,
                &config.relay_path,
                &config.docker_endpoint,
                &config.data_dir,
            ),
            ca_bundle: config.ca_bundle_path(),
            isolation,
            version: isolation.as_str().to_string(),
            userns_root,
            seeds: Mutex::default(),
        }
    }

    /// The runtime's version line (`runtime_version`).
    pub fn with_version(mut self, version: String) -> Self {
        self.version = version;
        self
    }

    /// runc: the image's files under `dirs`, as tar archives, read once per image through a
    /// never-started helper container (the Engine's archive API). All directories together get
    /// at most `MAX_SEED_BYTES`; the first to pass it (and any after) stay read-only.
    async fn image_dirs(
        &self,
        image: &str,
        dirs: &[String],
    ) -> Result<HashMap<String, Option<Bytes>>, RuntimeError> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let mut cache = self.seeds.lock().unwrap_or_else(|p| p.into_inner());
            for d in dirs {
                match cache.get(&(image.to_string(), d.clone())) {
                    Some(v) => {
                        out.insert(d.clone(), v);
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
            labels: Some(HashMap::from([
                (LABEL_SANDBOX.to_string(), "helper".to_string()),
                (LABEL_INSTANCE.to_string(), self.instance.clone()),
            ])),
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
        let mut budget = MAX_SEED_BYTES.saturating_sub(
            out.values()
                .map(|v| v.as_ref().map_or(0, |b| b.len()))
                .sum(),
        );
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
                            if b.len() > budget {
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
            budget -= buf.as_ref().map_or(0, Vec::len);
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

    /// A size-bounded tmpfs volume mounted at `target`, removed with the container. The engine
    /// mounts the tmpfs at start, over anything copied in before, so its seed is uploaded after.
    fn tmpfs_volume(&self, target: &str, size_mb: u64, labels: &HashMap<String, String>) -> Mount {
        let owner = self
            .userns_root
            .map(|(uid, gid)| format!(",uid={uid},gid={gid}"))
            .unwrap_or_default();
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
                                "size={size_mb}m,nr_inodes=65536,nosuid,nodev,mode={}{owner}",
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

    /// runc: the directories that get a writable tmpfs (seeded with the image's files there):
    /// home and temp directories, the usual writable system directories, the WORKDIR and every
    /// image `VOLUME`. The root itself stays read-only.
    fn runc_writable_dirs(facts: &ImageFacts) -> Vec<String> {
        let mut wanted: Vec<String> = RUNC_WRITABLE.iter().map(|d| d.to_string()).collect();
        if let Some(w) = &facts.workdir {
            let covered = w == "/"
                || wanted
                    .iter()
                    .any(|d| w == d || w.starts_with(&format!("{d}/")));
            let system = [
                "/proc",
                "/sys",
                "/dev",
                "/usr",
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
            let covered = wanted
                .iter()
                .any(|d| v == d || v.starts_with(&format!("{d}/")));
            if !covered {
                wanted.push(v.clone());
            }
        }
        wanted
    }

    /// runc: tmpfs mounts for `wanted`, and the seeds to upload once the container runs.
    async fn runc_mounts(
        &self,
        image: &str,
        facts: &ImageFacts,
        labels: &HashMap<String, String>,
        mounts: &mut Vec<Mount>,
    ) -> Result<Vec<(String, Bytes)>, RuntimeError> {
        let wanted = Self::runc_writable_dirs(facts);
        let seeds = self.image_dirs(image, &wanted).await?;
        // A directory too big to copy keeps the image's (read-only) files instead of a tmpfs;
        // an image VOLUME that big gets an empty tmpfs (never a host-disk volume).
        let writable: Vec<(String, Bytes)> = wanted
            .iter()
            .filter_map(|d| seeds.get(d).cloned().flatten().map(|tar| (d.clone(), tar)))
            .map(|(d, tar)| {
                // The engine bind-mounts these over /etc; extracting onto them fails (EBUSY).
                let drop: &[&str] = if d == "/etc" {
                    &["hostname", "hosts", "resolv.conf"]
                } else {
                    &[]
                };
                let tar = Bytes::from(seed_archive(&tar, &d, drop, self.userns_root));
                (d, tar)
            })
            .collect();
        for (dir, _) in &writable {
            mounts.push(self.tmpfs_volume(dir, self.limits.disk_mb, labels));
        }
        for v in &facts.volumes {
            if !writable.iter().any(|(d, _)| d == v) {
                mounts.push(self.tmpfs_volume(v, self.limits.disk_mb, labels));
            }
        }
        Ok(writable)
    }
}

/// A seed archive of `dir` made fit for the engine's upload: without the top-level entries named
/// in `drop` (with their extension headers), and with relative symlinks that leave `dir`
/// (`/etc/os-release -> ../usr/lib/os-release`, which the engine refuses to extract) made
/// absolute, so they point where they did. Under a user namespace the engine's download carries
/// host ids (root = `userns_root`) and its upload maps container ids: owners are shifted back.
fn seed_archive(tar: &[u8], dir: &str, drop: &[&str], userns_root: UsernsRoot) -> Vec<u8> {
    let mut out = Vec::with_capacity(tar.len());
    let mut group_start = 0;
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let size = octal(&header[124..136]) as usize;
        let end = (at + 512 + size.div_ceil(512) * 512).min(tar.len());
        let kind = header[156];
        let header_at = at;
        at = end;
        if matches!(kind, b'x' | b'g' | b'L' | b'K') {
            continue; // extension header: belongs to the next entry
        }
        let name = c_str(&header[..100]);
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if drop.contains(&name.as_str()) {
            group_start = end;
            continue;
        }
        let mut group = tar[group_start..end].to_vec();
        let h = header_at - group_start;
        let mut changed = false;
        if let Some((uid, gid)) = userns_root {
            for (field, base) in [(108..116, uid), (116..124, gid)] {
                let id = octal(&group[h + field.start..h + field.end]);
                if id >= u64::from(base) {
                    let shifted = format!("{:07o}\0", id - u64::from(base));
                    group[h + field.start..h + field.end].copy_from_slice(shifted.as_bytes());
                    changed = true;
                }
            }
        }
        let link = c_str(&header[157..257]);
        if kind == b'2' && !link.starts_with('/') {
            let parent = std::path::Path::new(dir).join(&name);
            let parent = parent.parent().unwrap_or(std::path::Path::new("/"));
            let absolute = normalize(&parent.join(&link));
            if !absolute.starts_with(&format!("{}/", dir.trim_end_matches('/')))
                && absolute.len() < 100
            {
                let field = &mut group[h + 157..h + 257];
                field.fill(0);
                field[..absolute.len()].copy_from_slice(absolute.as_bytes());
                changed = true;
            }
        }
        if changed {
            group[h + 148..h + 156].copy_from_slice(b"        ");
            let sum: u64 = group[h..h + 512].iter().map(|b| u64::from(*b)).sum();
            group[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        out.extend_from_slice(&group);
        group_start = end;
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn c_str(field: &[u8]) -> String {
    let len = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}

fn octal(field: &[u8]) -> u64 {
    let s = c_str(field);
    u64::from_str_radix(s.trim(), 8).unwrap_or(0)
}

/// `/etc/../usr/lib/x` → `/usr/lib/x`, lexically.
fn normalize(path: &std::path::Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// runc: directories a program may expect to write (servers write pids under /run, logs under
/// /var/log, state under /var/lib; tools write /etc). /var/run is a link to /run in Debian.
const RUNC_WRITABLE: &[&str] = &[
    "/tmp",
    "/var/tmp",
    "/root",
    "/home",
    "/run",
    "/var/log",
    "/var/lib",
    "/var/cache",
    "/etc",
];

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Launched, RuntimeError> {
        let facts = self.ensure_image(&spec.image).await?;
        if facts.volumes.len() > MAX_IMAGE_VOLUMES {
            return Err(RuntimeError::NotReady(format!(
                "the image declares {} VOLUMEs; at most {MAX_IMAGE_VOLUMES} are allowed",
                facts.volumes.len()
            )));
        }
        let labels = HashMap::from([
            (LABEL_SANDBOX.to_string(), spec.sandbox_id.clone()),
            (LABEL_OWNER.to_string(), spec.owner.clone()),
            (LABEL_PROJECT.to_string(), spec.project.clone()),
            (LABEL_EXPIRES.to_string(), spec.expires_unix.to_string()),
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
        ]);
        let l = &self.limits;
        let ro_bind = |source: &std::path::Path, target: &str| Mount {
            target: Some(target.into()),
            source: Some(source.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        };
        let mut mounts = vec![ro_bind(&self.relay, RELAY_IN_CONTAINER)];
        let mut env = vec![
            "TERM=xterm-256color".to_string(),
            format!(
                "TRYTHIS_WELCOME={}",
                spec.welcome.clone().unwrap_or_default()
            ),
        ];
        if self.isolation == Isolation::Gvisor {
            let tools = self.relay.parent().unwrap_or(std::path::Path::new("/"));
            mounts.push(ro_bind(
                &tools.join(GVISOR_XATTR_SHIM),
                GVISOR_XATTR_IN_CONTAINER,
            ));
            let preload = match &facts.preload {
                Some(own) => format!("{GVISOR_XATTR_IN_CONTAINER}:{own}"),
                None => GVISOR_XATTR_IN_CONTAINER.to_string(),
            };
            env.push(format!("LD_PRELOAD={preload}"));
        }
        if let Some(egress) = &spec.egress {
            env.extend(proxy_env(&egress.proxy_url));
            if let Some(ca) = &self.ca_bundle {
                mounts.push(ro_bind(ca, CA_IN_CONTAINER));
                env.extend(ca_env(CA_IN_CONTAINER));
            }
        }
        let seeds = match self.isolation {
            // gVisor keeps root and volume writes in the sandbox's memory: no seeding needed.
            Isolation::Gvisor => Vec::new(),
            Isolation::Runc | Isolation::RuncUserns => {
                self.runc_mounts(&spec.image, &facts, &labels, &mut mounts)
                    .await?
            }
        };
        let memory = (l.memory_mb * 1024 * 1024) as i64;
        let (network_mode, runtime) = match (&spec.egress, self.isolation) {
            (None, Isolation::Gvisor) => ("none".to_string(), Some(RUNSC_RUNTIME.to_string())),
            (Some(e), Isolation::Gvisor) => {
                (e.network.clone(), Some(RUNSC_NET_RUNTIME.to_string()))
            }
            (None, _) => ("none".to_string(), None),
            (Some(e), _) => (e.network.clone(), None),
        };
        let host = HostConfig {
            mounts: Some(mounts),
            network_mode: Some(network_mode),
            runtime,
            readonly_rootfs: Some(self.isolation.is_runc()),
            memory: Some(memory),
            memory_swap: Some(memory),
            cpu_period: Some(CPU_PERIOD_US),
            cpu_quota: Some((l.cpus * CPU_PERIOD_US as f64) as i64),
            // Under gVisor the engine's pids limit counts the gVisor kernel's host threads (more
            // than one per process); the process limit inside is the sandbox kernel's own NPROC,
            // which (unlike under runc) no host account shares.
            pids_limit: Some(match self.isolation {
                Isolation::Gvisor => {
                    (l.pids * GVISOR_HOST_THREADS_PER_PROCESS).max(GVISOR_MIN_HOST_PIDS)
                }
                Isolation::Runc | Isolation::RuncUserns => l.pids,
            }),
            ulimits: (self.isolation == Isolation::Gvisor).then(|| {
                vec![bollard::models::ResourcesUlimits {
                    name: Some("nproc".into()),
                    soft: Some(l.pids),
                    hard: Some(l.pids),
                }]
            }),
            // All sandboxes share one parent cgroup whose pids.max is the host's PID budget for them.
            cgroup_parent: l.cgroup_parent.clone(),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(KEPT_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
            security_opt: Some(vec!["no-new-privileges".into()]),
            init: Some(true),
            oom_score_adj: Some(500),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            // Idle until a terminal execs a shell (which starts in the image's WORKDIR).
            entrypoint: Some(vec![RELAY_IN_CONTAINER.into()]),
            cmd: Some(vec!["idle".into()]),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(host),
            network_disabled: Some(spec.egress.is_none()),
            // An image's HEALTHCHECK would run its command in the sandbox every interval.
            healthcheck: Some(bollard::models::HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = container_name(&spec.sandbox_id);
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = match self
            .docker
            .create_container(Some(opts.clone()), body.clone())
            .await
        {
            // The image went between the check above and now (another process pruned it): once
            // more, pulling it again.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                self.ensure_image(&spec.image).await?;
                self.docker.create_container(Some(opts), body).await?
            }
            other => other?,
        };
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let _ = self.destroy(&spec.sandbox_id).await;
            return Err(e.into());
        }
        // runc: put the image's own files back into the fresh tmpfs directories.
        let uploads = seeds
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
        Ok(Launched {
            container_id: created.id,
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

    async fn open_terminal(&self, sandbox_id: &str) -> Result<TerminalUpstream, RuntimeError> {
        let name = container_name(sandbox_id);
        // ttyd would start the relay and it would fail inside the terminal: say it here instead.
        let running = match self.docker.inspect_container(&name, None).await {
            Ok(c) => c.state.and_then(|s| s.running) == Some(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => false,
            Err(e) => return Err(e.into()),
        };
        if !running {
            return Err(RuntimeError::ImageMissing(format!("{name} is not running")));
        }
        let io = self.terminals.connect().await?;
        Ok(TerminalUpstream {
            io: Box::pin(io),
            path: super::ttyd_host::ws_path(&name),
        })
    }

    fn isolation(&self) -> Isolation {
        self.isolation
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    async fn wait_exit(&self, sandbox_id: &str) -> Exit {
        let name = container_name(sandbox_id);
        loop {
            // One item (the exit) or an error (gone, or the engine's connection broke): the
            // container's own state says which.
            let _ = self.docker.wait_container(&name, None).next().await;
            match self.docker.inspect_container(&name, None).await {
                Ok(c) => {
                    let state = c.state.unwrap_or_default();
                    if state.running == Some(true) {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                    return if state.oom_killed == Some(true) {
                        Exit::OutOfMemory
                    } else {
                        Exit::Ended
                    };
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Exit::Ended,
                Err(_) => tokio::time::sleep(std::time::Duration::from_secs(2)).await,
            }
        }
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
        let now = chrono::Utc::now().timestamp();
        for c in &containers {
            // A helper left by a crash mid-launch: never a sandbox, always safe to remove once
            // older than any launch (the sweep lists every few seconds, during launches).
            if c.labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SANDBOX))
                .map(String::as_str)
                == Some("helper")
                && c.created.is_some_and(|t| now - t > 600)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (setting, engine) pair: `auto` takes gVisor, then runc in a user namespace, and
    /// refuses rather than run sandboxes as host root.
    #[test]
    fn runtime_choice_table() {
        use crate::config::RuntimeChoice::*;
        let pick = |w, runsc, userns| Isolation::choose(w, runsc, userns).ok();
        assert_eq!(pick(Auto, true, true), Some(Isolation::Gvisor));
        assert_eq!(pick(Auto, true, false), Some(Isolation::Gvisor));
        assert_eq!(pick(Auto, false, true), Some(Isolation::RuncUserns));
        assert_eq!(pick(Auto, false, false), None);
        assert_eq!(pick(Runsc, true, false), Some(Isolation::Gvisor));
        assert_eq!(pick(Runsc, false, true), None);
        assert_eq!(pick(Runc, true, true), Some(Isolation::RuncUserns));
        assert_eq!(pick(Runc, true, false), Some(Isolation::Runc));
        assert_eq!(pick(Runc, false, false), Some(Isolation::Runc));
    }

    #[test]
    fn engine_managed_files_leave_the_etc_seed() {
        let tar = crate::tar::tar_files(&[
            ("./hostname", b"img"),
            ("./passwd", b"root:x:0:0"),
            ("./resolv.conf", b"nameserver 1.1.1.1"),
            ("./hosts.allow", b"ALL"),
        ]);
        let kept = seed_archive(&tar, "/etc", &["hostname", "hosts", "resolv.conf"], None);
        let names: Vec<String> = kept
            .chunks(512)
            .filter(|h| h[257..262] == *b"ustar")
            .map(|h| {
                String::from_utf8_lossy(&h[..h.iter().position(|b| *b == 0).unwrap_or(100)])
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["./passwd", "./hosts.allow"]);
        assert_eq!(kept.len(), 2 * 1024 + 1024);
    }

    /// Under userns-remap the engine downloads host ids and uploads container ids: a seed of
    /// root's files (host uid 100000) and a utmp group file (100043) must go back as 0 and 43, with
    /// valid checksums, or the engine refuses the upload ("cannot be mapped to a host ID").
    #[test]
    fn seed_owners_shift_back_into_the_user_namespace() {
        let mut tar = crate::tar::tar_files(&[("./root-file", b"x"), ("./utmp", b"")]);
        for (h, uid, gid) in [(0usize, 100_000u64, 100_000u64), (1024, 100_000, 100_043)] {
            tar[h + 108..h + 116].copy_from_slice(format!("{uid:07o}\0").as_bytes());
            tar[h + 116..h + 124].copy_from_slice(format!("{gid:07o}\0").as_bytes());
        }
        let out = seed_archive(&tar, "/var/log", &[], Some((100_000, 100_000)));
        let headers: Vec<&[u8]> = out
            .chunks(512)
            .filter(|h| h[257..262] == *b"ustar")
            .collect();
        let ids: Vec<(u64, u64)> = headers
            .iter()
            .map(|h| (octal(&h[108..116]), octal(&h[116..124])))
            .collect();
        assert_eq!(ids, [(0, 0), (0, 43)]);
        for h in headers {
            let stored = octal(&h[148..156]);
            let sum: u64 = h
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(*b)
                    }
                })
                .sum();
            assert_eq!(stored, sum, "header checksum");
        }
        // Without a user namespace nothing moves.
        let same = seed_archive(&tar, "/var/log", &[], None);
        assert_eq!(octal(&same[108..116]), 100_000);
    }

    #[test]
    fn relative_symlinks_leaving_the_seeded_dir_become_absolute() {
        let mut tar = crate::tar::tar_files(&[("./os-release", b""), ("./inside", b"")]);
        // Turn both entries into symlinks: one leaves /etc, one stays inside.
        for (h, target) in [(0usize, "../usr/lib/os-release"), (512, "sub/file")] {
            tar[h + 156] = b'2';
            tar[h + 157..h + 157 + target.len()].copy_from_slice(target.as_bytes());
        }
        let out = seed_archive(&tar, "/etc", &[], None);
        assert_eq!(c_str(&out[157..257]), "/usr/lib/os-release");
        assert_eq!(c_str(&out[512 + 157..512 + 257]), "sub/file");
        // The rewritten header's checksum is valid.
        let mut h = out[..512].to_vec();
        let stored = octal(&h[148..156]);
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|b| u64::from(*b)).sum::<u64>());
    }

    #[test]
    fn seed_cache_evicts_the_least_recently_used_beyond_its_budget() {
        let mut c = SeedCache::default();
        let chunk = || Some(Bytes::from(vec![0u8; SEED_CACHE_BYTES / 3]));
        let key = |i: u8| (format!("img{i}"), "/root".to_string());
        c.insert(key(1), chunk());
        c.insert(key(2), chunk());
        c.insert(key(3), chunk());
        assert!(c.get(&key(1)).is_some()); // 1 is now the most recent
        c.insert(key(4), chunk());
        assert!(c.get(&key(2)).is_none(), "the least recently used went");
        assert!(c.get(&key(1)).is_some() && c.get(&key(3)).is_some() && c.get(&key(4)).is_some());
        assert!(c.bytes <= SEED_CACHE_BYTES);
    }
}
