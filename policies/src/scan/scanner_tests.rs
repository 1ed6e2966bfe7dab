//! Scanner tests against a bundle with every built-in, built by the compiler.

use super::*;
use crate::compiler::{compile_to_bytes, CompileOptions};

/// A policy with one detection per built-in in every location.
fn policy(inspection: &str) -> String {
    let mut yaml = format!("version: 1\n{inspection}detections:\n");
    for location in Location::ALL {
        let loc = location.name();
        for b in builtin::BUILTINS {
            yaml.push_str(&format!("  - id: d-{}-{loc}\n    classifier: {}\n    in: {loc}\n", b.id, b.id));
            if let Some(r) = b.requires {
                yaml.push_str(&format!("    requires: d-{r}-{loc}\n"));
            }
        }
    }
    yaml.push_str("rules:\n  - id: r\n    when: request.method == \"NOPE\"\n    action: monitor\n");
    yaml
}

fn bundle_with(inspection: &str) -> Bundle {
    let options = CompileOptions { policy_name: "t".into(), revision: 1, file_name: "t.yaml".into() };
    let bytes = compile_to_bytes(&policy(inspection), &options).unwrap();
    Bundle::from_bytes(&bytes).unwrap()
}

fn bundle() -> Bundle {
    bundle_with("")
}

/// Counts by classifier id, zeros left out.
fn named(bundle: &Bundle, counts: &[u32]) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> =
        bundle.classifiers().iter().zip(counts).filter(|(_, n)| **n > 0).map(|(c, n)| (c.id.clone(), *n)).collect();
    out.sort();
    out
}

fn scan_chunks(bundle: &Bundle, ct: Option<&[u8]>, chunks: &[&[u8]]) -> Vec<(String, u32)> {
    let mut inspector = BodyInspector::new(bundle, Location::RequestBody, ct, None).unwrap();
    for c in chunks {
        inspector.feed(bundle, c);
    }
    inspector.finish(bundle);
    named(bundle, inspector.classifier_counts())
}

fn scan(bundle: &Bundle, body: &[u8]) -> Vec<(String, u32)> {
    scan_chunks(bundle, Some(b"application/json"), &[body])
}

fn expect(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = list.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
    v.sort();
    v
}

const SAMPLE: &str = r#"{"card":"4111 1111 1111 1111","exp":"12/27","ssn":"123-45-6789",
"iban":"GB82 WEST 1234 5698 7654 32","email":"jane.doe@example.co.uk","phone":"+44 20 7946 0958",
"ip":"192.168.10.1","ip6":"2001:db8::8a2e:370:7334","aws":"AKIAIOSFODNN7EXAMPLE",
"gh":"ghp_a1B2a1B2a1B2a1B2a1B2a1B2a1B2a1B2a1B2","slack":"xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
"stripe":"sk_live_4eC39HqLyjWDarjtT1zdp7dc","key":"-----BEGIN RSA PRIVATE KEY-----\nMIIE",
"jwt":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig","n":[1,22,333,4444,1.5,"2024-01-15"]}"#;

fn sample_counts() -> Vec<(String, u32)> {
    expect(&[
        ("aws_access_key_id", 1),
        ("card_expiry", 1),
        ("credit_card", 1),
        ("email", 1),
        ("github_token", 1),
        ("iban", 1),
        ("ipv4", 1),
        ("ipv6", 1),
        ("jwt", 1),
        ("phone", 1),
        ("private_key", 1),
        ("slack_token", 1),
        ("stripe_secret_key", 1),
        ("us_ssn", 1),
    ])
}

#[test]
fn every_builtin_once() {
    let bundle = bundle();
    assert_eq!(scan(&bundle, SAMPLE.as_bytes()), sample_counts());
    // Repeating the body repeats every finding: nothing is counted twice, nothing is lost.
    let twice = format!("{SAMPLE}\n{SAMPLE}");
    let doubled: Vec<(String, u32)> = sample_counts().into_iter().map(|(k, n)| (k, n * 2)).collect();
    assert_eq!(scan(&bundle, twice.as_bytes()), doubled);
}

#[test]
fn split_at_every_offset() {
    let bundle = bundle();
    let body = SAMPLE.as_bytes();
    for split in 0..=body.len() {
        let (a, b) = body.split_at(split);
        assert_eq!(scan_chunks(&bundle, None, &[a, b]), sample_counts(), "split at {split}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(scan_chunks(&bundle, None, &bytes), sample_counts(), "byte by byte");
}

#[test]
fn no_double_counting() {
    let bundle = bundle();
    let one = |text: &str, id: &str| {
        assert_eq!(scan(&bundle, text.as_bytes()), expect(&[(id, 1)]), "{text}");
    };
    one("pan 4111111111111111 ok", "credit_card");
    one("my card 4574911566148561. Could you", "credit_card");
    one("pan 4111-1111-1111-1111", "credit_card");
    one("mail a@mail.example.co.uk.", "email");
    one("iban GB82WEST12345698765432 and more words", "iban");
    one("ssn 123 45 6789", "us_ssn");
    assert_eq!(scan(&bundle, b"4111111111111111 and 5555555555554444"), expect(&[("credit_card", 2)]));
    // Not cards: Luhn fails, too long, a version string, a bare nine-digit number without a keyword.
    assert_eq!(scan(&bundle, b"4111111111111112 41111111111111111111 1.2.3.4.5 123456789"), expect(&[]));
}

#[test]
fn cap_truncates() {
    let bundle = bundle_with("inspection:\n  max_body_bytes: 64\n");
    let mut body = b"card 4111111111111111 ".to_vec();
    body.resize(64, b' ');
    body.extend_from_slice(b"5555555555554444 beyond the cap");
    let mut inspector = BodyInspector::new(&bundle, Location::RequestBody, None, None).unwrap();
    for chunk in body.chunks(10) {
        inspector.feed(&bundle, chunk);
    }
    inspector.finish(&bundle);
    // What was before the cap is found; what was after it is the uninspectable finding.
    assert!(inspector.truncated() && inspector.uninspectable());
    assert_eq!(inspector.inspected_bytes(), 64);
    assert_eq!(named(&bundle, inspector.classifier_counts()), expect(&[("credit_card", 1)]));
    // Exactly at the cap is not truncated.
    let mut inspector = BodyInspector::new(&bundle, Location::RequestBody, None, None).unwrap();
    inspector.feed(&bundle, &body[..64]);
    inspector.finish(&bundle);
    assert!(!inspector.truncated() && !inspector.uninspectable());
}

#[test]
fn content_types_and_encodings() {
    let bundle = bundle();
    let card = b"4111111111111111";
    let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR "[..], card].concat();
    let grpc = [&b"\0\0\0\0\x12\n\x10"[..], card].concat();
    let skipped_body = |ct: Option<&[u8]>, ce: Option<&[u8]>, body: &[u8]| {
        let mut i = BodyInspector::new(&bundle, Location::ResponseBody, ct, ce).unwrap();
        i.feed(&bundle, body);
        i.finish(&bundle);
        (i.skipped(), i.classifier_counts().iter().sum::<u32>())
    };
    let skipped = |ct: Option<&[u8]>, ce: Option<&[u8]>| skipped_body(ct, ce, card);
    assert_eq!(skipped_body(Some(b"image/png"), None, &png), (Some(SkipReason::Binary), 0));
    assert_eq!(skipped_body(Some(b"application/grpc"), None, &grpc), (Some(SkipReason::Binary), 0));
    // Labelled binary, but text: inspected.
    assert_eq!(skipped(Some(b"image/png"), None), (None, 1));
    assert_eq!(skipped(Some(b"application/grpc"), None), (None, 1));
    assert_eq!(skipped(Some(b"application/json"), Some(b"x-anything")), (Some(SkipReason::Encoded), 0));
    assert_eq!(skipped(Some(b"application/json"), Some(b"gzip")), (Some(SkipReason::Encoded), 0), "not gzip");
    assert_eq!(skipped(Some(b"text/plain"), Some(b"identity")), (None, 1));
    assert_eq!(skipped(None, None), (None, 1));
    let binary = bundle_with("inspection:\n  inspect_binary: true\n");
    let mut i = BodyInspector::new(&binary, Location::ResponseBody, Some(b"application/octet-stream"), None).unwrap();
    i.feed(&binary, card);
    i.finish(&binary);
    assert_eq!((i.skipped(), i.classifier_counts().iter().sum::<u32>()), (None, 1));
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

fn brotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams::default();
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).unwrap();
    out
}

/// `(uninspectable, truncated, findings)` of `body` sent in `encoding`, in chunks of `chunk` bytes.
fn encoded(bundle: &Bundle, encoding: &[u8], body: &[u8], chunk: usize) -> (bool, bool, Vec<(String, u32)>) {
    let mut i = BodyInspector::new(bundle, Location::RequestBody, Some(b"application/json"), Some(encoding)).unwrap();
    for c in body.chunks(chunk) {
        i.feed(bundle, c);
    }
    i.finish(bundle);
    (i.uninspectable(), i.truncated(), named(bundle, i.classifier_counts()))
}

#[test]
fn compressed_bodies_are_decoded() {
    let bundle = bundle();
    let body = br#"{"note":"pay","card":"4111 1111 1111 1111","to":"jane@example.com"}"#;
    let found = expect(&[("credit_card", 1), ("email", 1)]);
    let deflate = |zlib: bool| {
        use std::io::Write;
        let mut out = Vec::new();
        if zlib {
            let mut e = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::best());
            e.write_all(body).unwrap();
            e.finish().unwrap();
        } else {
            let mut e = flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::best());
            e.write_all(body).unwrap();
            e.finish().unwrap();
        }
        out
    };
    let mut two_members = gzip(&body[..20]);
    two_members.extend(gzip(&body[20..]));
    for (encoding, data) in [
        (&b"gzip"[..], gzip(body)),
        (b"x-gzip", two_members),
        (b"deflate", deflate(true)),
        (b"deflate", deflate(false)),
        (b"br", brotli(body)),
    ] {
        for chunk in [1, 7, 4096] {
            assert_eq!(encoded(&bundle, encoding, &data, chunk), (false, false, found.clone()), "{encoding:?}");
        }
    }
    // Compressed, escaped, split: still the card.
    let escaped = br#"{"card":"\u0034111 1111 1111 1111"}"#;
    assert_eq!(encoded(&bundle, b"br", &brotli(escaped), 3).2, expect(&[("credit_card", 1)]));
}

#[test]
fn undecodable_bodies_are_uninspectable() {
    let bundle = bundle();
    let body = br#"{"card":"4111 1111 1111 1111"}"#;
    assert_eq!(encoded(&bundle, b"x-anything", body, 10), (true, false, vec![]));
    assert_eq!(encoded(&bundle, b"zstd", body, 10), (true, false, vec![]));
    assert_eq!(encoded(&bundle, b"gzip, br", &brotli(&gzip(body)), 10), (true, false, vec![]));
    assert_eq!(encoded(&bundle, b"gzip", body, 10), (true, false, vec![]), "not gzip at all");
    let mut corrupt = gzip(body);
    let middle = corrupt.len() / 2;
    corrupt.truncate(middle);
    assert!(encoded(&bundle, b"gzip", &corrupt, 10).0, "cut short");
    let mut trailing = brotli(body);
    trailing.extend_from_slice(b"more");
    assert!(encoded(&bundle, b"br", &trailing, 10).0, "bytes after the end");
    assert!(encoded(&bundle, b"deflate", b"\xff\xff\xff\xff", 10).0, "garbage");
    // Identity and absent encodings are plain bodies.
    assert_eq!(encoded(&bundle, b"identity", body, 10), (false, false, expect(&[("credit_card", 1)])));
}

#[test]
fn bodies_decoded_for_fields() {
    let body = br#"{"username":"admin"}"#;
    assert_eq!(decode_body(None, body, 100).as_deref(), Some(&body[..]));
    assert_eq!(decode_body(Some(b"gzip"), &gzip(body), 100).as_deref(), Some(&body[..]));
    assert_eq!(decode_body(Some(b"br"), &brotli(body), 100).as_deref(), Some(&body[..]));
    assert_eq!(decode_body(Some(b"br"), &brotli(body), 10), None, "longer than the cap");
    assert_eq!(decode_body(Some(b"x-anything"), body, 100), None);
    assert_eq!(decode_body(Some(b"gzip"), body, 100), None);
}

#[test]
fn decompression_bombs_stop_at_the_cap() {
    let bundle = bundle_with("inspection:\n  max_body_bytes: 4096\n");
    let mut body = b"card 4111111111111111 ".to_vec();
    body.resize(10 * 1024 * 1024, b'x');
    let bomb = gzip(&body);
    assert!(bomb.len() < 4096 * 8, "{}", bomb.len());
    let (uninspectable, truncated, found) = encoded(&bundle, b"gzip", &bomb, 1024);
    // Decoded bytes past the cap are not inspected: the body is uninspectable (truncated), its start still found.
    assert_eq!((uninspectable, truncated, found), (true, true, expect(&[("credit_card", 1)])));
    let (uninspectable, truncated, _) = encoded(&bundle, b"br", &brotli(&body), 1024);
    assert_eq!((uninspectable, truncated), (true, true));
}

#[test]
fn json_escapes_are_decoded() {
    let bundle = bundle();
    let body = br#"{"a":"\u0034111 1111 1111 1111","b":"jane\u0040example.com","c":"\u0035555\/5555\/5555\/4444"}"#;
    for split in 0..=body.len() {
        let (a, b) = body.split_at(split);
        assert_eq!(
            scan_chunks(&bundle, Some(b"application/json"), &[a, b]),
            expect(&[("credit_card", 1), ("email", 1)]),
            "split at {split}"
        );
    }
    assert_eq!(scan_chunks(&bundle, Some(b"text/plain"), &[br"\u0034111111111111111"]), expect(&[("credit_card", 1)]));
    let ct = b"multipart/form-data; boundary=b";
    let body = b"--b\r\nContent-Type: application/json\r\n\r\n{\"c\":\"\\u0034111 1111 1111 1111\"}\r\n--b--\r\n";
    for split in 0..=body.len() {
        let (a, b) = body.split_at(split);
        assert_eq!(scan_chunks(&bundle, Some(ct), &[a, b]), expect(&[("credit_card", 1)]), "split at {split}");
    }
}

#[test]
fn forms_and_multipart() {
    let bundle = bundle();
    let form = b"email=jane%40example.com&card=4111+1111+1111+1111&x=%4";
    for split in 0..=form.len() {
        let (a, b) = form.split_at(split);
        assert_eq!(
            scan_chunks(&bundle, Some(b"application/x-www-form-urlencoded"), &[a, b]),
            expect(&[("credit_card", 1), ("email", 1)]),
            "split at {split}"
        );
    }
    let ct = b"multipart/form-data; boundary=----b0undary";
    let body = b"------b0undary\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nmail jane@example.com\r\n\
------b0undary\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\
\x89PNG\r\n\x1a\n4111111111111111\r\n------b0undary\r\nContent-Type: text/plain\r\n\r\n5555555555554444\r\n\
------b0undary\r\nContent-Type: application/octet-stream\r\n\r\n{\"card\":\"4000 0566 5566 5556\"}\r\n------b0undary--\r\n";
    // The PNG part is binary and skipped; the part labelled binary that is JSON is sniffed and scanned.
    for split in 0..=body.len() {
        let (a, b) = body.split_at(split);
        assert_eq!(
            scan_chunks(&bundle, Some(ct), &[a, b]),
            expect(&[("credit_card", 2), ("email", 1)]),
            "split at {split}"
        );
    }
}

#[test]
fn query_values() {
    let bundle = bundle();
    let counts = scan_value(&bundle, Location::RequestQuery, b"to=jane%40example.com&pan=4111+1111+1111+1111");
    assert_eq!(named(&bundle, &counts), expect(&[("credit_card", 1), ("email", 1)]));
    assert_eq!(named(&bundle, &scan_value(&bundle, Location::RequestQuery, b"page=2")), expect(&[]));
}

#[test]
fn layering_and_other_bundles() {
    let bundle = bundle();
    let mut findings = Findings::new(&bundle);
    let mut i = BodyInspector::new(&bundle, Location::ResponseBody, None, None).unwrap();
    i.feed(&bundle, b"exp 12/27 only");
    i.finish(&bundle);
    findings.absorb(&bundle, Location::ResponseBody, i.classifier_counts());
    assert_eq!(findings.nonzero().count(), 0, "an expiry without a card does not count");
    let mut i = BodyInspector::new(&bundle, Location::ResponseBody, None, None).unwrap();
    i.feed(&bundle, b"4111111111111111 exp 12/27");
    i.finish(&bundle);
    findings.absorb(&bundle, Location::ResponseBody, i.classifier_counts());
    assert_eq!(findings.nonzero().count(), 2);
    // A different bundle than the inspector was made for is ignored, never misread.
    let other = bundle_with("inspection:\n  max_body_bytes: 100\n");
    let mut i = BodyInspector::new(&bundle, Location::ResponseBody, None, None).unwrap();
    i.feed(&other, b"4111111111111111 ");
    i.finish(&other);
    assert_eq!(i.classifier_counts().iter().sum::<u32>(), 0);
}
