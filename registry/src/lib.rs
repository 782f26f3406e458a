//! OCI registry access for trythis.
//!
//! The platform pushes every built image to its own registry (CNCF distribution locally, Harbor in
//! production) and always starts sandboxes from a *digest*, resolved here.
//!
//! Beyond resolving, the crate lists tags, inspects manifests and blobs, prunes (`delete`,
//! `retain`) and imports public images from other registries (`import`, through the platform's
//! egress proxy). `oci-client` lists tags; what it does not offer (manifest and blob checks,
//! delete, a verified streaming copy through a proxy) speaks the registry API directly (module
//! `http`, with the distribution token flow).

mod http;
mod import;
mod manifest;
mod names;

pub use import::{ImportFrom, ImportLog};
pub use manifest::{ImageManifestInfo, LayerInfo};
pub use names::{ImageSource, DOCKER_HUB, DOCKER_HUB_API};

use http::{read_limited, response_error, transport, Endpoint};
use names::{valid_digest, valid_reference, valid_repository, valid_tag};
use oci_client::{
    client::{ClientConfig, ClientProtocol},
    errors::{OciDistributionError, OciErrorCode},
    secrets::RegistryAuth,
    Client, Reference,
};
use reqwest::StatusCode;
use std::collections::HashSet;
use std::sync::{Arc, Once};

/// Why a registry operation failed, in classes callers act on differently (retry later, tell the
/// user the image does not exist / is too big / was mistyped, or report a fault).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Connection refused, DNS failure, timeout or an overloaded registry (429, 502-504):
    /// nothing is wrong with the request, retrying later may work.
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// The repository, tag, manifest or blob does not exist.
    #[error("image not found: {0}")]
    NotFound(String),
    /// An import's source refused anonymous access (401/403): the image is private.
    #[error("this image is private: {0}")]
    Private(String),
    /// The image is bigger than the caller's limit (bytes, compressed); nothing was copied.
    #[error("image is {}, the limit is {}", human_size(*size), human_size(*limit))]
    TooLarge { size: u64, limit: u64 },
    /// Not an image reference we accept: bad grammar, another registry than ours, or plain
    /// HTTP to a registry that is not on this machine.
    #[error("not a valid image reference: {0}")]
    InvalidReference(String),
    /// The registry answered something we cannot use: access denied, malformed or unsupported
    /// content, digest mismatch, deletes disabled, …
    #[error("registry error: {0}")]
    Protocol(String),
}

impl RegistryError {
    /// Only `Unreachable` is worth retrying unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Unreachable(_))
    }
}

/// `3.2 GB`, `512 MB`, `700 bytes` (binary units, as the platform's MB limits are).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

/// Where the platform's registry is and how to log in to it.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host:port`, e.g. `127.0.0.1:5000`.
    pub address: String,
    /// Plain HTTP (local registry) instead of HTTPS.
    pub insecure: bool,
    /// Repository namespace for project images, e.g. `trythis`.
    pub namespace: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl RegistryConfig {
    /// `{address}/{namespace}/{slug}`: the repository a project's builds are pushed to.
    pub fn repository_for(&self, slug: &str) -> String {
        format!("{}/{}/{}", self.address, self.namespace, slug)
    }
}

/// Harbor's management API. Harbor (production) refuses pushes into a project that does not
/// exist, so the namespace must be created first; the distribution registry needs nothing.
#[derive(Clone, Default)]
pub struct HarborConfig {
    /// Base URL of Harbor, e.g. `https://harbor.example.com` (without `/api/v2.0`).
    pub api_url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for HarborConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarborConfig")
            .field("api_url", &self.api_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A resolved image: the digest to start sandboxes from and the total size of its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub digest: String,
    pub size: i64,
}

/// What [`Registry::retain`] did, so the caller can drop the same tags elsewhere (engine cache).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Tags that no longer exist, sorted.
    pub deleted: Vec<String>,
    /// Tags still there (asked for, protected, or sharing a digest with one of those), sorted.
    pub kept: Vec<String>,
}

/// The platform's registry. Cheap to clone: clones share connections and tokens.
#[derive(Clone)]
pub struct Registry {
    config: RegistryConfig,
    client: Client,
    /// The platform's registry, spoken to directly.
    own: Arc<Endpoint>,
    harbor: Option<HarborConfig>,
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // reqwest is built without a bundled provider; ring keeps the build small.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Maps oci-client's errors onto ours.
fn oci_error(e: OciDistributionError, what: &str) -> RegistryError {
    use OciDistributionError as E;
    match e {
        E::RequestError(e) => transport(e),
        E::RegistryError { envelope, .. } => {
            let first = envelope.errors.first();
            let msg = first.map_or_else(String::new, |e| e.message.clone());
            match first.map(|e| &e.code) {
                Some(
                    OciErrorCode::NameUnknown
                    | OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound,
                ) => RegistryError::NotFound(what.to_string()),
                Some(OciErrorCode::Toomanyrequests) => {
                    RegistryError::Unreachable(format!("{what}: too many requests"))
                }
                Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => {
                    RegistryError::Protocol(format!("{what}: access denied: {msg}"))
                }
                _ => RegistryError::Protocol(format!("{what}: {msg}")),
            }
        }
        E::ServerError { code, message, .. } => {
            match StatusCode::from_u16(code).map(|s| http::status_error(s, what)) {
                Ok(RegistryError::Protocol(m)) => {
                    RegistryError::Protocol(format!("{m}: {message}"))
                }
                Ok(other) => other,
                Err(_) => RegistryError::Protocol(format!("{what}: status {code}: {message}")),
            }
        }
        E::ImageManifestNotFoundError(_) => RegistryError::NotFound(what.to_string()),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => {
            RegistryError::Protocol(format!("{what}: access denied"))
        }
        other => RegistryError::Protocol(format!("{what}: {other}")),
    }
}

impl Registry {
    /// Never fails: a client that cannot be built (TLS set-up) is reported by each call instead.
    pub fn new(config: RegistryConfig) -> Self {
        install_crypto_provider();
        let protocol = if config.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            ..Default::default()
        });
        let basic = match (&config.username, &config.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            _ => None,
        };
        let own_http = http::build_client();
        if let Err(e) = &own_http {
            tracing::error!(error = %e, "registry HTTP client could not be built");
        }
        let own = Arc::new(Endpoint::new(
            own_http,
            config.insecure,
            &config.address,
            basic,
        ));
        Self {
            config,
            client,
            own,
            harbor: None,
        }
    }

    /// Production registries are Harbor, whose projects must exist before a push: with this,
    /// [`Registry::ensure_namespace`] creates the namespace's project.
    pub fn with_harbor(mut self, harbor: HarborConfig) -> Self {
        self.harbor = Some(harbor);
        self
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The Harbor API in use, if any (see [`Registry::with_harbor`]).
    pub fn harbor(&self) -> Option<&HarborConfig> {
        self.harbor.as_ref()
    }

    fn auth(&self) -> RegistryAuth {
        match (&self.config.username, &self.config.password) {
            (Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        }
    }

    /// The path of `repo` inside our registry: accepts `{address}/path` (as
    /// [`RegistryConfig::repository_for`] gives) or `path`, and
    /// refuses other registries, which would otherwise be contacted with our credentials.
    fn repo_path<'a>(&self, repo: &'a str) -> Result<&'a str, RegistryError> {
        let path = match repo
            .strip_prefix(self.config.address.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(path) => path,
            None => {
                let first = repo.split('/').next().unwrap_or(repo);
                if repo.contains('/')
                    && (first.contains('.') || first.contains(':') || first == "localhost")
                {
                    return Err(RegistryError::InvalidReference(format!(
                        "{repo:?} (not in the platform's registry {})",
                        self.config.address
                    )));
                }
                repo
            }
        };
        if !valid_repository(path) {
            return Err(RegistryError::InvalidReference(format!(
                "{repo:?} (repository names use lowercase letters, digits and '.', '_', '-' between '/')"
            )));
        }
        Ok(path)
    }

    /// `GET /v2/` answers (200 or 401: the registry is up). Plain HTTP only checks the API
    /// version endpoint; over HTTPS a TCP connect is the check (Harbor terminates TLS itself).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = &self.config.address;
        let unreachable = |e: String| RegistryError::Unreachable(format!("{addr}: {e}"));
        let connect = tokio::net::TcpStream::connect(addr.as_str());
        let mut stream = tokio::time::timeout(std::time::Duration::from_secs(2), connect)
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        if !self.config.insecure {
            return Ok(());
        }
        let req = format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            stream.read_exact(&mut head),
        )
        .await
        .map_err(|_| unreachable("no answer".into()))?;
        read.map_err(|e| unreachable(e.to_string()))?;
        match &head[9..12] {
            b"200" | b"401" => Ok(()),
            other => Err(unreachable(format!(
                "GET /v2/ answered {}",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    /// Resolves `repository:tag` to its manifest digest and total size (config + layers,
    /// compressed); an index resolves to its linux/amd64 image.
    pub async fn resolve(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<ResolvedImage, RegistryError> {
        let m = self.manifest(repository, tag).await?;
        Ok(ResolvedImage {
            digest: m.digest,
            size: i64::try_from(m.total_size).unwrap_or(i64::MAX),
        })
    }

    /// Tags of one repository.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let path = self.repo_path(repository)?;
        let reference = Reference::with_tag(
            self.config.address.clone(),
            path.to_string(),
            "latest".into(),
        );
        let resp = self
            .client
            .list_tags(&reference, &self.auth(), None, None)
            .await
            .map_err(|e| oci_error(e, &self.own.name(path)))?;
        Ok(resp.tags)
    }

    /// What `repo:reference` (tag or digest) is made of; an index or manifest list resolves to
    /// its linux/amd64 image, the platform sandboxes run on.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<ImageManifestInfo, RegistryError> {
        let path = self.repo_path(repo)?;
        if !valid_reference(reference) {
            return Err(RegistryError::InvalidReference(format!(
                "{reference:?} (expected a tag or a sha256:… digest)"
            )));
        }
        manifest::fetch(&self.own, path, reference).await
    }

    /// Is blob `digest` stored in `repo`? (Checks that a push is complete, or that garbage
    /// collection freed a layer.)
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, RegistryError> {
        let path = self.repo_path(repo)?;
        if !valid_digest(digest) {
            return Err(RegistryError::InvalidReference(format!(
                "{digest:?} (expected a sha256:… digest)"
            )));
        }
        let url = self.own.v2(&format!("{path}/blobs/{digest}"));
        let res = self
            .own
            .send(&format!("repository:{path}:pull"), |c| c.head(&url))
            .await?;
        match res.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => {
                let what = format!("blob {digest} in {}", self.own.name(path));
                Err(response_error(res, &what).await)
            }
        }
    }

    /// Deletes manifest `digest` from `repo`, and with it every tag pointing at it. Already gone
    /// counts as done. Blob space comes back when the registry's garbage collector runs (the
    /// server runs `TRYTHIS_REGISTRY_GC_COMMAND` while none of its builds pushes).
    pub async fn delete(&self, repo: &str, digest: &str) -> Result<(), RegistryError> {
        let path = self.repo_path(repo)?;
        if !valid_digest(digest) {
            return Err(RegistryError::InvalidReference(format!(
                "{digest:?} (a manifest is deleted by its sha256:… digest, not by tag)"
            )));
        }
        let url = self.own.v2(&format!("{path}/manifests/{digest}"));
        let res = self
            .own
            .send(&format!("repository:{path}:delete"), |c| c.delete(&url))
            .await?;
        match res.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            StatusCode::METHOD_NOT_ALLOWED => Err(RegistryError::Protocol(
                "the registry does not allow deletes (enable storage.delete in its config)".into(),
            )),
            _ => {
                let what = format!("deleting {}@{digest}", self.own.name(path));
                Err(response_error(res, &what).await)
            }
        }
    }

    /// Old builds pile up: deletes every tag of `repo` except those in `keep` and those whose
    /// image is in `protect_digests` (e.g. what sandboxes currently run). A tag sharing its
    /// digest with a kept one is kept too, because deleting a manifest removes all its tags.
    /// Deleting frees blob space only after the registry's garbage collector runs.
    pub async fn retain(
        &self,
        repo: &str,
        keep: &[String],
        protect_digests: &[String],
    ) -> Result<RetentionReport, RegistryError> {
        let path = self.repo_path(repo)?;
        let tags = match self.tags(repo).await {
            Ok(tags) => tags,
            Err(RegistryError::NotFound(_)) => return Ok(RetentionReport::default()),
            Err(e) => return Err(e),
        };
        // (tag, digest the tag points at, linux/amd64 digest inside it if that is an index)
        let mut entries = Vec::with_capacity(tags.len());
        for tag in tags {
            match manifest::tag_digests(&self.own, path, &tag).await {
                Ok((top, platform)) => entries.push((tag, top, platform)),
                Err(RegistryError::NotFound(_)) => continue, // deleted meanwhile
                Err(e) => return Err(e),
            }
        }
        let protected = |d: &str| protect_digests.iter().any(|p| p == d);
        let survivors: HashSet<&str> = entries
            .iter()
            .filter(|(tag, top, platform)| {
                keep.contains(tag) || protected(top) || platform.as_deref().is_some_and(protected)
            })
            .map(|(_, top, _)| top.as_str())
            .collect();
        let mut report = RetentionReport::default();
        let mut deleted: HashSet<&str> = HashSet::new();
        for (tag, top, _) in &entries {
            if survivors.contains(top.as_str()) {
                report.kept.push(tag.clone());
                continue;
            }
            if deleted.insert(top.as_str()) {
                self.delete(repo, top).await?;
            }
            report.deleted.push(tag.clone());
        }
        report.kept.sort();
        report.deleted.sort();
        Ok(report)
    }

    /// Copies the linux/amd64 image `from` names into `dest_repo:dest_tag` of our registry. The
    /// size (config and layers, as the manifest declares them) is checked against `max_bytes`
    /// before anything is copied; every blob is streamed through in chunks and must hash to its
    /// declared digest and size; the manifest is pushed unchanged, so the digest is the source's
    /// (and, when the reference pinned one, the pinned digest or the index it names). Blobs the
    /// destination already has are not copied again. `log` receives one line per step.
    pub async fn import(
        &self,
        from: &ImportFrom<'_>,
        dest_repo: &str,
        dest_tag: &str,
        max_bytes: u64,
        log: &ImportLog<'_>,
    ) -> Result<ResolvedImage, RegistryError> {
        let dest = self.repo_path(dest_repo)?;
        if !valid_tag(dest_tag) {
            return Err(RegistryError::InvalidReference(format!(
                "{dest_tag:?} (tags use letters, digits, '.', '_' and '-')"
            )));
        }
        import::copy_image(from, &self.own, dest, dest_tag, max_bytes, log).await
    }

    /// Makes sure the namespace's Harbor project exists (private) before the first push:
    /// `POST {api_url}/api/v2.0/projects`; 201 created and 409 already there are both fine.
    /// Without Harbor this does nothing: the distribution registry creates repositories on push.
    pub async fn ensure_namespace(&self) -> Result<(), RegistryError> {
        let Some(harbor) = &self.harbor else {
            return Ok(());
        };
        let ns = &self.config.namespace;
        let url = format!("{}/api/v2.0/projects", harbor.api_url.trim_end_matches('/'));
        let body = serde_json::json!({ "project_name": ns, "metadata": { "public": "false" } });
        let res = self
            .own
            .client()?
            .post(&url)
            .basic_auth(&harbor.username, Some(&harbor.password))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        match status {
            StatusCode::CREATED | StatusCode::OK | StatusCode::CONFLICT => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Protocol(format!(
                "Harbor refused {:?} creating project {ns:?} ({status}): check the Harbor credentials",
                harbor.username
            ))),
            s if matches!(s.as_u16(), 429 | 502..=504) => Err(RegistryError::Unreachable(format!(
                "Harbor at {} answered {status}",
                harbor.api_url
            ))),
            _ => {
                let detail = read_limited(res, 64 << 10).await.unwrap_or_default();
                let detail: String = String::from_utf8_lossy(&detail).chars().take(300).collect();
                Err(RegistryError::Protocol(format!(
                    "creating Harbor project {ns:?} at {url}: {status} {}",
                    detail.trim()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new(RegistryConfig {
            address: "127.0.0.1:5000".into(),
            insecure: true,
            namespace: "trythis".into(),
            username: None,
            password: None,
        })
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(700), "700 bytes");
        assert_eq!(human_size(2 << 30), "2 GB");
        assert_eq!(human_size(3_435_973_837), "3.2 GB");
        assert_eq!(human_size(512 << 20), "512 MB");
        let e = RegistryError::TooLarge {
            size: 3_435_973_837,
            limit: 2 << 30,
        };
        assert_eq!(e.to_string(), "image is 3.2 GB, the limit is 2 GB");
    }

    #[test]
    fn repositories_are_ours_with_or_without_the_host() {
        let r = registry();
        assert_eq!(
            r.repo_path("127.0.0.1:5000/trythis/a").ok(),
            Some("trythis/a")
        );
        assert_eq!(r.repo_path("trythis/a").ok(), Some("trythis/a"));
        assert_eq!(r.repo_path("a").ok(), Some("a"));
        for bad in [
            "ghcr.io/x/y",
            "127.0.0.1:50000/x",
            "localhost/x",
            "127.0.0.1:5000/",
            "trythis/A",
            "trythis/../x",
        ] {
            assert!(
                matches!(r.repo_path(bad), Err(RegistryError::InvalidReference(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn harbor_passwords_stay_out_of_logs() {
        let h = HarborConfig {
            api_url: "https://h".into(),
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{h:?}").contains("hunter2"));
    }
}
