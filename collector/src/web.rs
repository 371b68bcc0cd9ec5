//! The dashboard: `GET /` (the page) and `GET /assets/NAME` (its script and
//! style sheet), all compiled into the binary from `collector/assets/`, so
//! nothing is fetched from anywhere else. The page is plain JavaScript that
//! reads the read-only JSON API (`/v1/status`, `/v1/timeline`,
//! `/v1/outages`) and draws SVG; a Content-Security-Policy keeps it from
//! loading anything that the collector does not serve itself.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use darkwatch_schema::ApiError;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// Only same-origin scripts, styles and requests; no inline code, no frames.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// An embedded file: content type and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The asset served at `/assets/{name}`, if there is one.
pub fn asset(name: &str) -> Option<Asset> {
    let (content_type, body) = match name {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// The page served at `/`.
pub fn index() -> Asset {
    Asset {
        content_type: "text/html; charset=utf-8",
        body: INDEX_HTML,
    }
}

/// Routes of the dashboard, for any router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve(index()) }))
        .route("/assets/{name}", get(get_asset))
}

async fn get_asset(Path(name): Path<String>) -> Response {
    match asset(&name) {
        Some(a) => serve(a),
        None => (
            StatusCode::NOT_FOUND,
            Json(ApiError {
                error: format!("no asset named {name:?}"),
                code: None,
            }),
        )
            .into_response(),
    }
}

fn serve(a: Asset) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // Small files embedded in the binary: revalidate rather than
            // keep a stale script after an upgrade.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        a.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_known_by_name_only() {
        let js = asset("app.js").expect("app.js");
        assert!(js.content_type.starts_with("text/javascript"));
        assert!(js.body.contains("/v1/timeline"));
        assert!(asset("style.css").is_some());
        assert!(asset("../src/web.rs").is_none());
        assert!(asset("").is_none());
        assert!(asset("index.html").is_none());
    }

    #[test]
    fn page_loads_only_its_own_assets() {
        let page = index().body;
        assert!(page.contains("/assets/app.js") && page.contains("/assets/style.css"));
        // Nothing from another origin: every src/href is a local path.
        for attr in ["src=\"", "href=\""] {
            for (i, _) in page.match_indices(attr) {
                let rest = &page[i + attr.len()..];
                assert!(
                    rest.starts_with('/'),
                    "non-local {attr}{}",
                    &rest[..rest.len().min(40)]
                );
            }
        }
        for body in [
            page,
            asset("app.js").unwrap().body,
            asset("style.css").unwrap().body,
        ] {
            // The SVG namespace is a name, not something fetched.
            let body = body.replace("http://www.w3.org/2000/svg", "");
            assert!(!body.contains("http://") && !body.contains("https://"));
        }
    }
}
