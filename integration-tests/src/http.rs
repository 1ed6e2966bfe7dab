//! A raw-TCP HTTP/1.1 client: well-formed requests through [`HttpClient`], anything at all through [`send_raw`].
//!
//! Raw TCP because the hostile-request tests need bytes no client library will send (non-UTF-8 header values,
//! lower-case methods, oversized heads), and because a benchmark wants to choose exactly when connections are new.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::body::{BodyDigest, Checksum};

/// How long a request may take before the client gives up: generous, a deadline rather than a measurement.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A response as read off the wire.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// If the body is not JSON, quoting it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }

    /// Whether the server asked to close the connection after this response.
    fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A client for one server: keeps one connection alive between requests unless told to open a new one for each.
pub struct HttpClient {
    addr: SocketAddr,
    new_connection_each: bool,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl HttpClient {
    /// A keep-alive client for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, new_connection_each: false, timeout: DEFAULT_TIMEOUT, conn: None }
    }

    /// A client that sends `Connection: close` and opens a new connection for every request, so Envoy assigns
    /// each one to a worker afresh.
    pub fn new_connection_each(addr: SocketAddr) -> Self {
        Self { new_connection_each: true, ..Self::new(addr) }
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET path` with extra `headers`.
    ///
    /// # Panics
    ///
    /// On an I/O error (see [`HttpClient::try_request`] for the fallible form).
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request("GET", path, headers, b"")
    }

    /// Any request; `body` is sent with a `Content-Length` when not empty.
    ///
    /// # Panics
    ///
    /// On an I/O error, naming the request.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} to {}: {e}", self.addr))
    }

    /// Any request, returning I/O errors. A stale kept-alive connection is retried once on a new one.
    ///
    /// # Errors
    ///
    /// Connection, write, read or parse failures, and timeouts.
    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let bytes = encode_request(method, path, headers, body, self.new_connection_each);
        let reused = self.conn.is_some();
        match self.exchange(&bytes, method) {
            Err(_) if reused => {
                // The server may have closed an idle connection between our requests.
                self.conn = None;
                self.exchange(&bytes, method)
            }
            result => result,
        }
    }

    fn exchange(&mut self, bytes: &[u8], method: &str) -> std::io::Result<HttpResponse> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => BufReader::new(connect(self.addr, self.timeout)?),
        };
        conn.get_mut().write_all(bytes)?;
        let response = read_response(&mut conn, method.eq_ignore_ascii_case("HEAD"))?;
        if !self.new_connection_each && !response.closes() {
            self.conn = Some(conn);
        }
        Ok(response)
    }
}

/// `GET path` on a fresh connection with `Connection: close`.
///
/// # Panics
///
/// On an I/O error.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    HttpClient::new_connection_each(addr).get(path, headers)
}

/// Writes `request` verbatim on a fresh connection and reads one response.
///
/// # Errors
///
/// Connection, write, read or parse failures (a server may also close without answering).
pub fn send_raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<HttpResponse> {
    let stream = connect(addr, DEFAULT_TIMEOUT)?;
    let mut conn = BufReader::new(stream);
    // A server that answers before reading everything (431) may reset the rest of our write; read anyway.
    let written = conn.get_mut().write_all(request);
    match read_response(&mut conn, false) {
        Ok(response) => Ok(response),
        Err(read_error) => Err(written.err().unwrap_or(read_error)),
    }
}

/// Writes `parts` one after the other on a fresh connection, pausing `pause` between them (so the server reads
/// them separately: a body split across TCP segments), then reads one response.
///
/// # Errors
///
/// As [`send_raw`].
pub fn send_in_parts(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> std::io::Result<HttpResponse> {
    let stream = connect(addr, DEFAULT_TIMEOUT)?;
    let mut conn = BufReader::new(stream);
    let mut written = Ok(());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        written = conn.get_mut().write_all(part).and_then(|()| conn.get_mut().flush());
        if written.is_err() {
            break;
        }
    }
    match read_response(&mut conn, false) {
        Ok(response) => Ok(response),
        Err(read_error) => Err(written.err().unwrap_or(read_error)),
    }
}

/// A response whose body was checksummed as it arrived instead of kept.
#[derive(Clone, Debug)]
pub struct StreamedResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Length and checksum of the body, de-chunked.
    pub body: BodyDigest,
    /// Request body bytes written before the writer finished or the server stopped reading.
    pub request_bytes_sent: u64,
    /// From the first byte written to the last byte of the response.
    pub elapsed: Duration,
}

/// Sends `head` (a request head, blank line included) and then `body_len` body bytes that `fill(offset, buf)`
/// produces, in chunks of `chunk` bytes, on a fresh connection; reads the response while the body is still being
/// written, and folds its body into a [`Checksum`] instead of keeping it.
///
/// Writing runs on its own thread, so a server that answers early (a block, a 413) is read rather than
/// deadlocked on; a write error after the response is complete is not an error.
///
/// # Errors
///
/// Connection, read or parse failures, timeouts (`timeout` applies per read and write), or a write error when no
/// response came.
pub fn stream_request(
    addr: SocketAddr,
    head: &[u8],
    body_len: u64,
    chunk: usize,
    timeout: Duration,
    mut fill: impl FnMut(u64, &mut [u8]) + Send + 'static,
) -> std::io::Result<StreamedResponse> {
    let started = Instant::now();
    let stream = connect(addr, timeout)?;
    let mut writer = stream.try_clone()?;
    let head = head.to_vec();
    let chunk = chunk.max(1);
    let writing =
        std::thread::Builder::new().name("stream-request".into()).spawn(move || -> (u64, std::io::Result<()>) {
            let mut sent = 0;
            let result = (|| {
                writer.write_all(&head)?;
                let mut buf = vec![0; chunk];
                while sent < body_len {
                    let n = usize::try_from((body_len - sent).min(chunk as u64)).unwrap_or(chunk);
                    fill(sent, &mut buf[..n]);
                    writer.write_all(&buf[..n])?;
                    sent += n as u64;
                }
                writer.flush()
            })();
            (sent, result)
        })?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let read = read_streamed(&mut reader);
    if read.is_err() {
        // Unblock a writer stuck on a server that stopped reading.
        let _ = reader.get_ref().shutdown(Shutdown::Both);
    }
    let (sent, written) = writing.join().unwrap_or((0, Err(std::io::Error::other("the writer thread panicked"))));
    let ((status, headers), body) = match (read, written) {
        (Ok(read), _) => read,
        (Err(read_error), Ok(())) => return Err(read_error),
        (Err(_), Err(write_error)) => return Err(write_error),
    };
    Ok(StreamedResponse { status, headers, body, request_bytes_sent: sent, elapsed: started.elapsed() })
}

/// A status code and headers (names lower-cased), in order.
type ResponseHead = (u16, Vec<(String, String)>);

/// Status line, headers, then the body (framed as [`read_response`] does) into a checksum.
fn read_streamed(reader: &mut BufReader<TcpStream>) -> std::io::Result<(ResponseHead, BodyDigest)> {
    let (status, headers) = read_head(reader)?;
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let mut checksum = Checksum::new();
    let mut buf = vec![0; 64 * 1024];
    let mut copy = |reader: &mut BufReader<TcpStream>, limit: Option<u64>| -> std::io::Result<()> {
        let mut left = limit;
        loop {
            let want = left.map_or(buf.len(), |l| usize::try_from(l).unwrap_or(usize::MAX).min(buf.len()));
            if want == 0 {
                return Ok(());
            }
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return match left {
                    Some(_) => Err(invalid("connection closed inside the response body")),
                    None => Ok(()),
                };
            }
            checksum.update(&buf[..n]);
            left = left.map(|l| l - n as u64);
        }
    };
    if status == 204 || status == 304 || (100..200).contains(&status) {
        // No body.
    } else if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = size_line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            copy(reader, Some(size))?;
            let mut crlf = String::new();
            reader.read_line(&mut crlf)?;
        }
    } else if let Some(length) = header("content-length") {
        let length: u64 = length.parse().map_err(|_| invalid("bad content-length"))?;
        copy(reader, Some(length))?;
    } else {
        copy(reader, None)?;
    }
    let body = checksum.finish();
    Ok(((status, headers), body))
}

fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn encode_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], close: bool) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("host") {
        out.extend_from_slice(b"host: portcullis.test\r\n");
    }
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if close && !has("connection") {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !body.is_empty() && !has("content-length") {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

/// Reads one response: status line, headers, then a body framed by `Content-Length`, chunks, or the end of stream.
fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<HttpResponse> {
    let (status, headers) = read_head(reader)?;
    let mut response = HttpResponse { status, headers, body: Vec::new() };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    let chunked = response.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        response.body = read_chunked(reader)?;
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad content-length"))?;
        response.body = vec![0; length];
        reader.read_exact(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// Reads the status line and the headers (names lower-cased) up to the blank line.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<ResponseHead> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response"));
    }
    let status_line = String::from_utf8_lossy(&line).trim_end().to_string();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(&format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(invalid("connection closed inside the response head"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_encoded_with_host_and_close() {
        let bytes = encode_request("GET", "/a", &[("x-k", "v")], b"", true);
        assert_eq!(bytes, b"GET /a HTTP/1.1\r\nhost: portcullis.test\r\nx-k: v\r\nconnection: close\r\n\r\n");
    }

    #[test]
    fn a_round_trip_through_the_upstream() {
        let upstream = crate::Upstream::start();
        let mut client = HttpClient::new(upstream.addr());
        for _ in 0..3 {
            let response = client.get("/x", &[]);
            assert_eq!(response.status, 200);
            assert_eq!(response.text(), crate::upstream::UPSTREAM_BODY);
        }
        assert_eq!(upstream.requests_for("/x"), 3);
        assert_eq!(upstream.connections(), 1, "keep-alive reuses the connection");
        let response = get(upstream.addr(), "/y", &[]);
        assert_eq!(response.status, 200);
        assert_eq!(upstream.connections(), 2);
        let response =
            send_raw(upstream.addr(), b"POST /z HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc").unwrap();
        assert_eq!(response.json()["upstream"], "ok");
        assert_eq!(upstream.requests(), 5);
    }

    #[test]
    fn routes_bodies_received_and_streamed_exchanges() {
        use crate::body::{digest, fill_generated, generated_digest};
        use crate::upstream::{Route, Upstream};

        let upstream = Upstream::start_with([("/png", Route::bytes("image/png", b"\x89PNG".to_vec()))]);
        upstream.set_route("/gz", Route::json(b"x".to_vec()).with_content_encoding("gzip").with_status(201));
        upstream.set_route("/big", Route::generated("text/plain", 3_000_000, 5));
        let png = get(upstream.addr(), "/png?x=1", &[]);
        assert_eq!((png.status, png.header("content-type")), (200, Some("image/png")));
        assert_eq!(png.body, b"\x89PNG");
        let gz = get(upstream.addr(), "/gz", &[]);
        assert_eq!((gz.status, gz.header("content-encoding")), (201, Some("gzip")));
        assert_eq!(get(upstream.addr(), "/other", &[]).text(), crate::upstream::UPSTREAM_BODY);

        let response = send_in_parts(
            upstream.addr(),
            &[
                b"POST /parts HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
                b"2\r\nde\r\n0\r\n\r\n",
            ],
            Duration::from_millis(20),
        )
        .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(upstream.received_for("/parts"), vec![digest(b"abcde")]);
        assert_eq!(upstream.received()[0].method, "POST");

        let head = b"POST /big HTTP/1.1\r\nhost: h\r\ncontent-length: 2000000\r\nconnection: close\r\n\r\n";
        let streamed = stream_request(upstream.addr(), head, 2_000_000, 50_000, DEFAULT_TIMEOUT, |offset, buf| {
            fill_generated(4, offset, buf)
        })
        .unwrap();
        assert_eq!(streamed.status, 200);
        assert_eq!(streamed.request_bytes_sent, 2_000_000);
        assert_eq!(streamed.body, generated_digest(5, 3_000_000));
        assert_eq!(upstream.received_for("/big"), vec![generated_digest(4, 2_000_000)]);
        assert_eq!(upstream.requests(), 5);
    }
}
