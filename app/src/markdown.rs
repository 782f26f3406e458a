//! Safe Markdown: descriptions are maintainers' input, so raw HTML is shown as text, never run.
use pulldown_cmark::{html, Event, Options, Parser, Tag};

/// Renders Markdown to HTML with every raw HTML fragment escaped and unsafe link schemes removed.
pub fn render(md: &str) -> String {
    let parser =
        Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(|ev| {
            match ev {
                Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }) => Event::Start(Tag::Link {
                    link_type,
                    dest_url: safe_url(dest_url),
                    title,
                    id,
                }),
                Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                }) => Event::Start(Tag::Image {
                    link_type,
                    dest_url: safe_url(dest_url),
                    title,
                    id,
                }),
                other => other,
            }
        });
    let mut out = String::with_capacity(md.len() * 2);
    html::push_html(&mut out, parser);
    out
}

fn safe_url(url: pulldown_cmark::CowStr<'_>) -> pulldown_cmark::CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let allowed = lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:")
        || lower.starts_with('/')
        || lower.starts_with('#')
        || !lower.contains(':');
    if allowed {
        url
    } else {
        "#".into()
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn script_tags_are_escaped_not_emitted() {
        let html = render("Hello <script>alert(1)</script> **bold**");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
    }

    #[test]
    fn html_blocks_and_event_handlers_are_text() {
        let html = render("<img src=x onerror=alert(1)>\n\n<div onclick=\"x()\">hi</div>");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<div"), "{html}");
    }

    #[test]
    fn javascript_links_are_neutralised() {
        let html = render("[click](javascript:alert(1)) [ok](https://example.org)");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://example.org\""));
    }
}
