//! Tests of the PHP code injection detector: attacks and benign look-alikes per level (written here for the class;
//! no corpus lines), and arbitrary bytes.

use super::*;
use crate::attacks::Place;
use crate::token_analysis::test_rng::Rng;

/// The lowest level that reports `text` (written here for the class; no corpus lines).
fn lowest_level(text: &str) -> Option<Sensitivity> {
    scan(text.to_ascii_lowercase().as_bytes())
}

#[test]
fn unmistakable_php_is_reported_at_low() {
    for text in [
        "<?php echo 'hi'; ?>",
        "<? PHP print 1",
        "<?php",
        "x=1;<?php\tpassthru('uname');",
        "shell_exec($_REQUEST['run'])",
        "include($_COOKIE['page'])",
        "require_once $_GET['lib'];",
        "EVAL(gzinflate(base64_decode('aGVsbG8=')))",
        "assert( str_rot13('flfgrz') )",
        "O:6:\"Widget\":1:{s:4:\"name\";s:1:\"x\";}",
        "C:11:\"ArrayObject\":21:{x:i:0;a:0:{};m:a:0:{}}",
        "auto_prepend_file=/var/tmp/x.txt",
        "allow_url_include = On",
        "hello # <?php\nprint 1;",
    ] {
        assert_eq!(lowest_level(text), Some(Sensitivity::Low), "{text:?}");
    }
}

#[test]
fn php_shapes_are_reported_at_medium() {
    for text in [
        "<?= $title ?>",
        "<? system('ls');",
        "<?xml ;print 7;",
        "[php]print 1;[/php]",
        "{php}readfile('x');{/php}",
        "uses $_SERVER['HTTP_HOST'] here",
        "$GLOBALS",
        "file_put_contents('a.php', 'x')",
        "call_user_func ( 'phpinfo' )",
        "popen('ls', 'r')",
        "exec(\"whoami\")",
        "system(hostname)",
        "passthru /* no */ ('ps')",
        "exec # note\n ('ps')",
        "('system')('ps')",
        "[passthru][0](ps)",
        "substr($input, 1)",
        "chr/**/(65)",
        "$h(4)",
        "$$name('x')",
        "@$_aa['k'](1)",
        "${'fn'}(2)",
        "$ {$v}",
        "$run /* x */ (1)",
        "$cb\n['x'] ('y')",
        "phar://upload/a.jpg/x",
        "compress.zlib://data.gz",
        "ssh2.exec://u:p@host/cmd",
        "memory_limit = 1G",
        "opcache.enable_cli=0",
        "$out = `ls -l`;",
        "include $path;",
        "include('/tmp/upload.php')",
        "O:9:\"Foo\":0:{}",
        "note[/php]",
        "done<?",
        "('sh' . 'ell')('ps')",
        "define('k', 'sh' . 'ell');(k) /* c */ ('ps');",
        "(/* x */system)(ps /* y */)",
        "[ exec ] [ 0 ] ( ps )",
        "$fn[$k[2]](3)",
        "xyzcall_user_func()",
        "strrev(abc)",
        "chr(65)",
        "fopen  (things)",
    ] {
        assert_eq!(lowest_level(text), Some(Sensitivity::Medium), "{text:?}");
    }
}

#[test]
fn weak_signals_wait_for_high() {
    for text in [
        "I use eval() in my notes",
        "the operating system(s) in use",
        "system (see above)",
        "touch (softly)",
        "chr()",
        "a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}",
        "engine=v8",
        "done<?!",
        "${name}",
        "substr()",
        "$value (approx)",
        "the plans include (\"basic\", \"pro\")",
    ] {
        assert_eq!(lowest_level(text), Some(Sensitivity::High), "{text:?}");
    }
}

#[test]
fn prose_and_api_values_are_clean() {
    for text in [
        "php is a language",
        "I love PHP and Python",
        "costs $5 (USD) or $7.50",
        "the O:1 ratio and a:b",
        "https://example.com/a.php?id=2&x=y",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>",
        "<?xml-stylesheet type=\"text/xsl\" href=\"s.xsl\"?>",
        "score = 3 (out of 5)",
        "Evaluate the options (all of them)",
        "O'Brien's system, v2 - see include list",
        "the formula $f(x)$ in markdown",
        "http://example.com and ftp://files.example.com",
        "file: report (final).pdf",
        "app.engine=fast",
        "the system 2 (new)",
        "price=$12(net)",
        "a = `code`.",
        "{\"php\": true, \"version\": \"8.2\"}",
    ] {
        assert_eq!(lowest_level(text), None, "{text:?}");
    }
}

#[test]
fn detect_reads_the_lower_case_subject() {
    let text = b"<?PHP SyStEm($_GeT['c']);";
    let lower = text.to_ascii_lowercase();
    let subject = Subject::plain(text, &lower, Place::Query);
    assert!(detect(&subject, Sensitivity::Low));
    let prose = b"PHP is fun";
    let lower = prose.to_ascii_lowercase();
    assert!(!detect(&Subject::plain(prose, &lower, Place::Query), Sensitivity::High));
}

/// The quick reject in `detect` keeps every shape: each needs one of the bytes it looks for.
#[test]
fn detect_agrees_with_the_scan() {
    for text in [
        "<?php",
        "system(id)",
        "$_GET",
        "[/php]",
        "O:3:\"Foo\":0:{}",
        "phar://x",
        "memory_limit=1",
        "$r = `id`;",
        "include $f",
        "plain words only",
        "no shapes: system call, eval, php",
    ] {
        let lower = text.to_ascii_lowercase();
        let subject = Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Form);
        for level in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
            let expected = scan(lower.as_bytes()).is_some_and(|l| l <= level);
            assert_eq!(detect(&subject, level), expected, "{text:?} at {level:?}");
        }
    }
}

/// Parameter names that overwrite PHP's own variables; the same words as values, or other names, are clean.
#[test]
fn superglobal_parameter_names_are_reported_at_medium() {
    let subject = |text: &'static [u8], lower: &'static [u8], is_name: bool| Subject {
        raw: text,
        decoded: text,
        lower,
        is_name,
        place: Place::Query,
        bytes: crate::attacks::ByteSet::ALL,
    };
    for (name, lower) in [
        (&b"_SERVER[DOCUMENT_ROOT]"[..], &b"_server[document_root]"[..]),
        (b"GLOBALS[admin]", b"globals[admin]"),
        (b"_SESSION[user]", b"_session[user]"),
    ] {
        assert!(!detect(&subject(name, lower, true), Sensitivity::Low));
        assert!(detect(&subject(name, lower, true), Sensitivity::Medium));
        assert!(!detect(&subject(name, lower, false), Sensitivity::High));
    }
    for lower in [&b"user[name]"[..], b"globals", b"_server_name[x]", b"filter[_get]"] {
        assert!(!detect(&subject(lower, lower, true), Sensitivity::High), "{:?}", String::from_utf8_lossy(lower));
    }
}

#[test]
fn tables_are_sorted_for_binary_search() {
    assert!(FUNCTIONS.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)));
    assert!(DIRECTIVES.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(0x0933);
    let alphabet = b"<?php=$_[]{}()'\"`:/*#\n ;O0123456789abcdesystemvalxo.@\\";
    for round in 0..4000 {
        let len = (rng.next() % 96) as usize;
        let value: Vec<u8> = (0..len)
            .map(|_| if round % 3 == 0 { rng.next() as u8 } else { alphabet[(rng.next() as usize) % alphabet.len()] })
            .collect();
        let lower = value.to_ascii_lowercase();
        let subject = Subject::plain(&value, &lower, Place::Json);
        let [low, medium, high] =
            [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].map(|s| detect(&subject, s));
        assert!((!low || medium) && (!medium || high));
    }
}
