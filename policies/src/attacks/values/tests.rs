//! The inspector with stand-in detectors: what values it makes, how they are named, and the bounds.

use std::cell::RefCell;

use super::*;

/// One subject the stand-in detector saw.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    place: Place,
    is_name: bool,
    raw: String,
    decoded: String,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every place.
const ALL_PLACES: u8 = 0xff;

fn check(class: AttackClass) -> Check<'static> {
    Check { class, sensitivity: Sensitivity::Medium, places: ALL_PLACES, skip: &[] }
}

/// Runs `parts` through an inspector whose Sqli stand-in fires on `evil` (lower case) and whose Xxe stand-in
/// fires on `<!doctype` in `raw`; returns what it saw and found.
fn run_with(inspector: &mut Inspector, parts: &[Part<'_>], checks: &[Check<'_>]) -> (Vec<Seen>, Findings) {
    let seen = RefCell::new(Vec::new());
    let detect = |class: AttackClass, s: &Subject<'_>, _: Sensitivity| {
        if class == AttackClass::Sqli {
            seen.borrow_mut().push(Seen {
                place: s.place,
                is_name: s.is_name,
                raw: text(s.raw),
                decoded: text(s.decoded),
            });
            assert_eq!(s.lower, s.decoded.to_ascii_lowercase().as_slice());
        }
        match class {
            AttackClass::Sqli => contains(s.lower, b"evil"),
            AttackClass::Xxe => contains(&s.raw.to_ascii_lowercase(), b"<!doctype"),
            _ => false,
        }
    };
    let mut findings = Findings::default();
    for part in parts {
        inspector.inspect_with(*part, checks, &mut findings, &detect);
    }
    (seen.into_inner(), findings)
}

fn run(parts: &[Part<'_>]) -> (Vec<Seen>, Findings) {
    run_with(&mut Inspector::new(Limits::default()), parts, &[check(AttackClass::Sqli)])
}

/// `(is_name, raw)` of everything seen.
fn raws(seen: &[Seen]) -> Vec<(bool, String)> {
    seen.iter().map(|s| (s.is_name, s.raw.clone())).collect()
}

fn names(findings: &Findings) -> Vec<(Place, String)> {
    findings.items.iter().flatten().map(|f| (f.place, text(f.name()))).collect()
}

fn n(s: &str) -> (bool, String) {
    (true, s.to_string())
}

fn v(s: &str) -> (bool, String) {
    (false, s.to_string())
}

#[test]
fn query_names_and_values() {
    let (seen, findings) = run(&[Part::Query(b"a=1&q=%27%20or%20EVIL&c+d=x+y&&lone&e=&f=a;b")]);
    assert_eq!(
        raws(&seen),
        [n("a"), v("1"), n("q"), v("' or EVIL"), n("c d"), v("x y"), v("lone"), n("e"), v(""), n("f"), v("a;b")]
    );
    assert!(seen.iter().all(|s| s.place == Place::Query));
    assert_eq!(names(&findings), [(Place::Query, "q".to_string())]);
    assert_eq!(findings.total, 1);
    assert_eq!(findings.fired, 1);
    assert_eq!(findings.values, 11);
    assert!(!findings.uninspectable);
    // Double encoding: the application sees `%27`, the detector's decoded form the quote.
    let (seen, _) = run(&[Part::Query(b"q=%2527x+y%252B")]);
    assert_eq!(seen[1].raw, "%27x y%2B");
    assert_eq!(seen[1].decoded, "'x y ", "a `+` decoded in a later round is a space in a query");
}

#[test]
fn path_segments_and_climbs() {
    let (seen, findings) = run(&[Part::Path(b"/api/v1/%2e%2e%2fEvil/x?q=evil")]);
    assert_eq!(raws(&seen), [v("/api/v1/../Evil/x"), v("api"), v("v1"), v("../Evil"), v("x")]);
    assert_eq!(names(&findings), [(Place::Path, String::new()), (Place::Path, "3".to_string())]);
    let (seen, _) = run(&[Part::Path(b"/users//42/")]);
    assert_eq!(raws(&seen), [v("users"), v("42")], "no whole path without a climb, no empty segments");
}

#[test]
fn headers_and_cookies() {
    let headers: &[(&[u8], &[u8])] = &[
        (b"user-agent", b"Mozilla EVIL"),
        (b"x-custom", b"evil"),
        (b"cookie", b"session=abc; pref=%27evil; evilname=1; bare"),
        (b"cookie", b"second=2"),
    ];
    let (seen, findings) = run(&[Part::Headers(headers)]);
    assert_eq!(
        raws(&seen),
        [
            v("Mozilla EVIL"),
            n("session"),
            v("abc"),
            n("pref"),
            v("'evil"),
            n("evilname"),
            v("1"),
            n("bare"),
            v(""),
            n("second"),
            v("2")
        ]
    );
    assert_eq!(
        names(&findings),
        [
            (Place::Header, "user-agent".to_string()),
            (Place::Cookie, "pref".to_string()),
            (Place::Cookie, "evilname".to_string())
        ]
    );
    // A configured list replaces the default one; cookies are always read.
    let mut inspector = Inspector::with_headers(Limits::default(), &[b"X-Custom"]);
    let (_, findings) = run_with(&mut inspector, &[Part::Headers(headers)], &[check(AttackClass::Sqli)]);
    assert_eq!(
        names(&findings),
        [
            (Place::Header, "x-custom".to_string()),
            (Place::Cookie, "pref".to_string()),
            (Place::Cookie, "evilname".to_string())
        ]
    );
}

fn body<'a>(content_type: &'a str, body: &'a str) -> Part<'a> {
    Part::Body { content_type: content_type.as_bytes(), body: body.as_bytes() }
}

#[test]
fn json_paths_keys_and_leaves() {
    let doc = r#"{"user":{"name":"evil","tags":["a","EVIL"],"age":42},"items":[{"sku":"x","n":-1.5e3}],
                 "$ne":true,"k\u0065y":"\u0065vil","":null}"#;
    let (seen, findings) = run(&[body("application/json; charset=utf-8", doc)]);
    assert_eq!(
        raws(&seen),
        [
            n("user"),
            n("name"),
            v("evil"),
            n("tags"),
            v("a"),
            v("EVIL"),
            n("age"),
            v("42"),
            n("items"),
            n("sku"),
            v("x"),
            n("n"),
            v("-1.5e3"),
            n("$ne"),
            n("key"),
            v("evil"),
            n("")
        ]
    );
    assert!(seen.iter().all(|s| s.place == Place::Json));
    assert_eq!(
        names(&findings),
        [
            (Place::Json, "user.name".to_string()),
            (Place::Json, "user.tags[]".to_string()),
            (Place::Json, "key".to_string())
        ]
    );
    // Array paths and a top-level array.
    let (_, findings) = run(&[body("application/vnd.api+json", r#"[{"a":{"b":["evil"]}},"evil"]"#)]);
    assert_eq!(names(&findings), [(Place::Json, "[].a.b[]".to_string()), (Place::Json, "[]".to_string())]);
}

#[test]
fn json_record_keys_are_inspected_once_per_body_while_clean() {
    let records: Vec<String> =
        (0..200).map(|i| format!(r#"{{"id":{i},"name":"n{i}","evil{}":"x","tags":[]}}"#, i % 2)).collect();
    let doc = format!(r#"{{"users":[{}],"a":{{"b":1}},"a.b":2}}"#, records.join(","));
    let (seen, findings) = run(&[body("application/json", &doc)]);
    let keys: Vec<&str> = seen.iter().filter(|s| s.is_name).map(|s| s.raw.as_str()).collect();
    // `id`, `name` and `tags` once each; the keys that find something every time.
    assert_eq!(keys.iter().filter(|k| **k == "id").count(), 1);
    assert_eq!(keys.iter().filter(|k| **k == "tags").count(), 1);
    assert_eq!(keys.iter().filter(|k| k.starts_with("evil")).count(), 200);
    assert_eq!(findings.total, 200);
    // A key with a dot is not taken for the same path one level down.
    assert_eq!(keys.iter().filter(|k| **k == "b" || **k == "a.b").count(), 2);
    assert!(!findings.uninspectable, "200 records stay within the value cap: {}", findings.values);
    // Each body starts afresh.
    let (seen, _) = run(&[body("application/json", r#"{"id":1}"#), body("application/json", r#"{"id":1}"#)]);
    assert_eq!(seen.iter().filter(|s| s.is_name).count(), 2);
}

#[test]
fn json_key_lookups_cost_at_most_a_budget() {
    // Keys of the same length under a long shared path: each lookup would compare every remembered key in full.
    let parent = "p".repeat(80);
    let keys: Vec<String> = (0..5000).map(|i| format!(r#""{:04}":1"#, i % 40)).collect();
    let doc = format!(r#"{{"{parent}":{{{}}}}}"#, keys.join(","));
    let mut inspector = Inspector::new(Limits { max_value_bytes: 8192, max_values: 100_000 });
    let (_, findings) = run_with(&mut inspector, &[body("application/json", &doc)], &[check(AttackClass::Sqli)]);
    assert!(inspector.keys.budget < parent.len() + 5, "the lookups ran out of budget");
    // Forty distinct keys cycle through a ring of 32: every lookup misses, the budget runs out, keys are inspected.
    assert!(findings.values > 5000, "{}", findings.values);
    assert!(!findings.uninspectable);
}

#[test]
fn a_place_no_check_looks_at_is_not_counted() {
    let checks = [Check { places: 1 << Place::Json as u8, ..check(AttackClass::Sqli) }];
    let limits = Limits { max_value_bytes: 64, max_values: 2 };
    let (seen, findings) = run_with(&mut Inspector::new(limits), &[Part::Query(b"a=1&b=2&c=3")], &checks);
    assert!(seen.is_empty());
    assert_eq!(findings.values, 0);
    assert!(!findings.uninspectable);
}

#[test]
fn json_that_is_not_json_is_read_as_text() {
    let (seen, findings) = run(&[body("application/json", "' or 1=1 -- evil")]);
    assert_eq!(seen.last().map(|s| (s.place, s.raw.as_str())), Some((Place::Body, "' or 1=1 -- evil")));
    assert_eq!(names(&findings), [(Place::Body, String::new())]);
    // Valid JSON is not read a second time.
    let (seen, _) = run(&[body("application/json", r#"{"a": [true, false, null, 1]}"#)]);
    assert!(seen.iter().all(|s| s.place == Place::Json));
}

#[test]
fn json_too_deep_is_uninspectable() {
    let deep = format!("{}\"evil\"{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    let (_, findings) = run(&[body("application/json", &deep)]);
    assert!(findings.uninspectable);
    let ok = format!("{}\"evil\"{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let (_, findings) = run(&[body("application/json", &ok)]);
    assert!(!findings.uninspectable);
    assert_eq!(findings.total, 1);
}

#[test]
fn xml_text_attributes_and_the_document() {
    let doc = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<order id="7" note='EVIL'><item sku="a">evil &amp; more</item><!-- evil --><empty/>
<code><![CDATA[<b>evil</b>]]></code>tail</order>"#;
    let checks = [check(AttackClass::Sqli), check(AttackClass::Xxe)];
    let (seen, findings) = run_with(&mut Inspector::new(Limits::default()), &[body("text/xml", doc)], &checks);
    // The document as a whole goes to the XXE check only.
    assert_eq!(raws(&seen), [v("7"), v("EVIL"), v("a"), v("evil &amp; more"), v("<b>evil</b>"), v("tail")]);
    assert_eq!(
        names(&findings),
        [
            (Place::Xml, String::new()),
            (Place::Xml, "order[@note]".to_string()),
            (Place::Xml, "order.item".to_string()),
            (Place::Xml, "order.code".to_string()),
        ]
    );
    assert_eq!(findings.items[0].map(|f| f.class), Some(AttackClass::Xxe));
    // A DOCTYPE pushed past the value cap by a long comment: not silently passed.
    let limits = Limits { max_value_bytes: 64, max_values: 100 };
    let padded = format!("<!DOCTYPE r [<!-- {} --><!ENTITY x SYSTEM \"file:///\">]><r/>", "x".repeat(100));
    let (_, findings) = run_with(&mut Inspector::new(limits), &[body("application/xml", &padded)], &checks);
    assert!(findings.uninspectable);
}

#[test]
fn form_and_multipart_bodies() {
    let (seen, findings) = run(&[body("application/x-www-form-urlencoded", "user=bob&comment=very+EVIL%21")]);
    assert_eq!(raws(&seen), [n("user"), v("bob"), n("comment"), v("very EVIL!")]);
    assert_eq!(names(&findings), [(Place::Form, "comment".to_string())]);

    let multipart = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nan evil title\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"evil.png\"\r\nContent-Type: image/png\r\n\r\n\
        binary evil bytes\r\n--XyZ\r\nContent-Disposition: form-data; name=\"notes\"; filename=\"n.txt\"\r\n\
        Content-Type: text/plain\r\n\r\nevil notes\r\n--XyZ--\r\n";
    let (seen, findings) = run(&[body("multipart/form-data; boundary=\"XyZ\"", multipart)]);
    assert_eq!(
        raws(&seen),
        [n("title"), v("an evil title"), n("avatar"), v("evil.png"), n("notes"), v("n.txt"), v("evil notes")]
    );
    assert_eq!(
        names(&findings),
        [(Place::Form, "title".to_string()), (Place::Form, "avatar".to_string()), (Place::Form, "notes".to_string())]
    );
    // JSON and XML parts are read as such, under the field's name.
    let multipart = "--b\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n\
        {\"user\":{\"bio\":\"evil\"}}\r\n--b\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"d.xml\"\r\n\
        Content-Type: text/xml\r\n\r\n<r><a>evil</a></r>\r\n--b--\r\n";
    let (seen, findings) = run(&[body("multipart/form-data; boundary=b", multipart)]);
    assert_eq!(raws(&seen), [n("meta"), n("user"), n("bio"), v("evil"), n("doc"), v("d.xml"), v("evil")]);
    assert_eq!(names(&findings), [(Place::Json, "meta.user.bio".to_string()), (Place::Xml, "doc.r.a".to_string())]);
    // A part cut off by the body cap is read up to the end.
    let (seen, _) =
        run(&[body("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nev")]);
    assert_eq!(raws(&seen), [n("x"), v("ev")]);
}

#[test]
fn other_bodies() {
    let (seen, findings) = run(&[body("text/plain", "some evil prose")]);
    assert_eq!(raws(&seen), [v("some evil prose")]);
    assert_eq!(names(&findings), [(Place::Body, String::new())]);
    let (seen, _) = run(&[body("", "no content type, evil")]);
    assert_eq!(seen.len(), 1);
    let (seen, _) = run(&[body("image/png", "evil")]);
    assert!(seen.is_empty(), "binary bodies are not inspected");
    let (seen, _) = run(&[body("text/plain", "")]);
    assert!(seen.is_empty());
}

#[test]
fn places_and_skip_lists() {
    let query = Part::Query(b"q=evil&r=evil");
    let json = body("application/json", r#"{"user":{"name":"evil","bio":"evil"}}"#);
    let skip: &[&[u8]] = &[b"query.q", b"body.user.name", b"r"];
    let mut checks = [Check { skip, ..check(AttackClass::Sqli) }];
    let (_, findings) = run_with(&mut Inspector::new(Limits::default()), &[query, json], &checks);
    assert_eq!(
        names(&findings),
        [(Place::Query, "r".to_string()), (Place::Json, "user.bio".to_string())],
        "a bare name never matches"
    );
    // A place prefix must match the place.
    let skip: &[&[u8]] = &[b"json.r", b"query.r", b"json.user.bio"];
    checks[0].skip = skip;
    let (_, findings) = run_with(&mut Inspector::new(Limits::default()), &[query, json], &checks);
    assert_eq!(names(&findings), [(Place::Query, "q".to_string()), (Place::Json, "user.name".to_string())]);
    // An attacker naming a query parameter after a body exclusion gains nothing; headers and cookies by name.
    let skip: &[&[u8]] = &[b"body.html", b"header.user-agent", b"cookie.pref"];
    checks[0].skip = skip;
    let headers: &[(&[u8], &[u8])] = &[(b"user-agent", b"evil"), (b"referer", b"evil"), (b"cookie", b"pref=evil")];
    let parts = [Part::Query(b"body.html=evil"), Part::Headers(headers), body("text/x-www-form-urlencoded", "x")];
    let (_, findings) = run_with(&mut Inspector::new(Limits::default()), &parts, &checks);
    assert_eq!(names(&findings), [(Place::Query, "body.html".to_string()), (Place::Header, "referer".to_string())]);
    // A check limited to JSON does not look at the query.
    checks[0].skip = &[];
    checks[0].places = 1 << Place::Json as u8;
    let (_, findings) = run_with(&mut Inspector::new(Limits::default()), &[query, json], &checks);
    assert_eq!(names(&findings), [(Place::Json, "user.name".to_string()), (Place::Json, "user.bio".to_string())]);
}

#[test]
fn a_value_past_the_cap_is_inspected_up_to_it_and_reported() {
    let limits = Limits { max_value_bytes: 16, max_values: 100 };
    let mut inspector = Inspector::new(limits);
    let (seen, findings) = run_with(
        &mut inspector,
        &[Part::Query(b"q=evil_but_long_enough_to_pass_the_cap")],
        &[check(AttackClass::Sqli)],
    );
    assert_eq!(seen[1].raw, "evil_but_long_en");
    assert!(findings.uninspectable);
    assert_eq!(findings.total, 1, "what fits is still inspected");
    // The same for a JSON string, a header and a whole body.
    for part in [
        body("application/json", r#"{"a":"0123456789abcdefEVIL"}"#),
        body("text/plain", "0123456789abcdefEVIL"),
        Part::Headers(&[(b"referer", b"0123456789abcdefEVIL")]),
        Part::Path(b"/0123456789abcdefEVIL"),
    ] {
        let (_, findings) = run_with(&mut inspector, &[part], &[check(AttackClass::Sqli)]);
        assert!(findings.uninspectable, "{part:?}");
        assert_eq!(findings.total, 0);
    }
    let (_, findings) = run_with(&mut inspector, &[Part::Query(b"q=0123456789abcdef")], &[check(AttackClass::Sqli)]);
    assert!(!findings.uninspectable, "exactly at the cap is whole");
}

#[test]
fn too_many_values_stop_the_inspection() {
    let limits = Limits { max_value_bytes: 64, max_values: 5 };
    let mut inspector = Inspector::new(limits);
    let parts = [Part::Query(b"a=1&b=2&c=evil"), Part::Headers(&[(b"user-agent", b"evil")])];
    let (seen, findings) = run_with(&mut inspector, &parts, &[check(AttackClass::Sqli)]);
    assert_eq!(seen.len(), 5);
    assert_eq!(findings.values, 5);
    assert!(findings.uninspectable);
    assert_eq!(findings.total, 0, "the sixth value and the header were not inspected");
    let limits = Limits { max_value_bytes: 64, max_values: 6 };
    let (_, findings) = run_with(&mut Inspector::new(limits), &parts[..1], &[check(AttackClass::Sqli)]);
    assert!(!findings.uninspectable, "exactly at the cap");
    assert_eq!(findings.total, 1);
}

#[test]
fn findings_are_bounded_and_names_cut() {
    let long = format!("{}=evil", "n".repeat(MAX_NAME + 10));
    let mut query = String::new();
    for i in 0..MAX_FINDINGS + 3 {
        query.push_str(&format!("p{i}=evil&"));
    }
    query.push_str(&long);
    let checks: Vec<Check<'_>> = (0..70).map(|_| check(AttackClass::Sqli)).collect();
    let (_, findings) = run_with(&mut Inspector::new(Limits::default()), &[Part::Query(query.as_bytes())], &checks);
    assert_eq!(findings.total, 70 * (MAX_FINDINGS as u32 + 4));
    assert_eq!(findings.fired, u64::MAX, "checks past 64 share the last bit");
    assert!(findings.items.iter().all(Option::is_some));
    assert_eq!(findings.items[1].map(|f| f.check), Some(1));
    let (_, findings) = run(&[Part::Query(long.as_bytes())]);
    let finding = findings.items[0].unwrap();
    assert_eq!(finding.name(), "n".repeat(MAX_NAME).as_bytes());
    assert_eq!(usize::from(finding.name_len), MAX_NAME);
}

#[test]
fn real_detectors_run_through_the_public_entry() {
    // The stubs (or the real detectors, once merged) must never panic on any part.
    let mut inspector = Inspector::new(Limits::default());
    let checks: Vec<Check<'_>> = AttackClass::ALL.iter().map(|c| check(*c)).collect();
    let mut findings = Findings::default();
    inspector.inspect(Part::Query(b"q=%27%20or%201%3D1--"), &checks, &mut findings);
    inspector.inspect(body("application/json", r#"{"a":"<script>alert(1)</script>"}"#), &checks, &mut findings);
    assert_eq!(findings.values, 4);
}

use crate::token_analysis::test_rng::Rng;

#[test]
fn fuzz_every_part_never_panics() {
    let seeds: [&[u8]; 6] = [
        br#"{"a":[{"b":"c\u0041","d":1e5}],"e":{"f":null}}"#,
        b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b SYSTEM 'x'>]><a x='1'><b>t</b><![CDATA[c]]><!-- d --></a>",
        b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"g\"\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--",
        b"a=1&b=%41%zz+&c",
        b"/p/%2e%2e/q;r",
        b"s=1; t=%27; u",
    ];
    let types: [&[u8]; 6] = [
        b"application/json",
        b"application/xml",
        b"multipart/form-data; boundary=b",
        b"application/x-www-form-urlencoded",
        b"text/plain",
        b"multipart/mixed",
    ];
    let alphabet = b"{}[]\",:<>/=&;%?!-'\\ab01 \r\n\0\xc0\xaf@[]";
    let mut rng = Rng(0x7661_6c75);
    let limits = Limits { max_value_bytes: 32, max_values: 64 };
    let mut inspector = Inspector::new(limits);
    let checks: Vec<Check<'_>> = AttackClass::ALL.iter().map(|c| check(*c)).collect();
    for i in 0..6000 {
        let seed = seeds[i % seeds.len()];
        let mut bytes = seed.to_vec();
        for _ in 0..(rng.next() % 8) {
            let at = (rng.next() as usize) % (bytes.len() + 1);
            let r = rng.next();
            match r % 3 {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, alphabet[(r as usize / 3) % alphabet.len()]),
                _ => bytes.insert(at, (r >> 8) as u8),
            }
        }
        if i % 7 == 0 {
            bytes.truncate((rng.next() as usize) % (bytes.len() + 1));
        }
        let headers: [(&[u8], &[u8]); 2] = [(b"cookie", &bytes), (b"user-agent", &bytes)];
        let mut findings = Findings::default();
        for part in [
            Part::Path(&bytes),
            Part::Query(&bytes),
            Part::Headers(&headers),
            Part::Body { content_type: types[i % types.len()], body: &bytes },
            Part::Body { content_type: types[(i / 7) % types.len()], body: &bytes },
        ] {
            inspector.inspect(part, &checks, &mut findings);
            // The stand-in fires on everything: every path through recording is taken too.
            inspector.inspect_with(part, &checks, &mut findings, &|_, s: &Subject<'_>, _| {
                assert!(s.raw.len() <= limits.max_value_bytes);
                assert!(s.decoded.len() <= s.raw.len());
                true
            });
        }
        assert!(findings.values as usize <= limits.max_values);
    }
}

#[test]
fn a_body_without_a_content_type_is_read_as_what_it_looks_like() {
    let (seen, findings) = run(&[Part::Body { content_type: b"", body: b" {\"user\":{\"bio\":\"EVIL\"}}" }]);
    assert_eq!(raws(&seen), [n("user"), n("bio"), v("EVIL")]);
    assert_eq!(names(&findings), [(Place::Json, "user.bio".to_string())]);
    let (seen, _) = run(&[Part::Body { content_type: b"", body: b"plain EVIL text" }]);
    assert_eq!(raws(&seen), [v("plain EVIL text")]);
    assert_eq!(seen[0].place, Place::Body);
}
