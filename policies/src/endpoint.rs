//! The endpoint a request belongs to: `METHOD host/path`, with the identifiers in the path folded to `{id}`.
//!
//! `GET api.example.com/users/8812/orders/5f0c9a2be4b0c1d2e3f40516` → `GET api.example.com/users/{id}/orders/{id}`.
//! Folded segments: numbers, UUIDs, hex strings of 16 or more characters, long base64-ish tokens (20 or more
//! characters with a digit) and prefixed ids such as `ord_8G2kQ9xZ`. The query string is dropped. Templates are
//! bounded (host 128 bytes, 32 segments, 256 bytes in all) so an attacker's paths cannot make keys grow.
//!
//! Equivalent requests have one template (and one `request.path`, `request.host` for rules): the host and path are
//! normalised first, the way Envoy's `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action:
//! UNESCAPE_AND_REDIRECT` would, plus the path parameters servlet containers ignore. See [`normalize_path`] and
//! [`normalize_host`].

/// Longest host kept in a template.
pub const MAX_HOST: usize = 128;
/// Most path segments kept; more are summarised as `/…`.
pub const MAX_SEGMENTS: usize = 32;
/// Longest template, in bytes.
pub const MAX_TEMPLATE: usize = 256;

/// The placeholder a folded segment becomes.
pub const ID: &[u8] = b"{id}";

/// Writes the endpoint template of a request into `out` (cleared first). `host` and `path` are taken as the
/// request carried them (`:authority`, `:path` with its query) and normalised here.
pub fn endpoint_template(method: &[u8], host: &[u8], path: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(method);
    out.push(b' ');
    let host = normalize_host(host);
    let host = host.get(..MAX_HOST).unwrap_or(host);
    out.extend(host.iter().map(u8::to_ascii_lowercase));
    let mut normalized = Vec::with_capacity(path.len().min(4096));
    normalize_path(path_only(path), &mut normalized);
    let path = normalized.as_slice();
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

/// The path of a `:path` value, without its query string or fragment.
pub fn path_only(path: &[u8]) -> &[u8] {
    match path.iter().position(|b| *b == b'?' || *b == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

/// The host of an `:authority` value as rules and templates see it: without the port and a trailing dot
/// (`API.example.com:443.` and `api.example.com` are one host; an IPv6 literal keeps its brackets). Lower-case it
/// when comparing (see [`endpoint_template`]).
pub fn normalize_host(authority: &[u8]) -> &[u8] {
    let host = if authority.first() == Some(&b'[') {
        // `[2001:db8::1]:8080`: the port is after the closing bracket.
        match authority.iter().position(|b| *b == b']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        }
    } else {
        match authority.iter().rposition(|b| *b == b':') {
            Some(colon) => authority.get(..colon).unwrap_or(authority),
            None => authority,
        }
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    host.trim_ascii()
}

/// Whether a byte is RFC 3986 unreserved: `%XX` of one is decoded, as Envoy's `normalize_path` does.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Normalises a path (without its query) into `out` (cleared first), so that equivalent paths are one:
/// - `%XX` of an unreserved character is decoded (`%61dmin` is `admin`, `%2e%2e` is `..`); `%2F` and `%5C` become
///   `/` (Envoy's `UNESCAPE_AND_REDIRECT` or `UNESCAPE_AND_FORWARD`); other escapes stay, in upper case (`%3b` is
///   `%3B`: an encoded `;` or `?` is data, not syntax);
/// - `\` is `/`, as browsers and Envoy's normaliser treat it;
/// - path parameters are dropped (`/admin;x=1` is `/admin`, `/..;/` is `/../`): servlet containers ignore them;
/// - empty segments are merged (`//`) and dot segments removed (RFC 3986 5.2.4), never above the root.
///
/// A trailing `/` is kept (`/a/` and `/a` stay two paths, as in Envoy). The result is never longer than `path`.
pub fn normalize_path(path: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(b'/');
    let mut i = 0usize;
    // The current segment starts at `start` in `out` (just after its `/`); `params` once a `;` was seen in it.
    let mut start = out.len();
    let mut params = false;
    loop {
        let byte = match path.get(i) {
            None => None,
            Some(b'%') => {
                match (path.get(i + 1).copied().and_then(hex_value), path.get(i + 2).copied().and_then(hex_value)) {
                    (Some(h), Some(l)) => {
                        i += 2;
                        let decoded = h << 4 | l;
                        if is_unreserved(decoded) || decoded == b'/' || decoded == b'\\' {
                            Some(Decoded::Byte(decoded))
                        } else {
                            Some(Decoded::Escape(decoded))
                        }
                    }
                    _ => Some(Decoded::Byte(b'%')),
                }
            }
            Some(&b) => Some(Decoded::Raw(b)),
        };
        i += 1;
        let separator = matches!(byte, None | Some(Decoded::Byte(b'/' | b'\\') | Decoded::Raw(b'/' | b'\\')));
        if !separator {
            if params {
                continue;
            }
            match byte {
                Some(Decoded::Raw(b';')) => params = true,
                Some(Decoded::Byte(b) | Decoded::Raw(b)) => out.push(b),
                Some(Decoded::Escape(b)) => {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    out.push(b'%');
                    out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
                    out.push(HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'));
                }
                None => {}
            }
            continue;
        }
        // The end of a segment: drop it if empty or `.`, drop it and its parent if `..`.
        let segment = out.get(start..).unwrap_or_default();
        match segment {
            b"" | b"." => out.truncate(start),
            b".." => {
                out.truncate(start);
                // Back over the parent segment, keeping the `/` before it; never above the root.
                if start > 1 {
                    let parent = out.get(..start - 1).and_then(|o| o.iter().rposition(|b| *b == b'/')).unwrap_or(0);
                    out.truncate(parent + 1);
                }
            }
            _ => {
                if byte.is_some() {
                    out.push(b'/');
                }
            }
        }
        start = out.len();
        params = false;
        if byte.is_none() {
            break;
        }
    }
}

/// One byte of a path after percent-decoding.
#[derive(Clone, Copy)]
enum Decoded {
    /// As it was in the path.
    Raw(u8),
    /// Decoded from `%XX` (unreserved, or a slash).
    Byte(u8),
    /// A `%XX` that stays escaped.
    Escape(u8),
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

    fn normalized(path: &str) -> String {
        let mut out = Vec::new();
        normalize_path(path.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn paths_are_normalised() {
        for (path, want) in [
            ("/admin/users", "/admin/users"),
            ("/./admin/users", "/admin/users"),
            ("/public/../admin/users", "/admin/users"),
            ("/public/%2e%2e/admin/users", "/admin/users"),
            ("/public/%2E./admin/users", "/admin/users"),
            ("/public/..;/admin/users", "/admin/users"),
            ("/../../admin/users", "/admin/users"),
            ("/%61dmin/%75sers", "/admin/users"),
            ("/admin;x=1/users;jsessionid=abc", "/admin/users"),
            ("//admin///users", "/admin/users"),
            ("/admin%2Fusers", "/admin/users"),
            ("/admin%2fusers", "/admin/users"),
            ("/admin%5cusers", "/admin/users"),
            ("\\admin\\users", "/admin/users"),
            ("/admin/users/", "/admin/users/"),
            ("/admin/users/.", "/admin/users/"),
            ("/admin/x/..", "/admin/"),
            ("/a%20b/%3b/%3F/%zz/%", "/a%20b/%3B/%3F/%zz/%"),
            ("", "/"),
            ("/", "/"),
            ("*", "/*"),
        ] {
            assert_eq!(normalized(path), want, "{path}");
            assert_eq!(normalized(want), want, "idempotent: {want}");
            assert!(normalized(path).len() <= path.len().max(1) + 1, "{path}");
        }
    }

    #[test]
    fn paths_made_of_path_syntax_normalise_once_and_for_all() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"/./..;%2e%2f%5c\\aZ9~-_?#\xff";
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let path: Vec<u8> =
                (0..len).map(|i| alphabet[((state >> (i % 60)) as usize + i * 7) % alphabet.len()]).collect();
            let mut once = Vec::new();
            normalize_path(&path, &mut once);
            let mut twice = Vec::new();
            normalize_path(&once, &mut twice);
            assert_eq!(once, twice, "{:?}", String::from_utf8_lossy(&path));
            assert!(once.starts_with(b"/"));
            assert!(!once.windows(2).any(|w| w == b"//"), "{:?}", String::from_utf8_lossy(&once));
        }
    }

    #[test]
    fn hosts_are_normalised() {
        for (host, want) in [
            ("api.example.com", "api.example.com"),
            ("api.example.com:443", "api.example.com"),
            ("api.example.com.", "api.example.com"),
            ("api.example.com.:8443", "api.example.com"),
            ("[2001:db8::1]:8080", "[2001:db8::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
            ("127.0.0.1:10000", "127.0.0.1"),
        ] {
            assert_eq!(normalize_host(host.as_bytes()), want.as_bytes(), "{host}");
        }
    }

    #[test]
    fn equivalent_requests_have_one_template() {
        let want = "GET api.example.com/admin/users/{id}";
        for (host, path) in [
            ("api.example.com", "/admin/users/12"),
            ("API.example.com:443.", "/admin/users/12"),
            ("API.EXAMPLE.COM.", "/admin/users/12?x=1"),
            ("api.example.com", "/./admin/users/12"),
            ("api.example.com", "/%61dmin/users/12"),
            ("api.example.com", "/admin;x=1/users/12"),
            ("api.example.com", "//admin//users//12"),
            ("api.example.com", "/x/../admin/users/12"),
            ("api.example.com", "/admin%2Fusers/12"),
        ] {
            assert_eq!(template("GET", host, path), want, "{host} {path}");
        }
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
