//! Bearer authentication of the chat route, as the gateway does it: the
//! `Bearer` scheme in any case, the secret compared in constant time, and a
//! per-client lockout after repeated failures (`gateway.auth.rateLimit`,
//! on by default). The client is the address the gateway would key on
//! (the forwarded client behind a trusted proxy, see `ingress`). The
//! lockout table is bounded and fails closed, as the gateway's does: when
//! it is full only unlocked entries are evicted, and when every entry is
//! locked, newcomers are refused until a lock expires.
//!
//! The mode, secret and rate limit are one [`AuthPolicy`], swapped whole
//! when the gateway's file changes (`reload`): from that moment the new
//! secret is accepted and the old one refused. The lockout table is kept.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{AuthMode, GatewayFile, Live, RateLimit, Secret};
use crate::error::ApiError;
use crate::ingress::attribution::{canonical, is_loopback};
use crate::metrics;

/// Most distinct clients tracked at once (the gateway's `maxEntries`).
const MAX_TRACKED_CLIENTS: usize = 10_000;
/// Failures a loopback client keeps for its delay (250 ms doubling to 5 s).
const LOOPBACK_HISTORY: usize = 6;

pub struct Authenticator {
    policy: Live<AuthPolicy>,
    limiter: Limiter,
}

/// What the bearer check takes from the gateway's file.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub mode: AuthMode,
    pub secret: Option<Secret>,
    pub rate_limit: RateLimit,
}

impl AuthPolicy {
    pub fn of(file: &GatewayFile) -> Self {
        AuthPolicy { mode: file.auth_mode, secret: file.secret.clone(), rate_limit: file.rate_limit.clone() }
    }
}

/// A rejection, and how long to hold the answer back (the gateway slows
/// repeated loopback mismatches instead of locking loopback out).
#[derive(Debug, PartialEq)]
pub struct Rejection {
    pub error: ApiError,
    pub delay: Option<Duration>,
}

impl Authenticator {
    pub fn new(mode: AuthMode, secret: Option<Secret>, rate_limit: RateLimit) -> Self {
        Authenticator {
            policy: Live::new(AuthPolicy { mode, secret, rate_limit }),
            limiter: Limiter::new(MAX_TRACKED_CLIENTS),
        }
    }

    /// Switches to a reloaded policy at once: requests checked after this
    /// call see only the new secret.
    pub fn set_policy(&self, policy: AuthPolicy) {
        self.policy.store(policy);
    }

    /// Checks the `Authorization` header of a request from `client`, in the
    /// gateway's order: lockout first, then the bearer. Only a wrong secret
    /// counts as a failure; a missing one does not.
    /// `token`, `password` or `none`: the gateway's name for the mode.
    pub fn mode_label(&self) -> &'static str {
        match self.policy.load().mode {
            AuthMode::Token => "token",
            AuthMode::Password => "password",
            AuthMode::None => "none",
        }
    }

    pub fn check(&self, authorization: Option<&[u8]>, client: IpAddr) -> Result<(), Rejection> {
        let policy: Arc<AuthPolicy> = self.policy.load();
        if policy.mode == AuthMode::None {
            return Ok(());
        }
        let limit = &policy.rate_limit;
        let now = Instant::now();
        let ip = canonical(client);
        let exempt = limit.exempt_loopback && is_loopback(ip);
        if !exempt {
            if let Some(secs) = self.limiter.locked(ip, now, limit) {
                metrics::AUTH_FAILURES.with_label_values(&["rate_limited"]).inc();
                return Err(Rejection { error: ApiError::RateLimited { retry_after_secs: secs }, delay: None });
            }
        }
        let Some(presented) = authorization.and_then(bearer) else {
            metrics::AUTH_FAILURES.with_label_values(&["missing"]).inc();
            return Err(Rejection { error: ApiError::Unauthorized, delay: None });
        };
        if policy.secret.as_ref().is_some_and(|s| s.matches(presented)) {
            self.limiter.clear(ip);
            return Ok(());
        }
        metrics::AUTH_FAILURES.with_label_values(&["mismatch"]).inc();
        let failures = self.limiter.record_failure(ip, now, exempt, limit);
        let delay = exempt.then(|| {
            let n = failures.clamp(1, LOOPBACK_HISTORY) as u32 - 1;
            Duration::from_millis((250u64 << n).min(5_000))
        });
        Err(Rejection { error: ApiError::Unauthorized, delay })
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
    capacity: usize,
    table: Mutex<Table>,
    /// Entries plus an overflow lock, readable without the lock (fast path: 0).
    active: AtomicUsize,
}

#[derive(Default)]
struct Table {
    entries: HashMap<IpAddr, Entry>,
    /// Insertion order for eviction; `(ip, seq)` pairs whose `seq` no longer
    /// matches the entry are stale and skipped.
    order: VecDeque<(IpAddr, u64)>,
    next_seq: u64,
    /// Every entry was locked when a newcomer failed: newcomers are refused
    /// until then, or until the first lock in the table expires.
    overflow: Option<Overflow>,
}

#[derive(Clone, Copy)]
struct Overflow {
    until: Instant,
    first_unlock: Instant,
}

struct Entry {
    seq: u64,
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Limiter {
    fn new(capacity: usize) -> Self {
        Limiter { capacity, table: Mutex::new(Table::default()), active: AtomicUsize::new(0) }
    }

    /// Seconds left on a lockout (the client's own, or the overflow lock
    /// for a client not in a full table), rounded up.
    fn locked(&self, ip: IpAddr, now: Instant, config: &RateLimit) -> Option<u64> {
        if self.active.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut table = self.table.lock().expect("lockout table");
        let until = match table.entries.get(&ip) {
            Some(entry) => entry.locked_until.filter(|u| *u > now)?,
            None => table.overflow_lock(now, self.capacity, config)?,
        };
        self.publish(&table);
        Some(until.duration_since(now).as_millis().div_ceil(1000).max(1) as u64)
    }

    fn clear(&self, ip: IpAddr) {
        if self.active.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut table = self.table.lock().expect("lockout table");
        table.entries.remove(&ip);
        self.publish(&table);
    }

    /// Records a mismatch; returns the failures now in the window.
    fn record_failure(&self, ip: IpAddr, now: Instant, exempt: bool, config: &RateLimit) -> usize {
        let mut table = self.table.lock().expect("lockout table");
        let count = table.record(ip, now, exempt, self.capacity, config);
        self.publish(&table);
        count
    }

    fn publish(&self, table: &Table) {
        self.active.store(table.entries.len() + usize::from(table.overflow.is_some()), Ordering::Relaxed);
    }
}

impl Table {
    fn record(&mut self, ip: IpAddr, now: Instant, exempt: bool, capacity: usize, config: &RateLimit) -> usize {
        if !self.entries.contains_key(&ip) {
            if self.entries.len() >= capacity && !self.make_room(now, config) {
                // Fail closed: nobody is evicted, and newcomers wait.
                let first_unlock = self.entries.values().filter_map(|e| e.locked_until).min().unwrap_or(now);
                let until = self.overflow.map_or(now, |o| o.until).max(now + config.lockout);
                self.overflow = Some(Overflow { until, first_unlock });
                return 1;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.entries.insert(ip, Entry { seq, failures: VecDeque::new(), locked_until: None });
            self.order.push_back((ip, seq));
            self.compact();
        }
        let entry = self.entries.get_mut(&ip).expect("present");
        if !exempt && entry.locked_until.is_some_and(|u| u > now) {
            return entry.failures.len();
        }
        entry.refresh(now, config.window);
        entry.failures.push_back(now);
        let count = entry.failures.len();
        if exempt {
            while entry.failures.len() > LOOPBACK_HISTORY {
                entry.failures.pop_front();
            }
        } else if count >= config.max_attempts as usize {
            entry.locked_until = Some(now + config.lockout);
        }
        count
    }

    /// The overflow lock's end, for a client not in the table. Lifted once
    /// a lock in the table has expired and room can be made.
    fn overflow_lock(&mut self, now: Instant, capacity: usize, config: &RateLimit) -> Option<Instant> {
        let overflow = self.overflow?;
        if now >= overflow.until {
            self.overflow = None;
            return None;
        }
        if now >= overflow.first_unlock && (self.entries.len() < capacity || self.make_room(now, config)) {
            self.overflow = None;
            return None;
        }
        Some(overflow.until)
    }

    /// Evicts the oldest entry that is not locked; `false` if every entry is.
    fn make_room(&mut self, now: Instant, config: &RateLimit) -> bool {
        let mut locked_seen = 0;
        while locked_seen < self.entries.len() {
            let Some((ip, seq)) = self.order.pop_front() else { return false };
            let Some(entry) = self.entries.get_mut(&ip).filter(|e| e.seq == seq) else { continue };
            entry.refresh(now, config.window);
            if entry.locked_until.is_none() {
                self.entries.remove(&ip);
                return true;
            }
            self.order.push_back((ip, seq));
            locked_seen += 1;
        }
        false
    }

    /// Drops stale order records once they outnumber live entries.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 1024 {
            let entries = &self.entries;
            self.order.retain(|(ip, seq)| entries.get(ip).is_some_and(|e| e.seq == *seq));
        }
    }
}

impl Entry {
    /// Ends an expired lock and forgets failures outside the window.
    fn refresh(&mut self, now: Instant, window: Duration) {
        if self.locked_until.is_some_and(|u| now >= u) {
            self.locked_until = None;
            self.failures.clear();
        }
        while self.failures.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.failures.pop_front();
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
        let remote: IpAddr = "10.1.1.1".parse().unwrap();
        assert!(a.check(Some(b"Bearer test-token"), remote).is_ok());
        assert_eq!(a.check(Some(b"Bearer wrong"), remote).unwrap_err().error, ApiError::Unauthorized);
        assert_eq!(a.check(None, remote).unwrap_err().error, ApiError::Unauthorized);
        let none = Authenticator::new(AuthMode::None, None, limit(10));
        assert!(none.check(None, remote).is_ok());
    }

    #[test]
    fn locks_out_remote_clients_after_max_attempts() {
        let a = auth(3);
        let remote: IpAddr = "10.0.0.7".parse().unwrap();
        for _ in 0..3 {
            let r = a.check(Some(b"Bearer nope"), remote).unwrap_err();
            assert_eq!(r, Rejection { error: ApiError::Unauthorized, delay: None });
        }
        match a.check(Some(b"Bearer test-token"), remote).unwrap_err().error {
            ApiError::RateLimited { retry_after_secs } => {
                assert!((299..=300).contains(&retry_after_secs))
            }
            other => panic!("expected a lockout, got {other:?}"),
        }
        for _ in 0..5 {
            assert!(a.check(None, "10.0.0.8".parse().unwrap()).is_err(), "missing tokens are not counted");
        }
        assert!(a.check(Some(b"Bearer test-token"), "10.0.0.8".parse().unwrap()).is_ok());
    }

    #[test]
    fn loopback_is_never_locked_but_slowed() {
        let a = auth(3);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let delays: Vec<u128> =
            (0..7).map(|_| a.check(Some(b"Bearer nope"), local).unwrap_err().delay.unwrap().as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert!(a.check(Some(b"Bearer test-token"), local).is_ok(), "loopback is exempt from lockout");
        assert_eq!(
            a.check(Some(b"Bearer nope"), local).unwrap_err().delay,
            Some(Duration::from_millis(250)),
            "success resets"
        );
    }

    #[test]
    fn lockout_table_is_bounded() {
        let a = auth(100);
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = a.check(Some(b"Bearer nope"), ip);
        }
        let n = a.limiter.table.lock().unwrap().entries.len();
        assert!(n <= MAX_TRACKED_CLIENTS, "table grew to {n}");
    }

    fn lock(a: &Authenticator, ip: IpAddr) {
        for _ in 0..a.policy.load().rate_limit.max_attempts {
            let _ = a.check(Some(b"Bearer nope"), ip);
        }
        assert!(matches!(a.check(Some(b"Bearer test-token"), ip).unwrap_err().error, ApiError::RateLimited { .. }));
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + n))
    }

    /// Filling the table with fresh addresses never frees a locked client:
    /// only unlocked entries are evicted.
    #[test]
    fn flooding_the_table_never_frees_a_locked_client() {
        let a = Authenticator::new(AuthMode::Token, Some(Secret::new("test-token".into())), limit(3));
        let victim: IpAddr = "10.0.0.7".parse().unwrap();
        lock(&a, victim);
        for i in 0..(3 * MAX_TRACKED_CLIENTS as u32) {
            let _ = a.check(Some(b"Bearer nope"), v4(i));
        }
        assert!(matches!(a.check(Some(b"Bearer test-token"), victim).unwrap_err().error, ApiError::RateLimited { .. }));
        assert!(a.limiter.table.lock().unwrap().entries.len() <= MAX_TRACKED_CLIENTS);
    }

    /// When every entry is locked, a newcomer's failure is not recorded and
    /// newcomers are refused (the gateway's overflow lock); known clients
    /// keep their own state, and loopback is never refused.
    #[test]
    fn a_table_full_of_locks_refuses_newcomers() {
        let a = Authenticator {
            policy: Live::new(AuthPolicy {
                mode: AuthMode::Token,
                secret: Some(Secret::new("test-token".into())),
                rate_limit: limit(2),
            }),
            limiter: Limiter::new(50),
        };
        for i in 0..50 {
            lock(&a, v4(i));
        }
        let newcomer: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(a.check(Some(b"Bearer test-token"), newcomer).is_ok(), "no overflow yet");
        assert_eq!(a.check(Some(b"Bearer nope"), newcomer).unwrap_err().error, ApiError::Unauthorized);
        match a.check(Some(b"Bearer test-token"), "192.0.2.2".parse().unwrap()).unwrap_err().error {
            ApiError::RateLimited { retry_after_secs } => assert!((299..=300).contains(&retry_after_secs)),
            other => panic!("expected the overflow lock, got {other:?}"),
        }
        assert!(matches!(a.check(Some(b"Bearer test-token"), v4(3)).unwrap_err().error, ApiError::RateLimited { .. }));
        assert!(a.check(Some(b"Bearer test-token"), "127.0.0.1".parse().unwrap()).is_ok());
        assert_eq!(a.limiter.table.lock().unwrap().entries.len(), 50);
    }

    /// A reloaded policy applies to the next check: the new secret is
    /// accepted, the old one refused, and lockouts already earned stay.
    #[test]
    fn a_new_policy_switches_the_secret_at_once() {
        let a = auth(3);
        let remote: IpAddr = "10.0.0.7".parse().unwrap();
        let locked: IpAddr = "10.0.0.9".parse().unwrap();
        lock(&a, locked);
        a.set_policy(AuthPolicy {
            mode: AuthMode::Token,
            secret: Some(Secret::new("rotated".into())),
            rate_limit: limit(3),
        });
        assert!(a.check(Some(b"Bearer rotated"), remote).is_ok());
        assert_eq!(a.check(Some(b"Bearer test-token"), remote).unwrap_err().error, ApiError::Unauthorized);
        assert!(matches!(a.check(Some(b"Bearer rotated"), locked).unwrap_err().error, ApiError::RateLimited { .. }));
    }

    #[test]
    fn every_loopback_spelling_is_loopback() {
        let a = auth(2);
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::ffff:127.9.9.9"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..4 {
                assert!(a.check(Some(b"Bearer nope"), ip).unwrap_err().delay.is_some(), "{ip} is slowed");
            }
            assert!(a.check(Some(b"Bearer test-token"), ip).is_ok(), "{ip} is never locked");
        }
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        lock(&a, mapped);
        assert!(a.check(Some(b"Bearer test-token"), "10.0.0.9".parse().unwrap()).is_err(), "one key per address");
    }

    /// What a million fresh addresses cost: the table stays at its bound
    /// and each failure stays cheap (printed; speed itself is not asserted).
    #[test]
    fn a_million_addresses() {
        let a = auth(10);
        let started = Instant::now();
        for i in 0..1_000_000u32 {
            let _ = a.check(Some(b"Bearer nope"), v4(i));
        }
        let table = a.limiter.table.lock().unwrap();
        assert_eq!(table.entries.len(), MAX_TRACKED_CLIENTS);
        assert!(table.order.len() <= 2 * MAX_TRACKED_CLIENTS + 1024);
        eprintln!("1,000,000 addresses: {:?} in all, table {} entries", started.elapsed(), table.entries.len());
    }
}
