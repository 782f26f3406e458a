//! Manifests: fetching (with platform selection from an index), digest checks and the summary
//! trythis uses for sizes and retention.

use crate::http::{read_limited, Endpoint, MANIFEST_LIMIT};
use crate::names::valid_digest;
use crate::RegistryError;
use reqwest::header;
use sha2::{Digest as _, Sha256};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The platform trythis runs sandboxes on.
const OS: &str = "linux";
const ARCH: &str = "amd64";

/// One layer of an image: what it is and how much it costs to store and pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub digest: String,
    pub media_type: String,
    /// Compressed size in bytes, as declared by the manifest.
    pub size: u64,
}

/// What an image is made of, for size limits and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifestInfo {
    /// Digest of the linux/amd64 image manifest: what sandboxes are started from.
    pub digest: String,
    /// Media type of that image manifest (OCI or Docker v2).
    pub media_type: String,
    /// Digest of the index / manifest list the reference named, when it named one.
    pub index_digest: Option<String>,
    pub config_digest: String,
    pub config_size: u64,
    pub layers: Vec<LayerInfo>,
    /// Config plus all layers, compressed: what the image takes in a registry.
    pub total_size: u64,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    manifests: Option<Vec<IndexEntry>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    digest: String,
    platform: Option<Platform>,
}

#[derive(serde::Deserialize)]
struct Platform {
    os: String,
    architecture: String,
}

/// An image manifest with its bytes (an import pushes them unchanged, keeping the digest).
pub(crate) struct Fetched {
    pub info: ImageManifestInfo,
    pub raw: RawFetched,
    /// Config first, then layers, without repeats: the blobs the image needs.
    pub blobs: Vec<Descriptor>,
}

/// A manifest exactly as the registry stored it.
pub(crate) struct RawFetched {
    pub body: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

fn sha256_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// `GET /v2/{repo}/manifests/{reference}` as stored, its digest checked against the content.
pub(crate) async fn fetch_raw(
    ep: &Endpoint,
    repo: &str,
    reference: &str,
) -> Result<RawFetched, RegistryError> {
    let url = ep.v2(&format!("{repo}/manifests/{reference}"));
    let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
    let res = ep
        .send(&format!("repository:{repo}:pull"), |c| {
            c.get(&url).header(header::ACCEPT, &accept)
        })
        .await?;
    if !res.status().is_success() {
        let sep = if valid_digest(reference) { '@' } else { ':' };
        let what = format!("{}{sep}{reference}", ep.name(repo));
        return Err(ep.error(res, &what).await);
    }
    let header_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let header_digest = res
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_limited(res, MANIFEST_LIMIT).await?;
    let digest = sha256_digest(&body);
    let expected = if valid_digest(reference) {
        Some(reference.to_string())
    } else {
        header_digest.filter(|d| d.starts_with("sha256:"))
    };
    if let Some(expected) = expected {
        if expected != digest {
            return Err(RegistryError::Protocol(format!(
                "{repo}:{reference}: manifest content has digest {digest}, expected {expected}"
            )));
        }
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
    }
    let typed: Typed = serde_json::from_slice(&body)
        .map_err(|e| RegistryError::Protocol(format!("{repo}:{reference}: bad manifest: {e}")))?;
    let media_type = typed
        .media_type
        .or(header_type)
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    Ok(RawFetched {
        body,
        digest,
        media_type,
    })
}

/// The linux/amd64 image manifest `reference` names (directly or through an index).
pub(crate) async fn fetch(
    ep: &Endpoint,
    repo: &str,
    reference: &str,
) -> Result<ImageManifestInfo, RegistryError> {
    Ok(fetch_full(ep, repo, reference).await?.info)
}

/// [`fetch`], with the manifest's bytes and the blobs it needs.
pub(crate) async fn fetch_full(
    ep: &Endpoint,
    repo: &str,
    reference: &str,
) -> Result<Fetched, RegistryError> {
    let top = fetch_raw(ep, repo, reference).await?;
    let parsed = parse(&top, repo, reference)?;
    if parsed.manifests.is_none() && !is_index(&top.media_type) {
        return summarize(top, parsed, None, repo, reference);
    }
    let Some(child) = pick_platform(&parsed) else {
        return Err(RegistryError::NotFound(format!(
            "{}:{reference} has no {OS}/{ARCH} image (trythis runs {OS}/{ARCH})",
            ep.name(repo)
        )));
    };
    let raw = fetch_raw(ep, repo, &child).await?;
    let inner = parse(&raw, repo, &child)?;
    if inner.manifests.is_some() || is_index(&raw.media_type) {
        return Err(RegistryError::Protocol(format!(
            "{repo}:{reference}: nested indexes are not supported"
        )));
    }
    summarize(raw, inner, Some(top.digest), repo, reference)
}

fn parse(raw: &RawFetched, repo: &str, reference: &str) -> Result<RawManifest, RegistryError> {
    let m: RawManifest = serde_json::from_slice(&raw.body)
        .map_err(|e| RegistryError::Protocol(format!("{repo}:{reference}: bad manifest: {e}")))?;
    if m.schema_version != Some(2) {
        return Err(RegistryError::Protocol(format!(
            "{repo}:{reference}: schema version {:?} is not supported (old Docker schema 1 images cannot be used)",
            m.schema_version
        )));
    }
    if let Some(t) = &m.media_type {
        if ![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&t.as_str()) {
            return Err(RegistryError::Protocol(format!(
                "{repo}:{reference}: {t} is not a container image"
            )));
        }
    }
    Ok(m)
}

/// The digest of the first linux/amd64 entry of an index.
fn pick_platform(index: &RawManifest) -> Option<String> {
    index
        .manifests
        .as_ref()?
        .iter()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == OS && p.architecture == ARCH)
                && valid_digest(&e.digest)
        })
        .map(|e| e.digest.clone())
}

fn summarize(
    raw: RawFetched,
    m: RawManifest,
    index_digest: Option<String>,
    repo: &str,
    reference: &str,
) -> Result<Fetched, RegistryError> {
    let bad = |why: &str| RegistryError::Protocol(format!("{repo}:{reference}: {why}"));
    let config = m.config.ok_or_else(|| bad("the manifest has no config"))?;
    let mut blobs: Vec<Descriptor> = Vec::with_capacity(m.layers.len() + 1);
    for d in std::iter::once(&config).chain(&m.layers) {
        if !valid_digest(&d.digest) {
            return Err(bad(&format!("unsupported blob digest {:?}", d.digest)));
        }
        if !blobs.iter().any(|b| b.digest == d.digest) {
            blobs.push(d.clone());
        }
    }
    let total_size = m
        .layers
        .iter()
        .try_fold(config.size, |acc, l| acc.checked_add(l.size))
        .ok_or_else(|| bad("layer sizes overflow"))?;
    let info = ImageManifestInfo {
        digest: raw.digest.clone(),
        media_type: raw.media_type.clone(),
        index_digest,
        config_digest: config.digest,
        config_size: config.size,
        layers: m
            .layers
            .into_iter()
            .map(|l| LayerInfo {
                digest: l.digest,
                media_type: l.media_type,
                size: l.size,
            })
            .collect(),
        total_size,
    };
    Ok(Fetched { info, raw, blobs })
}

/// For retention: the digest `tag` points at (what a delete removes) and, if that is an index,
/// the linux/amd64 manifest in it (what sandboxes run).
pub(crate) async fn tag_digests(
    ep: &Endpoint,
    repo: &str,
    tag: &str,
) -> Result<(String, Option<String>), RegistryError> {
    let top = fetch_raw(ep, repo, tag).await?;
    let child = if is_index(&top.media_type) {
        parse(&top, repo, tag).ok().and_then(|m| pick_platform(&m))
    } else {
        None
    };
    Ok((top.digest, child))
}
