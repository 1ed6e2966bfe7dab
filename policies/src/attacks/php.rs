//! PHP code injection, reported as `command_injection`: PHP source that an `eval`, an `include` of an uploaded or
//! logged value, a template or an `unserialize` would run (`<?php system($_GET['c']); ?>`,
//! `eval(base64_decode('…'))`, `$_GET['a']($_GET['b'])`, `O:8:"stdClass":0:{}`, `auto_prepend_file=…`).
//!
//! # How a value is read
//!
//! One pass over the decoded, lower-cased value. It remembers the last word it read and whether only what PHP lets
//! stand between a function name and its `(` followed it (blanks, `/*…*/`, `//…` and `#…` comments up to a line
//! break, and the closing quote, bracket or parenthesis of `"system"(…)`, `(system)(…)`, `[system][0](…)`). At a `(`
//! it looks that word up in a static table of PHP functions in tiers:
//! - **code**: functions that run a command or code and are also English words (`system`, `exec`, `eval`,
//!   `assert`, `passthru`, `popen`, `include`, `require`);
//! - **php-only**: names nobody writes outside PHP source (`shell_exec`, `proc_open`, `base64_decode`,
//!   `gzinflate`, `str_rot13`, `call_user_func`, `create_function`, `file_put_contents`, `preg_replace`,
//!   `fsockopen`, `phpinfo`, `move_uploaded_file`, …);
//! - **generic**: ordinary library functions an exploit leans on (`chr`, `substr`, `fopen`, `strrev`, `intval`,
//!   `unserialize`, …), and among them **word**s that are English too (`file`, `touch`, `mail`, `extract`);
//! - **include**: `include`, `require` and their `_once` forms, whose argument must be a variable or a path.
//!
//! What stands between the name and `(` (nothing, blanks, or a comment or closer only code has) and how the
//! argument starts (a superglobal, a nested dangerous call, a variable, a quoted string, a bare word, nothing)
//! decide the level. Other shapes are read where their first byte is: `<?` openings, `[php]`/`{php}` tags, `$`
//! (superglobals, variable functions `$f(…)`, `$$x(…)`, `${'a'}(…)`, `$a['b'](…)`), serialized objects
//! (`O:8:"stdClass":1:{…}`), `name =` for `php.ini` directives, `scheme://` for PHP stream wrappers and a backtick
//! assigned (`$r = `id`;`).
//!
//! # What each level reports
//! - **Low**: the `<?php` opening tag (also `<? php`); a code or php-only call whose argument is a superglobal
//!   (`system($_GET['c'])`) or another code or php-only call (`eval(base64_decode(…))`,
//!   `eval(gzinflate(str_rot13(…)))`); `include $_GET[…]`; a serialized object whose declared length matches its
//!   class name (`O:<len>:"Class":<n>:{`; a mismatched length is medium); the `php.ini` directives that turn a
//!   request into code (`auto_prepend_file=`, `allow_url_include=`, `disable_functions=`, `open_basedir=`).
//! - **Medium** (recommended) adds: `<?=`, `<?` followed by a blank and code or ending the value, `<?xml` followed
//!   by code instead of attributes; `[php]`, `[/php]`, `{php}`, `{/php}` tags; the superglobals (`$_GET`, `$_POST`,
//!   `$_COOKIE`, `$_REQUEST`, `$_SERVER`, `$_FILES`, `$_ENV`, `$_SESSION`, `$GLOBALS`) anywhere; a php-only call in
//!   any form (also glued to other letters, `xcall_user_func(`); a code call with a quoted, variable or backtick
//!   argument (`exec('id')`, `eval($x)`), with a bare word attached (`system(whoami)`) or reached through a comment
//!   or a closer (`exec/**/()`, `("system")("id")`, `[system][0](ls)`); a generic call given an argument
//!   (`chr(123)`, `fopen  (x)`), reached through a comment, or given a variable; a called string built by
//!   concatenation (`('sys'.'tem')('id')`); variable functions (`$a(1)`, `$$b(2)`, `$__['o'](5)`, `${'a'}(11)`,
//!   `$a /*c*/ ()`); `${'…'}`, `${$…}` and `$ {…}` variable variables; PHP stream wrappers other than
//!   `http`/`ftp`/`file`/`data` (`phar://`, `zip://`, `compress.zlib://`, `ssh2.exec://`, `expect://`, `php://`);
//!   more `php.ini` directives with `=` (`memory_limit`, `extension_dir`, `opcache.…`, `mbstring.…`); `include $f`;
//!   a backtick command assigned to a variable (`$r = `id`;`); and a parameter name that is a superglobal's entry
//!   (`_SERVER[DOCUMENT_ROOT]=…`, `GLOBALS[admin]=1`), which overwrites PHP's variables where requests are imported.
//! - **High** adds: code calls with nothing or a spaced bare word in the parentheses (`eval()`, `system (x)`),
//!   generic calls with nothing in them (`substr()`), English-word functions (`file(x)`, `touch (x)`), `<?` anywhere
//!   else, a spaced plain variable call (`$function (1)`), `${name}`, serialized arrays (`a:2:{i:0;…`), and short
//!   `php.ini` directive names that are also ordinary words (`engine=`, `extension=`, `precision=`, `smtp=`).
//!
//! Prose stays clean at low and medium: "php is a language", "the system (see above)", "I use eval() in my
//! notes" (high only), "costs $5 (USD)", "the O:1 ratio", "a.php?id=2".
//!
//! Linear in the value's length: one forward pass, and every look-ahead from a position is bounded by a constant
//! (at most 96 bytes after a variable, 128 in a serialized class name). A value with none of `(`, `<`, `[`, `{`,
//! `$`, `:`, `=` is passed after one tight loop. No allocation.
//!
//! Not covered: file names of uploads (`shell.php`, `x.phtml`, `sess_…`), which arrive in multipart `filename=` and
//! `X-Filename` headers that are not inspected values; names split by blanks (`$_S ERVER`); calls of strings
//! built from bare fragments (`(sy.(st).em)(…)`).

use super::{Sensitivity, Subject};

/// How strong one finding is: the lowest level that reports it (ordered like [`Sensitivity`]).
type Level = Sensitivity;

/// The longest function or directive name read.
const MAX_NAME: usize = 40;
/// The most bytes of closers (`)`, `]`, quotes, index digits) allowed between a name and its `(`.
const MAX_GAP: usize = 24;
/// The most bytes read after a variable looking for its `(`.
const MAX_CALL_READ: usize = 96;
/// The longest index (`[…]`, `{…}`) or `${…}` read after a variable.
const MAX_INDEX: usize = 48;

/// Tiers of PHP functions (see the module doc).
mod tier {
    /// Runs a command or code, and is an English word too.
    pub const CODE: u8 = 1;
    /// Only ever written in PHP source.
    pub const PHP_ONLY: u8 = 2;
    /// An ordinary library function.
    pub const GENERIC: u8 = 3;
    /// An ordinary library function whose name is an English word too (`file`, `touch`, `mail`).
    pub const WORD: u8 = 5;
    /// Includes a file as code (`include`, `require`): an English word whose argument must look like a path.
    pub const INCLUDE: u8 = 4;
}

/// PHP functions by tier, sorted for binary search.
static FUNCTIONS: &[(&[u8], u8)] = &[
    (b"array_diff", tier::GENERIC),
    (b"array_filter", tier::PHP_ONLY),
    (b"array_map", tier::PHP_ONLY),
    (b"array_walk", tier::PHP_ONLY),
    (b"assert", tier::CODE),
    (b"assert_options", tier::PHP_ONLY),
    (b"base64_decode", tier::PHP_ONLY),
    (b"bzdecompress", tier::PHP_ONLY),
    (b"call_user_func", tier::PHP_ONLY),
    (b"call_user_func_array", tier::PHP_ONLY),
    (b"checkdate", tier::GENERIC),
    (b"chmod", tier::GENERIC),
    (b"chr", tier::GENERIC),
    (b"chroot", tier::GENERIC),
    (b"convert_uudecode", tier::PHP_ONLY),
    (b"create_function", tier::PHP_ONLY),
    (b"crypt", tier::GENERIC),
    (b"curl_exec", tier::PHP_ONLY),
    (b"curl_init", tier::PHP_ONLY),
    (b"escapeshellarg", tier::PHP_ONLY),
    (b"escapeshellcmd", tier::PHP_ONLY),
    (b"eval", tier::CODE),
    (b"exec", tier::CODE),
    (b"extract", tier::WORD),
    (b"file", tier::WORD),
    (b"file_exists", tier::PHP_ONLY),
    (b"file_get_contents", tier::PHP_ONLY),
    (b"file_put_contents", tier::PHP_ONLY),
    (b"filegroup", tier::GENERIC),
    (b"fopen", tier::GENERIC),
    (b"fputs", tier::GENERIC),
    (b"fsockopen", tier::PHP_ONLY),
    (b"func_get_args", tier::PHP_ONLY),
    (b"fwrite", tier::GENERIC),
    (b"get_defined_functions", tier::PHP_ONLY),
    (b"get_defined_vars", tier::PHP_ONLY),
    (b"getenv", tier::GENERIC),
    (b"gethostbyname", tier::GENERIC),
    (b"gzdecode", tier::PHP_ONLY),
    (b"gzinflate", tier::PHP_ONLY),
    (b"gzuncompress", tier::PHP_ONLY),
    (b"highlight_file", tier::PHP_ONLY),
    (b"include", tier::INCLUDE),
    (b"include_once", tier::INCLUDE),
    (b"ini_get_all", tier::PHP_ONLY),
    (b"ini_restore", tier::PHP_ONLY),
    (b"ini_set", tier::PHP_ONLY),
    (b"intval", tier::GENERIC),
    (b"is_array", tier::GENERIC),
    (b"mail", tier::WORD),
    (b"move_uploaded_file", tier::PHP_ONLY),
    (b"ob_start", tier::PHP_ONLY),
    (b"parse_str", tier::PHP_ONLY),
    (b"passthru", tier::CODE),
    (b"pcntl_exec", tier::PHP_ONLY),
    (b"pfsockopen", tier::PHP_ONLY),
    (b"php_uname", tier::PHP_ONLY),
    (b"phpinfo", tier::PHP_ONLY),
    (b"phpversion", tier::PHP_ONLY),
    (b"popen", tier::CODE),
    (b"posix_getegid", tier::PHP_ONLY),
    (b"posix_geteuid", tier::PHP_ONLY),
    (b"posix_getpwuid", tier::PHP_ONLY),
    (b"posix_kill", tier::PHP_ONLY),
    (b"posix_setuid", tier::PHP_ONLY),
    (b"posix_uname", tier::PHP_ONLY),
    (b"preg_replace", tier::PHP_ONLY),
    (b"preg_replace_callback", tier::PHP_ONLY),
    (b"print_r", tier::PHP_ONLY),
    (b"printf", tier::GENERIC),
    (b"proc_open", tier::PHP_ONLY),
    (b"putenv", tier::GENERIC),
    (b"readfile", tier::GENERIC),
    (b"register_shutdown_function", tier::PHP_ONLY),
    (b"register_tick_function", tier::PHP_ONLY),
    (b"require", tier::INCLUDE),
    (b"require_once", tier::INCLUDE),
    (b"serialize", tier::WORD),
    (b"set_error_handler", tier::PHP_ONLY),
    (b"shell_exec", tier::PHP_ONLY),
    (b"show_source", tier::PHP_ONLY),
    (b"str_rot13", tier::PHP_ONLY),
    (b"stream_get_contents", tier::PHP_ONLY),
    (b"stream_socket_client", tier::PHP_ONLY),
    (b"strip_tags", tier::GENERIC),
    (b"strrev", tier::GENERIC),
    (b"substr", tier::GENERIC),
    (b"symlink", tier::GENERIC),
    (b"system", tier::CODE),
    (b"touch", tier::WORD),
    (b"unpack", tier::WORD),
    (b"unserialize", tier::GENERIC),
    (b"var_dump", tier::PHP_ONLY),
    (b"zlib_decode", tier::PHP_ONLY),
];

/// `php.ini` directives that change how PHP runs code, with the level a `name=` assignment is reported at, sorted.
static DIRECTIVES: &[(&[u8], Level)] = &[
    (b"allow_url_fopen", Sensitivity::Medium),
    (b"allow_url_include", Sensitivity::Low),
    (b"auto_append_file", Sensitivity::Low),
    (b"auto_prepend_file", Sensitivity::Low),
    (b"disable_classes", Sensitivity::Low),
    (b"disable_functions", Sensitivity::Low),
    (b"display_errors", Sensitivity::Medium),
    (b"enable_dl", Sensitivity::Medium),
    (b"engine", Sensitivity::High),
    (b"error_log", Sensitivity::Medium),
    (b"expose_php", Sensitivity::Medium),
    (b"extension", Sensitivity::High),
    (b"extension_dir", Sensitivity::Medium),
    (b"include_path", Sensitivity::Medium),
    (b"max_execution_time", Sensitivity::Medium),
    (b"memory_limit", Sensitivity::Medium),
    (b"open_basedir", Sensitivity::Low),
    (b"precision", Sensitivity::High),
    (b"register_globals", Sensitivity::Medium),
    (b"safe_mode", Sensitivity::Medium),
    (b"sendmail_path", Sensitivity::Medium),
    (b"short_open_tag", Sensitivity::Medium),
    (b"smtp", Sensitivity::High),
    (b"unserialize_max_depth", Sensitivity::Medium),
    (b"upload_tmp_dir", Sensitivity::Medium),
    (b"zend_extension", Sensitivity::Medium),
];

/// Prefixes of dotted `php.ini` directive families (`opcache.jit=…`), reported at medium.
static DIRECTIVE_FAMILIES: &[&[u8]] = &[b"mbstring.", b"opcache.", b"pcre.", b"zend."];

/// PHP's superglobals, without the `$`.
static SUPERGLOBALS: &[&[u8]] =
    &[b"_cookie", b"_env", b"_files", b"_get", b"_post", b"_request", b"_server", b"_session", b"globals"];

/// PHP stream wrappers that a web URL parameter never needs (`http`, `ftp`, `file`, `data` are other classes').
static WRAPPERS: &[&[u8]] = &[
    b"compress.bzip2",
    b"compress.zlib",
    b"expect",
    b"glob",
    b"ogg",
    b"phar",
    b"php",
    b"rar",
    b"ssh2.exec",
    b"ssh2.scp",
    b"ssh2.sftp",
    b"ssh2.shell",
    b"ssh2.tunnel",
    b"zip",
    b"zlib",
];

/// Whether `subject` carries PHP code injection at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    // Every shape needs one of these bytes (a call's `(`, `<?`, a tag's bracket, `$`, `O:`/`scheme:`, `name=`): most
    // values have none and are passed after one tight loop.
    if !subject.lower.iter().any(|&b| matches!(b, b'(' | b'<' | b'[' | b'{' | b'$' | b':' | b'=')) {
        return false;
    }
    let name = if subject.is_name { superglobal_name(subject.lower) } else { None };
    lowest(name, scan(subject.lower)).is_some_and(|level| level <= sensitivity)
}

/// A parameter named after a superglobal's entry (`_SERVER[DOCUMENT_ROOT]=…`, `GLOBALS[admin]=1`,
/// `_SESSION[user]=…`): what overwrites PHP's own variables where `register_globals` or `extract()` import
/// request parameters.
fn superglobal_name(name: &[u8]) -> Option<Level> {
    let end = superglobal(name, 0)?;
    (at(name, end) == b'[').then_some(Sensitivity::Medium)
}

/// The byte at `i`, or 0 past the end.
fn at(text: &[u8], i: usize) -> u8 {
    text.get(i).copied().unwrap_or(0)
}

/// Whether `text` holds `pat` at `i`.
fn has_at(text: &[u8], i: usize, pat: &[u8]) -> bool {
    text.get(i..i.saturating_add(pat.len())) == Some(pat)
}

/// Whether `b` can be part of a PHP name.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `b` is a blank PHP skips between tokens.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// The lower of two optional levels.
fn lowest(a: Option<Level>, b: Option<Level>) -> Option<Level> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What stood between a name and the `(` after it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    /// Nothing: `exec(`.
    None,
    /// Blanks only: `exec (`.
    Blank,
    /// A closing quote, bracket or parenthesis: `"system"(`, `(system)(`, `[system][0](`.
    Closer,
    /// A comment: `exec/**/(`, `exec #c` and a line break.
    Comment,
}

/// The lowest level at which `text` (lower case) carries PHP code, if any.
fn scan(text: &[u8]) -> Option<Level> {
    let n = text.len();
    let mut best: Option<Level> = None;
    // The last word read and what has followed it since: `Some((start, end, gap, closers))`.
    let mut pending: Option<(usize, usize, Gap, usize)> = None;
    // Inside a `/*…*/` or a `//…`/`#…` comment that follows a pending name (its bytes are still scanned for shapes:
    // outside PHP mode a comment is plain text).
    let mut block_comment = false;
    let mut line_comment = false;
    // Where the next line break is at or after the scan position (`n` if none): found once, reused.
    let mut next_break = 0usize;
    // The last byte that was not a blank, and where the last quoted-string concatenation (`'sys'.'tem'`) was.
    let mut previous = 0u8;
    let mut concat: Option<usize> = None;
    let mut i = 0usize;
    while i < n {
        if best == Some(Sensitivity::Low) {
            return best;
        }
        let b = at(text, i);
        let found = match b {
            b'<' if at(text, i + 1) == b'?' => open_tag(text, i + 2),
            b'[' | b'{' => bracket_tag(text, i),
            b'$' => dollar(text, i),
            b':' if has_at(text, i + 1, b"//") => wrapper(text, i),
            b'=' => backtick_assigned(text, i + 1),
            // A string built from pieces and then called: `('sys'.'tem')('id')`.
            b'(' if matches!(previous, b')' | b']' | b'}' | b'"' | b'\'') && concat.is_some_and(|c| i - c < 96) => {
                Some(Sensitivity::Medium)
            }
            b'.' if matches!(previous, b'"' | b'\'') && next_is_quote(text, i + 1) => {
                concat = Some(i);
                None
            }
            _ => None,
        };
        best = lowest(best, found);
        // Comments are not code: `(x)/* c */('id')` calls what `(x)` closed.
        let opens_comment = pending.is_some() && b == b'/' && at(text, i + 1) == b'*';
        if !is_blank(b) && !block_comment && !line_comment && !opens_comment {
            previous = b;
        }
        if block_comment {
            if has_at(text, i, b"*/") {
                block_comment = false;
                i += 1;
            }
            i += 1;
            continue;
        }
        if line_comment {
            line_comment = b != b'\n';
            i += 1;
            continue;
        }
        if (b.is_ascii_lowercase() || b == b'_') && (i == 0 || !is_word(at(text, i - 1))) {
            let mut end = i;
            while is_word(at(text, end)) {
                end += 1;
            }
            best = lowest(best, word_at(text, i, end));
            pending = Some((i, end, Gap::None, 0));
            previous = at(text, end.saturating_sub(1));
            i = end;
            continue;
        }
        // Comments, blanks and closers keep a pending name alive.
        if let Some((start, end, gap, closers)) = pending {
            if b == b'/' && at(text, i + 1) == b'*' {
                pending = Some((start, end, Gap::Comment, closers));
                block_comment = true;
                i += 2;
                continue;
            }
            if (b == b'/' && at(text, i + 1) == b'/') || b == b'#' {
                if next_break < i {
                    next_break = memchr::memchr(b'\n', text.get(i..).unwrap_or_default()).map_or(n, |k| i + k);
                }
                if next_break < n {
                    pending = Some((start, end, Gap::Comment, closers));
                    line_comment = true;
                    i += 1;
                    continue;
                }
            }
            if is_blank(b) {
                pending = Some((start, end, gap.max(Gap::Blank), closers));
                i += 1;
                continue;
            }
            // Index digits count only once a bracket was seen: `[system][0](`, not `system 2 (`.
            let index_digit = b.is_ascii_digit() && closers > 0;
            if (matches!(b, b')' | b']' | b'}' | b'"' | b'\'' | b'[' | b'{') || index_digit) && closers < MAX_GAP {
                pending = Some((start, end, gap.max(Gap::Closer), closers + 1));
                i += 1;
                continue;
            }
            if b == b'(' {
                best = lowest(best, call(text, start, end, gap, i + 1));
            }
            pending = None;
        }
        i += 1;
    }
    best
}

/// Whether the next byte after blanks at `i` is a quote.
fn next_is_quote(text: &[u8], mut i: usize) -> bool {
    let start = i;
    while is_blank(at(text, i)) && i - start < 8 {
        i += 1;
    }
    matches!(at(text, i), b'"' | b'\'')
}

/// Where `pat` next occurs in `text` at or after `from`.
fn find(text: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    memchr::memmem::find(text.get(from..)?, pat).map(|k| from + k)
}

/// Shapes that start at a word: serialized objects and arrays, `php.ini` directives.
fn word_at(text: &[u8], start: usize, end: usize) -> Option<Level> {
    let word = text.get(start..end)?;
    let level = match word {
        b"include" | b"include_once" | b"require" | b"require_once" => include_variable(text, end),
        b"o" | b"c" if at(text, end) == b':' => serialized_object(text, end + 1),
        b"a" if at(text, end) == b':' => serialized_array(text, end + 1),
        _ => None,
    };
    lowest(level, directive(text, start, end))
}

/// `include $file` (PHP's include needs no parentheses): blanks and a variable after the word ending at `i`.
fn include_variable(text: &[u8], i: usize) -> Option<Level> {
    let mut j = i;
    while is_blank(at(text, j)) && j - i < 8 {
        j += 1;
    }
    if j == i || at(text, j) != b'$' {
        return None;
    }
    if superglobal(text, j + 1).is_some() {
        return Some(Sensitivity::Low);
    }
    (at(text, j + 1).is_ascii_lowercase() || at(text, j + 1) == b'_').then_some(Sensitivity::Medium)
}

/// `O:<len>:"Class":<n>:{` after the `O:` (at `i`).
fn serialized_object(text: &[u8], i: usize) -> Option<Level> {
    let (len, j) = number(text, i)?;
    if !has_at(text, j, b":\"") {
        return None;
    }
    let name_start = j + 2;
    let mut k = name_start;
    while (is_word(at(text, k)) || at(text, k) == b'\\') && k - name_start < 128 {
        k += 1;
    }
    if k == name_start || at(text, k) != b'"' || at(text, k + 1) != b':' {
        return None;
    }
    let (_, m) = number(text, k + 2)?;
    if !has_at(text, m, b":{") {
        return None;
    }
    // The declared length matching the class name is what PHP's serializer writes; a mismatch is still PHP's shape.
    Some(if len == k - name_start { Sensitivity::Low } else { Sensitivity::Medium })
}

/// `a:<n>:{i:0;` or `a:<n>:{s:` after the `a:` (at `i`): a serialized array, at high.
fn serialized_array(text: &[u8], i: usize) -> Option<Level> {
    let (_, j) = number(text, i)?;
    let shaped = has_at(text, j, b":{i:") || has_at(text, j, b":{s:");
    shaped.then_some(Sensitivity::High)
}

/// A decimal number at `i` (at most 9 digits): its value and where it ends.
fn number(text: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    let mut j = i;
    while at(text, j).is_ascii_digit() && j - i < 9 {
        value = value * 10 + usize::from(at(text, j) - b'0');
        j += 1;
    }
    (j > i).then_some((value, j))
}

/// A `php.ini` directive assignment: the word `start..end` (with any dotted family before it) then `=`.
fn directive(text: &[u8], start: usize, end: usize) -> Option<Level> {
    let mut j = end;
    while matches!(at(text, j), b' ' | b'\t') && j - end < 8 {
        j += 1;
    }
    if at(text, j) != b'=' || at(text, j + 1) == b'=' {
        return None;
    }
    // A dotted name is a directive only in one of PHP's families: `app.engine=` is someone else's key.
    let name = text.get(start..end)?;
    let before = if start == 0 { 0 } else { at(text, start - 1) };
    if before == b'.' {
        let family = DIRECTIVE_FAMILIES.iter().any(|f| start >= f.len() && has_at(text, start - f.len(), f));
        return family.then_some(Sensitivity::Medium);
    }
    if DIRECTIVE_FAMILIES.iter().any(|f| has_at(text, start, f)) {
        return None;
    }
    let index = DIRECTIVES.binary_search_by(|(d, _)| (*d).cmp(name)).ok()?;
    DIRECTIVES.get(index).map(|(_, level)| *level)
}

/// A call of the function `start..end` whose `(` is just before `arg`, reached through `gap`.
fn call(text: &[u8], start: usize, end: usize, gap: Gap, arg: usize) -> Option<Level> {
    let name = text.get(start..end)?;
    if end - start > MAX_NAME {
        return None;
    }
    let tier = function_tier(name).or_else(|| glued_php_only(name))?;
    let arg = Argument::read(text, arg);
    let level = match (tier, gap, arg) {
        (tier::CODE | tier::PHP_ONLY | tier::INCLUDE, _, Argument::Superglobal | Argument::DangerousCall) => {
            Sensitivity::Low
        }
        (tier::PHP_ONLY, _, _) | (_, Gap::Comment, _) => Sensitivity::Medium,
        (tier::INCLUDE, _, Argument::Variable | Argument::Path) => Sensitivity::Medium,
        (tier::INCLUDE, _, _) => Sensitivity::High,
        (_, _, Argument::Variable | Argument::Path) => Sensitivity::Medium,
        (_, Gap::None | Gap::Closer, Argument::Quoted) => Sensitivity::Medium,
        (tier::CODE, Gap::Blank, Argument::Quoted) => Sensitivity::Medium,
        (tier::CODE | tier::GENERIC | tier::WORD, Gap::Closer, Argument::Word) => Sensitivity::Medium,
        (tier::CODE, Gap::None, Argument::Word) => Sensitivity::Medium,
        // A library name only PHP uses, given an argument: `chr(123)`, `printf(foo)`, `fopen  (blah)`.
        (tier::GENERIC, Gap::None, Argument::Word | Argument::Other) | (tier::GENERIC, Gap::Blank, Argument::Word) => {
            Sensitivity::Medium
        }
        _ => Sensitivity::High,
    };
    Some(level)
}

/// The tier of the PHP function `name` (lower case).
fn function_tier(name: &[u8]) -> Option<u8> {
    let index = FUNCTIONS.binary_search_by(|(f, _)| (*f).cmp(name)).ok()?;
    FUNCTIONS.get(index).map(|(_, t)| *t)
}

/// A long php-only name glued to other letters (`xcall_user_func(`): PHP would not run it, but nothing else writes
/// one, and a filter that stripped a prefix would hand it on.
fn glued_php_only(word: &[u8]) -> Option<u8> {
    FUNCTIONS
        .iter()
        .any(|(f, t)| *t == tier::PHP_ONLY && f.len() >= 8 && word.len() > f.len() && word.ends_with(f))
        .then_some(tier::PHP_ONLY)
}

/// How a call's argument starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Argument {
    /// `$_GET[…]`, `$GLOBALS`…
    Superglobal,
    /// Another call of a code or php-only function: `eval(base64_decode(…`.
    DangerousCall,
    /// A variable or a backtick: only code passes these.
    Variable,
    /// A quoted string that names a path or URL (`'/tmp/x'`, `"shell.php"`, `'http://…'`).
    Path,
    /// Another quoted string.
    Quoted,
    /// A bare lower-case word of two letters or more closed at once: `system(whoami)`.
    Word,
    /// Nothing: `eval()`.
    Empty,
    /// Anything else.
    Other,
}

impl Argument {
    /// Reads the argument starting at `i` (just after the `(`).
    fn read(text: &[u8], mut i: usize) -> Argument {
        let start = i;
        while (is_blank(at(text, i)) || at(text, i) == b'@') && i - start < 8 {
            i += 1;
        }
        match at(text, i) {
            b'$' if superglobal(text, i + 1).is_some() => Argument::Superglobal,
            b'$' if at(text, i + 1).is_ascii_lowercase() || matches!(at(text, i + 1), b'_' | b'$' | b'{') => {
                Argument::Variable
            }
            b'`' => Argument::Variable,
            b')' => Argument::Empty,
            quote @ (b'\'' | b'"') => {
                let limit = (i + 1 + MAX_INDEX).min(text.len());
                let inside = text.get(i + 1..limit).unwrap_or_default();
                let body = inside.split(|&c| c == quote).next().unwrap_or_default();
                let path =
                    body.contains(&b'/') || body.contains(&b'\\') || memchr::memmem::find(body, b".php").is_some();
                if path {
                    Argument::Path
                } else {
                    Argument::Quoted
                }
            }
            b'a'..=b'z' | b'_' => {
                let word_start = i;
                while is_word(at(text, i)) && i - word_start < MAX_NAME {
                    i += 1;
                }
                let word = text.get(word_start..i).unwrap_or_default();
                let mut j = i;
                while is_blank(at(text, j)) && j - i < 8 {
                    j += 1;
                }
                if at(text, j) == b'(' && matches!(function_tier(word), Some(tier::CODE | tier::PHP_ONLY)) {
                    Argument::DangerousCall
                } else if i - word_start >= 2 && (at(text, j) == b')' || has_at(text, j, b"/*")) {
                    Argument::Word
                } else {
                    Argument::Other
                }
            }
            _ => Argument::Other,
        }
    }
}

/// The superglobal named at `i` (just after its `$`): where its name ends.
fn superglobal(text: &[u8], i: usize) -> Option<usize> {
    SUPERGLOBALS.iter().find(|g| has_at(text, i, g) && !is_word(at(text, i + g.len()))).map(|g| i + g.len())
}

/// After `<?` (at `i`): `<?php`, `<?=`, `<? code`, `<?xml` followed by code.
fn open_tag(text: &[u8], i: usize) -> Option<Level> {
    let mut j = i;
    while is_blank(at(text, j)) && j - i < 16 {
        j += 1;
    }
    if has_at(text, j, b"php") && !is_word(at(text, j + 3)) {
        return Some(Sensitivity::Low);
    }
    if j == i && at(text, j) == b'=' {
        return Some(Sensitivity::Medium);
    }
    if j == i && has_at(text, j, b"xml-stylesheet") {
        return None;
    }
    if j == i && has_at(text, j, b"xml") && !is_word(at(text, j + 3)) {
        // A prolog carries attributes (`version=`, `encoding=`) or ends; anything else is code after a fake prolog.
        let mut k = j + 3;
        while is_blank(at(text, k)) && k - j < 32 {
            k += 1;
        }
        return match at(text, k) {
            0 | b'?' | b'v' | b'e' | b's' => None,
            _ => Some(Sensitivity::Medium),
        };
    }
    // `<? code`, and a value that ends in an opening tag (the code follows in the next value or the file it lands in).
    if (j > i && (at(text, j).is_ascii_lowercase() || at(text, j) == b'$')) || j >= text.len() {
        return Some(Sensitivity::Medium);
    }
    Some(Sensitivity::High)
}

/// `[php]`, `[/php]`, `[\php]`, `{php}`, `{/php}` at `i`.
fn bracket_tag(text: &[u8], i: usize) -> Option<Level> {
    let close = if at(text, i) == b'[' { b']' } else { b'}' };
    let mut j = i + 1;
    if matches!(at(text, j), b'/' | b'\\') {
        j += 1;
    }
    (has_at(text, j, b"php") && at(text, j + 3) == close).then_some(Sensitivity::Medium)
}

/// At a `$` (at `i`): superglobals, variable variables and variable functions.
fn dollar(text: &[u8], i: usize) -> Option<Level> {
    if superglobal(text, i + 1).is_some() {
        return Some(Sensitivity::Medium);
    }
    let mut j = i + 1;
    let mut strong = false;
    while at(text, j) == b'$' && j - i < 8 {
        strong = true;
        j += 1;
    }
    let mut braced = None;
    // `${'a'}`, `$ {$a}`: a variable variable.
    let mut k = j;
    while is_blank(at(text, k)) && k - j < 32 {
        k += 1;
    }
    if at(text, k) == b'{' {
        let end = bracket_end(text, k)?;
        let mut m = k + 1;
        while is_blank(at(text, m)) && m < end {
            m += 1;
        }
        let inner = at(text, m);
        let code = k > j || matches!(inner, b'\'' | b'"' | b'$' | b'@');
        // `${name}` is also a shell or template-literal expansion: only PHP puts a string or variable inside.
        braced = Some(if code { Sensitivity::Medium } else { Sensitivity::High });
        j = end + 1;
        strong = code;
    } else {
        let start = j;
        if !(at(text, j).is_ascii_lowercase() || at(text, j) == b'_') {
            return None;
        }
        while is_word(at(text, j)) && j - start < MAX_NAME {
            j += 1;
        }
        if text.get(start..j).is_some_and(|w| w.iter().any(|c| !c.is_ascii_lowercase())) {
            strong = true;
        }
    }
    lowest(braced, variable_call(text, j, strong))
}

/// Where the `{` or `[` at `i` is closed, within [`MAX_INDEX`] bytes.
fn bracket_end(text: &[u8], i: usize) -> Option<usize> {
    let close = if at(text, i) == b'{' { b'}' } else { b']' };
    (i + 1..(i + MAX_INDEX).min(text.len())).find(|&k| at(text, k) == close)
}

/// After a variable ending at `i`: indexes, `->name`, comments and blanks, then `(` makes a variable function.
fn variable_call(text: &[u8], mut i: usize, mut strong: bool) -> Option<Level> {
    let mut blank = false;
    let origin = i;
    for _ in 0..8 {
        // A bounded look-ahead in all: a value made of `$a[` cannot make every `$` read far.
        if i - origin > MAX_CALL_READ {
            return None;
        }
        let before = i;
        while is_blank(at(text, i)) && i - before < 32 {
            i += 1;
            blank = true;
        }
        match at(text, i) {
            b'[' | b'{' => {
                i = bracket_end(text, i)? + 1;
                strong = true;
            }
            b'/' if at(text, i + 1) == b'*' => {
                let limit = (i + 64).min(text.len());
                i = find(text.get(..limit)?, i + 2, b"*/")? + 2;
                strong = true;
            }
            b'/' | b'#' if at(text, i) == b'#' || at(text, i + 1) == b'/' => {
                let limit = (i + 64).min(text.len());
                i = memchr::memchr(b'\n', text.get(i..limit)?).map(|k| i + k + 1)?;
                strong = true;
            }
            // `($f)(…)`, and the end of a nested index `$a[$b[1]](…)`.
            b')' | b']' | b'}' => {
                i += 1;
                strong = true;
            }
            b'(' => {
                // `$f(x)$` is LaTeX maths in Markdown, not a call.
                let limit = (i + 32).min(text.len());
                if memchr::memmem::find(text.get(i..limit)?, b")$").is_some() {
                    return None;
                }
                return Some(if strong || !blank { Sensitivity::Medium } else { Sensitivity::High });
            }
            _ => return None,
        }
        if i == before {
            return None;
        }
    }
    None
}

/// `scheme://` with the `:` at `i`: a PHP stream wrapper.
fn wrapper(text: &[u8], i: usize) -> Option<Level> {
    let mut start = i;
    while start > 0 && i - start < 16 && (is_word(at(text, start - 1)) || at(text, start - 1) == b'.') {
        start -= 1;
    }
    if start > 0 && is_word(at(text, start - 1)) {
        return None;
    }
    let scheme = text.get(start..i)?;
    WRAPPERS.contains(&scheme).then_some(Sensitivity::Medium)
}

/// After a `=` (at `i`): a backtick command assigned to a variable, `$r = `id`;`.
fn backtick_assigned(text: &[u8], i: usize) -> Option<Level> {
    // The variable before the `=`: blanks, a name, then `$`.
    let mut v = i.checked_sub(1)?;
    while v > 0 && i - v < 8 && is_blank(at(text, v - 1)) {
        v -= 1;
    }
    while v > 0 && i - v < 48 && is_word(at(text, v - 1)) {
        v -= 1;
    }
    if v == 0 || at(text, v - 1) != b'$' {
        return None;
    }
    let mut j = i;
    while is_blank(at(text, j)) && j - i < 8 {
        j += 1;
    }
    if at(text, j) != b'`' {
        return None;
    }
    let limit = (j + 128).min(text.len());
    let close = memchr::memchr(b'`', text.get(j + 1..limit)?)? + j + 1;
    let mut k = close + 1;
    while is_blank(at(text, k)) && k - close < 8 {
        k += 1;
    }
    (close > j + 1 && matches!(at(text, k), b';' | 0 | b'?')).then_some(Sensitivity::Medium)
}

#[cfg(test)]
mod tests;
