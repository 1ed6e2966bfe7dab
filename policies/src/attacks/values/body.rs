//! Request bodies taken apart: form, multipart, JSON, XML, and other text as one value (see the parent's table).

use super::{Run, Value, MAX_DEPTH};
use crate::attacks::{AttackClass, Place, Sensitivity, Subject};
use crate::scan::decode::{boundary, classify, BodyKind, Sink};
use crate::scan::json::JsonUnescape;

/// How a body is taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Form,
    Multipart,
    Json,
    Xml,
    Text,
    /// Not inspected.
    Binary,
}

/// The longest media type looked at; longer ones are matched on their first bytes.
const MAX_MEDIA_TYPE: usize = 96;

fn shape(content_type: &[u8]) -> Shape {
    let media = content_type.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
    let mut lower = [0u8; MAX_MEDIA_TYPE];
    let len = media.len().min(MAX_MEDIA_TYPE);
    if let (Some(to), Some(from)) = (lower.get_mut(..len), media.get(..len)) {
        to.copy_from_slice(from);
        to.make_ascii_lowercase();
    }
    let media = lower.get(..len).unwrap_or_default();
    let subtype = media.iter().position(|b| *b == b'/').and_then(|s| media.get(s + 1..)).unwrap_or_default();
    let has = |word: &[u8]| subtype.windows(word.len()).any(|w| w == word);
    if has(b"json") {
        return Shape::Json;
    }
    if has(b"xml") {
        return Shape::Xml;
    }
    match classify((!content_type.is_empty()).then_some(content_type)) {
        BodyKind::Form => Shape::Form,
        BodyKind::Multipart => Shape::Multipart,
        BodyKind::Text => Shape::Text,
        BodyKind::Binary => Shape::Binary,
    }
}

/// Where a JSON string is unescaped: the value scratch, cut when full.
struct Fill<'b> {
    buf: &'b mut [u8],
    len: usize,
    cut: bool,
}

impl Sink for Fill<'_> {
    fn bytes(&mut self, bytes: &[u8]) {
        let room = self.buf.len().saturating_sub(self.len);
        let take = bytes.len().min(room);
        if let (Some(to), Some(from)) = (self.buf.get_mut(self.len..self.len + take), bytes.get(..take)) {
            to.copy_from_slice(from);
            self.len += take;
        }
        self.cut |= take < bytes.len();
    }
    fn segment_end(&mut self) {}
}

/// JSON string escapes removed from `text` into `dst`: the length, and whether it was cut.
fn unescape(text: &[u8], dst: &mut [u8]) -> (usize, bool) {
    let mut fill = Fill { buf: dst, len: 0, cut: false };
    let mut decoder = JsonUnescape::default();
    decoder.feed(text, &mut fill);
    decoder.finish(&mut fill);
    (fill.len, fill.cut)
}

/// The end of the JSON string whose content starts at `from`: the index of its closing quote (`s.len()` when the
/// body ends first).
fn string_end(s: &[u8], from: usize) -> usize {
    let mut i = from;
    loop {
        let Some(rest) = s.get(i..) else { return s.len() };
        match memchr::memchr2(b'"', b'\\', rest) {
            None => return s.len(),
            Some(at) if rest.get(at) == Some(&b'\\') => i += at + 2,
            Some(at) => return i + at,
        }
    }
}

/// A path of names kept in the name scratch, with the length to go back to at each level.
struct PathStack {
    len: usize,
    levels: [u16; MAX_DEPTH],
    depth: usize,
}

impl PathStack {
    fn new() -> PathStack {
        PathStack { len: 0, levels: [0; MAX_DEPTH], depth: 0 }
    }

    /// Opens a level whose names start from the current path; `false` past [`MAX_DEPTH`].
    fn push(&mut self) -> bool {
        let Some(level) = self.levels.get_mut(self.depth) else { return false };
        *level = self.len as u16;
        self.depth += 1;
        true
    }

    /// Closes a level, back to the path it started from.
    fn pop(&mut self) {
        if self.depth > 0 {
            self.depth -= 1;
            self.len = usize::from(self.levels.get(self.depth).copied().unwrap_or(0));
        }
    }

    /// Back to the path the current level started from.
    fn reset(&mut self) {
        if let Some(depth) = self.depth.checked_sub(1) {
            self.len = usize::from(self.levels.get(depth).copied().unwrap_or(0));
        }
    }

    /// Appends bytes to the path, cut at the end of `buf`.
    fn append(&mut self, buf: &mut [u8], bytes: &[u8]) {
        for &b in bytes {
            let Some(slot) = buf.get_mut(self.len) else { return };
            *slot = b;
            self.len += 1;
        }
    }

    /// Appends `.name` (no dot at the start).
    fn child(&mut self, buf: &mut [u8], name: &[u8]) {
        if self.len > 0 {
            self.append(buf, b".");
        }
        self.append(buf, name);
    }
}

/// How many JSON keys are remembered as inspected clean: enough for records of this many fields.
const KEY_CACHE: usize = 32;
/// The longest key path remembered.
const KEY_CACHE_NAME: usize = 96;

/// JSON keys inspected clean in the current body, by exact path (and key length, so `a.b` the key `b` under `a`
/// and `a.b` one key with a dot stay apart): a ring, so memory is fixed. Comparing costs at most a budget in
/// proportion to the body, so keys crafted to look alike cannot make the lookups cost more than the body's length.
#[derive(Debug)]
pub(super) struct KeyCache {
    paths: [[u8; KEY_CACHE_NAME]; KEY_CACHE],
    lens: [(u8, u8); KEY_CACHE],
    used: usize,
    next: usize,
    /// Bytes the lookups may still compare in this body.
    pub(super) budget: usize,
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache { paths: [[0; KEY_CACHE_NAME]; KEY_CACHE], lens: [(0, 0); KEY_CACHE], used: 0, next: 0, budget: 0 }
    }
}

impl KeyCache {
    /// Forgets every key, for a body of `body_len` bytes.
    fn clear(&mut self, body_len: usize) {
        self.used = 0;
        self.next = 0;
        self.budget = body_len.saturating_mul(2).saturating_add(1024);
    }

    fn contains(&mut self, path: &[u8], key_len: usize) -> bool {
        for (&(len, key), stored) in self.lens.iter().zip(&self.paths).take(self.used) {
            if usize::from(len) != path.len() || usize::from(key) != key_len {
                continue;
            }
            let Some(budget) = self.budget.checked_sub(path.len()) else {
                // Out of budget: the key is inspected like any other.
                return false;
            };
            self.budget = budget;
            if stored.get(..path.len()) == Some(path) {
                return true;
            }
        }
        false
    }

    fn insert(&mut self, path: &[u8], key_len: usize) {
        let (Ok(len), Ok(key)) = (u8::try_from(path.len()), u8::try_from(key_len)) else { return };
        let (Some(stored), Some(lens)) = (self.paths.get_mut(self.next), self.lens.get_mut(self.next)) else { return };
        let Some(slot) = stored.get_mut(..path.len()) else { return };
        slot.copy_from_slice(path);
        *lens = (len, key);
        self.next = (self.next + 1) % KEY_CACHE;
        self.used = (self.used + 1).min(KEY_CACHE);
    }
}

impl<D> Run<'_, '_, D>
where
    D: Fn(AttackClass, &Subject<'_>, Sensitivity) -> bool,
{
    /// A request body, by its content type.
    pub(super) fn body(&mut self, content_type: &[u8], body: &[u8], value: &mut [u8], name: &mut [u8]) {
        if body.is_empty() {
            return;
        }
        let mut shape = shape(content_type);
        if shape == Shape::Text && content_type.iter().all(u8::is_ascii_whitespace) {
            // No content type: many applications parse JSON or XML anyway, so read it as what it looks like.
            shape = match body.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{' | b'[') => Shape::Json,
                Some(b'<') => Shape::Xml,
                _ => Shape::Text,
            };
        }
        match shape {
            Shape::Form => self.pairs(body, Place::Form, value, name),
            Shape::Multipart => match boundary(content_type) {
                Some(b) => self.multipart(body, b, value, name),
                None => {
                    self.value(Value::new(body, b"", Place::Body));
                }
            },
            Shape::Json => self.json(body, value, name, 0),
            Shape::Xml => self.xml(body, name, 0),
            Shape::Text => {
                self.value(Value::new(body, b"", Place::Body));
            }
            Shape::Binary => {}
        }
    }

    /// A JSON document: every key a name, every leaf string and number a value, named by its dotted path.
    fn json(&mut self, s: &[u8], value: &mut [u8], name: &mut [u8], prefix: usize) {
        let mut path = PathStack::new();
        path.len = prefix.min(name.len());
        self.keys.clear(s.len());
        // Per level: whether it is an array (bit `depth`), and whether a key is expected next.
        let mut arrays: u64 = 0;
        let mut expect_key = false;
        // Bytes that are not JSON: the body is then read as one text too.
        let mut junk = false;
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            if self.stopped {
                return;
            }
            let in_array = path.depth > 0 && arrays & (1 << (path.depth - 1)) != 0;
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                b'{' | b'[' => {
                    if !path.push() {
                        self.findings.uninspectable = true;
                        return;
                    }
                    let bit = 1u64 << (path.depth - 1);
                    if b == b'[' {
                        arrays |= bit;
                        path.append(name, b"[]");
                    } else {
                        arrays &= !bit;
                    }
                    expect_key = b == b'{';
                    i += 1;
                }
                b'}' | b']' => {
                    path.pop();
                    expect_key = false;
                    i += 1;
                }
                b',' => {
                    if !in_array {
                        path.reset();
                        expect_key = path.depth > 0;
                    }
                    i += 1;
                }
                b':' => {
                    expect_key = false;
                    i += 1;
                }
                b'"' => {
                    let end = string_end(s, i + 1);
                    let text = s.get(i + 1..end).unwrap_or_default();
                    let (len, cut) = unescape(text, value);
                    let decoded = value.get(..len).unwrap_or_default();
                    let is_key = expect_key && !in_array;
                    if is_key {
                        path.reset();
                        path.child(name, decoded);
                        expect_key = false;
                    }
                    let full = name.get(..path.len).unwrap_or_default();
                    i = end + 1;
                    if is_key && !cut && self.keys.contains(full, len) {
                        continue;
                    }
                    let mut v = Value::new(decoded, full, Place::Json);
                    v.is_name = is_key;
                    v.cut = cut;
                    let before = (self.findings.total, self.findings.uninspectable);
                    self.value(v);
                    if is_key && !self.stopped && before == (self.findings.total, self.findings.uninspectable) {
                        self.keys.insert(full, len);
                    }
                }
                b'-' | b'0'..=b'9' => {
                    let len =
                        s.get(i..).unwrap_or_default().iter().take_while(|b| b"+-.eE0123456789".contains(b)).count();
                    let number = s.get(i..i + len).unwrap_or_default();
                    self.value(Value::new(number, name.get(..path.len).unwrap_or_default(), Place::Json));
                    i += len.max(1);
                }
                _ => {
                    let len = s.get(i..).unwrap_or_default().iter().take_while(|b| b.is_ascii_alphanumeric()).count();
                    let word = s.get(i..i + len).unwrap_or_default();
                    junk |= !matches!(word, b"true" | b"false" | b"null");
                    i += len.max(1);
                }
            }
        }
        if junk && !self.stopped {
            self.value(Value::new(s, b"", Place::Body));
        }
    }

    /// An XML document: once whole for XXE, then every text node, CDATA section and attribute value.
    fn xml(&mut self, s: &[u8], name: &mut [u8], prefix: usize) {
        let cap = self.limits.max_value_bytes;
        let mut document = Value::new(s.get(..cap).unwrap_or(s), b"", Place::Xml);
        document.only = Some(AttackClass::Xxe);
        if !self.value(document) {
            return;
        }
        let mut path = PathStack::new();
        path.len = prefix.min(name.len());
        let mut seen_element = false;
        let mut i = 0;
        while i < s.len() {
            if self.stopped {
                return;
            }
            let rest = s.get(i..).unwrap_or_default();
            let Some(lt) = memchr::memchr(b'<', rest) else {
                self.xml_text(rest, name, &path);
                return;
            };
            self.xml_text(rest.get(..lt).unwrap_or_default(), name, &path);
            let tag = rest.get(lt..).unwrap_or_default();
            i += lt;
            if tag.starts_with(b"<!--") {
                i += find_end(tag, b"-->");
            } else if let Some(cdata) = tag.strip_prefix(b"<![CDATA[") {
                let end = memchr::memmem::find(cdata, b"]]>").unwrap_or(cdata.len());
                let mut v = Value::new(
                    cdata.get(..end).unwrap_or_default(),
                    name.get(..path.len).unwrap_or_default(),
                    Place::Xml,
                );
                v.form = false;
                self.value(v);
                i += 9 + end + 3;
            } else if tag.starts_with(b"<!") {
                i += declaration_end(tag);
            } else if tag.starts_with(b"<?") {
                i += find_end(tag, b"?>");
            } else if tag.starts_with(b"</") {
                path.pop();
                i += find_end(tag, b">");
            } else {
                if !seen_element && i > cap {
                    // The prolog did not fit the document value: an entity past the cap went unread.
                    self.findings.uninspectable = true;
                }
                seen_element = true;
                match self.xml_element(tag, name, &mut path) {
                    Some(used) => i += used,
                    None => return,
                }
            }
        }
    }

    /// A text node, named by the element path.
    fn xml_text(&mut self, text: &[u8], name: &[u8], path: &PathStack) {
        let text = text.trim_ascii();
        if !text.is_empty() {
            self.value(Value::new(text, name.get(..path.len).unwrap_or_default(), Place::Xml));
        }
    }

    /// A start tag at the start of `tag`: pushes its name and inspects its attribute values; the bytes it used, or
    /// `None` past [`MAX_DEPTH`].
    fn xml_element(&mut self, tag: &[u8], name: &mut [u8], path: &mut PathStack) -> Option<usize> {
        let is_name_byte = |b: &u8| !(b.is_ascii_whitespace() || matches!(b, b'/' | b'>' | b'=' | b'"' | b'\''));
        let element_len = tag.iter().skip(1).take_while(|b| is_name_byte(b)).count();
        if element_len == 0 {
            // `a < b`: not a tag; what follows is read as text.
            return Some(1);
        }
        if !path.push() {
            self.findings.uninspectable = true;
            return None;
        }
        path.child(name, tag.get(1..1 + element_len).unwrap_or_default());
        let mut i = 1 + element_len;
        loop {
            match tag.get(i) {
                None => return Some(tag.len()),
                Some(b'>') => return Some(i + 1),
                Some(b'/') if tag.get(i + 1) == Some(&b'>') => {
                    path.pop();
                    return Some(i + 2);
                }
                Some(b) if is_name_byte(b) => {
                    let attr_len = tag.get(i..).unwrap_or_default().iter().take_while(|b| is_name_byte(b)).count();
                    let attr = tag.get(i..i + attr_len).unwrap_or_default();
                    i += attr_len;
                    while tag.get(i).is_some_and(u8::is_ascii_whitespace) {
                        i += 1;
                    }
                    if tag.get(i) != Some(&b'=') {
                        continue;
                    }
                    i += 1;
                    while tag.get(i).is_some_and(u8::is_ascii_whitespace) {
                        i += 1;
                    }
                    let (content, used) = match tag.get(i) {
                        Some(&q @ (b'"' | b'\'')) => {
                            let rest = tag.get(i + 1..).unwrap_or_default();
                            let end = memchr::memchr(q, rest).unwrap_or(rest.len());
                            (rest.get(..end).unwrap_or_default(), end + 2)
                        }
                        _ => {
                            let rest = tag.get(i..).unwrap_or_default();
                            let end = rest.iter().take_while(|b| !b.is_ascii_whitespace() && **b != b'>').count();
                            (rest.get(..end).unwrap_or_default(), end)
                        }
                    };
                    i += used;
                    let element_path = path.len;
                    path.append(name, b"[@");
                    path.append(name, attr);
                    path.append(name, b"]");
                    self.value(Value::new(content, name.get(..path.len).unwrap_or_default(), Place::Xml));
                    path.len = element_path;
                    if self.stopped {
                        return None;
                    }
                }
                Some(_) => i += 1,
            }
        }
    }

    /// A `multipart/form-data` body: field names, text fields, file names (and `text/*` files).
    fn multipart(&mut self, s: &[u8], boundary: &[u8], value: &mut [u8], name: &mut [u8]) {
        let mut buf = [b'-'; 74];
        let Some(slot) = buf.get_mut(2..2 + boundary.len()) else { return };
        slot.copy_from_slice(boundary);
        let delimiter = buf.get(..2 + boundary.len()).unwrap_or_default();
        let Some(first) = memchr::memmem::find(s, delimiter) else {
            self.value(Value::new(s, b"", Place::Body));
            return;
        };
        let mut at = first + delimiter.len();
        while !self.stopped {
            let rest = s.get(at..).unwrap_or_default();
            if rest.starts_with(b"--") || rest.is_empty() {
                return;
            }
            // The part's headers end at the first empty line.
            let headers_start = memchr::memchr(b'\n', rest).map_or(rest.len(), |n| n + 1);
            let mut field: &[u8] = b"";
            let mut filename: Option<&[u8]> = None;
            let mut part_shape = Shape::Binary;
            let mut line_start = headers_start;
            let content_start = loop {
                let Some(line_rest) = rest.get(line_start..) else { break rest.len() };
                let line_len = memchr::memchr(b'\n', line_rest).unwrap_or(line_rest.len());
                let line = line_rest.get(..line_len).unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let next = line_start + line_len + 1;
                if line.is_empty() {
                    break next.min(rest.len());
                }
                if let Some(colon) = memchr::memchr(b':', line) {
                    let (header, content) =
                        (line.get(..colon).unwrap_or_default(), line.get(colon + 1..).unwrap_or_default());
                    if header.trim_ascii().eq_ignore_ascii_case(b"content-disposition") {
                        field = parameter(content, b"name").unwrap_or(field);
                        filename = parameter(content, b"filename").or(filename);
                    } else if header.trim_ascii().eq_ignore_ascii_case(b"content-type") {
                        part_shape = shape(content.trim_ascii());
                    }
                }
                if next >= rest.len() {
                    break rest.len();
                }
                line_start = next;
            };
            let body = rest.get(content_start..).unwrap_or_default();
            let end = memchr::memmem::find(body, delimiter).unwrap_or(body.len());
            let content = body.get(..end).unwrap_or_default();
            let content = content.strip_suffix(b"\n").unwrap_or(content);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            let mut n = Value::new(field, field, Place::Form);
            n.is_name = true;
            n.form = false;
            if !self.value(n) {
                return;
            }
            if let Some(filename) = filename {
                let mut f = Value::new(filename, field, Place::Form);
                f.form = false;
                if !self.value(f) {
                    return;
                }
            }
            match part_shape {
                // JSON and XML parts are read as such, their paths under the field's name.
                Shape::Json | Shape::Xml => {
                    let (prefix, _) = copy(field, name);
                    if part_shape == Shape::Json {
                        self.json(content, value, name, prefix);
                    } else {
                        self.xml(content, name, prefix);
                    }
                }
                // A file's bytes only when they are text; a field's whatever its type says.
                Shape::Text => self.form_value(content, field),
                _ if filename.is_none() => self.form_value(content, field),
                _ => {}
            }
            if self.stopped {
                return;
            }
            if end == body.len() {
                return;
            }
            at += content_start + end + delimiter.len();
        }
    }
}

impl<D> Run<'_, '_, D>
where
    D: Fn(AttackClass, &Subject<'_>, Sensitivity) -> bool,
{
    /// A multipart field's content, as it is.
    fn form_value(&mut self, content: &[u8], field: &[u8]) {
        let mut v = Value::new(content, field, Place::Form);
        v.form = false;
        self.value(v);
    }
}

/// Copies `src` into `dst`, cut to fit: the length.
fn copy(src: &[u8], dst: &mut [u8]) -> (usize, bool) {
    let len = src.len().min(dst.len());
    if let (Some(to), Some(from)) = (dst.get_mut(..len), src.get(..len)) {
        to.copy_from_slice(from);
    }
    (len, len < src.len())
}

/// A `key=value` parameter of a header value (`form-data; name="q"`), unquoted.
fn parameter<'h>(header: &'h [u8], key: &[u8]) -> Option<&'h [u8]> {
    header.split(|b| *b == b';').skip(1).find_map(|param| {
        let param = param.trim_ascii();
        let eq = memchr::memchr(b'=', param)?;
        if !param.get(..eq)?.trim_ascii().eq_ignore_ascii_case(key) {
            return None;
        }
        let content = param.get(eq + 1..)?.trim_ascii();
        Some(content.strip_prefix(b"\"").and_then(|c| c.strip_suffix(b"\"")).unwrap_or(content))
    })
}

/// The bytes up to and including `end` (all of `s` when it is missing).
fn find_end(s: &[u8], end: &[u8]) -> usize {
    memchr::memmem::find(s, end).map_or(s.len(), |at| at + end.len())
}

/// The bytes of a `<!DOCTYPE …>` (or other declaration), its internal subset in `[…]` included.
fn declaration_end(s: &[u8]) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (i, &b) in s.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'[') => depth += 1,
            (None, b']') => depth = depth.saturating_sub(1),
            (None, b'>') if depth == 0 => return i + 1,
            _ => {}
        }
    }
    s.len()
}
