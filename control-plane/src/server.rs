//! `portcullis serve`: the bundle server Envoy pulls from.
//!
//! Everything lives in the data directory ([`crate::datadir`] describes the layout), so replicas can share the
//! directory. GET serves exactly what is on disk: each request checks the served file's identity, and a version
//! is read and hashed once, then served from one shared copy ([`crate::objects`]). GET does not validate (the
//! filter does, and must refuse a corrupt bundle); PUT validates before anything is written, including that the
//! bundle's signed policy name is the name it is put under and that its revision is not far ahead of the clock.
//! Connections, header and body times and waiting long polls are bounded ([`crate::listener`]).
//!
//! # HTTP API
//!
//! | request | what |
//! |---|---|
//! | `GET /v1/bundles/{name}[?wait=S]` | The served file with its `ETag`; a matching `If-None-Match` gets 304, after waiting up to `S` (≤ 60) seconds for a change when `wait` is given (503 past 10,000 waiters, 429 past `--max-waiters-per-client`, both with `Retry-After`). |
//! | `PUT /v1/bundles/{name}[?rollback=true\|?rollback_of=R]` | Bearer token. Validates; 400 if the bundle's policy name is not `{name}` or its revision is more than `--max-revision-ahead` ahead of the clock; 409 if the revision is not newer; 408 if the body is slower than `--body-timeout`. Stores, records history. |
//! | `GET /v1/bundles/{name}/history` | `{"name", "entries": [...]}`, oldest first. |
//! | `GET /v1/objects/{sha256}` | An immutable stored bundle, by the SHA-256 of its bytes. |
//! | `POST /v1/status` | A node's status report (at most 4 KiB of JSON; 408 if slower than `--body-timeout`). |
//! | `GET /v1/status` | Every node's last report, and the current revision of every bundle. |
//! | `GET /healthz` | `ok`. |

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use portcullis_policies::bundle::{self, MAX_BUNDLE_BYTES};
use portcullis_policies::signing::{self, TrustedKey};
use portcullis_policies::Bundle;
use serde::Serialize;
use tokio::sync::watch;

use crate::client::{self, ACTOR_HEADER, MAX_ACTOR_LEN};
use crate::clock;
use crate::datadir::{self, DataDir, Outcome, PublishError, Rollback, Upload};
use crate::error::{Error, ErrorKind, Result};
use crate::fleet::{Fleet, FleetView, Latest, Report, MAX_REPORT_BYTES};
use crate::listener::{self, Limits};
use crate::longpoll::{self, Full, Watchers, MAX_WAIT_SECS};
use crate::names;
use crate::objects::{Objects, Served};
use crate::report::History;
use crate::token::TokenCheck;

/// What every handler shares.
struct AppState {
    data: DataDir,
    token: TokenCheck,
    /// When not empty, PUT accepts only bundles signed by one of these keys.
    trusted: Vec<TrustedKey>,
    watchers: Arc<Watchers>,
    /// The shared copy of every version served.
    objects: Arc<Objects>,
    fleet: Fleet,
    /// How far ahead of this server's clock (Unix seconds) a pushed revision may be.
    max_revision_ahead_secs: u64,
    limits: Limits,
    /// Becomes `true` on SIGTERM/SIGINT: long polls then answer at once instead of holding up the shutdown.
    shutdown: watch::Receiver<bool>,
}

/// Extra detail a handler attaches to its response for the request's single log line.
#[derive(Clone)]
struct LogNote(String);

/// How `portcullis serve` runs.
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The upload token.
    pub token: TokenCheck,
    /// When not empty, uploads must be signed by one of these keys.
    pub trusted: Vec<TrustedKey>,
    /// How far ahead of the server's clock a pushed revision (Unix seconds) may be.
    pub max_revision_ahead: Duration,
    /// What clients may hold: connections, header and body times, long polls.
    pub limits: Limits,
}

/// Runs the server until SIGTERM or SIGINT, serving bundles from the data directory.
///
/// Prints `portcullis: serving on http://IP:PORT` to stdout once the socket is bound, so that `:0` is usable.
/// With `trusted` keys, uploads must be signed by one of them.
///
/// # Errors
///
/// If the data directory cannot be created, the address cannot be bound, or the runtime fails.
pub fn serve(options: ServeOptions) -> Result<()> {
    let data = DataDir::open(&options.data_dir).map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot create the data directory {}: {e}", options.data_dir.display()))
    })?;
    // Before the runtime starts threads: descriptors are what connections and long polls use up.
    let fd_limit = listener::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // File reads and stats: a few threads suffice, and ten thousand woken waiters must not start hundreds.
        .max_blocking_threads(32)
        .build()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(options, data, fd_limit))
}

async fn run(options: ServeOptions, data: DataDir, fd_limit: Option<u64>) -> Result<()> {
    let ServeOptions { listen, token, trusted, max_revision_ahead, limits, .. } = options;
    let tcp = listener::bind(&listen)
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot listen on {listen}: {e}")))?;
    let addr =
        tcp.local_addr().map_err(|e| Error::new(ErrorKind::Io, format!("cannot read the bound address: {e}")))?;
    announce(addr)?;
    log(format_args!("data in {}", data.root().display()));
    let (max_connections, lowered) = listener::connection_cap(limits.max_connections, fd_limit);
    if let Some(why) = lowered {
        log(format_args!("{why}"));
    }
    log(format_args!(
        "at most {max_connections} connections (RLIMIT_NOFILE {}), header timeout {}ms, body timeout {}ms, {} \
         waiting long polls per client",
        fd_limit.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        limits.header_timeout.as_millis(),
        limits.body_timeout.as_millis(),
        limits.max_waiters_per_client
    ));
    let (shutdown_tx, shutdown) = watch::channel(false);
    let watchers = Arc::new(Watchers::default());
    tokio::spawn(longpoll::poll_forever(Arc::clone(&watchers)));
    let fleet = Fleet::load(data.status_dir());
    let state = AppState {
        data,
        token,
        trusted,
        watchers,
        objects: Arc::new(Objects::default()),
        fleet,
        max_revision_ahead_secs: max_revision_ahead.as_secs(),
        limits,
        shutdown: shutdown.clone(),
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = shutdown_tx.send(true);
    });
    listener::serve(tcp, router(Arc::new(state)), max_connections, limits.header_timeout, shutdown).await;
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
        .route("/v1/bundles/{name}/history", get(get_history))
        .route("/v1/objects/{hash}", get(get_object))
        // Reports are small; anything larger is refused while reading (413).
        .route("/v1/status", post(post_status).get(get_status).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)))
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(name): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !names::is_valid(&name) {
        return json_error(StatusCode::BAD_REQUEST, names::invalid_message(&name));
    }
    let wait = match wait_of(uri.query()) {
        Ok(wait) => wait,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    // A waiter keeps this and the identity of what it saw, nothing else: not the headers, not the bytes.
    let if_none_match: Option<Box<str>> =
        headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(Box::from);
    drop((headers, uri));
    let path = state.data.served_path(&name);
    let served = match served_now(&state, &path, &name).await {
        Ok(served) => served,
        Err(response) => return response,
    };
    if !if_none_match_hits(if_none_match.as_deref(), &served.etag) {
        return bundle_response(served.body, &served.etag);
    }
    let (mut seen, mut etag) = (served.id, served.etag);
    if wait.is_zero() {
        return not_modified(&etag);
    }
    let _slot = match state.watchers.try_slot(peer.ip(), state.limits.max_waiters_per_client) {
        Ok(slot) => slot,
        Err(Full::Server) => return busy(StatusCode::SERVICE_UNAVAILABLE, "too many waiting requests", "1"),
        Err(Full::Client) => {
            let message = "too many waiting requests from this address (--max-waiters-per-client)";
            return busy(StatusCode::TOO_MANY_REQUESTS, message, "5");
        }
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.watchers.subscribe(&path);
    let mut shutdown = state.shutdown.clone();
    // The watcher may already know of a version newer than the one just read.
    let mut check_now = *changes.borrow_and_update() != Some(seen);
    loop {
        if !check_now {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                () = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => break,
            }
            // The poller stats the file for everyone: no need to look while it says nothing changed.
            if *changes.borrow_and_update() == Some(seen) {
                continue;
            }
        }
        check_now = false;
        let served = match served_now(&state, &path, &name).await {
            Ok(served) => served,
            Err(response) => return response,
        };
        if served.id == seen {
            continue;
        }
        seen = served.id;
        if !if_none_match_hits(if_none_match.as_deref(), &served.etag) {
            let mut response = bundle_response(served.body, &served.etag);
            let note = format!("changed after {}ms of waiting", started.elapsed().as_millis());
            response.extensions_mut().insert(LogNote(note));
            return response;
        }
        etag = served.etag;
    }
    not_modified(&etag)
}

/// What the served file of `name` holds now, or the response that says why there is nothing to serve.
async fn served_now(state: &AppState, path: &std::path::Path, name: &str) -> std::result::Result<Served, Response> {
    match state.objects.served(path).await {
        Ok(served) => Ok(served),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(json_error(StatusCode::NOT_FOUND, format!("no bundle named '{name}'")))
        }
        Err(e) => Err(internal_error(format!("cannot read bundle: {e}"))),
    }
}

/// A refusal to wait, with the time after which to try again.
fn busy(status: StatusCode, message: &str, retry_after: &'static str) -> Response {
    let mut response = json_error(status, message.to_owned());
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
    response
}

/// The `wait` query parameter: absent is zero, more than [`MAX_WAIT_SECS`] is shortened to it.
fn wait_of(query: Option<&str>) -> std::result::Result<Duration, String> {
    match query_param(query, "wait") {
        None => Ok(Duration::ZERO),
        Some(text) => text
            .parse::<u64>()
            .map(|secs| Duration::from_secs(secs.min(MAX_WAIT_SECS)))
            .map_err(|_| format!("wait: expected whole seconds (0 to {MAX_WAIT_SECS}), got '{text}'")),
    }
}

/// The value of `key` in a query string (no percent-decoding: every value this API takes is plain).
fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

fn bundle_response(bytes: Bytes, etag: &str) -> Response {
    let Ok(etag_value) = HeaderValue::from_str(etag) else {
        return internal_error("ETag is not a valid header value".to_owned());
    };
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

fn not_modified(etag: &str) -> Response {
    match HeaderValue::from_str(etag) {
        Ok(value) => (StatusCode::NOT_MODIFIED, [(header::ETAG, value)]).into_response(),
        Err(_) => internal_error("ETag is not a valid header value".to_owned()),
    }
}

/// Whether an `If-None-Match` value matches `etag` (`*`, a comma list, weak `W/` tags compared weakly).
fn if_none_match_hits(value: Option<&str>, etag: &str) -> bool {
    let Some(value) = value else {
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
    object: String,
    signed_by: Option<String>,
    rollback_of: Option<u64>,
    /// The exact bytes were already current: nothing was recorded.
    unchanged: bool,
}

/// The body of a 409: the error, and the revision a push must exceed.
#[derive(Serialize)]
struct Conflict {
    error: String,
    current_revision: u64,
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
    let rollback = match rollback_of(request.uri().query()) {
        Ok(rollback) => rollback,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    let pushed_by = match actor_of(request.headers()) {
        Ok(actor) => actor,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    if declared_length(request.headers()).is_some_and(|len| len > MAX_BUNDLE_BYTES as u64) {
        return too_large();
    }
    let bytes = match read_body(request, &state).await {
        Ok(bytes) => bytes,
        Err(BodyError::Slow) => return body_too_slow(&state),
        Err(BodyError::Refused(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large()
        }
        Err(BodyError::Refused(rejection)) => return json_error(rejection.status(), rejection.body_text()),
    };
    let envelope = match signing::open(&bytes) {
        Ok(envelope) => envelope,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("invalid bundle: {e}")),
    };
    if !state.trusted.is_empty() {
        if let Err(e) = envelope.verify(&state.trusted) {
            return json_error(StatusCode::FORBIDDEN, format!("refused: {e}"));
        }
    }
    let loaded = match Bundle::from_bytes(envelope.bundle) {
        Ok(loaded) => loaded,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("invalid bundle: {e}")),
    };
    // The policy name is in the payload, whose SHA-256 is in the header that the signature covers and that
    // loading checked against the payload: a signature made for one policy cannot be stored under another name.
    if loaded.policy_name() != name {
        let error = format!(
            "the bundle's policy name is '{}' but it was put under '{name}': a bundle is only served under the name \
             it was compiled (and signed) for; compile it with --name {name}",
            truncated(loaded.policy_name(), 64)
        );
        return json_error(StatusCode::BAD_REQUEST, error);
    }
    let now_secs = clock::now_ms() / 1000;
    let latest = now_secs.saturating_add(state.max_revision_ahead_secs);
    if loaded.revision() > latest {
        let error = format!(
            "revision {} is more than {} s ahead of the control plane's clock (now {now_secs}, Unix seconds; \
             --max-revision-ahead): revisions only go forward, so nothing could replace it; compile without \
             --revision (the default is the current Unix time)",
            loaded.revision(),
            state.max_revision_ahead_secs
        );
        return json_error(StatusCode::BAD_REQUEST, error);
    }
    let signed_by = envelope.key_id.map(str::to_owned);
    let (revision, sha256) = (loaded.revision(), bundle::hex(loaded.digest()));
    let upload_state = Arc::clone(&state);
    let upload_name = name.clone();
    let upload_sha256 = sha256.clone();
    let upload_signed_by = signed_by.clone();
    let published = tokio::task::spawn_blocking(move || {
        let upload =
            Upload { bytes: &bytes, revision, sha256: upload_sha256, signed_by: upload_signed_by, pushed_by, rollback };
        upload_state.data.publish(&upload_name, &upload)
    })
    .await;
    let (object, rollback_of, unchanged) = match published {
        Ok(Ok(Outcome::Stored(entry))) => (entry.object, entry.rollback_of, false),
        Ok(Ok(Outcome::Unchanged(pointer))) => (pointer.object, None, true),
        Ok(Err(PublishError::NotNewer { current })) => {
            let error = format!(
                "revision {revision} is not newer than the current revision {current} of '{name}': filters never \
                 go back; use `portcullis rollback` to restore old content under a new revision"
            );
            return json(StatusCode::CONFLICT, &Conflict { error, current_revision: current });
        }
        Ok(Err(PublishError::UnknownRollbackTarget { revision: target })) => {
            let error = format!("rollback_of: revision {target} is not an older revision in the history of '{name}'");
            return json_error(StatusCode::BAD_REQUEST, error);
        }
        Ok(Err(PublishError::Io(e))) => return internal_error(format!("cannot store bundle: {e}")),
        Err(e) => return internal_error(format!("store task failed: {e}")),
    };
    state.watchers.poke(&state.data.served_path(&name));
    let stored = Stored { name: &name, revision, sha256, object, signed_by, rollback_of, unchanged };
    let note = LogNote(format!(
        "{} revision {} sha256 {}",
        if unchanged { "unchanged" } else { "stored" },
        stored.revision,
        stored.sha256
    ));
    let mut response = json(StatusCode::OK, &stored);
    response.extensions_mut().insert(note);
    response
}

/// `?rollback=true` or `?rollback_of=R`.
fn rollback_of(query: Option<&str>) -> std::result::Result<Rollback, String> {
    match (query_param(query, "rollback"), query_param(query, "rollback_of")) {
        (Some(_), Some(_)) => Err("give rollback or rollback_of, not both".to_owned()),
        (Some("true"), None) => Ok(Rollback::Allow),
        (Some("false") | None, None) => Ok(Rollback::No),
        (Some(other), None) => Err(format!("rollback: expected true or false, got '{other}'")),
        (None, Some(text)) => {
            text.parse().map(Rollback::Of).map_err(|_| format!("rollback_of: expected a revision, got '{text}'"))
        }
    }
}

/// The pusher's self-declared name, for the history (see [`client::is_actor`]).
fn actor_of(headers: &HeaderMap) -> std::result::Result<Option<String>, String> {
    let Some(value) = headers.get(ACTOR_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(actor) if client::is_actor(actor) => Ok(Some(actor.to_owned())),
        _ => Err(format!("{ACTOR_HEADER}: use 1 to {MAX_ACTOR_LEN} printable ASCII characters")),
    }
}

/// Why a request body was not read.
enum BodyError {
    /// It did not arrive within `--body-timeout`.
    Slow,
    /// axum refused it (too large, or the connection failed).
    Refused(axum::extract::rejection::BytesRejection),
}

/// Reads a whole request body, within `--body-timeout`: a client trickling a body must not hold a connection.
async fn read_body(request: Request, state: &Arc<AppState>) -> std::result::Result<Bytes, BodyError> {
    match tokio::time::timeout(state.limits.body_timeout, Bytes::from_request(request, state)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(rejection)) => Err(BodyError::Refused(rejection)),
        Err(_) => Err(BodyError::Slow),
    }
}

fn body_too_slow(state: &AppState) -> Response {
    let message =
        format!("request body not received within {} ms (--body-timeout)", state.limits.body_timeout.as_millis());
    let mut response = json_error(StatusCode::REQUEST_TIMEOUT, message);
    // The rest of the body may still come: the connection cannot be reused.
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// At most `max` bytes of `text`, cut at a character boundary, for messages quoting client input.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large() -> Response {
    json_error(StatusCode::PAYLOAD_TOO_LARGE, format!("bundle larger than the {MAX_BUNDLE_BYTES}-byte limit"))
}

async fn get_history(State(state): State<Arc<AppState>>, UrlPath(name): UrlPath<String>) -> Response {
    if !names::is_valid(&name) {
        return json_error(StatusCode::BAD_REQUEST, names::invalid_message(&name));
    }
    let data = state.data.clone();
    let history_name = name.clone();
    match tokio::task::spawn_blocking(move || data.read_history(&history_name)).await {
        Ok(Ok(Some(entries))) => json(StatusCode::OK, &History { name, entries }),
        Ok(Ok(None)) => json_error(StatusCode::NOT_FOUND, format!("no history for '{name}'")),
        Ok(Err(e)) => internal_error(format!("cannot read history: {e}")),
        Err(e) => internal_error(format!("history task failed: {e}")),
    }
}

async fn get_object(State(state): State<Arc<AppState>>, UrlPath(hash): UrlPath<String>) -> Response {
    if !datadir::is_object_name(&hash) {
        return json_error(StatusCode::BAD_REQUEST, "objects are named by 64 lower-case hex digits".to_owned());
    }
    let path = state.data.object_path(&hash);
    match state.objects.object(&hash, &path).await {
        Ok((etag, body)) => bundle_response(body, &etag),
        Err(e) if e.kind() == io::ErrorKind::NotFound => json_error(StatusCode::NOT_FOUND, format!("no object {hash}")),
        Err(e) => internal_error(format!("cannot read object: {e}")),
    }
}

/// The body of an accepted report.
#[derive(Serialize)]
struct Recorded {
    node: String,
    reported_at: String,
}

async fn post_status(State(state): State<Arc<AppState>>, request: Request) -> Response {
    if declared_length(request.headers()).is_some_and(|len| len > MAX_REPORT_BYTES as u64) {
        return report_too_large();
    }
    let bytes = match read_body(request, &state).await {
        Ok(bytes) => bytes,
        Err(BodyError::Slow) => return body_too_slow(&state),
        Err(BodyError::Refused(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return report_too_large()
        }
        Err(BodyError::Refused(rejection)) => return json_error(rejection.status(), rejection.body_text()),
    };
    let report: Report = match serde_json::from_slice(&bytes) {
        Ok(report) => report,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("invalid status report: {e}")),
    };
    let now = clock::now_ms();
    let status = match report.validate(now, clock::rfc3339(now)) {
        Ok(status) => status,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, format!("invalid status report: {message}")),
    };
    let recorded = Recorded { node: status.report.node.clone(), reported_at: status.reported_at.clone() };
    let task_state = Arc::clone(&state);
    match tokio::task::spawn_blocking(move || task_state.fleet.record(status)).await {
        Ok(Ok(())) => json(StatusCode::OK, &recorded),
        Ok(Err(e)) => internal_error(format!("cannot store status: {e}")),
        Err(e) => internal_error(format!("status task failed: {e}")),
    }
}

fn report_too_large() -> Response {
    json_error(StatusCode::PAYLOAD_TOO_LARGE, format!("status report larger than {MAX_REPORT_BYTES} bytes"))
}

async fn get_status(State(state): State<Arc<AppState>>) -> Response {
    let task_state = Arc::clone(&state);
    let view = tokio::task::spawn_blocking(move || {
        let nodes = task_state.fleet.all()?;
        let bundles = task_state
            .data
            .pointers()?
            .into_iter()
            .map(|(name, p)| (name, Latest { revision: p.revision, sha256: p.sha256 }))
            .collect();
        Ok::<_, io::Error>(FleetView { now_ms: clock::now_ms(), bundles, nodes })
    })
    .await;
    match view {
        Ok(Ok(view)) => json(StatusCode::OK, &view),
        Ok(Err(e)) => internal_error(format!("cannot read status: {e}")),
        Err(e) => internal_error(format!("status task failed: {e}")),
    }
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
        if_none_match_hits(Some(value), "\"abc\"")
    }

    #[test]
    fn query_parameters() {
        assert_eq!(wait_of(None), Ok(Duration::ZERO));
        assert_eq!(wait_of(Some("wait=5")), Ok(Duration::from_secs(5)));
        assert_eq!(wait_of(Some("x=1&wait=600")), Ok(Duration::from_secs(MAX_WAIT_SECS)));
        assert!(wait_of(Some("wait=-1")).is_err() && wait_of(Some("wait")).is_err());
        assert_eq!(rollback_of(None), Ok(Rollback::No));
        assert_eq!(rollback_of(Some("rollback=true")), Ok(Rollback::Allow));
        assert_eq!(rollback_of(Some("rollback_of=7")), Ok(Rollback::Of(7)));
        assert!(rollback_of(Some("rollback=yes")).is_err());
        assert!(rollback_of(Some("rollback=true&rollback_of=7")).is_err());
    }

    #[test]
    fn actors_are_printable_ascii() {
        let headers = |value: &str| {
            let mut map = HeaderMap::new();
            map.insert(ACTOR_HEADER, HeaderValue::from_str(value).unwrap());
            map
        };
        assert_eq!(actor_of(&HeaderMap::new()), Ok(None));
        assert_eq!(actor_of(&headers("alice@example.com")), Ok(Some("alice@example.com".to_owned())));
        assert!(actor_of(&headers("")).is_err());
        assert!(actor_of(&headers(&"a".repeat(129))).is_err());
        assert!(actor_of(&headers("tab\there")).is_err());
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
