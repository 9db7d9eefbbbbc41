//! `ApiError`: every way an owned route (chat, responses, models) can fail
//! before or instead of its answer. Each variant knows its HTTP status, its OpenAI error `type`,
//! the message the client sees (the gateway's own wording where the gateway
//! has one) and a fixed metric label. Internal detail (link failures, gateway
//! messages that could carry secrets) stays in logs, never in the body.

use bytes::Bytes;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// `allow`: the route's one method, for the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
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
    /// A valid request the native protocol cannot carry (client `tools`,
    /// files, remote image URLs): handed to the gateway's own endpoint when
    /// it is on, else this 400 with a message that says why.
    #[error("not expressible over the native protocol: {0}")]
    Inexpressible(&'static str),
    /// A 404 `invalid_request_error` with the gateway's exact message
    /// (an unknown model id, or an unknown override model).
    #[error("not found: {0}")]
    ModelNotFound(String),
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

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Unauthorized => 401,
            ApiError::RateLimited { .. } => 429,
            ApiError::ProxyAttribution => 403,
            ApiError::PayloadTooLarge | ApiError::RequestTooLarge(_) => 413,
            ApiError::BodyTimeout => 408,
            ApiError::InvalidRequest(_) | ApiError::MalformedBody | ApiError::Inexpressible(_) => 400,
            ApiError::ModelNotFound(_) => 404,
            ApiError::ExpectationFailed => 417,
            ApiError::GatewayUnavailable { .. } | ApiError::Overloaded | ApiError::ShuttingDown => 503,
            ApiError::Gateway { .. } | ApiError::RunCut { .. } => 502,
            ApiError::RunFailed { status, .. } => *status,
            ApiError::RunTimeout => 504,
            ApiError::ClientGone => 499,
        }
    }

    /// The OpenAI error `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::MethodNotAllowed { .. } => "invalid_request_error",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::ProxyAttribution => "proxy_attribution_required",
            ApiError::PayloadTooLarge
            | ApiError::RequestTooLarge(_)
            | ApiError::BodyTimeout
            | ApiError::InvalidRequest(_)
            | ApiError::ModelNotFound(_)
            | ApiError::Inexpressible(_)
            | ApiError::MalformedBody
            | ApiError::ExpectationFailed => "invalid_request_error",
            ApiError::RunFailed { kind, .. } => kind,
            ApiError::GatewayUnavailable { .. }
            | ApiError::Overloaded
            | ApiError::ShuttingDown
            | ApiError::Gateway { .. }
            | ApiError::RunTimeout
            | ApiError::RunCut { .. }
            | ApiError::ClientGone => "api_error",
        }
    }

    /// What the client reads.
    pub fn message(&self) -> &str {
        match self {
            ApiError::MethodNotAllowed { .. } => "Method Not Allowed",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::RateLimited { .. } => "Too many failed authentication attempts. Please try again later.",
            ApiError::ProxyAttribution => "Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers.",
            ApiError::PayloadTooLarge => "Payload too large",
            ApiError::RequestTooLarge(m) => m,
            ApiError::BodyTimeout => "Request body timeout",
            ApiError::MalformedBody => "Bad Request",
            ApiError::ExpectationFailed => "Expectation Failed",
            ApiError::InvalidRequest(m) | ApiError::ModelNotFound(m) => m,
            ApiError::Inexpressible(m) => m,
            ApiError::GatewayUnavailable { .. } => "OpenClaw gateway unavailable",
            ApiError::Overloaded => "Too many concurrent requests",
            ApiError::ShuttingDown => "Server is shutting down",
            ApiError::Gateway { .. } => "internal error",
            ApiError::RunFailed { message, .. } => message,
            ApiError::RunTimeout => "upstream provider timeout",
            ApiError::RunCut { message, .. } => message,
            ApiError::ClientGone => "client closed request",
        }
    }

    /// Fixed label for `clawbridge_chat_requests_total{outcome}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::ProxyAttribution => "proxy_attribution_required",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTooLarge(_) => "request_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::MalformedBody => "malformed_body",
            ApiError::ExpectationFailed => "expectation_failed",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::ModelNotFound(_) => "not_found",
            ApiError::Inexpressible(_) => "inexpressible",
            ApiError::GatewayUnavailable { .. } => "gateway_unavailable",
            ApiError::Overloaded => "overloaded",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Gateway { .. } => "gateway_error",
            ApiError::RunFailed { .. } => "run_failed",
            ApiError::RunTimeout => "run_timeout",
            ApiError::RunCut { label, .. } => label,
            ApiError::ClientGone => "client_disconnect",
        }
    }

    /// Extra response headers this error carries.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::MethodNotAllowed { allow } => vec![("Allow", allow.to_string())],
            ApiError::RateLimited { retry_after_secs } => {
                vec![("Retry-After", retry_after_secs.to_string())]
            }
            ApiError::Overloaded | ApiError::ShuttingDown | ApiError::GatewayUnavailable { .. } => {
                vec![("Retry-After", "1".into())]
            }
            _ => Vec::new(),
        }
    }

    /// `(content-type, body)`. 405 is plain text, as the gateway sends it;
    /// 417 and a broken body get no body and no type, as there.
    pub fn body(&self) -> (&'static str, Bytes) {
        match self {
            ApiError::MethodNotAllowed { .. } => {
                ("text/plain; charset=utf-8", Bytes::from_static(b"Method Not Allowed"))
            }
            ApiError::MalformedBody | ApiError::ExpectationFailed => ("", Bytes::new()),
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
        assert_eq!(ApiError::Unauthorized.envelope(), r#"{"error":{"message":"Unauthorized","type":"unauthorized"}}"#);
        assert_eq!(
            ApiError::InvalidRequest("Missing user message in `messages`.".into()).envelope(),
            r#"{"error":{"message":"Missing user message in `messages`.","type":"invalid_request_error"}}"#
        );
        assert_eq!(
            ApiError::RateLimited { retry_after_secs: 300 }.envelope(),
            r#"{"error":{"message":"Too many failed authentication attempts. Please try again later.","type":"rate_limited"}}"#
        );
        let (ct, body) = ApiError::MethodNotAllowed { allow: "POST" }.body();
        assert_eq!((ct, &body[..]), ("text/plain; charset=utf-8", &b"Method Not Allowed"[..]));
        assert_eq!(ApiError::MethodNotAllowed { allow: "POST" }.headers(), vec![("Allow", "POST".to_string())]);
    }

    #[test]
    fn internal_detail_never_reaches_the_body() {
        let e = ApiError::GatewayUnavailable { reason: "connect refused; token=abc".into() };
        assert!(!e.envelope().contains("abc"));
        assert_eq!(e.status(), 503);
        let e = ApiError::Gateway { detail: "secret".into() };
        assert!(!e.envelope().contains("secret"));
    }
}
