//! The container engines, as both domains meet them: the connection to the sandbox engine and to
//! the build engine (`connect_docker`, `connect_build_engine`), the isolation probe (which
//! runtime sandboxes get, `Isolation`, and its version line), the platform limits an image must
//! fit, and the proxy and CA variables a sandbox or a build step reads. Sandboxes
//! (`sandbox::docker`) and builds (`builds`) both use it; it uses neither.
use crate::config::Config;
use bollard::Docker;

/// Why an engine could not be used: it does not answer, or it cannot run sandboxes as configured.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the container engine is not answering: {0}")]
    Down(String),
    #[error("container engine error: {0}")]
    Unsuitable(String),
}

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
    ) -> Result<Isolation, EngineError> {
        use crate::config::RuntimeChoice;
        let runc = if has_userns {
            Isolation::RuncUserns
        } else {
            Isolation::Runc
        };
        match (wanted, has_runsc) {
            (RuntimeChoice::Runc, _) => Ok(runc),
            (_, true) => Ok(Isolation::Gvisor),
            (RuntimeChoice::Runsc, false) => Err(EngineError::Unsuitable(format!(
                "TRYTHIS_SANDBOX_RUNTIME=runsc but the engine has no {RUNSC_RUNTIME} and {RUNSC_NET_RUNTIME} runtimes (scripts/run.sh registers them)"
            ))),
            (RuntimeChoice::Auto, false) if has_userns => Ok(Isolation::RuncUserns),
            (RuntimeChoice::Auto, false) => Err(EngineError::Unsuitable(
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
) -> Result<(Isolation, UsernsRoot), EngineError> {
    let info = docker
        .info()
        .await
        .map_err(|e| EngineError::Down(e.to_string()))?;
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
            EngineError::Unsuitable(format!(
                "the engine remaps uids but its data root {dir:?} does not name the mapping"
            ))
        })?)
    } else {
        None
    };
    Ok((Isolation::choose(wanted, has_runsc, has_userns)?, root))
}

/// Connects to the sandbox engine and negotiates the API version (the engine here is 20.10).
pub async fn connect_docker(config: &Config) -> Result<Docker, EngineError> {
    connect_engine(&config.docker_endpoint).await
}

/// Connects to the engine that runs build steps (see `Config::build_engine`).
pub async fn connect_build_engine(config: &Config) -> Result<Docker, EngineError> {
    connect_engine(&config.build_engine).await.map_err(|e| {
        EngineError::Down(format!(
            "build engine {} (TRYTHIS_BUILD_ENGINE; scripts/run.sh starts it): {e}",
            config.build_engine
        ))
    })
}

pub async fn connect_engine(ep: &str) -> Result<Docker, EngineError> {
    let docker = if ep.starts_with("unix://") {
        Docker::connect_with_unix(ep, 120, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(
            &ep.replacen("tcp://", "http://", 1),
            120,
            bollard::API_DEFAULT_VERSION,
        )
    }
    .map_err(|e| EngineError::Down(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| EngineError::Down(e.to_string()))
}

/// Most image `VOLUME`s a published image may declare (each costs a tmpfs and a copy per Try).
pub const MAX_IMAGE_VOLUMES: usize = 8;

/// Where egress sandboxes find the platform's CA bundle (system roots plus the extra CA).
pub const CA_IN_CONTAINER: &str = "/opt/trythis/ca-certificates.crt";

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

/// Ends an engine progress stream (build, pull, push) where bollard reports a spurious error at
/// its end. bollard 0.21.1, the newest on crates.io, splits the engine's JSON lines on `\n`; when
/// a line's `\r\n` arrives in a chunk of its own, a lone `\r` stays in the buffer and the
/// complete stream ends in "bytes remaining on stream" (bollard issue #560; fixed upstream by
/// pull request #733, not yet released). Every value before it was whole and was yielded, and
/// every caller confirms the outcome afterwards (the registry resolves the pushed tag, the engine
/// inspects the built or pulled image), so a stream cut off for real is still caught there.
/// Remove once a bollard release carries the fix.
pub fn until_stray_terminator<S, T>(
    stream: S,
) -> impl futures::Stream<Item = Result<T, bollard::errors::Error>>
where
    S: futures::Stream<Item = Result<T, bollard::errors::Error>>,
{
    use futures::StreamExt;
    stream.take_while(|item| std::future::ready(!matches!(item, Err(e) if is_stray_terminator(e))))
}

fn is_stray_terminator(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::IOError { err }
        if err.kind() == std::io::ErrorKind::Other && err.to_string() == "bytes remaining on stream")
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

    /// An engine that answers one request with `pieces`, each a chunk of the chunked body sent
    /// on its own (`None` closes the connection there, without the body's terminator).
    async fn engine_answering(
        pieces: &'static [Option<&'static str>],
    ) -> (Docker, std::path::PathBuf) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        static ENGINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("trythis-fake-engine-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("engine.sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        tokio::spawn(async move {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = conn.write_all(head.as_bytes()).await;
            for piece in pieces {
                let Some(piece) = piece else { return };
                let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
                let _ = conn.write_all(chunk.as_bytes()).await;
                let _ = conn.flush().await;
                // Apart, so the client reads each chunk on its own.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let _ = conn.write_all(b"0\r\n\r\n").await;
            let _ = conn.shutdown().await;
        });
        let docker = Docker::connect_with_unix(
            sock.to_str().expect("utf-8 path"),
            10,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("client");
        (docker, dir)
    }

    /// The engine ends each progress line with `\r\n`; when the last one arrives alone, bollard
    /// 0.21.1 fails a complete push with "bytes remaining on stream" (what failed CI once).
    #[tokio::test]
    async fn a_push_whose_last_terminator_arrives_alone_succeeds() {
        let (docker, dir) = engine_answering(&[
            Some("{\"status\":\"Pushing\"}\r\n"),
            Some("{\"status\":\"t: digest: sha256:00 size: 1\"}"),
            Some("\r\n"),
        ])
        .await;
        let pushed = crate::builds::push(&docker, "127.0.0.1:5000/trythis/x", "t").await;
        let _ = std::fs::remove_dir_all(dir);
        assert!(pushed.is_ok(), "{pushed:?}");
    }

    /// A stream the engine really cut off is still an error.
    #[tokio::test]
    async fn a_push_cut_off_midway_fails() {
        let (docker, dir) =
            engine_answering(&[Some("{\"status\":\"Pushing\"}\r\n"), Some("{\"sta"), None]).await;
        let pushed = crate::builds::push(&docker, "127.0.0.1:5000/trythis/x", "t").await;
        let _ = std::fs::remove_dir_all(dir);
        assert!(pushed.is_err(), "{pushed:?}");
    }
}
