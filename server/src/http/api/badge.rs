//! `GET /badge/{slug}.svg`: the README badge "try this | in your browser" (or `?style=count`:
//! "try this | N tries"). Unknown projects get a grey "not found" badge, never an error page.
use crate::http::state::AppState;
use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

#[derive(serde::Deserialize)]
pub struct BadgeParams {
    style: Option<String>,
}

/// Escapes text for SVG/XML.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Approximate width of Verdana 11px text (the badge font), in pixels.
fn text_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if c.is_ascii_uppercase() || c == 'm' || c == 'w' {
                9
            } else {
                7
            }
        })
        .sum::<usize>()
        + 10
}

/// A two-part flat badge. `title` names the project for screen readers.
pub fn render(label: &str, message: &str, color: &str, title: &str) -> String {
    let (lw, mw) = (text_width(label), text_width(message));
    let w = lw + mw;
    let (label, message, title) = (xml_escape(label), xml_escape(message), xml_escape(title));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {message}"><title>{title}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#24292f"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{mx}" y="14">{message}</text></g></svg>"##,
        lx = lw / 2,
        mx = lw + mw / 2,
    )
}

pub async fn badge(
    State(st): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<BadgeParams>,
    headers: HeaderMap,
) -> Response {
    let slug = file.strip_suffix(".svg").unwrap_or(&file);
    // The same for every reader: one database lookup per badge per couple of seconds.
    let key = format!("{slug}\n{}", q.style.as_deref().unwrap_or(""));
    let (svg, etag) = match st.pages.badges.get(&st.pages, &key) {
        Some(hit) => hit,
        None => {
            let generation = st.pages.generation();
            let svg = svg_for(&st, slug, q.style.as_deref()).await;
            let etag = format!("\"{:x}\"", fxhash(&svg));
            st.pages
                .badges
                .put(&st.pages, generation, key, (svg.clone(), etag.clone()));
            (svg, etag)
        }
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    let common = [
        (
            header::CONTENT_TYPE,
            "image/svg+xml; charset=utf-8".to_string(),
        ),
        (header::CACHE_CONTROL, "public, max-age=300".to_string()),
        (header::ETAG, etag),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, common).into_response()
    } else {
        (StatusCode::OK, common, svg).into_response()
    }
}

/// The badge of `slug` in `style`, from the project's current row.
async fn svg_for(st: &AppState, slug: &str, style: Option<&str>) -> String {
    let project = match db::projects::by_slug(&st.db, slug).await {
        Ok(p) => p.filter(|p| p.status != db::ProjectStatus::Hidden),
        Err(e) => {
            tracing::warn!(error = %e, "badge lookup failed");
            None
        }
    };
    match &project {
        Some(p) if style == Some("count") => {
            let n = if p.tries == 1 {
                "1 try".to_string()
            } else {
                format!("{} tries", p.tries)
            };
            render(
                "try this",
                &n,
                "#2ea043",
                &format!("Try {} in your browser", p.name),
            )
        }
        Some(p) => render(
            "try this",
            "in your browser",
            "#2ea043",
            &format!("Try {} in your browser", p.name),
        ),
        None => render("try this", "not found", "#9f9f9f", "Project not found"),
    }
}

/// Small non-cryptographic hash for the ETag.
fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badge_escapes_the_project_name() {
        let svg = render(
            "try this",
            "in your browser",
            "#2ea043",
            "Try <b>&\"x\"</b>",
        );
        assert!(
            svg.contains("Try &lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;"),
            "{svg}"
        );
        assert!(!svg.contains("<b>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
