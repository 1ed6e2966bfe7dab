//! Server-side template injection: template expressions that evaluate code when a server renders the value.
//!
//! The value is scanned once for expression delimiters (`{{…}}`, `{%…%}`, `${…}`, `#{…}`, `*{…}`, `@{…}`, `~{…}`,
//! `%{…}`, `<%…%>`, `[[…]]`, `[(…)]`, `@(…)`, Smarty's `{…}`), and what each encloses is read by a small lexer
//! that looks for what code does and names don't: calls, member calls, arithmetic between literals, dunder names
//! (`__class__`), indexing, filters, strings, and the names of objects and functions that reach the runtime
//! (`getClass`, `forName`, `Runtime`, `popen`, `config`, `self`). Directives of template languages that need no
//! delimiter pair are matched as words: Velocity's `#set(`, Freemarker's `<#assign` and `?new()`, Smarty's `{php}`.
//!
//! - **Low**: an expression with a call on a member (`{{config.items()}}`), a dunder name, arithmetic between
//!   literals (`{{7*7}}`, `${3*3}`, `<%= 7*7 %>`), or a runtime-reaching name (`${T(java.lang.Runtime)…}`); the
//!   `{%…%}` and `<%…%>` statements (`{% if … %}`, `<% for … %>`); the directives above.
//! - **Medium**: also an expression with a plain call, an index, a string, or a template object alone
//!   (`{{config}}`, `{{self}}`, `{{ request }}`); `<%…%>` code and any `{%…%}` tag; Smarty calls to PHP functions
//!   and Smarty arithmetic (`{7*7}`).
//! - **High**: also any non-empty expression, bare names and filters included (`{{name}}`, `${price}`,
//!   `{{ total|currency }}`, wiki templates), which benign text carries too.

use super::{ByteSet, Sensitivity, Subject};

/// How strongly an expression's content looks like code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Signal {
    /// Nothing inside.
    Empty,
    /// Names, dots and punctuation that prose and placeholders carry too.
    Bare,
    /// Code, but code a placeholder language might also allow.
    Code,
    /// Code that evaluates something no placeholder needs.
    Strong,
}

/// Which delimiter pair an expression uses: how much its content is trusted to be template syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `{{…}}`, `${…}`, `#{…}`, `*{…}`, `@{…}`, `~{…}`, `%{…}`: expression languages.
    Expression,
    /// `{%…%}` and `<%…%>`: statements; any code in them is a template's.
    Statement,
    /// `[[…]]`, `[(…)]`, `@(…)`: nested arrays and parentheses in data look the same, so only strong code counts.
    Weak,
    /// Smarty's single `{…}`: JSON and CSS use it too, so only calls to runtime functions count.
    Single,
}

/// An opener, its closer, and its kind.
struct Delimiter {
    open: &'static [u8],
    close: &'static [u8],
    kind: Kind,
}

/// Delimiters, longest opener first where one is a prefix of another.
const DELIMITERS: &[Delimiter] = &[
    Delimiter { open: b"{{", close: b"}}", kind: Kind::Expression },
    Delimiter { open: b"{%", close: b"%}", kind: Kind::Statement },
    Delimiter { open: b"${", close: b"}", kind: Kind::Expression },
    Delimiter { open: b"#{", close: b"}", kind: Kind::Expression },
    Delimiter { open: b"*{", close: b"}", kind: Kind::Expression },
    Delimiter { open: b"@{", close: b"}", kind: Kind::Expression },
    Delimiter { open: b"~{", close: b"}", kind: Kind::Expression },
    Delimiter { open: b"%{", close: b"}", kind: Kind::Expression },
    Delimiter { open: b"<%", close: b"%>", kind: Kind::Statement },
    Delimiter { open: b"[[", close: b"]]", kind: Kind::Weak },
    Delimiter { open: b"[(", close: b")]", kind: Kind::Weak },
    Delimiter { open: b"@(", close: b")", kind: Kind::Weak },
    Delimiter { open: b"{", close: b"}", kind: Kind::Single },
];

/// Closers, each searched for at most once past the point where it is known to be absent.
const CLOSERS: &[&[u8]] = &[b"}}", b"%}", b"}", b"%>", b"]]", b")]", b")"];

/// Directives that need no delimiter pair, reported at Low.
const STRONG_MARKERS: &[&[u8]] = &[
    b"#set(",
    b"#foreach(",
    b"#evaluate(",
    b"$class.inspect",
    b"$class.type",
    b".getclass()",
    b"?new()",
    b"freemarker.template.utility",
    b"<#assign",
    b"[#assign",
    b"{php}",
    b"{$smarty.",
    b"{smarty_internal",
    b"getruntime().exec(",
];
/// Directives reported at Medium.
const MARKERS: &[&[u8]] = &[
    b"#if(",
    b"#macro(",
    b"#include(",
    b"#parse(",
    b"#define(",
    b"<#list",
    b"<#if",
    b"<#include",
    b"<#import",
    b"<#macro",
    b"<#function",
    b"<#attempt",
    b"{/if}",
    b"{literal}",
];

/// Names that reach the language runtime, the OS or an object's class: code, whatever surrounds them.
const STRONG_NAMES: &[&[u8]] = &[
    b"getclass",
    b"forname",
    b"runtime",
    b"getruntime",
    b"processbuilder",
    b"popen",
    b"subprocess",
    b"child_process",
    b"mainmodule",
    b"globals",
    b"builtins",
    b"subclasses",
    b"mro",
    b"newinstance",
    b"getmethod",
    b"invoke",
    b"scriptengine",
    b"scriptenginemanager",
    b"shell_exec",
    b"passthru",
    b"system",
    b"exec",
    b"eval",
    b"require",
    b"import",
    b"constructor",
    b"_memberaccess",
    b"registerundefinedfiltercallback",
    b"getenv",
    b"phpinfo",
    b"file_get_contents",
    b"readfile",
];
/// Template objects that expose the application when printed or walked (`{{config}}`, `{{self}}`).
const OBJECT_NAMES: &[&[u8]] = &[
    b"config",
    b"self",
    b"_self",
    b"request",
    b"settings",
    b"app",
    b"env",
    b"lipsum",
    b"cycler",
    b"joiner",
    b"namespace",
    b"url_for",
    b"get_flashed_messages",
    b"dump",
    b"session",
    b"this",
    b"class",
];
/// Names that start a `{%…%}` statement.
const STATEMENTS: &[&[u8]] = &[
    b"for", b"if", b"set", b"import", b"include", b"extends", b"macro", b"raw", b"debug", b"print", b"with", b"block",
    b"from", b"call", b"filter", b"load", b"endfor", b"endif",
];

/// Whether `subject` carries a server-side template injection at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let lower = subject.lower;
    // Every delimiter and every directive but the Java-only ones needs one of these bytes.
    if !subject.bytes.any_of(ByteSet::bytes(b"{%#[@$")) {
        return false;
    }
    if STRONG_MARKERS.iter().any(|m| memchr::memmem::find(lower, m).is_some()) {
        return true;
    }
    if sensitivity >= Sensitivity::Medium && MARKERS.iter().any(|m| memchr::memmem::find(lower, m).is_some()) {
        return true;
    }
    let mut absent = [usize::MAX; CLOSERS.len()];
    let mut pos = 0;
    while let Some(&b) = lower.get(pos) {
        if !matches!(b, b'{' | b'$' | b'#' | b'*' | b'@' | b'~' | b'%' | b'<' | b'[') {
            pos += 1;
            continue;
        }
        let rest = lower.get(pos..).unwrap_or_default();
        let Some(delimiter) = DELIMITERS.iter().find(|d| rest.starts_with(d.open)) else {
            pos += 1;
            continue;
        };
        let start = pos + delimiter.open.len();
        let end = match delimiter.kind {
            Kind::Expression | Kind::Statement => {
                let closer = CLOSERS.iter().position(|c| *c == delimiter.close).unwrap_or(0);
                // Once a closer is missing from some point on, it is missing from every later point.
                let known_absent = absent.get(closer).is_some_and(|&from| from <= start);
                let end = if known_absent { None } else { find(lower, start, delimiter.close) };
                if end.is_none() {
                    if let Some(slot) = absent.get_mut(closer) {
                        *slot = (*slot).min(start);
                    }
                }
                end
            }
            Kind::Weak | Kind::Single => close_before_bracket(lower, start, delimiter),
        };
        let Some(end) = end else {
            pos += 1;
            continue;
        };
        let content = lower.get(start..end).unwrap_or_default();
        if reported(delimiter, content, sensitivity) {
            return true;
        }
        // The short forms' content holds no bracket, so looking inside again costs nothing.
        pos = match delimiter.kind {
            Kind::Expression | Kind::Statement => end + delimiter.close.len(),
            Kind::Weak | Kind::Single => start,
        };
    }
    false
}

/// Whether the expression `content` between `delimiter`'s opener and closer is reported at `sensitivity`.
fn reported(delimiter: &Delimiter, content: &[u8], sensitivity: Sensitivity) -> bool {
    let expr = Expr::read(content);
    let signal = expr.signal;
    match delimiter.kind {
        Kind::Expression => {
            let doubled = delimiter.open == b"{{";
            // doT's `{{=…}}` and Handlebars helpers evaluate what follows.
            let evaluated = doubled && content.first() == Some(&b'=');
            match sensitivity {
                Sensitivity::Low => signal == Signal::Strong,
                Sensitivity::Medium => signal >= Signal::Code || (evaluated && signal > Signal::Empty),
                Sensitivity::High => signal > Signal::Empty,
            }
        }
        Kind::Statement => match sensitivity {
            // `{% if … %}` and `<%= for … %>` are template statements, whatever they test.
            Sensitivity::Low => signal == Signal::Strong || expr.statement,
            // A `{%…%}` tag is a command; `<%= title %>` prints a name, like `{{title}}`.
            Sensitivity::Medium => {
                signal >= Signal::Code || expr.statement || (delimiter.open == b"{%" && signal > Signal::Empty)
            }
            Sensitivity::High => signal > Signal::Empty,
        },
        Kind::Weak => match sensitivity {
            Sensitivity::Low | Sensitivity::Medium => signal == Signal::Strong,
            Sensitivity::High => signal >= Signal::Code,
        },
        Kind::Single => sensitivity >= Sensitivity::Medium && (expr.runtime_call || expr.arithmetic),
    }
}

/// The closer of a short form (`[[…]]`, `@(…)`, Smarty's `{…}`), if it comes before any other bracket (any brace
/// for Smarty): their content holds none (`[[1,2],[3,4]]` is data), which keeps every byte read at most once per form.
fn close_before_bracket(lower: &[u8], start: usize, delimiter: &Delimiter) -> Option<usize> {
    let rest = lower.get(start..)?;
    let at = if delimiter.kind == Kind::Single {
        // Smarty calls hold parentheses, never braces.
        rest.iter().position(|b| matches!(b, b'{' | b'}'))?
    } else {
        rest.iter().position(|b| matches!(b, b'[' | b']' | b'(' | b')' | b'{' | b'}'))?
    };
    rest.get(at..)?.starts_with(delimiter.close).then_some(start + at)
}

/// The first `needle` at or after `from`.
fn find(text: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let rest = text.get(from..)?;
    memchr::memmem::find(rest, needle).map(|at| from + at)
}

/// The last significant token the lexer saw.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    None,
    Ident,
    Number,
    Str,
    Operator,
    Dot,
    Other,
}

/// What an expression's content says, read in one pass.
struct Expr {
    signal: Signal,
    /// The first name is a `{%…%}` statement keyword.
    statement: bool,
    /// A call to a runtime-reaching function (`system(`, `exec(`).
    runtime_call: bool,
    /// Arithmetic between literals (`7*7`): what a probe for template evaluation sends.
    arithmetic: bool,
}

/// The longest name kept for comparison with the name lists.
const NAME: usize = 32;

impl Expr {
    fn read(content: &[u8]) -> Expr {
        let mut expr = Expr { signal: Signal::Empty, statement: false, runtime_call: false, arithmetic: false };
        let mut last = Token::None;
        // The last name, and whether a `.` came before it.
        let mut name = [0u8; NAME];
        let mut name_len = 0;
        let mut name_after_dot = false;
        let mut name_strong = false;
        let mut names = 0usize;
        let mut quote: Option<u8> = None;
        // A string's first bytes: `'system'` or `'__class__'` passed to a filter is a name by another route.
        let mut string = [0u8; NAME];
        let mut string_len = 0;
        let mut after_pipe = false;
        let mut arithmetic = false;
        let mut i = 0;
        while let Some(&b) = content.get(i) {
            if let Some(q) = quote {
                if b == q {
                    quote = None;
                    let text = string.get(..string_len).unwrap_or_default();
                    if STRONG_NAMES.contains(&text) || (text.len() > 4 && text.starts_with(b"__")) {
                        expr.raise(Signal::Strong);
                    }
                    if arithmetic {
                        expr.raise(Signal::Strong);
                        expr.arithmetic = true;
                    }
                    arithmetic = false;
                    last = Token::Str;
                } else if let Some(slot) = string.get_mut(string_len) {
                    *slot = b;
                    string_len += 1;
                }
                i += 1;
                continue;
            }
            if b.is_ascii_alphabetic() || b == b'_' {
                let start = i;
                while content.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    i += 1;
                }
                let word = content.get(start..i).unwrap_or_default();
                name_len = word.len().min(NAME);
                if let (Some(dst), Some(src)) = (name.get_mut(..name_len), word.get(..name_len)) {
                    dst.copy_from_slice(src);
                }
                name_after_dot = last == Token::Dot;
                // Jinja's `|attr(…)` and Twig's `|filter(…)` reach attributes and callables by name.
                name_strong = STRONG_NAMES.contains(&word) || (after_pipe && matches!(word, b"attr" | b"filter"));
                if name_strong {
                    expr.raise(Signal::Strong);
                } else if OBJECT_NAMES.contains(&word) && names == 0 {
                    expr.raise(Signal::Code);
                } else {
                    expr.raise(Signal::Bare);
                }
                if names == 0 && STATEMENTS.contains(&word) {
                    expr.statement = true;
                }
                // A dunder name: `__class__`, `__globals__`.
                if word.len() > 4 && word.starts_with(b"__") {
                    expr.raise(Signal::Strong);
                }
                names += 1;
                arithmetic = false;
                after_pipe = false;
                last = Token::Ident;
                continue;
            }
            let next_last = match b {
                b'0'..=b'9' => {
                    while content.get(i + 1).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
                        i += 1;
                    }
                    if arithmetic {
                        expr.raise(Signal::Strong);
                        expr.arithmetic = true;
                    }
                    expr.raise(Signal::Bare);
                    arithmetic = false;
                    Token::Number
                }
                b'\'' | b'"' | b'`' => {
                    quote = Some(b);
                    string_len = 0;
                    expr.raise(Signal::Code);
                    Token::Str
                }
                b'*' | b'+' | b'-' | b'/' | b'%' => {
                    arithmetic = matches!(last, Token::Number | Token::Str);
                    expr.raise(Signal::Bare);
                    Token::Operator
                }
                b' ' | b'\t' | b'\r' | b'\n' => {
                    i += 1;
                    continue;
                }
                b'(' => {
                    if last == Token::Ident {
                        let called = name.get(..name_len).unwrap_or_default();
                        if name_after_dot || name_strong || called == b"t" {
                            expr.raise(Signal::Strong);
                        } else {
                            expr.raise(Signal::Code);
                        }
                        if name_strong {
                            expr.runtime_call = true;
                        }
                    }
                    Token::Other
                }
                b'.' => Token::Dot,
                b'[' => {
                    expr.raise(Signal::Code);
                    Token::Other
                }
                _ => {
                    expr.raise(Signal::Bare);
                    Token::Other
                }
            };
            if b != b' ' {
                after_pipe = b == b'|';
            }
            // An operator keeps arithmetic pending for the literal after it, a quote until its string ends.
            if !matches!(next_last, Token::Operator | Token::Str) {
                arithmetic = false;
            }
            last = next_last;
            i += 1;
        }
        expr
    }

    fn raise(&mut self, signal: Signal) {
        self.signal = self.signal.max(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attacks::Place;

    fn at(text: &str, sensitivity: Sensitivity) -> bool {
        let lower = text.to_ascii_lowercase();
        detect(&Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Json), sensitivity)
    }

    fn level(text: &str) -> Option<Sensitivity> {
        [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|&s| at(text, s))
    }

    #[test]
    fn code_in_template_expressions_is_found_at_low() {
        for attack in [
            "{{6*6}}",
            "{{ 9 * '9' }}",
            "${5*5}",
            "#{ 8 * 8 }",
            "<%= 4 * 4 %>",
            "{{ ''.__class__.__base__ }}",
            "{{ settings.items() }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "${T(java.lang.Runtime).getRuntime().exec('id')}",
            "${ product.getClass().forName('java.lang.System') }",
            "*{T(java.lang.System).getenv()}",
            "<%= `whoami` %><% system('id') %>",
            "#set($x = $class.inspect(\"java.lang.Runtime\"))",
            "<#assign cmd = \"freemarker.template.utility.Execute\"?new()>${cmd(\"id\")}",
            "{php}echo 1;{/php}",
            "{$smarty.version}",
            "$class.inspect(\"java.lang.Runtime\").type",
            "{{constructor.constructor('return 1')()}}",
            "[[${3*3}]]",
            "@(6+6)",
            "${self.module.cache.util.os.system('id')}",
            "<% out.println(1) %>",
            "{% if x %}y{% endif %}",
            "<%- for item in list %>",
            "{{ x|attr('__dict__') }}",
            "{{ ['ls']|filter('passthru') }}",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Low), "{attack}");
        }
    }

    #[test]
    fn template_objects_calls_and_statements_are_found_at_medium() {
        for attack in [
            "{{config}}",
            "{{ self }}",
            "{{ request }}",
            "{{ dump(app) }}",
            "{{ users[0] }}",
            "{{ name|upper('x') }}",
            "{% csrf_token %}",
            "<%= user[0] %>",
            "{{=it.name}}",
            "{system('id')}",
            "{5*5}",
            "<#list items as i>",
            "#if($a)x#end",
        ] {
            assert_eq!(level(attack), Some(Sensitivity::Medium), "{attack}");
        }
    }

    #[test]
    fn bare_placeholders_are_found_at_high_only() {
        for placeholder in [
            "Hello {{name}}",
            "${price}",
            "Dear {{ user.first_name }},",
            "#{id}",
            "<%= title %>",
            "{{ total|currency }}",
            "{{cite web|url=https://example.com|title=Example}}",
        ] {
            assert_eq!(level(placeholder), Some(Sensitivity::High), "{placeholder}");
        }
    }

    #[test]
    fn benign_look_alikes_pass_at_every_level() {
        for benign in [
            r#"{"a": {"b": [1, 2]}, "c": "d"}"#,
            "[[1, 2], [3, 4]]",
            "costs $5 {approx}",
            "50% of users, 20% of admins",
            "a{color:red}",
            "email me @ home (after 6)",
            "matrix [[1,-2],[3,4]]",
            "}I would like to request the serviceCode with the parameter: serviceCode|{}",
            "{ }",
            "{{",
            "function f() { return x; }",
            "#1 {in sales}",
        ] {
            assert_eq!(level(benign), None, "{benign}");
        }
    }

    #[test]
    fn linear_on_long_runs() {
        for unit in
            ["{{", "{%", "${", "{", "[[", "@(", "<%", "#{", "{a", "{{a}}", "'", "(", "{{'", "#set(", "}", "{{7*"]
        {
            let text = unit.repeat(20_000);
            let _ = level(&text);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::token_analysis::test_rng::Rng(0xD1B5_4A32_D192_ED03);
        let mut next = move || rng.next();
        let alphabet = b"{}%$#<>[]()'\"*7._ classgetr";
        for _ in 0..4000 {
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
            for s in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                detect(&Subject::plain(&bytes, &lower, Place::Json), s);
            }
        }
    }
}
