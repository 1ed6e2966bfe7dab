//! How a payload is put into a request: the placements, and the encodings each one needs.
//!
//! A payload line is either **plain** (the text an application should receive) or **already URL-encoded** (it holds
//! a `%XX` or `%uXXXX` escape: the list's author wrote the wire form, often to smuggle bytes or to double-encode).
//! - Query value and form field: a plain payload is percent-encoded whole (every byte but `A-Z a-z 0-9 - . _ ~`, so
//!   `+`, `&` and `#` reach the application intact); an encoded one is sent as written, escapes (malformed ones
//!   too) and `+` kept, with only the bytes that cannot stand in a query (space, controls, `#`, `&`, non-ASCII)
//!   escaped. The application then decodes it once, as it would.
//! - JSON string, header value: the text decoded once (`%XX` only; `+` stays `+`, as outside a form), then
//!   JSON-escaped, or used as the header value when it is a valid one (see [`header_value`]).
//! - Path: like the query, as one segment (`/` and `?` escaped too), after `/files/`.
//! - XML: benign text decoded once and escaped in an element; XXE payloads as the whole body, as written (they are
//!   documents, not URL text).

/// Where a value is put in the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// `?q=<value>`.
    Query,
    /// `q=<value>` as an `application/x-www-form-urlencoded` body.
    Form,
    /// `{"q": "<value>"}` as an `application/json` body.
    Json,
    /// The `user-agent` header.
    Header,
    /// A segment of the URL path (`/files/<value>`).
    Path,
    /// The text of an element in an `application/xml` body.
    XmlText,
    /// The payload as the whole `application/xml` body (XXE payloads are documents).
    XmlDocument,
}

impl Placement {
    /// Every placement, in table order.
    pub const ALL: [Placement; 7] = [
        Placement::Query,
        Placement::Form,
        Placement::Json,
        Placement::Header,
        Placement::Path,
        Placement::XmlText,
        Placement::XmlDocument,
    ];

    /// The column heading.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Query => "query",
            Placement::Form => "form",
            Placement::Json => "json",
            Placement::Header => "header",
            Placement::Path => "path",
            Placement::XmlText => "xml text",
            Placement::XmlDocument => "xml body",
        }
    }
}

/// One attack or benign value, as read from a corpus.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Payload {
    /// The bytes as written in the corpus.
    pub text: Vec<u8>,
    /// Whether the corpus wrote it in URL-encoded form (see the module doc).
    pub url_encoded: bool,
}

impl Payload {
    /// An attack payload line: URL-encoded when it holds an escape.
    pub fn line(text: &[u8]) -> Payload {
        Payload { text: text.to_vec(), url_encoded: has_escape(text) }
    }

    /// A value that is the text itself (benign traffic, CRS is rebuilt separately).
    pub fn plain(text: &[u8]) -> Payload {
        Payload { text: text.to_vec(), url_encoded: false }
    }

    /// What the application reads: decoded once when written encoded.
    pub fn decoded(&self) -> Vec<u8> {
        if self.url_encoded {
            percent_decode_once(&self.text)
        } else {
            self.text.clone()
        }
    }

    /// The query-string or form-body form of the value.
    pub fn wire(&self) -> Vec<u8> {
        if self.url_encoded {
            escape_unsafe(&self.text, b"#&")
        } else {
            percent_encode_all(&self.text)
        }
    }

    /// The value as one path segment.
    pub fn segment(&self) -> Vec<u8> {
        if self.url_encoded {
            escape_unsafe(&self.text, b"#&/?")
        } else {
            percent_encode_all(&self.text)
        }
    }
}

/// Whether `text` holds a `%XX` or `%uXXXX` escape.
pub fn has_escape(text: &[u8]) -> bool {
    (0..text.len()).any(|i| escape_len(text, i) > 0)
}

/// The length of the escape starting at `i` (0 when none does).
fn escape_len(text: &[u8], i: usize) -> usize {
    let hex = |j: usize| text.get(j).is_some_and(|b| b.is_ascii_hexdigit());
    if text.get(i) != Some(&b'%') {
        0
    } else if hex(i + 1) && hex(i + 2) {
        3
    } else if matches!(text.get(i + 1), Some(b'u' | b'U')) && (2..6).all(|k| hex(i + k)) {
        6
    } else {
        0
    }
}

/// Every byte but the unreserved ones percent-encoded.
pub fn percent_encode_all(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3);
    for &b in text {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            push_escape(&mut out, b);
        }
    }
    out
}

/// Already-encoded text made sendable: escapes kept, malformed ones too (`%%32%%65`, `%bg`: how the application
/// reads them is part of the test), and only what cannot stand there (space, controls, non-ASCII, and `extra`)
/// escaped.
fn escape_unsafe(text: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        let escape = escape_len(text, i);
        if escape > 0 {
            out.extend_from_slice(text.get(i..i + escape).unwrap_or_default());
            i += escape;
            continue;
        }
        if b <= b' ' || b >= 0x7f || extra.contains(&b) {
            push_escape(&mut out, b);
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(format!("%{b:02X}").as_bytes());
}

/// `%XX` decoded once (`%uXXXX`, `+` and malformed escapes left as they are: undoing those is the normaliser's job).
pub fn percent_decode_once(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        let digit = |j: usize| text.get(j).and_then(|d| (*d as char).to_digit(16));
        match (b, digit(i + 1), digit(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// `text` as a quoted JSON string; bytes that are not UTF-8 become U+FFFD (JSON cannot carry them). The flag says
/// whether that happened.
pub fn json_string(text: &[u8]) -> (String, bool) {
    let lossy = String::from_utf8_lossy(text);
    let replaced = matches!(lossy, std::borrow::Cow::Owned(_));
    (serde_json::to_string(&lossy).unwrap_or_default(), replaced)
}

/// `text` as an HTTP header value, as the application reads it (surrounding spaces and tabs dropped, as HTTP does),
/// or `None` when it cannot be one: a control byte other than tab (CR, LF, NUL...), or nothing left.
pub fn header_value(text: &[u8]) -> Option<Vec<u8>> {
    if text.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return None;
    }
    let start = text.iter().position(|b| !matches!(b, b' ' | b'\t'))?;
    let end = text.iter().rposition(|b| !matches!(b, b' ' | b'\t'))?;
    text.get(start..=end).map(<[u8]>::to_vec)
}

/// `text` escaped for XML character data.
pub fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_encoded_whole_and_reach_the_application_intact() {
        let p = Payload::line(b"a+b & c#d/e");
        assert!(!p.url_encoded);
        assert_eq!(p.wire(), b"a%2Bb%20%26%20c%23d%2Fe");
        assert_eq!(percent_decode_once(&p.wire()), b"a+b & c#d/e");
        assert_eq!(p.decoded(), b"a+b & c#d/e");
    }

    #[test]
    fn encoded_values_keep_their_escapes_and_plus_on_the_wire() {
        let p = Payload::line(b"x%2527+y z&%zz/%u002e");
        assert!(p.url_encoded);
        assert_eq!(p.wire(), b"x%2527+y%20z%26%zz/%u002e");
        assert_eq!(p.segment(), b"x%2527+y%20z%26%zz%2F%u002e");
        assert_eq!(p.decoded(), b"x%27+y z&%zz/%u002e");
    }

    #[test]
    fn a_lone_percent_is_not_an_escape() {
        assert!(!has_escape(b"50% off"));
        assert!(!has_escape(b"%u12"));
        assert!(has_escape(b"%u0041"));
        assert!(has_escape(b"end%0a"));
    }

    #[test]
    fn header_values_refuse_controls_and_drop_surrounding_space() {
        assert_eq!(header_value(b"  a\tb "), Some(b"a\tb".to_vec()));
        assert_eq!(header_value(b"a\r\nb"), None);
        assert_eq!(header_value(b"a\0b"), None);
        assert_eq!(header_value(b"   "), None);
    }

    #[test]
    fn json_strings_escape_quotes_and_controls_and_replace_bad_utf8() {
        assert_eq!(json_string(b"a\"b\\\n"), ("\"a\\\"b\\\\\\n\"".to_string(), false));
        assert_eq!(json_string(b"\xff"), ("\"\u{fffd}\"".to_string(), true));
    }
}
