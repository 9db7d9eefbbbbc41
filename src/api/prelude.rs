//! The front door's prelude for every owned route, in the built-in's order:
//! the proxy-attribution check, `Expect`, the route's method, then the
//! bearer (with the lockout and the loopback slow-down). What passes is a
//! [`Principal`]; the routing headers are read here too, once for every API.

use std::net::IpAddr;

use pingora::protocols::http::ServerSession as Session;

use super::route::RouteHeaders;
use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::ingress::{Client, Forwarding};

/// Who a request is, once it passed the prelude.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The client as the gateway would attribute it (the lockout's key).
    pub ip: IpAddr,
    /// How the client is named to the gateway if the request is handed on.
    pub forwarding: Forwarding,
}

/// Runs the prelude. `method` is the route's one method (`Allow` on a 405).
pub async fn admit(
    auth: &Authenticator,
    session: &mut Session,
    client: Client,
    forwarding: Forwarding,
    method: &'static http::Method,
) -> Result<Principal, ApiError> {
    // The gateway refuses unattributable proxy traffic before routing.
    let Some(ip) = client.ip() else {
        return Err(ApiError::ProxyAttribution);
    };
    expect(session).await?;
    if session.req_header().method != method {
        return Err(ApiError::MethodNotAllowed { allow: method.as_str() });
    }
    let header = session.req_header().headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
    if let Err(rejection) = auth.check(header, ip) {
        if let Some(delay) = rejection.delay {
            tokio::time::sleep(delay).await;
        }
        return Err(rejection.error);
    }
    Ok(Principal { ip, forwarding })
}

/// `Expect` on HTTP/1.1, first of all, as Node and the gateway handle it:
/// `100-continue` (a token anywhere in the value, any case) is answered
/// with `100 Continue` at once; any other expectation gets 417.
async fn expect(session: &mut Session) -> Result<(), ApiError> {
    let req = session.req_header();
    if req.version != http::Version::HTTP_11 {
        return Ok(());
    }
    let Some(value) = req.headers.get(http::header::EXPECT) else { return Ok(()) };
    if !expects_continue(value.as_bytes()) {
        return Err(ApiError::ExpectationFailed);
    }
    session.write_continue_response().await.map_err(|_| ApiError::ClientGone)
}

/// Node's `/(?:^|\W)100-continue(?:$|\W)/i`.
fn expects_continue(value: &[u8]) -> bool {
    const TOKEN: &[u8] = b"100-continue";
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    value.windows(TOKEN.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(TOKEN)
            && (i == 0 || !word(value[i - 1]))
            && value.get(i + TOKEN.len()).is_none_or(|&b| !word(b))
    })
}

/// The routing headers as owned text, decoded like Node decodes header
/// bytes (latin1), so a non-ASCII value is validated and refused rather
/// than silently treated as absent. Owned: they cross to a parse thread.
#[derive(Debug, Default, Clone)]
pub struct HeaderText([Option<String>; 5]);

impl HeaderText {
    const NAMES: [&'static str; 5] = [
        "x-openclaw-agent-id",
        "x-openclaw-agent",
        "x-openclaw-session-key",
        "x-openclaw-model",
        "x-openclaw-message-channel",
    ];

    pub fn read(session: &Session) -> Self {
        let h = &session.req_header().headers;
        HeaderText(Self::NAMES.map(|name| h.get(name).map(|v| latin1(v.as_bytes()))))
    }

    pub fn route(&self) -> RouteHeaders<'_> {
        let [agent_id, agent, session_key, model, channel] = self.0.each_ref().map(Option::as_deref);
        RouteHeaders {
            agent_id: agent_id.filter(|v| !v.trim().is_empty()).or(agent),
            session_key,
            model_override: model,
            message_channel: channel,
        }
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_as_node_matches_it() {
        for yes in ["100-continue", "100-Continue", "foo, 100-continue", "100-continue;x"] {
            assert!(expects_continue(yes.as_bytes()), "{yes}");
        }
        for no in ["", "200-ok", "x100-continue", "100-continuex", "100-continue_"] {
            assert!(!expects_continue(no.as_bytes()), "{no}");
        }
    }
}
