//! A strict JSON reader (RFC 8259, no extensions) for safetensors headers, with memory bounded
//! by the header whatever its shape.
//!
//! There is no document tree. [`validate`] checks the whole text in one pass that allocates
//! nothing: nesting is tracked in a fixed array of [`MAX_DEPTH`] bytes, strings are scanned in
//! place (escapes and surrogate pairs checked), numbers matched against the grammar. The
//! safetensors reader then walks the validated text with [`Parser`]'s pull methods and keeps only
//! what it uses (keys, metadata strings, shapes, offsets); every value it does not use is
//! skipped with [`Parser::skip_value`], which allocates nothing either. A header of nested
//! `[]` or of a million ignored keys therefore costs no memory beyond its own bytes, and what is
//! kept is a small multiple of the text it came from (a string: its decoded bytes; a number:
//! one `usize`).
//!
//! Duplicate keys are the reader's job (it sees the keys it keeps); inside skipped values only
//! the syntax is checked, as nothing there is used.

/// The deepest nesting of arrays and objects accepted. A safetensors header needs three levels;
/// the limit keeps the validator's stack a fixed size.
pub(crate) const MAX_DEPTH: usize = 64;

/// Checks that `text` is one JSON value with only whitespace around it.
pub(crate) fn validate(text: &str) -> Result<(), String> {
    let mut p = Parser::new(text);
    p.skip_ws();
    p.skip_value()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.err("unexpected data after the JSON value"));
    }
    Ok(())
}

/// The kind of the next value, from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Other,
}

/// A position in a JSON text, with pull methods for the reader.
pub(crate) struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(text: &'a str) -> Parser<'a> {
        Parser {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    pub(crate) fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    pub(crate) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    /// The kind of the next value (after whitespace).
    pub(crate) fn kind(&mut self) -> Kind {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            _ => Kind::Other,
        }
    }

    /// Consumes the `{` of an object.
    pub(crate) fn begin_object(&mut self) -> Result<(), String> {
        self.skip_ws();
        self.expect(b'{')
    }

    /// The next key of the object begun with [`Parser::begin_object`] (positioned at its value)
    /// and the byte offset of the key, or `None` after its closing `}`. `first` is true until
    /// the first call for this object.
    pub(crate) fn next_key(&mut self, first: &mut bool) -> Result<Option<(String, usize)>, String> {
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(None);
        }
        if !*first {
            self.expect(b',')?;
            self.skip_ws();
        }
        *first = false;
        let at = self.pos;
        let key = self.string()?;
        self.skip_ws();
        self.expect(b':')?;
        self.skip_ws();
        Ok(Some((key, at)))
    }

    /// An array of non-negative integers that fit in `usize`; `what` names it in errors.
    pub(crate) fn uint_array(&mut self, what: &str) -> Result<Vec<usize>, String> {
        self.skip_ws();
        if self.peek() != Some(b'[') {
            return Err(format!("{what} is not an array"));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            self.skip_ws();
            if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
                return Err(format!("{what} holds a non-number"));
            }
            let text = self.number()?;
            let v = text
                .parse::<usize>()
                .map_err(|_| format!("{what} holds {text}, not a non-negative integer"))?;
            items.push(v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    items.shrink_to_fit();
                    return Ok(items);
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// Skips one value, checking its syntax, without allocating.
    pub(crate) fn skip_value(&mut self) -> Result<(), String> {
        // Open containers, innermost last: b'{' or b'['.
        let mut stack = [0u8; MAX_DEPTH];
        let mut depth = 0usize;
        loop {
            // A value is expected here.
            self.skip_ws();
            let mut opened = false;
            match self.peek() {
                None => return Err(self.err("unexpected end of JSON")),
                Some(c @ (b'{' | b'[')) => {
                    if depth == MAX_DEPTH {
                        return Err(self.err("JSON nested too deeply"));
                    }
                    stack[depth] = c;
                    depth += 1;
                    self.pos += 1;
                    self.skip_ws();
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        opened = true;
                        if c == b'{' {
                            self.skip_key()?;
                        }
                    }
                }
                Some(b'"') => self.scan_string(None)?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(_) => return Err(self.err("unexpected character")),
            }
            if opened {
                continue; // the first member's value comes next
            }
            // After a value: close containers until one continues with ','.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.skip_ws();
                let open = stack[depth - 1];
                match (open, self.peek()) {
                    (_, Some(b',')) => {
                        self.pos += 1;
                        if open == b'{' {
                            self.skip_ws();
                            self.skip_key()?;
                        }
                        break;
                    }
                    (b'{', Some(b'}')) | (b'[', Some(b']')) => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    (b'{', _) => return Err(self.err("expected ',' or '}'")),
                    _ => return Err(self.err("expected ',' or ']'")),
                }
            }
        }
    }

    /// A key and its colon, skipped.
    fn skip_key(&mut self) -> Result<(), String> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        self.scan_string(None)?;
        self.skip_ws();
        self.expect(b':')
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number's text, checked against the grammar.
    fn number(&mut self) -> Result<&'a str, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits in the exponent"));
            }
        }
        let s: &'a [u8] = self.s;
        Ok(std::str::from_utf8(&s[start..self.pos]).expect("ASCII digits"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(hex) = self.s.get(self.pos..self.pos + 4) else {
            return Err(self.err("truncated \\u escape"));
        };
        if !hex.iter().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("invalid \\u escape"));
        }
        let text = std::str::from_utf8(hex).expect("ASCII hex digits");
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    /// A string, decoded.
    pub(crate) fn string(&mut self) -> Result<String, String> {
        let mut out = String::new();
        self.scan_string(Some(&mut out))?;
        Ok(out)
    }

    /// Scans a string literal, decoding it into `out` when given.
    fn scan_string(&mut self, mut out: Option<&mut String>) -> Result<(), String> {
        self.expect(b'"')?;
        loop {
            let run_start = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            if let Some(out) = out.as_deref_mut() {
                // The input is a &str and the run stops only at ASCII bytes: valid UTF-8.
                out.push_str(std::str::from_utf8(&self.s[run_start..self.pos]).expect("UTF-8"));
            }
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.err("invalid escape")),
                    };
                    if let Some(out) = out.as_deref_mut() {
                        out.push(c);
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    /// The character of a `\u` escape (its `\u` consumed), a surrogate pair included.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.s[self.pos..].starts_with(b"\\u") {
                return Err(self.err("unpaired surrogate"));
            }
            self.pos += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("unpaired surrogate"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else if (0xDC00..0xE000).contains(&hi) {
            return Err(self.err("unpaired surrogate"));
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miri_json_validator_accepts_valid_and_rejects_invalid() {
        for good in [
            r#" {"a": [1, -2.5e3, true, null, {}], "b": "x\"\u00e9\ud83d\ude00", "c": {"d": []}} "#,
            "[]",
            "0",
            "\"\"",
        ] {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1,]",
            "01",
            "1.",
            "-",
            "{\"a\" 1}",
            "{\"a\":1}x",
            "\"\\x\"",
            "\"\\ud800\"",
            "tru",
            "{a:1}",
            "\"\u{1}\"",
            "1e",
            "[1 2]",
            "[1}",
            "{\"a\":1]",
        ] {
            assert!(validate(bad).is_err(), "accepted {bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(validate(&deep).unwrap_err().contains("nested too deeply"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(validate(&ok), Ok(()));
    }

    #[test]
    fn miri_json_pull_methods_read_keys_strings_and_integers() {
        let text = r#"{"k": "v\n", "s": [1, 20, 0], "skip": {"x": [[]]}, "n": [-1]}"#;
        let mut p = Parser::new(text);
        p.begin_object().unwrap();
        let mut first = true;
        let (k, at) = p.next_key(&mut first).unwrap().unwrap();
        assert_eq!((k.as_str(), at), ("k", 1));
        assert_eq!(p.kind(), Kind::String);
        assert_eq!(p.string().unwrap(), "v\n");
        assert_eq!(p.next_key(&mut first).unwrap().unwrap().0, "s");
        assert_eq!(p.uint_array("s").unwrap(), [1, 20, 0]);
        assert_eq!(p.next_key(&mut first).unwrap().unwrap().0, "skip");
        assert_eq!(p.kind(), Kind::Object);
        p.skip_value().unwrap();
        assert_eq!(p.next_key(&mut first).unwrap().unwrap().0, "n");
        assert!(p
            .uint_array("n")
            .unwrap_err()
            .contains("-1, not a non-negative"));
    }
}
