//! The web UI, embedded in the binary: `ui/dist` as built by `build.rs`.
//!
//! `rust-embed` rather than `include_dir`: it hands out each file's MIME type
//! and SHA-256 (used as the ETag), takes its folder from the build script
//! (`LOUPE_UI_DIR`, so a machine without npm embeds a "how to build" page
//! instead of failing), and with `debug-embed` embeds in debug builds too,
//! so every `loupe` binary is self-contained.
//!
//! Vite names every asset under `assets/` after its content hash, so those
//! are cached forever (`immutable`); `index.html` is revalidated on every
//! load so a new binary's UI shows up at once. Any other GET outside
//! `/api/` is a page of the single-page app and gets `index.html`.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "$LOUPE_UI_DIR"]
struct Assets;

/// The router's fallback: UI files and pages for GET/HEAD outside `/api/`,
/// the API's JSON 404 for everything else.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let is_api = path == "/api" || path.starts_with("/api/");
    if is_api || (method != Method::GET && method != Method::HEAD) {
        return crate::error::no_route(uri).await.into_response();
    }
    let file = path.trim_start_matches('/');
    if !file.is_empty()
        && file != "index.html"
        && let Some(asset) = Assets::get(file)
    {
        let immutable = file.starts_with("assets/");
        return respond(asset, immutable, &headers);
    }
    // A missing hashed asset is a stale page asking for an old build's file:
    // a 404 tells it so, where index.html would be parsed as script.
    if file.starts_with("assets/") {
        return crate::error::no_route(uri).await.into_response();
    }
    match Assets::get("index.html") {
        Some(index) => respond(index, false, &headers),
        None => crate::error::no_route(uri).await.into_response(),
    }
}

fn respond(file: rust_embed::EmbeddedFile, immutable: bool, req: &HeaderMap) -> Response {
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (StatusCode::OK, headers, file.data.into_owned()).into_response()
}
