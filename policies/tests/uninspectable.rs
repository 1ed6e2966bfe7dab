//! What a rule does when the data it reads could not be inspected: its `on_uninspectable` decides, never "no match".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "compiler")]

use std::borrow::Cow;

use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
use portcullis_policies::scan::{BodyInspector, Findings};
use portcullis_policies::{Action, Attribute, Bundle, Location, Request};

const POLICY: &str = r#"version: 1
detections:
  - id: cards-in
    classifier: credit_card
    in: request.body
rules:
  - id: watch-cards
    when: detected("cards-in")
    action: monitor
  - id: no-admin-login
    when: request.body["username"] == "admin"
    action: block
  - id: cards-on-post
    when: request.method == "POST" && detected("cards-in")
    action: block
    on_uninspectable: PASS_OR_BLOCK
"#;

fn bundle(on_uninspectable: &str) -> Bundle {
    let yaml = POLICY.replace("PASS_OR_BLOCK", on_uninspectable);
    let options = CompileOptions { policy_name: "t".into(), revision: 1, file_name: "t.yaml".into() };
    Bundle::from_bytes(&compile_to_bytes(&yaml, &options).unwrap()).unwrap()
}

#[derive(Default)]
struct Exchange {
    method: &'static str,
    encoded: bool,
    fields_unreadable: bool,
    username: Option<&'static str>,
    cards: u32,
}

impl Request for Exchange {
    fn attribute(&self, attribute: Attribute) -> Option<Cow<'_, [u8]>> {
        (attribute == Attribute::RequestMethod).then_some(Cow::Borrowed(self.method.as_bytes()))
    }
    fn header(&self, _name: &[u8]) -> Option<Cow<'_, [u8]>> {
        None
    }
    fn detection_count(&self, _detection: u16) -> u32 {
        self.cards
    }
    fn uninspectable(&self, location: Location) -> bool {
        self.encoded && location == Location::RequestBody
    }
    fn body_field(&self, _path: &str) -> Option<Cow<'_, [u8]>> {
        self.username.map(|u| Cow::Borrowed(u.as_bytes()))
    }
    fn body_fields_unreadable(&self) -> bool {
        self.fields_unreadable
    }
}

/// `(action, deciding rule, uninspectable count)`.
fn decide(bundle: &Bundle, exchange: &Exchange) -> (Option<Action>, Option<String>, u16) {
    let v = bundle.evaluate(exchange);
    (v.action, v.rule.and_then(|r| bundle.rule_id(r)).map(str::to_owned), v.uninspectable)
}

#[test]
fn an_encoded_body_is_decided_by_the_rule() {
    let block = bundle("block");
    let post = Exchange { method: "POST", username: Some("ann"), ..Exchange::default() };
    assert_eq!(decide(&block, &post), (None, None, 0));
    let encoded = Exchange { encoded: true, ..post };
    // The monitor rule passes (its default), the blocking one blocks.
    assert_eq!(decide(&block, &encoded), (Some(Action::Block), Some("cards-on-post".into()), 2));
    // `false && uninspectable` is false: a GET is not blocked for a body it might have had.
    let get = Exchange { method: "GET", encoded: true, username: Some("ann"), ..Exchange::default() };
    assert_eq!(decide(&block, &get), (None, None, 1));
    // on_uninspectable: pass lets it through, and says so.
    let pass = bundle("pass");
    let encoded = Exchange { method: "POST", encoded: true, username: Some("ann"), ..Exchange::default() };
    assert_eq!(decide(&pass, &encoded), (None, None, 2));
    // A card found before the body stopped decoding still counts.
    let found = Exchange { cards: 1, ..encoded };
    assert_eq!(decide(&pass, &found), (Some(Action::Block), Some("cards-on-post".into()), 0));
}

#[test]
fn an_unreadable_body_field_is_decided_by_the_rule() {
    let b = bundle("pass");
    let unreadable = Exchange { method: "POST", fields_unreadable: true, ..Exchange::default() };
    assert_eq!(decide(&b, &unreadable), (Some(Action::Block), Some("no-admin-login".into()), 1));
    let absent = Exchange { method: "POST", ..Exchange::default() };
    assert_eq!(decide(&b, &absent), (None, None, 0), "an absent field is an error: no match");
}

/// A blocking body rule on the built-in card classifier, with a small cap.
fn scan_bundle(on_uninspectable: &str) -> Bundle {
    let yaml = format!(
        "version: 1\ninspection:\n  max_body_bytes: 1024\ndetections:\n  - id: cards-in\n    classifier: credit_card\n    \
         in: request.body\nrules:\n  - id: cards\n    when: detected(\"cards-in\")\n    action: block\n    \
         on_uninspectable: {on_uninspectable}\n"
    );
    let options = CompileOptions { policy_name: "t".into(), revision: 1, file_name: "t.yaml".into() };
    Bundle::from_bytes(&compile_to_bytes(&yaml, &options).unwrap()).unwrap()
}

/// What the body inspector makes of `body` labelled `content_type`, sent in `chunk`-byte chunks: `(cards found,
/// uninspectable, truncated)`, and the rule's decision on it.
fn inspect(bundle: &Bundle, content_type: &[u8], body: &[u8], chunk: usize) -> ((u32, bool, bool), Option<Action>) {
    let mut inspector = BodyInspector::new(bundle, Location::RequestBody, Some(content_type), None).unwrap();
    for part in body.chunks(chunk) {
        inspector.feed(bundle, part);
    }
    inspector.finish(bundle);
    let mut findings = Findings::new(bundle);
    findings.absorb(bundle, Location::RequestBody, inspector.classifier_counts());
    findings.set_uninspectable(Location::RequestBody, inspector.uninspectable());
    let cards = findings.count(0);
    let exchange = Exchange { method: "POST", encoded: inspector.uninspectable(), cards, ..Exchange::default() };
    ((cards, inspector.uninspectable(), inspector.truncated()), bundle.evaluate(&exchange).action)
}

const CARD_JSON: &[u8] = br#"{"payment":{"number":"4111 1111 1111 1111"}}"#;

#[test]
fn a_card_past_the_cap_is_decided_by_the_rule() {
    let (block, pass) = (scan_bundle("block"), scan_bundle("pass"));
    let padded = [&[b' '; 2000][..], CARD_JSON].concat();
    for chunk in [1, 100, 4096] {
        // Past the cap: nothing found, but the body is uninspectable, so the blocking rule blocks by default.
        assert_eq!(inspect(&block, b"application/json", &padded, chunk), ((0, true, true), Some(Action::Block)));
        assert_eq!(inspect(&pass, b"application/json", &padded, chunk), ((0, true, true), None));
        // A card before the cap is still found, whatever the rest.
        let early = [CARD_JSON, &[b' '; 2000][..]].concat();
        assert_eq!(inspect(&pass, b"application/json", &early, chunk), ((1, true, true), Some(Action::Block)));
        // A body that fits is as before.
        assert_eq!(inspect(&block, b"application/json", CARD_JSON, chunk), ((1, false, false), Some(Action::Block)));
        assert_eq!(inspect(&block, b"application/json", b"{}", chunk), ((0, false, false), None));
    }
}

#[test]
fn a_binary_label_on_text_does_not_hide_it() {
    let block = scan_bundle("block");
    let escaped = br#"{"number":"\u0034111 1111 1111 1111"}"#;
    for content_type in [&b"application/octet-stream"[..], b"image/png", b"application/grpc", b"application/zip"] {
        for chunk in [1, 7, 4096] {
            assert_eq!(inspect(&block, content_type, CARD_JSON, chunk), ((1, false, false), Some(Action::Block)));
            // Sniffed as text, so with the text path's JSON escapes decoded.
            assert_eq!(inspect(&block, content_type, escaped, chunk), ((1, false, false), Some(Action::Block)));
            // Real binary stays skipped, card or not: not a finding, not uninspectable.
            let png = [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], CARD_JSON].concat();
            assert_eq!(inspect(&block, content_type, &png, chunk), ((0, false, false), None));
            // Text first, binary within the first 512 bytes: binary, and what the text seemed to hold is dropped.
            let late = [CARD_JSON, &[0u8, 1, 2, 3][..]].concat();
            assert_eq!(inspect(&block, content_type, &late, chunk), ((0, false, false), None));
        }
    }
    // Binary bytes after the first 512 do not make a text body binary.
    let long = [CARD_JSON, &[b' '; 600][..], &[0u8; 8][..]].concat();
    assert_eq!(inspect(&block, b"application/octet-stream", &long, 64), ((1, false, false), Some(Action::Block)));
}

#[test]
fn a_base64_multipart_part_is_decided_by_the_rule() {
    let (block, pass) = (scan_bundle("block"), scan_bundle("pass"));
    let form = b"multipart/form-data; boundary=XyZ";
    // RFC 7578 forbids a transfer encoding in form data: a client sending one hides what the scanner reads.
    let hidden = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"card\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
        NDExMSAxMTExIDExMTEgMTExMQ==\r\n--XyZ--\r\n";
    for chunk in [1, 7, 4096] {
        assert_eq!(inspect(&block, form, hidden, chunk), ((0, true, false), Some(Action::Block)));
        assert_eq!(inspect(&pass, form, hidden, chunk), ((0, true, false), None));
    }
    // Plain parts are read as before, and a card in one is found.
    let plain = b"--XyZ\r\nContent-Disposition: form-data; name=\"card\"\r\n\r\n4111 1111 1111 1111\r\n--XyZ--\r\n";
    assert_eq!(inspect(&pass, form, plain, 7), ((1, false, false), Some(Action::Block)));
}
