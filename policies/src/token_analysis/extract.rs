//! Finding the caller's token in a request: a header (with an optional auth scheme), a cookie, a query parameter.

use std::borrow::Cow;

use crate::token::TokenSource;

use super::codec::percent_decode;

/// The token of a request: the first of `sources` that is present and not empty.
///
/// `header` returns a request header's value by lower-case name (the filter's `_bytes` getter). A `Header` source
/// with a scheme needs the value to start with that scheme (any letter case) and whitespace: `Bearer abc` gives
/// `abc`, `Basic abc` gives nothing. Cookies are read from the `cookie` header (pairs separated by `;` or `,`, as
/// proxies join several cookie headers). `query` is the raw query string, with or without its `?`; the parameter's
/// value is percent-decoded, `+` is kept as is.
pub fn extract_token<'r>(
    sources: &[TokenSource],
    header: impl Fn(&[u8]) -> Option<Cow<'r, [u8]>>,
    query: Option<&[u8]>,
) -> Option<Cow<'r, [u8]>> {
    sources.iter().find_map(|source| {
        let found = match source {
            TokenSource::Header { name, scheme } => {
                header(name.as_bytes()).and_then(|value| after_scheme(value, scheme.as_deref()))
            }
            TokenSource::Cookie { name } => header(b"cookie").and_then(|value| cookie(value, name.as_bytes())),
            TokenSource::Query { name } => query.and_then(|q| query_param(q, name.as_bytes())).map(Cow::Owned),
        };
        found.filter(|token| !token.is_empty())
    })
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `value[start..end]` with surrounding spaces and tabs removed, as `(start, end)`.
fn trim(value: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && value.get(start).is_some_and(|&b| is_ows(b)) {
        start += 1;
    }
    while end > start && value.get(end - 1).is_some_and(|&b| is_ows(b)) {
        end -= 1;
    }
    (start, end)
}

/// The `(start, end)` part of a header value, keeping it borrowed when it was.
fn sub(value: Cow<'_, [u8]>, (start, end): (usize, usize)) -> Option<Cow<'_, [u8]>> {
    match value {
        Cow::Borrowed(v) => v.get(start..end).map(Cow::Borrowed),
        Cow::Owned(v) => v.get(start..end).map(|s| Cow::Owned(s.to_vec())),
    }
}

fn after_scheme<'r>(value: Cow<'r, [u8]>, scheme: Option<&str>) -> Option<Cow<'r, [u8]>> {
    let (start, end) = trim(&value, 0, value.len());
    let Some(scheme) = scheme else { return sub(value, (start, end)) };
    let scheme = scheme.as_bytes();
    let rest = start + scheme.len();
    let matches = value.get(start..rest).is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        && value.get(rest).is_some_and(|&b| is_ows(b));
    if !matches {
        return None;
    }
    let range = trim(&value, rest, end);
    sub(value, range)
}

fn cookie<'r>(value: Cow<'r, [u8]>, name: &[u8]) -> Option<Cow<'r, [u8]>> {
    let mut start = 0;
    let mut found = None;
    for (i, &b) in value.iter().enumerate().chain(std::iter::once((value.len(), &b';'))) {
        if b != b';' && b != b',' {
            continue;
        }
        let (s, e) = trim(&value, start, i);
        start = i + 1;
        let Some(pair) = value.get(s..e) else { continue };
        let Some(eq) = pair.iter().position(|&c| c == b'=') else { continue };
        if pair.get(..eq).map(|n| trim(n, 0, n.len())).and_then(|(ns, ne)| pair.get(ns..ne)) != Some(name) {
            continue;
        }
        let (mut vs, mut ve) = trim(&value, s + eq + 1, e);
        // RFC 6265 allows a cookie value in double quotes.
        if ve >= vs + 2 && value.get(vs) == Some(&b'"') && value.get(ve - 1) == Some(&b'"') {
            vs += 1;
            ve -= 1;
        }
        found = Some((vs, ve));
        break;
    }
    found.and_then(|range| sub(value, range))
}

fn query_param(query: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let query = query.strip_prefix(b"?").unwrap_or(query);
    query.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (pair.get(..eq)?, pair.get(eq + 1..)?),
            None => (pair, &b""[..]),
        };
        (key == name || percent_decode(key) == name).then(|| percent_decode(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer() -> TokenSource {
        TokenSource::Header { name: "authorization".into(), scheme: Some("Bearer".into()) }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let get = |v: &'static [u8]| move |n: &[u8]| (n == b"authorization").then_some(Cow::Borrowed(v));
        assert_eq!(extract_token(&[bearer()], get(b"bearer  abc.def "), None).as_deref(), Some(&b"abc.def"[..]));
        assert_eq!(extract_token(&[bearer()], get(b"BEARER\tx"), None).as_deref(), Some(&b"x"[..]));
        assert_eq!(extract_token(&[bearer()], get(b"Basic abc"), None), None);
        assert_eq!(extract_token(&[bearer()], get(b"Bearerabc"), None), None);
        assert_eq!(extract_token(&[bearer()], get(b"Bearer   "), None), None);
        assert_eq!(extract_token(&[bearer()], get(b"Bear"), None), None);
        let owned = |n: &[u8]| (n == b"authorization").then(|| Cow::Owned(b"Bearer tok".to_vec()));
        assert_eq!(extract_token(&[bearer()], owned, None).as_deref(), Some(&b"tok"[..]));
    }

    #[test]
    fn cookies_and_queries() {
        let src = [TokenSource::Cookie { name: "session".into() }];
        let get = |v: &'static [u8]| move |n: &[u8]| (n == b"cookie").then_some(Cow::Borrowed(v));
        assert_eq!(
            extract_token(&src, get(b"a=1; sessionx=2;session = \"tok\" , b=3"), None).as_deref(),
            Some(&b"tok"[..])
        );
        assert_eq!(extract_token(&src, get(b"a=1, session=t2"), None).as_deref(), Some(&b"t2"[..]));
        assert_eq!(extract_token(&src, get(b"session"), None), None);
        let q = [TokenSource::Query { name: "access_token".into() }];
        let none = |_: &[u8]| None;
        assert_eq!(
            extract_token(&q, none, Some(b"?a=1&access_token=x%2Ey+z&access_token=2")).as_deref(),
            Some(&b"x.y+z"[..])
        );
        assert_eq!(extract_token(&q, none, Some(b"access%5Ftoken=v")).as_deref(), Some(&b"v"[..]));
        assert_eq!(extract_token(&q, none, Some(b"access_token=")), None);
        assert_eq!(extract_token(&q, none, None), None);
    }
}
