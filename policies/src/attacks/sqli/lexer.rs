//! A SQL lexer over one value, in the context the value lands in: as-is, or inside a string opened by a single or
//! double quote. It yields one token at a time (no buffer), never panics, and reads every byte at most twice.

use super::words::Word;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Nothing (before the first token).
    None,
    /// In a quote context, the text before the quote that closes the application's string.
    Break,
    /// A quoted string; `closed` says whether its closing quote is in the value.
    Str,
    /// A number.
    Num,
    /// An identifier or keyword.
    Word(Word),
    /// A user variable (`@name`).
    Var,
    /// A system variable (`@@version`).
    SysVar,
    /// A comparison (`=`, `<`, `<>`, `!=`, `<=>`...).
    Cmp,
    /// An arithmetic or bitwise operator, `*` included.
    Arith,
    /// `&&` or `||` (a logic operator, or string concatenation).
    LogicOp,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// `,`.
    Comma,
    /// `;`, which ends a statement.
    Semi,
    /// `.`.
    Dot,
    /// A comment that runs to the end of the value (`--`, `#`, an unclosed `/*`).
    Comment,
    /// Any other byte.
    Other,
    /// The end of the value.
    End,
}

/// One token: its kind and where its text is (for a string, its content without the quotes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Token {
    /// The token before any other.
    pub(super) const NONE: Token = Token { kind: Kind::None, start: 0, end: 0 };

    /// Whether the token is a word for `and`, `or`, `xor`, or `&&`/`||`.
    pub(super) fn is_logic(self) -> bool {
        match self.kind {
            Kind::Word(w) => w.is_logic(),
            Kind::LogicOp => true,
            _ => false,
        }
    }

    /// Whether the token is this word.
    pub(super) fn is(self, word: Word) -> bool {
        self.kind == Kind::Word(word)
    }
}

/// The lexer's state over one value.
pub(super) struct Lexer<'a> {
    text: &'a [u8],
    pos: usize,
    /// The quote that opened the application's string, until the value closes it.
    quote: Option<u8>,
    /// Whether a backslash escapes the next byte in a string (MySQL), or is an ordinary byte (SQLite, PostgreSQL's
    /// standard strings, SQL Server).
    backslash: bool,
    /// Inside a MySQL executable comment (`/*! ... */`), whose content MySQL runs as SQL.
    in_executable: bool,
    /// Whether the value has a MySQL executable comment.
    pub(super) saw_executable: bool,
    done: bool,
}

/// Whitespace to SQL, including the no-break space MySQL accepts between keywords (`union%a0select`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

fn is_word_byte(b: u8) -> bool {
    WORD_BYTES.get(usize::from(b)).copied().unwrap_or(false)
}

/// Which bytes continue a word (letters, digits, `_`, `$`, any byte of a UTF-8 sequence but the no-break space's
/// 0xa0): a table, since the lexer asks it of every byte of every word. Built at compile time, where an index out of
/// bounds would be a build error.
#[allow(clippy::indexing_slicing)]
static WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || (byte >= 0x80 && byte != 0xa0);
        b += 1;
    }
    table
};

impl<'a> Lexer<'a> {
    /// A lexer over `text` (lower case), which lands after `quote` (or as-is), in a dialect where a backslash
    /// escapes in strings or not.
    pub(super) fn new(text: &'a [u8], quote: Option<u8>, backslash: bool) -> Lexer<'a> {
        Lexer { text, pos: 0, quote, backslash, in_executable: false, saw_executable: false, done: false }
    }

    fn at(&self, i: usize) -> u8 {
        self.text.get(i).copied().unwrap_or(0)
    }

    /// The whole value.
    pub(super) fn text_all(&self) -> &'a [u8] {
        self.text
    }

    /// The text of a token.
    pub(super) fn text(&self, token: Token) -> &'a [u8] {
        self.text.get(token.start..token.end).unwrap_or_default()
    }

    fn token(&mut self, kind: Kind, start: usize, end: usize) -> Token {
        self.pos = end;
        Token { kind, start, end }
    }

    /// The next token; `End` from the end on.
    pub(super) fn next_token(&mut self) -> Token {
        let len = self.text.len();
        if self.done {
            return Token { kind: Kind::End, start: len, end: len };
        }
        if let Some(q) = self.quote.take() {
            // The value's first unescaped quote closes the application's string; no such quote: nothing to lex.
            match self.string_end(0, q) {
                Some(close) => {
                    let after = close + self.quote_len(close, q).max(1);
                    return self.token(Kind::Break, 0, close).with_pos(self, after);
                }
                None => {
                    self.done = true;
                    return Token { kind: Kind::End, start: len, end: len };
                }
            }
        }
        loop {
            let start = self.pos;
            let Some(&b) = self.text.get(start) else {
                self.done = true;
                return Token { kind: Kind::End, start: len, end: len };
            };
            let next = self.at(start + 1);
            match b {
                _ if is_space(b) => self.pos += 1,
                // U+00A0 in UTF-8.
                0xc2 if next == 0xa0 => self.pos += 2,
                b'/' if next == b'*' => {
                    if self.at(start + 2) == b'!' {
                        // MySQL runs what is inside `/*! ... */` (after an optional version number).
                        self.saw_executable = true;
                        self.in_executable = true;
                        let mut i = start + 3;
                        while self.at(i).is_ascii_digit() {
                            i += 1;
                        }
                        self.pos = i;
                    } else {
                        match find(self.text, start + 2, b"*/") {
                            Some(close) => self.pos = close + 2,
                            None => return self.comment(start),
                        }
                    }
                }
                b'*' if next == b'/' && self.in_executable => {
                    self.in_executable = false;
                    self.pos += 2;
                }
                b'-' | b'#' if b == b'#' || next == b'-' => {
                    // A line comment ends at a newline: what follows is SQL again (`union#\nselect`), so a
                    // comment with more SQL after it is whitespace, and one that ends the value is a token.
                    let rest = self.text.get(start..).unwrap_or_default();
                    match memchr::memchr(b'\n', rest) {
                        Some(nl) if !rest.iter().skip(nl).all(|b| is_space(*b)) => self.pos = start + nl + 1,
                        _ => return self.comment(start),
                    }
                }
                b'\'' | b'"' | 0xe2 if self.quote_len(start, b'\'') > 0 || b == b'"' => {
                    let quote = if b == b'"' { b'"' } else { b'\'' };
                    let open = self.quote_len(start, quote).max(1);
                    return match self.string_end(start + open, quote) {
                        Some(close) => {
                            let after = close + self.quote_len(close, quote).max(1);
                            self.token(Kind::Str, start + open, close).with_pos(self, after)
                        }
                        None => self.token(Kind::Str, start + open, len),
                    };
                }
                b'`' => {
                    let end = memchr::memchr(b'`', self.text.get(start + 1..).unwrap_or_default())
                        .map_or(len, |i| start + 1 + i);
                    // A quoted identifier is never a keyword, but can name a system table.
                    let word = match Word::of(self.text.get(start + 1..end).unwrap_or_default()) {
                        Word::SystemObject => Word::SystemObject,
                        _ => Word::Plain,
                    };
                    return self.token(Kind::Word(word), start + 1, end).with_pos(self, (end + 1).min(len));
                }
                b'0'..=b'9' => return self.number(start),
                b'.' if next.is_ascii_digit() => return self.number(start),
                b'@' => {
                    let (kind, from) = if next == b'@' { (Kind::SysVar, start + 2) } else { (Kind::Var, start + 1) };
                    let mut i = from;
                    while is_word_byte(self.at(i)) {
                        i += 1;
                    }
                    return self.token(if i == from { Kind::Other } else { kind }, start, i);
                }
                _ if is_word_byte(b) => {
                    let mut i = start + 1;
                    // A word ends at a byte that is not a word's, a no-break space or a typographic quote (the only
                    // quotes made of word bytes).
                    loop {
                        let c = self.at(i);
                        if !is_word_byte(c)
                            || (c == 0xc2 && self.at(i + 1) == 0xa0)
                            || (c == 0xe2 && self.quote_len(i, b'\'') > 0)
                        {
                            break;
                        }
                        i += 1;
                    }
                    let text = self.text.get(start..i).unwrap_or_default();
                    // N'…', X'…', B'…', E'…', _utf8'…': a string with a prefix, lexed as the string.
                    if self.at(i) == b'\'' && (matches!(text, b"n" | b"x" | b"b" | b"e") || text.first() == Some(&b'_'))
                    {
                        self.pos = i;
                        continue;
                    }
                    return self.token(Kind::Word(Word::of(text)), start, i);
                }
                b'=' => {
                    // `=`, and the `==`/`===` of languages whose expressions reach a query too.
                    let mut i = start + 1;
                    while self.at(i) == b'=' && i < start + 3 {
                        i += 1;
                    }
                    return self.token(Kind::Cmp, start, i);
                }
                b'<' | b'>' | b'!' => {
                    let mut i = start + 1;
                    while matches!(self.at(i), b'=' | b'>' | b'<') && i < start + 3 {
                        i += 1;
                    }
                    let kind = if b == b'!' && i == start + 1 { Kind::Arith } else { Kind::Cmp };
                    return self.token(kind, start, i);
                }
                b'&' | b'|' if next == b => return self.token(Kind::LogicOp, start, start + 2),
                b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'~' | b'&' | b'|' => {
                    return self.token(Kind::Arith, start, start + 1)
                }
                b'(' => return self.token(Kind::Open, start, start + 1),
                b')' => return self.token(Kind::Close, start, start + 1),
                b',' => return self.token(Kind::Comma, start, start + 1),
                b';' => return self.token(Kind::Semi, start, start + 1),
                b'.' => return self.token(Kind::Dot, start, start + 1),
                _ => return self.token(Kind::Other, start, start + 1),
            }
        }
    }

    /// Where the string opened before `from` by `quote` ends: a doubled quote or a backslash escapes it.
    fn string_end(&self, from: usize, quote: u8) -> Option<usize> {
        let mut i = from;
        loop {
            let rest = self.text.get(i..)?;
            // 0xe2 starts the typographic quotes that stand for a single quote.
            let hit = if quote == b'\'' {
                memchr::memchr3(quote, b'\\', 0xe2, rest)?
            } else {
                memchr::memchr2(quote, b'\\', rest)?
            };
            let at = i + hit;
            let here = self.quote_len(at, quote);
            // A backslash escapes the next byte; a doubled quote is a quote inside the string.
            if (self.backslash && self.at(at) == b'\\') || (here == 1 && self.at(at + 1) == quote) {
                i = at + 2;
            } else if here == 0 {
                i = at + 1;
            } else {
                return Some(at);
            }
        }
    }

    /// How many bytes the quote at `i` takes: 1 for `quote`, 3 for the typographic forms of a single quote
    /// (U+2018, U+2019, U+2032) that SQL Server's best-fit mapping and copy-pasted payloads turn into `'`; 0 if
    /// no quote is there.
    fn quote_len(&self, i: usize, quote: u8) -> usize {
        match self.at(i) {
            b if b == quote => 1,
            0xe2 if quote == b'\'' && self.at(i + 1) == 0x80 && matches!(self.at(i + 2), 0x98 | 0x99 | 0xb2) => 3,
            _ => 0,
        }
    }

    fn comment(&mut self, start: usize) -> Token {
        let len = self.text.len();
        self.done = true;
        self.token(Kind::Comment, start, len)
    }

    fn number(&mut self, start: usize) -> Token {
        let mut i = start;
        let mut decimal = false;
        if self.at(i) == b'0' && matches!(self.at(i + 1), b'x' | b'b') && self.at(i + 2).is_ascii_hexdigit() {
            i += 2;
            while self.at(i).is_ascii_hexdigit() {
                i += 1;
            }
        } else {
            while self.at(i).is_ascii_digit() {
                i += 1;
            }
            if self.at(i) == b'.' {
                decimal = true;
                i += 1;
                while self.at(i).is_ascii_digit() {
                    i += 1;
                }
            }
            if self.at(i) == b'e' && (self.at(i + 1).is_ascii_digit() || matches!(self.at(i + 1), b'+' | b'-')) {
                decimal = true;
                i += 2;
                while self.at(i).is_ascii_digit() {
                    i += 1;
                }
            }
        }
        // MySQL ends a decimal or exponent number where a letter starts (`1e0union`, `1.select`); digits followed by
        // letters are an identifier.
        if !decimal && is_word_byte(self.at(i)) && !matches!(self.at(i), b'$') {
            // `1st`, `3pm`, `9a7f...`: a word that starts with digits, not a number.
            while is_word_byte(self.at(i)) {
                i += 1;
            }
            return self.token(Kind::Word(Word::Plain), start, i);
        }
        self.token(Kind::Num, start, i)
    }
}

impl Token {
    /// Moves the lexer past the token's closing quote.
    fn with_pos(self, lexer: &mut Lexer<'_>, pos: usize) -> Token {
        lexer.pos = pos;
        self
    }
}

/// Where `needle` is in `text` from `from` on.
fn find(text: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let rest = text.get(from..)?;
    memchr::memmem::find(rest, needle).map(|i| from + i)
}
