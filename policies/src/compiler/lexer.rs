//! The CEL lexer: expression text to tokens, each with its byte span.

use super::ExprError;

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An integer literal's magnitude; the sign is a separate `-` token.
    Int(u64),
    /// A string literal, escapes decoded.
    Str(String),
    /// An identifier (not a keyword).
    Ident(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Not,
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Question,
    Colon,
    /// The end of the expression.
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(n) => format!("integer {n}"),
            Tok::Str(_) => "string literal".to_owned(),
            Tok::Ident(name) => format!("identifier '{name}'"),
            Tok::Eof => "end of expression".to_owned(),
            other => format!("'{}'", other.symbol()),
        }
    }

    /// The source spelling of a fixed token.
    pub(crate) fn symbol(&self) -> &'static str {
        match self {
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::In => "in",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Dot => ".",
            Tok::Comma => ",",
            Tok::Not => "!",
            Tok::And => "&&",
            Tok::Or => "||",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Question => "?",
            Tok::Colon => ":",
            Tok::Int(_) | Tok::Str(_) | Tok::Ident(_) | Tok::Eof => "",
        }
    }
}

/// A token and where it is: `start..end` in bytes of the expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    /// What it is.
    pub tok: Tok,
    /// Byte offset of its first character.
    pub start: usize,
    /// Byte offset just past it.
    pub end: usize,
}

/// Words CEL reserves; using one as a name is an error rather than an unknown attribute.
const RESERVED: [&str; 17] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Splits `text` into tokens; the last one is always [`Tok::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer { text, chars: text.char_indices().collect(), pos: 0, tokens: Vec::new() };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'t> {
    text: &'t str,
    // Characters with their byte offsets: the lexer moves by character and reports bytes.
    chars: Vec<(usize, char)>,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).map(|&(_, c)| c)
    }

    fn peek(&self) -> Option<char> {
        self.peek_at(0)
    }

    /// Byte offset of the character at `pos` (the text length at the end).
    fn offset(&self, pos: usize) -> usize {
        self.chars.get(pos).map_or(self.text.len(), |&(o, _)| o)
    }

    fn push(&mut self, tok: Tok, start_pos: usize) {
        let (start, end) = (self.offset(start_pos), self.offset(self.pos));
        self.tokens.push(Token { tok, start, end });
    }

    fn run(&mut self) -> Result<(), ExprError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                ' ' | '\t' | '\n' | '\r' | '\u{c}' => self.pos += 1,
                '/' if self.peek_at(1) == Some('/') => {
                    // A `//` comment runs to the end of the line.
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                '0'..='9' => self.number()?,
                '"' | '\'' => {
                    let s = self.string(start, false)?;
                    self.push(Tok::Str(s), start);
                }
                c if c == '_' || c.is_ascii_alphabetic() => self.word()?,
                _ => self.symbol(c)?,
            }
        }
        let end = self.text.len();
        self.tokens.push(Token { tok: Tok::Eof, start: end, end });
        Ok(())
    }

    fn symbol(&mut self, c: char) -> Result<(), ExprError> {
        let start = self.pos;
        let next = self.peek_at(1);
        let (tok, len) = match (c, next) {
            ('&', Some('&')) => (Tok::And, 2),
            ('|', Some('|')) => (Tok::Or, 2),
            ('=', Some('=')) => (Tok::Eq, 2),
            ('!', Some('=')) => (Tok::Ne, 2),
            ('<', Some('=')) => (Tok::Le, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('!', _) => (Tok::Not, 1),
            ('<', _) => (Tok::Lt, 1),
            ('>', _) => (Tok::Gt, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('.', _) => (Tok::Dot, 1),
            (',', _) => (Tok::Comma, 1),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('%', _) => (Tok::Percent, 1),
            ('?', _) => (Tok::Question, 1),
            (':', _) => (Tok::Colon, 1),
            ('&', _) => return Err(self.error_here("syntax error: unexpected '&' (did you mean '&&'?)")),
            ('|', _) => return Err(self.error_here("syntax error: unexpected '|' (did you mean '||'?)")),
            ('=', _) => return Err(self.error_here("syntax error: unexpected '=' (did you mean '=='?)")),
            (c, _) => return Err(self.error_here(format!("syntax error: unexpected character {c:?}"))),
        };
        self.pos += len;
        self.push(tok, start);
        Ok(())
    }

    fn error_here(&self, message: impl Into<String>) -> ExprError {
        ExprError::new(self.offset(self.pos), message)
    }

    fn word(&mut self) -> Result<(), ExprError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c == '_' || c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let word = self.text.get(self.offset(start)..self.offset(self.pos)).unwrap_or_default();
        let quote_next = matches!(self.peek(), Some('"' | '\''));
        if quote_next && (word == "r" || word == "R") {
            let s = self.string(start, true)?;
            self.push(Tok::Str(s), start);
            return Ok(());
        }
        if quote_next && matches!(word.to_ascii_lowercase().as_str(), "b" | "br" | "rb") {
            return Err(ExprError::new(self.offset(start), "bytes literals are not supported"));
        }
        let tok = match word {
            "true" => Tok::True,
            "false" => Tok::False,
            "null" => Tok::Null,
            "in" => Tok::In,
            w if RESERVED.contains(&w) => {
                return Err(ExprError::new(self.offset(start), format!("syntax error: '{w}' is a reserved word")));
            }
            w => Tok::Ident(w.to_owned()),
        };
        self.push(tok, start);
        Ok(())
    }

    fn number(&mut self) -> Result<(), ExprError> {
        let start = self.pos;
        let hex = self.peek() == Some('0') && matches!(self.peek_at(1), Some('x' | 'X'));
        let radix = if hex {
            self.pos += 2;
            16
        } else {
            10
        };
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_digit(radix)) {
            self.pos += 1;
        }
        let digits = self.text.get(self.offset(digits_start)..self.offset(self.pos)).unwrap_or_default();
        let at = self.offset(start);
        if digits.is_empty() {
            return Err(ExprError::new(at, "syntax error: hexadecimal literal without digits"));
        }
        let fraction = self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit());
        if !hex && (fraction || matches!(self.peek(), Some('e' | 'E'))) {
            return Err(ExprError::new(at, "floating-point numbers are not supported"));
        }
        if matches!(self.peek(), Some('u' | 'U')) {
            return Err(ExprError::new(at, "unsigned integers are not supported"));
        }
        let value = u64::from_str_radix(digits, radix)
            .map_err(|_| ExprError::new(at, "integer literal out of range (ints are 64-bit signed)"))?;
        self.push(Tok::Int(value), start);
        Ok(())
    }

    /// Reads a string literal whose opening quote is at `self.pos`; `start` is where the token began (a raw
    /// prefix included).
    fn string(&mut self, start: usize, raw: bool) -> Result<String, ExprError> {
        let quote = self.peek().unwrap_or('"');
        let triple = self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote);
        self.pos += if triple { 3 } else { 1 };
        let unterminated = ExprError::new(self.offset(start), "syntax error: unterminated string literal");
        let mut out = String::new();
        loop {
            let c = self.peek().ok_or_else(|| unterminated.clone())?;
            if c == quote && (!triple || (self.peek_at(1) == Some(quote) && self.peek_at(2) == Some(quote))) {
                self.pos += if triple { 3 } else { 1 };
                return Ok(out);
            }
            if !triple && (c == '\n' || c == '\r') {
                return Err(unterminated);
            }
            if c != '\\' {
                out.push(c);
                self.pos += 1;
                continue;
            }
            if raw {
                // Raw strings keep escapes verbatim; the escaped character cannot end the literal.
                out.push(c);
                self.pos += 1;
                if let Some(next) = self.peek() {
                    out.push(next);
                    self.pos += 1;
                }
                continue;
            }
            out.push(self.escape()?);
        }
    }

    /// Decodes one escape sequence at `self.pos` (the backslash).
    fn escape(&mut self) -> Result<char, ExprError> {
        let at = self.offset(self.pos);
        let bad = |what: String| ExprError::new(at, format!("syntax error: invalid escape sequence {what}"));
        let e = self.peek_at(1).ok_or_else(|| bad("'\\' at the end".to_owned()))?;
        self.pos += 2;
        let simple = match e {
            '\\' => Some('\\'),
            '?' => Some('?'),
            '"' => Some('"'),
            '\'' => Some('\''),
            '`' => Some('`'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(c) = simple {
            return Ok(c);
        }
        let (len, radix) = match e {
            'x' | 'X' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='3' => (2, 8),
            other => return Err(bad(format!("'\\{other}'"))),
        };
        let mut value: u32 = if radix == 8 { e.to_digit(8).unwrap_or(0) } else { 0 };
        for _ in 0..len {
            let digit = self.peek().and_then(|c| c.to_digit(radix));
            let digit = digit.ok_or_else(|| bad(format!("'\\{e}': expected {len} more digits")))?;
            value = value * radix + digit;
            self.pos += 1;
        }
        char::from_u32(value).ok_or_else(|| bad(format!("'\\{e}': U+{value:04X} is not a Unicode scalar value")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn err(text: &str) -> (usize, String) {
        let e = tokenize(text).unwrap_err();
        (e.offset, e.message)
    }

    #[test]
    fn operators_and_words() {
        assert_eq!(
            toks("a.b && !c || d in e <= >= < > == != ( ) [ ] , true false null"),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::And,
                Tok::Not,
                Tok::Ident("c".into()),
                Tok::Or,
                Tok::Ident("d".into()),
                Tok::In,
                Tok::Ident("e".into()),
                Tok::Le,
                Tok::Ge,
                Tok::Lt,
                Tok::Gt,
                Tok::Eq,
                Tok::Ne,
                Tok::LParen,
                Tok::RParen,
                Tok::LBracket,
                Tok::RBracket,
                Tok::Comma,
                Tok::True,
                Tok::False,
                Tok::Null,
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn spans_are_byte_offsets() {
        let tokens = tokenize("  \"é\" == x").unwrap();
        assert_eq!((tokens[0].start, tokens[0].end), (2, 6));
        assert_eq!((tokens[1].start, tokens[1].end), (7, 9));
        assert_eq!((tokens[2].start, tokens[3].start), (10, 11));
    }

    #[test]
    fn numbers() {
        assert_eq!(toks("0 42 0x1F"), vec![Tok::Int(0), Tok::Int(42), Tok::Int(31), Tok::Eof]);
        assert_eq!(toks("9223372036854775808"), vec![Tok::Int(9_223_372_036_854_775_808), Tok::Eof]);
        assert_eq!(err("1 == 1.5").1, "floating-point numbers are not supported");
        assert_eq!(err("x == 1e3"), (5, "floating-point numbers are not supported".into()));
        assert_eq!(err("3u").1, "unsigned integers are not supported");
        assert_eq!(err("99999999999999999999").1, "integer literal out of range (ints are 64-bit signed)");
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(toks(r#"'a"b' "c'd""#), vec![Tok::Str("a\"b".into()), Tok::Str("c'd".into()), Tok::Eof]);
        assert_eq!(
            toks(r#""\n\t\\\"\x41\u00e9\U0001F600\101\?\`""#),
            vec![Tok::Str("\n\t\\\"Aé😀A?`".into()), Tok::Eof]
        );
        assert_eq!(toks(r#"r"\d+\"" R'\w'"#), vec![Tok::Str(r#"\d+\""#.into()), Tok::Str(r"\w".into()), Tok::Eof]);
        assert_eq!(toks("\"\"\"a\"b\nc\"\"\""), vec![Tok::Str("a\"b\nc".into()), Tok::Eof]);
        assert_eq!(toks("''"), vec![Tok::Str(String::new()), Tok::Eof]);
    }

    #[test]
    fn string_errors() {
        assert_eq!(err("x == \"abc"), (5, "syntax error: unterminated string literal".into()));
        assert_eq!(err("\"a\nb\"").1, "syntax error: unterminated string literal");
        assert_eq!(err(r#""ab\q""#), (3, "syntax error: invalid escape sequence '\\q'".into()));
        assert_eq!(
            err(r#""\ud800""#).1,
            "syntax error: invalid escape sequence '\\u': U+D800 is not a Unicode scalar value"
        );
        assert_eq!(err(r#""\x4""#).1, "syntax error: invalid escape sequence '\\x': expected 2 more digits");
        assert_eq!(err("b\"x\"").1, "bytes literals are not supported");
    }

    #[test]
    fn symbol_errors_and_comments() {
        assert_eq!(err("a & b"), (2, "syntax error: unexpected '&' (did you mean '&&'?)".into()));
        assert_eq!(err("a = b").1, "syntax error: unexpected '=' (did you mean '=='?)");
        assert_eq!(err("a # b"), (2, "syntax error: unexpected character '#'".into()));
        assert_eq!(err("if").1, "syntax error: 'if' is a reserved word");
        assert_eq!(toks("a // comment\n|| b"), vec![Tok::Ident("a".into()), Tok::Or, Tok::Ident("b".into()), Tok::Eof]);
    }
}
