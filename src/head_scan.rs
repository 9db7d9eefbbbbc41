//! `HeadScan`: finds where a request head ends in the bytes a client sends,
//! as they arrive, and notes whether it carried `Content-Length` and
//! `Transfer-Encoding` (Pingora drops the one when both are present, so the
//! raw head is the only place left to see both). Pure; no IO.

/// Longest header-name prefix compared, `transfer-encoding:`.
const NAME_PREFIX: usize = 18;

#[derive(Debug, Default, Clone)]
pub struct HeadScan {
    /// Bytes of the current line so far (CR excluded when it ends the line).
    line_len: usize,
    /// The current line's first bytes, lowercased.
    prefix: [u8; NAME_PREFIX],
    /// The previous byte was CR.
    cr: bool,
    /// A non-empty line was seen (leading empty lines are skipped, as
    /// httparse skips them).
    started: bool,
    pub content_length: bool,
    pub transfer_encoding: bool,
}

impl HeadScan {
    /// Feeds the next bytes. `Some(n)`: the head ended within `data`, after
    /// its first `n` bytes (the rest is body or the next request).
    pub fn feed(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                let empty = self.line_len == 0 || (self.line_len == 1 && self.cr);
                if empty {
                    if self.started {
                        return Some(i + 1);
                    }
                } else {
                    self.started = true;
                    self.check_name();
                }
                self.line_len = 0;
                self.cr = false;
                continue;
            }
            if self.line_len < NAME_PREFIX {
                self.prefix[self.line_len] = b.to_ascii_lowercase();
            }
            self.line_len += 1;
            self.cr = b == b'\r';
        }
        None
    }

    fn check_name(&mut self) {
        let line = &self.prefix[..self.line_len.min(NAME_PREFIX)];
        if line.starts_with(b"content-length:") {
            self.content_length = true;
        } else if line.starts_with(b"transfer-encoding:") {
            self.transfer_encoding = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> (HeadScan, Option<usize>) {
        let mut s = HeadScan::default();
        let mut seen = 0;
        for p in parts {
            if let Some(n) = s.feed(p) {
                return (s, Some(seen + n));
            }
            seen += p.len();
        }
        (s, None)
    }

    #[test]
    fn finds_the_end_of_the_head_in_any_split() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
        let mut whole = head.to_vec();
        whole.extend_from_slice(b"{}GET");
        for cut in 0..whole.len() {
            let (s, end) = scan(&[&whole[..cut], &whole[cut..]]);
            assert_eq!(end, Some(head.len()), "cut at {cut}");
            assert!(s.content_length && !s.transfer_encoding);
        }
        // Bare LF line endings, as httparse accepts them.
        assert_eq!(scan(&[b"GET / HTTP/1.1\nHost: x\n\nrest"]).1, Some(24));
    }

    #[test]
    fn leading_empty_lines_are_not_the_end() {
        let (_, end) = scan(&[b"\r\n\r\nGET / HTTP/1.1\r\n", b"\r\n"]);
        assert_eq!(end, Some(22));
        assert_eq!(scan(&[b"\r\n\r\n\r\n"]).1, None);
    }

    #[test]
    fn notes_both_framing_headers_in_any_case() {
        let (s, end) = scan(&[b"POST / HTTP/1.1\r\ncontent-LENGTH: 3\r\nTransfer-Encoding: chunked\r\n\r\n"]);
        assert!(end.is_some() && s.content_length && s.transfer_encoding);
        let (s, _) = scan(&[b"POST / HTTP/1.1\r\nX-Content-Length: 3\r\nX: transfer-encoding:\r\n\r\n"]);
        assert!(!s.content_length && !s.transfer_encoding);
    }
}
