//! A closed-loop HTTP/1.1 load generator and per-process CPU accounting, for `make bench`.
//!
//! # Overview
//!
//! [`run`] opens `connections` keep-alive connections, one thread each, and has them send the same request back to
//! back (the next only after the previous response has been read, by its `Content-Length`) until `requests` have
//! been sent in total. Raw TCP with one reusable buffer per connection keeps the generator's own cost per request
//! small and constant, so that what varies between runs is the server. [`run_rotating`] sends several prepared
//! requests round-robin instead ([`get_requests`] builds them, e.g. one per token).
//!
//! [`process_cpu_ns`] reads how long a process has been on a CPU, summed over its threads, so a benchmark can
//! charge a run with exactly what the server spent on it.
//!
//! # Example
//!
//! ```no_run
//! use portcullis_integration_tests::{load, EnvoyConfig};
//!
//! let envoy = EnvoyConfig::new().direct_response(true).start();
//! let request = load::get_request("/", &[("host", "example.com")]);
//! let cpu_before = load::process_cpu_ns(envoy.pid()).unwrap();
//! let report = load::run(envoy.addr(), &request, 8, 10_000);
//! let cpu_ns = load::process_cpu_ns(envoy.pid()).unwrap() - cpu_before;
//! println!("{:.0} req/s, {} ns CPU/request", report.throughput(), cpu_ns / report.completed());
//! assert_eq!(report.errors(), 0, "{:?}", report.first_error);
//! ```

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// How long one response may take before the connection counts as broken: a deadline, not a measurement.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response head and body the generator reads; larger ones are counted as errors.
const BUFFER_SIZE: usize = 64 * 1024;

/// What a [`run`] measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Wall time from the moment every connection was open until the last response arrived.
    pub elapsed: Duration,
    /// Responses with status 200.
    pub ok: u64,
    /// Responses with any other status, by status.
    pub other_statuses: BTreeMap<u16, u64>,
    /// Requests that got no parseable response (connection reset, timeout, malformed response).
    pub io_errors: u64,
    /// The first I/O error, for the report.
    pub first_error: Option<String>,
}

impl LoadReport {
    /// Requests that were answered or failed (every request sent).
    pub fn completed(&self) -> u64 {
        self.ok + self.other_statuses.values().sum::<u64>() + self.io_errors
    }

    /// Requests that did not end in a 200.
    pub fn errors(&self) -> u64 {
        self.completed() - self.ok
    }

    /// Completed requests per second of wall time.
    pub fn throughput(&self) -> f64 {
        self.completed() as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn fail(&mut self, error: String) {
        self.io_errors += 1;
        self.first_error.get_or_insert(error);
    }

    /// Adds `other`'s counts to these (the elapsed time is left alone: runs do not add up to one).
    pub fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        for (status, count) in other.other_statuses {
            *self.other_statuses.entry(status).or_default() += count;
        }
        self.io_errors += other.io_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The bytes of `GET path HTTP/1.1` with `headers` in order, ready to send again and again.
pub fn get_request(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// Sends `request` `requests` times to `addr` over `connections` concurrent keep-alive connections and reports
/// statuses and wall time. A connection that breaks is opened again; the request it was serving counts as an
/// I/O error.
///
/// # Panics
///
/// If a connection cannot be opened at the start (nothing to measure), or `connections` is 0.
pub fn run(addr: SocketAddr, request: &[u8], connections: usize, requests: u64) -> LoadReport {
    run_rotating(addr, &[request], connections, requests)
}

/// Like [`run`], but request number `k` (counted over all connections, from 0) is `variants[k % variants.len()]`:
/// a different token per request, say, round-robin. Build the variants up front (with [`get_requests`]) so that
/// the generator's cost per request stays what it is for one request.
///
/// # Panics
///
/// As [`run`], and if `variants` is empty.
pub fn run_rotating<R: AsRef<[u8]> + Sync>(
    addr: SocketAddr,
    variants: &[R],
    connections: usize,
    requests: u64,
) -> LoadReport {
    run_paced(addr, variants, connections, requests, None)
}

/// Like [`run_rotating`], but with `per_second` set, request number `k` is not sent before `k / per_second`
/// seconds after the start: an open-loop pace below what the server can take, so that it is measured at a steady
/// load rather than saturated (where its CPU per request also depends on how the scheduler shares the cores with
/// the generator). A run that falls behind sends as fast as it can until it catches up.
///
/// # Panics
///
/// As [`run_rotating`].
pub fn run_paced<R: AsRef<[u8]> + Sync>(
    addr: SocketAddr,
    variants: &[R],
    connections: usize,
    requests: u64,
    per_second: Option<f64>,
) -> LoadReport {
    assert!(connections > 0, "at least one connection");
    assert!(!variants.is_empty(), "at least one request");
    let streams: Vec<TcpStream> =
        (0..connections).map(|_| connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))).collect();
    let next = AtomicU64::new(0);
    // All connections start together so the clock measures the server, not the setup.
    let start = Barrier::new(connections + 1);
    let total = Mutex::new(LoadReport::default());
    let epoch = std::sync::OnceLock::new();
    let started = std::thread::scope(|scope| {
        for stream in streams {
            let (next, start, total, epoch) = (&next, &start, &total, &epoch);
            scope.spawn(move || {
                start.wait();
                let pace = per_second.filter(|r| *r > 0.0).map(|r| (*epoch.get_or_init(Instant::now), r));
                let report = drive(addr, stream, variants, next, requests, pace);
                total.lock().unwrap_or_else(|e| e.into_inner()).merge(report);
            });
        }
        start.wait();
        Instant::now()
    });
    let mut report = total.into_inner().unwrap_or_else(|e| e.into_inner());
    report.elapsed = started.elapsed();
    report
}

/// `GET path` with `headers`, once per value of `values`, each time with header `name: value` added last: the
/// variants [`run_rotating`] sends.
pub fn get_requests<S: AsRef<str>>(path: &str, headers: &[(&str, &str)], name: &str, values: &[S]) -> Vec<Vec<u8>> {
    values
        .iter()
        .map(|value| {
            let mut all = headers.to_vec();
            all.push((name, value.as_ref()));
            get_request(path, &all)
        })
        .collect()
}

/// One connection's loop: claim a request number, send its variant, read the response, until all are claimed.
fn drive<R: AsRef<[u8]>>(
    addr: SocketAddr,
    stream: TcpStream,
    variants: &[R],
    next: &AtomicU64,
    requests: u64,
    pace: Option<(Instant, f64)>,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut conn = Some(stream);
    let mut buf = vec![0_u8; BUFFER_SIZE];
    loop {
        let number = next.fetch_add(1, Ordering::Relaxed);
        if number >= requests {
            break;
        }
        let Some(request) = usize::try_from(number % variants.len() as u64).ok().and_then(|i| variants.get(i)) else {
            break;
        };
        if let Some((epoch, per_second)) = pace {
            let due = epoch + Duration::from_secs_f64(number as f64 / per_second);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let stream = match conn.take() {
            Some(stream) => stream,
            None => match connect(addr) {
                Ok(stream) => stream,
                Err(e) => {
                    report.fail(format!("reconnect: {e}"));
                    continue;
                }
            },
        };
        match exchange(&stream, request.as_ref(), &mut buf) {
            Ok((status, keep_alive)) => {
                if status == 200 {
                    report.ok += 1;
                } else {
                    *report.other_statuses.entry(status).or_default() += 1;
                }
                if keep_alive {
                    conn = Some(stream);
                }
            }
            Err(e) => report.fail(e.to_string()),
        }
    }
    report
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    // Requests are written whole; Nagle would only add latency between a response and the next request.
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
    stream.set_write_timeout(Some(RESPONSE_TIMEOUT))?;
    Ok(stream)
}

/// Sends `request` and reads one response into `buf`; returns its status and whether the connection stays open.
fn exchange(mut stream: &TcpStream, request: &[u8], buf: &mut [u8]) -> io::Result<(u16, bool)> {
    stream.write_all(request)?;
    let mut filled = 0;
    let head_len = loop {
        if let Some(end) = find_head_end(buf.get(..filled).unwrap_or_default()) {
            break end;
        }
        filled += read_more(&mut stream, buf, filled)?;
    };
    let head = buf.get(..head_len).unwrap_or_default();
    let (status, content_length, keep_alive) = parse_head(head)?;
    let total = head_len + content_length;
    if total > buf.len() {
        return Err(invalid(format!("response of {total} bytes is larger than the {BUFFER_SIZE}-byte buffer")));
    }
    while filled < total {
        filled += read_more(&mut stream, buf, filled)?;
    }
    if filled > total {
        return Err(invalid("bytes after the response to an unpipelined request".into()));
    }
    Ok((status, keep_alive))
}

fn read_more(stream: &mut &TcpStream, buf: &mut [u8], filled: usize) -> io::Result<usize> {
    let Some(free) = buf.get_mut(filled..).filter(|free| !free.is_empty()) else {
        return Err(invalid(format!("response head larger than {BUFFER_SIZE} bytes")));
    };
    match stream.read(free)? {
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-response")),
        n => Ok(n),
    }
}

/// The length of the head including its blank line, once `bytes` holds all of it.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4)
}

/// Status, `Content-Length` (required: the generator does not de-chunk) and keep-alive of a response head.
fn parse_head(head: &[u8]) -> io::Result<(u16, usize, bool)> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut content_length = None;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        }
    }
    let content_length =
        content_length.ok_or_else(|| invalid(format!("{status} response without a Content-Length")))?;
    Ok((status, content_length, keep_alive))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Nanoseconds process `pid` has spent on a CPU so far, summed over its live threads.
///
/// Reads the first field of `/proc/<pid>/task/*/schedstat` (nanosecond precision); where the kernel has no
/// schedstat, falls back to `utime + stime` from `/proc/<pid>/stat` (clock-tick precision, usually 10 ms).
/// Take the difference of two readings around a run; threads that exit between them are lost, which Envoy's
/// long-lived workers never do.
pub fn process_cpu_ns(pid: u32) -> io::Result<u64> {
    match schedstat_ns(pid) {
        Ok(ns) => Ok(ns),
        Err(_) => stat_ticks_ns(pid),
    }
}

/// Nanoseconds this process has spent on a CPU so far, including threads that have already exited (the load
/// generator's, once [`run`] returns), from `getrusage`.
pub fn own_cpu_ns() -> io::Result<u64> {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the call to fill in.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let ns = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_usec).unwrap_or(0) * 1000
    };
    Ok(ns(usage.ru_utime) + ns(usage.ru_stime))
}

/// Nanoseconds all CPUs of the machine have spent busy so far (everything in `/proc/stat`'s `cpu` line but idle
/// and iowait), at clock-tick precision: enough to tell whether something else ran during a benchmark.
pub fn machine_busy_ns() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text.lines().next().unwrap_or_default();
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice], guests already counted in user and nice.
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = ticks[..] else {
        return Err(invalid(format!("/proc/stat: unexpected {line:?}")));
    };
    Ok((user + nice + system + irq + softirq + steal) * 1_000_000_000 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the C library and has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(per_second).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The CPUs this thread may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads `set` within CPU_SETSIZE.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect())
}

/// Restricts every thread of process `pid` to `cpus`; threads it starts later inherit the mask from their creator.
/// `pid` 0 means the calling thread only (and the threads it starts from now on).
pub fn pin(pid: u32, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes within `set` for any cpu below CPU_SETSIZE, which `allowed_cpus` never exceeds.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    let set_affinity = |tid: libc::pid_t| {
        // SAFETY: `set` is a valid cpu_set_t of the size passed; the kernel only reads it.
        match unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    };
    if pid == 0 {
        return set_affinity(0);
    }
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = task?.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        match set_affinity(tid) {
            // A thread that exited between listing and pinning.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            other => other?,
        }
    }
    Ok(())
}

fn schedstat_ns(pid: u32) -> io::Result<u64> {
    let mut total = 0_u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // A thread that exited between listing and reading.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let on_cpu = text
            .split_whitespace()
            .next()
            .and_then(|field| field.parse::<u64>().ok())
            .ok_or_else(|| invalid(format!("{}: unexpected {text:?}", path.display())))?;
        total += on_cpu;
    }
    Ok(total)
}

fn stat_ticks_ns(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields are counted after the last `)`.
    let after_name = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name (counting from 1 at `state`).
    let ticks = |at: usize| fields.get(at).and_then(|f| f.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) else {
        return Err(invalid(format!("/proc/{pid}/stat: unexpected {text:?}")));
    };
    Ok((utime + stime) * 1_000_000_000 / clock_ticks_per_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_are_parsed() {
        let head = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 12\r\nConnection: close\r\n\r\n";
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n\r\nbody"), Some(19));
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(parse_head(head).unwrap(), (403, 12, false));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap(), (200, 0, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn requests_are_written_in_order() {
        let request = get_request("/a?b=1", &[("host", "x"), ("accept", "*/*")]);
        assert_eq!(request, b"GET /a?b=1 HTTP/1.1\r\nhost: x\r\naccept: */*\r\n\r\n");
        let variants = get_requests("/", &[("host", "x")], "authorization", &["Bearer a", "Bearer b"]);
        assert_eq!(
            variants,
            vec![
                b"GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer a\r\n\r\n".to_vec(),
                b"GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer b\r\n\r\n".to_vec(),
            ]
        );
    }

    #[test]
    fn variants_are_sent_round_robin() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0_u8; 256];
            let mut pending = Vec::new();
            while seen.len() < 5 {
                let n = stream.read(&mut buf).unwrap();
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = find_head_end(&pending) {
                    let head: Vec<u8> = pending.drain(..end).collect();
                    seen.push(String::from_utf8(head).unwrap().lines().nth(1).unwrap().to_string());
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
                }
            }
            seen
        });
        let variants = get_requests("/", &[], "x-n", &["0", "1", "2"]);
        let report = run_rotating(addr, &variants, 1, 5);
        assert_eq!(report.ok, 5, "{report:?}");
        assert_eq!(seen.join().unwrap(), ["x-n: 0", "x-n: 1", "x-n: 2", "x-n: 0", "x-n: 1"]);
    }

    #[test]
    fn cpu_time_of_this_process_grows() {
        let pid = std::process::id();
        let before = process_cpu_ns(pid).unwrap();
        let spin = Instant::now();
        let mut x = 0_u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu_ns(pid).unwrap() > before);
        assert!(stat_ticks_ns(pid).unwrap() > 0);
        assert!(machine_busy_ns().unwrap() > 0);
        let own = own_cpu_ns().unwrap();
        // The thread spins until the process has used 10 ms more, then exits: the time must not vanish with it.
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while own_cpu_ns().unwrap() < own + 10_000_000 && Instant::now() < deadline {
                std::hint::black_box(0);
            }
        })
        .join()
        .unwrap();
        assert!(own_cpu_ns().unwrap() >= own + 10_000_000, "an exited thread's CPU time still counts");
    }
}
