//! An in-process HTTP/1.1 upstream that answers `200 {"upstream":"ok"}` (or the [`Route`] set for the path) and
//! counts what reached it.
//!
//! One thread per connection, keep-alive, `Content-Length` and chunked request bodies. It is what a blocked request
//! must never reach, so it counts requests in total and per path, and records the length and checksum of every
//! request body it receives ([`Upstream::received`]). Routes answer a path (query ignored) with a status, content
//! type, optional content encoding and a body that is either bytes or generated on the fly, so a 50 MiB response
//! costs no memory.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::body::{fill_generated, BodyDigest, Checksum};

/// The body of every upstream answer without a route.
pub const UPSTREAM_BODY: &str = r#"{"upstream":"ok"}"#;

/// Largest request head the upstream reads; Envoy never forwards more than its own 60 KiB limit.
const MAX_HEAD_BYTES: usize = 256 * 1024;

/// Bytes read or written per call when a body streams through.
const IO_CHUNK: usize = 64 * 1024;

/// What the upstream answers for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The status code.
    pub status: u16,
    /// The `content-type` header.
    pub content_type: String,
    /// The `content-encoding` header, if any (the body is sent as given, never encoded by the upstream).
    pub content_encoding: Option<String>,
    /// The body.
    pub body: RouteBody,
}

/// The body of a [`Route`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteBody {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` bytes of generated body `seed` (see [`crate::body::fill_generated`]), produced while sending.
    Generated {
        /// Length in bytes.
        len: u64,
        /// Which generated body.
        seed: u64,
    },
}

impl Route {
    /// `200` with `content-type: application/json` and `body`.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Self::bytes("application/json", body)
    }

    /// `200` with `content_type` and `body`.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            content_type: content_type.into(),
            content_encoding: None,
            body: RouteBody::Bytes(body.into()),
        }
    }

    /// `200` with `content_type` and `len` bytes of generated body `seed`, streamed.
    pub fn generated(content_type: &str, len: u64, seed: u64) -> Self {
        Self {
            status: 200,
            content_type: content_type.into(),
            content_encoding: None,
            body: RouteBody::Generated { len, seed },
        }
    }

    /// The same with status `status`.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same with a `content-encoding` header.
    pub fn with_content_encoding(mut self, encoding: &str) -> Self {
        self.content_encoding = Some(encoding.into());
        self
    }

    fn body_len(&self) -> u64 {
        match &self.body {
            RouteBody::Bytes(bytes) => bytes.len() as u64,
            RouteBody::Generated { len, .. } => *len,
        }
    }
}

/// A request body the upstream received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The request method.
    pub method: String,
    /// The request path, query string included.
    pub path: String,
    /// Length and checksum of the body, de-chunked.
    pub body: BodyDigest,
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    requests: AtomicU64,
    connections: AtomicU64,
    by_path: Mutex<HashMap<String, u64>>,
    open: Mutex<HashMap<u64, TcpStream>>,
    routes: Mutex<HashMap<String, Route>>,
    received: Mutex<Vec<Received>>,
    cut_short: Mutex<Vec<Received>>,
}

/// A running upstream on 127.0.0.1; stops (closing every connection) on drop.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Binds 127.0.0.1:0 and starts accepting.
    ///
    /// # Panics
    ///
    /// If the socket cannot be bound.
    pub fn start() -> Self {
        Self::start_with(Vec::<(String, Route)>::new())
    }

    /// Binds 127.0.0.1:0 and starts accepting, answering each path in `routes` (exact, query ignored) with its
    /// [`Route`] and anything else with [`UPSTREAM_BODY`].
    ///
    /// # Panics
    ///
    /// If the socket cannot be bound.
    pub fn start_with<P: Into<String>>(routes: impl IntoIterator<Item = (P, Route)>) -> Self {
        let routes = routes.into_iter().map(|(path, route)| (path.into(), route)).collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("upstream local address");
        let shared = Arc::new(Shared { routes: Mutex::new(routes), ..Shared::default() });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("upstream-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the upstream acceptor")
        };
        Self { addr, shared, acceptor: Some(acceptor) }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests answered so far whose path (query string included) is exactly `path`.
    pub fn requests_for(&self, path: &str) -> u64 {
        let by_path = lock(&self.shared.by_path);
        by_path.get(path).copied().unwrap_or(0)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Answers `path` (exact, query ignored) with `route` from now on, replacing any route it had.
    pub fn set_route(&self, path: &str, route: Route) {
        lock(&self.shared.routes).insert(path.to_string(), route);
    }

    /// Every request that carried a body (`Content-Length` above zero, or chunked), in the order their bodies
    /// were complete. Recorded before the answer is sent, so a client that has its response can look.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// The bodies received for requests whose path (query string included) is exactly `path`.
    pub fn received_for(&self, path: &str) -> Vec<BodyDigest> {
        lock(&self.shared.received).iter().filter(|r| r.path == path).map(|r| r.body).collect()
    }

    /// What arrived of the bodies of requests to `path` whose body never completed (the connection ended or was
    /// reset first): the part received, de-chunked.
    pub fn cut_short_for(&self, path: &str) -> Vec<BodyDigest> {
        lock(&self.shared.cut_short).iter().filter(|r| r.path == path).map(|r| r.body).collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the acceptor sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let open = std::mem::take(&mut *lock(&self.shared.open));
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let id = next_id;
        next_id += 1;
        shared.connections.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.open).insert(id, clone);
        }
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new().name("upstream-conn".into()).spawn(move || {
            let _ = serve_connection(stream, &shared);
            lock(&shared.open).remove(&id);
        });
        if spawned.is_err() {
            // Out of threads: the connection is dropped, which the client sees as a reset.
            continue;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let request = parse_head(&head);
        let mut checksum = Checksum::new();
        let read = if request.chunked {
            read_chunked(&mut reader, &mut checksum)
        } else if request.content_length > 0 {
            read_exactly(&mut reader, request.content_length, &mut checksum)
        } else {
            Ok(())
        };
        if let Err(e) = read {
            let (method, path) = (request.method.clone(), request.path.clone());
            lock(&shared.cut_short).push(Received { method, path, body: checksum.finish() });
            return Err(e);
        }
        if request.chunked || request.content_length > 0 {
            lock(&shared.received).push(Received {
                method: request.method.clone(),
                path: request.path.clone(),
                body: checksum.finish(),
            });
        }
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let route_path = request.path.split('?').next().unwrap_or("").to_string();
        *lock(&shared.by_path).entry(request.path).or_insert(0) += 1;
        let route = lock(&shared.routes).get(&route_path).cloned();
        let close = if request.close { "connection: close\r\n" } else { "" };
        match route {
            None => {
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{close}\r\n{UPSTREAM_BODY}",
                    UPSTREAM_BODY.len(),
                );
                writer.write_all(response.as_bytes())?;
            }
            Some(route) => write_route(&mut writer, &route, close)?,
        }
        if request.close {
            return Ok(());
        }
    }
}

fn write_route(writer: &mut impl Write, route: &Route, close: &str) -> std::io::Result<()> {
    let encoding = route.content_encoding.as_ref().map(|e| format!("content-encoding: {e}\r\n")).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\n{encoding}content-length: {}\r\n{close}\r\n",
        route.status,
        if route.status == 200 { "OK" } else { "Status" },
        route.content_type,
        route.body_len(),
    );
    writer.write_all(head.as_bytes())?;
    match &route.body {
        RouteBody::Bytes(bytes) => writer.write_all(bytes),
        RouteBody::Generated { len, seed } => {
            let mut buf = vec![0; IO_CHUNK];
            let mut offset = 0;
            while offset < *len {
                let n = usize::try_from((*len - offset).min(IO_CHUNK as u64)).unwrap_or(IO_CHUNK);
                fill_generated(*seed, offset, &mut buf[..n]);
                writer.write_all(&buf[..n])?;
                offset += n as u64;
            }
            Ok(())
        }
    }
}

struct RequestHead {
    method: String,
    path: String,
    content_length: u64,
    chunked: bool,
    close: bool,
}

/// Reads up to and including the blank line; `None` on a clean end of stream before any byte.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // Tolerate stray CRLF between requests.
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

fn parse_head(head: &[u8]) -> RequestHead {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let method = request_line.split(' ').next().unwrap_or("").to_string();
    let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
    let http10 = request_line.ends_with("HTTP/1.0");
    let mut request = RequestHead { method, path, content_length: 0, chunked: false, close: http10 };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => request.content_length = value.parse().unwrap_or(0),
            "transfer-encoding" => request.chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let value = value.to_ascii_lowercase();
                request.close = value.contains("close") || (http10 && !value.contains("keep-alive"));
            }
            _ => {}
        }
    }
    request
}

/// Reads `len` body bytes into `checksum`.
fn read_exactly(reader: &mut impl Read, len: u64, checksum: &mut Checksum) -> std::io::Result<()> {
    let mut buf = vec![0; IO_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(IO_CHUNK as u64)).unwrap_or(IO_CHUNK);
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        checksum.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// Reads a chunked body, trailers included, into `checksum`.
fn read_chunked(reader: &mut impl BufRead, checksum: &mut Checksum) -> std::io::Result<()> {
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = size_line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                    return Ok(());
                }
            }
        }
        read_exactly(reader, size, checksum)?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}
