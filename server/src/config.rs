//! Typed configuration, read once at start-up: an optional `KEY=VALUE` file (`TRYTHIS_CONFIG`,
//! default `./trythis.env`; `.env.example` is one), then `TRYTHIS_*` environment variables on top.
//! Every key, its default and meaning are listed in README.md ("Configuration").
use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

#[derive(Debug, thiserror::Error)]
#[error("configuration key {key}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// `TRYTHIS_SANDBOX_RUNTIME`: which engine runtime sandboxes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// gVisor when the engine has it registered, else runc in the engine's user namespace;
    /// refuses to start when the engine has neither.
    Auto,
    /// gVisor or refuse to start.
    Runsc,
    /// runc (in the engine's user namespace when it has one).
    Runc,
}

/// Where builds and egress sandboxes may connect, through the platform's egress proxy.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Host patterns (`pypi.org`, `*.debian.org`, `*` = any public host).
    pub allow_hosts: Vec<String>,
    pub ports: Vec<u16>,
    /// `host:port` destinations allowed although private (an internal mirror).
    pub mirrors: Vec<String>,
    /// The proxy's port on each isolated network's gateway; 0 = the first free one of 3128–3191.
    pub proxy_port: u16,
    /// Isolated networks (engine `internal` bridges; the host accepts only the proxy's ports
    /// from them): one for build steps, one for sandboxes of projects that opted into egress.
    pub build_network: String,
    pub build_subnet: String,
    pub sandbox_network: String,
    pub sandbox_subnet: String,
    /// Extra CA certificates (PEM) that builds and egress sandboxes trust, for TLS-intercepting
    /// networks. Defaults to the host's bundle when `SSL_CERT_FILE` is set.
    pub extra_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SandboxLimits {
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
    /// The cgroup every sandbox container is created under (Tries, the warm pool, smoke checks):
    /// its `pids.max` (`scripts/lib.sh ensure_pid_budget`) bounds the host PIDs of all sandboxes
    /// together, below `kernel.pid_max`. None: the engine's default parent.
    pub cgroup_parent: Option<String>,
    /// Size of each writable tmpfs (/tmp, /root, /home, /run, /var/tmp); the root is read-only.
    pub disk_mb: u64,
    pub lifetime_visitor: Duration,
    pub lifetime_user: Duration,
    pub idle_timeout: Duration,
    pub extend_by: Duration,
    pub max_extensions: i32,
    /// Global maximum of running sandboxes; beyond it Try requests queue.
    pub max_running: u64,
    /// Pre-started sandboxes always kept for each of the three most-tried projects (0 = none).
    pub warm_pool: u64,
    /// Demand-following pool: a project tried n times in the last five minutes keeps
    /// min(n, this) members ready, within the places no visitor uses (0 = off).
    pub warm_pool_max: u64,
    /// Launches per identity per minute.
    pub rate_per_identity: u32,
    /// Launches per client IP per minute.
    pub rate_per_ip: u32,
    /// Sandboxes running (and places in line) one client address may hold at once, whatever
    /// number of identities it mints.
    pub running_per_ip: u64,
    /// Try requests waiting for capacity, all clients together.
    pub queue_max: u64,
}

/// Publishing: how builds run and what they may produce.
#[derive(Debug, Clone)]
pub struct BuildLimits {
    /// Builds running at once.
    pub concurrency: u64,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub cpus: f64,
    /// Largest image a build may publish (uncompressed, as the engine reports it).
    pub max_image_mb: u64,
    /// Successful builds whose images are kept per project (older tags are deleted).
    pub retention: u64,
    /// Builds one identity may start per hour.
    pub per_hour: u64,
    /// Builds waiting in the queue, all accounts together (one more is refused with 429).
    pub queue_max: u64,
    /// Projects one identity may publish.
    pub projects_per_owner: u64,
    /// The base image of converted install scripts (`# trythis: base=` overrides it).
    pub base_image: String,
    /// `TRYTHIS_IMPORT_REGISTRIES`: the registries images may be imported from.
    pub import_registries: Vec<ImportRegistry>,
    /// `TRYTHIS_IMPORT_MAX_MB`: the largest image an import copies (config and layers as the
    /// manifest declares them, compressed), checked before anything is copied.
    pub import_max_mb: u64,
    /// `TRYTHIS_REPLICA_ID`: this app server's name among the replicas over one database (see
    /// `Config::replica_id`); the builds it runs carry it.
    pub replica: String,
}

/// One entry of `TRYTHIS_IMPORT_REGISTRIES`: `host[:port]` (HTTPS, public addresses only, as
/// everything the egress proxy reaches), or `http://host:port`, an operator's explicit choice of
/// a registry spoken to over plain HTTP that may be on a private or loopback address (a local
/// mirror; the tests' registry on 127.0.0.1:5000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRegistry {
    /// `host[:port]`, lowercase; `docker.io` stands for Docker Hub under all its names.
    pub host: String,
    pub plain_http: bool,
}

impl ImportRegistry {
    /// Public registries images are commonly published to.
    pub const DEFAULTS: &'static [&'static str] = &[
        "docker.io",
        "ghcr.io",
        "quay.io",
        "gcr.io",
        "registry.gitlab.com",
        "public.ecr.aws",
        "mcr.microsoft.com",
    ];

    /// `ghcr.io`, `registry.example.com:8443`, `http://127.0.0.1:5000`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let lower = entry.to_ascii_lowercase();
        let (plain_http, hostport) = match lower.strip_prefix("http://") {
            Some(rest) => (true, rest.trim_end_matches('/')),
            None if lower.contains("://") => {
                return Err(format!(
                    "{entry:?}: write host[:port] (HTTPS), or http://host:port for plain HTTP"
                ))
            }
            None => (false, lower.as_str()),
        };
        let not_a_host = || format!("{entry:?} is not a registry host[:port]");
        if hostport.is_empty() || hostport.contains(['/', '@']) {
            return Err(not_a_host());
        }
        // The reference grammar decides what a registry host is (and folds Docker Hub's names).
        let parsed =
            registry::ImageSource::parse(&format!("{hostport}/x")).map_err(|_| not_a_host())?;
        let hub = ["docker.io", "index.docker.io", registry::DOCKER_HUB_API].contains(&hostport);
        if parsed.registry != hostport && !hub {
            return Err(not_a_host());
        }
        let host = parsed.registry;
        Ok(Self { host, plain_http })
    }
}

/// One OAuth provider's app credentials and endpoints (endpoints default to the real provider;
/// tests point them at a local provider).
#[derive(Debug, Clone)]
pub struct OAuthProvider {
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    /// GitHub: the API base (`/user`, `/user/emails`); Google: the userinfo endpoint.
    pub profile_url: String,
}

/// Accounts: sessions, sign-in limits, first admin, OAuth providers.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub session_lifetime: Duration,
    /// Sign-up, log-in and password attempts per client IP per minute.
    pub per_ip_per_minute: u32,
    /// Log-in attempts per (account, client) per minute.
    pub per_account_per_minute: u32,
    /// New visitor identities (cookies) one client may get per minute.
    pub visitors_per_ip_per_minute: u32,
    /// With `admin_password`: the admin account created (or promoted) at start.
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub github: Option<OAuthProvider>,
    pub google: Option<OAuthProvider>,
}

/// Outgoing mail: the links that prove an address (sign-up, password reset, verification).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `smtp://user:pass@host:587?tls=required`, `smtps://…:465`, or `smtp://127.0.0.1:25` (lettre's
    /// URL form). None writes every mail as a file into `dir` instead, for a site without a relay.
    pub smtp_url: Option<String>,
    pub dir: PathBuf,
    /// `Name <address>`.
    pub from: String,
    /// Mails one address may receive per hour (sign-up, reset and verification together): nobody
    /// can turn the site into a mail bomb, and nothing in the answer says a mail was held back.
    pub per_address_per_hour: u32,
}

/// The cluster runtime (`TRYTHIS_SWARM_MANAGER` set): sandboxes spread over the sandbox nodes of
/// a Docker Swarm (docs/SCALING.md).
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// A manager's engine endpoint: membership, node health, labels and drain come from it.
    pub manager: String,
    /// Each sandbox node's engine, `{node}` standing for the node's name (its `trythis.node`
    /// label, else its host name): `unix:///run/trythis/nodes/{node}.sock` (an SSH-forwarded
    /// socket on real hosts, the namespaced engines' own sockets on the local cluster).
    pub node_engine: String,
    /// The registry address the nodes pull from (the platform registry's cluster address); the
    /// platform's own registry address in image references is replaced by it.
    pub registry: Option<String>,
    /// Memory left on each node for its engine and system, outside every sandbox.
    pub reserve_mb: u64,
    /// How often the node list is re-read from the manager.
    pub poll: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// `unix:///var/run/docker.sock` or `tcp://host:port`.
    pub docker_endpoint: String,
    /// The engine that runs build steps: a second engine with a size-bounded data root, a cgroup
    /// parent bounding pids and memory, and a user namespace (`scripts/lib.sh
    /// ensure_build_engine`). Built images reach the sandbox engine through the registry.
    pub build_engine: String,
    /// A command that garbage-collects the registry's blobs (run while no build pushes), e.g.
    /// `docker-registry garbage-collect /etc/docker/registry/config.yml`; None leaves it to the
    /// registry (Harbor schedules its own).
    pub registry_gc_command: Option<String>,
    /// How often that runs.
    pub registry_gc_interval: std::time::Duration,
    /// The platform's own reverse proxies: from these peers `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// On SIGTERM (or Ctrl-C), how long `/healthz` answers 503 "draining" while everything is
    /// still served, so the load balancer stops sending new requests first; then the listener
    /// closes, open terminals and log streams are ended (browsers reconnect through the load
    /// balancer) and requests in flight get as long again to finish.
    pub drain: std::time::Duration,
    pub registry: registry::RegistryConfig,
    /// Harbor's API, when the registry is a Harbor (its project is created on first push).
    pub harbor: Option<registry::HarborConfig>,
    /// Where the built site lives (`pkg/` bundle, `vendor/`, public assets).
    pub site_root: PathBuf,
    pub ttyd_path: PathBuf,
    /// The static relay (built from `relay/`): ttyd runs `relay attach` per terminal (the shell
    /// through the engine's exec API with a TTY); mounted read-only in sandboxes as their idle
    /// main process and shell session leader.
    pub relay_path: PathBuf,
    pub sandbox_runtime: RuntimeChoice,
    /// `Some`: sandboxes run on a Swarm's sandbox nodes instead of `docker_endpoint`'s engine.
    pub swarm: Option<SwarmConfig>,
    pub egress: EgressConfig,
    pub limits: SandboxLimits,
    pub builds: BuildLimits,
    pub auth: AuthConfig,
    pub mail: MailConfig,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log: String,
    /// `TRYTHIS_PREVIEW_BASE`: the host name under which a sandbox's servers are reached
    /// (`{sandbox}-{port}.{base}`), never the site's own; None: no web previews.
    pub preview: Option<PreviewBase>,
    /// `TRYTHIS_UPLOAD_MAX_MB`: the largest file one upload may put into a sandbox.
    pub upload_max_bytes: u64,
    /// `TRYTHIS_MODERATION`: a new maintainer's projects stay unlisted (reachable by link, Try and
    /// badge work) until an admin approves one; then that maintainer publishes directly.
    pub moderation: bool,
    /// `TRYTHIS_REPLICA_ID`: this app server's name among the replicas (`trythis serve`
    /// processes) over one database: the builds it runs and the job leases it holds carry it.
    /// Default: host name, process id and a random suffix (unique per start).
    pub replica_id: String,
}

/// A replica id of this process: host name, process id and a random suffix, so two starts on
/// one host (or a restart reusing a pid) never share one.
pub fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(40)
        .collect();
    let host = if host.is_empty() { "host".into() } else { host };
    let suffix: String = crate::secrets::random_id().chars().take(6).collect();
    format!("{host}-{}-{suffix}", std::process::id())
}

/// `TRYTHIS_REPLICA_ID` as given: 1 to 64 letters, digits, `.`, `-` or `_` (it is written into
/// build logs and `/healthz`).
fn replica_id(given: Option<String>) -> Result<String, ConfigError> {
    let Some(id) = given.map(|v| v.trim().to_string()) else {
        return Ok(default_replica_id());
    };
    let fine = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if fine {
        Ok(id)
    } else {
        Err(ConfigError {
            key: "TRYTHIS_REPLICA_ID".into(),
            value: id,
            reason: "must be 1 to 64 letters, digits, '.', '-' or '_'".into(),
        })
    }
}

/// Where web previews live: `{scheme}://{sandbox}-{port}.{host}[:{port}]/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewBase {
    /// `http` or `https`.
    pub scheme: String,
    /// The base host name, lowercase (`preview.localhost`).
    pub host: String,
    pub port: Option<u16>,
}

impl PreviewBase {
    /// The origin of one sandbox port's preview.
    pub fn origin(&self, sandbox_id: &str, port: u16) -> String {
        let authority = match self.port {
            Some(p) => format!("{}:{p}", self.target(sandbox_id, port)),
            None => self.target(sandbox_id, port),
        };
        format!("{}://{authority}", self.scheme)
    }

    /// The host name of one sandbox port's preview.
    pub fn target(&self, sandbox_id: &str, port: u16) -> String {
        format!("{sandbox_id}-{port}.{}", self.host)
    }

    /// The (sandbox, port) a request's `Host` names, if it is under this base: `Some(None)` for a
    /// host under the base that names no sandbox port.
    pub fn parse_host(&self, host: &str) -> Option<Option<(String, u16)>> {
        let host = host.to_ascii_lowercase();
        let name = match host.rsplit_once(':') {
            Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !n.ends_with(']') => {
                n.to_string()
            }
            _ => host,
        };
        let label = name.strip_suffix(&format!(".{}", self.host))?;
        let parsed = label.rsplit_once('-').and_then(|(id, port)| {
            let valid_id = id.len() == 26
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0 && !port.starts_with('0'))?;
            valid_id.then(|| (id.to_string(), port))
        });
        Some(parsed)
    }
}

/// The last two labels of a host name (a stand-in for its registrable domain).
fn domain_of(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

fn preview_base(
    value: Option<String>,
    public_url: &str,
) -> Result<Option<PreviewBase>, ConfigError> {
    let (site_scheme, rest) = public_url.split_once("://").unwrap_or(("http", public_url));
    let site_authority = rest.split('/').next().unwrap_or("");
    let (site_host, site_port) = match site_authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().ok()),
        _ => (site_authority, None),
    };
    let site_host = site_host.to_ascii_lowercase();
    let err = |value: &str, reason: &str| ConfigError {
        key: "TRYTHIS_PREVIEW_BASE".into(),
        value: value.into(),
        reason: reason.into(),
    };
    let Some(value) = value else {
        // On a loopback site, `*.localhost` (browsers resolve it to loopback themselves).
        let loopback = matches!(site_host.as_str(), "127.0.0.1" | "[::1]");
        return Ok(loopback.then(|| PreviewBase {
            scheme: site_scheme.to_string(),
            host: "preview.localhost".into(),
            port: site_port,
        }));
    };
    if value == "off" {
        return Ok(None);
    }
    let (scheme, rest) = value
        .split_once("://")
        .filter(|(s, _)| *s == "http" || *s == "https")
        .ok_or_else(|| {
            err(
                &value,
                "must be off or a URL like https://preview.example.net",
            )
        })?;
    let authority = rest.trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| err(&value, "the port is not a number"))?,
            ),
        ),
        None => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    let plain = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !plain || authority.contains('/') {
        return Err(err(&value, "must be a host name (no path, no IP address)"));
    }
    if host == site_host
        || host.ends_with(&format!(".{site_host}"))
        || site_host.ends_with(&format!(".{host}"))
        || domain_of(&host) == domain_of(&site_host)
    {
        return Err(err(
            &value,
            "must not be the site's host or share its domain: a preview would read and set the site's cookies",
        ));
    }
    Ok(Some(PreviewBase {
        scheme: scheme.to_string(),
        host,
        port,
    }))
}

struct Source(HashMap<String, String>);

impl Source {
    fn load() -> Result<Self, ConfigError> {
        let mut map = HashMap::new();
        let file = std::env::var("TRYTHIS_CONFIG").unwrap_or_else(|_| "trythis.env".into());
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                for line in text.lines() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let Some((k, v)) = line.split_once('=') else {
                        return Err(ConfigError {
                            key: "TRYTHIS_CONFIG".into(),
                            value: file.clone(),
                            reason: format!("line {line:?} is not KEY=VALUE"),
                        });
                    };
                    map.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && std::env::var("TRYTHIS_CONFIG").is_err() => {}
            Err(e) => {
                return Err(ConfigError {
                    key: "TRYTHIS_CONFIG".into(),
                    value: file,
                    reason: e.to_string(),
                })
            }
        }
        for (k, v) in std::env::vars() {
            if k.starts_with("TRYTHIS_") {
                map.insert(k, v);
            }
        }
        Ok(Self(map))
    }

    fn str(&self, key: &str, default: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    }

    /// A cgroup path for the engine's `--cgroup-parent`: absolute, plain names only; set empty
    /// for the engine's default.
    fn cgroup_parent(&self, key: &str, default: &str) -> Result<Option<String>, ConfigError> {
        let value = self.0.get(key).map(String::as_str).unwrap_or(default);
        if value.is_empty() {
            return Ok(None);
        }
        let plain = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        match value.strip_prefix('/') {
            Some(rest) if rest.split('/').all(plain) => Ok(Some(value.to_string())),
            _ => Err(ConfigError {
                key: key.into(),
                value: value.into(),
                reason: "must be an absolute cgroup path like /trythis-sandboxes".into(),
            }),
        }
    }

    fn opt(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned().filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
        what: &str,
    ) -> Result<T, ConfigError> {
        match self.opt(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError {
                key: key.into(),
                value: v,
                reason: format!("expected {what}"),
            }),
        }
    }

    /// A switch: 1/true/on/yes or 0/false/off/no.
    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.opt(key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "1" | "true" | "on" | "yes") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "off" | "no") => Ok(false),
            Some(v) => Err(ConfigError {
                key: key.into(),
                value: v,
                reason: "expected on or off (1/0, true/false, yes/no)".into(),
            }),
        }
    }

    fn positive(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        let v = self.parse(key, default, "a whole number")?;
        if v == 0 {
            return Err(ConfigError {
                key: key.into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(v)
    }

    /// `TRYTHIS_{P}_CLIENT_ID` and `_CLIENT_SECRET` switch a provider on; `_AUTH_URL`,
    /// `_TOKEN_URL` and `_PROFILE_URL` override its endpoints.
    fn oauth(
        &self,
        p: &str,
        auth: &str,
        token: &str,
        profile: &str,
    ) -> Result<Option<OAuthProvider>, ConfigError> {
        let (Some(client_id), Some(client_secret)) = (
            self.opt(&format!("TRYTHIS_{p}_CLIENT_ID")),
            self.opt(&format!("TRYTHIS_{p}_CLIENT_SECRET")),
        ) else {
            return Ok(None);
        };
        let url = |suffix: &str, default: &str| {
            let key = format!("TRYTHIS_{p}_{suffix}");
            let v = self.str(&key, default).trim_end_matches('/').to_string();
            if v.starts_with("https://") || v.starts_with("http://") {
                Ok(v)
            } else {
                Err(ConfigError {
                    key,
                    value: v,
                    reason: "must start with https:// or http://".into(),
                })
            }
        };
        Ok(Some(OAuthProvider {
            client_id,
            client_secret,
            auth_url: url("AUTH_URL", auth)?,
            token_url: url("TOKEN_URL", token)?,
            profile_url: url("PROFILE_URL", profile)?,
        }))
    }

    fn minutes(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.positive(key, default)? * 60))
    }
}

impl Config {
    /// The CA bundle builds and egress sandboxes trust (written at start-up by
    /// `egress::prepare_ca_bundle`), when an extra CA is configured.
    pub fn ca_bundle_path(&self) -> Option<PathBuf> {
        self.egress
            .extra_ca_file
            .as_ref()
            .map(|_| self.data_dir.join("ca").join("ca-certificates.crt"))
    }

    /// The configuration of this process: file, then environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(Source::load()?)
    }

    /// The platform's registry client, with Harbor's API when configured.
    pub fn registry_client(&self) -> registry::Registry {
        let r = registry::Registry::new(self.registry.clone());
        match &self.harbor {
            Some(h) => r.with_harbor(h.clone()),
            None => r,
        }
    }

    /// Configuration from explicit `KEY=VALUE` pairs only (tests).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        Self::from_source(Source(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    fn from_source(s: Source) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(s.str("TRYTHIS_DATA_DIR", "data"));
        let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
        let listen = s.parse(
            "TRYTHIS_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], 3000)),
            "an address like 127.0.0.1:3000",
        )?;
        let public_url = s
            .str("TRYTHIS_PUBLIC_URL", &format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError {
                key: "TRYTHIS_PUBLIC_URL".into(),
                value: public_url,
                reason: "must start with http:// or https://".into(),
            });
        }
        let database_url = s.str(
            "TRYTHIS_DATABASE_URL",
            &format!("sqlite://{}/trythis.db", data_dir.display()),
        );
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError {
                key: "TRYTHIS_DATABASE_URL".into(),
                value: database_url,
                reason: "must be a sqlite: or postgres:// URL".into(),
            });
        }
        let engine = |key: &str, default: &str| {
            let ep = s.str(key, default);
            if ep.starts_with("unix://") || ep.starts_with("tcp://") || ep.starts_with("http://") {
                Ok(ep)
            } else {
                Err(ConfigError {
                    key: key.into(),
                    value: ep,
                    reason: "must be unix:///path or tcp://host:port".into(),
                })
            }
        };
        let docker_endpoint = engine("TRYTHIS_DOCKER_ENDPOINT", "unix:///var/run/docker.sock")?;
        let build_engine = engine(
            "TRYTHIS_BUILD_ENGINE",
            "unix:///run/trythis/build-engine.sock",
        )?;
        let registry_gc_command =
            Some(s.str("TRYTHIS_REGISTRY_GC_COMMAND", "")).filter(|c| !c.trim().is_empty());
        let trusted_proxies = s
            .str("TRYTHIS_TRUSTED_PROXIES", "")
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                c.parse().map_err(|reason| ConfigError {
                    key: "TRYTHIS_TRUSTED_PROXIES".into(),
                    value: c.to_string(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let drain_seconds: u64 = s.parse("TRYTHIS_DRAIN_SECONDS", 5, "a number of seconds")?;
        if drain_seconds > 600 {
            return Err(ConfigError {
                key: "TRYTHIS_DRAIN_SECONDS".into(),
                value: drain_seconds.to_string(),
                reason: "must be at most 600".into(),
            });
        }
        let registry_gc_interval =
            std::time::Duration::from_secs(3600 * s.positive("TRYTHIS_REGISTRY_GC_HOURS", 24)?);
        let cpus: f64 = s.parse("TRYTHIS_SANDBOX_CPUS", 0.5, "a number of CPUs like 0.5")?;
        if !(0.01..=64.0).contains(&cpus) {
            return Err(ConfigError {
                key: "TRYTHIS_SANDBOX_CPUS".into(),
                value: cpus.to_string(),
                reason: "must be between 0.01 and 64".into(),
            });
        }
        let limits = SandboxLimits {
            memory_mb: s.positive("TRYTHIS_SANDBOX_MEMORY_MB", 512)?,
            cpus,
            pids: s.positive("TRYTHIS_SANDBOX_PIDS", 256)? as i64,
            cgroup_parent: s
                .cgroup_parent("TRYTHIS_SANDBOX_CGROUP_PARENT", "/trythis-sandboxes")?,
            disk_mb: s.positive("TRYTHIS_SANDBOX_DISK_MB", 256)?,
            lifetime_visitor: s.minutes("TRYTHIS_SANDBOX_LIFETIME_VISITOR_MIN", 30)?,
            lifetime_user: s.minutes("TRYTHIS_SANDBOX_LIFETIME_USER_MIN", 120)?,
            idle_timeout: s.minutes("TRYTHIS_SANDBOX_IDLE_MIN", 10)?,
            extend_by: s.minutes("TRYTHIS_SANDBOX_EXTEND_MIN", 15)?,
            max_extensions: s.parse("TRYTHIS_SANDBOX_MAX_EXTENSIONS", 2, "a whole number")?,
            max_running: s.positive("TRYTHIS_MAX_SANDBOXES", 20)?,
            warm_pool: s.parse("TRYTHIS_WARM_POOL", 0, "a whole number")?,
            warm_pool_max: s.parse("TRYTHIS_WARM_POOL_MAX", 20, "a whole number")?,
            rate_per_identity: s.positive("TRYTHIS_RATE_TRIES_PER_MIN", 10)? as u32,
            rate_per_ip: s.positive("TRYTHIS_RATE_TRIES_PER_IP_PER_MIN", 60)? as u32,
            running_per_ip: s.positive("TRYTHIS_SANDBOXES_PER_IP", 5)?,
            queue_max: s.positive("TRYTHIS_QUEUE_MAX", 500)?,
        };
        let registry = registry::RegistryConfig {
            address: s.str("TRYTHIS_REGISTRY_ADDR", "127.0.0.1:5000"),
            insecure: s.parse("TRYTHIS_REGISTRY_INSECURE", true, "true or false")?,
            namespace: s.str("TRYTHIS_REGISTRY_NAMESPACE", "trythis"),
            username: s.opt("TRYTHIS_REGISTRY_USERNAME"),
            password: s.opt("TRYTHIS_REGISTRY_PASSWORD"),
        };
        let build_cpus: f64 = s.parse("TRYTHIS_BUILD_CPUS", 1.0, "a number of CPUs like 1.5")?;
        if !(0.1..=64.0).contains(&build_cpus) {
            return Err(ConfigError {
                key: "TRYTHIS_BUILD_CPUS".into(),
                value: build_cpus.to_string(),
                reason: "must be between 0.1 and 64".into(),
            });
        }
        let replica_id = replica_id(s.opt("TRYTHIS_REPLICA_ID"))?;
        let builds = BuildLimits {
            replica: replica_id.clone(),
            concurrency: s.positive("TRYTHIS_BUILD_CONCURRENCY", 1)?,
            timeout: Duration::from_secs(s.positive("TRYTHIS_BUILD_TIMEOUT_SECS", 20 * 60)?),
            memory_mb: s.positive("TRYTHIS_BUILD_MEMORY_MB", 1536)?.min(2047),
            cpus: build_cpus,
            max_image_mb: s.positive("TRYTHIS_IMAGE_MAX_MB", 2048)?,
            retention: s.positive("TRYTHIS_BUILD_RETENTION", 3)?,
            per_hour: s.positive("TRYTHIS_BUILDS_PER_HOUR", 20)?,
            queue_max: s.positive("TRYTHIS_BUILD_QUEUE_MAX", 50)?,
            projects_per_owner: s.positive("TRYTHIS_PROJECTS_PER_OWNER", 10)?,
            base_image: s.str("TRYTHIS_BASE_IMAGE", "trythis/base:bookworm"),
            import_registries: match s.opt("TRYTHIS_IMPORT_REGISTRIES") {
                Some(v) if v.trim() == "none" => Vec::new(),
                v => v
                    .as_deref()
                    .map_or_else(
                        || ImportRegistry::DEFAULTS.to_vec(),
                        |v| {
                            v.split(',')
                                .map(str::trim)
                                .filter(|x| !x.is_empty())
                                .collect()
                        },
                    )
                    .into_iter()
                    .map(|e| {
                        ImportRegistry::parse(e).map_err(|reason| ConfigError {
                            key: "TRYTHIS_IMPORT_REGISTRIES".into(),
                            value: e.to_string(),
                            reason,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            },
            import_max_mb: s.positive("TRYTHIS_IMPORT_MAX_MB", 1024)?,
        };
        let auth = AuthConfig {
            session_lifetime: Duration::from_secs(s.positive("TRYTHIS_SESSION_DAYS", 30)? * 86_400),
            per_ip_per_minute: s.positive("TRYTHIS_AUTH_PER_IP_PER_MIN", 30)? as u32,
            per_account_per_minute: s.positive("TRYTHIS_AUTH_PER_ACCOUNT_PER_MIN", 10)? as u32,
            visitors_per_ip_per_minute: s.positive("TRYTHIS_VISITORS_PER_IP_PER_MIN", 60)? as u32,
            admin_email: s.opt("TRYTHIS_ADMIN_EMAIL"),
            admin_password: s.opt("TRYTHIS_ADMIN_PASSWORD"),
            github: s.oauth(
                "GITHUB",
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com",
            )?,
            google: s.oauth(
                "GOOGLE",
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                "https://openidconnect.googleapis.com/v1/userinfo",
            )?,
        };
        let host = public_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .to_string();
        let mail = MailConfig {
            smtp_url: s.opt("TRYTHIS_SMTP_URL"),
            dir: s
                .opt("TRYTHIS_MAIL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("mail")),
            from: s.str("TRYTHIS_MAIL_FROM", &format!("trythis <noreply@{host}>")),
            per_address_per_hour: s.positive("TRYTHIS_MAILS_PER_ADDRESS_PER_HOUR", 5)? as u32,
        };
        let sandbox_runtime = match s.str("TRYTHIS_SANDBOX_RUNTIME", "auto").as_str() {
            "auto" => RuntimeChoice::Auto,
            "runsc" => RuntimeChoice::Runsc,
            "runc" => RuntimeChoice::Runc,
            other => {
                return Err(ConfigError {
                    key: "TRYTHIS_SANDBOX_RUNTIME".into(),
                    value: other.into(),
                    reason: "must be auto, runsc or runc".into(),
                })
            }
        };
        let list = |key: &str, default: Vec<String>| -> Vec<String> {
            match s.opt(key) {
                None => default,
                Some(v) => v
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
            }
        };
        let ports = list("TRYTHIS_EGRESS_PORTS", vec!["80".into(), "443".into()])
            .into_iter()
            .map(|p| {
                p.parse::<u16>().map_err(|_| ConfigError {
                    key: "TRYTHIS_EGRESS_PORTS".into(),
                    value: p.clone(),
                    reason: "expected port numbers separated by commas".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let proxy_port: u16 = s.parse("TRYTHIS_EGRESS_PROXY_PORT", 3128, "a port number")?;
        if proxy_port != 0 && !(3128..=3191).contains(&proxy_port) {
            return Err(ConfigError {
                key: "TRYTHIS_EGRESS_PROXY_PORT".into(),
                value: proxy_port.to_string(),
                reason: "must be 0 or within 3128-3191 (the ports the isolated networks may reach)"
                    .into(),
            });
        }
        let extra_ca_file = s
            .opt("TRYTHIS_EXTRA_CA_FILE")
            .or_else(|| {
                std::env::var("SSL_CERT_FILE")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .filter(|v| v != "none")
            .map(PathBuf::from);
        let egress = EgressConfig {
            allow_hosts: list(
                "TRYTHIS_EGRESS_ALLOW",
                egress::Policy::default_allow_hosts(),
            ),
            ports,
            mirrors: list("TRYTHIS_EGRESS_MIRRORS", Vec::new()),
            proxy_port,
            build_network: s.str("TRYTHIS_BUILD_NETWORK", "trythis-build"),
            build_subnet: s.str("TRYTHIS_BUILD_SUBNET", "172.30.240.0/24"),
            sandbox_network: s.str("TRYTHIS_EGRESS_NETWORK", "trythis-egress"),
            sandbox_subnet: s.str("TRYTHIS_EGRESS_SUBNET", "172.30.241.0/24"),
            extra_ca_file,
        };
        let harbor = match s.opt("TRYTHIS_HARBOR_URL") {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(registry::HarborConfig {
                    api_url: url.trim_end_matches('/').to_string(),
                    username: s.str("TRYTHIS_HARBOR_USERNAME", "admin"),
                    password: s.str("TRYTHIS_HARBOR_PASSWORD", ""),
                })
            }
            Some(url) => {
                return Err(ConfigError {
                    key: "TRYTHIS_HARBOR_URL".into(),
                    value: url,
                    reason: "must start with https:// or http://".into(),
                })
            }
        };
        let preview = preview_base(s.opt("TRYTHIS_PREVIEW_BASE"), &public_url)?;
        let swarm = match s.opt("TRYTHIS_SWARM_MANAGER") {
            None => None,
            Some(_) => {
                let node_engine = engine(
                    "TRYTHIS_SWARM_NODE_ENGINE",
                    "unix:///run/trythis/nodes/{node}.sock",
                )?;
                if !node_engine.contains("{node}") {
                    return Err(ConfigError {
                        key: "TRYTHIS_SWARM_NODE_ENGINE".into(),
                        value: node_engine,
                        reason: "must name the node as {node}".into(),
                    });
                }
                Some(SwarmConfig {
                    manager: engine("TRYTHIS_SWARM_MANAGER", "")?,
                    node_engine,
                    registry: s.opt("TRYTHIS_SWARM_REGISTRY"),
                    reserve_mb: s.parse("TRYTHIS_NODE_RESERVE_MB", 512, "a number of MiB")?,
                    poll: Duration::from_millis(s.positive("TRYTHIS_SWARM_POLL_MS", 1000)?),
                })
            }
        };
        Ok(Self {
            swarm,
            preview,
            harbor,
            builds,
            auth,
            mail,
            listen,
            public_url,
            database_url,
            docker_endpoint,
            build_engine,
            registry_gc_command,
            registry_gc_interval,
            trusted_proxies,
            drain: std::time::Duration::from_secs(drain_seconds),
            registry,
            site_root: PathBuf::from(s.str("TRYTHIS_SITE_ROOT", "target/site")),
            ttyd_path: PathBuf::from(s.str(
                "TRYTHIS_TTYD_PATH",
                &format!("{}/bin/ttyd", data_dir.display()),
            )),
            relay_path: PathBuf::from(s.str(
                "TRYTHIS_RELAY_PATH",
                &format!("{}/bin/trythis-relay", data_dir.display()),
            )),
            sandbox_runtime,
            egress,
            limits,
            log: s.str("TRYTHIS_LOG", "info,sqlx=warn,bollard=warn,tower_http=info"),
            moderation: s.flag("TRYTHIS_MODERATION", false)?,
            upload_max_bytes: s.positive("TRYTHIS_UPLOAD_MAX_MB", 64)? * 1024 * 1024,
            data_dir,
            replica_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_unique_by_default_and_checked_when_given() -> Result<(), ConfigError> {
        let (a, b) = (Config::from_pairs([])?, Config::from_pairs([])?);
        assert_ne!(a.replica_id, b.replica_id);
        assert!(a.replica_id.contains(&format!("-{}-", std::process::id())));
        assert_eq!(a.builds.replica, a.replica_id);
        let named = Config::from_pairs([("TRYTHIS_REPLICA_ID", "web-2")])?;
        assert_eq!(named.replica_id, "web-2");
        for bad in ["has space", "a/b", &"x".repeat(65)] {
            let e = Config::from_pairs([("TRYTHIS_REPLICA_ID", bad)]).err();
            assert_eq!(
                e.map(|e| e.key),
                Some("TRYTHIS_REPLICA_ID".to_string()),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn defaults_are_safe() -> Result<(), ConfigError> {
        let c = Config::from_pairs([])?;
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.limits.memory_mb, 512);
        assert_eq!(c.limits.pids, 256);
        assert_eq!(
            c.limits.cgroup_parent.as_deref(),
            Some("/trythis-sandboxes")
        );
        assert!((c.limits.cpus - 0.5).abs() < f64::EPSILON);
        assert_eq!(c.limits.lifetime_visitor, Duration::from_secs(30 * 60));
        assert_eq!(c.limits.lifetime_user, Duration::from_secs(120 * 60));
        assert!(c.database_url.starts_with("sqlite://"));
        Ok(())
    }

    #[test]
    fn the_drain_is_a_few_seconds_or_none_and_bounded() -> Result<(), ConfigError> {
        assert_eq!(Config::from_pairs([])?.drain, Duration::from_secs(5));
        let none = Config::from_pairs([("TRYTHIS_DRAIN_SECONDS", "0")])?;
        assert_eq!(none.drain, Duration::ZERO);
        for bad in ["601", "-1", "soon"] {
            let err = Config::from_pairs([("TRYTHIS_DRAIN_SECONDS", bad)]).expect_err(bad);
            assert_eq!(err.key, "TRYTHIS_DRAIN_SECONDS");
        }
        Ok(())
    }

    #[test]
    fn the_sandbox_cgroup_parent_is_a_plain_absolute_path_or_off() -> Result<(), ConfigError> {
        let off = Config::from_pairs([("TRYTHIS_SANDBOX_CGROUP_PARENT", "")])?;
        assert_eq!(off.limits.cgroup_parent, None);
        for bad in ["trythis", "/../x", "/a//b", "/a b", "/x/"] {
            let err = Config::from_pairs([("TRYTHIS_SANDBOX_CGROUP_PARENT", bad)]).expect_err(bad);
            assert_eq!(err.key, "TRYTHIS_SANDBOX_CGROUP_PARENT");
        }
        Ok(())
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = Config::from_pairs([("TRYTHIS_SANDBOX_MEMORY_MB", "lots")])
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("TRYTHIS_SANDBOX_MEMORY_MB"), "{err}");
        assert!(err.contains("whole number"), "{err}");
        let err = Config::from_pairs([("TRYTHIS_DATABASE_URL", "mysql://x")])
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("TRYTHIS_DATABASE_URL"));
        let err = Config::from_pairs([("TRYTHIS_LISTEN", "nowhere")])
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("TRYTHIS_LISTEN"));
    }

    #[test]
    fn previews_live_under_another_domain_than_the_site() -> Result<(), ConfigError> {
        let local = Config::from_pairs([])?;
        let base = local.preview.clone().ok_or_else(|| ConfigError {
            key: "preview".into(),
            value: String::new(),
            reason: "a loopback site has previews by default".into(),
        })?;
        assert_eq!(
            base.origin("abc", 8000),
            "http://abc-8000.preview.localhost:3000"
        );
        let id = "a".repeat(26);
        assert_eq!(
            base.parse_host(&format!("{id}-8000.Preview.localhost:3000")),
            Some(Some((id.clone(), 8000)))
        );
        assert_eq!(
            base.parse_host(&format!("{id}-08000.preview.localhost")),
            Some(None)
        );
        assert_eq!(base.parse_host("x.preview.localhost"), Some(None));
        assert_eq!(base.parse_host("127.0.0.1:3000"), None);
        for bad in [
            "https://trythis.dev",
            "https://preview.trythis.dev",
            "https://WWW.trythis.dev",
            "https://a.b/path",
            "ftp://x.net",
        ] {
            let e = Config::from_pairs([
                ("TRYTHIS_PUBLIC_URL", "https://www.trythis.dev"),
                ("TRYTHIS_PREVIEW_BASE", bad),
            ]);
            assert!(e.is_err(), "{bad} accepted");
        }
        let public = Config::from_pairs([("TRYTHIS_PUBLIC_URL", "https://www.trythis.dev")])?;
        assert_eq!(
            public.preview, None,
            "a public site has previews only when configured"
        );
        let set = Config::from_pairs([
            ("TRYTHIS_PUBLIC_URL", "https://www.trythis.dev"),
            ("TRYTHIS_PREVIEW_BASE", "https://trythis-preview.net"),
        ])?;
        assert_eq!(
            set.preview.map(|p| p.origin("abc", 80)),
            Some("https://abc-80.trythis-preview.net".to_string())
        );
        let off = Config::from_pairs([("TRYTHIS_PREVIEW_BASE", "off")])?;
        assert_eq!(off.preview, None);
        Ok(())
    }

    #[test]
    fn import_registries_are_public_https_unless_listed_as_plain_http() -> Result<(), ConfigError> {
        let c = Config::from_pairs([])?;
        let hosts: Vec<&str> = c
            .builds
            .import_registries
            .iter()
            .map(|r| r.host.as_str())
            .collect();
        assert!(
            hosts.contains(&"docker.io") && hosts.contains(&"ghcr.io"),
            "{hosts:?}"
        );
        assert!(c.builds.import_registries.iter().all(|r| !r.plain_http));
        assert_eq!(c.builds.import_max_mb, 1024);
        let c = Config::from_pairs([(
            "TRYTHIS_IMPORT_REGISTRIES",
            "Registry-1.Docker.io, registry.example.com:8443 ,http://127.0.0.1:5000",
        )])?;
        assert_eq!(
            c.builds.import_registries,
            vec![
                ImportRegistry {
                    host: "docker.io".into(),
                    plain_http: false
                },
                ImportRegistry {
                    host: "registry.example.com:8443".into(),
                    plain_http: false
                },
                ImportRegistry {
                    host: "127.0.0.1:5000".into(),
                    plain_http: true
                },
            ]
        );
        let none = Config::from_pairs([("TRYTHIS_IMPORT_REGISTRIES", "none")])?;
        assert!(none.builds.import_registries.is_empty());
        for bad in [
            "https://ghcr.io",
            "ghcr.io/owner",
            "exa mple.com",
            "ftp://x",
        ] {
            let err = Config::from_pairs([("TRYTHIS_IMPORT_REGISTRIES", bad)]).expect_err(bad);
            assert_eq!(err.key, "TRYTHIS_IMPORT_REGISTRIES");
        }
        Ok(())
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(Config::from_pairs([("TRYTHIS_SANDBOX_PIDS", "0")]).is_err());
        assert!(Config::from_pairs([("TRYTHIS_SANDBOX_CPUS", "0")]).is_err());
    }
}
