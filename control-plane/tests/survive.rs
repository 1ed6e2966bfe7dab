//! The control plane survives its clients, and stores only what a bundle is: a bundle's signed name must be the
//! name it is put under, a revision may not be far ahead of the clock, long polls hold no bundle bytes, and
//! connections, header and body times and waiting polls per client are bounded.
//!
//! Bounds on time are generous (seconds): these tests assert behaviour, never speed.

// Helpers outside #[test] functions fail loudly too; clippy.toml's test allowances only cover the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use portcullis_policies::bundle;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Calls `check` until it returns true or `limit` passes.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// A raw connection that has sent `request` and not read anything.
fn send_raw(addr: &str, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream
}

/// Whatever arrives on `stream` within `limit`, until the server closes it or `limit` passes.
fn read_for(stream: &mut TcpStream, limit: Duration) -> String {
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the server has closed `stream` (end of stream or reset), without waiting.
fn is_closed(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Whether the server has answered (or closed) `stream`, without waiting.
fn has_answered(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let answered = !matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    answered
}

/// `/healthz` answers 200 within `limit` (a fresh connection each time).
fn healthz_within(server: &Server, limit: Duration) -> bool {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(limit)).build().into();
    agent.get(&format!("{}/healthz", server.url)).call().is_ok_and(|r| r.status() == 200)
}

fn long_poll_request(name: &str, etag: &str, wait: u32) -> String {
    // `Connection: close`: the answer ends with the stream, so a reader knows when it has all of it.
    format!(
        "GET /v1/bundles/{name}?wait={wait} HTTP/1.1\r\nHost: cp\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn a_bundle_put_under_another_name_than_its_own_is_400() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    // A bundle of the policy `staging` (its name is in the payload the signature covers) under `/demo`.
    let reply = put(&server.bundle_url("demo"), Some(TOKEN), &valid_bundle("staging", now_secs()));
    assert_eq!(reply.status, 400);
    let error = reply.json_error();
    assert!(error.contains("'staging'") && error.contains("'demo'"), "{error}");
    assert_eq!(get(&server.bundle_url("demo"), None).status, 404);
    assert!(!dir.path().join("bundles/demo.current").exists());
    // Under its own name it is stored.
    assert_eq!(put(&server.bundle_url("staging"), Some(TOKEN), &valid_bundle("staging", now_secs())).status, 200);
}

#[test]
fn a_signed_bundle_cannot_be_replayed_under_another_name() {
    let dir = data_dir();
    let keys = dir.path().join("keys");
    let (output, stderr) = run(portcullis().args(["keygen", "--key-id", "k1", "--out"]).arg(&keys));
    assert!(output.status.success(), "{stderr}");
    let unsigned = dir.path().join("staging.bundle");
    fs::write(&unsigned, valid_bundle("staging", now_secs())).unwrap();
    let signed = dir.path().join("staging.signed");
    let (output, stderr) =
        run(portcullis().arg("sign").arg(&unsigned).arg("--key").arg(keys.join("k1.key")).arg("-o").arg(&signed));
    assert!(output.status.success(), "{stderr}");
    let public = keys.join("k1.pub");
    let server = Server::start_with_args(dir.path(), &["--trust", public.to_str().unwrap()]);
    let body = fs::read(&signed).unwrap();
    let reply = put(&server.bundle_url("demo"), Some(TOKEN), &body);
    assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(&reply.body));
    assert!(reply.json_error().contains("'staging'"));
    assert_eq!(put(&server.bundle_url("staging"), Some(TOKEN), &body).status, 200);
}

#[test]
fn a_revision_far_ahead_of_the_clock_is_refused() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let url = server.bundle_url("api");
    let reply = put(&url, Some(TOKEN), &valid_bundle("api", u64::MAX));
    assert_eq!(reply.status, 400);
    let error = reply.json_error();
    assert!(error.starts_with("revision 18446744073709551615 is more than 86400 s ahead"), "{error}");
    assert!(error.contains("--max-revision-ahead"), "{error}");
    assert!(!dir.path().join("bundles/api.current").exists());
    // Two days ahead: refused by the default of one day; an hour ahead is fine (clocks differ).
    assert_eq!(put(&url, Some(TOKEN), &valid_bundle("api", now_secs() + 2 * 86_400)).status, 400);
    assert_eq!(put(&url, Some(TOKEN), &valid_bundle("api", now_secs() + 3600)).status, 200);

    // Configurable, and `push` says why.
    let strict_dir = data_dir();
    let strict = Server::start_with_args(strict_dir.path(), &["--max-revision-ahead", "10m"]);
    assert_eq!(put(&strict.bundle_url("api"), Some(TOKEN), &valid_bundle("api", now_secs() + 3600)).status, 400);
    assert_eq!(put(&strict.bundle_url("api"), Some(TOKEN), &valid_bundle("api", now_secs() + 60)).status, 200);
    let file = dir.path().join("far.bundle");
    fs::write(&file, valid_bundle("api", u64::MAX)).unwrap();
    let (output, stderr) = run(portcullis()
        .env("PORTCULLIS_TOKEN", TOKEN)
        .args(["push", "--server", &server.url, "--name", "api"])
        .arg(&file));
    assert!(!output.status.success());
    assert!(stderr.contains("ahead of the control plane's clock"), "{stderr}");
}

#[test]
fn a_far_future_revision_stored_by_an_older_server_is_recovered_with_push_rollback() {
    let dir = data_dir();
    // What an older control plane would have stored: revision 2^64 - 1, current.
    let far = valid_bundle("api", u64::MAX);
    let object = hex_sha256(&far);
    let digest = bundle::hex(&bundle::peek_digest(&far).unwrap());
    fs::create_dir_all(dir.path().join("bundles")).unwrap();
    fs::write(dir.path().join("bundles/api.bundle"), &far).unwrap();
    let pointer = format!(r#"{{"revision":{},"sha256":"{digest}","object":"{object}"}}"#, u64::MAX);
    fs::write(dir.path().join("bundles/api.current"), pointer).unwrap();
    fs::create_dir_all(dir.path().join("objects")).unwrap();
    fs::write(dir.path().join(format!("objects/{object}.bundle")), &far).unwrap();
    fs::create_dir_all(dir.path().join("history")).unwrap();
    let line = format!(
        r#"{{"revision":{},"sha256":"{digest}","object":"{object}","pushed_at":"2026-01-01T00:00:00.000Z","pushed_by":null,"signed_by":null,"rollback_of":null}}"#,
        u64::MAX
    );
    fs::write(dir.path().join("history/api.jsonl"), format!("{line}\n")).unwrap();
    let server = Server::start(dir.path());
    let good = dir.path().join("good.bundle");
    let revision = now_secs();
    fs::write(&good, valid_bundle("api", revision)).unwrap();
    let push = |extra: &[&str]| {
        run(portcullis()
            .env("PORTCULLIS_TOKEN", TOKEN)
            .args(["push", "--server", &server.url, "--name", "api"])
            .args(extra)
            .arg(&good))
    };
    let (output, stderr) = push(&[]);
    assert!(!output.status.success() && stderr.contains("is not newer than the current revision"), "{stderr}");
    // The documented recovery.
    let (output, stderr) = push(&["--rollback"]);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(get(&server.bundle_url("api"), None).body, valid_bundle("api", revision));
    // Normal pushes work again, and so do rollbacks: the far-future entry in the history does not count.
    assert_eq!(put(&server.bundle_url("api"), Some(TOKEN), &valid_bundle("api", revision + 1)).status, 200);
    let (output, stderr) = run(portcullis().env("PORTCULLIS_TOKEN", TOKEN).args([
        "rollback",
        "--server",
        &server.url,
        "--name",
        "api",
        "--to",
        &revision.to_string(),
    ]));
    assert!(output.status.success(), "{stderr}");
    let current: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("bundles/api.current")).unwrap()).unwrap();
    assert!(current["revision"].as_u64().unwrap() > revision + 1, "{current}");
}

#[test]
fn slow_headers_are_cut_off_and_healthz_keeps_answering() {
    const CONNECTIONS: usize = 1030;
    let dir = data_dir();
    let server = Server::start_with_args(dir.path(), &["--header-timeout", "2s"]);
    let mut slow: Vec<TcpStream> =
        (0..CONNECTIONS).map(|_| send_raw(server.addr(), "GET /healthz HTTP/1.1\r\n")).collect();
    // Connections that never send a byte are closed after the same time.
    let mut silent: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
    let started = Instant::now();
    let mut open = CONNECTIONS;
    let mut healthz_checked = 0;
    // Trickle one header byte per connection every 200 ms, as a slowloris client would.
    while open > 0 && started.elapsed() < Duration::from_secs(30) {
        for stream in &mut slow {
            let _ = stream.write_all(b"x");
        }
        if healthz_checked < 5 {
            assert!(healthz_within(&server, Duration::from_secs(5)), "/healthz did not answer within 5 s");
            healthz_checked += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
        slow.retain_mut(|s| !is_closed(s));
        open = slow.len();
    }
    let closed_after = started.elapsed();
    assert_eq!(open, 0, "{open} of {CONNECTIONS} slow connections still open after {closed_after:?}");
    assert!(eventually(Duration::from_secs(10), || silent.iter_mut().all(is_closed)), "silent connections stay open");
    // Not before the timeout: the server gave them their 2 seconds.
    assert!(closed_after >= Duration::from_millis(1500), "{closed_after:?}");
    assert!(healthz_within(&server, Duration::from_secs(5)));
}

#[test]
fn connections_past_the_cap_are_refused_until_others_close() {
    let dir = data_dir();
    let server = Server::start_with_args(dir.path(), &["--max-connections", "32", "--header-timeout", "60s"]);
    assert!(eventually(Duration::from_secs(5), || server.log_text().contains("at most 32 connections")));
    let mut idle: Vec<TcpStream> = (0..32).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
    // The next one is told why and closed (once the server has taken the 32 before it).
    let refused = (0..20).find_map(|_| {
        let mut extra = TcpStream::connect(server.addr()).unwrap();
        let answer = read_for(&mut extra, Duration::from_secs(1));
        if answer.is_empty() {
            // The server took this one before one of the 32: it holds a place too.
            idle.push(extra);
            return None;
        }
        Some(answer)
    });
    let refused = refused.expect("no connection was refused past the cap");
    assert!(refused.starts_with("HTTP/1.1 503") && refused.contains("too many open connections"), "{refused}");
    assert!(!healthz_within(&server, Duration::from_secs(2)), "/healthz answered past the cap");
    drop(idle);
    assert!(eventually(Duration::from_secs(10), || healthz_within(&server, Duration::from_secs(2))));
    assert!(server.log_text().contains("refusing new ones"), "{}", server.log_text());
}

#[test]
fn one_client_may_hold_only_so_many_waiting_polls() {
    let dir = data_dir();
    let server = Server::start_with_args(dir.path(), &["--max-waiters-per-client", "3"]);
    let url = server.bundle_url("api");
    assert_eq!(put(&url, Some(TOKEN), &valid_bundle("api", now_secs())).status, 200);
    let etag = get(&url, None).etag.unwrap();
    let mut waiting: Vec<TcpStream> =
        (0..3).map(|_| send_raw(server.addr(), &long_poll_request("api", &etag, 30))).collect();
    // A fourth is refused at once (a short wait: if it got in before one of the three, it simply answers 304).
    let refused = (0..20).find_map(|_| {
        let reply = get(&format!("{url}?wait=1"), Some(&etag));
        (reply.status == 429).then_some(reply)
    });
    let refused = refused.expect("no long poll was refused past the per-client bound");
    assert!(refused.json_error().contains("--max-waiters-per-client"));
    let retry_after = agent().get(&format!("{url}?wait=1")).header("If-None-Match", &etag).call().unwrap();
    assert_eq!(retry_after.status(), 429);
    assert_eq!(retry_after.headers().get("retry-after").unwrap(), "5");
    // A plain GET is not a waiter: still served.
    assert_eq!(get(&url, Some(&etag)).status, 304);
    // One leaves: a place is free again.
    drop(waiting.pop());
    assert!(eventually(Duration::from_secs(10), || get(&format!("{url}?wait=1"), Some(&etag)).status == 304));
    // The waiters still get the new bundle when it comes.
    assert_eq!(put(&url, Some(TOKEN), &valid_bundle("api", now_secs() + 5)).status, 200);
    for stream in &mut waiting {
        let answer = read_for(stream, Duration::from_secs(10));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

#[test]
fn a_slow_body_is_answered_408() {
    let dir = data_dir();
    let server = Server::start_with_args(dir.path(), &["--body-timeout", "1s"]);
    for (method, path, auth) in [("PUT", "/v1/bundles/api", true), ("POST", "/v1/status", false)] {
        let auth = if auth { format!("Authorization: Bearer {TOKEN}\r\n") } else { String::new() };
        let head = format!("{method} {path} HTTP/1.1\r\nHost: cp\r\n{auth}Content-Length: 1000\r\n\r\n0123456789");
        let mut stream = send_raw(server.addr(), &head);
        let answer = read_for(&mut stream, Duration::from_secs(15));
        assert!(answer.starts_with("HTTP/1.1 408"), "{method}: {answer}");
        assert!(answer.contains("--body-timeout"), "{answer}");
    }
    assert!(!dir.path().join("bundles/api.current").exists());
}

/// The resident memory of process `pid`, in KiB (from /proc: Linux only, like the test that uses it).
#[cfg(target_os = "linux")]
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Raises this process's soft descriptor limit to what `needed` requires, or fails saying what is missing.
#[cfg(target_os = "linux")]
fn need_descriptors(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    assert!(
        limit.rlim_max >= needed,
        "this test needs {needed} file descriptors in the test and in the server (hard RLIMIT_NOFILE is {}): raise \
         it, e.g. `ulimit -Hn {needed}` as root",
        limit.rlim_max
    );
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: a valid rlimit; raising the soft limit to the hard one needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// 10,000 long polls on a 2.5 MB bundle: each holds its ETag, not a copy of the bundle.
#[cfg(target_os = "linux")]
#[test]
fn ten_thousand_waiters_hold_no_bundle_bytes() {
    const WAITERS: usize = 10_000;
    const BOUND_MIB: u64 = 200;
    need_descriptors(WAITERS as u64 + 500);
    let dir = data_dir();
    let server = Server::start_with_args(dir.path(), &["--max-waiters-per-client", "10000"]);
    // Served as it is on disk (the server does not validate what it serves); 2.5 MB that do not compress.
    let mut big = vec![0u8; 2_500_000];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for byte in &mut big {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    fs::write(dir.path().join("bundles/big.bundle"), &big).unwrap();
    let first = get(&server.bundle_url("big"), None);
    assert_eq!(first.body.len(), big.len());
    let etag = first.etag.unwrap();
    let before = rss_kib(server.pid());

    let request = long_poll_request("big", &etag, 30);
    let mut waiters: Vec<TcpStream> = Vec::with_capacity(WAITERS);
    for _ in 0..WAITERS {
        waiters.push(send_raw(server.addr(), &request));
    }
    // All 10,000 wait once one more is refused. A probe that got in before the last of them took its place
    // (that one was refused): send those again.
    let probe_url = format!("{}?wait=1", server.bundle_url("big"));
    let all_waiting = eventually(Duration::from_secs(60), || {
        for stream in &mut waiters {
            if has_answered(stream) {
                *stream = send_raw(server.addr(), &request);
            }
        }
        let probe = get(&probe_url, Some(&etag)).status;
        probe == 429 && !waiters.iter_mut().any(has_answered)
    });
    assert!(all_waiting, "the {WAITERS} long polls did not all get to wait; log: {}", server.log_text());
    let during = rss_kib(server.pid());
    let growth_kib = during.saturating_sub(before);
    eprintln!(
        "server RSS: {} KiB with the bundle loaded, {} KiB with {WAITERS} waiters: +{} KiB ({} bytes per waiter)",
        before,
        during,
        growth_kib,
        growth_kib * 1024 / WAITERS as u64
    );
    assert!(growth_kib < BOUND_MIB * 1024, "{WAITERS} waiters grew the server by {growth_kib} KiB");

    // A change wakes them all; they share one read of the new version.
    fs::write(dir.path().join("bundles/.big.tmp"), b"new version").unwrap();
    fs::rename(dir.path().join("bundles/.big.tmp"), dir.path().join("bundles/big.bundle")).unwrap();
    for stream in waiters.iter_mut().step_by(500) {
        let answer = read_for(stream, Duration::from_secs(20));
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("new version"), "{answer}");
    }
    let woken = rss_kib(server.pid());
    eprintln!("server RSS after waking them: {woken} KiB");
    assert!(woken.saturating_sub(before) < BOUND_MIB * 1024, "waking grew the server to {woken} KiB");
}
