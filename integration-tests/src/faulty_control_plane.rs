//! A control plane that misbehaves on purpose: `GET /v1/bundles/NAME` answered in a chosen [`Mode`], switchable
//! at any time, with every bundle request counted and timed.
//!
//! The real `portcullis serve` only fails by being down. The failures that hurt a filter come after the response
//! headers: a server that stalls, resets or trickles mid-body, a body far larger than any bundle, or a server that
//! answers 200 forever (ignoring `If-None-Match`, or serving bytes the filter refuses). This server is raw
//! `std::net` HTTP/1.1 on 127.0.0.1, one thread per connection like [`crate::Upstream`], so it can send exactly
//! the broken responses a real HTTP server library would never produce.
//!
//! `POST /v1/status` (the filter's fleet report) gets `200 {}`; anything else gets 404.
//!
//! ```no_run
//! use std::time::Duration;
//! use portcullis_integration_tests::faulty_control_plane::{FaultyControlPlane, Mode};
//!
//! let good = std::fs::read("demo.bundle").unwrap();
//! let cp = FaultyControlPlane::start("demo", Mode::serve(good.clone()));
//! // ... start Envoy with `.control_plane(cp.addr())`, wait for the bundle to be enforced, then:
//! cp.set_mode(Mode::StallAfterHeaders { body: good });
//! std::thread::sleep(Duration::from_secs(5));
//! println!("{} fetches in the last 5 s", cp.bundle_requests_since(std::time::Instant::now() - Duration::from_secs(5)));
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request head read; the filter's requests are a few hundred bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Bytes written per call when a large body streams out.
const WRITE_CHUNK: usize = 64 * 1024;

/// How often a connection held open on purpose checks whether the peer has gone or the server is stopping.
const HOLD_CHECK: Duration = Duration::from_millis(100);

/// 1 MiB.
pub const MIB: u64 = 1024 * 1024;

/// How `GET /v1/bundles/NAME` is answered.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `200` with these bytes and an `ETag` derived from them; a matching `If-None-Match` gets `304` at once when
    /// `honour_if_none_match` (a server without long polling), and is ignored otherwise (the same 200 every time).
    Serve {
        /// The body.
        bytes: Vec<u8>,
        /// Whether a matching `If-None-Match` is answered 304.
        honour_if_none_match: bool,
    },
    /// `200` with `len` random bytes and a fresh `ETag` every time: a new bundle to refuse at every fetch.
    RandomBytes {
        /// Body length.
        len: usize,
    },
    /// The headers of a `200` with the length of `body`, then nothing: the connection stays open, silent, until
    /// the filter gives up (its `timeout_ms`) or the server stops.
    StallAfterHeaders {
        /// The bundle whose length is announced.
        body: Vec<u8>,
    },
    /// The headers of a `200` with the length of `body`, the first half of it, then a TCP reset (`SO_LINGER` 0).
    ResetMidBody {
        /// The bundle half sent.
        body: Vec<u8>,
    },
    /// A `200` with the length of `body`, then one byte of it every `interval`.
    Trickle {
        /// The bundle trickled out.
        body: Vec<u8>,
        /// Pause between bytes.
        interval: Duration,
    },
    /// A `200` with a `len`-byte body of filler, announced by `content-length`, or sent chunked without any length.
    Huge {
        /// Body length in bytes.
        len: u64,
        /// `transfer-encoding: chunked` and no `content-length`.
        chunked: bool,
    },
}

impl Mode {
    /// A well-behaved server (without long polling): `bytes`, 304 for a matching `If-None-Match`.
    pub fn serve(bytes: Vec<u8>) -> Self {
        Self::Serve { bytes, honour_if_none_match: true }
    }

    /// `bytes` with a 200 on every request, whatever `If-None-Match` says.
    pub fn serve_ignoring_if_none_match(bytes: Vec<u8>) -> Self {
        Self::Serve { bytes, honour_if_none_match: false }
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Serve { honour_if_none_match: true, .. } => "serve",
            Self::Serve { honour_if_none_match: false, .. } => "serve ignoring If-None-Match",
            Self::RandomBytes { .. } => "random bytes, fresh ETag",
            Self::StallAfterHeaders { .. } => "headers then stall",
            Self::ResetMidBody { .. } => "reset mid-body",
            Self::Trickle { .. } => "trickle",
            Self::Huge { chunked: false, .. } => "huge body with content-length",
            Self::Huge { chunked: true, .. } => "huge chunked body",
        }
    }
}

/// One bundle request as received.
#[derive(Clone, Debug)]
pub struct BundleRequest {
    /// When its head was read.
    pub at: Instant,
    /// The path, query included (`?wait=S` when the filter long-polls).
    pub path: String,
    /// Its `If-None-Match`, if any.
    pub if_none_match: Option<String>,
    /// The mode it was answered in ([`Mode::name`]).
    pub mode: &'static str,
}

struct Shared {
    bundle_path: String,
    mode: Mutex<Mode>,
    requests: Mutex<Vec<BundleRequest>>,
    stopping: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

/// The fault-injecting control plane on 127.0.0.1; stops (closing every connection) on drop.
pub struct FaultyControlPlane {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultyControlPlane {
    /// Binds 127.0.0.1:0 and serves bundle `name` in `mode`.
    ///
    /// # Panics
    ///
    /// If the socket cannot be bound.
    pub fn start(name: &str, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the faulty control plane on 127.0.0.1:0");
        let addr = listener.local_addr().expect("faulty control plane local address");
        let shared = Arc::new(Shared {
            bundle_path: format!("/v1/bundles/{name}"),
            mode: Mutex::new(mode),
            requests: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("faulty-cp-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the faulty control plane acceptor")
        };
        Self { addr, shared, acceptor: Some(acceptor) }
    }

    /// The address it listens on (for [`crate::EnvoyConfig::control_plane`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers every bundle request from now on in `mode` (connections already held open keep their old mode).
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Every bundle request received so far, in order.
    pub fn bundle_requests(&self) -> Vec<BundleRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many bundle requests arrived at or after `since`.
    pub fn bundle_requests_since(&self, since: Instant) -> usize {
        lock(&self.shared.requests).iter().filter(|r| r.at >= since).count()
    }
}

impl Drop for FaultyControlPlane {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the acceptor sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in std::mem::take(&mut *lock(&self.shared.open)) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            let mut open = lock(&shared.open);
            // Forget connections that have ended so the list stays as short as the live ones.
            open.retain(|s| s.peer_addr().is_ok());
            open.push(clone);
        }
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new().name("faulty-cp-conn".into()).spawn(move || {
            let _ = serve_connection(stream, &shared);
        });
    }
}

/// What a response did to the connection.
enum After {
    KeepAlive,
    Close,
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else { return Ok(()) };
        let request = parse_head(&head);
        // Request bodies (the status report) are read and dropped.
        std::io::copy(&mut (&mut reader).take(request.content_length), &mut std::io::sink())?;
        let path_only = request.path.split('?').next().unwrap_or_default();
        let after = if request.method == "GET" && path_only == shared.bundle_path {
            let mode = lock(&shared.mode).clone();
            lock(&shared.requests).push(BundleRequest {
                at: Instant::now(),
                path: request.path.clone(),
                if_none_match: request.if_none_match.clone(),
                mode: mode.name(),
            });
            answer_bundle(&mut writer, &mode, request.if_none_match.as_deref(), shared)?
        } else if request.method == "POST" && path_only == "/v1/status" {
            write_simple(&mut writer, "200 OK", "application/json", b"{}")?;
            After::KeepAlive
        } else {
            write_simple(&mut writer, "404 Not Found", "application/json", br#"{"error":"not found"}"#)?;
            After::KeepAlive
        };
        if matches!(after, After::Close) {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn answer_bundle(
    writer: &mut TcpStream,
    mode: &Mode,
    if_none_match: Option<&str>,
    shared: &Shared,
) -> std::io::Result<After> {
    match mode {
        Mode::Serve { bytes, honour_if_none_match } => {
            let etag = etag_of(bytes);
            if *honour_if_none_match && if_none_match == Some(etag.as_str()) {
                writer.write_all(format!("HTTP/1.1 304 Not Modified\r\netag: {etag}\r\n\r\n").as_bytes())?;
            } else {
                write_head(writer, Some(bytes.len() as u64), &etag)?;
                writer.write_all(bytes)?;
            }
            Ok(After::KeepAlive)
        }
        Mode::RandomBytes { len } => {
            let mut bytes = Vec::with_capacity(*len);
            while bytes.len() < *len {
                // Each `RandomState` has fresh keys, so every word differs from the last.
                let mut hasher = RandomState::new().build_hasher();
                hasher.write_usize(bytes.len());
                bytes.extend_from_slice(&hasher.finish().to_le_bytes());
            }
            bytes.truncate(*len);
            // Random bytes differ each time, so the ETag (their hash) is fresh each time too.
            let etag = etag_of(&bytes);
            write_head(writer, Some(bytes.len() as u64), &etag)?;
            writer.write_all(&bytes)?;
            Ok(After::KeepAlive)
        }
        Mode::StallAfterHeaders { body } => {
            write_head(writer, Some(body.len() as u64), &etag_of(body))?;
            hold_until_peer_closes(writer, shared, None);
            Ok(After::Close)
        }
        Mode::ResetMidBody { body } => {
            write_head(writer, Some(body.len() as u64), &etag_of(body))?;
            writer.write_all(body.get(..body.len() / 2).unwrap_or_default())?;
            writer.flush()?;
            // Let the half body reach the peer before the reset discards what is still queued.
            std::thread::sleep(Duration::from_millis(50));
            reset(writer);
            Ok(After::Close)
        }
        Mode::Trickle { body, interval } => {
            write_head(writer, Some(body.len() as u64), &etag_of(body))?;
            for byte in body {
                writer.write_all(std::slice::from_ref(byte))?;
                if !hold_until_peer_closes(writer, shared, Some(*interval)) {
                    break;
                }
            }
            Ok(After::Close)
        }
        Mode::Huge { len, chunked } => {
            let etag = format!("\"huge-{len}-{chunked}\"");
            write_head(writer, (!chunked).then_some(*len), &etag)?;
            let filler = vec![b'x'; WRITE_CHUNK];
            let mut left = *len;
            while left > 0 && !shared.stopping.load(Ordering::SeqCst) {
                let n = left.min(WRITE_CHUNK as u64);
                let piece = filler.get(..n as usize).unwrap_or_default();
                if *chunked {
                    writer.write_all(format!("{n:x}\r\n").as_bytes())?;
                    writer.write_all(piece)?;
                    writer.write_all(b"\r\n")?;
                } else {
                    writer.write_all(piece)?;
                }
                left -= n;
            }
            if *chunked {
                writer.write_all(b"0\r\n\r\n")?;
            }
            Ok(After::KeepAlive)
        }
    }
}

/// Keeps the connection open and silent for `limit` (forever when `None`); returns false once the peer has closed
/// it or the server is stopping.
fn hold_until_peer_closes(stream: &TcpStream, shared: &Shared, limit: Option<Duration>) -> bool {
    let start = Instant::now();
    let _ = stream.set_read_timeout(Some(HOLD_CHECK));
    let mut probe = [0u8; 1024];
    let mut reader = stream;
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        if limit.is_some_and(|limit| start.elapsed() >= limit) {
            return true;
        }
        match reader.read(&mut probe) {
            Ok(0) => return false,
            // Bytes from the peer (a pipelined request): ignore them, the answer is never coming.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
}

/// Closes `stream` with a TCP RST instead of a FIN.
fn reset(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor owned by `stream`, and a `linger` of the size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn write_head(writer: &mut TcpStream, content_length: Option<u64>, etag: &str) -> std::io::Result<()> {
    let length = match content_length {
        Some(n) => format!("content-length: {n}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_owned(),
    };
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\netag: {etag}\r\n{length}\r\n");
    writer.write_all(head.as_bytes())
}

fn write_simple(writer: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n", body.len());
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)
}

/// A quoted ETag from the bytes' SHA-256, as the real control plane's (the hash of the bytes served).
pub fn etag_of(bytes: &[u8]) -> String {
    let digest = hmac_sha256::Hash::hash(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

struct RequestHead {
    method: String,
    path: String,
    content_length: u64,
    if_none_match: Option<String>,
}

/// Reads up to the blank line; `None` when the peer closed between requests.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed inside a request head"))
            };
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too large"));
        }
        let line = head.get(before..).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            return Ok(Some(head));
        }
    }
}

fn parse_head(head: &[u8]) -> RequestHead {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let mut request = RequestHead { method, path, content_length: 0, if_none_match: None };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            request.content_length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            request.if_none_match = Some(value.to_owned());
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{self, HttpClient};

    const NAME: &str = "demo";

    fn path() -> String {
        format!("/v1/bundles/{NAME}")
    }

    #[test]
    fn serves_counts_and_honours_if_none_match_when_told() {
        let cp = FaultyControlPlane::start(NAME, Mode::serve(b"bundle bytes".to_vec()));
        let start = Instant::now();
        let first = http::get(cp.addr(), &path(), &[]);
        assert_eq!(first.status, 200);
        assert_eq!(first.body, b"bundle bytes");
        let etag = first.header("etag").unwrap().to_owned();
        assert_eq!(etag, etag_of(b"bundle bytes"));
        let again = http::get(cp.addr(), &format!("{}?wait=30", path()), &[("if-none-match", &etag)]);
        assert_eq!(again.status, 304);

        cp.set_mode(Mode::serve_ignoring_if_none_match(b"bundle bytes".to_vec()));
        let ignored = http::get(cp.addr(), &path(), &[("if-none-match", &etag)]);
        assert_eq!(ignored.status, 200);
        assert_eq!(http::get(cp.addr(), "/v1/bundles/other", &[]).status, 404);
        let mut client = HttpClient::new(cp.addr());
        assert_eq!(client.request("POST", "/v1/status", &[], b"{\"node\":\"n\"}").status, 200);
        assert_eq!(client.request("POST", "/v1/status", &[], b"{}").status, 200, "kept alive");

        let requests = cp.bundle_requests();
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert_eq!(cp.bundle_requests_since(start), 3);
        assert_eq!(requests[1].path, format!("{}?wait=30", path()));
        assert_eq!(requests[1].if_none_match.as_deref(), Some(etag.as_str()));
        assert_eq!(requests[2].mode, "serve ignoring If-None-Match");
    }

    #[test]
    fn random_bytes_come_with_a_fresh_etag() {
        let cp = FaultyControlPlane::start(NAME, Mode::RandomBytes { len: 100 });
        let a = http::get(cp.addr(), &path(), &[]);
        let b = http::get(cp.addr(), &path(), &[]);
        assert_eq!((a.body.len(), b.body.len()), (100, 100));
        assert_ne!(a.body, b.body);
        assert_ne!(a.header("etag"), b.header("etag"));
    }

    #[test]
    fn broken_bodies_fail_the_client() {
        let body = vec![7u8; 1000];
        let cp = FaultyControlPlane::start(NAME, Mode::ResetMidBody { body: body.clone() });
        assert!(http::send_raw(cp.addr(), format!("GET {} HTTP/1.1\r\n\r\n", path()).as_bytes()).is_err());

        cp.set_mode(Mode::StallAfterHeaders { body });
        let stalled =
            HttpClient::new(cp.addr()).with_timeout(Duration::from_millis(300)).try_request("GET", &path(), &[], b"");
        assert!(stalled.is_err(), "the body never comes");

        cp.set_mode(Mode::Huge { len: 3 * WRITE_CHUNK as u64 + 5, chunked: true });
        let chunked = http::get(cp.addr(), &path(), &[]);
        assert_eq!(chunked.header("content-length"), None);
        assert_eq!(chunked.body.len(), 3 * WRITE_CHUNK + 5);
        cp.set_mode(Mode::Huge { len: 10, chunked: false });
        assert_eq!(http::get(cp.addr(), &path(), &[]).body, b"xxxxxxxxxx");
        assert_eq!(cp.bundle_requests().len(), 4);
    }
}
