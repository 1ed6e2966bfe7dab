//! `request.body["user.name"]` for JSON bodies: a reader that walks the document once, without recursion and
//! without a depth limit, looking only at the members on the path and skipping every other subtree by counting
//! brackets. An upstream parser reads a field nested under 200 levels of arrays; so does this reader, where a
//! recursive parser (serde_json stops at 128 levels) would give up and leave the rule with nothing to match.
//!
//! Keys are compared after their escapes are decoded (`"user\u006eame"` is `username`), and when a key repeats,
//! the last one wins, as in most upstream parsers (JavaScript, Python, Go). A document that cannot be read to the
//! field (cut, malformed) is [`FieldRead::Unreadable`]: a rule reading it is decided by its `on_uninspectable`.

use std::borrow::Cow;

/// What reading a body field found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRead<'b> {
    /// A string (escapes decoded), number or boolean, as text.
    Found(Cow<'b, [u8]>),
    /// The field is not there, or it is an object, an array or `null` (not text).
    Absent,
    /// The document could not be read as far as the field.
    Unreadable,
}

/// Reads field `path` (dot-separated object keys) of the JSON document `body`.
pub fn json_field<'b>(body: &'b [u8], path: &str) -> FieldRead<'b> {
    let mut r = Reader { b: body, i: 0 };
    match r.field(path) {
        Ok(found) => found,
        Err(Unreadable) => FieldRead::Unreadable,
    }
}

struct Unreadable;

struct Reader<'b> {
    b: &'b [u8],
    i: usize,
}

impl<'b> Reader<'b> {
    fn field(&mut self, path: &str) -> Result<FieldRead<'b>, Unreadable> {
        for segment in path.split('.') {
            self.ws();
            if self.peek() != Some(b'{') {
                // Not an object: nothing to descend into. A scalar or array here is simply not the field.
                return if self.peek().is_some() { Ok(FieldRead::Absent) } else { Err(Unreadable) };
            }
            self.i += 1;
            let mut found = None;
            self.ws();
            if self.peek() == Some(b'}') {
                return Ok(FieldRead::Absent);
            }
            loop {
                self.ws();
                let key = self.string()?;
                self.ws();
                self.consume(b':')?;
                self.ws();
                if key.as_ref() == segment.as_bytes() {
                    found = Some(self.i); // the last one wins: keep looking
                }
                self.skip_value()?;
                self.ws();
                match self.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    _ => return Err(Unreadable),
                }
            }
            match found {
                Some(at) => self.i = at,
                None => return Ok(FieldRead::Absent),
            }
        }
        self.ws();
        match self.peek() {
            Some(b'"') => Ok(FieldRead::Found(self.string()?)),
            Some(b'{' | b'[') => Ok(FieldRead::Absent),
            Some(_) => {
                let start = self.i;
                self.skip_value()?;
                let text = self.b.get(start..self.i).ok_or(Unreadable)?;
                Ok(if text == b"null" { FieldRead::Absent } else { FieldRead::Found(Cow::Borrowed(text)) })
            }
            None => Err(Unreadable),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    /// Takes the next byte, which must be `want`: anything else is malformed JSON.
    fn consume(&mut self, want: u8) -> Result<(), Unreadable> {
        if self.next() == Some(want) {
            Ok(())
        } else {
            Err(Unreadable)
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Skips one value (any depth: brackets are counted, not recursed into).
    fn skip_value(&mut self) -> Result<(), Unreadable> {
        let mut depth = 0u64;
        loop {
            self.ws();
            match self.peek().ok_or(Unreadable)? {
                b'"' => {
                    self.skip_string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                    continue;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.i += 1;
                }
                b',' | b':' if depth > 0 => {
                    self.i += 1;
                    continue;
                }
                _ => {
                    let start = self.i;
                    while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
                        self.i += 1;
                    }
                    if self.i == start {
                        return Err(Unreadable);
                    }
                }
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    fn skip_string(&mut self) -> Result<(), Unreadable> {
        self.consume(b'"')?;
        loop {
            match self.next().ok_or(Unreadable)? {
                b'"' => return Ok(()),
                b'\\' => {
                    self.next().ok_or(Unreadable)?;
                }
                _ => {}
            }
        }
    }

    /// A string, its escapes decoded (borrowed when it has none).
    fn string(&mut self) -> Result<Cow<'b, [u8]>, Unreadable> {
        let start = self.i + 1;
        self.skip_string()?;
        let raw = self.b.get(start..self.i - 1).ok_or(Unreadable)?;
        if !raw.contains(&b'\\') {
            return Ok(Cow::Borrowed(raw));
        }
        let text = std::str::from_utf8(raw).map_err(|_| Unreadable)?;
        let quoted = format!("\"{text}\"");
        let decoded: String = serde_json::from_str(&quoted).map_err(|_| Unreadable)?;
        Ok(Cow::Owned(decoded.into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(body: &str, path: &str) -> Option<String> {
        match json_field(body.as_bytes(), path) {
            FieldRead::Found(v) => Some(String::from_utf8(v.into_owned()).unwrap()),
            FieldRead::Absent => None,
            FieldRead::Unreadable => Some("<unreadable>".into()),
        }
    }

    #[test]
    fn fields() {
        let body = r#"{"user":{"name":"ann","tags":[1,{"x":"}"}]},"n":7,"ok":true,"z":null,"s":"a\"b"}"#;
        assert_eq!(found(body, "user.name").as_deref(), Some("ann"));
        assert_eq!(found(body, "n").as_deref(), Some("7"));
        assert_eq!(found(body, "ok").as_deref(), Some("true"));
        assert_eq!(found(body, "s").as_deref(), Some("a\"b"));
        assert_eq!(found(body, "user"), None, "objects are not text");
        assert_eq!(found(body, "z"), None);
        assert_eq!(found(body, "missing"), None);
        assert_eq!(found(body, "n.deeper"), None);
        assert_eq!(found(r#"{"user\u006eame":"root"}"#, "username").as_deref(), Some("root"));
        assert_eq!(found(r#"{"username":"x","username":"admin"}"#, "username").as_deref(), Some("admin"));
        assert_eq!(found(r#"{"a":"#, "a").as_deref(), Some("<unreadable>"));
        assert_eq!(found(r#"{"a":1 "b":2}"#, "b").as_deref(), Some("<unreadable>"));
        assert_eq!(found("", "a").as_deref(), Some("<unreadable>"));
        assert_eq!(found("[1]", "a"), None);
    }

    #[test]
    fn deep_documents_do_not_hide_fields() {
        let deep = format!("{{\"x\":{}1{},\"username\":\"admin\"}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(found(&deep, "username").as_deref(), Some("admin"));
        let nested = format!("{}{{\"username\":\"admin\"}}{}", "{\"a\":".repeat(200), "}".repeat(200));
        let path = format!("{}username", "a.".repeat(200));
        assert_eq!(found(&nested, &path).as_deref(), Some("admin"));
    }
}
