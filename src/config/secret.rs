//! `Secret`: the gateway token or password. It prints as `*****`, and the
//! only comparison it offers runs in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The raw value, for the `connect` frame only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality. Length differences are folded in without an
    /// early return, so the time depends on the candidate's length only.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let own = self.0.as_bytes();
        let len_eq = (own.len() as u64).ct_eq(&(candidate.len() as u64));
        // Compare against a same-length view so `ct_eq` does the work even
        // when lengths differ; the result is masked by `len_eq`.
        let padded: Vec<u8> = (0..candidate.len()).map(|i| own.get(i).copied().unwrap_or(0)).collect();
        (len_eq & padded.as_slice().ct_eq(candidate)).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(*****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("test-token".into());
        assert!(s.matches(b"test-token"));
        assert!(!s.matches(b"test-tokem"));
        assert!(!s.matches(b"test-token "));
        assert!(!s.matches(b"test"));
        assert!(!s.matches(b""));
        assert!(!Secret::new(String::new()).matches(b"x"));
    }

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }
}
