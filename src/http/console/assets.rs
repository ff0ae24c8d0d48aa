//! The console's static files, compiled into the binary: its stylesheet,
//! htmx and htmx's SSE extension (both 0BSD; their licence files are
//! served beside them and kept in `assets/`).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../../templates/console/console.css"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/htmx-2.0.11.min.js"),
    ),
    (
        "htmx-ext-sse.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/htmx-ext-sse-2.2.4.min.js"),
    ),
    (
        "htmx.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_str!("assets/htmx.LICENSE"),
    ),
    (
        "htmx-ext-sse.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_str!("assets/htmx-ext-sse.LICENSE"),
    ),
];

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => {
            let mut response = (*body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            // Versioned by the binary: an hour is short enough for an upgrade.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            response
        }
        None => (StatusCode::NOT_FOUND, "no such console file").into_response(),
    }
}
