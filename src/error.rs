//! `ChatError`: every way the chat route can fail before or instead of a
//! completion. Each variant knows its HTTP status, its OpenAI error `type`,
//! the message the client sees (the gateway's own wording where the gateway
//! has one) and a fixed metric label. Internal detail (link failures, gateway
//! messages that could carry secrets) stays in logs, never in the body.

use bytes::Bytes;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unauthorized")]
    Unauthorized,
    #[error("auth rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// Proxy headers from a peer not in `gateway.trustedProxies`.
    #[error("proxy attribution required")]
    ProxyAttribution,
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body fit, but the `agent` frame built from it is over the
    /// gateway's frame limit; the message gives both sizes.
    #[error("request too large for the gateway: {0}")]
    RequestTooLarge(String),
    #[error("request body timeout")]
    BodyTimeout,
    /// The body's framing is broken (bad chunk size or terminator): Node's
    /// parser answers an empty 400 and closes.
    #[error("malformed request body")]
    MalformedBody,
    /// An `Expect` other than `100-continue`: the gateway's empty 417.
    #[error("expectation failed")]
    ExpectationFailed,
    /// A 400 with the gateway's exact message.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The gateway link is down or not authorised; `reason` is for logs.
    #[error("gateway unavailable: {reason}")]
    GatewayUnavailable { reason: String },
    #[error("too many concurrent runs")]
    Overloaded,
    #[error("shutting down")]
    ShuttingDown,
    /// The gateway answered the `agent` request in a way clawbridge cannot
    /// turn into a completion; `detail` is for logs.
    #[error("gateway error: {detail}")]
    Gateway { detail: String },
    /// The run failed upstream (provider error), mapped as the built-in maps it.
    #[error("run failed: {message}")]
    RunFailed { status: u16, kind: &'static str, message: String },
    #[error("run timed out")]
    RunTimeout,
    /// The gateway link stopped the run: lost link, oversized frame, slow
    /// reader. `message` says which, in fixed words and sizes.
    #[error("run cut: {message}")]
    RunCut { message: String, label: &'static str },
    /// The client went away; nothing is written, the run is aborted.
    #[error("client went away")]
    ClientGone,
}

impl ChatError {
    pub fn status(&self) -> u16 {
        match self {
            ChatError::MethodNotAllowed => 405,
            ChatError::Unauthorized => 401,
            ChatError::RateLimited { .. } => 429,
            ChatError::ProxyAttribution => 403,
            ChatError::PayloadTooLarge | ChatError::RequestTooLarge(_) => 413,
            ChatError::BodyTimeout => 408,
            ChatError::InvalidRequest(_) | ChatError::MalformedBody => 400,
            ChatError::ExpectationFailed => 417,
            ChatError::GatewayUnavailable { .. } | ChatError::Overloaded | ChatError::ShuttingDown => 503,
            ChatError::Gateway { .. } | ChatError::RunCut { .. } => 502,
            ChatError::RunFailed { status, .. } => *status,
            ChatError::RunTimeout => 504,
            ChatError::ClientGone => 499,
        }
    }

    /// The OpenAI error `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChatError::MethodNotAllowed => "invalid_request_error",
            ChatError::Unauthorized => "unauthorized",
            ChatError::RateLimited { .. } => "rate_limited",
            ChatError::ProxyAttribution => "proxy_attribution_required",
            ChatError::PayloadTooLarge
            | ChatError::RequestTooLarge(_)
            | ChatError::BodyTimeout
            | ChatError::InvalidRequest(_)
            | ChatError::MalformedBody
            | ChatError::ExpectationFailed => "invalid_request_error",
            ChatError::RunFailed { kind, .. } => kind,
            ChatError::GatewayUnavailable { .. }
            | ChatError::Overloaded
            | ChatError::ShuttingDown
            | ChatError::Gateway { .. }
            | ChatError::RunTimeout
            | ChatError::RunCut { .. }
            | ChatError::ClientGone => "api_error",
        }
    }

    /// What the client reads.
    pub fn message(&self) -> &str {
        match self {
            ChatError::MethodNotAllowed => "Method Not Allowed",
            ChatError::Unauthorized => "Unauthorized",
            ChatError::RateLimited { .. } => "Too many failed authentication attempts. Please try again later.",
            ChatError::ProxyAttribution => "Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers.",
            ChatError::PayloadTooLarge => "Payload too large",
            ChatError::RequestTooLarge(m) => m,
            ChatError::BodyTimeout => "Request body timeout",
            ChatError::MalformedBody => "Bad Request",
            ChatError::ExpectationFailed => "Expectation Failed",
            ChatError::InvalidRequest(m) => m,
            ChatError::GatewayUnavailable { .. } => "OpenClaw gateway unavailable",
            ChatError::Overloaded => "Too many concurrent requests",
            ChatError::ShuttingDown => "Server is shutting down",
            ChatError::Gateway { .. } => "internal error",
            ChatError::RunFailed { message, .. } => message,
            ChatError::RunTimeout => "upstream provider timeout",
            ChatError::RunCut { message, .. } => message,
            ChatError::ClientGone => "client closed request",
        }
    }

    /// Fixed label for `clawbridge_chat_requests_total{outcome}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ChatError::MethodNotAllowed => "method_not_allowed",
            ChatError::Unauthorized => "unauthorized",
            ChatError::RateLimited { .. } => "rate_limited",
            ChatError::ProxyAttribution => "proxy_attribution_required",
            ChatError::PayloadTooLarge => "payload_too_large",
            ChatError::RequestTooLarge(_) => "request_too_large",
            ChatError::BodyTimeout => "body_timeout",
            ChatError::MalformedBody => "malformed_body",
            ChatError::ExpectationFailed => "expectation_failed",
            ChatError::InvalidRequest(_) => "invalid_request",
            ChatError::GatewayUnavailable { .. } => "gateway_unavailable",
            ChatError::Overloaded => "overloaded",
            ChatError::ShuttingDown => "shutting_down",
            ChatError::Gateway { .. } => "gateway_error",
            ChatError::RunFailed { .. } => "run_failed",
            ChatError::RunTimeout => "run_timeout",
            ChatError::RunCut { label, .. } => label,
            ChatError::ClientGone => "client_disconnect",
        }
    }

    /// Extra response headers this error carries.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ChatError::MethodNotAllowed => vec![("Allow", "POST".into())],
            ChatError::RateLimited { retry_after_secs } => {
                vec![("Retry-After", retry_after_secs.to_string())]
            }
            ChatError::Overloaded | ChatError::ShuttingDown | ChatError::GatewayUnavailable { .. } => {
                vec![("Retry-After", "1".into())]
            }
            _ => Vec::new(),
        }
    }

    /// `(content-type, body)`. 405 is plain text, as the gateway sends it;
    /// 417 and a broken body get no body and no type, as there.
    pub fn body(&self) -> (&'static str, Bytes) {
        match self {
            ChatError::MethodNotAllowed => ("text/plain; charset=utf-8", Bytes::from_static(b"Method Not Allowed")),
            ChatError::MalformedBody | ChatError::ExpectationFailed => ("", Bytes::new()),
            _ => ("application/json; charset=utf-8", Bytes::from(self.envelope())),
        }
    }

    /// `{"error":{"message":..,"type":..}}`, the envelope the gateway uses.
    pub fn envelope(&self) -> String {
        error_envelope(self.message(), self.kind())
    }
}

pub fn error_envelope(message: &str, kind: &str) -> String {
    #[derive(Serialize)]
    struct Inner<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Inner<'a>,
    }
    serde_json::to_string(&Envelope { error: Inner { message, kind } }).expect("strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_the_captured_gateway_bytes() {
        assert_eq!(ChatError::Unauthorized.envelope(), r#"{"error":{"message":"Unauthorized","type":"unauthorized"}}"#);
        assert_eq!(
            ChatError::InvalidRequest("Missing user message in `messages`.".into()).envelope(),
            r#"{"error":{"message":"Missing user message in `messages`.","type":"invalid_request_error"}}"#
        );
        assert_eq!(
            ChatError::RateLimited { retry_after_secs: 300 }.envelope(),
            r#"{"error":{"message":"Too many failed authentication attempts. Please try again later.","type":"rate_limited"}}"#
        );
        let (ct, body) = ChatError::MethodNotAllowed.body();
        assert_eq!((ct, &body[..]), ("text/plain; charset=utf-8", &b"Method Not Allowed"[..]));
        assert_eq!(ChatError::MethodNotAllowed.headers(), vec![("Allow", "POST".to_string())]);
    }

    #[test]
    fn internal_detail_never_reaches_the_body() {
        let e = ChatError::GatewayUnavailable { reason: "connect refused; token=abc".into() };
        assert!(!e.envelope().contains("abc"));
        assert_eq!(e.status(), 503);
        let e = ChatError::Gateway { detail: "secret".into() };
        assert!(!e.envelope().contains("secret"));
    }
}
