//! The accept loop of `portcullis serve`, and the limits that keep the server answering whatever its clients do.
//!
//! `axum::serve` accepts every connection and waits for headers forever, so 1,030 clients trickling headers at a
//! 1,024-descriptor limit used to make `/healthz` time out. Here:
//!
//! - at most [`Limits::max_connections`] connections are open at a time; one past it is answered `503` with
//!   `Connection: close` and closed at once, so the server never runs out of descriptors;
//! - a connection that sends nothing for [`Limits::header_timeout`] is closed, and so is one that does not finish
//!   a request head within that time of starting it (hyper's `header_read_timeout`, whose clock also runs while a
//!   kept-alive connection sits idle between requests);
//! - PUT and POST bodies must arrive within [`Limits::body_timeout`] (the handlers answer `408`);
//! - one client address may hold at most [`Limits::max_waiters_per_client`] waiting long polls
//!   ([`crate::longpoll`]).
//!
//! At start the server raises its soft `RLIMIT_NOFILE` to the hard limit, and the default connection cap stays
//! [`FD_RESERVE`] descriptors below it (for bundle files, the data directory and the blocking pool).

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower_service::Service;

/// Default cap on open connections, when the descriptor limit allows it: above the 10,000 long polls
/// [`crate::longpoll::MAX_WAITERS`] allows, with room for pushes, status reports and health checks.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Descriptors kept free below `RLIMIT_NOFILE` for everything that is not a connection.
pub const FD_RESERVE: u64 = 128;
/// Default time a client has to send a whole request head (and the longest a kept-alive connection may idle).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send a PUT or POST body (a bundle is at most 16 MiB).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of long polls one client address may hold: an Envoy holds one per bundle it fetches.
pub const DEFAULT_MAX_WAITERS_PER_CLIENT: usize = 100;
/// How long a shutdown waits for open connections to finish before the server exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// What a connection past the cap is told before it is closed.
const AT_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-type: \
application/json\r\ncontent-length: 37\r\n\r\n{\"error\":\"too many open connections\"}";

/// The limits `portcullis serve` enforces on its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once; `None` derives it from the descriptor limit.
    pub max_connections: Option<usize>,
    /// Time to send a request head; also the idle timeout of kept-alive connections.
    pub header_timeout: Duration,
    /// Time to send a PUT or POST body.
    pub body_timeout: Duration,
    /// Most waiting long polls per client address (IPv6: per /64).
    pub max_waiters_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_waiters_per_client: DEFAULT_MAX_WAITERS_PER_CLIENT,
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft limit now in force (`None` if unknown).
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the hard one needs no privilege.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        // rlim_t is u64 on Linux but not on every unix; RLIM_INFINITY reads as "plenty".
        #[allow(clippy::useless_conversion)]
        Some(u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap: the one asked for, never closer than [`FD_RESERVE`] to the descriptor limit `fd_limit`.
/// Returns the cap and, when the asked-for cap was lowered, a line saying why.
pub fn connection_cap(asked: Option<usize>, fd_limit: Option<u64>) -> (usize, Option<String>) {
    let room = fd_limit.map_or(usize::MAX, |fds| {
        // A tiny limit still serves: half of it for connections.
        let room = if fds > 2 * FD_RESERVE { fds - FD_RESERVE } else { fds / 2 };
        usize::try_from(room).unwrap_or(usize::MAX).max(1)
    });
    match asked {
        None => (DEFAULT_MAX_CONNECTIONS.min(room), None),
        Some(asked) if asked <= room => (asked.max(1), None),
        Some(asked) => {
            let why = format!(
                "--max-connections {asked} lowered to {room}: RLIMIT_NOFILE is {} and {FD_RESERVE} descriptors are \
                 kept for files (raise the hard limit, e.g. `ulimit -Hn`, to allow more)",
                fd_limit.unwrap_or(0)
            );
            (room, Some(why))
        }
    }
}

/// Connections the kernel may queue before `accept`: tokio's default of 128 drops SYNs (a one-second retry for
/// the client) when a fleet reconnects at once; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `listen` (`IP:PORT`, or a name that resolves) with a backlog of [`LISTEN_BACKLOG`].
///
/// # Errors
///
/// If the address does not resolve or cannot be bound.
pub async fn bind(listen: &str) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing");
    for addr in tokio::net::lookup_host(listen).await? {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // A restarted server must not wait for the old one's connections to leave TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Serves `app` on `listener` until `shutdown` becomes `true`, then lets open connections finish (at most
/// [`SHUTDOWN_GRACE`]). Handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
    // Runs of refused connections and of accept errors are logged once each, not once per connection.
    let mut refused: u64 = 0;
    let mut accept_failing = false;
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                accept_failing = false;
                accepted
            }
            Err(e) => {
                if !accept_failing {
                    log(format_args!("cannot accept connections: {e}; retrying"));
                    accept_failing = true;
                }
                // Out of descriptors or memory: give closing connections a moment instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if refused == 0 {
                log(format_args!("{max_connections} connections open (--max-connections): refusing new ones"));
            }
            refused = refused.saturating_add(1);
            refuse(&stream);
            continue;
        };
        if refused > 0 {
            log(format_args!("accepting connections again after refusing {refused}"));
            refused = 0;
        }
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(builder.clone(), header_timeout, stream, peer, app.clone(), shutdown.clone());
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await.is_err() {
        log(format_args!("connections still open after {}s; stopping anyway", SHUTDOWN_GRACE.as_secs()));
    }
}

/// One connection, until the client closes it, a timeout closes it, or shutdown completes its current request.
async fn serve_connection(
    builder: http1::Builder,
    header_timeout: Duration,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    // Until the client sends something, a connection is only a socket: hyper's two 8 KiB buffers are allocated
    // once there is a request to read.
    // (`readable()` is not enough: a fresh socket may report readiness before any byte came.)
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout(header_timeout, stream.peek(&mut first)) => {
            // Closed before a byte, failed, or silent for the whole header timeout: nothing to serve.
            if !matches!(peeked, Ok(Ok(1..))) {
                return;
            }
        }
        _ = shutdown.changed() => return,
    }
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|never| match never {})) }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    if *shutdown.borrow_and_update() {
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
        return;
    }
    tokio::select! {
        // Errors are the client's (reset, header timeout, malformed request): nothing to do but close.
        _ = connection.as_mut() => {}
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Tells a connection past the cap why it is closed, without waiting on it.
fn refuse(stream: &TcpStream) {
    // A full send buffer just means the client does not get the reason; it is closed either way.
    let _ = stream.try_write(AT_CAPACITY);
}

/// Writes one log line to stderr; a closed stderr must not take the server down.
fn log(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "portcullis: {args}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        assert_eq!(connection_cap(None, Some(1_048_576)), (DEFAULT_MAX_CONNECTIONS, None));
        assert_eq!(connection_cap(None, Some(1024)), (1024 - 128, None));
        assert_eq!(connection_cap(None, Some(100)), (50, None));
        assert_eq!(connection_cap(Some(50), Some(1024)), (50, None));
        let (cap, why) = connection_cap(Some(5000), Some(1024));
        assert_eq!(cap, 896);
        assert!(why.unwrap().contains("RLIMIT_NOFILE is 1024"));
        assert_eq!(connection_cap(Some(0), None), (1, None));
    }

    #[test]
    fn the_refusal_is_a_whole_response() {
        let text = std::str::from_utf8(AT_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    }
}
