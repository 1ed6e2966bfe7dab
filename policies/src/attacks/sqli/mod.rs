//! SQL injection: a SQL lexer and a judge of the token shapes an injection makes.
//!
//! A value (its `lower` form: decoded, ASCII lower case) is lexed as SQL in each context it can land in: as-is (a
//! number or an identifier spliced into a query) and, when it holds that quote, inside a string opened by a single
//! or a double quote: the value's first quote then closes the application's string (the **break**). The typographic
//! single quotes `‘ ’ ′` count as `'` (SQL Server's best-fit mapping turns them into one). Comments are whitespace
//! (`union/**/select`), so is the no-break space; MySQL's executable comments `/*! … */` are read as SQL. The judge
//! looks at the tokens through an 8-token sliding window and at the first 16 tokens (what follows the break or a
//! leading number): the cost is linear in the value's length (four passes at most), nothing is allocated, the
//! keyword table is a static `match`, and nothing can panic.
//!
//! What each level reports (each level includes the ones before it):
//! - **Low**: unmistakable shapes. `UNION [ALL|DISTINCT] SELECT` and a column list; time and error functions
//!   called (`SLEEP(5)`, `BENCHMARK(`, `pg_sleep(`, `EXTRACTVALUE(`, `UPDATEXML(`, `LOAD_FILE(`, `xp_cmdshell`,
//!   `dbms_pipe.`, `utl_inaddr.`...); `WAITFOR DELAY '…'`; `INTO OUTFILE`, `LOAD DATA INFILE`; tautologies after a
//!   logic operator, `WHERE` or `HAVING` (`or 1=1`, `' or 'a'='a`, `" or ""="`, `and x=x`); statements stacked
//!   after `;` or the break (`'; drop table t--`, `; exec master..`).
//! - **Medium** (recommended): what the break, a spliced number or the start of the value leads into — a logic
//!   operator with a condition (`' and 1=0`, `1 or x=y`, `' or sleep(1)`, `' and 1 in (select …`, `and 3*2=6`,
//!   `' or 5<`, `' or '1`), a comment or `;` right after the break (`admin'--`, `admin'#`), an operator and a
//!   comment (`x'^col--`), a comparison or concatenation (`'='`, `'||'`, `'-'`, `'+(select …)+'`), a clause
//!   (`' order by 3`, `' having 1=1`, `1 or 1 group by …`); statement shapes anywhere (`select * from t`,
//!   `select @@version`, `select count(`, `select 1,2`, `insert into t (`, `delete from t where`, `update t set c=`,
//!   `drop table t;`, `drop t;--`, `create table t (`, `exec master..`, `exec xp_…`, `declare @`, `;insert into`,
//!   `copy t from '…'`); `@@` system variables, system tables (`information_schema`, `sysobjects`, `pg_shadow`,
//!   `sqlite_master`…), SQL Server attack procedures (`xp_dirtree`, `sp_executesql`, `openrowset`), MySQL
//!   executable comments, PostgreSQL casts (`)::int`), a number compared after a logic operator anywhere
//!   (`… and 5>3`), `having count(`, `if(3=`, `in (1,2`. Query fragments only SQL writes: a column aliased in a
//!   select list (`) AS x FROM`, `` `a` AS `b` FROM ``), an inline comment in place of the blank next to a keyword
//!   (`select/**/pass/**/from`), a function given a hex literal or nested in a call or a select (`concat(0x3a,`,
//!   `lower(version(`, `select(user(`), `select 0x…`, `CHAR(107,…`, the whole value a bare call left open
//!   (`concat(`, `sleep (`), `<=>` on a literal, a tautology at the start of a value or a list (`1=1`,
//!   `x,'a'='a'`, `11!=1`), literals matched by `LIKE`/`IS NOT` at the start (`4 like 4`, `1 is not 2`),
//!   `VALUES ('…'`, `) like (`, `` `db`.`table` ``, `FROM t WHERE c = '…'`, `SELECT c FROM t WHERE c =`,
//!   `IN (SELECT c FROM`, `LIKE p ESCAPE '…'`, `SELECT 'x'||`, PostgreSQL's JSON operators after a logic operator
//!   (`or '{…}' ? 'k'`, `-> '$.a'`), and after the break a comparison word before a comment (`x' notnull--`),
//!   `x'or'y` written with no blank, `',NULL)`. A quote after a backslash is also read as closing the string
//!   (SQLite, PostgreSQL and SQL Server do not escape with a backslash): a fourth pass, only when the value holds
//!   `\'` or `\"`.
//! - **High**: weak signals too — a value made of a lone quote (`'`, `1'`), a condition after a logic operator that
//!   follows a plain word (`name or a=b`, `1 or 2`), a SQL function called (`char(`, `count(`), a bare statement
//!   verb after `;` (`; drop`), `select c from t` unstacked, `set @v`.
//!
//! Prose keeps clear at Medium: `union was a great select`, `O'Brien's`, `select a plan`, `1) a-b=c`,
//! `D'or 1st parfume`, `drop-down`, `union station`, `students' union`, `he said 'yes' or 'no'` make none of
//! these shapes.

mod lexer;
mod words;

use super::{Sensitivity, Subject};
use lexer::{Kind, Lexer, Token};
use words::Word;

/// How sure a shape is: the lowest sensitivity that reports it.
type Level = u8;
const LOW: Level = 0;
const MEDIUM: Level = 1;
const HIGH: Level = 2;
const NOTHING: Level = 3;

/// Tokens the sliding window keeps (the longest shape looked back over).
const WINDOW: usize = 8;
/// Tokens kept from the start of the value, for the shapes anchored there.
const HEAD: usize = 16;

/// Whether `subject` carries a SQL injection at `sensitivity`.
pub fn detect(subject: &Subject<'_>, sensitivity: Sensitivity) -> bool {
    let wanted = match sensitivity {
        Sensitivity::Low => LOW,
        Sensitivity::Medium => MEDIUM,
        Sensitivity::High => HIGH,
    };
    level(subject.lower, wanted) <= wanted
}

/// The lowest level at which `text` (lower case) reports, or [`NOTHING`]; it stops looking once a shape at
/// `enough` or lower is found.
fn level(text: &[u8], enough: Level) -> Level {
    if let Some(level) = one_token(text) {
        return level;
    }
    let mut best = judge(text, None, enough, true);
    for quote in [b'\'', b'"'] {
        // 0xe2: the typographic forms of a single quote (see the lexer).
        let holds = if quote == b'\'' { memchr::memchr2(quote, 0xe2, text) } else { memchr::memchr(quote, text) };
        if best > enough && holds.is_some() {
            best = best.min(judge(text, Some(quote), enough, true));
            // `\'` closes the string where a backslash is an ordinary byte (SQLite, PostgreSQL, SQL Server).
            if best > enough && memchr::memmem::find(text, &[b'\\', quote]).is_some() {
                best = best.min(judge(text, Some(quote), enough, false));
            }
        }
    }
    best
}

/// The level of a value the lexer reads as one token and nothing else (most values: `2`, `price_asc`, `en`), or
/// `None` for any other value. Digits alone are one number; a letter or `_` followed by letters, digits and `_` is
/// one word. No shape of two tokens or more can match either, and a quoted context needs a quote, so only the
/// shapes of one word are left: a system table, SQL Server's attack procedures, `xp_cmdshell` (what the full judge
/// finds for them, without building it).
fn one_token(text: &[u8]) -> Option<Level> {
    let first = *text.first()?;
    if text.iter().all(u8::is_ascii_digit) {
        return Some(NOTHING);
    }
    if !(first.is_ascii_lowercase() || first == b'_')
        || !text.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        return None;
    }
    Some(match Word::of(text) {
        Word::Danger if text == b"xp_cmdshell" => LOW,
        Word::SystemObject => MEDIUM,
        _ if words::is_mssql_attack_procedure(text) => MEDIUM,
        _ => NOTHING,
    })
}

/// The judge of one context: the window, the head, and the best level found so far.
struct Judge<'a> {
    lexer: Lexer<'a>,
    window: [Token; WINDOW],
    /// Tokens seen so far.
    seen: usize,
    head: [Token; HEAD],
    best: Level,
}

/// The lowest level `text` reports at in one context (as-is, or after `quote`), stopping at `enough`.
fn judge(text: &[u8], quote: Option<u8>, enough: Level, backslash: bool) -> Level {
    let mut judge = Judge {
        lexer: Lexer::new(text, quote, backslash),
        window: [Token::NONE; WINDOW],
        seen: 0,
        head: [Token::NONE; HEAD],
        best: NOTHING,
    };
    loop {
        let token = judge.lexer.next_token();
        judge.push(token);
        if token.kind == Kind::End || judge.best <= enough {
            break;
        }
    }
    if judge.lexer.saw_executable {
        judge.hit(MEDIUM);
    }
    judge.judge_head();
    judge.best
}

impl<'a> Judge<'a> {
    /// Records a shape found at `level`.
    fn hit(&mut self, level: Level) {
        self.best = self.best.min(level);
    }

    /// The token `k` back from the newest (0 is the newest).
    fn back(&self, k: usize) -> Token {
        if k >= self.seen || k >= WINDOW {
            return Token::NONE;
        }
        self.window.get((self.seen - 1 - k) % WINDOW).copied().unwrap_or(Token::NONE)
    }

    /// The text of a token.
    fn text(&self, token: Token) -> &'a [u8] {
        self.lexer.text(token)
    }

    /// Takes the next token into the head and the window, and judges the shapes that end with it.
    fn push(&mut self, token: Token) {
        if let Some(slot) = self.head.get_mut(self.seen) {
            *slot = token;
        }
        if let Some(slot) = self.window.get_mut(self.seen % WINDOW) {
            *slot = token;
        }
        self.seen += 1;
        self.judge_window();
    }

    /// Whether a statement shape ending `k` back was stacked: right after a `;` or the break.
    fn stacked(&self, k: usize) -> bool {
        matches!(self.back(k).kind, Kind::Semi | Kind::Break)
    }

    /// The shapes that end at the newest token, wherever they are in the value.
    fn judge_window(&mut self) {
        let t0 = self.back(0);
        let t1 = self.back(1);
        let t2 = self.back(2);
        let t3 = self.back(3);
        let stmt = |stacked: bool| if stacked { LOW } else { MEDIUM };
        match t0.kind {
            Kind::Open => match t1.kind {
                Kind::Word(Word::Danger) => self.hit(LOW),
                Kind::Word(w) if w.is_function() && t2.is(Word::Select) => self.hit(MEDIUM),
                // A SQL function called (`char(`, `count(`, `sleep (` with no number): a weak signal alone.
                Kind::Word(w) if w.is_function() => self.hit(HIGH),
                // PROCEDURE ANALYSE(
                Kind::Word(Word::Plain) if t2.is(Word::Procedure) => self.hit(MEDIUM),
                _ => {}
            },
            Kind::Close if t1.kind == Kind::Num && t2.kind == Kind::Open && t3.is(Word::Sleep) => self.hit(LOW),
            Kind::Str if (t1.is(Word::Delay) || t1.is(Word::Time)) && t2.is(Word::Waitfor) => self.hit(LOW),
            Kind::Word(Word::Infile) if t1.is(Word::Data) || t2.is(Word::Data) => self.hit(LOW),
            Kind::Word(Word::Outfile) if t1.is(Word::Into) => self.hit(LOW),
            Kind::Word(Word::Danger) if self.text(t0) == b"xp_cmdshell" => self.hit(LOW),
            // utl_http.request(, dbms_pipe.receive_message(
            Kind::Dot if t1.is(Word::Danger) => self.hit(LOW),
            Kind::Word(Word::Niladic) if t1.is(Word::Select) => self.hit(MEDIUM),
            Kind::Word(Word::SystemObject) => self.hit(MEDIUM),
            // SQL Server's extended and system procedures, and its ad hoc remote queries.
            Kind::Word(_) if words::is_mssql_attack_procedure(self.text(t0)) => self.hit(MEDIUM),
            // `… or--`: a condition cut short by a comment.
            Kind::Comment if t1.is_logic() && matches!(t2.kind, Kind::Str | Kind::Num | Kind::Close) => {
                self.hit(MEDIUM)
            }
            Kind::Word(Word::ObjectKind) if t1.kind == Kind::Dot && self.text(t2) == b"mysql" => self.hit(MEDIUM),
            Kind::Word(Word::ObjectKind) if t1.is(Word::Backup) => self.hit(MEDIUM),
            Kind::SysVar => self.hit(MEDIUM),
            Kind::Var if t1.is(Word::Declare) => self.hit(stmt(self.stacked(2))),
            // SET @variable: MEDIUM when stacked, else a weak signal.
            Kind::Var if t1.is(Word::Set) => self.hit(if self.stacked(2) { MEDIUM } else { HIGH }),
            // PostgreSQL casts: `)::int`, `'1'::text`.
            Kind::Word(_)
                if t1.kind == Kind::Other
                    && t2.kind == Kind::Other
                    && self.text(t1) == b":"
                    && self.text(t2) == b":"
                    && matches!(self.back(3).kind, Kind::Close | Kind::Str | Kind::Num | Kind::Word(_))
                    && matches!(
                        self.text(t0),
                        b"int"
                            | b"integer"
                            | b"text"
                            | b"varchar"
                            | b"numeric"
                            | b"json"
                            | b"jsonb"
                            | b"bigint"
                            | b"smallint"
                            | b"float"
                            | b"double"
                            | b"real"
                            | b"bool"
                            | b"boolean"
                            | b"regclass"
                            | b"oid"
                            | b"bytea"
                    ) =>
            {
                self.hit(MEDIUM)
            }
            _ => {}
        }
        self.judge_fragments(t0, t1, t2, t3);
        // UNION [ALL|DISTINCT] [(] SELECT and a column list (not `union select committee`, two plain words).
        if self.union_select(2) {
            let prose = t1.kind == Kind::Word(Word::Plain)
                && matches!(t0.kind, Kind::Word(Word::Plain) | Kind::End | Kind::Dot | Kind::Other);
            if !prose {
                self.hit(LOW);
            }
        }
        if self.union_select(1) && t0.kind == Kind::End {
            self.hit(MEDIUM);
        }
        // SELECT (1), SELECT (SELECT …), SELECT ('a'): not `select (one) option`.
        if t2.is(Word::Select) && t1.kind == Kind::Open && (selects(t0) || t0.is(Word::Select) || t0.kind == Kind::Str)
        {
            self.hit(MEDIUM);
        }
        // SELECT followed by what only a query selects: a variable, a time function, or `*` from a table, or `*`
        // alone.
        if t1.is(Word::Select) && matches!(t0.kind, Kind::Var | Kind::SysVar | Kind::Word(Word::Danger | Word::Sleep)) {
            self.hit(MEDIUM);
        }
        let text = self.lexer.text_all();
        let star = |t: Token| t.kind == Kind::Arith && text.get(t.start..t.end) == Some(b"*");
        if star(t1) && t2.is(Word::Select) && matches!(t0.kind, Kind::End | Kind::Comment | Kind::Semi | Kind::Comma) {
            self.hit(MEDIUM);
        }
        if star(t2) && self.back(3).is(Word::Select) && t1.is(Word::From) && t0.kind == Kind::End {
            self.hit(MEDIUM);
        }
        if self.back(4).is(Word::Select)
            && star(t3)
            && t2.is(Word::From)
            && matches!(t1.kind, Kind::Word(Word::Plain | Word::ObjectKind | Word::SystemObject))
            && (matches!(t0.kind, Kind::End | Kind::Comment | Kind::Semi | Kind::Close | Kind::Comma | Kind::Dot)
                || matches!(t0.kind, Kind::Word(Word::Where | Word::Limit | Word::Order | Word::Group | Word::Union)))
        {
            self.hit(MEDIUM);
        }
        if t2.is(Word::Select)
            && matches!(t1.kind, Kind::Num | Kind::Str | Kind::Word(Word::Null))
            && matches!(
                t0.kind,
                Kind::Comma | Kind::Word(Word::Into) | Kind::Comment | Kind::Semi | Kind::Word(Word::Union)
            )
        {
            self.hit(stmt(self.stacked(3)));
        }
        // SELECT column FROM table: prose can say it ("select one from below"), so only stacked is MEDIUM.
        if self.back(4).is(Word::Select)
            && matches!(t3.kind, Kind::Word(Word::Plain))
            && t2.is(Word::From)
            && matches!(t1.kind, Kind::Word(Word::Plain | Word::ObjectKind))
            && (matches!(t0.kind, Kind::End | Kind::Comment | Kind::Semi)
                || matches!(t0.kind, Kind::Word(Word::Where | Word::Limit | Word::Order | Word::Group | Word::Union)))
        {
            self.hit(if self.stacked(5) { MEDIUM } else { HIGH });
        }
        // EXEC of a system procedure, an expression, a variable or a string.
        if t1.is(Word::Exec)
            && (matches!(t0.kind, Kind::Open | Kind::Var | Kind::Str)
                || self.text(t0) == b"immediate"
                || (matches!(t0.kind, Kind::Word(_)) && words::is_mssql_procedure(self.text(t0))))
        {
            self.hit(stmt(self.stacked(2)));
        }
        let ident = |t: Token| matches!(t.kind, Kind::Word(Word::Plain) | Kind::Word(Word::ObjectKind));
        let ends = |t: Token| matches!(t.kind, Kind::End | Kind::Semi | Kind::Comment);
        // Statements with their object: INSERT INTO t (, DELETE FROM t WHERE, DROP TABLE t;, CREATE TABLE t (...
        if ident(t1) {
            if t2.is(Word::Into)
                && t3.is(Word::Insert)
                && matches!(t0.kind, Kind::Open | Kind::Word(Word::Values | Word::Select))
            {
                self.hit(stmt(self.stacked(4)));
            }
            if t2.is(Word::From) && t3.is(Word::Delete) && (ends(t0) || t0.is(Word::Where)) {
                self.hit(stmt(self.stacked(4)));
            }
            if t2.is(Word::ObjectKind) {
                let stacked = self.stacked(4);
                match t3.kind {
                    Kind::Word(Word::Drop | Word::Truncate) if ends(t0) || t0.kind == Kind::Comma || stacked => {
                        self.hit(stmt(stacked))
                    }
                    Kind::Word(Word::Create)
                        if matches!(t0.kind, Kind::Open | Kind::Word(Word::As | Word::Identified))
                            || (stacked && ends(t0)) =>
                    {
                        self.hit(stmt(stacked))
                    }
                    Kind::Word(Word::Alter) if matches!(t0.kind, Kind::Word(_)) => self.hit(stmt(stacked)),
                    _ => {}
                }
            }
        }
        // UPDATE t SET c =
        if t0.kind == Kind::Cmp && ident(t1) && t2.is(Word::Set) && ident(t3) && self.back(4).is(Word::Update) {
            self.hit(stmt(self.stacked(5)));
        }
        // DROP t;--, DROP t-- (a bare DROP t is prose too: HIGH).
        if t2.is(Word::Drop) && ident(t1) && matches!(t0.kind, Kind::Semi | Kind::Comment | Kind::End) {
            // `drop it #lazy` is a hashtag; `drop t;`, `drop t--` a statement.
            let weak = (t0.kind == Kind::End || self.text(t0).first() == Some(&b'#')) && !self.stacked(3);
            self.hit(if weak { HIGH } else { MEDIUM });
        }
        // ;DROP, ;INSERT INTO, ;UPDATE t: a statement stacked with nothing else to judge (the verb alone is weak).
        if t1.kind == Kind::Semi
            && matches!(t0.kind, Kind::Word(Word::Drop | Word::Insert | Word::Delete | Word::Truncate | Word::Shutdown))
        {
            self.hit(HIGH);
        }
        if self.back(2).kind == Kind::Semi
            && ((t1.is(Word::Drop) && matches!(t0.kind, Kind::End | Kind::Comment | Kind::Word(Word::ObjectKind)))
                || (t1.is(Word::Insert) && t0.is(Word::Into))
                || (t1.is(Word::Delete) && t0.is(Word::From)))
        {
            self.hit(MEDIUM);
        }
        if t3.kind == Kind::Semi && t2.is(Word::Update) && ident(t1) && (ends(t0) || t0.is(Word::Set)) {
            self.hit(MEDIUM);
        }
        // HAVING count(, IF(2=
        if t0.kind == Kind::Open && t2.is(Word::Having) && matches!(t1.kind, Kind::Word(w) if w.is_function()) {
            self.hit(MEDIUM);
        }
        if t0.kind == Kind::Cmp
            && t1.kind == Kind::Num
            && t2.kind == Kind::Open
            && matches!(self.text(t3), b"if" | b"iif")
        {
            self.hit(MEDIUM);
        }
        // SHUTDOWN, stacked.
        if t1.is(Word::Shutdown) && ends(t0) && self.stacked(2) {
            self.hit(MEDIUM);
        }
        // COPY t FROM '/file'
        if t0.kind == Kind::Str && (t1.is(Word::From) || self.text(t1) == b"to") && ident(t2) && t3.is(Word::Copy) {
            self.hit(MEDIUM);
        }
        // A number compared after a logic operator, anywhere: `… and 5>(`, `… or 3!="`.
        if t1.kind == Kind::Cmp
            && t2.kind == Kind::Num
            && (t3.is_logic() || t3.is(Word::Where) || t3.is(Word::Having))
            && (is_operand(t0) || matches!(t0.kind, Kind::Str | Kind::End))
        {
            self.hit(MEDIUM);
        }
        // A comparison after a logic operator, WHERE, HAVING or an opening parenthesis: `or 1=1`, `and 1=0`.
        if t1.kind == Kind::Cmp && self.text(t1) == b"=" && is_literal(t0) && is_literal(t2) {
            let before = if t3.kind == Kind::Open { self.back(4) } else { t3 };
            let same = t0.kind == t2.kind && self.text(t0) == self.text(t2)
                || (t0.kind != Kind::Word(Word::Plain)
                    && t2.kind != Kind::Word(Word::Plain)
                    && self.text(t0) == self.text(t2));
            if before.is_logic() || before.is(Word::Where) || before.is(Word::Having) {
                if same {
                    self.hit(LOW);
                } else if t0.kind != Kind::Word(Word::Plain) && t2.kind != Kind::Word(Word::Plain) {
                    self.hit(MEDIUM);
                } else {
                    self.hit(HIGH);
                }
            } else if same && t3.kind == Kind::Open && t0.kind != Kind::Word(Word::Plain) {
                // IF(7=7), (1=1)
                self.hit(MEDIUM);
            }
        }
    }

    /// Shapes of query fragments that only SQL writes: aliases, encodings, inline comments in place of blanks,
    /// operators and calls no prose has.
    fn judge_fragments(&mut self, t0: Token, t1: Token, t2: Token, t3: Token) {
        let text = self.lexer.text_all();
        let ident = |t: Token| matches!(t.kind, Kind::Word(Word::Plain | Word::ObjectKind));
        // `) AS name FROM`, `` `a` AS `b` FROM ``, `1234 AS "x" FROM`: a column aliased in a select list.
        // What follows FROM must be a table or nothing, and a quote somewhere, for `(below) as well from now` to
        // stay prose.
        if t1.is(Word::From)
            && (ident(t2) || t2.kind == Kind::Str)
            && t3.is(Word::As)
            && (matches!(self.back(4).kind, Kind::Close | Kind::Num)
                || (ident(self.back(4)) && backticked(text, self.back(4))))
            && (matches!(t0.kind, Kind::End | Kind::Comment | Kind::Semi | Kind::Word(Word::SystemObject))
                || (ident(t0) && backticked(text, t0))
                || t2.kind == Kind::Str
                || backticked(text, t2)
                || backticked(text, self.back(4)))
        {
            self.hit(MEDIUM);
        }
        // `select/**/password/**/from`, `drop/*x*/t`: an inline comment in place of the blank next to a keyword.
        if t1.end + 4 <= t0.start
            && matches!(t0.kind, Kind::Word(_))
            && matches!(t1.kind, Kind::Word(_))
            && (is_clause(t0) || is_clause(t1))
            && text.get(t1.end..t1.end + 2) == Some(b"/*")
            && t0.start.checked_sub(2).and_then(|at| text.get(at..t0.start)) == Some(b"*/")
        {
            self.hit(MEDIUM);
        }
        let hex = |t: Token| t.kind == Kind::Num && text.get(t.start..t.start + 2) == Some(b"0x");
        let function = |t: Token| {
            matches!(t.kind, Kind::Word(_)) && words::is_sql_function(text.get(t.start..t.end).unwrap_or_default())
        };
        // A function given a hex literal (`concat(0x3a,`, `unhex(0x41)`), `select 0x…`.
        if hex(t0) && ((t1.kind == Kind::Open && function(t2)) || t1.is(Word::Select)) {
            self.hit(MEDIUM);
        }
        // CHAR(65,66…): a string spelled in character codes.
        if t0.kind == Kind::Comma
            && t1.kind == Kind::Num
            && t2.kind == Kind::Open
            && matches!(self.text(t3), b"char" | b"chr" | b"nchar")
        {
            self.hit(MEDIUM);
        }
        // A call nested in a call or a select: `concat(version(`, `select(user(`.
        if t0.kind == Kind::Open && function(t1) && t2.kind == Kind::Open && (function(t3) || t3.is(Word::Select)) {
            self.hit(MEDIUM);
        }
        // `1<=>1`: MySQL's null-safe equality on a literal (`a <=> b` is how a text names the operator).
        if t1.kind == Kind::Cmp
            && self.text(t1) == b"<=>"
            && is_operand(t0)
            && is_operand(t2)
            && (t0.kind != Kind::Word(Word::Plain) || t2.kind != Kind::Word(Word::Plain))
        {
            self.hit(MEDIUM);
        }
        // A tautology at the start of the value or a list: `1=1`, `b,'1'='1'`, `11!=1`.
        if matches!(t3.kind, Kind::None | Kind::Comma)
            && t1.kind == Kind::Cmp
            && t0.kind == t2.kind
            && matches!(t0.kind, Kind::Num | Kind::Str)
        {
            let same = self.text(t0) == self.text(t2);
            let equal = matches!(self.text(t1), b"=" | b"==");
            let unequal = matches!(self.text(t1), b"!=" | b"<>");
            if (same && equal) || (!same && unequal && t0.kind == Kind::Num) {
                self.hit(MEDIUM);
            }
        }
        // `` `db`.`table` ``: a qualified name quoted the way only MySQL writes it.
        if t1.kind == Kind::Dot && ident(t0) && ident(t2) && backticked(text, t0) && backticked(text, t2) {
            self.hit(MEDIUM);
        }
        // FROM t WHERE c = '…': the tail of a query, with its quoted literal.
        if t0.kind == Kind::Str
            && t1.kind == Kind::Cmp
            && ident(t2)
            && t3.is(Word::Where)
            && ident(self.back(4))
            && self.back(5).is(Word::From)
        {
            self.hit(MEDIUM);
        }
        // SELECT c FROM t WHERE c =: a whole query, which prose does not spell with one word on each side.
        if t0.kind == Kind::Cmp
            && ident(t1)
            && t2.is(Word::Where)
            && ident(t3)
            && self.back(4).is(Word::From)
            && ident(self.back(5))
            && self.back(6).is(Word::Select)
        {
            self.hit(MEDIUM);
        }
        // SELECT 'x'||: a string concatenated in a select list (Oracle, PostgreSQL).
        if t2.is(Word::Select) && t1.kind == Kind::Str && t0.kind == Kind::LogicOp && self.text(t0) == b"||" {
            self.hit(MEDIUM);
        }
        // At the start of the value, a literal matched against a literal: `4 like 4`, `'a' not regexp 'b'`,
        // `1 is not 2`.
        let literal = |t: Token| matches!(t.kind, Kind::Num | Kind::Str);
        let start = |k: usize| self.seen == k + 1;
        if literal(t0)
            && ((t1.is(Word::Like) && t0.kind == Kind::Num && t2.kind == Kind::Num && start(2))
                || (t1.is(Word::Like) && t2.is(Word::Not) && literal(t3) && start(3))
                || (t1.is(Word::Not) && t2.is(Word::Is) && literal(t3) && t0.kind == t3.kind && start(3)))
        {
            self.hit(MEDIUM);
        }
        // IN (SELECT c FROM: a subquery.
        if t0.is(Word::From) && ident(t1) && t2.is(Word::Select) && t3.kind == Kind::Open && self.back(4).is(Word::In) {
            self.hit(MEDIUM);
        }
        // LIKE pattern ESCAPE '…': the clause that names a LIKE's escape character.
        if t0.kind == Kind::Str && self.text(t1) == b"escape" && t3.is(Word::Like) {
            self.hit(MEDIUM);
        }
        // VALUES ('…', an INSERT's row.
        if t0.kind == Kind::Str && t1.kind == Kind::Open && t2.is(Word::Values) {
            self.hit(MEDIUM);
        }
        // `) like (`: two expressions compared by pattern.
        if t3.kind == Kind::Close
            && t2.is(Word::Like)
            && t1.kind == Kind::Open
            && matches!(t0.kind, Kind::End | Kind::Num | Kind::Str | Kind::Word(Word::Select))
        {
            self.hit(MEDIUM);
        }
    }

    /// Whether the token `k` back is a SELECT after UNION [ALL|DISTINCT], with parentheses between.
    fn union_select(&self, k: usize) -> bool {
        if !self.back(k).is(Word::Select) {
            return false;
        }
        let mut k = k + 1;
        while self.back(k).kind == Kind::Open {
            k += 1;
        }
        if self.back(k).is(Word::All) || self.back(k).is(Word::Distinct) {
            k += 1;
        }
        self.back(k).is(Word::Union)
    }

    /// The shapes anchored at the start of the value: what follows the break (or a leading number).
    fn judge_head(&mut self) {
        let head = self.head;
        let at = |i: usize| head.get(i).copied().unwrap_or(Token::NONE);
        let mut i = 0;
        let quoted = at(0).kind == Kind::Break;
        let mut plain_lead = false;
        match at(0).kind {
            Kind::Break | Kind::Num => i = 1,
            // -1, +1
            Kind::Arith if at(1).kind == Kind::Num && matches!(self.text(at(0)), b"-" | b"+") => i = 2,
            Kind::Word(Word::Plain) | Kind::Str => {
                plain_lead = true;
                i = 1;
            }
            _ => {}
        }
        while at(i).kind == Kind::Close {
            i += 1;
        }
        let p0 = at(i);
        let p1 = at(i + 1);
        let p2 = at(i + 2);
        let rest = head.get(i + 1..).unwrap_or_default();
        // 'a'='b in a numeric context.
        if at(0).kind == Kind::Str && at(1).kind == Kind::Cmp && at(2).kind == Kind::Str {
            self.hit(MEDIUM);
        }
        // IN (1,2): a list only a query takes.
        if at(0).is(Word::In) && at(1).kind == Kind::Open && at(2).kind == Kind::Num && at(3).kind == Kind::Comma {
            self.hit(MEDIUM);
        }
        if p0.is_logic() || p0.is(Word::Having) || p0.is(Word::Where) {
            let level = self.judge_condition(rest);
            // `1 or 2`, `5 and 6` are quantities in prose; after a break or at the start they are a probe.
            let bare = !quoted && i > 0 && matches!(p1.kind, Kind::Num) && p2.kind == Kind::End;
            self.hit(if (plain_lead || bare) && level == MEDIUM { HIGH } else { level });
        }
        // ORDER BY 3, GROUP BY sleep(…), ' ORDER BY col-- (not `order by phone`).
        if (p0.is(Word::Order) || p0.is(Word::Group)) && p1.is(Word::By) {
            let p3 = at(i + 3);
            match p2.kind {
                Kind::Num if matches!(p3.kind, Kind::End | Kind::Comment | Kind::Comma | Kind::Semi | Kind::Close) => {
                    self.hit(MEDIUM)
                }
                Kind::Word(w) if w.is_function() && p3.kind == Kind::Open => self.hit(MEDIUM),
                Kind::Word(_) if quoted && matches!(p3.kind, Kind::Comment | Kind::Comma) => self.hit(MEDIUM),
                _ => {}
            }
        }
        // The whole value a call left open (`concat(`, `version (`): a probe for the functions a query accepts.
        if matches!(at(0).kind, Kind::Word(_))
            && at(1).kind == Kind::Open
            && at(2).kind == Kind::End
            && words::is_sql_function(self.text(at(0)))
        {
            self.hit(MEDIUM);
        }
        if !quoted {
            return;
        }
        let lone = self.text(at(0)).iter().all(|b| b.is_ascii_digit() || is_blank(*b));
        // An operator right after the break, and the rest of the query commented out: `x'^col--`, `x' mod id--`.
        let operator = matches!(p0.kind, Kind::Arith | Kind::Cmp | Kind::LogicOp)
            || p0.is(Word::Not)
            || p0.is_logic()
            || matches!(p0.kind, Kind::Word(w) if w.is_comparison())
            || matches!(self.text(p0), b"mod" | b"div" | b"collate" | b"notnull" | b"isnull");
        if operator && head.get(i + 1..i + 5).unwrap_or_default().iter().any(|t| t.kind == Kind::Comment) {
            self.hit(MEDIUM);
        }
        // A condition after the break whose end is commented out: `' and col = all (select …)--`.
        if p0.is_logic() && head.get(i + 1..).unwrap_or_default().iter().any(|t| t.kind == Kind::Comment) {
            self.hit(MEDIUM);
        }
        // `x'or'y`: a logic operator written between two quotes with no blank, which only an injection does.
        if p0.is_logic()
            && i == 1
            && p0.start == at(0).end + 1
            && p1.kind == Kind::Str
            && p1.start == p0.end + 1
            && self.text(at(0)).last().is_none_or(|b| !is_blank(*b))
            && self.text(p1).first().is_some_and(|b| !is_blank(*b))
        {
            self.hit(MEDIUM);
        }
        // `',NULL)`, `'),NULL,NULL`: the break closes a value and adds columns to an INSERT's row or a select.
        if p0.kind == Kind::Comma && p1.is(Word::Null) && matches!(p2.kind, Kind::Close | Kind::Comma) {
            self.hit(MEDIUM);
        }
        // What the break was: one word (`admin'`) rather than a phrase (`my students'`).
        let one_word = !self.text(at(0)).trim_ascii().iter().any(|b| is_blank(*b));
        match p0.kind {
            // admin'--, admin'#: a hashtag after a phrase (`my students' #1`) is prose.
            Kind::Comment if one_word || self.text(p0).get(1).is_none_or(|b| !b.is_ascii_alphanumeric()) => {
                self.hit(MEDIUM)
            }
            Kind::Comment => self.hit(HIGH),
            // ';' and a statement, a comment or nothing (not `students'; teachers`).
            Kind::Semi if !matches!(p1.kind, Kind::Word(Word::Plain)) => self.hit(MEDIUM),
            Kind::Cmp => self.hit(MEDIUM),
            Kind::Word(Word::Like) if matches!(p1.kind, Kind::Str | Kind::Num | Kind::Open | Kind::Var) => {
                self.hit(MEDIUM)
            }
            Kind::Word(Word::Declare) if matches!(p1.kind, Kind::Var) => self.hit(MEDIUM),
            Kind::Word(Word::Waitfor) if p1.is(Word::Delay) || p1.is(Word::Time) => self.hit(MEDIUM),
            // ' sleep(20) ': a function called in place of the string.
            Kind::Word(Word::Danger | Word::Sleep) if p1.kind == Kind::Open => self.hit(MEDIUM),
            // '||…||' concatenates into the application's string.
            Kind::LogicOp if self.text(p0) == b"||" => self.hit(MEDIUM),
            // '-', '*', '&': arithmetic on two empty strings.
            Kind::Arith if p1.kind == Kind::Str => self.hit(MEDIUM),
            // '+(select …)+', '||(…)||': an expression concatenated into the application's string.
            Kind::Arith | Kind::LogicOp if p1.kind == Kind::Open && (p2.is(Word::Select) || selects(p2)) => {
                self.hit(MEDIUM)
            }
            // ' ': the value is a string that the application's quote closes.
            Kind::Str if lone && p1.kind == Kind::End && self.text(p0).iter().all(|b| is_blank(*b)) => self.hit(MEDIUM),
            Kind::Word(Word::Select) if selects(p1) || self.text(p1) == b"*" => self.hit(MEDIUM),
            Kind::Word(Word::Insert) if p1.is(Word::Into) => self.hit(MEDIUM),
            Kind::Word(Word::Delete) if p1.is(Word::From) => self.hit(MEDIUM),
            Kind::Word(Word::Drop | Word::Create | Word::Alter | Word::Truncate) if p1.is(Word::ObjectKind) => {
                self.hit(MEDIUM)
            }
            Kind::Word(Word::Grant) if matches!(self.text(p2), b"to" | b"on") => self.hit(MEDIUM),
            Kind::Word(Word::Limit | Word::Procedure) if p1.kind == Kind::Num => self.hit(MEDIUM),
            Kind::Word(Word::Into) if p1.is(Word::Outfile) => self.hit(LOW),
            Kind::End if lone => self.hit(HIGH),
            _ => {}
        }
    }

    /// What a condition after a logic operator (`tokens`) is worth.
    fn judge_condition(&self, tokens: &[Token]) -> Level {
        let at = |i: usize| tokens.get(i).copied().unwrap_or(Token::NONE);
        let mut i = 0;
        if at(i).is(Word::Not) {
            i += 1;
        }
        let opened = at(i).kind == Kind::Open && at(i + 1).kind != Kind::Word(Word::Select);
        while at(i).kind == Kind::Open && at(i + 1).kind != Kind::Word(Word::Select) {
            i += 1;
        }
        let a = at(i);
        // Past the closing parentheses of `('x')=('x`.
        let mut j = i + 1;
        while opened && at(j).kind == Kind::Close {
            j += 1;
        }
        let b = at(j);
        let mut k = j + 1;
        while at(k).kind == Kind::Open {
            k += 1;
        }
        let c = at(k);
        if is_operand(a) && b.kind == Kind::Cmp && is_operand(c) {
            return if a.kind == c.kind && self.text(a) == self.text(c) && a.kind != Kind::Open { LOW } else { MEDIUM };
        }
        // An expression the application's own quote or query completes: `' or 5<`, `xor 7-`.
        if is_operand(a) && matches!(b.kind, Kind::Cmp | Kind::Arith) && c.kind == Kind::End {
            return MEDIUM;
        }
        let b = at(i + 1);
        let negated = if b.is(Word::Not) { at(i + 2) } else { b };
        // `id is null`, `x in (`, `1 like 1` (not `kids in school`).
        if is_operand(a) && matches!(negated.kind, Kind::Word(w) if w.is_comparison()) {
            let next = if b.is(Word::Not) { at(i + 3) } else { at(i + 2) };
            let plain = matches!(a.kind, Kind::Word(Word::Plain));
            if !plain || matches!(next.kind, Kind::Num | Kind::Str | Kind::Open | Kind::Word(Word::Null | Word::Not)) {
                return MEDIUM;
            }
        }
        // Arithmetic then a comparison: `and 3*2=6`.
        if matches!(a.kind, Kind::Num | Kind::Str) {
            let mut k = i + 1;
            while at(k).kind == Kind::Arith && is_operand(at(k + 1)) && k < i + 9 {
                k += 2;
            }
            if k > i + 1 && at(k).kind == Kind::Cmp {
                return MEDIUM;
            }
        }
        // PostgreSQL's JSON operators between strings: `or '{…}' ? 'k'`, `?|`, `?&`, `-> '$.a'`, `->> 'k'`.
        if a.kind == Kind::Str {
            let json = match (self.text(at(i + 1)), self.text(at(i + 2))) {
                (b"?", b"|" | b"&") | (b"-", b">" | b">>") => at(i + 3),
                (b"?", _) => at(i + 2),
                _ => Token::NONE,
            };
            if json.kind == Kind::Str || self.text(json) == b"array" {
                return MEDIUM;
            }
        }
        // `or ''-'`, `or '' '`: strings combined into the application's string.
        if a.kind == Kind::Str && (b.kind == Kind::Str || (b.kind == Kind::Arith && at(i + 2).kind == Kind::Str)) {
            return MEDIUM;
        }
        // '1 or '1=1: a string MySQL reads as a number, true.
        let short = |t: Token| self.text(t).first().is_none_or(|b| b.is_ascii_digit()) || self.text(t).len() <= 1;
        let literal =
            a.kind == Kind::Num || (a.kind == Kind::Str && short(a)) || matches!(a.kind, Kind::Word(w) if w.is_truth());
        if literal && matches!(b.kind, Kind::End | Kind::Comment | Kind::Semi) {
            return MEDIUM;
        }
        // A literal condition and then a clause: `or 1 group by …`, `and true order by 2`.
        if literal
            && matches!(
                b.kind,
                Kind::Word(
                    Word::Group | Word::Order | Word::Having | Word::Limit | Word::Union | Word::Procedure | Word::Into
                )
            )
        {
            return MEDIUM;
        }
        if a.kind == Kind::Str && matches!(b.kind, Kind::End | Kind::Comment | Kind::Semi) {
            return HIGH;
        }
        match a.kind {
            // A function called, known or not (`or sleep_custom(1)`).
            Kind::Word(_) if b.kind == Kind::Open => MEDIUM,
            Kind::Word(Word::Exists) if b.kind == Kind::Open => MEDIUM,
            Kind::Word(Word::Select) if selects(b) || self.text(b) == b"*" => MEDIUM,
            Kind::Open if b.is(Word::Select) => MEDIUM,
            // ODBC escapes and other punctuation no prose puts after `or`: `1 or {fn …}`.
            Kind::Other if matches!(self.text(a), b"{") => MEDIUM,
            Kind::SysVar => MEDIUM,
            _ => NOTHING,
        }
    }
}

/// Whether a token is a keyword that starts or joins a statement's clauses (not a name like `index` or `user`).
fn is_clause(t: Token) -> bool {
    matches!(
        t.kind,
        Kind::Word(
            Word::Union
                | Word::Select
                | Word::Insert
                | Word::Update
                | Word::Delete
                | Word::Drop
                | Word::Create
                | Word::Alter
                | Word::Truncate
                | Word::Exec
                | Word::Declare
                | Word::From
                | Word::Where
                | Word::Having
                | Word::Order
                | Word::Group
                | Word::By
                | Word::Limit
                | Word::Into
                | Word::Values
                | Word::And
                | Word::Or
                | Word::Xor
                | Word::Like
                | Word::Null
        )
    )
}

/// Whether a word was written between backticks (a quoted identifier, which only SQL writes).
fn backticked(text: &[u8], t: Token) -> bool {
    t.start.checked_sub(1).and_then(|at| text.get(at)) == Some(&b'`')
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Whether a token is what a SELECT (not the English verb) is followed by.
fn selects(t: Token) -> bool {
    matches!(t.kind, Kind::Num | Kind::Var | Kind::SysVar | Kind::Open)
        || matches!(t.kind, Kind::Word(w) if (w.is_function() && w != Word::ObjectKind)
            || matches!(w, Word::Null | Word::Distinct | Word::All))
}

/// A literal or a name that a comparison can test.
fn is_literal(t: Token) -> bool {
    matches!(
        t.kind,
        Kind::Num | Kind::Str | Kind::Word(Word::Plain) | Kind::Word(Word::True | Word::False | Word::Null)
    )
}

/// Anything that can stand on one side of a comparison.
fn is_operand(t: Token) -> bool {
    is_literal(t)
        || matches!(t.kind, Kind::Var | Kind::SysVar | Kind::Open)
        || matches!(t.kind, Kind::Word(w) if w.is_function())
}

#[cfg(test)]
mod tests;
