//! `RunRequest`: one agent turn as the gateway's native `agent` method takes
//! it, and its encoding into the request frame. Every OpenAI API builds one
//! of these; none of them writes the gateway's wire JSON itself.

use std::sync::Arc;

use serde::Serialize;

/// A turn to run, in the gateway's terms.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Also the `idempotencyKey`, which becomes the run id on the gateway.
    pub run_id: Arc<str>,
    pub message: String,
    /// `None` runs without `agentId` (an explicit session key names its agent).
    pub agent_id: Option<Arc<str>>,
    pub session_key: Arc<str>,
    pub extra_system_prompt: Option<String>,
    /// The turn's source channel (`webchat` unless the client names another).
    pub channel: String,
    pub attachments: Vec<Attachment>,
    /// A provider/model override (`x-openclaw-model`); needs admin scope.
    pub model: Option<ModelOverride>,
}

/// An image handed to the agent with its turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "mimeType")]
    pub mime_type: String,
    /// Base64, without a `data:` prefix.
    pub content: String,
}

/// `provider/model`, or a model of the agent's default provider, as the
/// run's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOverride {
    pub provider: Option<String>,
    pub model: String,
}

impl RunRequest {
    /// The `agent` request frame. Its size is what the gateway weighs
    /// against its `maxPayload`.
    pub fn frame(&self) -> String {
        #[derive(Serialize)]
        struct Params<'a> {
            message: &'a str,
            #[serde(rename = "agentId", skip_serializing_if = "Option::is_none")]
            agent_id: Option<&'a str>,
            #[serde(rename = "sessionKey")]
            session_key: &'a str,
            #[serde(rename = "extraSystemPrompt", skip_serializing_if = "Option::is_none")]
            extra_system_prompt: Option<&'a str>,
            deliver: bool,
            channel: &'a str,
            #[serde(skip_serializing_if = "<[Attachment]>::is_empty")]
            attachments: &'a [Attachment],
            #[serde(skip_serializing_if = "Option::is_none")]
            provider: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            model: Option<&'a str>,
            #[serde(rename = "idempotencyKey")]
            idempotency_key: &'a str,
        }
        let params = Params {
            message: &self.message,
            agent_id: self.agent_id.as_deref(),
            session_key: &self.session_key,
            extra_system_prompt: self.extra_system_prompt.as_deref(),
            // No `timeout`: the agent's own configured timeout applies, as
            // for the built-in; clawbridge's run deadline is its own.
            deliver: false,
            channel: &self.channel,
            attachments: &self.attachments,
            provider: self.model.as_ref().and_then(|m| m.provider.as_deref()),
            model: self.model.as_ref().map(|m| m.model.as_str()),
            idempotency_key: &self.run_id,
        };
        super::frames::request(&self.run_id, "agent", &params)
    }

    /// Bytes of text the frame carries: whether encoding it is worth
    /// moving off the event loop.
    pub fn text_len(&self) -> usize {
        self.message.len()
            + self.extra_system_prompt.as_ref().map_or(0, String::len)
            + self.attachments.iter().map(|a| a.content.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn frame_carries_only_what_is_set() {
        let req = RunRequest {
            run_id: "chatcmpl_1".into(),
            message: "hi".into(),
            agent_id: Some("main".into()),
            session_key: "agent:main:openai:x".into(),
            channel: "webchat".into(),
            ..Default::default()
        };
        let v: Value = serde_json::from_str(&req.frame()).unwrap();
        assert_eq!(
            v,
            json!({"type":"req","id":"chatcmpl_1","method":"agent","params":{"message":"hi","agentId":"main",
                "sessionKey":"agent:main:openai:x","deliver":false,"channel":"webchat","idempotencyKey":"chatcmpl_1"}})
        );
        let req = RunRequest {
            agent_id: None,
            extra_system_prompt: Some("be brief".into()),
            attachments: vec![Attachment { kind: "image", mime_type: "image/png".into(), content: "AA==".into() }],
            model: Some(ModelOverride { provider: Some("fake".into()), model: "m".into() }),
            ..req
        };
        let v: Value = serde_json::from_str(&req.frame()).unwrap();
        let p = &v["params"];
        assert!(p.get("agentId").is_none());
        assert_eq!(p["extraSystemPrompt"], "be brief");
        assert_eq!(p["attachments"], json!([{"type":"image","mimeType":"image/png","content":"AA=="}]));
        assert_eq!((p["provider"].as_str(), p["model"].as_str()), (Some("fake"), Some("m")));
    }
}
