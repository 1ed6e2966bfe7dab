use super::*;
use crate::attacks::Place;

fn level_of(text: &str) -> Option<Sensitivity> {
    let lower = text.to_ascii_lowercase();
    let subject = Subject::plain(text.as_bytes(), lower.as_bytes(), Place::Query);
    [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High].into_iter().find(|s| detect(&subject, *s))
}

/// Every case is reported at `level`, and not below it unless `level` is Medium (the recommended level: some of
/// its cases are also tautologies that Low reports).
#[track_caller]
fn reported_from(level: Sensitivity, cases: &[&str]) {
    for case in cases {
        let found = level_of(case);
        if level == Sensitivity::Medium {
            assert!(found.is_some_and(|f| f <= level), "{case:?}: {found:?}");
        } else {
            assert_eq!(found, Some(level), "{case:?}");
        }
    }
}

#[test]
fn unmistakable_attacks_are_reported_at_low() {
    reported_from(
        Sensitivity::Low,
        &[
            "-5 UNION ALL SELECT username, password FROM accounts",
            "x') union distinct (select 7,8)#",
            "0 UnIoN/**/SeLeCt 1,2",
            "42 /*!50000union*/ /*!select*/ 1",
            "7 and sleep(3)",
            "abc' AND SLEEP(10)-- x",
            "1;SELECT pg_sleep(4)",
            "9 or benchmark(5000000,sha1(1))",
            "z' and extractvalue(0x0a,concat(0x0a,(select database())))-- ",
            "1 and updatexml(null,concat(0x3a,version()),null)",
            "name'); waitfor delay '0:0:9'--",
            "1; exec master..xp_cmdshell 'dir'",
            "x' union select load_file('/etc/hosts')#",
            "5 into outfile '/var/www/x.php'",
            "anything' or 'q'='q",
            "\" or \"\"=\"",
            "12 or 7=7",
            "zz' or x=x -- ",
            "1; DROP TABLE customers--",
            "a'; insert into admins (name) values ('me')--",
            "q' || utl_inaddr.get_host_name((select banner from v$version)) || '",
            "-1e0union select 5,6",
            "4 union#note\ndistinctrow select 8,9",
            "4 union-- x\nselect 8,9",
            "3.union select 7",
            "2\u{a0}union\u{a0}select\u{a0}null",
        ],
    );
}

#[test]
fn injections_are_reported_at_medium() {
    reported_from(
        Sensitivity::Medium,
        &[
            "bob'--",
            "bob' #",
            "bob'/*",
            "') or ('k'=('j",
            "x' and 2>1 --",
            "12 AND 3=4",
            " or 5=6#",
            "AND 0",
            "' or '7",
            "q' or '0=0",
            "r' OR TRUE--",
            "s'='",
            "t' like '%",
            "'-'",
            "' '",
            "u'||'v",
            "w' ORDER BY 4--",
            "10 ORDER BY 12",
            "w' GROUP BY a HAVING 1=1--",
            "' having 2=2",
            "v' and ascii(substring((select user()),1,1))>64--",
            "3 AND (SELECT 1 FROM dual)=1",
            "m' and 8 in (select id from t)--",
            "n' and col is null; --",
            "select @@datadir",
            "select * from accounts",
            "select count(*) from staff",
            "SELECT current_user;",
            "select 1,2,3",
            "x' and 1=(select top 1 name from sysobjects)--",
            "from information_schema.tables",
            "from pg_shadow",
            "delete from sessions where 1=1",
            "update accounts set role = 'admin'",
            "create table loot (line varchar(99))",
            "exec xp_regwrite",
            "declare @q varchar(99)",
            "copy t from '/etc/passwd'",
            "IF(55=55) SELECT 1",
            "1' and '9'='8",
            "k' or sleep_for(1) or 'a",
            "x' or 7<",
            "xor 3-",
            "z'^col--",
            "z' mod id--",
            "k' and c = all (select c)--",
            "8 or {fn x()}",
            "9=9' or-- -",
            "a; drop users;--",
            "q;insert into",
            "id;update accounts",
            "col having count(id) > 1",
            "if(3=3,1,0)",
            "in (7,8,9)",
            "'m'='n",
            "or 4==4",
            "exec sp_executesql @q",
            "openrowset",
            "from `information_schema`.`columns`",
            "1;set @v=0x41",
            "row(1)::text",
            "x' union select pass from accounts",
            "-4 or k=j",
            "p'+(select top 1 pass from accounts)+'",
            "k’ or ‘5’=’5",
            "select pg_sleep",
            "9 or x'41'=x'41'",
            "w' or n'k'=_utf8'k",
            "execute immediate 'x'",
            "2021-02-03' sleep(9) '",
            "in (select * from",
            "k′) and ′7′=′7",
        ],
    );
}

#[test]
fn weak_signals_are_reported_at_high_only() {
    reported_from(Sensitivity::High, &["'", "12'", "\"", "name or a=b", "total=char(65)", "hi' and 'there"]);
}

#[test]
fn prose_and_api_values_are_not_reported_at_medium() {
    for case in [
        "union was a great select",
        "O'Brien's",
        "select a plan",
        "select 2 options from the menu",
        "1) a-b=c",
        "D'or 1st parfume",
        "drop-down",
        "union station",
        "students' union",
        "Rock 'n' roll -- live",
        "Don't update the table",
        "Please delete from my cart",
        "insert into the slot",
        "create user account",
        "order by price",
        "group by category",
        "sleep (8 hours)",
        "exec summary",
        "#1 seller",
        "DEAR FINN,--I think it would do",
        "john+or@var.es",
        "john or@var.es",
        "it's true or false",
        "the 'or' operator",
        "he said 'yes' or 'no'",
        "Ben & Jerry's",
        "Tom and Jerry=best friends",
        "a=b and c=d",
        "size >= 10 and size <= 20",
        "between 1 and 10",
        "2+2=4",
        "10% off; select items",
        "L'Oréal Paris",
        "it's 5 o'clock",
        "price: $5 - $10",
        "https://example.com/search?q=select&order=by",
        "{\"name\":\"O'Neil\",\"qty\":3}",
        "2024-05-01T10:00:00Z",
        "9f86d081-884c-7d65-9a2f-eaa0c55ad015",
        "h2<h1",
        "'h2<h1'",
        "Drop table tennis from the schedule?",
        "wait for delay",
        "the students' union select committee",
        "Use 'SELECT' to choose an item from the list",
        "Please select one from below",
        "it's ok; drop me a line",
        "He's 6' 2\" and 180 lbs",
        "Product 'X' or 'Y' = same price?",
        "O'Hara and O'Neil = best team",
        "f'(x) = 2x",
        "Let's order by price, please",
        "is this your parents' or yours?",
        "1 or 2",
        "my students' #1 choice",
        "drop it #lazy",
        "Jones' order by phone",
        "Jones' having fun",
        "Jones' like share",
        "students'; teachers",
        "or select a seat",
        "and kids in school",
        "please select (one) option",
        "May group by 2 people",
        "\" select table around",
        "O’Brien’s",
        "it’s 5 o’clock; don’t select it",
        "I’m 5′10″ tall",
        "the kids’ toys -- all of them",
        "rating >= 4 and price < 20",
        "x=1 and y=2",
        "if (a == b && c) { return; }",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    ] {
        let found = level_of(case);
        assert!(found.is_none() || found == Some(Sensitivity::High), "{case:?}: {found:?}");
    }
}

#[test]
fn the_value_is_judged_in_every_context_it_can_land_in() {
    // As-is (a number spliced in), after a single quote, after a double quote.
    assert_eq!(level_of("7 or 2=2"), Some(Sensitivity::Low));
    assert_eq!(level_of("x' or 2=2 and 'a"), Some(Sensitivity::Low));
    assert_eq!(level_of("x\" or 2=2 and \"a"), Some(Sensitivity::Low));
    // A single quote inside a double-quoted context is string content.
    assert_eq!(level_of("x\" means 'yes'"), None);
}

use crate::token_analysis::test_rng::Rng;

#[test]
fn arbitrary_bytes_never_panic() {
    const ALPHABET: &[u8] = b"'\"`()-#/*!;=<>|&~^%+,.@$\\ \t\n0123456789xeEselctunoirafdwhbyp_";
    const SEEDS: &[&str] =
        &["1’ or ‘1’=’1′--", "1' or '1'='1'--", "x union select 1,2#", "a'/*!and*/sleep(1)", "@@v;waitfor delay '1'"];
    let mut rng = Rng(0x5eed_5a11);
    for round in 0..20_000 {
        let mut value: Vec<u8> =
            if round % 2 == 0 { SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec() } else { vec![] };
        for _ in 0..1 + rng.below(12) {
            let byte = if rng.next() % 4 == 0 { rng.next() as u8 } else { ALPHABET[rng.below(ALPHABET.len())] };
            match rng.next() % 3 {
                0 => value.insert(rng.below(value.len() + 1), byte),
                1 if !value.is_empty() => {
                    let at = rng.below(value.len());
                    value[at] = byte;
                }
                _ => value.push(byte),
            }
        }
        let lower = value.to_ascii_lowercase();
        for sensitivity in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
            let _ = detect(&Subject::plain(&value, &lower, Place::Query), sensitivity);
        }
    }
}

#[test]
fn a_long_value_is_judged_to_its_end() {
    let mut value = "word ".repeat(2000);
    value.push_str("x' or 3=3--");
    assert_eq!(level_of(&value), Some(Sensitivity::Low));
}

#[test]
fn query_fragments_only_sql_writes_are_reported_at_medium() {
    reported_from(
        Sensitivity::Medium,
        &[
            ") as total FROM",
            "`a` AS `b` from",
            "77 as \"label\" from orders",
            "SELECT/**/secret/**/FROM/**/vault",
            "DELETE/*x*/FROM/*y*/logs",
            "mid(0x41424344,1,1)",
            "select 0x6b6579",
            "x' and char(107,101,121)='k",
            "lower(version(",
            "select(database(",
            "7<=>7",
            "'q'<=>'q'",
            "3=3",
            "q,'z'='z'",
            "21!=2",
            "VALUES ('10.1.2.3', 'me')",
            ") like (",
            "substring(",
            "trim (",
            "IN (",
            "k'notnull--",
            "k' regexp id--",
            "k'or'k",
            "z'and'q",
            "',null)--",
            "'),null,null--",
            "or '{\"a\":1}'::json",
            "from `shop`.`orders` limit",
            "FROM staff WHERE login = 'root'",
            "select pass from staff where id=",
            "SELECT 'abc'||(SELECT 1)",
            "12 like 12",
            "'a' not regexp 'b'",
            "3 is not 4",
            "or '{\"k\":1}' ? 'k'",
            "and '{\"k\":[1]}' -> '$.k' = 1",
            "or '[1]' ?| array['1']",
            "jo@example.org\\' or glob (id,id);",
            "\\'or'7",
            "id in (select code from vault)",
            "k' or nick like boss escape '!';",
        ],
    );
}

#[test]
fn look_alikes_of_query_fragments_are_not_reported_at_medium() {
    for case in [
        "docs/**/index.md",
        "src/**/*.rs",
        "see the list (below) as well from now on",
        "the committee as a whole from 2020",
        "trim the hedge (front)",
        "count (them)",
        "max (2 per person)",
        "I like (most) cats",
        "1=2",
        "x=1",
        "a,b=c",
        "rock'n'roll",
        "O'Neil, null)",
        "the spaceship operator a <=> b",
        "ratio 16:9",
        "0x1f in the log",
        "select 0 items",
        "hex colour 0xff00ff",
        "copy from `src` to `dst`",
        "from Paris where it rains",
        "select one from below where it says",
        "1 in 3 people",
        "5 is the answer",
        "'yes' like 'no'?",
        "C:\\Users\\O'Brien\\docs",
        "it\\'s or maybe not",
        "available in (select) sizes",
        "I like it, escape 'now'",
    ] {
        let found = level_of(case);
        assert!(found.is_none() || found == Some(Sensitivity::High), "{case:?}: {found:?}");
    }
}

#[test]
fn a_value_of_one_token_is_judged_as_the_full_judge_would() {
    for case in [
        "2",
        "0042",
        "price_asc",
        "_x9",
        "select",
        "union",
        "or",
        "sleep",
        "information_schema",
        "xp_cmdshell",
        "xp_dirtree",
        "sp_executesql",
        "openrowset",
        "benchmark",
        "pg_shadow",
        "abc123",
    ] {
        for enough in [LOW, MEDIUM, HIGH] {
            let full = {
                let mut best = judge(case.as_bytes(), None, enough, true);
                if best > enough && case.contains('\'') {
                    best = best.min(judge(case.as_bytes(), Some(b'\''), enough, true));
                }
                best
            };
            let fast = one_token(case.as_bytes());
            assert!(fast.is_some(), "{case:?}");
            // The full judge stops at the first shape at or below `enough`: compare what each reports at `enough`.
            assert_eq!(fast.is_some_and(|f| f <= enough), full <= enough, "{case:?} at {enough}");
        }
    }
    for case in ["1e5or", "2 or 3", "1e5information_schema", "x$", "é", "a-b", ""] {
        assert_eq!(one_token(case.as_bytes()), None, "{case:?}");
    }
}

#[test]
fn the_one_token_shortcut_agrees_with_the_full_judge_on_random_words() {
    const PARTS: &[&str] = &[
        "xp_",
        "sp_",
        "cmdshell",
        "executesql",
        "select",
        "information_",
        "schema",
        "or",
        "1",
        "0",
        "_",
        "a",
        "e5",
        "pg_shadow",
        "sleep",
        "union",
    ];
    let mut rng = Rng(0x0e70_c0de);
    for _ in 0..20_000 {
        let mut word = String::new();
        for _ in 0..1 + rng.below(4) {
            word.push_str(PARTS[rng.below(PARTS.len())]);
        }
        let Some(fast) = one_token(word.as_bytes()) else { continue };
        for enough in [LOW, MEDIUM, HIGH] {
            let full = judge(word.as_bytes(), None, enough, true);
            assert_eq!(fast <= enough, full <= enough, "{word:?} at {enough}");
        }
    }
}
