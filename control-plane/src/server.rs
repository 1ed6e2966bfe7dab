//! `portcullis serve`: the bundle server Envoy pulls from.
//!
//! Bundles are plain files in `DATA_DIR/bundles/`, read from disk on every request: replicas can share the
//! directory, and what is served is exactly what is on disk. GET does not validate (the filter does, and must
//! refuse a corrupt bundle); PUT validates before anything is written.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use portcullis_policies::bundle::{self, MAX_BUNDLE_BYTES};
use portcullis_policies::Bundle;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::names;
use crate::store;
use crate::token::TokenCheck;

/// What every handler shares.
struct AppState {
    bundles_dir: PathBuf,
    token: TokenCheck,
}

impl AppState {
    fn bundle_path(&self, name: &str) -> PathBuf {
        self.bundles_dir.join(format!("{name}.bundle"))
    }
}

/// Extra detail a handler attaches to its response for the request's single log line.
#[derive(Clone)]
struct LogNote(String);

/// Runs the server on `listen` until SIGTERM or SIGINT, serving bundles from `data_dir/bundles`.
///
/// Prints `portcullis: serving on http://IP:PORT` to stdout once the socket is bound, so that `:0` is usable.
///
/// # Errors
///
/// If the bundles directory cannot be created, the address cannot be bound, or the runtime fails.
pub fn serve(listen: &str, data_dir: &Path, token: TokenCheck) -> Result<()> {
    let bundles_dir = data_dir.join("bundles");
    std::fs::create_dir_all(&bundles_dir)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot create {}: {e}", bundles_dir.display())))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(listen, AppState { bundles_dir, token }))
}

async fn run(listen: &str, state: AppState) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot listen on {listen}: {e}")))?;
    let addr =
        listener.local_addr().map_err(|e| Error::new(ErrorKind::Io, format!("cannot read the bound address: {e}")))?;
    announce(addr)?;
    log(format_args!("bundles in {}", state.bundles_dir.display()));
    axum::serve(listener, router(Arc::new(state)).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("server failed: {e}")))?;
    log(format_args!("stopped"));
    Ok(())
}

/// The one stdout line that tells a supervisor (or a test) where to connect.
fn announce(addr: SocketAddr) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "portcullis: serving on http://{addr}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot write to stdout: {e}")))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/bundles/{name}", get(get_bundle).put(put_bundle))
        .route("/healthz", get(|| async { "ok" }))
        // Nothing larger could load in the filter; bodies past this are refused while reading (413).
        .layer(DefaultBodyLimit::max(MAX_BUNDLE_BYTES))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Writes one log line to stderr; a closed stderr must not take the server down.
fn log(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "portcullis: {args}");
}

/// One line per request: peer, method, path, status, time, and the handler's note. Never headers or bodies.
async fn log_request(ConnectInfo(peer): ConnectInfo<SocketAddr>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_millis();
    let status = response.status().as_u16();
    match response.extensions().get::<LogNote>() {
        Some(LogNote(note)) => log(format_args!("{peer} {method} {path} {status} {elapsed}ms {note}")),
        None => log(format_args!("{peer} {method} {path} {status} {elapsed}ms")),
    }
    response
}

async fn get_bundle(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !names::is_valid(&name) {
        return json_error(StatusCode::BAD_REQUEST, names::invalid_message(&name));
    }
    let path = state.bundle_path(&name);
    let bytes = match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            return json_error(StatusCode::NOT_FOUND, format!("no bundle named '{name}'"));
        }
        Ok(Err(e)) => return internal_error(format!("cannot read bundle: {e}")),
        Err(e) => return internal_error(format!("read task failed: {e}")),
    };
    // The ETag hashes the whole file, so it changes with any byte on disk, valid bundle or not.
    let etag = format!("\"{}\"", bundle::hex(&Sha256::digest(&bytes)));
    let Ok(etag_value) = HeaderValue::from_str(&etag) else {
        return internal_error("ETag is not a valid header value".to_owned());
    };
    if if_none_match_hits(headers.get(header::IF_NONE_MATCH), &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
            (header::ETAG, etag_value),
            // Caches may keep it but must ask again: a new PUT must reach every Envoy.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        bytes,
    )
        .into_response()
}

/// Whether an `If-None-Match` value matches `etag` (`*`, a comma list, weak `W/` tags compared weakly).
fn if_none_match_hits(value: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The body of a successful upload.
#[derive(Serialize)]
struct Stored<'a> {
    name: &'a str,
    revision: u64,
    sha256: String,
}

async fn put_bundle(State(state): State<Arc<AppState>>, UrlPath(name): UrlPath<String>, request: Request) -> Response {
    // Authorize before reading a byte of the body.
    let authorized =
        request.headers().get(header::AUTHORIZATION).is_some_and(|value| state.token.authorizes(value.as_bytes()));
    if !authorized {
        let mut response = json_error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token".to_owned());
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    if !names::is_valid(&name) {
        return json_error(StatusCode::BAD_REQUEST, names::invalid_message(&name));
    }
    if declared_length(request.headers()).is_some_and(|len| len > MAX_BUNDLE_BYTES as u64) {
        return too_large();
    }
    let bytes = match Bytes::from_request(request, &state).await {
        Ok(bytes) => bytes,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => return too_large(),
        Err(rejection) => return json_error(rejection.status(), rejection.body_text()),
    };
    let loaded = match Bundle::from_bytes(&bytes) {
        Ok(loaded) => loaded,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("invalid bundle: {e}")),
    };
    let target = state.bundle_path(&name);
    let temp = store::temp_path(&state.bundles_dir, &name);
    match tokio::task::spawn_blocking(move || store::write_atomically(&target, &temp, &bytes)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return internal_error(format!("cannot store bundle: {e}")),
        Err(e) => return internal_error(format!("store task failed: {e}")),
    }
    let stored = Stored { name: &name, revision: loaded.revision(), sha256: bundle::hex(loaded.digest()) };
    let note = LogNote(format!("stored revision {} sha256 {}", stored.revision, stored.sha256));
    let mut response = json(StatusCode::OK, &stored);
    response.extensions_mut().insert(note);
    response
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large() -> Response {
    json_error(StatusCode::PAYLOAD_TOO_LARGE, format!("bundle larger than the {MAX_BUNDLE_BYTES}-byte limit"))
}

/// The JSON error body every failure uses: `{"error": message}`.
#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn json_error(status: StatusCode, error: String) -> Response {
    json(status, &ErrorBody { error })
}

/// A 500 whose cause goes to the log line only: file-system details are not the client's business.
fn internal_error(cause: String) -> Response {
    let mut response = json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned());
    response.extensions_mut().insert(LogNote(cause));
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], Body::from(body))
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Resolves on SIGTERM or SIGINT; in-flight requests then finish before `serve` returns.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a handler, never resolve: shutting down at once would be worse.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    log(format_args!("shutting down"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(value: &str) -> bool {
        if_none_match_hits(Some(&HeaderValue::from_str(value).unwrap()), "\"abc\"")
    }

    #[test]
    fn if_none_match_forms() {
        assert!(hits("\"abc\""));
        assert!(hits("*"));
        assert!(hits("W/\"abc\""));
        assert!(hits("\"x\", \"abc\""));
        assert!(hits("\"x\",W/\"abc\""));
        assert!(!hits("\"abd\""));
        assert!(!hits("abc"));
        assert!(!hits(""));
        assert!(!if_none_match_hits(None, "\"abc\""));
    }
}
