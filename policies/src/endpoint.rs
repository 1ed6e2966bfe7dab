//! The endpoint a request belongs to: `METHOD host/path`, with the identifiers in the path folded to `{id}`.
//!
//! `GET api.example.com/users/8812/orders/5f0c9a2be4b0c1d2e3f40516` → `GET api.example.com/users/{id}/orders/{id}`.
//! Folded segments: numbers, UUIDs, hex strings of 16 or more characters, long base64-ish tokens (20 or more
//! characters with a digit) and prefixed ids such as `ord_8G2kQ9xZ`. The query string is dropped. Templates are
//! bounded (host 128 bytes, 32 segments, 256 bytes in all) so an attacker's paths cannot make keys grow.

/// Longest host kept in a template.
pub const MAX_HOST: usize = 128;
/// Most path segments kept; more are summarised as `/…`.
pub const MAX_SEGMENTS: usize = 32;
/// Longest template, in bytes.
pub const MAX_TEMPLATE: usize = 256;

/// The placeholder a folded segment becomes.
pub const ID: &[u8] = b"{id}";

/// Writes the endpoint template of a request into `out` (cleared first).
pub fn endpoint_template(method: &[u8], host: &[u8], path: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(method);
    out.push(b' ');
    let host = host.get(..MAX_HOST).unwrap_or(host);
    out.extend(host.iter().map(u8::to_ascii_lowercase));
    let path = match path.iter().position(|b| *b == b'?' || *b == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    };
    let mut segments = 0;
    for segment in path.split(|b| *b == b'/').filter(|s| !s.is_empty()) {
        segments += 1;
        let piece: &[u8] = if is_identifier(segment) { ID } else { segment };
        if segments > MAX_SEGMENTS || out.len() + 1 + piece.len() > MAX_TEMPLATE {
            out.extend_from_slice("/…".as_bytes());
            return;
        }
        out.push(b'/');
        out.extend_from_slice(piece);
    }
    if segments == 0 {
        out.push(b'/');
    }
}

/// True when a path segment looks like an identifier rather than a name.
pub fn is_identifier(segment: &[u8]) -> bool {
    let digits = segment.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = segment.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if digits == segment.len() {
        return !segment.is_empty();
    }
    if is_uuid(segment) {
        return true;
    }
    if segment.len() >= 16 && digits > 0 && segment.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    let token_chars = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'~' | b'+');
    if segment.len() >= 20 && digits > 0 && letters > 0 && segment.iter().all(token_chars) {
        return true;
    }
    // `ord_8G2kQ9xZ`, `cus-12ab34cd`: a short lower-case prefix, then an id with digits.
    if let Some(sep) = segment.iter().position(|b| *b == b'_' || *b == b'-') {
        let (prefix, rest) = segment.split_at(sep);
        let rest = rest.get(1..).unwrap_or_default();
        return (1..=8).contains(&prefix.len())
            && prefix.iter().all(u8::is_ascii_lowercase)
            && rest.len() >= 8
            && rest.iter().all(u8::is_ascii_alphanumeric)
            && rest.iter().any(u8::is_ascii_digit);
    }
    false
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(method: &str, host: &str, path: &str) -> String {
        let mut out = Vec::new();
        endpoint_template(method.as_bytes(), host.as_bytes(), path.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn identifiers_fold_names_stay() {
        assert_eq!(
            template("GET", "API.example.com", "/users/8812/orders/5f0c9a2be4b0c1d2e3f40516?x=1"),
            "GET api.example.com/users/{id}/orders/{id}"
        );
        assert_eq!(
            template("DELETE", "h", "/v2/items/123e4567-e89b-12d3-a456-426614174000/"),
            "DELETE h/v2/items/{id}"
        );
        assert_eq!(template("GET", "h", "/files/dGhpcyBpcyBhIHRva2VuMTIz"), "GET h/files/{id}");
        assert_eq!(template("GET", "h", "/charges/ch_3MmlLrLkdIwHu7ix0snN0B15"), "GET h/charges/{id}");
        assert_eq!(template("GET", "h", "/customers/cus-12ab34cd"), "GET h/customers/{id}");
        assert_eq!(
            template("GET", "h", "/organization-settings/billing-history"),
            "GET h/organization-settings/billing-history"
        );
        assert_eq!(template("GET", "h", "/api/v1/export"), "GET h/api/v1/export");
        assert_eq!(template("GET", "h", ""), "GET h/");
        assert_eq!(template("GET", "h", "/?q=1"), "GET h/");
    }

    #[test]
    fn templates_are_bounded() {
        let long = "/a".repeat(1000);
        let t = template("GET", &"h".repeat(500), &long);
        assert!(t.len() <= MAX_TEMPLATE + "/…".len(), "{}", t.len());
        assert!(t.ends_with("/…"));
        let t = template("GET", "h", &format!("/{}", "x".repeat(10_000)));
        assert_eq!(t, "GET h/…");
    }

    #[test]
    fn non_utf8_segments_are_kept_as_bytes() {
        let mut out = Vec::new();
        endpoint_template(b"GET", b"h", b"/\xff\xfe/12", &mut out);
        assert_eq!(out, b"GET h/\xff\xfe/{id}");
    }
}
