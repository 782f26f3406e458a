//! `DockerRuntime`: sandboxes as containers of the sandbox engine, through the Engine API
//! (bollard) — created with the chosen isolation (gVisor, or runc with seeded tmpfs directories,
//! `super::seed`), limits and labels; terminals through the platform's ttyd (`super::ttyd_host`).
use super::runtime::{
    Exit, LaunchSpec, Launched, Listed, Runtime, RuntimeError, TerminalUpstream, Usage,
    LABEL_EXPIRES, LABEL_INSTANCE, LABEL_OWNER, LABEL_PROJECT, LABEL_SANDBOX,
};
use super::seed::{seed_archive, SeedCache, MAX_SEED_BYTES, RUNC_WRITABLE};
use crate::config::{Config, SandboxLimits};
use crate::engine::{
    ca_env, proxy_env, Isolation, UsernsRoot, CA_IN_CONTAINER, MAX_IMAGE_VOLUMES,
    RUNSC_NET_RUNTIME, RUNSC_RUNTIME,
};
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
use std::{collections::HashMap, path::PathBuf, sync::Mutex};

/// The only platform file inside a sandbox (read-only): the relay, its idle main process and
/// the session leader of each shell the engine execs (`relay/src/inside.rs`).
const RELAY_IN_CONTAINER: &str = "/opt/trythis/relay";
/// gVisor only, beside the relay on the host (`scripts/lib.sh`): a workaround for gVisor's EBADF
/// on symlink xattrs (google/gvisor#11049, `ls -l` errors), preloaded before the image's own
/// `LD_PRELOAD`. See relay/compat/gvisor-xattr.c for what removes it.
pub const GVISOR_XATTR_SHIM: &str = "gvisor-xattr.so";
const GVISOR_XATTR_IN_CONTAINER: &str = "/opt/trythis/gvisor-xattr.so";

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

impl From<bollard::errors::Error> for RuntimeError {
    fn from(e: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError {
                status_code: 404,
                message,
            } => RuntimeError::ImageMissing(message),
            // The legacy client's errors are the connection's (refused, reset): the engine is
            // not answering.
            E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::IOError { .. }
            | E::RequestTimeoutError => RuntimeError::EngineDown(e.to_string()),
            other => RuntimeError::Engine(other.to_string()),
        }
    }
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

/// Host PIDs (threads) a gVisor sandbox may hold per task it may run. gVisor backs its tasks with
/// host threads (~10 per task measured here when every task is busy, 107 for an idle sandbox);
/// when the cgroup's `pids.max` is reached the sentry gets EAGAIN and keeps running its tasks on
/// the threads it has, so the bound costs speed inside one sandbox, never the host's process
/// table. 4 keeps 256 tasks at 1,024 host PIDs: 32 sandboxes fill the sandboxes' total budget.
const GVISOR_HOST_THREADS_PER_PROCESS: i64 = 4;
/// What an idle gVisor sandbox needs whatever its task limit (107 host threads measured idle).
const GVISOR_MIN_HOST_PIDS: i64 = 512;
/// An archive of an empty directory: its own header plus the end-of-archive blocks.
const EMPTY_DIR_ARCHIVE: usize = 1536;

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

impl DockerRuntime {
    /// `instance`: this installation's id (`db::instance_id`), labelled on every container.
    /// `endpoint`: how `docker` was reached (the session holders reach the engine by it).
    pub fn new(
        docker: Docker,
        endpoint: &str,
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
                endpoint,
                &config.data_dir,
            ),
            ca_bundle: config.ca_bundle_path(),
            isolation,
            version: isolation.as_str().to_string(),
            userns_root,
            seeds: Mutex::default(),
        }
    }

    /// A connection to this server's ttyd for `sandbox_id`'s terminal (`watch`: joining the open
    /// shell only, see `Runtime::join_terminal`).
    async fn terminal(
        &self,
        sandbox_id: &str,
        watch: bool,
    ) -> Result<TerminalUpstream, RuntimeError> {
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
            path: super::ttyd_host::ws_path(&name, watch),
        })
    }

    /// Whether this engine has `sandbox_id`'s container (running or not).
    pub async fn has(&self, sandbox_id: &str) -> Result<bool, RuntimeError> {
        match self
            .docker
            .inspect_container(&container_name(sandbox_id), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(e.into()),
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
        let pull = self.docker.create_image(Some(opts), None, None);
        let mut pull = std::pin::pin!(crate::engine::until_stray_terminator(pull));
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
            node: None,
        })
    }

    async fn destroy(&self, sandbox_id: &str) -> Result<(), RuntimeError> {
        self.terminals.forget(&container_name(sandbox_id));
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
        self.terminal(sandbox_id, false).await
    }

    async fn join_terminal(&self, sandbox_id: &str) -> Result<TerminalUpstream, RuntimeError> {
        self.terminal(sandbox_id, true).await
    }

    async fn hang_up_shell(&self, sandbox_id: &str) {
        self.terminals.hang_up(&container_name(sandbox_id)).await;
    }

    async fn shell_held(&self, sandbox_id: &str) -> bool {
        self.terminals
            .holds_shell(&container_name(sandbox_id))
            .await
    }

    async fn relay(
        &self,
        sandbox_id: &str,
        args: &[&str],
    ) -> Result<super::exec_io::ExecIo, RuntimeError> {
        let name = container_name(sandbox_id);
        let cmd = std::iter::once(RELAY_IN_CONTAINER)
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        // No `User`: the image's own, the shell's (an upload belongs to the visitor's user).
        let config = bollard::models::ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            cmd: Some(cmd),
            ..Default::default()
        };
        let exec = match self.docker.create_exec(&name, config).await {
            Ok(e) => e,
            // 404: gone; 409: not running.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                message,
            }) => return Err(RuntimeError::NotReady(message)),
            Err(e) => return Err(e.into()),
        };
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(bollard::exec::StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await?;
        match started {
            bollard::exec::StartExecResults::Attached { output, input } => {
                Ok(super::exec_io::ExecIo::new(output, input))
            }
            bollard::exec::StartExecResults::Detached => {
                Err(RuntimeError::Engine("the engine detached the relay".into()))
            }
        }
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
