//! The route table: the one place a route clawbridge owns is declared, with
//! the method it serves. A request is matched on its routing path
//! (`path.rs`), so every spelling the gateway would route to an owned
//! handler is served or refused here and never forwarded. Any method on an
//! owned path is the route's (a wrong one gets the route's 405, as the
//! built-in answers it), so the path alone picks the route.

use http::Method;

use super::path::routing_path;

/// A route clawbridge answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedRoute {
    ChatCompletions,
    Responses,
    /// `/v1/models` and `/v1/models/{id}`.
    Models,
}

/// How a table entry matches the routing path.
enum Match {
    Exact(&'static str),
    /// The path itself, or anything under it (`<path>/…`).
    Tree(&'static str),
}

/// Every route clawbridge can own: path, method, route.
const TABLE: &[(Match, Method, OwnedRoute)] = &[
    (Match::Exact("/v1/chat/completions"), Method::POST, OwnedRoute::ChatCompletions),
    (Match::Exact("/v1/responses"), Method::POST, OwnedRoute::Responses),
    (Match::Tree("/v1/models"), Method::GET, OwnedRoute::Models),
];

impl OwnedRoute {
    /// The one method the route serves.
    pub fn method(self) -> &'static Method {
        TABLE.iter().find(|(_, _, r)| *r == self).map(|(_, m, _)| m).expect("every route is in the table")
    }

    /// The `api` label of its metrics and access log.
    pub fn api(self) -> &'static str {
        match self {
            OwnedRoute::ChatCompletions => "chat",
            OwnedRoute::Responses => "responses",
            OwnedRoute::Models => "models",
        }
    }
}

impl Match {
    fn matches(&self, path: &str) -> bool {
        match *self {
            Match::Exact(p) => path == p,
            Match::Tree(p) => path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

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
    pub responses: bool,
}

impl Routes {
    /// Where a raw request target goes: an owned route that is switched on,
    /// or the gateway.
    pub fn route(&self, target: &[u8]) -> Routed {
        let Some(path) = routing_path(target) else { return Routed::Unroutable };
        match TABLE.iter().find(|(m, _, _)| m.matches(&path)) {
            Some((_, _, route)) if self.enabled(*route) => Routed::Owned(*route),
            _ => Routed::Forward,
        }
    }

    /// Models are served whenever chat or responses is, as the gateway
    /// serves them whenever either of its endpoints is on.
    pub fn enabled(&self, route: OwnedRoute) -> bool {
        match route {
            OwnedRoute::ChatCompletions => self.chat_completions,
            OwnedRoute::Responses => self.responses,
            OwnedRoute::Models => self.chat_completions || self.responses,
        }
    }

    pub fn any(&self) -> bool {
        self.chat_completions || self.responses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_only_when_switched_on() {
        let on = Routes { chat_completions: true, responses: false };
        for target in ["/v1/chat/completions", "/v1/%2e/chat/completions", "http://x/v1/chat/completions?a"] {
            assert_eq!(on.route(target.as_bytes()), Routed::Owned(OwnedRoute::ChatCompletions), "{target}");
        }
        for target in ["/v1/chat/completions/", "//v1/chat/completions", "/v1/responses", "/"] {
            assert_eq!(on.route(target.as_bytes()), Routed::Forward, "{target}");
        }
        assert_eq!(Routes::default().route(b"/v1/chat/completions"), Routed::Forward);
        assert_eq!(Routes::default().route(b"/v1/models"), Routed::Forward);
        assert_eq!(on.route(b"//x:99999/v1/chat/completions"), Routed::Unroutable);
        assert_eq!(on.route(b"/v1/chat/completions\xff"), Routed::Unroutable, "not UTF-8");
    }

    #[test]
    fn models_follow_either_endpoint() {
        let responses = Routes { chat_completions: false, responses: true };
        assert_eq!(responses.route(b"/v1/responses"), Routed::Owned(OwnedRoute::Responses));
        assert_eq!(responses.route(b"/v1/chat/completions"), Routed::Forward);
        for target in ["/v1/models", "/v1/models/", "/v1/models/openclaw%2Fmain", "/v1/./models/x/y", "/v1/models?x"] {
            assert_eq!(responses.route(target.as_bytes()), Routed::Owned(OwnedRoute::Models), "{target}");
        }
        for target in ["/v1/modelsx", "/v1/model", "/v2/models"] {
            assert_eq!(responses.route(target.as_bytes()), Routed::Forward, "{target}");
        }
        assert_eq!(OwnedRoute::Models.method(), Method::GET);
        assert_eq!(OwnedRoute::Responses.method(), Method::POST);
    }
}
