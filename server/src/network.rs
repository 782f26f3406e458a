//! Isolated networks: where build steps and egress sandboxes run, and their only way out.
//!
//! Each is an engine `internal` bridge (no route off the bridge, no traffic between its
//! containers). The host accepts nothing from it but the egress proxy's ports and forwards nothing
//! from or to it: so a build or sandbox reaches neither the host's services, nor its loopback, nor
//! the metadata address, nor other containers. The build network lives in the build engine, which
//! adds no firewall rules of its own: there the server's rules are the whole enforcement. The proxy (crate `egress`) listens on the bridge's gateway, resolves names
//! itself and refuses private, loopback, link-local and the host's own addresses. Builds also
//! trust the platform's CA bundle (system roots plus `TRYTHIS_EXTRA_CA_FILE`).
use crate::config::{Config, EgressConfig};
use bollard::{
    models::{Ipam, IpamConfig, NetworkCreateRequest},
    Docker,
};
use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

/// The ports the host accepts from isolated networks: one proxy each, several servers (tests).
pub const PROXY_PORTS: std::ops::RangeInclusive<u16> = 3128..=3191;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {name}: {reason}")]
    Network { name: String, reason: String },
    #[error("host firewall rules for {bridge}: {reason} (the server must run as root with iptables installed; scripts/run.sh installs it)")]
    Firewall { bridge: String, reason: String },
    #[error("egress proxy on {addr}: {reason}")]
    Proxy { addr: String, reason: String },
    #[error("TRYTHIS_EXTRA_CA_FILE {path}: {reason}")]
    Ca { path: String, reason: String },
}

/// One isolated network with its proxy.
pub struct Isolated {
    pub network: String,
    pub gateway: Ipv4Addr,
    pub proxy: Arc<egress::EgressProxy>,
}

impl Isolated {
    /// A proxy credential for one build or sandbox, and the URL that carries it.
    pub fn grant(&self, name: &str) -> (egress::Grant, String) {
        let grant = self.proxy.grant(name);
        let url = grant.proxy_url(&self.gateway.to_string());
        (grant, url)
    }
}

pub struct Networks {
    pub build: Isolated,
    pub sandbox: Isolated,
    /// The image import's way out (the server itself copies from other registries): a proxy on
    /// loopback with its own policy, see [`import_policy`].
    pub import: Arc<egress::EgressProxy>,
    /// The CA bundle builds and egress sandboxes trust, when an extra CA is configured.
    pub ca_bundle: Option<PathBuf>,
}

impl Networks {
    /// Creates (or checks) both networks (the build network in the build engine), the host's
    /// firewall rules and the proxies.
    pub async fn setup(
        config: &Config,
        docker: &Docker,
        build_engine: &Docker,
    ) -> Result<Arc<Self>, NetworkError> {
        let e = &config.egress;
        let ca_bundle = match (&e.extra_ca_file, config.ca_bundle_path()) {
            (Some(extra), Some(out)) => {
                prepare_ca_bundle(extra, &out)?;
                Some(out)
            }
            _ => None,
        };
        if config.build_engine != config.docker_endpoint {
            // Before the build engine, builds ran in the sandbox engine: its build network would
            // hold the bridge name and subnet.
            let _ = docker.remove_network(&e.build_network).await;
        }
        let build = isolate(build_engine, e, &e.build_network, &e.build_subnet).await?;
        let sandbox = isolate(docker, e, &e.sandbox_network, &e.sandbox_subnet).await?;
        let import = start_import_proxy(&config.builds.import_registries).await?;
        Ok(Arc::new(Self {
            build,
            sandbox,
            import,
            ca_bundle,
        }))
    }
}

/// The host-side bridge name of a network (at most 15 characters, the kernel's limit).
pub fn bridge_name(network: &str) -> String {
    let short: String = network
        .trim_start_matches("trythis-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("tt-{short}")
}

fn gateway_of(subnet: &str) -> Option<Ipv4Addr> {
    let (net, bits) = subnet.split_once('/')?;
    let net: Ipv4Addr = net.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    (16..=28)
        .contains(&bits)
        .then(|| Ipv4Addr::from(u32::from(net) + 1))
}

async fn isolate(
    docker: &Docker,
    e: &EgressConfig,
    name: &str,
    subnet: &str,
) -> Result<Isolated, NetworkError> {
    let bad = |reason: String| NetworkError::Network {
        name: name.to_string(),
        reason,
    };
    let gateway = gateway_of(subnet).ok_or_else(|| {
        bad(format!(
            "subnet {subnet:?} must be an IPv4 CIDR of /16 to /28"
        ))
    })?;
    let bridge = bridge_name(name);
    ensure_network(docker, name, subnet, gateway, &bridge)
        .await
        .map_err(bad)?;
    ensure_host_rules(&bridge, gateway).await?;
    ipv6_off(&bridge).map_err(|reason| NetworkError::Firewall {
        bridge: bridge.clone(),
        reason,
    })?;
    let policy = egress::Policy {
        allow_hosts: e.allow_hosts.clone(),
        ports: e.ports.clone(),
        mirrors: e.mirrors.clone(),
    };
    let proxy = start_proxy(gateway, e.proxy_port, policy).await?;
    Ok(Isolated {
        network: name.to_string(),
        gateway,
        proxy,
    })
}

async fn ensure_network(
    docker: &Docker,
    name: &str,
    subnet: &str,
    gateway: Ipv4Addr,
    bridge: &str,
) -> Result<(), String> {
    // Servers in one process (tests, benches) race each other here; other processes are caught
    // by inspecting again after a failed create.
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = LOCK.lock().await;
    let mut create_error = String::from("could not be created");
    for _ in 0..3 {
        match docker.inspect_network(name, None).await {
            Ok(n) => {
                // Never run strangers' code on a network that routes off the bridge.
                if n.internal != Some(true) {
                    return Err(format!(
                        "exists but is not internal; remove it (docker network rm {name}) and restart"
                    ));
                }
                let opts = n.options.unwrap_or_default();
                if opts
                    .get("com.docker.network.bridge.enable_icc")
                    .map(String::as_str)
                    != Some("false")
                    || opts
                        .get("com.docker.network.bridge.name")
                        .map(String::as_str)
                        != Some(bridge)
                {
                    return Err(format!(
                        "exists with other options (needs bridge {bridge}, no inter-container traffic); remove it (docker network rm {name}) and restart"
                    ));
                }
                return Ok(());
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(e.to_string()),
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(true),
            options: Some(HashMap::from([
                (
                    "com.docker.network.bridge.name".to_string(),
                    bridge.to_string(),
                ),
                (
                    "com.docker.network.bridge.enable_icc".to_string(),
                    "false".to_string(),
                ),
            ])),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    gateway: Some(gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(HashMap::from([(
                "trythis.network".to_string(),
                "isolated".to_string(),
            )])),
            ..Default::default()
        };
        match docker.create_network(req).await {
            Ok(_) => return Ok(()),
            // Another server process may have created it at the same moment (the engine answers
            // 409, or 403 "Pool overlaps" when both passed the name check): inspect again, and
            // report this error only if the network still does not exist.
            Err(e) => create_error = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(create_error)
}

/// IPv6 off on `bridge`: the firewall rules are IPv4 only, so the bridge must carry no IPv6 (not
/// even link-local, which would reach the host's services on the bridge). Checked at every start.
fn ipv6_off(bridge: &str) -> Result<(), String> {
    let knob = format!("/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6");
    if !Path::new("/proc/sys/net/ipv6").exists() {
        return Ok(()); // no IPv6 in this kernel at all
    }
    std::fs::write(&knob, "1").map_err(|e| format!("{knob}: {e}"))?;
    match std::fs::read_to_string(&knob) {
        Ok(v) if v.trim() == "1" => Ok(()),
        other => Err(format!(
            "{knob} stays {other:?}: IPv6 would bypass the rules"
        )),
    }
}

/// The host's firewall for `bridge`: INPUT accepts from it only the proxy ports on its own
/// gateway address (not the host's other addresses, where other networks' proxies listen), and
/// FORWARD drops everything from or to it (other containers, other networks, anything routed).
async fn ensure_host_rules(bridge: &str, gateway: Ipv4Addr) -> Result<(), NetworkError> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = LOCK.lock().await;
    let fail = |reason: String| NetworkError::Firewall {
        bridge: bridge.to_string(),
        reason,
    };
    let ports = format!("{}:{}", PROXY_PORTS.start(), PROXY_PORTS.end());
    let own = format!("{gateway}/32");
    let accept = [
        "-d", &own, "-i", bridge, "-p", "tcp", "-m", "tcp", "--dport", &ports, "-j", "ACCEPT",
    ];
    let drop = ["-i", bridge, "-j", "DROP"];
    // Earlier versions accepted the proxy ports on every host address: remove that rule.
    let any_address = [
        "-i", bridge, "-p", "tcp", "-m", "tcp", "--dport", &ports, "-j", "ACCEPT",
    ];
    let mut removal = vec!["-D", "INPUT"];
    removal.extend_from_slice(&any_address);
    while iptables(&["-S", "INPUT"])
        .await
        .map_err(fail)?
        .lines()
        .any(|l| l == format!("-A INPUT {}", any_address.join(" ")))
    {
        iptables(&removal).await.map_err(fail)?;
    }
    let listing = iptables(&["-S", "INPUT"]).await.map_err(fail)?;
    let rule = |r: &[&str]| format!("-A INPUT {}", r.join(" "));
    let first = |r: &[&str]| listing.lines().position(|l| l == rule(r));
    // Only the order matters (ACCEPT of the proxy ports before DROP), so rules are only ever
    // inserted at the top: DROP first, so the network is never open in between.
    match (first(&accept), first(&drop)) {
        (Some(a), Some(d)) if a < d => {}
        (_, None) => {
            iptables(&insert_top("INPUT", &drop)).await.map_err(fail)?;
            iptables(&insert_top("INPUT", &accept))
                .await
                .map_err(fail)?;
        }
        _ => {
            iptables(&insert_top("INPUT", &accept))
                .await
                .map_err(fail)?;
        }
    }
    let forwarding = iptables(&["-S", "FORWARD"]).await.map_err(fail)?;
    for dir in ["-i", "-o"] {
        let r = [dir, bridge, "-j", "DROP"];
        if !forwarding
            .lines()
            .any(|l| l == format!("-A FORWARD {}", r.join(" ")))
        {
            iptables(&insert_top("FORWARD", &r)).await.map_err(fail)?;
        }
    }
    Ok(())
}

fn insert_top<'a>(chain: &'a str, rule: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-I", chain, "1"];
    args.extend_from_slice(rule);
    args
}

async fn iptables(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("iptables: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The chain (made by scripts/lib.sh) that decides where the build engine's daemon may connect:
/// replies, the registries it is allowed, and nothing else.
pub const BUILD_ENGINE_CHAIN: &str = "TRYTHIS-BUILD-ENGINE";

/// The build engine's way to a registry, opened in `BUILD_ENGINE_CHAIN` for as long as it is
/// held (rules it added go with it; the setup's own rule stays).
pub struct RegistryWay {
    added: Vec<(&'static str, Vec<String>)>,
}

/// Lets the build engine reach `registry` (`host:port`), the registry a build service pushes to:
/// the egress policy follows the configured registry, so a server (or a test) publishing to
/// another registry than the setup's can, and nothing else is opened. Without the chain (an
/// external build engine, or a machine set up without it) nothing is done.
pub fn open_registry_way(registry: &str) -> RegistryWay {
    use std::net::ToSocketAddrs;
    let mut way = RegistryWay { added: Vec::new() };
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.trim_matches(['[', ']']), p),
        _ => (registry, "443"),
    };
    let Ok(addrs) = (host, port.parse::<u16>().unwrap_or(443)).to_socket_addrs() else {
        tracing::warn!(
            registry,
            "the registry's address does not resolve; the build engine's way to it is not opened"
        );
        return way;
    };
    let mut seen = Vec::new();
    for addr in addrs {
        if seen.contains(&addr.ip()) {
            continue;
        }
        seen.push(addr.ip());
        let bin = if addr.is_ipv4() {
            "iptables"
        } else {
            "ip6tables"
        };
        let rule: Vec<String> = [
            "-d",
            &addr.ip().to_string(),
            "-p",
            "tcp",
            "--dport",
            port,
            "-j",
            "ACCEPT",
        ]
        .map(String::from)
        .to_vec();
        let run = |args: &[&str]| {
            std::process::Command::new(bin)
                .arg("-w")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let rule_args: Vec<&str> = rule.iter().map(String::as_str).collect();
        if !run(&["-n", "-L", BUILD_ENGINE_CHAIN]) {
            continue; // no egress policy for the build engine on this machine
        }
        if run(&[&["-C", BUILD_ENGINE_CHAIN][..], &rule_args].concat()) {
            continue; // already open: the setup's rule, or another server's
        }
        if run(&[&["-I", BUILD_ENGINE_CHAIN, "1"][..], &rule_args].concat()) {
            way.added.push((bin, rule));
        } else {
            tracing::warn!(
                registry,
                "could not open the build engine's way to its registry"
            );
        }
    }
    way
}

impl Drop for RegistryWay {
    fn drop(&mut self) {
        for (bin, rule) in self.added.drain(..) {
            let _ = std::process::Command::new(bin)
                .args(["-w", "-D", BUILD_ENGINE_CHAIN])
                .args(&rule)
                .output();
        }
    }
}

/// What an image import may reach: any public host over HTTPS (registries answer with token
/// services and blob CDNs elsewhere; the allow list of registries is checked on the reference),
/// on 443 or a port a listed registry names; never a private, loopback or link-local address,
/// checked on every resolved address of every connection, redirects included. The one exception
/// is a registry the operator listed as `http://host:port`, reached exactly as written.
pub fn import_policy(registries: &[crate::config::ImportRegistry]) -> egress::Policy {
    let mut ports = vec![443];
    let mut mirrors = Vec::new();
    for r in registries {
        let port = r
            .host
            .rsplit_once(':')
            .filter(|(h, _)| !h.contains(':') || h.ends_with(']'))
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if r.plain_http {
            mirrors.push(match port {
                Some(_) => r.host.clone(),
                None => format!("{}:80", r.host),
            });
        } else if let Some(p) = port.filter(|p| !ports.contains(p)) {
            ports.push(p);
        }
    }
    egress::Policy {
        allow_hosts: vec!["*".into()],
        ports,
        mirrors,
    }
}

/// The import's proxy, on loopback: only this process uses it.
async fn start_import_proxy(
    registries: &[crate::config::ImportRegistry],
) -> Result<Arc<egress::EgressProxy>, NetworkError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    egress::EgressProxy::start(addr, import_policy(registries))
        .await
        .map_err(|e| NetworkError::Proxy {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
}

async fn start_proxy(
    gateway: Ipv4Addr,
    port: u16,
    policy: egress::Policy,
) -> Result<Arc<egress::EgressProxy>, NetworkError> {
    let candidates: Vec<u16> = if port == 0 {
        PROXY_PORTS.collect()
    } else {
        vec![port]
    };
    let mut last = String::new();
    for p in candidates {
        let addr = SocketAddr::from((gateway, p));
        match egress::EgressProxy::start(addr, policy.clone()).await {
            Ok(proxy) => return Ok(proxy),
            Err(e) => last = e.to_string(),
        }
    }
    Err(NetworkError::Proxy {
        addr: format!("{gateway}:{port}"),
        reason: last,
    })
}

/// Writes the bundle builds and egress sandboxes trust: the host's system roots (so ordinary
/// sites keep working) followed by the extra CA file.
pub fn prepare_ca_bundle(extra: &Path, out: &Path) -> Result<(), NetworkError> {
    let fail = |reason: String| NetworkError::Ca {
        path: extra.display().to_string(),
        reason,
    };
    let extra_pem = std::fs::read_to_string(extra).map_err(|e| fail(e.to_string()))?;
    if !extra_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(fail("holds no PEM certificate".into()));
    }
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let mut bundle = String::new();
    if system != extra {
        if let Ok(roots) = std::fs::read_to_string(system) {
            bundle.push_str(&roots);
            bundle.push('\n');
        }
    }
    bundle.push_str(&extra_pem);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    // Written beside and renamed: a sandbox mounting it never sees half a file.
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, bundle).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, out).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Proxies on loopback stand in for the isolated networks (no project here opts into egress):
/// the fast tests of both domains.
#[cfg(test)]
pub(crate) async fn loopback_networks() -> Arc<Networks> {
    let isolated = |name: &str| {
        let name = name.to_string();
        async move {
            let proxy = egress::EgressProxy::start(
                "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
                egress::Policy {
                    allow_hosts: vec![],
                    ports: vec![443],
                    mirrors: vec![],
                },
            )
            .await
            .unwrap_or_else(|e| panic!("proxy: {e}"));
            Isolated {
                network: name,
                gateway: std::net::Ipv4Addr::LOCALHOST,
                proxy,
            }
        }
    };
    Arc::new(Networks {
        build: isolated("build").await,
        sandbox: isolated("egress").await,
        import: start_import_proxy(&[])
            .await
            .unwrap_or_else(|e| panic!("import proxy: {e}")),
        ca_bundle: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_fit_the_kernel_limit() {
        assert_eq!(bridge_name("trythis-build"), "tt-build");
        assert_eq!(bridge_name("trythis-egress"), "tt-egress");
        assert!(bridge_name("a-very-long-network-name-indeed").len() <= 15);
    }

    #[test]
    fn imports_reach_https_and_only_plain_http_registries_listed_as_such() {
        let r = |host: &str, plain_http| crate::config::ImportRegistry {
            host: host.into(),
            plain_http,
        };
        let p = import_policy(&[
            r("docker.io", false),
            r("registry.example.com:8443", false),
            r("127.0.0.1:5000", true),
            r("localhost", true),
            r("[::1]:5001", true),
        ]);
        assert_eq!(p.allow_hosts, vec!["*".to_string()]);
        assert_eq!(p.ports, vec![443, 8443]);
        assert_eq!(
            p.mirrors,
            vec!["127.0.0.1:5000", "localhost:80", "[::1]:5001"]
        );
        let default = import_policy(&[r("ghcr.io", false)]);
        assert_eq!((default.ports, default.mirrors.len()), (vec![443], 0));
    }

    #[test]
    fn gateway_is_the_first_address() {
        assert_eq!(
            gateway_of("172.30.240.0/24"),
            Some(Ipv4Addr::new(172, 30, 240, 1))
        );
        assert_eq!(gateway_of("172.30.240.0/8"), None);
        assert_eq!(gateway_of("nonsense"), None);
    }
}
