//! Requests as the inspector receives them, and the one inspector every request goes through.

use portcullis_policies::attacks::values::{Check, Findings, Inspector, Limits, Part};
use portcullis_policies::attacks::{AttackClass, ClassSet, Place, Sensitivity};

use crate::encode::{header_value, json_string, xml_text, Payload, Placement};

/// The header a payload goes in for the header placement (one of the headers inspected by default).
pub const PAYLOAD_HEADER: &[u8] = b"user-agent";

/// One part of a request, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedPart {
    /// The raw path.
    Path(Vec<u8>),
    /// The raw query string, without `?`.
    Query(Vec<u8>),
    /// Headers, names in lower case.
    Headers(Vec<(Vec<u8>, Vec<u8>)>),
    /// A body and its content type.
    Body { content_type: Vec<u8>, body: Vec<u8> },
}

/// How a payload became a JSON string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonNote {
    /// Decoded once, as everywhere else (or not a JSON placement).
    Decoded,
    /// As written: decoding once gives bytes that are not UTF-8.
    AsWritten,
    /// Even as written it is not UTF-8: those bytes became U+FFFD.
    Replaced,
}

/// A request: the parts the filter would hand the inspector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// In the order the filter sees them.
    pub parts: Vec<OwnedPart>,
}

impl Request {
    /// `payload` in `placement`, or `None` when it cannot be sent there (a header value with CR, LF, NUL...),
    /// with what the JSON placement had to do.
    pub fn with_payload(payload: &Payload, placement: Placement) -> Option<(Request, JsonNote)> {
        let mut note = JsonNote::Decoded;
        let part = match placement {
            Placement::Query => OwnedPart::Query([b"q=".as_slice(), &payload.wire()].concat()),
            Placement::Form => body("application/x-www-form-urlencoded", [b"q=".as_slice(), &payload.wire()].concat()),
            Placement::Json => {
                // JSON carries text only: when decoding once leaves bytes that are not UTF-8 (overlong `%c0%ae`
                // dots), the string carries the payload as written, for the application to decode.
                let decoded = payload.decoded();
                let text = if std::str::from_utf8(&decoded).is_ok() {
                    decoded
                } else {
                    note = JsonNote::AsWritten;
                    payload.text.clone()
                };
                let (string, replaced) = json_string(&text);
                if replaced {
                    note = JsonNote::Replaced;
                }
                body("application/json", format!("{{\"q\": {string}}}").into_bytes())
            }
            Placement::Header => OwnedPart::Headers(vec![(PAYLOAD_HEADER.to_vec(), header_value(&payload.decoded())?)]),
            Placement::Path => OwnedPart::Path([b"/files/".as_slice(), &payload.segment()].concat()),
            Placement::XmlText => {
                let text = xml_text(&String::from_utf8_lossy(&payload.decoded()));
                body("application/xml", format!("<?xml version=\"1.0\"?><r><q>{text}</q></r>").into_bytes())
            }
            Placement::XmlDocument => body("application/xml", payload.text.clone()),
        };
        Some((Request { parts: vec![part] }, note))
    }
}

fn body(content_type: &str, body: Vec<u8>) -> OwnedPart {
    OwnedPart::Body { content_type: content_type.as_bytes().to_vec(), body }
}

/// The inspector with one check per attack class, every place, at one sensitivity.
pub struct Scorer {
    inspector: Inspector,
    checks: Vec<Check<'static>>,
    /// Requests some part of which could not be inspected (over a cap): the policy decides on those.
    pub uninspectable: u64,
}

impl Scorer {
    /// Every class at `sensitivity`, in every place, nothing skipped.
    pub fn new(sensitivity: Sensitivity) -> Scorer {
        let places = Place::ALL.iter().fold(0u8, |set, place| set | place.bit());
        let checks = AttackClass::ALL.iter().map(|&class| Check { class, sensitivity, places, skip: &[] }).collect();
        Scorer { inspector: Inspector::new(Limits::default()), checks, uninspectable: 0 }
    }

    /// The classes that fire anywhere in `request`.
    pub fn fired(&mut self, request: &Request) -> ClassSet {
        let mut findings = Findings::default();
        for part in &request.parts {
            match part {
                OwnedPart::Path(path) => self.inspector.inspect(Part::Path(path), &self.checks, &mut findings),
                OwnedPart::Query(query) => self.inspector.inspect(Part::Query(query), &self.checks, &mut findings),
                OwnedPart::Headers(headers) => {
                    let borrowed: Vec<(&[u8], &[u8])> =
                        headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
                    self.inspector.inspect(Part::Headers(&borrowed), &self.checks, &mut findings);
                }
                OwnedPart::Body { content_type, body } => {
                    self.inspector.inspect(Part::Body { content_type, body }, &self.checks, &mut findings)
                }
            }
        }
        if findings.uninspectable {
            self.uninspectable += 1;
        }
        // One check per class, in `AttackClass::ALL` order, so check i is class i.
        let from_bits = self
            .checks
            .iter()
            .enumerate()
            .filter(|(i, _)| findings.fired & (1u64 << (*i).min(63)) != 0)
            .fold(0, |set, (_, check)| set | check.class.bit());
        findings.items.iter().flatten().fold(from_bits, |set, finding| set | finding.class.bit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_part(payload: &Payload, placement: Placement) -> OwnedPart {
        let (request, _) = Request::with_payload(payload, placement).expect("sendable");
        assert_eq!(request.parts.len(), 1);
        request.parts.into_iter().next().expect("one part")
    }

    #[test]
    fn each_placement_builds_the_part_the_filter_would_see() {
        let p = Payload::line(b"it's \"a\" & b");
        assert_eq!(only_part(&p, Placement::Query), OwnedPart::Query(b"q=it%27s%20%22a%22%20%26%20b".to_vec()));
        assert_eq!(only_part(&p, Placement::Json), body("application/json", br#"{"q": "it's \"a\" & b"}"#.to_vec()));
        assert_eq!(
            only_part(&p, Placement::Header),
            OwnedPart::Headers(vec![(b"user-agent".to_vec(), b"it's \"a\" & b".to_vec())])
        );
        assert_eq!(only_part(&p, Placement::Path), OwnedPart::Path(b"/files/it%27s%20%22a%22%20%26%20b".to_vec()));
        assert_eq!(
            only_part(&p, Placement::XmlText),
            body("application/xml", b"<?xml version=\"1.0\"?><r><q>it's \"a\" &amp; b</q></r>".to_vec())
        );
        let doc = Payload::line(b"<!DOCTYPE d [<!ENTITY % e SYSTEM 'x'>]><d/>");
        assert_eq!(only_part(&doc, Placement::XmlDocument), body("application/xml", doc.text.clone()));
    }

    #[test]
    fn json_strings_carry_the_payload_as_written_when_decoding_leaves_bad_utf8() {
        let (request, note) = Request::with_payload(&Payload::line(b"%c0%ae%c0%ae/x"), Placement::Json).expect("sent");
        assert_eq!(note, JsonNote::AsWritten);
        assert_eq!(request.parts, vec![body("application/json", br#"{"q": "%c0%ae%c0%ae/x"}"#.to_vec())]);
        let (_, note) = Request::with_payload(&Payload::line(b"\xe9t\xe9"), Placement::Json).expect("sent");
        assert_eq!(note, JsonNote::Replaced);
    }

    #[test]
    fn header_placement_is_skipped_for_line_breaks_even_encoded_ones() {
        assert!(Request::with_payload(&Payload::line(b"a%0d%0ab"), Placement::Header).is_none());
        assert!(Request::with_payload(&Payload::line(b"a%0d%0ab"), Placement::Query).is_some());
    }

    #[test]
    fn one_check_per_class_in_bit_order_everywhere() {
        let mut scorer = Scorer::new(Sensitivity::High);
        let classes: Vec<AttackClass> = scorer.checks.iter().map(|c| c.class).collect();
        assert_eq!(classes, AttackClass::ALL);
        assert!(scorer.checks.iter().all(|c| c.places == 0xff && c.sensitivity == Sensitivity::High));
        let (request, _) = Request::with_payload(&Payload::line(b"harmless"), Placement::Query).expect("sendable");
        assert_eq!(scorer.fired(&request), 0);
    }
}
