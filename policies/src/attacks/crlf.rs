//! CRLF injection: line breaks that would split a header or a response when the value is written into one.
//!
//! A value that reaches a response header (a redirect's `Location`, a cookie) and carries CR or LF lets the
//! attacker add headers or a whole response. What follows each line break (after decoding: `%0d%0a`, `%0a`,
//! `\r\n`, and the Node.js `嘊`/`嘍` characters whose low bytes are LF and CR) is read: a header line
//! (`Set-Cookie: …`, `Location: …`, any `Name: …`), a status line (`HTTP/1.1 200`), or an empty line before markup.
//! Where the value was found matters: paths, query strings, cookies and headers never hold line breaks in benign
//! traffic, while JSON and form bodies carry prose with newlines, so there only header and status lines count.
//!
//! - **Low**: a line break followed by a status line, by an empty line and markup, or by a response header that
//!   splits a response (`Set-Cookie`, `Location`, `Content-Length`…); in a path, cookie or header, by any
//!   hyphenated header line (`X-Injected:`); a line break in a parameter, cookie or form field name. In a body,
//!   only status lines, `Set-Cookie` and the framing headers (`Content-Length`, `Transfer-Encoding`).
//! - **Medium**: also a hyphenated header line after a break in a query, and any `Name:` line in a path, cookie or
//!   header; the other response headers after a break in a body; a line break in a JSON key; a request line
//!   smuggled into a value (`GET http://… HTTP/1.1`).
//! - **High**: also any CR or LF in a path, query, cookie or header, and any `Label:` line after a break in a query
//!   or a body (prose has those).

use super::{ByteSet, Place, Sensitivity, Subject};

/// The longest header name read after a line break.
const MAX_HEADER_NAME: usize = 64;

/// Response headers whose injection splits or steers a response.
const RESPONSE_HEADERS: &[&[u8]] = &[
    b"set-cookie",
    b"location",
    b"content-length",
    b"content-type",
    b"content-disposition",
    b"content-security-policy",
    b"content-encoding",
    b"transfer-encoding",
    b"refresh",
    b"x-xss-protection",
    b"access-control-allow-origin",
    b"access-control-allow-credentials",
    b"cache-control",
    b"strict-transport-security",
    b"x-frame-options",
    b"link",
    b"connection",
    b"host",
    b"cookie",
    b"authorization",
    b"remote-addr",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-real-ip",
];

/// What follows one line break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum After {
    /// Text.
    Text,
    /// `Name:` for a one-word name not in [`RESPONSE_HEADERS`]: prose has labels like `Note:` too.
    Label,
    /// `Name-Part:` for a name not in [`RESPONSE_HEADERS`]: header names are hyphenated, labels rarely.
    Header,
    /// A header from [`RESPONSE_HEADERS`].
    ResponseHeader,
    /// `Set-Cookie:`, a status line, or an empty line and markup: a response split outright.
    Split,
}

/// Whether `subject` carries a CRLF injection at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let lower = subject.lower;
    let in_body = matches!(subject.place, Place::Json | Place::Form | Place::Xml | Place::Body);
    // Without a line break (CR, LF, or the non-ASCII lead byte of U+560A and U+560D) every level says no, unless a
    // request line (which needs a space) may be smuggled: the byte set says so without a scan.
    let request_line = sensitivity >= Sensitivity::Medium && !in_body && subject.bytes.has(b' ');
    if !subject.bytes.any_of(ByteSet::bytes(b"\r\n\x80")) && !request_line {
        return false;
    }
    if sensitivity >= Sensitivity::Medium && !in_body && smuggled_request_line(lower) {
        return true;
    }
    let mut any_break = false;
    let mut worst = After::Text;
    let mut pos = 0;
    while let Some(at) = next_break(lower, pos) {
        let (len, ascii) = at.1;
        any_break |= ascii;
        let (after, breaks) = after_break(lower, at.0 + len);
        worst = worst.max(after);
        // A run of breaks is read once.
        pos = at.0 + len + breaks;
    }
    if in_body {
        // A JSON key may be any text; a form field's name never holds a line break.
        let name_break = subject.is_name && any_break && subject.place != Place::Json;
        return match sensitivity {
            Sensitivity::Low => worst == After::Split || name_break,
            Sensitivity::Medium => worst >= After::ResponseHeader || (subject.is_name && any_break),
            Sensitivity::High => worst >= After::Label || (subject.is_name && any_break),
        };
    }
    let header_like_place = matches!(subject.place, Place::Path | Place::Cookie | Place::Header);
    match sensitivity {
        Sensitivity::Low => {
            worst >= After::ResponseHeader
                || (header_like_place && worst >= After::Header)
                || (subject.is_name && any_break)
        }
        Sensitivity::Medium => {
            worst >= After::Header || (header_like_place && worst >= After::Label) || (subject.is_name && any_break)
        }
        Sensitivity::High => worst >= After::Label || any_break,
    }
}

/// The next line break at or after `from`: its position, its length, and whether it is an ASCII CR or LF.
fn next_break(lower: &[u8], mut from: usize) -> Option<(usize, (usize, bool))> {
    loop {
        let rest = lower.get(from..)?;
        let at = memchr::memchr3(b'\r', b'\n', 0xE5, rest)?;
        let pos = from + at;
        match rest.get(at..)? {
            [b'\r' | b'\n', ..] => return Some((pos, (1, true))),
            // U+560A and U+560D: Node.js wrote their low bytes (LF, CR) into headers.
            [0xE5, 0x98, 0x8A | 0x8D, ..] => return Some((pos, (3, false))),
            _ => from = pos + 1,
        }
    }
}

/// What the text right after a line break at `from` is, and how many more CR and LF follow the break.
fn after_break(lower: &[u8], from: usize) -> (After, usize) {
    let rest = lower.get(from..).unwrap_or_default();
    // More breaks: an empty line ends the headers, and what follows is a body.
    let breaks = rest.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let line = rest.get(breaks..).unwrap_or_default();
    if line.starts_with(b"http/") && line.get(5).is_some_and(u8::is_ascii_digit) {
        return (After::Split, breaks);
    }
    if breaks > 0 && line.first() == Some(&b'<') {
        return (After::Split, breaks);
    }
    // Blanks before a name fold it into the previous line for strict parsers, not for lenient ones: only the
    // response headers count after them.
    let blanks = line.iter().take(4).take_while(|&&b| b == b' ' || b == b'\t').count();
    let line = match line.get(blanks..) {
        Some(rest) if blanks > 0 => rest,
        _ => line,
    };
    let name_len = line.iter().take(MAX_HEADER_NAME + 1).take_while(|&&b| is_token(b)).count();
    if name_len == 0 || name_len > MAX_HEADER_NAME {
        return (After::Text, breaks);
    }
    let name = line.get(..name_len).unwrap_or_default();
    if !name.iter().any(u8::is_ascii_alphabetic) {
        return (After::Text, breaks);
    }

    // Parsers that skip stray CRs and blanks before the colon see the header too.
    let gap = line
        .get(name_len..)
        .unwrap_or_default()
        .iter()
        .take(8)
        .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    if line.get(name_len + gap) != Some(&b':') {
        return (After::Text, breaks);
    }
    // Set-Cookie plants a cookie; the framing headers end the response early.
    let after = if matches!(name, b"set-cookie" | b"content-length" | b"transfer-encoding") {
        After::Split
    } else if RESPONSE_HEADERS.contains(&name) {
        After::ResponseHeader
    } else if blanks > 0 || !has_value(line.get(name_len + gap + 1..).unwrap_or_default()) {
        // An injected header carries a value; a heading like `E-mail:` on its own line is prose.
        After::Text
    } else if name.contains(&b'-') {
        After::Header
    } else {
        After::Label
    };
    (after, breaks)
}

/// Whether a header line's rest (after the colon) has a value before the line ends.
fn has_value(rest: &[u8]) -> bool {
    rest.iter().take(16).find(|&&b| b != b' ' && b != b'\t').is_some_and(|&b| b != b'\r' && b != b'\n')
}

/// A header name's characters (RFC 9110 `tchar`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A request line inside a value (`GET http://host/ HTTP/1.1`): request smuggling through a value an upstream
/// writes into a request.
fn smuggled_request_line(lower: &[u8]) -> bool {
    const METHODS: &[&[u8]] =
        &[b"get ", b"post ", b"head ", b"put ", b"delete ", b"options ", b"connect ", b"trace ", b"patch "];
    let Some(method) = METHODS.iter().find(|m| lower.starts_with(m)) else { return false };
    let rest = lower.get(method.len()..).unwrap_or_default();
    // The request target: an origin form, an absolute URL, or `*`, then the version.
    let target_len = rest.iter().take_while(|b| !b.is_ascii_whitespace()).count();
    let target = rest.get(..target_len).unwrap_or_default();
    let is_target = target.starts_with(b"/") || target == b"*" || memchr::memmem::find(target, b"://").is_some();
    let version = rest.get(target_len..).unwrap_or_default();
    is_target && version.starts_with(b" http/") && version.get(6).is_some_and(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, place: Place, is_name: bool, sensitivity: Sensitivity) -> bool {
        let lower = text.to_ascii_lowercase();
        let mut subject = Subject::plain(text.as_bytes(), lower.as_bytes(), place);
        subject.is_name = is_name;
        detect(&subject, sensitivity)
    }

    fn level(text: &str, place: Place) -> Option<Sensitivity> {
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|&s| at(text, place, false, s))
    }

    #[test]
    fn response_splitting_is_found_at_low_everywhere_it_applies() {
        for place in [Place::Path, Place::Query, Place::Cookie, Place::Header] {
            for attack in [
                "en\r\nSet-Cookie: session=attacker",
                "x\nLocation: https://attacker.test/",
                "x\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK",
                "x\r\n\r\n<html>owned</html>",
                "x\n\rlocation:\n\r",
                "x\r\nTransfer-Encoding : chunked",
                "x\u{560d}\u{560a}Set-Cookie: a=b",
                "x\r\n\tSet-Cookie: a=b",
            ] {
                assert_eq!(level(attack, place), Some(Sensitivity::Low), "{attack} in {place:?}");
            }
        }
    }

    #[test]
    fn any_header_line_splits_a_path_cookie_or_header_at_low() {
        for place in [Place::Path, Place::Cookie, Place::Header] {
            assert_eq!(level("data\rInjected-Header: value", place), Some(Sensitivity::Low), "{place:?}");
        }
        assert_eq!(level("data\rInjected-Header: value", Place::Query), Some(Sensitivity::Medium));
        assert_eq!(level("data\rInjectedHeader: value", Place::Query), Some(Sensitivity::High));
        assert_eq!(level("data\rInjectedHeader: value", Place::Header), Some(Sensitivity::Medium));
        // A heading on its own line is prose.
        assert_eq!(level("Contact\nE-mail:\nme@example.com", Place::Query), Some(Sensitivity::High));
        assert_eq!(level("bar\r\nX-Anything\r\r: v", Place::Query), Some(Sensitivity::Medium));
    }

    #[test]
    fn names_with_breaks_are_found_at_low_and_json_keys_at_medium() {
        for place in [Place::Query, Place::Path, Place::Cookie, Place::Header, Place::Form] {
            assert!(at("param\r\n", place, true, Sensitivity::Low), "{place:?}");
        }
        assert!(!at("line\nbreak", Place::Json, true, Sensitivity::Low));
        assert!(at("line\nbreak", Place::Json, true, Sensitivity::Medium));
    }

    #[test]
    fn request_lines_are_found_at_medium() {
        assert_eq!(level("GET http://internal.test/ HTTP/1.1", Place::Query), Some(Sensitivity::Medium));
    }

    #[test]
    fn bare_breaks_outside_bodies_are_found_at_high() {
        for place in [Place::Path, Place::Query, Place::Cookie, Place::Header] {
            assert_eq!(level("first\nsecond=more", place), Some(Sensitivity::High), "{place:?}");
        }
    }

    #[test]
    fn bodies_report_splits_and_response_headers_only() {
        for place in [Place::Json, Place::Form, Place::Xml] {
            assert_eq!(level("hi\r\nSet-Cookie: a=b", place), Some(Sensitivity::Low));
            assert_eq!(level("hi\r\n\r\nHTTP/1.0 302 Found", place), Some(Sensitivity::Low));
            assert_eq!(level("\r\nContent-Length: 0", place), Some(Sensitivity::Low));
            assert_eq!(level("hi\r\nContent-Type: text/html", place), Some(Sensitivity::Medium));
            assert_eq!(level("Dear team,\nNote: the invoice is late.\nThanks", place), Some(Sensitivity::High));
        }
    }

    #[test]
    fn benign_text_passes_at_every_level() {
        for place in [Place::Json, Place::Form, Place::Xml, Place::Body] {
            for benign in [
                "Line one\nline two\r\nline three",
                "Meeting at\n10:30 tomorrow",
                "Address:\n12 High Street\nLondon",
                "Hello,\n\nThanks for the <b>quick</b> reply",
                "I got HTTP/1.1 errors",
            ] {
                assert_eq!(level(benign, place), None, "{benign} in {place:?}");
            }
        }
        for place in [Place::Path, Place::Query, Place::Cookie, Place::Header] {
            for benign in ["plain value", "get the HTTP/1.1 spec", "Location: Paris", "a=b; c=d"] {
                assert_eq!(level(benign, place), None, "{benign} in {place:?}");
            }
            // An indented label continues the line before it.
            assert_eq!(level("a\n  note: b", place), Some(Sensitivity::High), "{place:?}");
        }
    }

    #[test]
    fn linear_on_long_runs() {
        for unit in ["\r\n", "\n", "\nX-", "\nX-a:", "\u{5600}", "\r \t", "GET /", "\n:", "a"] {
            let text = unit.repeat(20_000);
            for place in [Place::Query, Place::Json] {
                let _ = level(&text, place);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::token_analysis::test_rng::Rng(0xA076_1D64_78BD_642F);
        let mut next = move || rng.next();
        let alphabet = b"\r\n: set-cookie<http/1 \xe5\x98\x8a";
        let places = [Place::Path, Place::Query, Place::Cookie, Place::Header, Place::Json, Place::Body];
        for round in 0..4000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        r as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let lower = bytes.to_ascii_lowercase();
            let place = places[round % places.len()];
            for s in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                detect(&Subject::plain(&bytes, &lower, place), s);
            }
        }
    }
}
