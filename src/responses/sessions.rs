//! `previous_response_id`: which session a response ran in, so a follow-up
//! continues it, as the built-in keeps it (an in-process map: 30 minutes,
//! 500 entries, oldest first; an entry only answers the same bearer, agent
//! and `x-openclaw-session-key`). An unknown id starts a new session.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(30 * 60);
const MAX_ENTRIES: usize = 500;

/// Who may continue a response: a hash of the bearer (never the bearer
/// itself), the agent, and the session header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub subject: String,
    pub agent: String,
    pub requested_session: Option<String>,
}

impl Scope {
    /// `bearer:<sha256 hex>` as the built-in names it.
    pub fn new(bearer: Option<&[u8]>, auth_mode: &str, agent: &str, requested_session: Option<&str>) -> Self {
        use sha2::Digest;
        let subject = match bearer {
            Some(b) => {
                use std::fmt::Write;
                let mut subject = String::with_capacity(7 + 64);
                subject.push_str("bearer:");
                for byte in sha2::Sha256::digest(b) {
                    let _ = write!(subject, "{byte:02x}");
                }
                subject
            }
            None => format!("gateway-auth:{auth_mode}"),
        };
        let requested_session = requested_session.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        Scope { subject, agent: agent.to_string(), requested_session }
    }
}

struct Entry {
    /// [`id_hash`] of `id`: a scan over 500 entries compares these, and
    /// the strings only where they match.
    hash: u64,
    id: String,
    scope: Scope,
    session_key: String,
    at: Instant,
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

#[derive(Default)]
pub struct ResponseSessions(Mutex<VecDeque<Entry>>);

impl ResponseSessions {
    pub fn remember(&self, id: &str, session_key: &str, scope: Scope) {
        self.remember_at(id, session_key, scope, Instant::now());
    }

    fn remember_at(&self, id: &str, session_key: &str, scope: Scope, now: Instant) {
        let mut map = self.0.lock().expect("response sessions lock");
        let hash = id_hash(id);
        map.retain(|e| e.hash != hash || e.id != id);
        map.push_back(Entry { hash, id: id.to_string(), scope, session_key: session_key.to_string(), at: now });
        while map.front().is_some_and(|e| now.duration_since(e.at) > TTL) || map.len() > MAX_ENTRIES {
            map.pop_front();
        }
    }

    /// The session of `id`, if it is known, fresh, and in the same scope.
    pub fn lookup(&self, id: &str, scope: &Scope) -> Option<String> {
        self.lookup_at(id, scope, Instant::now())
    }

    fn lookup_at(&self, id: &str, scope: &Scope, now: Instant) -> Option<String> {
        let map = self.0.lock().expect("response sessions lock");
        let hash = id_hash(id);
        let e = map.iter().rev().find(|e| e.hash == hash && e.id == id)?;
        (now.duration_since(e.at) <= TTL && e.scope == *scope).then(|| e.session_key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(agent: &str) -> Scope {
        Scope::new(Some(b"secret"), "token", agent, None)
    }

    #[test]
    fn scoped_fresh_and_bounded() {
        let s = ResponseSessions::default();
        let t0 = Instant::now();
        s.remember_at("resp_1", "agent:main:openresponses:a", scope("main"), t0);
        assert_eq!(s.lookup_at("resp_1", &scope("main"), t0).as_deref(), Some("agent:main:openresponses:a"));
        assert_eq!(s.lookup_at("resp_1", &scope("ops"), t0), None, "another agent");
        assert_eq!(s.lookup_at("resp_1", &Scope::new(Some(b"other"), "token", "main", None), t0), None);
        assert_eq!(s.lookup_at("resp_1", &scope("main"), t0 + TTL + Duration::from_secs(1)), None, "expired");
        assert!(!scope("main").subject.contains("secret"), "only a hash of the bearer is kept");
        for i in 0..600 {
            s.remember_at(&format!("r{i}"), "k", scope("main"), t0);
        }
        assert_eq!(s.0.lock().unwrap().len(), MAX_ENTRIES);
        assert_eq!(s.lookup_at("r0", &scope("main"), t0), None, "oldest evicted");
        assert!(s.lookup_at("r599", &scope("main"), t0).is_some());
    }
}
