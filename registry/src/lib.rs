//! OCI registry access for trythis, through `oci-client`.
//!
//! The platform pushes every built image to its own registry (CNCF distribution locally, Harbor in
//! production) and always starts sandboxes from a *digest*, resolved here.

use oci_client::{
    client::{ClientConfig, ClientProtocol},
    secrets::RegistryAuth,
    Client, Reference,
};
use std::sync::Once;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    #[error("invalid image reference {0:?}: {1}")]
    BadReference(String, String),
    #[error("registry error: {0}")]
    Oci(#[from] oci_client::errors::OciDistributionError),
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

/// A resolved image: the digest to start sandboxes from and the total size of its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub digest: String,
    pub size: i64,
}

#[derive(Clone)]
pub struct Registry {
    config: RegistryConfig,
    client: Client,
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // reqwest is built without a bundled provider; ring keeps the build small.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Registry {
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
        Self { config, client }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn auth(&self) -> RegistryAuth {
        match (&self.config.username, &self.config.password) {
            (Some(u), Some(p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        }
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

    /// Resolves `repository:tag` to its manifest digest and total layer size.
    pub async fn resolve(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<ResolvedImage, RegistryError> {
        let full = format!("{repository}:{tag}");
        let reference: Reference = full.parse().map_err(|e: oci_client::ParseError| {
            RegistryError::BadReference(full.clone(), e.to_string())
        })?;
        let (manifest, digest) = self
            .client
            .pull_image_manifest(&reference, &self.auth())
            .await?;
        let size = manifest.layers.iter().map(|l| l.size).sum::<i64>() + manifest.config.size;
        Ok(ResolvedImage { digest, size })
    }

    /// Tags of one repository.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let reference: Reference =
            format!("{repository}:latest")
                .parse()
                .map_err(|e: oci_client::ParseError| {
                    RegistryError::BadReference(repository.into(), e.to_string())
                })?;
        let resp = self
            .client
            .list_tags(&reference, &self.auth(), None, None)
            .await?;
        Ok(resp.tags)
    }
}
