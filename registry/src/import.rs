//! Copying one image between registries: blobs streamed through in chunks (never a whole layer
//! in memory), each checked against its declared digest and size, then the manifest unchanged.

use crate::http::{read_limited, response_error, transport, Endpoint};
use crate::manifest::Descriptor;
use crate::RegistryError;
use reqwest::{header, StatusCode, Url};
use sha2::{Digest as _, Sha256};

/// Bytes per upload request (distribution's chunked upload; Harbor accepts any size).
const CHUNK: usize = 8 << 20;

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// `HEAD /v2/{repo}/blobs/{digest}`: 200 → present, 404 → absent.
pub(crate) async fn blob_exists(
    ep: &Endpoint,
    repo: &str,
    digest: &str,
) -> Result<bool, RegistryError> {
    let url = ep.v2(&format!("{repo}/blobs/{digest}"));
    let res = ep
        .send(&format!("repository:{repo}:pull"), |c| c.head(&url))
        .await?;
    match res.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(response_error(ep, res, &format!("blob {digest} in {}", ep.name(repo))).await),
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

/// Streams one blob from `src` to `dst`, checking size and digest on the way.
pub(crate) async fn copy_blob(
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
        return Err(response_error(src, download, &what).await);
    }

    let scope = push_scope(dst_repo);
    let start_url = dst.v2(&format!("{dst_repo}/blobs/uploads/"));
    let res = dst
        .send(&scope, |c| {
            c.post(&start_url).header(header::CONTENT_LENGTH, "0")
        })
        .await?;
    if res.status() != StatusCode::ACCEPTED {
        return Err(response_error(dst, res, &format!("starting the upload of {digest}")).await);
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
            "blob {digest} arrived as {received} bytes with digest {actual} (declared: {} bytes)",
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
        return Err(response_error(dst, res, &format!("finishing the upload of {digest}")).await);
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
        return Err(response_error(dst, res, &format!("uploading {digest}")).await);
    }
    location(dst, &res)
}

/// `PUT /v2/{repo}/manifests/{tag}` with the manifest bytes unchanged (so the digest stays); the
/// digest the registry reports must be `digest`.
pub(crate) async fn put_manifest(
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
        return Err(response_error(dst, res, &what).await);
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
