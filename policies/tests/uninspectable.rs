//! What a rule does when the data it reads could not be inspected: its `on_uninspectable` decides, never "no match".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "compiler")]

use std::borrow::Cow;

use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
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
