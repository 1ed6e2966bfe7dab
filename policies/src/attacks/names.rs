//! Attacks carried by names and paths: MongoDB-style operator injection (NoSQL) and prototype pollution.
//!
//! Both read the value with evasions undone and lower-cased (no regex, no allocation, linear): memchr and memmem find
//! the few bytes every shape starts with (`$`, a quote, `;`, `||`, `__proto__`…), and a bounded look-around there
//! decides. Both look at names (query and form parameter names, JSON keys: `subject.is_name`) and at
//! values, since a name can also arrive inside a value (a JSON document sent as a string, a path like
//! `a.__proto__.b` a server resolves).
//!
//! # NoSQL injection ([`detect_nosql`])
//! - **Low**: a MongoDB operator from a static table (`$ne`, `$gt`, `$where`, `$regex`, `$in`, `$or`, `$expr`,
//!   `$function`, `$lookup`…) as a name or a segment of one (`user[$ne]`, `filter.$gt`, a JSON key `$where`), or in a
//!   value as an object key or a bracketed name: followed by `:` or `]` (`{"$ne": null}`, `{ $gt: '' }`,
//!   `[$ne]=1`, `', $or: [ {}`).
//! - **Medium** (recommended) adds JavaScript written into a `$where`-style value: a string closed and followed by
//!   a statement (`'; return true; var x='`, `';sleep(5000);'`, `";it=new Date();…`), `;return true`,
//!   tautologies after `&&`/`||` (`|| 1==1`, `&& 'a'=='a'`, `&& this.…`), `this.field.match(` (or another string
//!   probe: `startsWith(`, `charAt(`…) or `this.field == …`, `sleep(N)`, and `db.collection.method(` calls.
//! - **High** adds weak signals: an unknown `$name` as a name or a key (`$comment` in a name, `{ $foo: 1 }`), and a
//!   known operator anywhere in a value (`$where` in a code sample).
//!
//! # Prototype pollution ([`detect_prototype_pollution`])
//! - **Low**: `__proto__` in a name or a segment of one (`__proto__[isAdmin]`, a JSON key `__proto__`, also buried
//!   in a longer token as filters that strip it once leave it: `__pro__proto__to__`); in a value, `__proto__` as the
//!   whole value (servers that assign `obj[key] = value` from two parameters) or in a path (`a.__proto__.b`,
//!   `["__proto__"]`, `{"__proto__": …}`, a JSON Pointer `/__proto__/x`); `constructor` then `prototype` joined by
//!   `.`, brackets or `/` (`constructor.prototype`, `constructor[prototype]`, `["constructor"]["prototype"]`,
//!   `/constructor/prototype`) in a name or a value.
//! - **Medium** (recommended) adds `__proto__` anywhere in a value without whitespace (`x=__proto__y`).
//! - **High** adds `__proto__` in prose, `prototype` as a name segment, `constructor` or `prototype` as a whole
//!   value, and the legacy accessors (`__defineGetter__`, `__lookupSetter__`…).

use super::{ByteSet, Level, Sensitivity, Subject};

/// Whether `subject` carries a NoSQL operator injection at `sensitivity`.
pub fn detect_nosql(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let text = subject.lower;
    // Every operator starts with `$`, every JavaScript shape at one of the others: the byte set says when none is
    // there, without a scan.
    if !subject.bytes.any_of(ByteSet::bytes(if subject.is_name { b"$" } else { b"$'\";|&.(" })) {
        return false;
    }
    let bytes = subject.bytes;
    let operators = |find: fn(&[u8]) -> Level| if bytes.has(b'$') { find(text) } else { Level::None };
    let level = if subject.is_name {
        operators(name_operators)
    } else {
        operators(value_operators).max(javascript(text, bytes))
    };
    level.fires(sensitivity)
}

/// Whether `subject` reaches an object's prototype at `sensitivity`.
pub fn detect_prototype_pollution(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    // Every finding holds `_` (`__proto__`, the accessors) or is `prototype` or `constructor`: the byte set says
    // when none can be there, without a scan.
    let bytes = subject.bytes;
    if !bytes.has(b'_') && !bytes.all_of(ByteSet::bytes(b"prototype")) && !bytes.all_of(ByteSet::bytes(b"constructor"))
    {
        return false;
    }
    prototype_paths(subject.lower, subject.is_name, bytes).fires(sensitivity)
}

/// MongoDB query, update and aggregation operators, lower case, without their `$`.
const OPERATORS: [&[u8]; 52] = [
    b"ne",
    b"eq",
    b"gt",
    b"gte",
    b"lt",
    b"lte",
    b"in",
    b"nin",
    b"not",
    b"nor",
    b"or",
    b"and",
    b"exists",
    b"type",
    b"regex",
    b"options",
    b"where",
    b"expr",
    b"function",
    b"accumulator",
    b"lookup",
    b"graphlookup",
    b"unionwith",
    b"elemmatch",
    b"size",
    b"all",
    b"mod",
    b"text",
    b"search",
    b"jsonschema",
    b"comment",
    b"match",
    b"group",
    b"project",
    b"merge",
    b"out",
    b"set",
    b"unset",
    b"push",
    b"pull",
    b"pullall",
    b"addtoset",
    b"rename",
    b"inc",
    b"geowithin",
    b"near",
    b"nearsphere",
    b"bitsallset",
    b"facet",
    b"replaceroot",
    b"sample",
    b"currentop",
];

/// The longest token compared with a table: longer ones are never keywords.
const MAX_WORD: usize = 64;

/// Operators in a name: `$op` as a whole segment (`[`, `.`, a quote or the name's ends around it).
fn name_operators(text: &[u8]) -> Level {
    let mut level = Level::None;
    for at in memchr::memchr_iter(b'$', text) {
        let before = at.checked_sub(1).and_then(|i| text.get(i)).copied();
        if !matches!(before, None | Some(b'[' | b'.' | b'"' | b'\'' | b'{' | b',' | b' ')) {
            continue;
        }
        let word = word(text, at + 1);
        let after = text.get(at + 1 + word.len()).copied();
        if !matches!(after, None | Some(b']' | b'[' | b'.' | b'"' | b'\'' | b':' | b'}')) {
            continue;
        }
        if OPERATORS.contains(&word) {
            return Level::Low;
        }
        if word.first().is_some_and(u8::is_ascii_alphabetic) {
            level = Level::High;
        }
    }
    level
}

/// Operators in a value: as a key or bracketed name (followed by `:` or `]`), or anywhere.
fn value_operators(text: &[u8]) -> Level {
    let mut level = Level::None;
    for at in memchr::memchr_iter(b'$', text) {
        let before = at.checked_sub(1).and_then(|i| text.get(i));
        if before.is_some_and(|&b| is_word(b)) {
            continue;
        }
        let word = word(text, at + 1);
        if word.is_empty() || !word.first().is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let mut after = at + 1 + word.len();
        if matches!(text.get(after), Some(b'"' | b'\'')) {
            after += 1;
        }
        after = skip_ws(text, after);
        let key = matches!(text.get(after), Some(b':' | b']'));
        let known = OPERATORS.contains(&word);
        level = level.max(match (known, key) {
            (true, true) => return Level::Low,
            (true, false) | (false, true) => Level::High,
            (false, false) => Level::None,
        });
    }
    level
}

/// JavaScript written into a value that a `$where` clause or `mapReduce` would run. Every shape starts at a quote,
/// `;`, `||`/`&&`, the `.` of `this.`/`db.` or the `(` of `sleep(`: memchr finds those, the rest is not read.
fn javascript(text: &[u8], bytes: ByteSet) -> Level {
    // Each search runs only when the byte set says its bytes are there.
    let found = (bytes.any_of(ByteSet::bytes(b"'\";"))
        && memchr::memchr3_iter(b'\'', b'"', b';', text).any(|i| match text.get(i) {
            Some(b';') => semicolon_return(text, i + 1),
            _ => string_break(text, i + 1),
        }))
        || (bytes.any_of(ByteSet::bytes(b"|&."))
            && memchr::memchr3_iter(b'|', b'&', b'.', text).any(|i| match text.get(i) {
                Some(&c @ (b'|' | b'&')) => {
                    text.get(i + 1) == Some(&c) && text.get(i + 2) != Some(&c) && tautology(text, i + 2)
                }
                _ => {
                    if word_before(text, i, b"this") {
                        this_access(text, i + 1)
                    } else if word_before(text, i, b"db") {
                        db_call(text, i + 1)
                    } else {
                        false
                    }
                }
            }))
        || (bytes.has(b'(')
            && memchr::memchr_iter(b'(', text).any(|i| word_before(text, i, b"sleep") && sleep_argument(text, i + 1)));
    if found {
        Level::Medium
    } else {
        Level::None
    }
}

/// Whether the identifier `word` ends right before `at`.
fn word_before(text: &[u8], at: usize, word: &[u8]) -> bool {
    at.checked_sub(word.len()).is_some_and(|start| text.get(start..at) == Some(word) && word_start(text, start))
}

/// A number of milliseconds and the closing parenthesis (`sleep(5000)`).
fn sleep_argument(text: &[u8], at: usize) -> bool {
    let digits = skip_ws(text, at);
    let count = text.get(digits..).unwrap_or_default().iter().take_while(|b| b.is_ascii_digit()).count();
    count > 0 && text.get(skip_ws(text, digits + count)) == Some(&b')')
}

/// After a quote: `;` and a statement.
fn string_break(text: &[u8], at: usize) -> bool {
    let i = skip_ws(text, at);
    text.get(i) == Some(&b';') && statement(text, skip_ws(text, i + 1))
}

/// A JavaScript statement at `at`, in a shape prose does not take.
fn statement(text: &[u8], at: usize) -> bool {
    let word = word(text, at);
    let after = at + word.len();
    let next = skip_ws(text, after);
    let next_byte = text.get(next).copied();
    match word {
        b"return" => returned_value(text, after),
        // Written the way injected code is, with no space before the parenthesis (prose puts one there).
        b"while" | b"for" | b"if" => text.get(after) == Some(&b'('),
        b"do" | b"try" => next_byte == Some(b'{'),
        b"this" | b"db" => next_byte == Some(b'.'),
        b"" => false,
        // A call (`sleep(5000)`) or an object built for a timing loop (`it=new Date()`).
        _ => match next_byte {
            Some(b'(') => true,
            Some(b'=') if text.get(next + 1) != Some(&b'=') => word_at(text, skip_ws(text, next + 1), b"new "),
            _ => false,
        },
    }
}

/// `return` followed by a value a tautology uses: `true`, `false`, `(`, a compared string, `this`, `!`, or a number
/// ending the statement.
fn returned_value(text: &[u8], after_return: usize) -> bool {
    if text.get(after_return).is_some_and(|&b| is_word(b)) {
        return false;
    }
    let i = skip_ws(text, after_return);
    match text.get(i) {
        Some(b'(' | b'!') => true,
        // A string compared or ending the statement (`return 'a'=='a'`), not a quotation.
        Some(b'\'' | b'"') => operand(text, i).is_some_and(|(_, end)| {
            let next = skip_ws(text, end);
            matches!(text.get(next), Some(b';')) || matches!(text.get(next..next + 2), Some(b"==" | b"!="))
        }),
        Some(b) if b.is_ascii_digit() => {
            let end = skip_ws(text, i + word_len(text, i));
            matches!(text.get(end), None | Some(b';' | b'}' | b')'))
        }
        _ => {
            let word = word(text, i);
            matches!(word, b"true" | b"false" | b"this")
        }
    }
}

/// After a `;`: `return` and a tautology's value (`0;return true`).
fn semicolon_return(text: &[u8], at: usize) -> bool {
    let i = skip_ws(text, at);
    word_at(text, i, b"return") && returned_value(text, i + 6)
}

/// After `&&` or `||`: `this.`, or a comparison that is always true (`|| 1==1`, `&& 'a'=='a'`, `|| 2!=3`).
fn tautology(text: &[u8], at: usize) -> bool {
    let i = skip_ws(text, at);
    if word_at(text, i, b"this.") {
        return true;
    }
    let Some((left, end)) = operand(text, i) else {
        return false;
    };
    let op = skip_ws(text, end);
    let (equal, len) = match text.get(op..op + 3) {
        Some(b"===") => (true, 3),
        Some(b"!==") => (false, 3),
        _ => match text.get(op..op + 2) {
            Some(b"==") => (true, 2),
            Some(b"!=") => (false, 2),
            _ => return false,
        },
    };
    let Some((right, _)) = operand(text, skip_ws(text, op + len)) else {
        return false;
    };
    (left == right) == equal
}

/// A literal or a name at `at` (quotes stripped, at most [`MAX_WORD`] bytes) and where it ends.
fn operand(text: &[u8], at: usize) -> Option<(&[u8], usize)> {
    match text.get(at) {
        Some(&q @ (b'\'' | b'"')) => {
            let rest = text.get(at + 1..).unwrap_or_default();
            let len = memchr::memchr(q, rest.get(..MAX_WORD.min(rest.len())).unwrap_or_default())?;
            Some((rest.get(..len).unwrap_or_default(), at + len + 2))
        }
        _ => {
            let len = word_len(text, at);
            (len > 0).then(|| (text.get(at..at + len).unwrap_or_default(), at + len))
        }
    }
}

/// String methods that test a field a piece at a time: how a blind injection reads a password out of `$where`.
const PROBES: [&[u8]; 14] = [
    b"match",
    b"test",
    b"startswith",
    b"endswith",
    b"indexof",
    b"charat",
    b"charcodeat",
    b"substr",
    b"substring",
    b"includes",
    b"search",
    b"slice",
    b"localecompare",
    b"codepointat",
];

/// After `this.`: a field, then a probing method call (`this.password.match(`) or a comparison.
fn this_access(text: &[u8], at: usize) -> bool {
    let field = word_len(text, at);
    if field == 0 {
        return false;
    }
    let i = at + field;
    if text.get(i) == Some(&b'.') {
        let method = word(text, i + 1);
        return PROBES.contains(&method) && text.get(skip_ws(text, i + 1 + method.len())) == Some(&b'(');
    }
    let op = skip_ws(text, i);
    matches!(text.get(op..op + 2), Some(b"==" | b"!="))
}

/// After `db.`: a method call (`db.eval(`) or a collection's (`db.users.find(`).
fn db_call(text: &[u8], at: usize) -> bool {
    let first = word_len(text, at);
    if first == 0 {
        return false;
    }
    let mut i = at + first;
    if text.get(i) == Some(&b'.') {
        let second = word_len(text, i + 1);
        if second == 0 {
            return false;
        }
        i += 1 + second;
    }
    text.get(skip_ws(text, i)) == Some(&b'(')
}

/// Prototype paths in a name or a value. Every finding holds `__proto__`, `prototype` or a legacy accessor
/// (`__define…`, `__lookup…`): memchr and memmem find those, the rest is not read.
fn prototype_paths(text: &[u8], is_name: bool, bytes: ByteSet) -> Level {
    let trimmed = text.trim_ascii();
    if !is_name && trimmed == b"__proto__" {
        return Level::Low;
    }
    let mut level =
        if !is_name && (trimmed == b"constructor" || trimmed == b"prototype") { Level::High } else { Level::None };
    let mut prose = None;
    let mut token_end = 0;
    let underscores = if bytes.has(b'_') { memchr::memchr_iter(b'_', text) } else { memchr::memchr_iter(b'_', &[]) };
    for at in underscores {
        let rest = text.get(at..).unwrap_or_default();
        if at < token_end || ![&b"__proto__"[..], b"__define", b"__lookup"].iter().any(|p| rest.starts_with(p)) {
            continue;
        }
        // The whole token around it (`__pro__proto__to__` is what a filter that strips `__proto__` once leaves).
        let before = text.get(token_end..at).unwrap_or_default();
        let start = before.iter().rposition(|&b| !is_word(b)).map_or(token_end, |p| token_end + p + 1);
        let end = at + rest.iter().position(|&b| !is_word(b)).unwrap_or(rest.len());
        token_end = end;
        let token = text.get(start..end).unwrap_or_default();
        if token.windows(9).any(|w| w == b"__proto__") {
            if is_name || path_context(text, start, end) {
                return Level::Low;
            }
            // In a token-like value it is a key to be; in prose, likely a question about JavaScript.
            let prose = *prose.get_or_insert_with(|| text.iter().any(u8::is_ascii_whitespace));
            level = level.max(if prose { Level::High } else { Level::Medium });
        } else if matches!(token, b"__definegetter__" | b"__definesetter__" | b"__lookupgetter__" | b"__lookupsetter__")
        {
            level = level.max(Level::High);
        }
    }
    // Each `prototype` holds one `y`, six bytes in (it cannot overlap itself): found from the `y`s, without building
    // a searcher.
    let ys = if bytes.all_of(ByteSet::bytes(b"prototype")) {
        memchr::memchr_iter(b'y', text)
    } else {
        memchr::memchr_iter(b'y', &[])
    };
    let found = ys.filter_map(|y| y.checked_sub(6)).filter(|&at| text.get(at..at + 9) == Some(&b"prototype"[..]));
    for at in found {
        let end = at + 9;
        if !word_start(text, at) || text.get(end).is_some_and(|&b| is_word(b)) {
            continue;
        }
        // Back over at most 8 bytes of separator to a `constructor` token.
        let mut sep = at;
        while at - sep < 8 && sep.checked_sub(1).and_then(|p| text.get(p)).is_some_and(|b| b"./[]\"' ".contains(b)) {
            sep -= 1;
        }
        if word_before(text, sep, b"constructor") && path_separator(text.get(sep..at).unwrap_or_default()) {
            return Level::Low;
        }
        if is_name {
            level = level.max(Level::High);
        }
    }
    level
}

/// Whether the token at `start..end` is a segment of a path: a dot, a bracket, a quote or a slash (JSON Pointer, as
/// in JSON Patch) next to it.
fn path_context(text: &[u8], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).and_then(|i| text.get(i));
    matches!(before, Some(b'.' | b'[' | b'"' | b'\'' | b'/'))
        || matches!(text.get(end), Some(b'.' | b'[' | b']' | b'"' | b'\'' | b'/'))
}

/// Whether the bytes between two tokens join them into a path (`.`, `[`, `]["`, with spaces JavaScript allows, or
/// the `/` of a JSON Pointer).
fn path_separator(separator: &[u8]) -> bool {
    separator == b"/"
        || (separator.len() <= 8
            && separator.iter().any(|b| matches!(b, b'.' | b'['))
            && separator.iter().all(|b| matches!(b, b'.' | b'[' | b']' | b'"' | b'\'' | b' ')))
}

/// Whether `b` can be part of an identifier.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Whether an identifier starts at `i` (none ends right before it).
fn word_start(text: &[u8], i: usize) -> bool {
    !i.checked_sub(1).and_then(|p| text.get(p)).is_some_and(|&b| is_word(b))
}

/// The length of the identifier at `i` (letters, digits, `_`), at most [`MAX_WORD`] bytes.
fn word_len(text: &[u8], i: usize) -> usize {
    text.get(i..)
        .unwrap_or_default()
        .iter()
        .take(MAX_WORD)
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count()
}

/// The identifier at `i`, at most [`MAX_WORD`] bytes.
fn word(text: &[u8], i: usize) -> &[u8] {
    text.get(i..i + word_len(text, i)).unwrap_or_default()
}

/// Whether `word` is at `i`.
fn word_at(text: &[u8], i: usize, word: &[u8]) -> bool {
    text.get(i..i + word.len()) == Some(word)
}

/// The first index at or after `i` that is not whitespace.
fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;

    fn subject<'a>(text: &'a [u8], lower: &'a [u8], is_name: bool) -> Subject<'a> {
        Subject {
            raw: text,
            decoded: text,
            lower,
            bytes: crate::attacks::ByteSet::of(lower),
            is_name,
            place: Place::Query,
        }
    }

    /// The lowest sensitivity at which `check` reports `text`, if any.
    fn level(check: fn(&Subject<'_>, Sensitivity) -> bool, text: &str, is_name: bool) -> Option<Sensitivity> {
        let lower = text.to_ascii_lowercase();
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High]
            .into_iter()
            .find(|s| check(&subject(text.as_bytes(), lower.as_bytes(), is_name), *s))
    }

    #[test]
    fn operators_in_names_are_unmistakable() {
        for name in ["password[$ne]", "$where", "filter.$gt", "age[$GTE]", "q[$regex]", "a[b][$in][]", "$expr"] {
            assert_eq!(level(detect_nosql, name, true), Some(Sensitivity::Low), "{name}");
        }
        assert_eq!(level(detect_nosql, "$foo", true), Some(Sensitivity::High));
        for name in ["price", "total$", "user[name]", "a.b.c", "$", "$1", "cost_in_$", "$in-store"] {
            assert_eq!(level(detect_nosql, name, true), None, "{name}");
        }
    }

    #[test]
    fn operator_objects_in_values_are_unmistakable() {
        for value in [
            r#"{"$ne": null}"#,
            "{ $gt: '' }",
            "[$nin]=admin",
            "1, $where: 'sleep(100)'",
            "', $or: [ {}, { 'x':'x",
            r#"{"username": {"$regex": "^adm"}}"#,
            r#"{"$lookup": {"from": "users"}}"#,
        ] {
            assert_eq!(level(detect_nosql, value, false), Some(Sensitivity::Low), "{value}");
        }
    }

    #[test]
    fn javascript_in_values_is_medium() {
        for value in [
            "'; return true; var x='",
            "\"; return(1); var y=\"",
            "x' && this.secret.match(/^a/)//",
            "' || this.token.startsWith('a')",
            "|| 2==2",
            "&& 'x' === 'x'",
            "|| 1 != 2",
            "0 ; return  false",
            "';sleep(3000);'",
            "\";t=new Date();while(new Date()-t<3000){}",
            "a'; while(true){}",
            "db.accounts.drop()",
            "1; db.getSiblingDB('admin')",
            "this.role == 'admin'",
        ] {
            assert_eq!(level(detect_nosql, value, false), Some(Sensitivity::Medium), "{value}");
        }
    }

    #[test]
    fn benign_values_pass() {
        for value in [
            "It costs $10, or $12 with shipping",
            "O'Brien; returned the parcel",
            "The item; return policy is 30 days",
            "Tom & Jerry || Laurel & Hardy",
            "\"fast\" || \"cheap\"",
            "'ship it'; return 'soon'",
            "x >= 4 && y <= 9",
            "a == b || c == d",
            "I like this. It works",
            "the db. was down; sleep well",
            "'yes'; for the record",
            "He said 'no'; while (we waited) nothing happened",
            "sleep(8 hours) is recommended",
            "const total = this.items.reduce((a, b) => a + b, 0);",
            "'use strict'; var x = 1;",
            "my $where variable",
            "mongodb.net",
            "US$in cash",
        ] {
            assert!(level(detect_nosql, value, false).is_none_or(|s| s == Sensitivity::High), "{value}");
        }
    }

    #[test]
    fn prototype_paths_are_found() {
        for (text, is_name) in [
            ("__proto__", true),
            ("__proto__[isAdmin]", true),
            ("a[__proto__][b]", true),
            ("constructor[prototype][role]", true),
            ("constructor.prototype.isAdmin", true),
            ("x.__pro__proto__to__.y", true),
            ("__proto__", false),
            ("a.__proto__.polluted", false),
            (r#"{"__proto__": {"admin": true}}"#, false),
            (r#"obj["constructor"]["prototype"]["x"]"#, false),
            ("constructor . prototype", false),
            (r#"[{"op": "add", "path": "/__proto__/admin", "value": true}]"#, false),
            ("/constructor/prototype/admin", false),
        ] {
            assert_eq!(level(detect_prototype_pollution, text, is_name), Some(Sensitivity::Low), "{text}");
        }
        assert_eq!(level(detect_prototype_pollution, "x__proto__y", false), Some(Sensitivity::Medium));
        assert_eq!(level(detect_prototype_pollution, "what is __proto__ for", false), Some(Sensitivity::High));
        assert_eq!(level(detect_prototype_pollution, "prototype", true), Some(Sensitivity::High));
        assert_eq!(level(detect_prototype_pollution, "constructor", false), Some(Sensitivity::High));
    }

    #[test]
    fn benign_names_pass() {
        for (text, is_name) in [
            ("proto", true),
            ("constructor", true),
            ("prototype_id", true),
            ("the constructor built a prototype", false),
            ("__init__", true),
            ("user.profile.name", true),
            ("the constructor / prototype split", false),
            ("/products/prototype/42", false),
        ] {
            assert_eq!(level(detect_prototype_pollution, text, is_name), None, "{text}");
        }
    }

    #[test]
    fn linear_on_long_runs() {
        for unit in [
            "$ne",
            "';",
            "&&",
            "|| a",
            "this.a",
            "db.a.",
            "__proto__",
            "x__proto__ ",
            "x__proto__,",
            "constructor.",
            "'",
            " ",
        ] {
            let text = unit.repeat(20_000);
            let lower = text.to_ascii_lowercase();
            for is_name in [false, true] {
                let s = subject(text.as_bytes(), lower.as_bytes(), is_name);
                let _ = detect_nosql(&s, Sensitivity::High);
                let _ = detect_prototype_pollution(&s, Sensitivity::High);
            }
        }
    }

    #[test]
    fn never_panics_on_any_bytes() {
        let mut rng = crate::token_analysis::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next();
        let seeds: [&[u8]; 4] =
            [b"{\"$ne\": 1}';return true", b"a.__proto__[x]", b"constructor.prototype", b"this.a.b("];
        for round in 0..4_000 {
            let mut bytes = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 8) {
                let r = next();
                let pick = b"$[].'\";|&_ (=\0\xff"[(r as usize >> 8) % 15];
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
                for is_name in [false, true] {
                    let s = subject(&bytes, &lower, is_name);
                    let _ = detect_nosql(&s, sensitivity);
                    let _ = detect_prototype_pollution(&s, sensitivity);
                }
            }
        }
    }
}
