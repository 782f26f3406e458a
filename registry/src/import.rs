//! Importing one public image from another registry into ours: the linux/amd64 manifest is
//! resolved (an index is narrowed to it), the declared size checked against the limit before
//! anything is copied, then every blob streamed through in chunks (never a whole layer in memory),
//! each checked against its declared digest and size, and last the manifest, unchanged.

use crate::http::{build_source_client, read_limited, response_error, transport, Endpoint};
use crate::manifest::{fetch_full, Descriptor};
use crate::names::ImageSource;
use crate::{human_size, RegistryError, ResolvedImage};
use reqwest::{header, StatusCode, Url};
use sha2::{Digest as _, Sha256};

/// Bytes per upload request (distribution's chunked upload; Harbor accepts any size).
const CHUNK: usize = 8 << 20;

/// Where an import's progress goes: one line per step ("copying layer 2/5 (31 MB)").
pub type ImportLog<'a> = dyn Fn(&str) + Send + Sync + 'a;

/// Where an import reads from and how it gets there.
#[derive(Debug, Clone, Copy)]
pub struct ImportFrom<'a> {
    pub source: &'a ImageSource,
    /// Plain HTTP: only ever for a registry an operator listed that way (tests: the local one).
    pub plain_http: bool,
    /// `http://name:token@host:port` of the egress proxy every connection goes through (None:
    /// direct, for the crate's own tests on loopback).
    pub proxy: Option<&'a str>,
}

pub(crate) async fn copy_image(
    from: &ImportFrom<'_>,
    dst: &Endpoint,
    dst_repo: &str,
    dst_tag: &str,
    max_bytes: u64,
    log: &ImportLog<'_>,
) -> Result<ResolvedImage, RegistryError> {
    let src = from.source;
    let host = src.api_host();
    let plain_origin = from.plain_http.then_some(host);
    let client = build_source_client(from.proxy, plain_origin);
    if let Err(e) = &client {
        return Err(RegistryError::Protocol(format!(
            "the import's HTTP client could not be built: {e}"
        )));
    }
    let ep = Endpoint::source(client, from.plain_http, host);
    log(&format!("Resolving {src}…"));
    let image = fetch_full(&ep, &src.repository, src.reference()).await?;
    let info = &image.info;
    match &info.index_digest {
        Some(index) => log(&format!(
            "Resolved {index} (an index) to its linux/amd64 image {}",
            info.digest
        )),
        None => log(&format!("Resolved to {}", info.digest)),
    }
    let size = info.total_size;
    if size > max_bytes {
        return Err(RegistryError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    let layers = image.blobs.len().saturating_sub(1);
    log(&format!(
        "{layers} layer{} and a config, {} in all (the limit is {})",
        if layers == 1 { "" } else { "s" },
        human_size(size),
        human_size(max_bytes)
    ));
    let mut n = 0;
    for blob in &image.blobs {
        let what = if blob.digest == info.config_digest {
            "the config".to_string()
        } else {
            n += 1;
            format!("layer {n}/{layers}")
        };
        if blob_exists(dst, dst_repo, &blob.digest).await? {
            log(&format!(
                "{what} ({}) is already in the platform's registry: {}",
                human_size(blob.size),
                blob.digest
            ));
            continue;
        }
        log(&format!("copying {what} ({})", human_size(blob.size)));
        copy_blob(&ep, &src.repository, dst, dst_repo, blob).await?;
        log(&format!("verified {}", blob.digest));
    }
    let raw = &image.raw;
    put_manifest(
        dst,
        dst_repo,
        dst_tag,
        &raw.media_type,
        &raw.body,
        &raw.digest,
    )
    .await?;
    log(&format!("verified manifest {}", raw.digest));
    tracing::info!(source = %src, dest = %dst.name(dst_repo), tag = dst_tag, digest = %raw.digest, size, "image imported");
    Ok(ResolvedImage {
        digest: info.digest.clone(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
    })
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// `HEAD /v2/{repo}/blobs/{digest}`: 200 → present, 404 → absent.
async fn blob_exists(ep: &Endpoint, repo: &str, digest: &str) -> Result<bool, RegistryError> {
    let url = ep.v2(&format!("{repo}/blobs/{digest}"));
    let res = ep
        .send(&format!("repository:{repo}:pull"), |c| c.head(&url))
        .await?;
    match res.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(response_error(res, &format!("blob {digest} in {}", ep.name(repo))).await),
    }
}

/// Resolves an upload `Location` (absolute or relative to the registry).
fn location(ep: &Endpoint, res: &reqwest::Response) -> Result<Url, RegistryError> {
    let loc = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol("upload answer without a Location".into()))?;
    Url::parse(&ep.base)
        .and_then(|base| base.join(loc))
        .map_err(|e| RegistryError::Protocol(format!("bad upload Location {loc:?}: {e}")))
}

/// Streams one blob from `src` to `dst`; the upload is committed only if the bytes received have
/// exactly the declared size and digest (a registry refuses a commit whose digest differs, too).
async fn copy_blob(
    src: &Endpoint,
    src_repo: &str,
    dst: &Endpoint,
    dst_repo: &str,
    blob: &Descriptor,
) -> Result<(), RegistryError> {
    let digest = &blob.digest;
    let src_url = src.v2(&format!("{src_repo}/blobs/{digest}"));
    let mut download = src
        .send(&format!("repository:{src_repo}:pull"), |c| c.get(&src_url))
        .await?;
    if !download.status().is_success() {
        let what = format!("blob {digest} of {}", src.name(src_repo));
        return Err(src.error(download, &what).await);
    }

    let scope = push_scope(dst_repo);
    let start_url = dst.v2(&format!("{dst_repo}/blobs/uploads/"));
    let res = dst
        .send(&scope, |c| {
            c.post(&start_url).header(header::CONTENT_LENGTH, "0")
        })
        .await?;
    if res.status() != StatusCode::ACCEPTED {
        return Err(response_error(res, &format!("starting the upload of {digest}")).await);
    }
    let mut upload = location(dst, &res)?;

    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut sent: u64 = 0;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK.min(blob.size as usize));
    loop {
        let chunk = download.chunk().await.map_err(transport)?;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            received += chunk.len() as u64;
            if received > blob.size {
                return Err(RegistryError::Protocol(format!(
                    "blob {digest} is larger than the {} bytes its manifest declares",
                    blob.size
                )));
            }
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        if buf.len() >= CHUNK || (done && !buf.is_empty()) {
            upload = patch(dst, &scope, upload, sent, &buf, digest).await?;
            sent += buf.len() as u64;
            buf.clear();
        }
        if done {
            break;
        }
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if received != blob.size || &actual != digest {
        return Err(RegistryError::Protocol(format!(
            "blob {digest} arrived as {received} bytes with digest {actual} (declared: {} bytes): refused",
            blob.size
        )));
    }
    let mut commit = upload;
    commit.query_pairs_mut().append_pair("digest", digest);
    let res = dst
        .send(&scope, |c| {
            c.put(commit.clone()).header(header::CONTENT_LENGTH, "0")
        })
        .await?;
    if res.status() != StatusCode::CREATED {
        return Err(response_error(res, &format!("finishing the upload of {digest}")).await);
    }
    Ok(())
}

async fn patch(
    dst: &Endpoint,
    scope: &str,
    upload: Url,
    offset: u64,
    data: &[u8],
    digest: &str,
) -> Result<Url, RegistryError> {
    let end = offset + data.len() as u64 - 1;
    let res = dst
        .send(scope, |c| {
            c.patch(upload.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, format!("{offset}-{end}"))
                .body(data.to_vec())
        })
        .await?;
    if res.status() != StatusCode::ACCEPTED {
        return Err(response_error(res, &format!("uploading {digest}")).await);
    }
    location(dst, &res)
}

/// `PUT /v2/{repo}/manifests/{tag}` with the manifest bytes unchanged (so the digest stays); the
/// digest the registry reports must be `digest`.
async fn put_manifest(
    dst: &Endpoint,
    repo: &str,
    tag: &str,
    media_type: &str,
    body: &[u8],
    digest: &str,
) -> Result<(), RegistryError> {
    let url = dst.v2(&format!("{repo}/manifests/{tag}"));
    let res = dst
        .send(&push_scope(repo), |c| {
            c.put(&url)
                .header(header::CONTENT_TYPE, media_type)
                .body(body.to_vec())
        })
        .await?;
    if res.status() != StatusCode::CREATED {
        let what = format!("pushing the manifest of {}:{tag}", dst.name(repo));
        return Err(response_error(res, &what).await);
    }
    let reported = res
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = read_limited(res, 64 << 10).await;
    match reported {
        Some(r) if r != digest => Err(RegistryError::Protocol(format!(
            "the registry stored the manifest as {r}, expected {digest}"
        ))),
        _ => Ok(()),
    }
}
