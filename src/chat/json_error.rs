//! The message V8's `JSON.parse` gives for a malformed body. The gateway
//! answers it verbatim in its 400, so clawbridge re-derives it: a small
//! scanner that walks the text the way V8's `JsonParser` does and reports
//! the first error with V8's wording, position (UTF-16 units), line and
//! column. Only runs on bodies serde_json already rejected. Pure.

/// V8's message for `text` (already trimmed), or `None` if V8 would accept it.
pub fn v8_message(text: &str) -> Option<String> {
    let src: Vec<u16> = text.encode_utf16().collect();
    let mut p = Scanner { src: &src, pos: 0, depth: 0 };
    let err = match p.value() {
        // Too deep to follow without risking the stack: the caller answers
        // its own message (serde_json refused the body at 128 levels anyway).
        Err(Error::TooDeep) => return None,
        Err(e) => e,
        Ok(()) => {
            p.skip_ws();
            if p.pos == src.len() {
                return None;
            }
            Error::At(Kind::NonWhitespaceAfter, p.pos)
        }
    };
    Some(render(&src, err))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    NonWhitespaceAfter,
    PropNameOrRBrace,
    DoubleQuotedPropName,
    Colon,
    CommaOrRBrace,
    CommaOrRBrack,
    UnterminatedString,
    BadControl,
    BadEscape,
    BadUnicode,
    NoNumberAfterMinus,
    UnterminatedFraction,
    ExponentMissing,
    UnexpectedNumber,
    UnexpectedString,
}

#[derive(Debug)]
enum Error {
    EndOfInput,
    At(Kind, usize),
    /// An unexpected character, reported with context.
    Token(usize),
    /// Nesting deeper than [`MAX_DEPTH`]; never rendered.
    TooDeep,
}

/// Nesting the recursive scanner follows. V8 has no such limit, but without
/// one a body of 100,000 `[` overflowed the worker's stack and aborted the
/// whole process.
const MAX_DEPTH: usize = 512;

struct Scanner<'a> {
    src: &'a [u16],
    pos: usize,
    depth: usize,
}

const fn u(c: char) -> u16 {
    c as u16
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u16> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c == u(' ') || c == u('\t') || c == u('\n') || c == u('\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<(), Error> {
        self.skip_ws();
        let Some(c) = self.peek() else {
            return Err(Error::EndOfInput);
        };
        match c {
            c if c == u('"') => self.string(),
            c if c == u('-') || (u('0')..=u('9')).contains(&c) => self.number(),
            c if c == u('{') || c == u('[') => {
                if self.depth == MAX_DEPTH {
                    return Err(Error::TooDeep);
                }
                self.depth += 1;
                let r = if c == u('{') { self.object() } else { self.array() };
                self.depth -= 1;
                r
            }
            c if c == u('t') => self.literal("true"),
            c if c == u('f') => self.literal("false"),
            c if c == u('n') => self.literal("null"),
            _ => Err(Error::Token(self.pos)),
        }
    }

    fn object(&mut self) -> Result<(), Error> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(u('}')) {
            self.pos += 1;
            return Ok(());
        }
        let mut first = true;
        loop {
            self.skip_ws();
            if self.peek() != Some(u('"')) {
                let kind = if first { Kind::PropNameOrRBrace } else { Kind::DoubleQuotedPropName };
                return Err(Error::At(kind, self.pos));
            }
            first = false;
            self.string()?;
            self.skip_ws();
            if self.peek() != Some(u(':')) {
                return Err(Error::At(Kind::Colon, self.pos));
            }
            self.pos += 1;
            self.value()?;
            self.skip_ws();
            match self.peek() {
                Some(c) if c == u(',') => self.pos += 1,
                Some(c) if c == u('}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Error::At(Kind::CommaOrRBrace, self.pos)),
            }
        }
    }

    fn array(&mut self) -> Result<(), Error> {
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(u(']')) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.skip_ws();
            match self.peek() {
                Some(c) if c == u(',') => self.pos += 1,
                Some(c) if c == u(']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Error::At(Kind::CommaOrRBrack, self.pos)),
            }
        }
    }

    fn string(&mut self) -> Result<(), Error> {
        self.pos += 1;
        loop {
            let Some(c) = self.peek() else {
                return Err(Error::At(Kind::UnterminatedString, self.pos));
            };
            match c {
                c if c == u('"') => {
                    self.pos += 1;
                    return Ok(());
                }
                c if c < 0x20 => return Err(Error::At(Kind::BadControl, self.pos)),
                c if c == u('\\') => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(Error::EndOfInput);
                    };
                    if e == u('u') {
                        for _ in 0..4 {
                            self.pos += 1;
                            match self.peek() {
                                Some(h) if (h as u8 as u16 == h) && (h as u8).is_ascii_hexdigit() => {}
                                _ => return Err(Error::At(Kind::BadUnicode, self.pos)),
                            }
                        }
                    } else if !"\"\\/bfnrt".encode_utf16().any(|x| x == e) {
                        return Err(Error::At(Kind::BadEscape, self.pos));
                    }
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if (u('0')..=u('9')).contains(&c)) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), Error> {
        if self.peek() == Some(u('-')) {
            self.pos += 1;
            if !matches!(self.peek(), Some(c) if (u('0')..=u('9')).contains(&c)) {
                return Err(Error::At(Kind::NoNumberAfterMinus, self.pos));
            }
        }
        if self.peek() == Some(u('0')) {
            self.pos += 1;
            if matches!(self.peek(), Some(c) if (u('0')..=u('9')).contains(&c)) {
                return Err(Error::At(Kind::UnexpectedNumber, self.pos));
            }
        } else {
            self.digits();
        }
        if self.peek() == Some(u('.')) {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(Error::At(Kind::UnterminatedFraction, self.pos));
            }
        }
        if matches!(self.peek(), Some(c) if c == u('e') || c == u('E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(c) if c == u('+') || c == u('-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(Error::At(Kind::ExponentMissing, self.pos));
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), Error> {
        for expected in word.encode_utf16() {
            match self.peek() {
                None => return Err(Error::EndOfInput),
                Some(c) if c == expected => self.pos += 1,
                Some(c) if c == u('-') || (u('0')..=u('9')).contains(&c) => {
                    return Err(Error::At(Kind::UnexpectedNumber, self.pos))
                }
                Some(c) if c == u('"') => return Err(Error::At(Kind::UnexpectedString, self.pos)),
                Some(_) => return Err(Error::Token(self.pos)),
            }
        }
        Ok(())
    }
}

fn render(src: &[u16], err: Error) -> String {
    let (kind, pos) = match err {
        Error::EndOfInput => return "Unexpected end of JSON input".to_string(),
        Error::Token(pos) => return token_message(src, pos),
        Error::TooDeep => return "Unexpected end of JSON input".to_string(),
        Error::At(kind, pos) => (kind, pos),
    };
    let what = match kind {
        Kind::NonWhitespaceAfter => "Unexpected non-whitespace character after JSON",
        Kind::PropNameOrRBrace => "Expected property name or '}' in JSON",
        Kind::DoubleQuotedPropName => "Expected double-quoted property name in JSON",
        Kind::Colon => "Expected ':' after property name in JSON",
        Kind::CommaOrRBrace => "Expected ',' or '}' after property value in JSON",
        Kind::CommaOrRBrack => "Expected ',' or ']' after array element in JSON",
        Kind::UnterminatedString => "Unterminated string in JSON",
        Kind::BadControl => "Bad control character in string literal in JSON",
        Kind::BadEscape => "Bad escaped character in JSON",
        Kind::BadUnicode => "Bad Unicode escape in JSON",
        Kind::NoNumberAfterMinus => "No number after minus sign in JSON",
        Kind::UnterminatedFraction => "Unterminated fractional number in JSON",
        Kind::ExponentMissing => "Exponent part is missing a number in JSON",
        Kind::UnexpectedNumber => "Unexpected number in JSON",
        Kind::UnexpectedString => "Unexpected string in JSON",
    };
    let (line, column) = location(src, pos);
    format!("{what} at position {pos} (line {line} column {column})")
}

/// `\n`, `\r` and `\r\n` each end a line.
fn location(src: &[u16], pos: usize) -> (usize, usize) {
    let (mut line, mut start, mut i) = (1, 0, 0);
    while i < pos.min(src.len()) {
        if src[i] == u('\r') && src.get(i + 1) == Some(&u('\n')) && i + 1 < pos {
            i += 1;
        }
        if src[i] == u('\n') || src[i] == u('\r') {
            line += 1;
            start = i + 1;
        }
        i += 1;
    }
    (line, pos - start + 1)
}

/// "Unexpected token 'X', <context> is not valid JSON", or the whole-source
/// form for `NaN`, `Infinity`, `undefined` and `[object Object]`.
fn token_message(src: &[u16], pos: usize) -> String {
    let text = |a: usize, b: usize| String::from_utf16_lossy(&src[a.min(src.len())..b.min(src.len())]);
    let whole = text(0, src.len());
    if matches!(whole.as_str(), "NaN" | "Infinity" | "undefined" | "[object Object]") {
        return format!("\"{whole}\" is not valid JSON");
    }
    let token = text(pos, pos + 1);
    let n = src.len();
    const CONTEXT: usize = 10;
    if n < 21 {
        format!("Unexpected token '{token}', \"{whole}\" is not valid JSON")
    } else if pos < CONTEXT {
        format!("Unexpected token '{token}', \"{}\"... is not valid JSON", text(0, pos + CONTEXT))
    } else if pos < n - CONTEXT {
        format!("Unexpected token '{token}', ...\"{}\"... is not valid JSON", text(pos - CONTEXT, pos + CONTEXT))
    } else {
        format!("Unexpected token '{token}', ...\"{}\" is not valid JSON", text(pos - CONTEXT, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages produced by Node 24's `JSON.parse` (the gateway's runtime),
    /// see tests/fixtures/gen/json-error-vectors.mjs.
    #[test]
    fn matches_v8_messages() {
        let path = format!("{}/tests/fixtures/json-error-vectors.json", env!("CARGO_MANIFEST_DIR"));
        let vectors: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(vectors.len() > 200);
        let mut failures = Vec::new();
        for v in &vectors {
            let input = v["input"].as_str().unwrap();
            let want = v["message"].as_str().unwrap();
            let got = v8_message(input);
            if got.as_deref() != Some(want) {
                failures.push(format!("{input:?}\n  want {want:?}\n  got  {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), vectors.len(), failures.join("\n"));
    }

    #[test]
    fn deep_nesting_is_bounded_not_a_stack_overflow() {
        let deep = "[".repeat(1_000_000);
        assert_eq!(v8_message(&deep), None);
        let deep = "{\"a\":".repeat(200_000);
        assert_eq!(v8_message(&deep), None);
        let shallow = "[".repeat(MAX_DEPTH);
        assert_eq!(v8_message(&shallow).as_deref(), Some("Unexpected end of JSON input"));
    }

    #[test]
    fn valid_json_has_no_message() {
        assert_eq!(v8_message(r#"{"a":[1,-2.5e3,"x\u00e9",true,null]}"#), None);
    }
}
