//! The JavaScript side of the XSS detector: the value read as a script fragment landing in a script block, an
//! event handler or a `javascript:` URL — calls to the functions attacks prove themselves with, the DOM objects
//! they steal from or navigate with, string breakouts followed by code, event handlers written outside a tag,
//! and script URL schemes anywhere.
//!
//! One pass over identifiers and quotes; every look-ahead is bounded, so the pass is linear.

use super::html::{scheme_at, Spot};
use super::lex::{at, before, is_ident, is_space, run_end, skip_blank, starts_ci};
use super::tables::{element, is_event_handler, lowered, Element};
use super::{lowest, Level};
use crate::attacks::Sensitivity::{High, Low, Medium};

/// How far a look-ahead past an identifier may go (whitespace, comments, `)`).
const LOOKAHEAD: usize = 64;

/// The lowest level at which the script fragments in `s` are an attack.
pub(super) fn scan_script(s: &[u8], is_name: bool, xml: bool) -> Level {
    let mut found = None;
    let mut jsfuck = JsFuck::default();
    let mut i = 0;
    while i < s.len() {
        let b = at(s, i);
        if jsfuck.step(s, i) {
            found = lowest(found, Some(Medium));
        }
        if is_ident(b) {
            let end = run_end(s, i, usize::MAX, is_ident);
            // Every rule needs punctuation, an operator or the value's end after the word: a word followed by
            // another word (most of prose) is skipped without a look-up.
            let follower = at(s, run_end(s, end, LOOKAHEAD, is_space));
            if !is_ident(before(s, i)) && !follower.is_ascii_alphanumeric() {
                found = lowest(found, identifier(s, i, end, is_name, xml));
            }
            // Schemes end their word with `:`, or are split by the blanks browsers drop (`java\tscript:`).
            // (`ja&tab;vascript:` too: the decoder leaves odd-cased entities alone.)
            if !is_ident(before(s, i))
                && !b.is_ascii_digit()
                && matches!(at(s, end), b':' | b'\t' | b'\n' | b'\r' | 0 | b'&')
            {
                found = lowest(found, scheme_at(s, i, if i == 0 { Spot::Start } else { Spot::Anywhere }));
            }
            i = end;
            continue;
        }
        let level = match b {
            b'\'' | b'"' | b'`' => breakout(s, i),
            // UTF-7 `+ADw-` is `<`: markup for pages that let the browser guess their charset.
            b'+' if starts_ci(s, i, b"+adw-") && at(s, i + 5).is_ascii_alphabetic() => Some(Medium),
            // The same with its `+` encoded once more, or read as a space by a form decoder (base64 is
            // case-sensitive: `ADw` exactly, so part numbers like `ADW-X` are not it).
            b'%' | b' ' if utf7_bracket(s, i) => Some(Medium),
            b'-' if starts_ci(s, i, b"-->") => comment_close(s, i),
            // `¼script¾` in US-ASCII: a lone 0xBC (not the second byte of UTF-8 `¼`) is `<` to a decoder that drops
            // the high bit.
            0xbc if !matches!(before(s, i), 0xc2 | 0xc3) => high_bit_tag(s, i + 1),
            // `!ENTITY % x SYSTEM` without its `<`: a declaration written to slip past filters that look for `<!`.
            b'!' if starts_ci(s, i + 1, b"entity") && is_space(at(s, i + 7)) => Some(Medium),
            // A scheme after whitespace or control characters at the start of the value.
            _ if b <= 0x20 && i == 0 => {
                let j = run_end(s, 0, 64, |c| c <= 0x20);
                scheme_at(s, j, Spot::Start)
            }
            _ => None,
        };
        found = lowest(found, level);
        i += 1;
    }
    found
}

/// `%2BADw-x` or ` ADw-x` at `i`: UTF-7's `<` whose `+` was encoded again or decoded to a space.
fn utf7_bracket(s: &[u8], i: usize) -> bool {
    let lead = if at(s, i) == b'%' {
        if !starts_ci(s, i, b"%2b") {
            return false;
        }
        3
    } else {
        1
    };
    s.get(i + lead..i + lead + 4) == Some(&b"ADw-"[..]) && at(s, i + lead + 4).is_ascii_alphabetic()
}

/// `-->`, which closes a comment the page opened. Alone it is also an arrow in prose (a weak sign); it is a
/// breakout when it is the whole value or starts markup (`-->`, `--><svg`), or sits in a run that closes every
/// context at once (`"'`-->]]>`: quotes, comment, CDATA).
fn comment_close(s: &[u8], i: usize) -> Level {
    let lead = run_end(s, 0, 16, |b| is_space(b) || matches!(b, b'"' | b'\'' | b'`'));
    let after = run_end(s, i + 3, 16, is_space);
    let whole = lead == i && (after == s.len() || at(s, i + 3) == b'<');
    let cdata = starts_ci(s, i + 3, b"]]>") || (i >= 3 && s.get(i - 3..i) == Some(&b"]]>"[..]));
    let quotes =
        [b'"', b'\'', b'`'].iter().filter(|q| s.get(i.saturating_sub(3)..i).is_some_and(|w| w.contains(q))).count();
    Some(if whole || cdata || quotes >= 2 { Medium } else { High })
}

/// The element named at `i` after a high-bit `<`: one that runs, loads or fires events, or any name closed by a
/// high-bit `>` (`¼x¾`).
fn high_bit_tag(s: &[u8], i: usize) -> Level {
    let end = run_end(s, i, 16, |b| b.is_ascii_alphanumeric());
    let name = s.get(i..end).unwrap_or_default();
    let closed = !name.is_empty() && at(s, end) == 0xbe;
    (closed || matches!(element(name), Element::Active | Element::Loader | Element::Eventful)).then_some(Medium)
}

/// The last byte before `i` that is not whitespace (looking back a little), or 0.
fn prev_solid(s: &[u8], i: usize) -> u8 {
    before(s, run_end_back(s, i))
}

/// Where the run of whitespace that ends at `i` starts (looking back a little).
fn run_end_back(s: &[u8], i: usize) -> usize {
    let mut j = i;
    while j > 0 && i - j < 16 && is_space(before(s, j)) {
        j -= 1;
    }
    j
}

/// Tracks runs of JSFuck (`[][(![]+[])[+[]]...`): code written with six characters only.
#[derive(Default)]
struct JsFuck {
    /// Bytes of the alphabet in the current run, whitespace aside.
    len: usize,
    /// How many `!` the run holds (`![]` is how JSFuck makes `false`).
    negations: usize,
}

impl JsFuck {
    /// Feeds the byte at `i`; true once the run is long and negated enough to be code.
    fn step(&mut self, s: &[u8], i: usize) -> bool {
        let b = at(s, i);
        if matches!(b, b'[' | b']' | b'(' | b')' | b'!' | b'+') {
            self.len += 1;
            if b == b'!' {
                self.negations += 1;
            }
        } else {
            if !is_space(b) {
                *self = JsFuck::default();
            }
            return false;
        }
        self.len >= 10 && self.negations >= 2 || atom(s, i)
    }
}

/// JSFuck's atoms at `i`: `!![]` (true), `!+[]` (true), `[+[]]` (0 as an index). Not `![](`, a markdown image,
/// nor one after a word (`Wow!![](x.png)`).
fn atom(s: &[u8], i: usize) -> bool {
    let b = at(s, i);
    let shaped = (b == b'!' && (starts_ci(s, i, b"!![]") || starts_ci(s, i, b"!+[]")) && at(s, i + 4) != b'(')
        || (b == b'[' && starts_ci(s, i, b"[+[]]"));
    shaped && !before(s, i).is_ascii_alphanumeric() && before(s, i) != b'!'
}

/// Judges the identifier `s[start..end]`.
fn identifier(s: &[u8], start: usize, end: usize, is_name: bool, xml: bool) -> Level {
    let (buf, len) = lowered(s.get(start..end).unwrap_or_default())?;
    let word = buf.get(..len).unwrap_or_default();
    match word {
        b"alert" | b"confirm" | b"prompt" | b"eval" | b"settimeout" | b"setinterval" | b"execscript" | b"msgbox"
        | b"fromcharcode" | b"atob" | b"btoa" | b"print" | b"import" | b"fetch" => sink(s, start, end, word),
        // `new Function('...')()`: the `eval` that filters forget.
        b"function" => {
            let new = start >= 4 && s.get(start - 4..start).is_some_and(|w| w.eq_ignore_ascii_case(b"new "));
            (new && called(s, end, false)).then_some(Medium)
        }
        // ``[].sort.call`${alert}1` ``: a tagged template calls without parentheses.
        b"call" | b"apply" | b"bind" if prev_solid(s, start) == b'.' => {
            (at(s, skip_blank(s, end, LOOKAHEAD)) == b'`').then_some(Medium)
        }
        b"write" | b"writeln" if before(s, start) == b'.' => called(s, end, false).then_some(Medium),
        b"document" | b"window" | b"top" | b"self" | b"parent" | b"frames" | b"globalthis" | b"opener"
        | b"navigator" | b"location" => global(s, end, word, is_name),
        b"constructor" => {
            let next = at(s, end);
            if starts_ci(s, end, b".constructor") || next == b'[' || (before(s, start) == b'.' && next == b'(') {
                Some(Medium)
            } else if next == b'(' {
                Some(High)
            } else {
                None
            }
        }
        // `'formaction=//evil`: a button's form target, written after a quote that closed the page's attribute.
        b"formaction" if matches!(prev_solid(s, start), b'"' | b'\'' | b'`') => {
            (at(s, skip_blank(s, end, LOOKAHEAD)) == b'=').then_some(Medium)
        }
        // `valueOf=alert`, `toString=...`: the global conversion hooks replaced, so the page calls the attacker's
        // function the next time it turns an object into text (`obj.valueOf = f` in code is a weak sign).
        b"valueof" | b"tostring" => {
            let j = skip_blank(s, end, LOOKAHEAD);
            let assigns = at(s, j) == b'=' && at(s, j + 1) != b'=';
            assigns.then_some(if prev_solid(s, start) == b'.' { High } else { Medium })
        }
        // `xmlns:svg="http://www.w3.org/2000/svg"` outside a tag: a namespace declaration injected into the
        // page's own tag.
        b"xmlns" if !xml => {
            let window =
                |from: usize, len: usize| s.get(from..from.saturating_add(len).min(s.len())).unwrap_or_default();
            let value = memchr::memchr(b'=', window(end, 24)).map_or(&b""[..], |n| window(end + n, 64));
            [&b"xhtml"[..], b"svg", b"xsl", b"1999/xhtml"]
                .iter()
                .any(|ns| value.windows(ns.len()).any(|w| w.eq_ignore_ascii_case(ns)))
                .then_some(Medium)
        }
        b"innerhtml" | b"outerhtml" | b"insertadjacenthtml" | b"srcdoc" => {
            let j = skip_blank(s, end, LOOKAHEAD);
            let next = at(s, j);
            let assigns = next == b'=' && at(s, j + 1) != b'=';
            (assigns || starts_ci(s, j, b"+=") || next == b'(').then_some(Medium)
        }
        _ if len > 2 && word.starts_with(b"on") || word == b"fscommand" || word == b"seeksegmenttime" => {
            event_outside_tag(s, start, end, word, is_name)
        }
        _ => None,
    }
}

/// A function attacks call to prove or deliver themselves, as a call (`alert(1)`, ``alert`1` ``, `(alert)(1)`,
/// `alert?.(1)`) or passed as a value (`[1].find(alert)`, `a=alert,a(1)`, `onerror=alert`).
fn sink(s: &[u8], start: usize, end: usize, word: &[u8]) -> Level {
    // `print(`, `import(` and `fetch(` are common in code people write about; only as calls after a breakout.
    let weak = matches!(word, b"print" | b"import" | b"fetch");
    if called(s, end, true) {
        // `alert(s)`: the plural marker of prose; `use alert() sparingly`: a function named in a sentence.
        let named = starts_ci(s, end, b"()") && at(s, end + 2) == b' ' && at(s, end + 3).is_ascii_alphabetic();
        if starts_ci(s, end, b"(s)") || named {
            return Some(High);
        }
        return Some(if weak { High } else { Medium });
    }
    if called(s, end, false) && !weak {
        // `alert (1)` with a space reads as prose too often to block on.
        return Some(High);
    }
    let prev = before(s, start);
    let next = at(s, end);
    let as_value = matches!(prev, b'=' | b',' | b':') && matches!(next, b',' | b';' | b')' | b'}' | 0 | b'\n')
        || prev == b'(' && next == b')' && is_ident(before(s, start.saturating_sub(1)))
        // `${alert}` in a tagged template.
        || prev_solid(s, start) == b'{' && at(s, skip_blank(s, end, LOOKAHEAD)) == b'}' && {
            let brace = run_end_back(s, start);
            before(s, brace) == b'$'
        };
    (as_value && !weak).then_some(Medium)
}

/// Whether a call follows `end`: `(` or a backtick, after `)`s and `?.`, and (unless `tight`) whitespace and
/// comments.
fn called(s: &[u8], end: usize, tight: bool) -> bool {
    let mut j = end;
    let stop = end.saturating_add(LOOKAHEAD);
    while j < stop {
        let b = at(s, j);
        if b == b')' || (b == b'?' && at(s, j + 1) == b'.') {
            j += if b == b'?' { 2 } else { 1 };
        } else if b == b'/' && at(s, j + 1) == b'*' {
            j = skip_blank(s, j, LOOKAHEAD);
        } else if !tight && is_space(b) {
            j += 1;
        } else {
            return b == b'(' || b == b'`';
        }
    }
    false
}

/// The DOM objects attacks read or navigate with: `document.cookie`, `window.location`, `top[...]`,
/// `navigator.sendBeacon(...)`, `location=...`.
fn global(s: &[u8], end: usize, word: &[u8], is_name: bool) -> Level {
    // `document /*x*/ . cookie`, `(document)["cookie"]`: JavaScript ignores blanks, comments and parentheses.
    let mut j = skip_blank(s, end, LOOKAHEAD);
    if at(s, j) == b')' {
        j = skip_blank(s, j + 1, LOOKAHEAD);
    }
    let spaced = j > end;
    let next = at(s, j);
    if next == b'[' && !is_name && !matches!(word, b"location" | b"navigator") {
        // `top['al'+'ert'](1)`, `self[/al/.source+/ert/.source]`: computed access, not `top[10]`.
        let open = skip_blank(s, j + 1, LOOKAHEAD);
        let close = run_end(s, open, LOOKAHEAD, |b| b != b']');
        let inside = s.get(open..close).unwrap_or_default();
        return (!inside.is_empty() && !inside.iter().all(|b| b.is_ascii_digit() || is_space(*b))).then_some(Medium);
    }
    if next == b'.' {
        // Blanks after the dot only when there were some before it (`document. Location:` is two sentences).
        let prop_start = if spaced { skip_blank(s, j + 1, LOOKAHEAD) } else { j + 1 };
        let prop_end = run_end(s, prop_start, 32, is_ident);
        let (buf, len) = lowered(s.get(prop_start..prop_end).unwrap_or_default())?;
        let prop = buf.get(..len).unwrap_or_default();
        let risky = match word {
            b"document" => matches!(
                prop,
                b"cookie"
                    | b"domain"
                    | b"write"
                    | b"writeln"
                    | b"location"
                    | b"body"
                    | b"documentelement"
                    | b"createelement"
                    | b"getelementbyid"
                    | b"getelementsbytagname"
                    | b"queryselector"
                    | b"url"
                    | b"referrer"
                    | b"forms"
                    | b"images"
                    | b"scripts"
                    | b"head"
                    | b"defaultview"
                    | b"execcommand"
                    | b"open"
            ),
            b"location" => {
                matches!(prop, b"href" | b"hash" | b"search" | b"replace" | b"assign" | b"protocol" | b"pathname")
            }
            b"navigator" => called(s, prop_end, true) || prop == b"sendbeacon",
            // Methods count when called (`window.open is blocked` is prose), properties when read.
            _ => {
                // `parent.name` and `top.location` are also field paths in APIs (`sort=parent.name`): off `window`,
                // a property counts when the expression goes on (assigned, called, indexed, concatenated).
                let goes_on = word == b"window"
                    || matches!(
                        at(s, skip_blank(s, prop_end, LOOKAHEAD)),
                        b'=' | b'.' | b'[' | b'(' | b';' | b'+' | b')' | b'`'
                    );
                matches!(prop, b"location" | b"name" | b"document" | b"onerror" | b"opener" | b"constructor") && goes_on
                    || matches!(
                        prop,
                        b"open"
                            | b"eval"
                            | b"alert"
                            | b"confirm"
                            | b"prompt"
                            | b"execscript"
                            | b"settimeout"
                            | b"setinterval"
                            | b"postmessage"
                            | b"fetch"
                            | b"atob"
                    ) && (called(s, prop_end, false) || at(s, skip_blank(s, prop_end, LOOKAHEAD)) == b'=')
            }
        };
        return risky.then_some(Medium);
    }
    if word == b"location" {
        // `location=name`, `location='javascript:...'`, `location=//evil`: not `location=Paris`.
        let eq = skip_blank(s, end, LOOKAHEAD);
        if at(s, eq) == b'=' && at(s, eq + 1) != b'=' {
            let v = skip_blank(s, eq + 1, LOOKAHEAD);
            let b = at(s, v);
            let code = matches!(b, b'\'' | b'"' | b'`' | b'[' | b'(')
                || (b == b'/' && at(s, v + 1) == b'/')
                || ["name", "top", "window", "document", "self", "location", "atob", "unescape"]
                    .iter()
                    .any(|w| starts_ci(s, v, w.as_bytes()) && !is_ident(at(s, v + w.len())));
            return code.then_some(Medium);
        }
    }
    None
}

/// `onerror=...` written outside a tag (it lands inside one the page opened: `" onfocus=alert(1) autofocus="`), or
/// a value that is nothing but an event handler's name (it lands where an attribute name goes).
fn event_outside_tag(s: &[u8], start: usize, end: usize, word: &[u8], is_name: bool) -> Level {
    let eq = run_end(s, end, LOOKAHEAD, is_space);
    if at(s, eq) == b'=' && at(s, eq + 1) != b'=' {
        let v = run_end(s, eq + 1, LOOKAHEAD, is_space);
        let has_value = v < s.len() && !matches!(at(s, v), b'&' | b',' | b';');
        // Right after a quote or `/`, any `on...=` closes the page's attribute and opens a handler (`"onzoom=`).
        let after_quote = matches!(before(s, start), b'"' | b'\'' | b'`');
        let letters = word.iter().all(u8::is_ascii_alphabetic) && word.len() > 4;
        return if is_event_handler(word) && (has_value || eq + 1 == s.len() || is_space(at(s, eq + 1))) {
            // `onload=` with the value left to the page, or `onload=go()`.
            Some(Medium)
        } else if letters && after_quote {
            Some(Medium)
        } else if letters && !has_value && v == s.len() && start > 0 && run_end(s, 0, start, is_space) == start {
            // `  onnewevent= `: the whole value is blanks and an attribute with its value left to the page (a
            // handler newer than our table).
            Some(Medium)
        } else if letters && has_value {
            Some(High)
        } else {
            None
        };
    }
    // The whole value (quotes and whitespace aside) is a handler's name.
    let lead = run_end(s, 0, 8, |b| is_space(b) || b == b'"' || b == b'\'');
    let tail = run_end(s, end, 8, |b| is_space(b) || b == b'"' || b == b'\'');
    if !is_name && lead == start && tail == s.len() && is_event_handler(word) {
        return Some(Medium);
    }
    None
}

/// A quote that ends the string the value landed in, followed by an operator and code: `';alert(1)//`,
/// `'-foo(1)-'`, `"}));bar(1)//`.
fn breakout(s: &[u8], quote: usize) -> Level {
    let j = run_end(s, quote + 1, 8, |b| matches!(b, b')' | b']' | b'}'));
    let j = run_end(s, j, 8, is_space);
    let op = at(s, j);
    if !matches!(op, b';' | b'+' | b'-' | b'*' | b'|' | b'&' | b'^' | b',' | b'%' | b'/' | b'<' | b'>' | b'?') {
        return None;
    }
    // `</script>`, `<tag` and `-->` are the HTML side's to judge.
    if op == b'<' || op == b'>' || (op == b'-' && at(s, j + 1) == b'-') {
        return None;
    }
    let k = run_end(s, j + 1, 8, |b| is_space(b) || b == b'+' || b == b'-' || b == b'!' || b == b'~');
    if op == b'/' && at(s, j + 1) != b'/' && at(s, j + 1) != b'*' {
        return None;
    }
    let word_end = run_end(s, k, 32, is_ident);
    if word_end == k || at(s, k).is_ascii_digit() {
        return None;
    }
    if !matches!(at(s, word_end), b'(' | b'`') {
        return None;
    }
    // A breakout straight into `alert(`, `eval(`...: unmistakable.
    let word = s.get(k..word_end).unwrap_or_default();
    let proof =
        [&b"alert"[..], b"confirm", b"prompt", b"eval", b"settimeout", b"setinterval", b"execscript", b"msgbox"]
            .iter()
            .any(|sink| word.eq_ignore_ascii_case(sink));
    Some(if proof { Low } else { Medium })
}
