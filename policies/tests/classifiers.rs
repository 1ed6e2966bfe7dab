//! The built-in classifiers end to end: bodies go through the compiled scan set (the DFA and every validator) as
//! the filter inspects them, and each class of false positive or miss has its own positives and negatives.
//!
//! Every value here is written for this file (well-known test card numbers and example IBANs, or numbers made up
//! to pass or fail a check digit); none comes from an evaluation corpus.

#![cfg(feature = "compiler")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use portcullis_policies::compiler::{compile_to_bytes, CompileOptions};
use portcullis_policies::scan::builtin::detections_yaml;
use portcullis_policies::scan::BodyInspector;
use portcullis_policies::{Bundle, Location};

fn bundle() -> Bundle {
    let mut yaml = format!("version: 1\n{}", detections_yaml("request.body"));
    yaml.push_str("rules:\n  - id: r\n    when: request.method == \"X\"\n    action: monitor\n");
    let options = CompileOptions { policy_name: "classifiers".into(), revision: 1, file_name: "c.yaml".into() };
    Bundle::from_bytes(&compile_to_bytes(&yaml, &options).unwrap()).unwrap()
}

/// How many findings of `classifier` a body holds, scanned whole and again one byte per chunk (the streaming
/// scanner must agree with itself).
fn count(bundle: &Bundle, classifier: &str, body: &str) -> u32 {
    let index = bundle.classifiers().iter().position(|c| c.id == classifier).unwrap();
    let mut results = Vec::new();
    for chunk_size in [body.len().max(1), 1] {
        let mut inspector = BodyInspector::new(bundle, Location::RequestBody, Some(b"application/json"), None).unwrap();
        for chunk in body.as_bytes().chunks(chunk_size) {
            inspector.feed(bundle, chunk);
        }
        inspector.finish(bundle);
        results.push(inspector.classifier_counts()[index]);
    }
    assert_eq!(results[0], results[1], "{classifier} in {body:?}: whole vs byte by byte");
    results[0]
}

/// Asserts `expected` findings of `classifier` in each body.
fn expect(classifier: &str, cases: &[(&str, u32)]) {
    let bundle = bundle();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(body, want)| {
            let got = count(&bundle, classifier, body);
            (got != *want).then(|| format!("{body:?}: {got} {classifier}, want {want}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ipv4_in_version_positions_is_not_an_address() {
    expect(
        "ipv4",
        &[
            (r#"{"app_version": "2.8.8.12"}"#, 0),
            (r#"{"appVersion":"4.0.2.17"}"#, 0),
            ("X-Client-Version: 7.1.0.3\r\n", 0),
            ("User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:1.9.2.20) Gecko/20100101\r\n", 0),
            ("user-agent: ExampleApp/3.6.28.1 (iPhone; iOS 17.2)", 0),
            ("release notes for version 5.4.3.2 are out", 0),
            ("Version 3.1.4.1", 0),
            ("ver. 1.0.4.2", 0),
            (r#"{"build": "10.2.0.233"}"#, 0),
            (r#"{"firmware_rev": "1.22.3.4", "ip": "10.9.8.7"}"#, 1),
        ],
    );
}

#[test]
fn ipv4_addresses_are_still_found() {
    expect(
        "ipv4",
        &[
            (r#"{"ip": "203.0.113.9"}"#, 1),
            (r#"{"remote_addr":"172.16.4.20","version":"1.2"}"#, 1),
            (r#"{"version": "1.2", "remote_addr": "172.16.4.20"}"#, 1),
            ("GET http://198.51.100.7/status HTTP/1.1", 1),
            ("https://192.0.2.15:8443/login", 1),
            ("/api/hosts/10.0.0.8/metrics", 1),
            ("X-Forwarded-For: 203.0.113.9, 10.1.2.3, 192.0.2.200\r\n", 3),
            ("2024-05-01T10:00:00Z client 192.0.2.44 connected", 1),
            (r#"{"user_agent":"curl/8.1.2","client_ip":"10.20.30.40"}"#, 1),
            ("host=10.0.0.1 port=22", 1),
        ],
    );
}

#[test]
fn phone_keywords_are_whole_words() {
    expect(
        "phone",
        &[
            // Keys and names that merely contain a keyword.
            (r#"{"callback_id": "88123456"}"#, 0),
            (r#"{"name": "Amadou Diallo", "account": 77341298}"#, 0),
            (r#"{"author": "Maeve Callahan", "count": 30498712}"#, 0),
            (r#"{"textile_code": 4412098}"#, 0),
            (r#"{"hotel": "Grand", "booking": 9087612}"#, 0),
            (r#"{"cellar_stock": 1234567}"#, 0),
            // Ids under id keys, even next to phone words.
            (r#"{"message_id": 61234987}"#, 0),
            (r#"{"contact_id": 5551234567}"#, 0),
            (r#"{"phone": "+1 415 555 0100", "message_id": 61234987}"#, 1),
            (r#"{"sms": {"id": 70012345}}"#, 0),
            (r#"{"message_ids": [61234987, 61234988]}"#, 0),
            (r#"{"contact_id": "c-1", "n": 5551234567}"#, 0),
            (r#"{"message": "call me", "n": 4155550123}"#, 1),
            // Real phone context: whole words, snake_case and camelCase parts.
            (r#"{"phone_number": "415-555-0134"}"#, 1),
            (r#"{"mobilePhone": "(415) 555-0188"}"#, 1),
            (r#"{"contactPhone":"415.555.0199"}"#, 1),
            (r#"{"telephone": "020 7946 0321"}"#, 1),
            (r#"{"cellphone":"0612345678"}"#, 1),
            ("TEL: 030 9876543", 1),
            ("Call me at 415 555 0171 tomorrow", 1),
            ("Texted her on 415 555 0172", 1),
            (r#"{"caller_id": "+44 20 7946 0999"}"#, 1),
        ],
    );
}

#[test]
fn cards_next_to_other_numbers() {
    expect(
        "credit_card",
        &[
            // Two cards separated by one space or dash.
            ("4111111111111111 5555555555554444", 2),
            ("4111111111111111-5555555555554444", 2),
            ("cards: 4111 1111 1111 1111 5555 5555 5555 4444.", 2),
            ("6011111111111117 378282246310005 3530111333300000", 3),
            // A card followed by a year, an expiry or a CVV.
            ("4111111111111111 2027", 1),
            ("card 5555 5555 5555 4444 123", 1),
            ("378282246310005 0427 1234", 1),
            ("6011111111111117 12/27", 1),
            ("pan 4111-1111-1111-1111-2027 end", 1),
            // A card after a short number.
            ("qty 2 4111 1111 1111 1111", 1),
            ("4111111111111111", 1),
            ("4111111111111111 5", 1),
        ],
    );
}

#[test]
fn numbers_that_are_not_cards() {
    expect(
        "credit_card",
        &[
            // Random Luhn-valid ids with a card-like prefix, under id keys.
            (r#"{"order_id": "4666176031372159"}"#, 0),
            (r#"{"transactionId": 5302227918058887}"#, 0),
            (r#"{"id": 4010928159013962}"#, 0),
            ("tracking number: 2493407224704558", 0),
            (r#"{"ref": "4666176031372159"}"#, 0),
            (r#"{"ids": [4666176031372159]}"#, 0),
            (r#"{"cards": ["4111111111111111"]}"#, 1),
            // Luhn-valid, but no scheme issues these prefixes at this length.
            ("5974633191284529", 0),
            ("6394041042346853", 0),
            ("6992376092603092", 0),
            // Part of a longer number: a fraction, a longer digit run, glued to letters.
            (r#"{"score": 0.4111111111111111}"#, 0),
            (r#"{"score": 12.5555555555554444}"#, 0),
            ("41111111111111111111", 0),
            ("94000778598636516849514111111111111111", 0),
            ("x4111111111111111", 0),
            ("4111111111111111abc", 0),
            // EAN-13 barcodes that happen to pass Luhn with a Visa prefix.
            (r#"{"ean": "4069520601957"}"#, 0),
            ("barcode 4564665866266", 0),
            // A 13-digit Visa that is not a barcode, and a barcode-shaped one with card context.
            ("visa 4190068578579", 1),
            ("card number 4069520601957", 1),
            // Twelve digits of a 16-digit number grouped in fours are not a (Maestro) card, though they fit Maestro
            // and Luhn: the number goes on, or started before.
            ("3139 5737 4095 4611", 0),
            ("5630-9559-7297-9262", 0),
            // A grouped 22-digit tracking number whose parts are not card layouts.
            ("9400 0778 5986 3651 6849 51", 0),
            // IBAN digits are part of the IBAN.
            ("GB82 WEST 1234 5698 7654 32", 0),
        ],
    );
}

#[test]
fn ssn_with_dots() {
    expect(
        "us_ssn",
        &[
            ("ssn 512.44.7321", 1),
            (r#"{"tax": "623.18.4410"}"#, 1),
            ("512-44-7321", 1),
            ("512 44 7321", 1),
            ("v1.512.44.7321", 0),
            ("512.44.7321.5", 0),
            ("512.44-7321", 0),
            ("000.12.3456", 0),
            ("512.44.73210", 0),
        ],
    );
}

#[test]
fn iban_with_dashes() {
    expect(
        "iban",
        &[
            ("DE89-3704-0044-0532-0130-00", 1),
            (r#"{"iban": "GB82-WEST-1234-5698-7654-32"}"#, 1),
            ("pay FR14-2004-1010-0505-0001-3M02-606 today", 1),
            ("GB82WEST12345698765432-", 1),
            ("GB82 WEST 1234 5698 7654 32", 1),
            ("GB82-WEST-1234-5698-7654-33", 0),
            ("GB82-WEST1234-5698-7654-32", 0),
            ("GB82 WEST-1234-5698-7654-32", 0),
            ("GB82--WEST-1234-5698-7654-32", 0),
        ],
    );
}

#[test]
fn punycode_emails() {
    expect(
        "email",
        &[
            ("user@xn--bcher-kva.example", 1),
            (r#"{"email": "info@xn--mnchen-3ya.de"}"#, 1),
            ("write to a.b@mail.xn--p1ai today", 1),
            ("kontakt@xn--bcher-kva.xn--p1ai", 1),
            ("<USER@XN--BCHER-KVA.XN--P1AI>", 1),
            ("jane@example.com", 1),
            ("a@b.c1", 0),
            ("a@b.xn--", 0),
            ("a@b.xn", 1),
        ],
    );
}
