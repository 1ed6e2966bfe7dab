//! Cross-site scripting: the value read the way a browser would read it, as markup and as a script fragment.
//!
//! A lexer, not a pile of patterns: [`html`] tokenizes tags (name, attribute names and values, quoted or not,
//! separated by whitespace or `/`), comments and declarations as a browser's HTML tokenizer does, and judges each
//! piece by what the browser would do with it (run a handler, load a URL, parse a style). [`script`] reads the same
//! value as a JavaScript fragment that landed in a script block, an event handler or a `javascript:` URL. Names
//! come from static tables ([`tables`]); nothing is allocated and every look-ahead is bounded, so the cost is linear
//! in the value's length. Both the decoded value (entities, percent-encoding and backslash escapes undone) and, when
//! it differs, the value as the application reads it are lexed.
//!
//! # Levels
//! - **Low** (unmistakable): `<script`, `<iframe`/`<object`/`<embed`/`<applet`/`<frame` with attributes, any tag
//!   with an event handler attribute (`<img src=x onerror=...>`, `<svg/onload=...>`), any attribute whose value is
//!   a `javascript:`/`vbscript:`/`data:text/html` URL followed by code (tab, newline, NUL and entity tricks
//!   included), a `javascript:` URL with code as the whole value, `url(javascript:...)` in CSS, a string breakout
//!   straight into `alert(`, `eval(`, `setTimeout(`... (`";alert(1)//`, `'-confirm(1)-'`).
//! - **Medium** (recommended): also `</script>` and the other closers of raw-text or inert elements (`</style>`,
//!   `</textarea>`, `</title>`, `</xmp>`, `</noscript>`, `</template>`...: a breakout);
//!   `<svg>`, `<math>`, `<style>`, `<base>`, `<meta>`, `<link>`,
//!   `<xml>`, `<isindex>`, `<noscript>` as markup (`<svg>`/`<math>` with attributes), or with junk glued to the name
//!   (`<noscript#`); element names that run, load or fire events spelled with blanks (`<f o r m`); markup
//!   left open at the value's end with a quoted attribute (dangling markup: `<img src='//e.example/?`); links to
//!   hosts written as one number or with hex or octal parts, or with a split scheme (`http://1113982867/`);
//!   namespaced markup opened or closed (`<svg:svg>`, `</xsl:template>`, `<:vmlframe`), and SVG/XHTML/XSLT
//!   namespace declarations outside a tag (`xmlns:svg="..."`); `-->` as the whole value, before markup, or in a
//!   run that closes every context (`"'`-->]]>`); `!ENTITY` without its `<`; US-ASCII high-bit markup
//!   (`¼script¾`); a `data:` URL whose content is markup (`data:,<x>`); elements that fetch, play, take focus or fire events without a click
//!   (`<img>`, `<video>`, `<body>`, `<input>`, `<marquee>`, `<details>`, SVG animation) written with attributes;
//!   any element with an attribute that loads a URL or applies style (`src`, `style`, `background`, `action`...); unknown `on*=` attributes in tags; `style` with `expression(`,
//!   `-moz-binding` or `behavior:`; `srcdoc`; `<base href>`; `<meta http-equiv=refresh>`; IE conditional comments,
//!   server-side includes, `<!ENTITY`; outside XML bodies, `<!DOCTYPE`, `<?xml-stylesheet`, namespace declarations
//!   for XHTML, SVG, XSLT, IE behaviours, XML Schema and XInclude, and namespaced tags (`<xsl:template>`); `data:` URLs other than images in attributes;
//!   a value that is only a `<` encoded beyond what its place decodes (`&lt;`, `\x3c`: a probe for filters); markup opened right after a quote or comment breakout (`"><b ...>`); UTF-7
//!   markup (`+ADw-script`, also with its `+` encoded again or read as a space); script schemes followed by code
//!   anywhere in the value; calls of the functions attacks
//!   prove themselves with (`alert(1)`, ``alert`1` ``, `(alert)(1)`, `[1].find(alert)`, `eval(`, `setTimeout(`,
//!   `fromCharCode`, `atob(`, `new Function(`, tagged templates ``.call`${eval}...` ``); DOM objects attacks read or
//!   navigate with, through blanks, comments and parentheses (`document.cookie`, `(document)["cookie"]`,
//!   `window.location`, `location=name`, `top[...]`, `navigator.x(...)`, `constructor.constructor`, `innerHTML=`);
//!   JSFuck (`(![]+[])[+!![]]`, and its atoms `!![]`, `!+[]`); the global conversion hooks replaced (`valueOf=`,
//!   `toString=`); script scheme names split by tabs or newlines (`ja\tvascript:`, also as entities in a case the
//!   decoder leaves alone: `ja&tab;vascript:`, `&colon;`), code or not; a string breakout
//!   followed by a call (`';foo(1)//`, `'-bar(1)-'`); known event handlers written outside a tag
//!   (`" onfocus=alert(1) autofocus="`, `onload=`), any `on...=` or `formaction=` right after a quote (`"onzoom=`), a value that is only blanks and `on...=` (`  onnewevent= `), and a value that is only an event handler's name (`onload`: an attribute
//!   name injection).
//! - **High** (weak signals too): also any ordinary HTML element written as markup (`<b>`, `<h1>`, `<body>`), unknown
//!   tags with attributes, `<![CDATA[`, `<?xml` prologs, a
//!   bare `<svg>` or `<math>`, `</select>`/`</option>`, `-->` in prose, `obj.valueOf = f`, and in XML bodies
//!   `<!DOCTYPE`; `constructor(`, `alert (1)` with a space, `print(`/`fetch(`/`import(` calls, unknown `on*=`
//!   outside tags, a lone `<` typed as is, and capitalised tags glued to a word without attributes
//!   (`List<Object>`).
//!
//! Benign look-alikes that pass at Medium: `h2<h1`, `a < b > c`, `x<3`, `<3 you`, `I <love> this`,
//! `<john@example.com>`, `JavaScript: Basics`, `javascript basics`, `onboarding`, `on=1`, `online=yes`, markdown,
//! `Map<String, Object>`, `please confirm (by Friday)`, `alert(s)`, `step 1 --> step 2`, `ADW-X200`, `![](a.png)`,
//! `½ cup, ¼ teaspoon`, links to dotted IP addresses.

mod html;
mod lex;
mod script;
mod tables;

use super::{Place, Sensitivity, Subject};

/// The lowest sensitivity at which a finding counts, or `None` when nothing was found.
type Level = Option<Sensitivity>;

/// The more certain (lower) of two levels.
fn lowest(a: Level, b: Level) -> Level {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The lowest level at which `text` is cross-site scripting.
fn judge(text: &[u8], is_name: bool, place: Place) -> Level {
    let mut found = html::scan_tags(text, place == Place::Xml);
    if found == Some(Sensitivity::Low) {
        return found;
    }
    found = lowest(found, script::scan_script(text, is_name, place == Place::Xml));
    if found == Some(Sensitivity::Low) {
        return found;
    }
    // Every CSS rule has a `(` (`expression(`, `url(`).
    if memchr::memchr(b'(', text).is_none() {
        return found;
    }
    lowest(found, html::css(text))
}

/// A value that is nothing but a `<`: a probe for whether angle brackets get through. Encoded beyond what its place
/// decodes (`&lt;`, `\x3c`, `%253C`), it is meant for a filter, not for the application.
fn lone_bracket(subject: &Subject<'_>) -> Level {
    let trimmed = subject.decoded.trim_ascii();
    (trimmed == b"<").then_some(if subject.raw.trim_ascii() == b"<" { Sensitivity::High } else { Sensitivity::Medium })
}

/// Whether `subject` carries cross-site scripting at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let mut found = lowest(judge(subject.decoded, subject.is_name, subject.place), lone_bracket(subject));
    // What decoding changed may have hidden or made the markup; the value as read is lexed too.
    if found != Some(Sensitivity::Low) && subject.raw != subject.decoded {
        found = lowest(found, judge(subject.raw, subject.is_name, subject.place));
    }
    found.is_some_and(|level| level <= sensitivity)
}

#[cfg(test)]
mod tests;
