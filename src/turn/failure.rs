//! How a failed run is presented, as the built-in endpoint presents it
//! (`openai-compat-errors` in 2026.9.6): the provider failure reason the
//! gateway reports (`errorObservation.failoverReason`) picks the HTTP status
//! and OpenAI error type; unclassified failures are `internal error`. Pure.

use crate::error::ApiError;
use crate::gateway::{Finish, LifecycleData};

/// `(status, type, message)` for a classified provider failure, or `None`.
fn compat(reason: &str, text: &str) -> Option<(u16, &'static str, String)> {
    let kind = match reason {
        "auth" => "authentication_error",
        "auth_permanent" => "permission_error",
        "format" | "context_overflow" | "model_not_found" | "session_expired" => "invalid_request_error",
        "rate_limit" => "rate_limit_error",
        "overloaded" | "server_error" | "timeout" | "tls_certificate" => "api_error",
        "billing" => "insufficient_quota",
        _ => return None,
    };
    let status = match reason {
        "server_error" | "tls_certificate" => 502,
        "timeout" => 504,
        "billing" => 402,
        "rate_limit" => 429,
        "overloaded" => 503,
        "auth" => 401,
        "auth_permanent" => 403,
        "context_overflow" => 413,
        "format" => 400,
        "model_not_found" => 404,
        "session_expired" => 410,
        _ => 500,
    };
    let message = match reason {
        "server_error" => "upstream provider error".to_string(),
        "timeout" => "upstream provider timeout".to_string(),
        "overloaded" => "upstream provider overloaded".to_string(),
        _ if !text.trim().is_empty() => text.trim().to_string(),
        _ => "request failed".to_string(),
    };
    Some((status, kind, message))
}

/// How the gateway words a run on a model it does not know.
const UNKNOWN_MODEL: &str = "Unknown model:";

fn internal() -> ApiError {
    ApiError::RunFailed { status: 500, kind: "api_error", message: "internal error".into() }
}

/// The run's final `res` failed (`ok:false`): a classified provider failure
/// keeps its status; anything else is a 500 `internal error`.
pub fn run_error(finish: &Finish, lifecycle: Option<&LifecycleData>) -> ApiError {
    // An unknown override model fails the run before any lifecycle event;
    // the gateway's own classification (`describeFailoverError`) calls it
    // `model_not_found`.
    let unknown_model = finish.error.as_ref().is_some_and(|e| e.message.starts_with(UNKNOWN_MODEL));
    let reason = lifecycle
        .and_then(|l| l.error_observation.as_ref())
        .and_then(|o| o.failover_reason.as_deref())
        .or(unknown_model.then_some("model_not_found"));
    let text =
        lifecycle.and_then(|l| l.error.as_deref()).or(finish.error.as_ref().map(|e| e.message.as_str())).unwrap_or("");
    match reason.and_then(|r| compat(r, text)) {
        Some((status, kind, message)) => ApiError::RunFailed { status, kind, message },
        None => internal(),
    }
}

/// The error event a stream ends with, in the built-in's precedence: a
/// failed result (mapped as [`run_error`], else the lifecycle error's text),
/// a run that reported failure, a lifecycle error seen earlier.
pub fn stream_error(finish: &Finish, lifecycle: Option<&LifecycleData>) -> Option<(String, &'static str)> {
    if !finish.ok {
        return Some(match run_error(finish, lifecycle) {
            ApiError::RunFailed { status: 500, .. } => match lifecycle.and_then(|l| l.error.as_deref()) {
                Some(text) if !text.trim().is_empty() => (text.trim().to_string(), "api_error"),
                _ => ("internal error".to_string(), "api_error"),
            },
            e => (e.message().to_string(), e.kind()),
        });
    }
    if finish.status == "error" {
        return Some(("internal error".to_string(), "api_error"));
    }
    lifecycle.map(|l| {
        (l.error.clone().filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "Agent run failed".into()), "api_error")
    })
}

/// A run whose final `res` is `ok:true` but whose outcome was a failure.
pub fn failed_ok(finish: &Finish) -> Option<ApiError> {
    (finish.ok && finish.status == "error").then(internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::frames::{ErrorObservation, ErrorShape};

    fn lifecycle(reason: &str, text: &str) -> LifecycleData {
        LifecycleData {
            phase: "error".into(),
            error: Some(text.into()),
            aborted: None,
            error_observation: Some(ErrorObservation { failover_reason: Some(reason.into()) }),
            stop_reason: None,
        }
    }

    fn failed() -> Finish {
        Finish {
            ok: false,
            status: "error".into(),
            error: Some(ErrorShape { code: "UNAVAILABLE".into(), message: "x".into() }),
            ..Default::default()
        }
    }

    #[test]
    fn provider_failures_map_like_the_builtin() {
        let l = lifecycle("format", "LLM request failed: provider rejected the request schema or tool payload.");
        let e = run_error(&failed(), Some(&l));
        assert_eq!((e.status(), e.kind()), (400, "invalid_request_error"));
        assert_eq!(e.message(), "LLM request failed: provider rejected the request schema or tool payload.");

        let l = lifecycle("server_error", "⚠️ fake/fake-model request failed (provider internal error, HTTP 500).");
        let e = run_error(&failed(), Some(&l));
        assert_eq!((e.status(), e.kind(), e.message()), (502, "api_error", "upstream provider error"));
        assert_eq!(stream_error(&failed(), Some(&l)), Some(("upstream provider error".into(), "api_error")));

        let e = run_error(&failed(), None);
        assert_eq!((e.status(), e.message()), (500, "internal error"));
        assert_eq!(stream_error(&failed(), None), Some(("internal error".into(), "api_error")));
    }

    #[test]
    fn an_unknown_override_model_is_not_found() {
        let message = "Unknown model: nosuch/x. Run `openclaw models list --refresh --provider nosuch` to inspect this provider's model choices, then retry with a model supported by your account.";
        let f = Finish {
            ok: false,
            status: "error".into(),
            error: Some(ErrorShape { code: "UNAVAILABLE".into(), message: message.into() }),
            ..Default::default()
        };
        let e = run_error(&f, None);
        assert_eq!((e.status(), e.kind(), e.message()), (404, "invalid_request_error", message));
    }

    #[test]
    fn successful_runs_have_no_error() {
        let ok = Finish { ok: true, status: "ok".into(), ..Default::default() };
        assert_eq!(stream_error(&ok, None), None);
        assert!(failed_ok(&ok).is_none());
        let failed_meta = Finish { ok: true, status: "error".into(), ..Default::default() };
        assert_eq!(failed_ok(&failed_meta).unwrap().message(), "internal error");
    }
}
