//! The HTML side of the XSS detector: tags lexed the way a browser's tokenizer reads them (tag name, attribute
//! names and values, comments, declarations), dangerous URL schemes, and CSS that runs script.
//!
//! Linear: each `<` starts one tag lexer that stops at the next `<`, so every byte is lexed as part of one tag at
//! most. A tag cut short by the next `<` is judged on what it has so far (a browser would keep reading, but the
//! next `<` is lexed as its own tag anyway).

use super::lex::{at, before, is_ident, is_space, match_loose, run_end, skip_blank, starts_ci};
use super::tables::{element, is_context_closer, is_event_handler, Element};
use super::{lowest, Level};
use crate::attacks::Sensitivity::{High, Low, Medium};

/// The lowest level at which some tag, declaration or comment in `s` is an attack.
/// `xml` says the value came from an XML document, where prologs, DOCTYPEs and namespaces are expected.
pub(super) fn scan_tags(s: &[u8], xml: bool) -> Level {
    let mut found = None;
    let mut i = 0;
    while let Some(offset) = s.get(i..).and_then(|rest| memchr::memchr(b'<', rest)) {
        let start = i + offset;
        let end = s.get(start + 1..).and_then(|rest| memchr::memchr(b'<', rest)).map_or(s.len(), |n| start + 1 + n);
        found = lowest(found, tag(s, start, end, xml));
        if found == Some(Low) {
            return found;
        }
        i = start + 1;
    }
    found
}

/// Judges the markup that starts with the `<` at `start` and is cut at `end`.
fn tag(s: &[u8], start: usize, end: usize, xml: bool) -> Level {
    let next = at(s, start + 1);
    match next {
        b'!' => declaration(s, start, xml),
        b'/' => {
            let name_end = run_end(s, start + 2, 16, |b| b.is_ascii_alphanumeric());
            let name = s.get(start + 2..name_end).unwrap_or_default();
            // `</svg:svg>`, `</xsl:template>`: namespaced markup outside an XML body, closed as well as opened.
            let namespaced = !xml && at(s, name_end) == b':' && is_markup_namespace(name);
            // `</onerror=go()`: a closing tag has no attributes, so inside the tag the page opened (`<x </on...=`)
            // the browser reads this as a handler attribute.
            let handler = name.len() > 4
                && starts_ci(name, 0, b"on")
                && name.iter().all(u8::is_ascii_alphabetic)
                && at(s, skip_spaces(s, name_end)) == b'=';
            match context_closer(name) {
                _ if handler || namespaced => Some(Medium),
                Some(closer) => Some(closer),
                None => None,
            }
        }
        // `<:vmlframe src=...>`: an empty namespace prefix, which old IE read as the element after it.
        b':' if at(s, start + 2).is_ascii_alphabetic() => open_tag(s, start + 1, end, xml),
        // `<?import` and `<?xml:namespace` pulled in behaviours in old IE.
        b'?' if starts_ci(s, start + 2, b"import") => Some(Medium),
        b'?' if starts_ci(s, start + 2, b"xml:namespace") => Some(Medium),
        // A stylesheet instruction makes an XML document run XSLT; a bare prolog is only a weak sign.
        b'?' if starts_ci(s, start + 2, b"xml-stylesheet") && !xml => Some(Medium),
        b'?' if starts_ci(s, start + 2, b"xml") => Some(High),
        b if b.is_ascii_alphabetic() => lowest(open_tag(s, start, end, xml), spaced_name(s, start + 1)),
        _ => None,
    }
}

/// `<f o r m`: an element's name spelled with blanks between its letters, to slip past filters that look for the
/// word (browsers do not parse it as the element: a weak sign).
fn spaced_name(s: &[u8], i: usize) -> Level {
    let mut letters = [0u8; 12];
    let mut len = 0;
    let mut j = i;
    while len < letters.len() && at(s, j).is_ascii_alphabetic() && !at(s, j + 1).is_ascii_alphabetic() {
        if let Some(slot) = letters.get_mut(len) {
            *slot = at(s, j);
        }
        len += 1;
        let gap = run_end(s, j + 1, 3, is_space);
        if gap == j + 1 {
            break;
        }
        j = gap;
    }
    let name = letters.get(..len).unwrap_or_default();
    // Only elements that run, load or fire events are worth the trouble; prose never spells them letter by letter.
    (len >= 3 && !matches!(element(name), Element::Plain | Element::Unknown)).then_some(Medium)
}

/// How telling a closing tag is: those of elements whose content the browser reads as raw text or keeps inert
/// (`</script>`, `</style>`, `</textarea>`, `</title>`, `</xmp>`, `</template>`...) end a context the page opened
/// so that what follows is parsed as fresh markup (a breakout); `</select>`, `</option>` are only weak signs.
fn context_closer(name: &[u8]) -> Level {
    if !is_context_closer(name) {
        return None;
    }
    let weak = [&b"select"[..], b"option", b"plaintext"].iter().any(|w| name.eq_ignore_ascii_case(w));
    Some(if weak { High } else { Medium })
}

/// Namespace prefixes of markup that scripts (`svg:`, `xsl:`, `html:`...).
fn is_markup_namespace(prefix: &[u8]) -> bool {
    [&b"xsl"[..], b"svg", b"html", b"xhtml", b"math", b"xlink", b"xbl"].iter().any(|ns| prefix.eq_ignore_ascii_case(ns))
}

/// `<!...`: comments, CDATA sections, DOCTYPE and entity declarations.
fn declaration(s: &[u8], start: usize, xml: bool) -> Level {
    if starts_ci(s, start, b"<!--") {
        // IE conditional comments run their content; server-side includes run commands.
        let body = skip_blank(s, start + 4, 8);
        let ssi = at(s, body) == b'#' && at(s, body + 1).is_ascii_alphabetic();
        if starts_ci(s, body, b"[if") || ssi {
            return Some(Medium);
        }
        return None;
    }
    if starts_ci(s, start, b"<!entity") || starts_ci(s, start, b"<!element") || starts_ci(s, start, b"<!attlist") {
        return Some(Medium);
    }
    // A whole document in a value: outside XML bodies it is markup meant for a browser.
    if starts_ci(s, start, b"<!doctype") {
        return Some(if xml { High } else { Medium });
    }
    if starts_ci(s, start, b"<![endif]") {
        return Some(Medium);
    }
    if starts_ci(s, start, b"<![cdata[") {
        return Some(High);
    }
    None
}

/// What a tag's attributes showed.
#[derive(Default)]
struct Attributes {
    found: Level,
    count: usize,
    closed: bool,
    /// Some attribute loads a URL or applies style (`src`, `style`, `background`, `formaction`...).
    loads: bool,
    /// Some attribute has a quoted value.
    quoted: bool,
}

/// `<name attr=value ...>`, cut at `end`.
fn open_tag(s: &[u8], start: usize, end: usize, xml: bool) -> Level {
    let seg = s.get(..end).unwrap_or(s);
    // The tag name runs to whitespace, `/` or `>`; its leading letters and digits say which element it is
    // (`<script+src=` and `<script\0>` are scripts to the filters they are written to slip past).
    let name_start = start + 1;
    let name_end = run_end(seg, name_start, usize::MAX, |b| !(is_space(b) || b == b'/' || b == b'>'));
    let word_end = run_end(seg, name_start, 16, |b| b.is_ascii_alphanumeric());
    let kind = element(seg.get(name_start..word_end).unwrap_or_default());
    let name = seg.get(name_start..word_end).unwrap_or_default();
    let attrs = attributes(seg, name_end, name, xml);
    // `List<Object>`, `Map<String, Frame>`: a capitalised word glued to another, without attributes, is a
    // generic type, not markup (`x<SCRIPT>` and `x<script>` are still markup).
    let glued = before(s, start).is_ascii_alphanumeric()
        && attrs.count == 0
        && at(s, name_start).is_ascii_uppercase()
        && name.iter().skip(1).any(u8::is_ascii_lowercase);
    // `<xsl:stylesheet>`, `<svg:svg>`, `<html:script>`: namespaced markup outside an XML body.
    let namespaced = !xml && at(seg, word_end) == b':' && name_end > word_end + 1 && is_markup_namespace(name);
    let shaped = attrs.closed || attrs.count > 0;
    // `<a href="x` or `<img src="//e.example/?` left open at the value's end: dangling markup that the page's own
    // text closes (and, with an open quote, sends to the attacker's server).
    let dangling = end == s.len() && !attrs.closed && attrs.quoted && kind != Element::Unknown && !glued;
    let by_element = match kind {
        _ if namespaced && !glued => Some(Medium),
        _ if dangling => Some(Medium),
        Element::Active if glued => Some(High),
        Element::Active if name.eq_ignore_ascii_case(b"script") || attrs.count > 0 => Some(Low),
        Element::Active => Some(Medium),
        Element::Loader if glued => Some(High),
        // A bare `<svg>` or `<math>` only switches the parser to foreign content: what follows decides.
        Element::Loader
            if attrs.count == 0 && (name.eq_ignore_ascii_case(b"svg") || name.eq_ignore_ascii_case(b"math")) =>
        {
            shaped.then_some(High)
        }
        Element::Loader if shaped => Some(Medium),
        // `<noscript#`, `<style%`: junk glued to the name, to slip past filters that want a blank or `>` after it.
        Element::Loader
            if name_end > word_end && !at(seg, word_end).is_ascii_alphanumeric() && at(seg, word_end) != b':' =>
        {
            Some(Medium)
        }
        Element::Eventful if glued => Some(High),
        Element::Eventful if attrs.count > 0 => Some(Medium),
        _ if attrs.loads && !glued => Some(Medium),
        Element::Eventful | Element::Plain | Element::Loader | Element::Unknown
            if shaped && after_breakout(s, start) =>
        {
            Some(Medium)
        }
        Element::Eventful if shaped => Some(High),
        Element::Plain if shaped => Some(High),
        Element::Unknown if attrs.count > 0 && !glued => Some(High),
        _ => None,
    };
    lowest(attrs.found, by_element)
}

/// Whether the `<` at `start` follows a quote or comment that closed the page's own markup (`"><`, `'><`, `--><`).
fn after_breakout(s: &[u8], start: usize) -> bool {
    before(s, start) == b'>' && {
        let prev = before(s, start.saturating_sub(1));
        matches!(prev, b'"' | b'\'' | b'`' | b'-' | b']')
    }
}

/// Lexes the attributes after the tag name (from `i`), judging each.
fn attributes(s: &[u8], mut i: usize, element_name: &[u8], xml: bool) -> Attributes {
    let mut out = Attributes::default();
    loop {
        // Whitespace and `/` separate attributes (`<svg/onload=...>`).
        i = run_end(s, i, usize::MAX, |b| is_space(b) || b == b'/' || b == 0);
        if i >= s.len() {
            return out;
        }
        if at(s, i) == b'>' {
            out.closed = true;
            return out;
        }
        // An attribute name may start with `=` or a quote, and runs to whitespace, `/`, `>` or `=`.
        let name_start = i;
        i = run_end(s, i + 1, usize::MAX, |b| !(is_space(b) || b == b'/' || b == b'>' || b == b'='));
        let name = s.get(name_start..i).unwrap_or_default();
        let eq = skip_spaces(s, i);
        let (value, has_value) = if at(s, eq) == b'=' {
            let v = skip_spaces(s, eq + 1);
            let quote = at(s, v);
            if matches!(quote, b'"' | b'\'' | b'`') {
                let close = s.get(v + 1..).and_then(|rest| memchr::memchr(quote, rest)).map_or(s.len(), |n| v + 1 + n);
                i = (close + 1).min(s.len());
                out.quoted = true;
                (s.get(v + 1..close).unwrap_or_default(), true)
            } else {
                i = run_end(s, v, usize::MAX, |b| !(is_space(b) || b == b'>'));
                (s.get(v..i).unwrap_or_default(), true)
            }
        } else {
            (&b""[..], false)
        };
        out.count += 1;
        out.loads |= has_value && loads(name);
        out.found = lowest(out.found, attribute(name, value, has_value, element_name, xml));
        if out.found == Some(Low) {
            return out;
        }
    }
}

/// Attributes that make the browser fetch a URL or apply style.
fn loads(name: &[u8]) -> bool {
    [
        &b"src"[..],
        b"style",
        b"background",
        b"lowsrc",
        b"dynsrc",
        b"datasrc",
        b"ping",
        b"formaction",
        b"action",
        b"poster",
        b"srcset",
        b"codebase",
        b"xlink:href",
    ]
    .iter()
    .any(|want| name.eq_ignore_ascii_case(want))
}

/// Skips HTML whitespace from `i`.
fn skip_spaces(s: &[u8], i: usize) -> usize {
    run_end(s, i, usize::MAX, is_space)
}

/// Judges one attribute of `element_name`.
fn attribute(name: &[u8], value: &[u8], has_value: bool, element_name: &[u8], xml: bool) -> Level {
    let lower_is = |want: &[u8]| name.eq_ignore_ascii_case(want);
    let mut found = None;
    if has_value && is_event_handler(name) {
        return Some(Low);
    }
    if has_value && name.len() > 4 && starts_ci(name, 0, b"on") && name.iter().all(u8::is_ascii_alphabetic) {
        found = Some(Medium);
    }
    // A URL-taking attribute (any attribute: `href`, `src`, `action`, `formaction`, `data`, `xlink:href`, SVG
    // `to`/`values`...) whose value starts with a script scheme.
    if let Some(level) = scheme_at(value, skip_url_lead(value, 0), Spot::Attribute) {
        return lowest(found, Some(level));
    }
    if lower_is(b"content") {
        // `<meta http-equiv=refresh content="0;url=javascript:...">`
        if let Some(pos) = find_ci(value, b"url=") {
            found = lowest(found, scheme_at(value, skip_url_lead(value, pos + 4), Spot::Attribute));
        }
    }
    if lower_is(b"style") {
        // In a style attribute the CSS is certainly applied.
        found = lowest(found, css(value).map(|_| Low));
    }
    // IE data binding renders a data island's field as HTML.
    if lower_is(b"dataformatas") && starts_ci(value, 0, b"html") {
        found = lowest(found, Some(Medium));
    }
    if lower_is(b"srcdoc") && has_value {
        found = lowest(found, Some(Medium));
    }
    if lower_is(b"http-equiv") && (starts_ci(value, 0, b"refresh") || starts_ci(value, 0, b"set-cookie")) {
        found = lowest(found, Some(Medium));
    }
    if loads(name) || lower_is(b"href") {
        found = lowest(found, obfuscated_host(value));
    }
    if lower_is(b"href") && element_name.eq_ignore_ascii_case(b"base") {
        found = lowest(found, Some(Medium));
    }
    // Namespace declarations that switch the parser to XHTML, SVG, XSLT or an IE behaviour (`<html xmlns:xss>`), or
    // make an XML processor fetch (`xsi:schemaLocation`, XInclude); other vocabularies (`adobe:ns:meta/`) are data.
    let scripted_namespace = !has_value
        || [&b"xhtml"[..], b"svg", b"xsl", b"html", b"microsoft", b"vml", b"xmlschema-instance", b"xinclude"]
            .iter()
            .any(|ns| find_ci(value, ns).is_some());
    if !xml && (lower_is(b"xmlns") || starts_ci(name, 0, b"xmlns:")) && scripted_namespace {
        found = lowest(found, Some(Medium));
    }
    // Any other `data:` URL where a URL goes smuggles content past what the page expects.
    if !xml && starts_ci(value, skip_url_lead(value, 0), b"data:") && !image_data(value) {
        found = lowest(found, Some(Medium));
    }
    found
}

/// A link to a web URL whose scheme is split by tabs or newlines (`htt\tp://`), or whose host is written as one
/// number or with hex or octal parts (`http://1113982867/`, `http://0x42.0x66.7.147/`, `http://0102.0146.7.223/`):
/// written to slip past filters that match hosts, never by an editor.
fn obfuscated_host(value: &[u8]) -> Level {
    let lead = skip_url_lead(value, 0);
    let end = match_loose(value, lead, b"http", false)?;
    let end = if at(value, end).eq_ignore_ascii_case(&b's') { end + 1 } else { end };
    let split = value.get(lead..end).is_some_and(|w| w.iter().any(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0)));
    if !starts_ci(value, end, b"://") {
        return None;
    }
    let host_start = end + 3;
    let host_end = run_end(value, host_start, 64, |b| !matches!(b, b'/' | b':' | b'?' | b'#' | b'"' | b'\'' | b'>'));
    let host = value.get(host_start..host_end).unwrap_or_default();
    let numeric = host.iter().all(|&b| b.is_ascii_hexdigit() || matches!(b, b'.' | b'x' | b'X' | b'\t'));
    let odd_part = host.split(|&b| b == b'.').any(|part| {
        let hex = part.len() > 2 && starts_ci(part, 0, b"0x");
        let octal = part.len() > 1 && part.first() == Some(&b'0') && part.iter().all(u8::is_ascii_digit);
        hex || octal
    });
    let one_number = host.len() >= 8 && host.iter().all(u8::is_ascii_digit);
    (split || (numeric && (odd_part || one_number))).then_some(Medium)
}

/// `data:image/png`, `data:image/jpeg`...: the inline images rich-text editors write (SVG is judged as a script
/// scheme).
fn image_data(value: &[u8]) -> bool {
    starts_ci(value, skip_url_lead(value, 0) + 5, b"image/") && find_ci(value, b"svg").is_none()
}

/// Skips what a browser strips before a URL's scheme: whitespace and control characters.
fn skip_url_lead(s: &[u8], i: usize) -> usize {
    run_end(s, i, 64, |b| b <= 0x20)
}

/// The first position of `pat` (lower case) in `s`, any case.
fn find_ci(s: &[u8], pat: &[u8]) -> Option<usize> {
    s.windows(pat.len()).position(|w| w.eq_ignore_ascii_case(pat))
}

/// Where a URL scheme was found, which says how sure it makes us.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Spot {
    /// At the start of an attribute value (or CSS `url(`): the browser treats it as a URL.
    Attribute,
    /// At the start of the whole value: a URL if the application puts it in `href`.
    Start,
    /// Anywhere else in the value.
    Anywhere,
}

/// A script-running URL scheme at `i` (`javascript:`, `vbscript:`, `data:text/html`...), with the tab, newline and
/// NUL tricks browsers forgive. Outside an attribute value it must be followed by code (`JavaScript: Basics of the
/// language` is prose).
pub(super) fn scheme_at(s: &[u8], i: usize, spot: Spot) -> Level {
    let first = at(s, i).to_ascii_lowercase();
    let script_end = match first {
        b'j' => match_loose(s, i, b"javascript:", false),
        b'v' => match_loose(s, i, b"vbscript:", false),
        b'l' => match_loose(s, i, b"livescript:", false),
        b'm' => match_loose(s, i, b"mocha:", false),
        b'd' => return data_url(s, i, spot == Spot::Attribute),
        _ => None,
    };
    let end = script_end?;
    // Tabs or newlines inside the scheme's name (`java\tscript:`) are there to slip past filters, code or not.
    let split = s.get(i..end).is_some_and(|w| w.iter().any(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0 | b'&')));
    match (spot, code_follows(s, end)) {
        (Spot::Attribute | Spot::Start, true) => Some(Low),
        (Spot::Attribute, false) => Some(Medium),
        (Spot::Anywhere, true) => Some(Medium),
        (_, false) if split => Some(Medium),
        (_, false) => None,
    }
}

/// `data:` with an HTML, SVG, XML or script media type.
fn data_url(s: &[u8], i: usize, in_url: bool) -> Level {
    let start = match_loose(s, i, b"data:", false)?;
    let type_end = run_end(s, start, 48, |b| b != b',' && b != b';');
    let media = s.get(start..type_end).unwrap_or_default();
    let active = [&b"html"[..], b"svg", b"xml", b"javascript", b"ecmascript", b"vbscript"]
        .iter()
        .any(|kind| find_ci(media, kind).is_some());
    // `data:,alert(1)` as a script's `src`.
    let bare_code = media.is_empty() && at(s, type_end) == b',' && code_follows(s, type_end + 1);
    // `data: , <x>`: a data URL (blanks and all) whose content is markup, written to be rendered.
    let markup = media.iter().all(|&b| is_space(b)) && at(s, type_end) == b',' && {
        let content = run_end(s, type_end + 1, 16, is_space);
        at(s, content) == b'<' && at(s, content + 1).is_ascii_alphabetic()
    };
    match (active || bare_code || markup, in_url) {
        (true, true) => Some(Low),
        (true, false) => Some(Medium),
        _ => None,
    }
}

/// Whether what follows a script scheme at `i` reads as code rather than prose (`javascript:alert(1)`,
/// `javascript://%0a...`, `javascript:void(0)`, but not `JavaScript: Basics of the language`).
pub(super) fn code_follows(s: &[u8], i: usize) -> bool {
    let j = run_end(s, i, 32, |b| is_space(b) || b == 0);
    let b = at(s, j);
    if matches!(b, b'/' | b'(' | b'\'' | b'"' | b'`' | b'[' | b'{' | b'!' | b'-' | b'+' | b'~' | b';' | b'%' | b'\\') {
        return true;
    }
    if is_ident(b) {
        let word_end = run_end(s, j, 64, is_ident);
        let after = at(s, word_end);
        // `javascript:javascript:alert(1)`: a label is code too.
        if matches!(after, b'(' | b'`' | b'.' | b'[' | b'=') || (after == b':' && at(s, word_end + 1) != b' ') {
            return true;
        }
        if starts_ci(s, j, b"void") || starts_ci(s, j, b"alert") || starts_ci(s, j, b"eval") {
            return true;
        }
    }
    false
}

/// CSS that runs script: `expression(...)`, `-moz-binding`, `behavior:`, and script URLs in `url(...)`.
pub(super) fn css(s: &[u8]) -> Level {
    let mut found = None;
    for (i, &b) in s.iter().enumerate() {
        let level = match b.to_ascii_lowercase() {
            b'e' => match_loose(s, i, b"expression", true).and_then(|end| {
                let open = skip_blank(s, end, 64);
                let prev = prev_non_blank(s, i);
                (at(s, open) == b'(' && matches!(prev, b':' | b'=' | b'(' | b',' | b'"' | b'\'' | b';' | b'{'))
                    .then_some(Medium)
            }),
            b'-' => match_loose(s, i, b"-moz-binding", true).map(|_| Medium),
            // `behavior: url(x.htc)` attaches script (IE); `behavior: polite` is prose.
            b'b' => match_loose(s, i, b"behavior", true)
                .filter(|&end| {
                    let colon = skip_blank(s, end, 64);
                    at(s, colon) == b':'
                        && !is_ident(before(s, i))
                        && match_loose(s, skip_blank(s, colon + 1, 64), b"url(", true).is_some()
                })
                .map(|_| Medium),
            b'u' => match_loose(s, i, b"url(", true).and_then(|end| {
                let v = run_end(s, end, 16, |c| c <= 0x20 || c == b'"' || c == b'\'');
                // `url(javascript` cut before its colon is as telling in a style.
                let cut = match_loose(s, v, b"javascript", true).or_else(|| match_loose(s, v, b"vbscript", true));
                lowest(scheme_at(s, v, Spot::Attribute), cut.map(|_| Medium))
            }),
            _ => None,
        };
        found = lowest(found, level);
        if found == Some(Low) {
            break;
        }
    }
    found
}

/// The last byte before `i` that is not whitespace, looking back a little.
fn prev_non_blank(s: &[u8], i: usize) -> u8 {
    let mut j = i;
    for _ in 0..16 {
        let b = before(s, j);
        if !is_space(b) || j == 0 {
            return b;
        }
        j -= 1;
    }
    0
}
