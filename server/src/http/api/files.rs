//! Files in and out of a sandbox, and its open ports (owner or admin):
//! - `PUT /api/sandboxes/{id}/files?path=…` (body = the bytes, `Content-Length` required, at most
//!   `TRYTHIS_UPLOAD_MAX_MB`) → 201 `{path, size}`; a relative path lands in the shell's directory.
//! - `GET /api/sandboxes/{id}/files?path=…` → the file (a directory as a tar), as an attachment.
//! - `GET /api/sandboxes/{id}/ports` → `{ports: [{port, preview_url}], upload_max_bytes}`.
use crate::http::error::{ApiError, ApiResult};
use crate::http::state::AppState;
use crate::sandbox::files::Download;
use app::model::{Identity, OpenPort, SandboxPorts};
use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};

#[derive(serde::Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    path: String,
}

async fn running(st: &AppState, me: &Identity, id: &str) -> ApiResult<db::sandboxes::Model> {
    let s = st
        .sandboxes
        .owned(&super::sandboxes::caller(me), id)
        .await?;
    if !s.active {
        return Err(ApiError::bad("sandbox_ended", "This sandbox has ended."));
    }
    Ok(s)
}

/// The sandbox's listening ports with their preview addresses (none when previews are off).
pub async fn open_ports(st: &AppState, id: &str) -> Vec<OpenPort> {
    if st.previews.is_none() {
        return Vec::new();
    }
    st.sandboxes
        .open_ports(id)
        .await
        .into_iter()
        .map(|port| OpenPort {
            port,
            preview_url: format!("{}/preview/{id}/{port}", st.config.public_url),
        })
        .collect()
}

pub async fn ports(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxPorts>> {
    let s = st
        .sandboxes
        .owned(&super::sandboxes::caller(&me), &id)
        .await?;
    let ports = if s.active {
        open_ports(&st, &id).await
    } else {
        Vec::new()
    };
    Ok(Json(SandboxPorts {
        ports,
        upload_max_bytes: st.config.upload_max_bytes,
        previews: st.previews.is_some(),
    }))
}

fn mebibytes(n: u64) -> String {
    format!("{} MiB", n / (1024 * 1024))
}

pub async fn upload(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    crate::sandbox::files::check_path(&q.path)?;
    running(&st, &me, &id).await?;
    let max = st.config.upload_max_bytes;
    let size = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::LengthRequired(
                "Send the file's size as Content-Length (a streamed upload without it is refused)."
                    .into(),
            )
        })?;
    if size > max {
        return Err(ApiError::TooLarge(format!(
            "That file is {} MiB; a sandbox takes uploads of at most {}.",
            size.div_ceil(1024 * 1024),
            mebibytes(max)
        )));
    }
    let landed = st
        .sandboxes
        .put_file(&id, &q.path, size, body.into_data_stream())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "path": landed, "size": size })),
    )
        .into_response())
}

/// A file name as a `Content-Disposition` may carry it: the plain form without quotes or
/// control characters, and the exact one in RFC 5987's `filename*`.
fn disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

pub async fn download(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    crate::sandbox::files::check_path(&q.path)?;
    running(&st, &me, &id).await?;
    let d = st.sandboxes.get_file(&id, &q.path).await?;
    let (name, kind, length) = match &d.what {
        Download::File { name, size } => (name.clone(), "application/octet-stream", Some(*size)),
        Download::Directory { name } => (format!("{name}.tar"), "application/x-tar", None),
    };
    let mut resp = Response::new(Body::from_stream(d.body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Ok(v) = HeaderValue::from_str(&disposition(&name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // Whatever the bytes are, they never run as a page of the site.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn file_names_cannot_break_the_header() {
        assert_eq!(
            disposition("a\"b\r\nc.txt"),
            "attachment; filename=\"a_b__c.txt\"; filename*=UTF-8''a%22b%0D%0Ac.txt"
        );
        assert!(disposition("über.csv").contains("filename*=UTF-8''%C3%BCber.csv"));
    }
}
