//! End-to-end tests of the `portcullis` binary: the server over real sockets, and the CLI commands.

// Helpers outside #[test] functions fail loudly too; clippy.toml's test allowances only cover the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use portcullis_policies::bundle;

mod common;

use common::*;

#[test]
fn healthz_answers_ok() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let reply = get(&format!("{}/healthz", server.url), None);
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok"[..]));
    assert!(dir.path().join("bundles").is_dir());
}

#[test]
fn unknown_bundle_is_404_with_json_error() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let reply = get(&server.bundle_url("nothing-here"), None);
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json_error(), "no bundle named 'nothing-here'");
}

#[test]
fn put_without_or_with_wrong_token_is_401() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let body = valid_bundle("api", 1);
    for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1]), Some("")] {
        let reply = put(&server.bundle_url("api"), token, &body);
        assert_eq!(reply.status, 401, "token {token:?}");
        assert_eq!(reply.www_authenticate.as_deref(), Some("Bearer"));
        assert!(!reply.json_error().is_empty());
    }
    assert_eq!(get(&server.bundle_url("api"), None).status, 404);
}

#[test]
fn put_invalid_bundle_is_400_and_stores_nothing() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let mut corrupt = valid_bundle("api", 1);
    *corrupt.last_mut().unwrap() ^= 1;
    for (body, message) in [
        (&b"not a bundle"[..], "invalid bundle: not a Portcullis bundle (bad magic or truncated header)"),
        (&corrupt[..], "invalid bundle: bundle content does not match its SHA-256 (corrupt or tampered)"),
    ] {
        let reply = put(&server.bundle_url("api"), Some(TOKEN), body);
        assert_eq!(reply.status, 400);
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        assert_eq!(reply.json_error(), message);
    }
    assert_eq!(get(&server.bundle_url("api"), None).status, 404);
    assert_eq!(fs::read_dir(dir.path().join("bundles")).unwrap().count(), 0);
}

#[test]
fn put_then_get_with_etag_and_conditional_304() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let body = valid_bundle("checkout", 42);

    let stored = put(&server.bundle_url("checkout"), Some(TOKEN), &body);
    assert_eq!(stored.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&stored.body).unwrap();
    assert_eq!(json["name"], "checkout");
    assert_eq!(json["revision"], 42);
    assert_eq!(json["sha256"], bundle::hex(&bundle::peek_digest(&body).unwrap()));
    assert_eq!(fs::read(dir.path().join("bundles/checkout.bundle")).unwrap(), body);

    let fetched = get(&server.bundle_url("checkout"), None);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.content_type.as_deref(), Some("application/octet-stream"));
    assert_eq!(fetched.body, body);
    let etag = format!("\"{}\"", hex_sha256(&body));
    assert_eq!(fetched.etag.as_deref(), Some(etag.as_str()));

    for tag in [etag.clone(), format!("W/{etag}"), "*".to_owned(), format!("\"other\", {etag}")] {
        let not_modified = get(&server.bundle_url("checkout"), Some(&tag));
        assert_eq!(not_modified.status, 304, "If-None-Match: {tag}");
        assert_eq!(not_modified.etag.as_deref(), Some(etag.as_str()));
        assert!(not_modified.body.is_empty());
    }
    assert_eq!(get(&server.bundle_url("checkout"), Some("\"stale\"")).status, 200);

    // A new upload replaces the old one and changes the ETag.
    let newer = valid_bundle("checkout", 43);
    assert_eq!(put(&server.bundle_url("checkout"), Some(TOKEN), &newer).status, 200);
    let refetched = get(&server.bundle_url("checkout"), Some(&etag));
    assert_eq!((refetched.status, refetched.body), (200, newer));
    // Only the served bundle and its pointer are left behind: no temporary files.
    let mut files: Vec<String> = fs::read_dir(dir.path().join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["checkout.bundle", "checkout.current"]);
}

#[test]
fn corrupt_file_on_disk_is_served_as_is() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    // The filter must refuse it; the server's job is to serve what is on disk, byte for byte.
    fs::write(dir.path().join("bundles/broken.bundle"), b"garbage").unwrap();
    let reply = get(&server.bundle_url("broken"), None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"garbage");
    assert_eq!(reply.etag, Some(format!("\"{}\"", hex_sha256(b"garbage"))));
}

#[test]
fn bad_names_are_400() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let body = valid_bundle("x", 1);
    for name in ["Upper", ".hidden", "-dash", "%2E%2E%2Fescape", "a%2Fb", &"a".repeat(65)] {
        let got = get(&server.bundle_url(name), None);
        assert_eq!(got.status, 400, "GET {name}");
        assert!(got.json_error().starts_with("invalid bundle name"), "GET {name}");
        assert_eq!(put(&server.bundle_url(name), Some(TOKEN), &body).status, 400, "PUT {name}");
    }
    assert_eq!(fs::read_dir(dir.path().join("bundles")).unwrap().count(), 0);
}

#[test]
fn oversized_upload_is_413() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let declared = bundle::MAX_BUNDLE_BYTES + 1;
    write!(
        stream,
        "PUT /v1/bundles/big HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {declared}\r\nConnection: close\r\n\r\nPCLSBNDL"
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
}

#[test]
fn bundles_survive_a_restart() {
    let dir = data_dir();
    let body = valid_bundle("persisted", 7);
    let server = Server::start(dir.path());
    assert_eq!(put(&server.bundle_url("persisted"), Some(TOKEN), &body).status, 200);
    assert!(server.stop().success(), "SIGTERM should shut down cleanly");

    let server = Server::start(dir.path());
    let reply = get(&server.bundle_url("persisted"), None);
    assert_eq!((reply.status, reply.body), (200, body));
}

#[test]
fn logs_one_line_per_request_and_never_the_token() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let body = valid_bundle("logged", 1);
    put(&server.bundle_url("logged"), Some(TOKEN), &body);
    get(&server.bundle_url("logged"), None);
    let log = fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(TOKEN), "{log}");
    assert!(log.lines().any(|l| l.contains("PUT /v1/bundles/logged 200")), "{log}");
    assert!(log.lines().any(|l| l.contains("GET /v1/bundles/logged 200")), "{log}");
}

#[test]
fn serve_without_token_refuses_to_start() {
    let dir = data_dir();
    let output =
        portcullis().args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("PORTCULLIS_TOKEN") && stderr.contains("--token-file"), "{stderr}");
}

#[test]
fn serve_reads_the_token_from_a_file() {
    let dir = data_dir();
    let token_file = dir.path().join("token");
    fs::write(&token_file, "from-file\n").unwrap();
    let server = Server::start_with(
        portcullis(),
        &dir.path().join("data"),
        &[OsStr::new("--token-file"), token_file.as_os_str()],
    );
    assert_eq!(put(&server.bundle_url("f"), Some("from-file"), &valid_bundle("f", 1)).status, 200);
    assert_eq!(put(&server.bundle_url("f"), Some("from-fil"), &valid_bundle("f", 1)).status, 401);
}

#[test]
fn push_uploads_a_valid_bundle_end_to_end() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let file = dir.path().join("orders.bundle");
    let body = valid_bundle("orders", 99);
    fs::write(&file, &body).unwrap();

    let (output, stderr) = run(portcullis()
        .env("PORTCULLIS_TOKEN", TOKEN)
        .args(["push", "--server", &server.url, "--name", "orders"])
        .arg(&file));
    assert!(output.status.success(), "{stderr}");
    let digest = bundle::hex(&bundle::peek_digest(&body).unwrap());
    assert_eq!(stderr.trim_end(), format!("pushed {} as orders (revision 99, sha256 {digest})", file.display()));
    assert_eq!(get(&server.bundle_url("orders"), None).body, body);

    // Token from a file, and a trailing slash on the server URL.
    let token_file = dir.path().join("token");
    fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let copy = dir.path().join("orders-copy.bundle");
    fs::write(&copy, valid_bundle("orders-copy", 99)).unwrap();
    let (output, stderr) = run(portcullis()
        .args(["push", "--server", &format!("{}/", server.url), "--name", "orders-copy", "--token-file"])
        .arg(&token_file)
        .arg(&copy));
    assert!(output.status.success(), "{stderr}");
    assert_eq!(get(&server.bundle_url("orders-copy"), None).status, 200);
}

#[test]
fn push_refuses_an_invalid_bundle_locally() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let file = dir.path().join("bad.bundle");
    fs::write(&file, b"not a bundle").unwrap();
    let (output, stderr) = run(portcullis()
        .env("PORTCULLIS_TOKEN", TOKEN)
        .args(["push", "--server", &server.url, "--name", "bad"])
        .arg(&file));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("not a Portcullis bundle"), "{stderr}");
    let log = fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("PUT"), "nothing should have been sent: {log}");
}

#[test]
fn push_reports_the_server_error() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let file = dir.path().join("ok.bundle");
    fs::write(&file, valid_bundle("ok", 1)).unwrap();
    let (output, stderr) = run(portcullis()
        .env("PORTCULLIS_TOKEN", "not-the-token")
        .args(["push", "--server", &server.url, "--name", "ok"])
        .arg(&file));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("401") && stderr.contains("missing or invalid bearer token"), "{stderr}");
}

#[test]
fn push_without_token_fails() {
    let dir = data_dir();
    let file = dir.path().join("ok.bundle");
    fs::write(&file, valid_bundle("ok", 1)).unwrap();
    let (output, stderr) =
        run(portcullis().args(["push", "--server", "http://127.0.0.1:9", "--name", "ok"]).arg(&file));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("PORTCULLIS_TOKEN"), "{stderr}");
}

#[test]
fn inspect_prints_json_summary() {
    let dir = data_dir();
    let file = dir.path().join("inspected.bundle");
    let body = valid_bundle("inspected", 5);
    fs::write(&file, &body).unwrap();
    let output = portcullis().arg("inspect").arg(&file).output().unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "policy": "inspected",
            "revision": 5,
            "sha256": bundle::hex(&bundle::peek_digest(&body).unwrap()),
            "signed_by": null,
            "signature": "unsigned",
            "rules": [{"id": "always", "action": "block", "status": 403}],
        })
    );
}

#[test]
fn inspect_refuses_an_invalid_bundle() {
    let dir = data_dir();
    let file = dir.path().join("bad.bundle");
    fs::write(&file, b"PCLSBNDL\x09\x00").unwrap();
    let (output, stderr) = run(portcullis().arg("inspect").arg(&file));
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(stderr.contains("bundle format version not supported"), "{stderr}");
}

const POLICY_WITH_UNKNOWN_ATTRIBUTE: &str =
    "version: 1\nrules:\n  - id: x\n    when: request.pathz == \"/\"\n    action: block\n";

#[test]
fn compile_error_prints_file_line_col_and_exits_1() {
    let dir = data_dir();
    let policy = dir.path().join("broken.yaml");
    fs::write(&policy, POLICY_WITH_UNKNOWN_ATTRIBUTE).unwrap();
    let output_file = dir.path().join("broken.bundle");
    let (output, stderr) = run(portcullis().arg("compile").arg(&policy).arg("-o").arg(&output_file));
    assert_eq!(output.status.code(), Some(1));
    let line = stderr.lines().next().unwrap();
    let rest = line.strip_prefix(&format!("{}:", policy.display())).unwrap_or_else(|| panic!("{stderr}"));
    let mut parts = rest.splitn(3, ':');
    let (line_no, column) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!((line_no, column), ("4", "11"), "{stderr}");
    assert!(parts.next().unwrap().starts_with(' '), "{stderr}");
    assert!(!output_file.exists());
}

#[test]
fn compile_then_inspect_round_trip() {
    let dir = data_dir();
    let policy = dir.path().join("admin.yaml");
    fs::write(
        &policy,
        "version: 1\nrules:\n  - id: admin\n    when: request.path.startsWith(\"/admin\")\n    action: block\n",
    )
    .unwrap();
    let output_file = dir.path().join("admin.bundle");
    let (output, stderr) =
        run(portcullis().arg("compile").arg(&policy).arg("-o").arg(&output_file).args(["--revision", "17"]));
    assert!(output.status.success(), "{stderr}");
    let bytes = fs::read(&output_file).unwrap();
    let digest = bundle::hex(&bundle::peek_digest(&bytes).unwrap());
    let rules = portcullis_policies::Bundle::from_bytes(&bytes).unwrap().rules().len();
    assert_eq!(
        stderr.trim_end(),
        format!(
            "compiled {} -> {} ({rules} rules, revision 17, sha256 {digest})",
            policy.display(),
            output_file.display()
        )
    );
    let inspected = portcullis().arg("inspect").arg(&output_file).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(json["policy"], "admin");
    assert_eq!(json["revision"], 17);
}
