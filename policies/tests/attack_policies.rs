//! Attack detections in policies: how `classifier: sqli` and friends compile, what travels in the bundle, and the
//! errors a policy author gets (`file:line:col: message`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![cfg(feature = "compiler")]

use portcullis_policies::attacks::{AttackClass, Place, Sensitivity};
use portcullis_policies::compiler::{compile, compile_to_bytes, CompileOptions};
use portcullis_policies::detect::{Exclusion, Location};
use portcullis_policies::program::Phase;
use portcullis_policies::Bundle;

fn options() -> CompileOptions {
    CompileOptions { policy_name: "owasp".into(), revision: 1, file_name: "owasp.yaml".into() }
}

fn error(source: &str) -> String {
    compile(source, &options()).unwrap_err().to_string()
}

const POLICY: &str = r#"version: 1
detections:
  - id: sqli
    classifier: sqli
    in: request
    exclude:
      - { endpoint: "POST api.example.com/comments", param: body.html }
      - { param: header.referer }
  - id: xss-query
    classifier: xss
    in: request.query
    sensitivity: high
  - id: traversal-path
    classifier: path_traversal
    in: request.path
    sensitivity: low
  - id: cards
    classifier: credit_card
    in: request.body
rules:
  - id: block-sqli
    when: detected("sqli")
    action: block
  - id: block-xss-in-query
    when: detected("xss-query") || detected("traversal-path")
    action: block
"#;

#[test]
fn attack_detections_compile_to_the_bundle() {
    let content = compile(POLICY, &options()).unwrap();
    let sqli = &content.detections[0];
    let attack = sqli.attack.as_ref().unwrap();
    assert_eq!((attack.class, attack.sensitivity), (AttackClass::Sqli, Sensitivity::Medium));
    assert_eq!(sqli.location, Location::RequestBody, "`in: request` reads the body, so it is decided after it");
    let everywhere = Place::ALL.iter().fold(0u8, |bits, p| bits | p.bit());
    assert_eq!(attack.places, everywhere);
    assert_eq!(
        attack.exclude,
        [
            Exclusion { endpoint: "POST api.example.com/comments".into(), param: "body.html".into() },
            Exclusion { endpoint: String::new(), param: "header.referer".into() },
        ]
    );
    let xss = content.detections[1].attack.as_ref().unwrap();
    assert_eq!((xss.class, xss.sensitivity, xss.places), (AttackClass::Xss, Sensitivity::High, Place::Query.bit()));
    assert_eq!(content.detections[1].location, Location::RequestQuery);
    assert_eq!(content.detections[2].attack.as_ref().unwrap().places, Place::Path.bit());
    // The classifier detection beside them is untouched, and only it is in a scan set.
    assert!(content.detections[3].attack.is_none());
    assert_eq!(content.classifiers.len(), 1);
    assert!(content.scan_sets[Location::RequestQuery.index()].is_none());
    // Rules on path/query attacks decide with the headers; a rule on `in: request` waits for the body.
    assert_eq!(content.rules[0].phase, Phase::RequestBody);
    assert_eq!(content.rules[1].phase, Phase::RequestHeaders);
    let bundle = Bundle::from_bytes(&compile_to_bytes(POLICY, &options()).unwrap()).unwrap();
    assert_eq!(bundle.detections().len(), 4);
}

#[test]
fn a_list_of_locations_adds_places_and_takes_the_latest_phase() {
    let source = "version: 1\nrules: []\ndetections:\n  - id: d\n    classifier: xss\n    in: [request.path, request.query, request.headers]\n  - id: e\n    classifier: xss\n    in: [request.query, request.body]\n";
    let content = compile(source, &options()).unwrap();
    let d = &content.detections[0];
    let expected = Place::Path.bit() | Place::Query.bit() | Place::Header.bit() | Place::Cookie.bit();
    assert_eq!((d.attack.as_ref().unwrap().places, d.location), (expected, Location::RequestQuery));
    assert_eq!(content.detections[1].location, Location::RequestBody);
    assert!(error("version: 1\nrules: []\ndetections:\n  - id: d\n    classifier: xss\n    in: []\n")
        .starts_with("owasp.yaml:6:9: 'in' of detection 'd' is empty"));
}

#[test]
fn every_class_has_a_policy_name() {
    for class in AttackClass::ALL {
        let source = format!(
            "version: 1\nrules: []\ndetections:\n  - id: d\n    classifier: {}\n    in: request.query\n",
            class.name()
        );
        let content = compile(&source, &options()).unwrap();
        assert_eq!(content.detections[0].attack.as_ref().unwrap().class, class);
    }
}

#[test]
fn mistakes_point_at_the_line_and_column() {
    let base = "version: 1\nrules: []\ndetections:\n  - id: d\n    classifier: sqli\n";
    assert_eq!(
        error(&format!("{base}    in: response.body\n")),
        "owasp.yaml:6:9: attack detection 'd' cannot look in 'response.body' (expected one of: request.path, \
         request.query, request.headers, request.body, request)"
    );
    assert_eq!(
        error(&format!("{base}    in: request\n    sensitivity: paranoid\n")),
        "owasp.yaml:7:18: unknown sensitivity 'paranoid' (expected one of: low, medium, high)"
    );
    assert!(error(&format!("{base}    in: request\n    requires: x\n"))
        .starts_with("owasp.yaml:7:5: unknown field 'requires' in attack detection"));
    assert!(error(&format!("{base}    in: request\n    exclude:\n      - {{ param: html }}\n"))
        .starts_with("owasp.yaml:8:18: invalid param 'html': name it as the verdict does"));
    assert!(error(&format!("{base}    in: request\n    exclude:\n      - {{ endpoint: /comments, param: body.x }}\n"))
        .starts_with("owasp.yaml:8:21: invalid endpoint '/comments'"));
    assert!(error(&format!("{base}    in: request\n    exclude: body.x\n"))
        .starts_with("owasp.yaml:7:14: 'exclude' must be a list"));
    // A classifier detection does not take the attack keys.
    assert!(error(
        "version: 1\nrules: []\ndetections:\n  - id: d\n    classifier: email\n    in: request.body\n    sensitivity: low\n"
    )
    .starts_with("owasp.yaml:7:5: unknown field 'sensitivity' in detection"));
}
