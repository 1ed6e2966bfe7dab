//! Trusted delivery end to end: signing keys, signed bundles, replicas sharing a data directory, long polls,
//! anti-rollback, `rollback`, `history`, and fleet status.

// Helpers outside #[test] functions fail loudly too; clippy.toml's test allowances only cover the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use portcullis_policies::bundle::{self, decode_content};
use portcullis_policies::signing;

const POLICY_A: &str =
    "version: 1\nrules:\n  - id: admin\n    when: request.path.startsWith(\"/admin\")\n    action: block\n";
const POLICY_B: &str =
    "version: 1\nrules:\n  - id: other\n    when: request.path.startsWith(\"/other\")\n    action: block\n";

/// Runs `portcullis keygen --key-id ID --out DIR` and returns stdout.
fn keygen(key_id: &str, out: &Path) -> String {
    let output = portcullis().args(["keygen", "--key-id", key_id, "--out"]).arg(out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Compiles `policy` into `dir/NAME-rREVISION.bundle`, signed with `key` if given.
fn compile(dir: &Path, policy: &str, name: &str, revision: u64, key: Option<&Path>) -> PathBuf {
    let source = dir.join(format!("{name}-{revision}.yaml"));
    fs::write(&source, policy).unwrap();
    let out = dir.join(format!("{name}-r{revision}.bundle"));
    let mut command = portcullis();
    command.arg("compile").arg(&source).arg("-o").arg(&out).args(["--name", name, "--revision"]);
    command.arg(revision.to_string());
    if let Some(key) = key {
        command.arg("--sign").arg(key);
    }
    let (output, stderr) = run(&mut command);
    assert!(output.status.success(), "{stderr}");
    out
}

/// `portcullis inspect FILE --trust PUB...`: exit success, stdout JSON (or null) and stderr.
fn inspect(file: &Path, trust: &[&Path]) -> (bool, serde_json::Value, String) {
    let mut command = portcullis();
    command.arg("inspect").arg(file);
    for key in trust {
        command.arg("--trust").arg(key);
    }
    let output = command.output().unwrap();
    let json = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (output.status.success(), json, String::from_utf8(output.stderr).unwrap())
}

/// `portcullis push` with the token and `--actor actor`; returns success and stderr.
fn push(server: &Server, name: &str, file: &Path, extra: &[&str]) -> (bool, String) {
    let (output, stderr) = run(portcullis()
        .env("PORTCULLIS_TOKEN", TOKEN)
        .args(["push", "--server", &server.url, "--name", name])
        .args(extra)
        .arg(file));
    (output.status.success(), stderr)
}

fn post(url: &str, body: &[u8]) -> Reply {
    reply(agent().post(url).header("Content-Type", "application/json").send(body).unwrap())
}

fn json_of(reply: &Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).unwrap()
}

fn stdout_of(command: &mut std::process::Command) -> String {
    let (output, stderr) = run(command);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn keygen_writes_a_private_secret_key_and_refuses_to_overwrite() {
    let dir = data_dir();
    let keys = dir.path().join("keys");
    let stdout = keygen("prod-1", &keys);
    let secret = fs::read_to_string(keys.join("prod-1.key")).unwrap();
    let public = fs::read_to_string(keys.join("prod-1.pub")).unwrap();
    let (kind, id, public_key) = signing::parse_key_text(&public).unwrap();
    assert_eq!((kind, id), ("public", "prod-1"));
    assert_eq!(signing::parse_key_text(&secret).unwrap().0, "secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(keys.join("prod-1.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(stdout.lines().next(), Some(public.trim_end()));
    let snippet = format!("\"trusted_keys\": {{\"prod-1\": \"{}\"}}", bundle::hex(&public_key));
    assert!(stdout.lines().any(|l| l == snippet), "{stdout}");

    // Never overwritten, and the old key is intact.
    let (output, stderr) = run(portcullis().args(["keygen", "--key-id", "prod-1", "--out"]).arg(&keys));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("refusing to overwrite"), "{stderr}");
    assert_eq!(fs::read_to_string(keys.join("prod-1.key")).unwrap(), secret);
    // Two keys are never the same: the seed comes from the operating system.
    keygen("prod-2", &keys);
    let other = fs::read_to_string(keys.join("prod-2.pub")).unwrap();
    assert_ne!(signing::parse_key_text(&other).unwrap().2, public_key);

    let (output, stderr) = run(portcullis().args(["keygen", "--key-id", "a/b", "--out"]).arg(&keys));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("invalid key id"), "{stderr}");
}

#[test]
fn compile_sign_then_inspect_trust_verifies_the_signer() {
    let dir = data_dir();
    keygen("k1", dir.path());
    keygen("k2", dir.path());
    let (k1, k1_pub, k2_pub) = (dir.path().join("k1.key"), dir.path().join("k1.pub"), dir.path().join("k2.pub"));
    let file = compile(dir.path(), POLICY_A, "api", 3, Some(&k1));

    let (ok, json, _) = inspect(&file, &[]);
    assert!(ok);
    assert_eq!((json["signed_by"].as_str(), json["signature"].as_str()), (Some("k1"), Some("not verified")));
    assert_eq!(json["revision"], 3);

    let (ok, json, stderr) = inspect(&file, &[&k2_pub, &k1_pub]);
    assert!(ok, "{stderr}");
    assert_eq!((json["signed_by"].as_str(), json["signature"].as_str()), (Some("k1"), Some("verified")));

    let (ok, _, stderr) = inspect(&file, &[&k2_pub]);
    assert!(!ok);
    assert!(stderr.contains("signed by a key this filter does not trust"), "{stderr}");

    // An unsigned bundle: signed_by null, and refused when keys are trusted.
    let unsigned = compile(dir.path(), POLICY_A, "api", 4, None);
    let (ok, json, _) = inspect(&unsigned, &[]);
    assert!(ok);
    assert_eq!((json["signed_by"].clone(), json["signature"].as_str()), (serde_json::Value::Null, Some("unsigned")));
    let (ok, _, stderr) = inspect(&unsigned, &[&k1_pub]);
    assert!(!ok && stderr.contains("not signed"), "{stderr}");

    // A public key is not a signing key.
    let (output, stderr) = run(portcullis()
        .arg("sign")
        .arg(&unsigned)
        .arg("--key")
        .arg(&k1_pub)
        .arg("-o")
        .arg(dir.path().join("x.bundle")));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("is a public key"), "{stderr}");
}

#[test]
fn sign_then_tampering_is_detected_by_inspect_trust() {
    let dir = data_dir();
    keygen("release", dir.path());
    let (key, public) = (dir.path().join("release.key"), dir.path().join("release.pub"));
    let unsigned = compile(dir.path(), POLICY_A, "api", 9, None);
    let signed = dir.path().join("signed.bundle");
    let (output, stderr) = run(portcullis().arg("sign").arg(&unsigned).arg("--key").arg(&key).arg("-o").arg(&signed));
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("with key release (revision 9"), "{stderr}");
    let (ok, json, stderr) = inspect(&signed, &[&public]);
    assert!(ok, "{stderr}");
    assert_eq!(json["signature"], "verified");

    // A flipped signature byte (just after magic, id length and the 7-byte id).
    let mut bytes = fs::read(&signed).unwrap();
    bytes[8 + 1 + 7 + 10] ^= 1;
    let tampered = dir.path().join("tampered.bundle");
    fs::write(&tampered, &bytes).unwrap();
    let (ok, _, stderr) = inspect(&tampered, &[&public]);
    assert!(!ok);
    assert!(stderr.contains("signature check failed") && stderr.contains("tampered or wrong key"), "{stderr}");

    // Another bundle under the valid signature: the signed digest no longer matches.
    let original = fs::read(&signed).unwrap();
    let envelope_len = original.len() - fs::read(&unsigned).unwrap().len();
    let other = fs::read(compile(dir.path(), POLICY_B, "other", 9, None)).unwrap();
    let mut swapped = original[..envelope_len].to_vec();
    swapped.extend_from_slice(&other);
    fs::write(&tampered, &swapped).unwrap();
    let (ok, _, stderr) = inspect(&tampered, &[&public]);
    assert!(!ok && stderr.contains("signature check failed"), "{stderr}");

    // A key made elsewhere under the same id does not verify.
    let elsewhere = dir.path().join("elsewhere");
    keygen("release", &elsewhere);
    let forged = dir.path().join("forged.bundle");
    let (output, _) = run(portcullis()
        .arg("sign")
        .arg(&unsigned)
        .arg("--key")
        .arg(elsewhere.join("release.key"))
        .arg("-o")
        .arg(&forged));
    assert!(output.status.success());
    let (ok, _, stderr) = inspect(&forged, &[&public]);
    assert!(!ok && stderr.contains("tampered or wrong key"), "{stderr}");
}

#[test]
fn replicas_share_bundles_and_long_polls_wake_on_a_push_to_the_other() {
    let dir = data_dir();
    let (a, b) = (Server::start(dir.path()), Server::start(dir.path()));
    let first = dir.path().join("first.bundle");
    fs::write(&first, valid_bundle("shared", 1)).unwrap();
    let (ok, stderr) = push(&a, "shared", &first, &[]);
    assert!(ok, "{stderr}");

    let from_a = get(&a.bundle_url("shared"), None);
    let from_b = get(&b.bundle_url("shared"), None);
    assert_eq!(from_b.status, 200);
    assert_eq!(from_b.body, fs::read(&first).unwrap());
    assert_eq!(from_a.etag, from_b.etag);
    let etag = from_b.etag.clone().unwrap();

    // Nothing changes: the wait runs out and the answer is 304.
    let started = Instant::now();
    let unchanged = get(&format!("{}?wait=1", b.bundle_url("shared")), Some(&etag));
    assert_eq!((unchanged.status, unchanged.etag.as_deref()), (304, Some(etag.as_str())));
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());

    // A long poll on B, then a push to A: B answers with the new bundle soon after.
    let url = format!("{}?wait=30", b.bundle_url("shared"));
    let waiting_etag = etag.clone();
    let waiter = thread::spawn(move || {
        let reply = get(&url, Some(&waiting_etag));
        (reply, Instant::now())
    });
    thread::sleep(Duration::from_millis(500));
    let second = dir.path().join("second.bundle");
    fs::write(&second, valid_bundle("shared", 2)).unwrap();
    let pushed = Instant::now();
    let (ok, stderr) = push(&a, "shared", &second, &[]);
    assert!(ok, "{stderr}");
    let (reply, answered) = waiter.join().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, fs::read(&second).unwrap());
    assert_ne!(reply.etag.as_deref(), Some(etag.as_str()));
    let delay = answered.saturating_duration_since(pushed);
    assert!(delay < Duration::from_secs(1), "woke {delay:?} after the push");
    let log = fs::read_to_string(&b.log).unwrap();
    assert!(log.lines().any(|l| l.contains("GET /v1/bundles/shared 200") && l.contains("changed after")), "{log}");

    // Objects are shared too, named by the ETag.
    let object = reply.etag.unwrap().trim_matches('"').to_owned();
    let fetched = get(&format!("{}/v1/objects/{object}", b.url), None);
    assert_eq!((fetched.status, fetched.body), (200, fs::read(&second).unwrap()));
    assert_eq!(get(&format!("{}/v1/objects/..%2Fbundles", b.url), None).status, 400);
    assert_eq!(get(&format!("{}/v1/objects/{}", b.url, "0".repeat(64)), None).status, 404);
    assert_eq!(get(&format!("{}?wait=soon", b.bundle_url("shared")), None).status, 400);
}

#[test]
fn shutdown_ends_long_polls_at_once() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    assert_eq!(put(&server.bundle_url("x"), Some(TOKEN), &valid_bundle("x", 1)).status, 200);
    let etag = get(&server.bundle_url("x"), None).etag.unwrap();
    let url = format!("{}?wait=60", server.bundle_url("x"));
    let waiter = thread::spawn(move || get(&url, Some(&etag)).status);
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert!(server.stop().success());
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    assert_eq!(waiter.join().unwrap(), 304);
}

#[test]
fn an_older_revision_is_409_unless_rollback_is_asked_for() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let url = server.bundle_url("api");
    assert_eq!(put(&url, Some(TOKEN), &valid_bundle("api", 5)).status, 200);

    let older = put(&url, Some(TOKEN), &valid_bundle("api", 4));
    assert_eq!(older.status, 409);
    assert_eq!(older.content_type.as_deref(), Some("application/json"));
    assert!(older.json_error().starts_with("revision 4 is not newer than the current revision 5 of 'api'"));
    assert_eq!(json_of(&older)["current_revision"], 5);
    // Same revision, other bytes: also refused.
    let mut other = decode_content(&valid_bundle("api", 5)).unwrap();
    other.compiler_version = "other".to_owned();
    assert_eq!(put(&url, Some(TOKEN), &bundle::encode(&other).unwrap()).status, 409);
    // The same bytes again (a retry): accepted, nothing recorded.
    let retry = put(&url, Some(TOKEN), &valid_bundle("api", 5));
    assert_eq!((retry.status, json_of(&retry)["unchanged"].as_bool()), (200, Some(true)));
    assert_eq!(get(&url, None).body, valid_bundle("api", 5));

    // Forced with --rollback: accepted and recorded.
    let file = dir.path().join("r4.bundle");
    fs::write(&file, valid_bundle("api", 4)).unwrap();
    let (ok, stderr) = push(&server, "api", &file, &["--rollback", "--actor", "oncall"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("rollback to revision 4"), "{stderr}");
    let history = json_of(&get(&format!("{url}/history"), None));
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[1]["revision"].as_u64(), entries[1]["rollback_of"].as_u64()), (Some(4), Some(4)));
    assert_eq!(entries[0]["rollback_of"], serde_json::Value::Null);
    assert_eq!(entries[1]["pushed_by"], "oncall");

    // push reports the 409.
    let file = dir.path().join("r3.bundle");
    fs::write(&file, valid_bundle("api", 3)).unwrap();
    let (ok, stderr) = push(&server, "api", &file, &[]);
    assert!(!ok && stderr.contains("HTTP 409") && stderr.contains("portcullis rollback"), "{stderr}");
}

#[test]
fn rollback_publishes_old_content_under_a_new_signed_revision() {
    let dir = data_dir();
    keygen("ops", dir.path());
    let (key, public) = (dir.path().join("ops.key"), dir.path().join("ops.pub"));
    let server = Server::start_with(
        {
            let mut command = portcullis();
            command.env("PORTCULLIS_TOKEN", TOKEN);
            command
        },
        &dir.path().join("data"),
        &[OsStr::new("--trust"), public.as_os_str()],
    );
    let good = compile(dir.path(), POLICY_A, "api", 100, Some(&key));
    let bad = compile(dir.path(), POLICY_B, "api", 200, Some(&key));
    assert!(push(&server, "api", &good, &["--actor", "alice"]).0);
    assert!(push(&server, "api", &bad, &["--actor", "bob"]).0);

    let (output, stderr) = run(portcullis()
        .env("PORTCULLIS_TOKEN", TOKEN)
        .args(["rollback", "--server", &server.url, "--name", "api", "--to", "100", "--actor", "carol", "--sign"])
        .arg(&key));
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("rolled back api to the content of revision 100 as revision"), "{stderr}");

    let served = get(&server.bundle_url("api"), None).body;
    let envelope = signing::open(&served).unwrap();
    assert_eq!(envelope.key_id, Some("ops"));
    let mut restored = decode_content(envelope.bundle).unwrap();
    assert!(restored.revision > 200, "{}", restored.revision);
    let good_bytes = fs::read(&good).unwrap();
    let original = decode_content(signing::open(&good_bytes).unwrap().bundle).unwrap();
    let new_revision = restored.revision;
    restored.revision = 100;
    assert_eq!(restored, original);
    let served_file = dir.path().join("served.bundle");
    fs::write(&served_file, &served).unwrap();
    let (ok, json, stderr) = inspect(&served_file, &[&public]);
    assert!(ok, "{stderr}");
    assert_eq!(json["rules"][0]["id"], "admin");

    let history = json_of(&get(&format!("{}/history", server.bundle_url("api")), None));
    let last = history["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["revision"].as_u64(), Some(new_revision));
    assert_eq!(last["rollback_of"], 100);
    assert_eq!(last["pushed_by"], "carol");
    assert_eq!(last["signed_by"], "ops");

    // An explicit revision that is not higher is refused before anything is sent.
    let (output, stderr) = run(portcullis().env("PORTCULLIS_TOKEN", TOKEN).args([
        "rollback",
        "--server",
        &server.url,
        "--name",
        "api",
        "--to",
        "100",
        "--revision",
        "150",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("not higher than the newest revision"), "{stderr}");
    // Unsigned, through a server that trusts keys: refused.
    let (output, stderr) = run(portcullis().env("PORTCULLIS_TOKEN", TOKEN).args([
        "rollback",
        "--server",
        &server.url,
        "--name",
        "api",
        "--to",
        "200",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("HTTP 403") && stderr.contains("not signed"), "{stderr}");
    let (output, stderr) = run(portcullis().env("PORTCULLIS_TOKEN", TOKEN).args([
        "rollback",
        "--server",
        &server.url,
        "--name",
        "api",
        "--to",
        "7",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("revision 7 is not in the history"), "{stderr}");
}

#[test]
fn history_lists_pushes_with_who_pushed() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    for (revision, actor) in [(1, "alice"), (2, "bob")] {
        let file = dir.path().join(format!("r{revision}.bundle"));
        fs::write(&file, valid_bundle("hist", revision)).unwrap();
        assert!(push(&server, "hist", &file, &["--actor", actor]).0);
    }
    let table = stdout_of(portcullis().args(["history", "--server", &server.url, "--name", "hist"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("REVISION") && lines[0].contains("PUSHED BY"), "{table}");
    let digest = bundle::hex(&bundle::peek_digest(&valid_bundle("hist", 1)).unwrap());
    assert!(lines[1].starts_with("1 ") && lines[1].contains("alice") && lines[1].contains(&digest[..12]), "{table}");
    assert!(lines[2].starts_with("2 ") && lines[2].contains("bob"), "{table}");
    // pushed_at is RFC 3339 UTC.
    let history = json_of(&get(&format!("{}/history", server.bundle_url("hist")), None));
    let pushed_at = history["entries"][0]["pushed_at"].as_str().unwrap();
    assert!(pushed_at.len() == 24 && pushed_at.ends_with('Z') && &pushed_at[10..11] == "T", "{pushed_at}");

    let (output, stderr) = run(portcullis().args(["history", "--server", &server.url, "--name", "never"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("HTTP 404"), "{stderr}");
}

fn report(node: &str, revision: Option<u64>, last_error: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "node": node,
        "bundle": "demo",
        "revision": revision,
        "sha256": revision.map(|_| "ab".repeat(32)),
        "last_fetch_ok_ms": 1_700_000_000_000u64,
        "last_error": last_error,
        "filter_version": "0.1.0",
    }))
    .unwrap()
}

#[test]
fn status_reports_show_in_the_table_and_go_stale() {
    let dir = data_dir();
    let (a, b) = (Server::start(dir.path()), Server::start(dir.path()));
    assert_eq!(put(&a.bundle_url("demo"), Some(TOKEN), &valid_bundle("demo", 2)).status, 200);
    let status_url = format!("{}/v1/status", a.url);
    let recorded = post(&status_url, &report("envoy-1", Some(2), None));
    assert_eq!(recorded.status, 200, "{}", String::from_utf8_lossy(&recorded.body));
    assert_eq!(post(&status_url, &report("envoy-2", Some(1), None)).status, 200);
    assert_eq!(post(&status_url, &report("envoy-3", Some(2), Some("fetch timed out"))).status, 200);
    assert!(dir.path().join("status/envoy-1.json").is_file());

    // Reported to A, listed by B.
    let table = stdout_of(portcullis().args(["status", "--server", &b.url, "--stale-after", "5s"]));
    let row = |node: &str| table.lines().find(|l| l.starts_with(node)).unwrap_or_else(|| panic!("{table}")).to_owned();
    assert!(table.starts_with("NODE"), "{table}");
    let one = row("envoy-1");
    assert!(one.contains(" demo ") && one.contains(" 2 ") && one.contains(&"ab".repeat(6)), "{table}");
    assert!(one.contains(" ok "), "{table}");
    assert!(row("envoy-2").contains(" behind "), "{table}");
    let three = row("envoy-3");
    assert!(three.contains(" failing ") && three.ends_with("fetch timed out"), "{table}");

    thread::sleep(Duration::from_millis(700));
    let table = stdout_of(portcullis().args(["status", "--server", &b.url, "--stale-after", "500ms"]));
    assert!(table.lines().skip(1).all(|l| l.contains(" stale ")), "{table}");

    let view = json_of(&get(&format!("{}/v1/status", b.url), None));
    assert_eq!(view["bundles"]["demo"]["revision"], 2);
    assert_eq!(view["nodes"].as_array().unwrap().len(), 3);
    assert!(view["nodes"][0]["reported_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn status_reports_are_bounded_and_validated() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let url = format!("{}/v1/status", server.url);
    let mut big = report("n", None, Some(&"x".repeat(5000)));
    assert_eq!(post(&url, &big).status, 413);
    big.truncate(4000);
    assert_eq!(post(&url, &big).status, 400);
    for body in [
        &b"not json"[..],
        br#"{"node":"n"}"#,
        &report("../etc", None, None),
        &report("n", None, Some(&"e".repeat(600))),
        br#"{"node":"n","bundle":"Bad Name","revision":null,"sha256":null,"last_fetch_ok_ms":null,"last_error":null,"filter_version":"1"}"#,
    ] {
        let reply = post(&url, body);
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(body));
        assert!(reply.json_error().starts_with("invalid status report"), "{}", reply.json_error());
    }
    assert_eq!(fs::read_dir(dir.path().join("status")).unwrap().count(), 0);
}

#[test]
fn a_server_that_trusts_keys_refuses_unsigned_and_foreign_bundles() {
    let dir = data_dir();
    keygen("k1", dir.path());
    keygen("k2", dir.path());
    let mut command = portcullis();
    command.env("PORTCULLIS_TOKEN", TOKEN);
    let trust = dir.path().join("k1.pub");
    let server = Server::start_with(command, &dir.path().join("data"), &[OsStr::new("--trust"), trust.as_os_str()]);
    let unsigned = compile(dir.path(), POLICY_A, "api", 1, None);
    let (ok, stderr) = push(&server, "api", &unsigned, &[]);
    assert!(!ok && stderr.contains("HTTP 403") && stderr.contains("not signed"), "{stderr}");
    let foreign = compile(dir.path(), POLICY_A, "api", 2, Some(&dir.path().join("k2.key")));
    let (ok, stderr) = push(&server, "api", &foreign, &[]);
    assert!(!ok && stderr.contains("does not trust"), "{stderr}");
    let signed = compile(dir.path(), POLICY_A, "api", 3, Some(&dir.path().join("k1.key")));
    let (ok, stderr) = push(&server, "api", &signed, &[]);
    assert!(ok && stderr.contains("signed by k1"), "{stderr}");
}
