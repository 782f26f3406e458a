//! The registry crate against real registries: the platform's local registry at 127.0.0.1:5000
//! (started by `scripts/test.sh`; these tests fail, never skip, when it is not there) and a second
//! CNCF distribution instance each test that needs one starts on a free loopback port with its own
//! temporary storage (killed when the test ends). Test images are tiny synthetic OCI images pushed
//! with oci-client, under unique `trythis-test/…` repositories.
//!
//! The Harbor and token-auth tests talk to a hand-written HTTP server in the test: they check
//! *our client's* side of those protocols, not Harbor itself.
//!
//! No test sends traffic anywhere but 127.0.0.1.

use oci_client::{
    client::{ClientConfig, ClientProtocol, Config, ImageLayer},
    manifest::OciImageIndex,
    secrets::RegistryAuth,
    Client, Reference,
};
use registry::{
    HarborConfig, ImageSource, ImportFrom, Registry, RegistryConfig, RegistryError, RetentionReport,
};
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MAIN: &str = "127.0.0.1:5000";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn config(address: &str) -> RegistryConfig {
    RegistryConfig {
        address: address.into(),
        insecure: true,
        namespace: "trythis-test".into(),
        username: None,
        password: None,
    }
}

/// Unique per process and call: `1234-5678901-3`.
fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn unique_repo(kind: &str) -> String {
    format!("trythis-test/{kind}-{}", unique())
}

/// The platform's local registry; fails the test loudly when it is not running.
async fn main_registry() -> Registry {
    let r = Registry::new(config(MAIN));
    if let Err(e) = r.ping().await {
        panic!(
            "the local registry at {MAIN} is not answering ({e}). These tests need it: run \
             scripts/test.sh, or start it with \
             `bash -c 'source scripts/lib.sh && ensure_registry'`."
        );
    }
    r
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A synthetic image as pushed: digest and the pieces whose sizes make up its total.
struct Pushed {
    digest: String,
    config_digest: String,
    layer_digest: String,
    total: u64,
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Pushes a one-layer OCI image for `arch` (any bytes with the right digest are accepted).
async fn push_image(
    address: &str,
    repo: &str,
    tag: &str,
    arch: &str,
) -> Result<Pushed, Box<dyn std::error::Error>> {
    push_image_padded(address, repo, tag, arch, 0).await
}

/// Like [`push_image`], with `padding` more bytes in the layer.
async fn push_image_padded(
    address: &str,
    repo: &str,
    tag: &str,
    arch: &str,
    padding: usize,
) -> Result<Pushed, Box<dyn std::error::Error>> {
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference = Reference::with_tag(address.into(), repo.into(), tag.into());
    let mut layer = format!("trythis synthetic layer {} {arch}\n", unique()).into_bytes();
    layer.extend((0..padding).map(|i| (i % 251) as u8));
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [sha256(&layer)] },
    })
    .to_string()
    .into_bytes();
    let pushed = Pushed {
        digest: String::new(),
        config_digest: sha256(&config),
        layer_digest: sha256(&layer),
        total: (layer.len() + config.len()) as u64,
    };
    client
        .push(
            &reference,
            &[ImageLayer::oci_v1(layer, None)],
            Config::oci_v1(config, None),
            &RegistryAuth::Anonymous,
            None,
        )
        .await?;
    let digest = client
        .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
        .await?;
    Ok(Pushed { digest, ..pushed })
}

/// Pushes an OCI index with an arm64 and an amd64 entry; returns the index digest.
async fn push_index(
    address: &str,
    repo: &str,
    tag: &str,
    amd64: &str,
    arm64: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    // Sizes of the entries are not checked by distribution beyond being present.
    let entry = |digest: &str, arch: &str| {
        serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": digest, "size": 400,
            "platform": { "architecture": arch, "os": "linux" },
        })
    };
    let index: OciImageIndex = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(arm64, "arm64"), entry(amd64, "amd64")],
    }))?;
    let reference = Reference::with_tag(address.into(), repo.into(), tag.into());
    client
        .push_manifest_list(&reference, &RegistryAuth::Anonymous, index)
        .await?;
    Ok(client
        .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
        .await?)
}

#[tokio::test]
async fn tags_list_a_new_repository() -> TestResult {
    let main = main_registry().await;
    let repo = unique_repo("tags");
    let img = push_image(MAIN, &repo, "one", "amd64").await?;
    push_image(MAIN, &repo, "two", "amd64").await?;
    let mut tags = main.tags(&format!("{MAIN}/{repo}")).await?;
    tags.sort();
    assert_eq!(tags, ["one", "two"]);
    assert_eq!(
        main.tags(&repo).await?.len(),
        2,
        "paths without host work too"
    );
    assert!(matches!(
        main.tags(&unique_repo("nothing-here")).await,
        Err(RegistryError::NotFound(_))
    ));
    assert_ne!(img.digest, "");
    Ok(())
}

#[tokio::test]
async fn manifest_reports_digest_layers_and_total_size() -> TestResult {
    let main = main_registry().await;
    let repo = format!("{MAIN}/{}", unique_repo("manifest"));
    let path = repo.trim_start_matches(&format!("{MAIN}/")).to_string();
    let img = push_image(MAIN, &path, "v1", "amd64").await?;

    let m = main.manifest(&repo, "v1").await?;
    assert_eq!(m.digest, img.digest);
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert_eq!(m.index_digest, None);
    assert_eq!(m.config_digest, img.config_digest);
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.layers[0].digest, img.layer_digest);
    assert_eq!(m.total_size, img.total);
    assert_eq!(m.config_size + m.layers[0].size, img.total);

    assert_eq!(main.manifest(&repo, &img.digest).await?, m, "by digest too");
    let resolved = main.resolve(&repo, "v1").await?;
    assert_eq!(resolved.digest, img.digest);
    assert_eq!(resolved.size, img.total as i64);
    assert!(main.blob_exists(&repo, &img.layer_digest).await?);
    assert!(!main.blob_exists(&repo, &sha256(b"absent")).await?);

    assert!(matches!(
        main.manifest(&repo, "nope").await,
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        main.manifest(&repo, "bad tag!").await,
        Err(RegistryError::InvalidReference(_))
    ));
    assert!(matches!(
        main.manifest("ghcr.io/someone/else", "v1").await,
        Err(RegistryError::InvalidReference(_))
    ));
    Ok(())
}

#[tokio::test]
async fn an_index_resolves_to_its_linux_amd64_image() -> TestResult {
    let main = main_registry().await;
    let repo = unique_repo("index");
    let amd = push_image(MAIN, &repo, "amd", "amd64").await?;
    let arm = push_image(MAIN, &repo, "arm", "arm64").await?;
    let index = push_index(MAIN, &repo, "multi", &amd.digest, &arm.digest).await?;

    let m = main.manifest(&repo, "multi").await?;
    assert_eq!(m.digest, amd.digest);
    assert_eq!(m.index_digest.as_deref(), Some(index.as_str()));
    assert_eq!(m.total_size, amd.total);
    assert_eq!(main.resolve(&repo, "multi").await?.digest, amd.digest);
    Ok(())
}

#[tokio::test]
async fn delete_makes_the_tag_unresolvable() -> TestResult {
    let main = main_registry().await;
    let repo = unique_repo("delete");
    let img = push_image(MAIN, &repo, "gone", "amd64").await?;
    assert_eq!(main.resolve(&repo, "gone").await?.digest, img.digest);

    main.delete(&repo, &img.digest).await?;
    assert!(matches!(
        main.resolve(&repo, "gone").await,
        Err(RegistryError::NotFound(_))
    ));
    main.delete(&repo, &img.digest).await?; // already gone is fine
    assert!(matches!(
        main.delete(&repo, "gone").await,
        Err(RegistryError::InvalidReference(_))
    ));
    Ok(())
}

#[tokio::test]
async fn retain_keeps_listed_protected_and_shared_tags() -> TestResult {
    let main = main_registry().await;
    let repo = unique_repo("retain");
    let a = push_image(MAIN, &repo, "a", "amd64").await?;
    let b = push_image(MAIN, &repo, "b", "amd64").await?;
    let c = push_image(MAIN, &repo, "c", "amd64").await?;
    let d = push_image(MAIN, &repo, "d", "amd64").await?; // replaced by c's image below
    let e = push_image(MAIN, &repo, "e", "amd64").await?;
    let f = push_image(MAIN, &repo, "f", "amd64").await?;
    // d and g share an image with a kept (c) / a deleted (f) tag.
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    for (tag, source) in [("d", &c), ("g", &f)] {
        let from = Reference::with_digest(MAIN.into(), repo.clone(), source.digest.clone());
        let (raw, _) = client
            .pull_manifest_raw(&from, &RegistryAuth::Anonymous, &[OCI_MANIFEST])
            .await?;
        let to = Reference::with_tag(MAIN.into(), repo.clone(), tag.into());
        client
            .push_manifest_raw(&to, raw, OCI_MANIFEST.parse()?)
            .await?;
    }

    let keep = vec!["a".to_string(), "c".to_string()];
    let report = main
        .retain(&repo, &keep, std::slice::from_ref(&e.digest))
        .await?;
    assert_eq!(
        report,
        RetentionReport {
            deleted: vec!["b".into(), "f".into(), "g".into()],
            kept: vec!["a".into(), "c".into(), "d".into(), "e".into()],
        }
    );
    let mut tags = main.tags(&repo).await?;
    tags.sort();
    assert_eq!(tags, ["a", "c", "d", "e"]);
    assert_eq!(main.resolve(&repo, "a").await?.digest, a.digest);
    assert_eq!(main.resolve(&repo, "d").await?.digest, c.digest);
    assert_eq!(main.resolve(&repo, "e").await?.digest, e.digest);
    for gone in [&b, &f] {
        assert!(matches!(
            main.manifest(&repo, &gone.digest).await,
            Err(RegistryError::NotFound(_))
        ));
    }
    assert_ne!(d.digest, c.digest);

    // Nothing left to do: the same call deletes nothing.
    let again = main
        .retain(&repo, &keep, std::slice::from_ref(&e.digest))
        .await?;
    assert_eq!(again.deleted, Vec::<String>::new());
    assert_eq!(
        main.retain(&unique_repo("never-pushed"), &keep, &[])
            .await?,
        RetentionReport::default()
    );
    Ok(())
}

// --- Protocol tests of our HTTP client against a hand-written server (not of Harbor itself) ---

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.into(),
    }
}

type Handler = Box<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1 answering with `handler`.
async fn fake_server(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake server");
    let address = listener
        .local_addr()
        .expect("fake server address")
        .to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut stream).await else {
                    return;
                };
                let r = handler(&req);
                log.lock().unwrap_or_else(|e| e.into_inner()).push(req);
                let mut head = format!("HTTP/1.1 {} Fake\r\n", r.status);
                for (k, v) in &r.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str(&format!(
                    "Content-Length: {}\r\nConnection: close\r\n\r\n",
                    r.body.len()
                ));
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(r.body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (address, seen)
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

fn harbor(api_url: String) -> HarborConfig {
    HarborConfig {
        api_url,
        username: "admin".into(),
        password: "s3cret".into(),
    }
}

#[tokio::test]
async fn harbor_client_protocol_creates_the_project_and_accepts_409() -> TestResult {
    let first = Arc::new(AtomicU32::new(0));
    let counter = first.clone();
    let (address, seen) = fake_server(Box::new(move |_| {
        // First call creates, the second finds it exists.
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            reply(201, "")
        } else {
            reply(
                409,
                r#"{"errors":[{"code":"CONFLICT","message":"The project named trythis-test already exists"}]}"#,
            )
        }
    }))
    .await;
    let reg = Registry::new(config(MAIN)).with_harbor(harbor(format!("http://{address}/")));
    reg.ensure_namespace().await?;
    reg.ensure_namespace().await?;

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/api/v2.0/projects");
        // base64("admin:s3cret")
        assert_eq!(req.header("authorization"), Some("Basic YWRtaW46czNjcmV0"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&req.body)?;
        assert_eq!(
            body,
            serde_json::json!({ "project_name": "trythis-test", "metadata": { "public": "false" } })
        );
    }
    Ok(())
}

#[tokio::test]
async fn harbor_client_protocol_reports_refusals() -> TestResult {
    let (address, _) = fake_server(Box::new(|_| reply(401, "unauthorized"))).await;
    let reg = Registry::new(config(MAIN)).with_harbor(harbor(format!("http://{address}")));
    match reg.ensure_namespace().await {
        Err(RegistryError::Protocol(m)) => assert!(m.contains("credentials"), "{m}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    let (address, _) = fake_server(Box::new(|_| reply(500, "boom"))).await;
    let reg = Registry::new(config(MAIN)).with_harbor(harbor(format!("http://{address}")));
    match reg.ensure_namespace().await {
        Err(RegistryError::Protocol(m)) => assert!(m.contains("500") && m.contains("boom"), "{m}"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    let reg = Registry::new(config(MAIN))
        .with_harbor(harbor(format!("http://127.0.0.1:{}", free_port())));
    assert!(matches!(
        reg.ensure_namespace().await,
        Err(RegistryError::Unreachable(_))
    ));
    Ok(())
}

#[tokio::test]
async fn without_harbor_ensure_namespace_does_nothing() -> TestResult {
    // Nothing listens there: any request would fail.
    let reg = Registry::new(config(&format!("127.0.0.1:{}", free_port())));
    assert!(reg.harbor().is_none());
    reg.ensure_namespace().await?;
    Ok(())
}

#[tokio::test]
async fn token_auth_protocol_follows_the_challenge_and_reuses_the_token() -> TestResult {
    let address = Arc::new(Mutex::new(String::new()));
    let addr = address.clone();
    let blob = format!("/v2/a/b/blobs/{}", sha256(b"layer"));
    let absent = format!("/v2/a/b/blobs/{}", sha256(b"absent"));
    let (present, missing) = (blob.clone(), absent.clone());
    let (bound, seen) = fake_server(Box::new(move |req| {
        let me = addr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let bearer = req.header("authorization") == Some("Bearer t0k");
        match req.target.as_str() {
            t if t.starts_with("/token?") => {
                if req.header("authorization") == Some("Basic dXNlcjpwdw==") {
                    reply(200, r#"{"token":"t0k","expires_in":60}"#)
                } else {
                    reply(401, "")
                }
            }
            _ if !bearer => Reply {
                status: 401,
                headers: vec![(
                    "WWW-Authenticate",
                    format!(
                        r#"Bearer realm="http://{me}/token",service="fake registry",scope="repository:a/b:pull""#
                    ),
                )],
                body: String::new(),
            },
            t if t == present => reply(200, ""),
            t if t == missing => reply(404, ""),
            _ => reply(500, ""),
        }
    }))
    .await;
    *address.lock().unwrap_or_else(|e| e.into_inner()) = bound.clone();
    let reg = Registry::new(RegistryConfig {
        username: Some("user".into()),
        password: Some("pw".into()),
        ..config(&bound)
    });
    assert!(reg.blob_exists("a/b", &sha256(b"layer")).await?);
    assert!(!reg.blob_exists("a/b", &sha256(b"absent")).await?);

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            blob.as_str(),
            "/token?service=fake+registry&scope=repository%3Aa%2Fb%3Apull",
            blob.as_str(),
            absent.as_str(),
        ]
    );
    // The first try carried the configured basic credentials; later ones the token (the second
    // call reuses it without a new challenge).
    assert_eq!(seen[0].header("authorization"), Some("Basic dXNlcjpwdw=="));
    assert_eq!(seen[3].header("authorization"), Some("Bearer t0k"));
    Ok(())
}

// --- Import by reference: a second registry (or a fake one) as the source, ours as the target ---

/// A second registry (`docker-registry serve`) on a free loopback port; killed on drop.
struct SecondRegistry {
    child: Child,
    dir: PathBuf,
    address: String,
}

impl SecondRegistry {
    async fn start() -> Self {
        let address = format!("127.0.0.1:{}", free_port());
        let dir = std::env::temp_dir().join(format!("trythis-registry-test-{}", unique()));
        std::fs::create_dir_all(dir.join("storage")).expect("create temp registry dir");
        let log = std::fs::File::create(dir.join("registry.log")).expect("create registry log");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yml"))
            .env("REGISTRY_HTTP_ADDR", &address)
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.join("storage"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start /usr/bin/docker-registry ({e}): install the Debian package \
                     docker-registry (scripts/test.sh does)"
                )
            });
        let mut second = Self {
            child,
            dir,
            address,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&second.address)
                .await
                .is_ok()
            {
                return second;
            }
            if let Ok(Some(status)) = second.child.try_wait() {
                let log =
                    std::fs::read_to_string(second.dir.join("registry.log")).unwrap_or_default();
                panic!("second registry exited ({status}): {log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("second registry did not listen on {}", second.address);
    }
}

impl Drop for SecondRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Imports `reference` (a loopback registry, plain HTTP, no proxy) into `dest:tag` of `to`;
/// returns the outcome and the lines logged.
async fn import(
    to: &Registry,
    reference: &str,
    dest: &str,
    tag: &str,
    max_bytes: u64,
) -> (Result<registry::ResolvedImage, RegistryError>, Vec<String>) {
    let source = match ImageSource::parse(reference) {
        Ok(s) => s,
        Err(e) => return (Err(e), Vec::new()),
    };
    let from = ImportFrom {
        source: &source,
        plain_http: true,
        proxy: None,
    };
    let lines = Mutex::new(Vec::new());
    let log = |l: &str| {
        lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(l.to_string())
    };
    let r = to.import(&from, dest, tag, max_bytes, &log).await;
    (r, lines.into_inner().unwrap_or_else(|e| e.into_inner()))
}

#[tokio::test]
async fn import_copies_an_image_verified_and_unchanged() -> TestResult {
    let main = main_registry().await;
    let second = SecondRegistry::start().await;
    let src_repo = "library/foo";
    let img = push_image(&second.address, src_repo, "1.0", "amd64").await?;
    let dest = format!("{MAIN}/{}", unique_repo("import"));

    let source = format!("{}/{src_repo}:1.0", second.address);
    let (imported, log) = import(&main, &source, &dest, "v1", 10 << 20).await;
    let imported = imported?;
    assert_eq!(
        imported.digest, img.digest,
        "the manifest is pushed unchanged"
    );
    assert_eq!(imported.size, img.total as i64);
    assert_eq!(main.resolve(&dest, "v1").await?, imported);
    assert!(main.blob_exists(&dest, &img.config_digest).await?);
    assert!(main.blob_exists(&dest, &img.layer_digest).await?);
    let said = log.join("\n");
    for line in [
        format!("Resolving {source}…"),
        format!("Resolved to {}", img.digest),
        "copying layer 1/1 (".to_string(),
        format!("verified {}", img.layer_digest),
        format!("verified {}", img.config_digest),
        format!("verified manifest {}", img.digest),
    ] {
        assert!(said.contains(&line), "{line:?} missing from:\n{said}");
    }

    // Again, pinned by digest, with every blob already there: nothing is copied twice.
    let pinned = format!("{}/{src_repo}@{}", second.address, img.digest);
    let (again, log) = import(&main, &pinned, &dest, "v2", img.total).await;
    assert_eq!(again?, imported);
    assert!(!log.iter().any(|l| l.starts_with("copying")), "{log:?}");

    // An index: its linux/amd64 image is what is imported; pinning the index's digest works.
    let arm = push_image(&second.address, src_repo, "arm", "arm64").await?;
    let index = push_index(&second.address, src_repo, "multi", &img.digest, &arm.digest).await?;
    for reference in [
        format!("{}/{src_repo}:multi", second.address),
        format!("{}/{src_repo}@{index}", second.address),
    ] {
        let (r, log) = import(&main, &reference, &dest, "v3", 10 << 20).await;
        assert_eq!(r?.digest, img.digest, "{reference}");
        assert!(
            log.iter()
                .any(|l| l.contains("(an index) to its linux/amd64 image")),
            "{log:?}"
        );
    }
    let mut tags = main.tags(&dest).await?;
    tags.sort();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    Ok(())
}

#[tokio::test]
async fn import_refuses_too_large_images_before_copying() -> TestResult {
    let main = main_registry().await;
    let second = SecondRegistry::start().await;
    let img = push_image(&second.address, "big/image", "1", "amd64").await?;
    let dest = unique_repo("too-large");
    let source = format!("{}/big/image:1", second.address);
    match import(&main, &source, &dest, "v1", img.total - 1).await {
        (Err(e @ RegistryError::TooLarge { size, limit }), log) => {
            assert_eq!((size, limit), (img.total, img.total - 1));
            assert!(e.to_string().contains(", the limit is "), "{e}");
            assert!(!log.iter().any(|l| l.starts_with("copying")), "{log:?}");
        }
        (other, _) => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        matches!(main.tags(&dest).await, Err(RegistryError::NotFound(_))),
        "nothing may be pushed"
    );
    assert!(!main.blob_exists(&dest, &img.layer_digest).await?);
    Ok(())
}

#[tokio::test]
async fn import_of_a_missing_image_is_not_found() -> TestResult {
    let main = main_registry().await;
    let second = SecondRegistry::start().await;
    push_image(&second.address, "library/foo", "1.0", "amd64").await?;
    for missing in ["library/foo:nope", "library/absent:1.0"] {
        let source = format!("{}/{missing}", second.address);
        match import(&main, &source, &unique_repo("missing"), "v1", 1 << 30).await {
            (Err(RegistryError::NotFound(m)), _) => assert!(m.contains(missing), "{m}"),
            (other, _) => panic!("{missing}: expected NotFound, got {other:?}"),
        }
    }
    Ok(())
}

/// A fake source registry whose content does not match what it declares: a tampered blob (other
/// bytes, or more of them), a manifest whose digest header lies, a manifest other than the pinned
/// digest. Every one is refused, and nothing gets tagged in the destination.
#[tokio::test]
async fn import_refuses_tampered_blobs_and_manifests() -> TestResult {
    let main = main_registry().await;
    let config =
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    // (tag, layer the manifest declares, what the fake serves for it)
    let cases = [
        ("honest", "declared layer H", "declared layer H"),
        (
            "longer",
            "declared layer A",
            "declared layer A, and then some more",
        ),
        ("altered", "declared layer B", "declared layer X"),
    ];
    let manifest_for = |declared: &str| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": sha256(config.as_bytes()), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                         "digest": sha256(declared.as_bytes()), "size": declared.len() }],
        })
        .to_string()
    };
    let ok = |headers: Vec<(&'static str, String)>, body: String| Reply {
        status: 200,
        headers,
        body,
    };
    let typed = || vec![("Content-Type", OCI_MANIFEST.to_string())];
    let mut routes: Vec<(String, Reply)> = vec![(
        format!("/v2/x/blobs/{}", sha256(config.as_bytes())),
        ok(vec![], config.to_string()),
    )];
    for (tag, declared, served) in cases {
        routes.push((
            format!("/v2/x/manifests/{tag}"),
            ok(typed(), manifest_for(declared)),
        ));
        routes.push((
            format!("/v2/x/blobs/{}", sha256(declared.as_bytes())),
            ok(vec![], served.to_string()),
        ));
    }
    let mut lying = typed();
    lying.push(("Docker-Content-Digest", sha256(b"something else")));
    routes.push((
        "/v2/x/manifests/lying".into(),
        ok(lying, manifest_for("declared layer H")),
    ));
    let wrong = sha256(b"not that manifest");
    routes.push((
        format!("/v2/x/manifests/{wrong}"),
        ok(typed(), manifest_for("declared layer H")),
    ));
    let (address, _) = fake_server(Box::new(move |req| {
        routes
            .iter()
            .find(|(path, _)| *path == req.target)
            .map_or_else(|| reply(404, ""), |(_, r)| r.clone())
    }))
    .await;

    // The honest one goes through: the fake serves what it declares.
    let honest = unique_repo("honest");
    let (r, _) = import(
        &main,
        &format!("{address}/x:honest"),
        &honest,
        "v1",
        1 << 20,
    )
    .await;
    r?;
    let dest = unique_repo("tampered");
    for (source, expect) in [
        ("x:longer", "larger than"),
        ("x:altered", "arrived as"),
        ("x:lying", "expected"),
        (&*format!("x@{wrong}"), "expected"),
    ] {
        match import(&main, &format!("{address}/{source}"), &dest, "v1", 1 << 20).await {
            (Err(RegistryError::Protocol(m)), _) => assert!(m.contains(expect), "{source}: {m}"),
            (other, _) => panic!("{source}: expected Protocol, got {other:?}"),
        }
    }
    assert!(
        matches!(main.tags(&dest).await, Err(RegistryError::NotFound(_))),
        "nothing may be tagged"
    );
    assert!(
        !main
            .blob_exists(&dest, &sha256(b"declared layer X"))
            .await?
            && !main
                .blob_exists(&dest, &sha256(b"declared layer B"))
                .await?,
        "a tampered blob is never stored"
    );
    Ok(())
}

#[tokio::test]
async fn a_private_image_is_refused_as_private() -> TestResult {
    let main = main_registry().await;
    let address = Arc::new(Mutex::new(String::new()));
    let addr = address.clone();
    // Anonymous tokens are handed out, but the repository still answers 401 (Docker Hub's way
    // for a private repository), or the token service itself refuses.
    let (bound, _) = fake_server(Box::new(move |req| {
        let me = addr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match req.target.as_str() {
            t if t.starts_with("/token?") && t.contains("refused") => reply(403, ""),
            t if t.starts_with("/token?") => reply(200, r#"{"token":"anon"}"#),
            _ => Reply {
                status: 401,
                headers: vec![(
                    "WWW-Authenticate",
                    format!(r#"Bearer realm="http://{me}/token",service="fake""#),
                )],
                body: String::new(),
            },
        }
    }))
    .await;
    *address.lock().unwrap_or_else(|e| e.into_inner()) = bound.clone();
    for repo in ["owner/secret:1", "refused/secret:1"] {
        match import(
            &main,
            &format!("{bound}/{repo}"),
            &unique_repo("private"),
            "v1",
            1 << 20,
        )
        .await
        {
            (Err(e @ RegistryError::Private(_)), _) => {
                assert!(e.to_string().starts_with("this image is private"), "{e}")
            }
            (other, _) => panic!("{repo}: expected Private, got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn an_imports_redirects_never_go_to_plain_http() -> TestResult {
    let main = main_registry().await;
    let config = r#"{"architecture":"amd64","os":"linux"}"#;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha256(config.as_bytes()), "size": config.len() },
        "layers": [],
    })
    .to_string();
    let (other, seen_elsewhere) = fake_server(Box::new(|_| reply(200, ""))).await;
    let (address, _) = fake_server(Box::new(move |req| {
        if req.target.contains("/manifests/") {
            Reply {
                status: 200,
                headers: vec![("Content-Type", OCI_MANIFEST.to_string())],
                body: manifest.clone(),
            }
        } else {
            // A "blob CDN" on plain HTTP elsewhere.
            Reply {
                status: 307,
                headers: vec![("Location", format!("http://{other}/blob"))],
                body: String::new(),
            }
        }
    }))
    .await;
    match import(
        &main,
        &format!("{address}/x:1"),
        &unique_repo("redirect"),
        "v1",
        1 << 20,
    )
    .await
    {
        (Err(RegistryError::Protocol(m)), _) => assert!(m.contains("redirect"), "{m}"),
        (other, _) => panic!("expected Protocol, got {other:?}"),
    }
    assert!(
        seen_elsewhere
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty(),
        "the redirect was not followed"
    );
    Ok(())
}
