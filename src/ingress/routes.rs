//! The route table: the one place a route clawbridge owns is declared. A
//! request is matched on its routing path (`path.rs`), so every spelling
//! the gateway would route to an owned handler is served or refused here
//! and never forwarded. Methods are the route's own business (a wrong
//! method gets the route's 405), so the table is keyed by path alone.

use super::path::routing_path;

/// A route clawbridge answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedRoute {
    ChatCompletions,
}

/// Every route clawbridge can own, by the exact path the gateway matches.
const TABLE: &[(&str, OwnedRoute)] = &[("/v1/chat/completions", OwnedRoute::ChatCompletions)];

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    Owned(OwnedRoute),
    Forward,
    /// A target whose routing path cannot be computed: refused, never forwarded.
    Unroutable,
}

/// The owned routes that are switched on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routes {
    pub chat_completions: bool,
}

impl Routes {
    /// Where a raw request target goes: an owned route that is switched on,
    /// or the gateway.
    pub fn route(&self, target: &[u8]) -> Routed {
        let Some(path) = routing_path(target) else { return Routed::Unroutable };
        match TABLE.iter().find(|(p, _)| *p == path) {
            Some((_, route)) if self.enabled(*route) => Routed::Owned(*route),
            _ => Routed::Forward,
        }
    }

    fn enabled(&self, route: OwnedRoute) -> bool {
        match route {
            OwnedRoute::ChatCompletions => self.chat_completions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_only_when_switched_on() {
        let on = Routes { chat_completions: true };
        for target in ["/v1/chat/completions", "/v1/%2e/chat/completions", "http://x/v1/chat/completions?a"] {
            assert_eq!(on.route(target.as_bytes()), Routed::Owned(OwnedRoute::ChatCompletions), "{target}");
        }
        for target in ["/v1/chat/completions/", "//v1/chat/completions", "/v1/models", "/"] {
            assert_eq!(on.route(target.as_bytes()), Routed::Forward, "{target}");
        }
        assert_eq!(Routes::default().route(b"/v1/chat/completions"), Routed::Forward);
        assert_eq!(on.route(b"//x:99999/v1/chat/completions"), Routed::Unroutable);
        assert_eq!(on.route(b"/v1/chat/completions\xff"), Routed::Unroutable, "not UTF-8");
    }
}
