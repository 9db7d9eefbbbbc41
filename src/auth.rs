//! Bearer authentication of the chat route, as the gateway does it: the
//! `Bearer` scheme in any case, the secret compared in constant time, and,
//! when `gateway.auth.rateLimit` is set, a per-IP lockout after repeated
//! failures. The lockout table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{AuthMode, RateLimit, Secret};
use crate::error::ChatError;
use crate::metrics;

/// Most distinct client IPs tracked at once; beyond it the stalest go first.
const MAX_TRACKED_CLIENTS: usize = 10_000;

pub struct Authenticator {
    mode: AuthMode,
    secret: Option<Secret>,
    limiter: Limiter,
}

/// A rejection, and how long to hold the answer back (the gateway slows
/// repeated loopback mismatches instead of locking loopback out).
#[derive(Debug, PartialEq)]
pub struct Rejection {
    pub error: ChatError,
    pub delay: Option<Duration>,
}

impl Authenticator {
    pub fn new(mode: AuthMode, secret: Option<Secret>, rate_limit: RateLimit) -> Self {
        let limiter = Limiter { config: rate_limit, table: Mutex::new(HashMap::new()), tracked: AtomicUsize::new(0) };
        Authenticator { mode, secret, limiter }
    }

    /// Checks the `Authorization` header of a request from `client`, in the
    /// gateway's order: lockout first, then the bearer. Only a wrong secret
    /// counts as a failure; a missing one does not.
    pub fn check(&self, authorization: Option<&[u8]>, client: Option<IpAddr>) -> Result<(), Rejection> {
        if self.mode == AuthMode::None {
            return Ok(());
        }
        let now = Instant::now();
        let ip = client.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let exempt = self.limiter.config.exempt_loopback && ip.is_loopback();
        if !exempt {
            if let Some(secs) = self.limiter.locked(ip, now) {
                metrics::AUTH_FAILURES.with_label_values(&["rate_limited"]).inc();
                return Err(Rejection { error: ChatError::RateLimited { retry_after_secs: secs }, delay: None });
            }
        }
        let Some(presented) = authorization.and_then(bearer) else {
            metrics::AUTH_FAILURES.with_label_values(&["missing"]).inc();
            return Err(Rejection { error: ChatError::Unauthorized, delay: None });
        };
        if self.secret.as_ref().is_some_and(|s| s.matches(presented)) {
            self.limiter.clear(ip);
            return Ok(());
        }
        metrics::AUTH_FAILURES.with_label_values(&["mismatch"]).inc();
        let failures = self.limiter.record_failure(ip, now, !exempt);
        let delay = exempt.then(|| {
            let n = failures.clamp(1, 6) as u32 - 1;
            Duration::from_millis((250u64 << n).min(5_000))
        });
        Err(Rejection { error: ChatError::Unauthorized, delay })
    }
}

/// The credential of `Authorization: Bearer <secret>`, scheme case-insensitive, trimmed.
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    if header.len() < 7 || !header[..7].eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = header[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

struct Limiter {
    config: RateLimit,
    table: Mutex<HashMap<IpAddr, Entry>>,
    /// Entries in `table`, readable without the lock (fast path: empty).
    tracked: AtomicUsize,
}

#[derive(Default)]
struct Entry {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
    last_seen: Option<Instant>,
}

impl Limiter {
    /// Seconds left on a lockout, rounded up.
    fn locked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let table = self.table.lock().expect("lockout table");
        let until = table.get(&ip)?.locked_until?;
        let left = until.checked_duration_since(now)?;
        Some(left.as_millis().div_ceil(1000).max(1) as u64)
    }

    fn clear(&self, ip: IpAddr) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut table = self.table.lock().expect("lockout table");
        table.remove(&ip);
        self.tracked.store(table.len(), Ordering::Relaxed);
    }

    /// Records a mismatch; returns the failures now in the window.
    fn record_failure(&self, ip: IpAddr, now: Instant, can_lock: bool) -> usize {
        let mut table = self.table.lock().expect("lockout table");
        if table.len() >= MAX_TRACKED_CLIENTS && !table.contains_key(&ip) {
            evict(&mut table, now, &self.config);
        }
        let entry = table.entry(ip).or_default();
        entry.last_seen = Some(now);
        let window = self.config.window;
        entry.failures.retain(|t| now.duration_since(*t) < window);
        entry.failures.push(now);
        let count = entry.failures.len();
        if can_lock && count >= self.config.max_attempts as usize {
            entry.locked_until = Some(now + self.config.lockout);
            entry.failures.clear();
        }
        // Bounded history: only the count up to the lockout threshold matters.
        let keep = (self.config.max_attempts as usize).max(6);
        if entry.failures.len() > keep {
            let drop = entry.failures.len() - keep;
            entry.failures.drain(..drop);
        }
        self.tracked.store(table.len(), Ordering::Relaxed);
        count
    }
}

/// Drops expired entries; if none expired, the least recently seen one.
fn evict(table: &mut HashMap<IpAddr, Entry>, now: Instant, config: &RateLimit) {
    table.retain(|_, e| {
        let locked = e.locked_until.is_some_and(|u| u > now);
        let recent = e.failures.iter().any(|t| now.duration_since(*t) < config.window);
        locked || recent
    });
    if table.len() >= MAX_TRACKED_CLIENTS {
        if let Some(oldest) = table.iter().min_by_key(|(_, e)| e.last_seen).map(|(ip, _)| *ip) {
            table.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_attempts: u32) -> RateLimit {
        RateLimit {
            max_attempts,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            exempt_loopback: true,
        }
    }

    fn auth(max_attempts: u32) -> Authenticator {
        Authenticator::new(AuthMode::Token, Some(Secret::new("test-token".into())), limit(max_attempts))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearerabc"), None);
    }

    #[test]
    fn accepts_only_the_secret() {
        let a = auth(10);
        let remote = Some("10.1.1.1".parse().unwrap());
        assert!(a.check(Some(b"Bearer test-token"), remote).is_ok());
        assert_eq!(a.check(Some(b"Bearer wrong"), remote).unwrap_err().error, ChatError::Unauthorized);
        assert_eq!(a.check(None, remote).unwrap_err().error, ChatError::Unauthorized);
        let none = Authenticator::new(AuthMode::None, None, limit(10));
        assert!(none.check(None, None).is_ok());
    }

    #[test]
    fn locks_out_remote_clients_after_max_attempts() {
        let a = auth(3);
        let remote: IpAddr = "10.0.0.7".parse().unwrap();
        for _ in 0..3 {
            let r = a.check(Some(b"Bearer nope"), Some(remote)).unwrap_err();
            assert_eq!(r, Rejection { error: ChatError::Unauthorized, delay: None });
        }
        match a.check(Some(b"Bearer test-token"), Some(remote)).unwrap_err().error {
            ChatError::RateLimited { retry_after_secs } => {
                assert!((299..=300).contains(&retry_after_secs))
            }
            other => panic!("expected a lockout, got {other:?}"),
        }
        for _ in 0..5 {
            assert!(a.check(None, Some("10.0.0.8".parse().unwrap())).is_err(), "missing tokens are not counted");
        }
        assert!(a.check(Some(b"Bearer test-token"), Some("10.0.0.8".parse().unwrap())).is_ok());
    }

    #[test]
    fn loopback_is_never_locked_but_slowed() {
        let a = auth(3);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let delays: Vec<u128> = (0..7)
            .map(|_| a.check(Some(b"Bearer nope"), Some(local)).unwrap_err().delay.unwrap().as_millis())
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert!(a.check(Some(b"Bearer test-token"), Some(local)).is_ok(), "loopback is exempt from lockout");
        assert_eq!(
            a.check(Some(b"Bearer nope"), Some(local)).unwrap_err().delay,
            Some(Duration::from_millis(250)),
            "success resets"
        );
    }

    #[test]
    fn lockout_table_is_bounded() {
        let a = auth(100);
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = a.check(Some(b"Bearer nope"), Some(ip));
        }
        let n = a.limiter.table.lock().unwrap().len();
        assert!(n <= MAX_TRACKED_CLIENTS, "table grew to {n}");
    }
}
