//! An in-process HTTP/1.1 upstream that answers every request with `200 {"upstream":"ok"}` and counts them.
//!
//! One thread per connection, keep-alive, `Content-Length` and chunked request bodies. It is what a blocked request
//! must never reach, so it counts requests in total and per path.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The body of every upstream answer.
pub const UPSTREAM_BODY: &str = r#"{"upstream":"ok"}"#;

/// Largest request head the upstream reads; Envoy never forwards more than its own 60 KiB limit.
const MAX_HEAD_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    requests: AtomicU64,
    connections: AtomicU64,
    by_path: Mutex<HashMap<String, u64>>,
    open: Mutex<HashMap<u64, TcpStream>>,
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("upstream local address");
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("upstream-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the upstream acceptor")
        };
        Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
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
        let by_path = self.shared.by_path.lock().unwrap_or_else(|e| e.into_inner());
        by_path.get(path).copied().unwrap_or(0)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
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
        let open = std::mem::take(&mut *self.shared.open.lock().unwrap_or_else(|e| e.into_inner()));
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
            shared.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, clone);
        }
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new().name("upstream-conn".into()).spawn(move || {
            let _ = serve_connection(stream, &shared);
            shared.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
        if spawned.is_err() {
            // Out of threads: the connection is dropped, which the client sees as a reset.
            continue;
        }
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        let request = parse_head(&head);
        if request.chunked {
            drain_chunked(&mut reader)?;
        } else if request.content_length > 0 {
            std::io::copy(&mut (&mut reader).take(request.content_length), &mut std::io::sink())?;
        }
        shared.requests.fetch_add(1, Ordering::SeqCst);
        *shared
            .by_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(request.path)
            .or_insert(0) += 1;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{UPSTREAM_BODY}",
            UPSTREAM_BODY.len(),
            if request.close { "connection: close\r\n" } else { "" },
        );
        writer.write_all(response.as_bytes())?;
        if request.close {
            return Ok(());
        }
    }
}

struct RequestHead {
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
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
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
    let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
    let http10 = request_line.ends_with("HTTP/1.0");
    let mut request = RequestHead {
        path,
        content_length: 0,
        chunked: false,
        close: http10,
    };
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

fn drain_chunked(reader: &mut impl BufRead) -> std::io::Result<()> {
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
        std::io::copy(&mut reader.take(size), &mut std::io::sink())?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}
