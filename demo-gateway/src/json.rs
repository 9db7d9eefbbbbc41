//! Tiny ordered JSON object writer: the wire frames must keep the key order of the real gateway captures, and
//! `serde_json::Map` sorts keys unless `preserve_order` is enabled (which would leak into the whole workspace).

use serde::Serialize;

/// Builds one JSON object (or array) into a byte buffer, keys in call order.
#[derive(Debug)]
pub struct Obj {
    buf: Vec<u8>,
    first: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    pub fn new() -> Self {
        Self::with_capacity(128)
    }

    pub fn with_capacity(cap: usize) -> Self {
        let mut buf = Vec::with_capacity(cap);
        buf.push(b'{');
        Obj { buf, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        write_str(&mut self.buf, k);
        self.buf.push(b':');
    }

    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        write_str(&mut self.buf, v);
        self
    }

    pub fn opt_str(self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.str(k, v),
            None => self,
        }
    }

    pub fn str_or_null(mut self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.str(k, v),
            None => {
                self.key(k);
                self.buf.extend_from_slice(b"null");
                self
            }
        }
    }

    pub fn num(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        self.buf.extend_from_slice(v.to_string().as_bytes());
        self
    }

    pub fn int(mut self, k: &str, v: i64) -> Self {
        self.key(k);
        self.buf.extend_from_slice(v.to_string().as_bytes());
        self
    }

    pub fn bool(mut self, k: &str, v: bool) -> Self {
        self.key(k);
        self.buf.extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        self
    }

    pub fn null(mut self, k: &str) -> Self {
        self.key(k);
        self.buf.extend_from_slice(b"null");
        self
    }

    /// Insert already-serialised JSON.
    pub fn raw(mut self, k: &str, json: &str) -> Self {
        self.key(k);
        self.buf.extend_from_slice(json.as_bytes());
        self
    }

    pub fn obj(self, k: &str, o: Obj) -> Self {
        let s = o.finish();
        self.raw(k, &s)
    }

    pub fn strs<S: AsRef<str>>(mut self, k: &str, items: &[S]) -> Self {
        self.key(k);
        self.buf.push(b'[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            write_str(&mut self.buf, s.as_ref());
        }
        self.buf.push(b']');
        self
    }

    /// Any `Serialize` value (used for `serde_json::Value` echoes).
    pub fn value<T: Serialize + ?Sized>(mut self, k: &str, v: &T) -> Self {
        self.key(k);
        serde_json::to_writer(&mut self.buf, v).expect("serialisable value");
        self
    }

    pub fn finish(mut self) -> String {
        self.buf.push(b'}');
        String::from_utf8(self.buf).expect("writer only emits UTF-8")
    }
}

/// A JSON array of already-serialised items.
pub fn raw_array<S: AsRef<str>>(items: &[S]) -> String {
    let mut s = String::with_capacity(2 + items.iter().map(|i| i.as_ref().len() + 1).sum::<usize>());
    s.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(it.as_ref());
    }
    s.push(']');
    s
}

pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(buf, s).expect("string serialisation cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_escapes() {
        let s = Obj::new()
            .str("z", "a\"b")
            .num("a", 1)
            .bool("m", false)
            .null("n")
            .strs("l", &["x", "y"])
            .obj("o", Obj::new().int("i", -2))
            .finish();
        assert_eq!(s, r#"{"z":"a\"b","a":1,"m":false,"n":null,"l":["x","y"],"o":{"i":-2}}"#);
        assert_eq!(raw_array(&["1", "{}"]), "[1,{}]");
        assert_eq!(Obj::new().finish(), "{}");
    }
}
