//! Whether a turn's model takes images. The built-in drops the images of a
//! turn whose model is text-only and answers as usual; the native
//! `attachments` path refuses such a turn instead, so clawbridge drops them
//! itself. The model's `input` list comes from the gateway's own config
//! (`config.get`), read at most every few seconds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gateway::{Gateway, ModelOverride};

/// How long one `config.get` answer is used.
const FRESH: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Vision {
    cached: Mutex<Option<(Instant, std::sync::Arc<Value>)>>,
}

impl Vision {
    /// `false` only when the gateway's config says the model is text-only;
    /// a model it does not describe (or a failed read) keeps the images,
    /// and the gateway decides.
    pub async fn takes_images(&self, gateway: &Gateway, agent: &str, model: Option<&ModelOverride>) -> bool {
        let Some(config) = self.config(gateway).await else { return true };
        accepts_images(&config, agent, model).unwrap_or(true)
    }

    async fn config(&self, gateway: &Gateway) -> Option<std::sync::Arc<Value>> {
        if let Some((at, v)) = self.cached.lock().expect("vision lock").as_ref() {
            if at.elapsed() < FRESH {
                return Some(v.clone());
            }
        }
        let answer: Value = match gateway.call("config.get", &serde_json::json!({}), WAIT).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "config.get failed; images are passed on as sent");
                return None;
            }
        };
        let config = std::sync::Arc::new(answer.get("config").cloned().unwrap_or(Value::Null));
        *self.cached.lock().expect("vision lock") = Some((Instant::now(), config.clone()));
        Some(config)
    }
}

/// `provider/model` of a `model` setting: a string, or `{primary}`.
fn primary(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v.get("primary").and_then(Value::as_str))
}

/// Whether `agent`'s model (or `model`, overriding it) takes images, by the
/// config's model catalog; `None` when the config does not say.
fn accepts_images(config: &Value, agent: &str, model: Option<&ModelOverride>) -> Option<bool> {
    let agents = &config["agents"];
    let entry = agents["entries"]
        .get(agent)
        .cloned()
        .or_else(|| agents["list"].as_array()?.iter().find(|a| a["id"].as_str() == Some(agent)).cloned());
    let configured =
        entry.as_ref().and_then(|e| primary(&e["model"])).or_else(|| primary(&agents["defaults"]["model"]));
    let (default_provider, configured_model) = configured.and_then(|m| m.split_once('/')).unzip();
    let (provider, model) = match model {
        Some(o) => (o.provider.as_deref().or(default_provider)?, o.model.as_str()),
        None => (default_provider?, configured_model?),
    };
    let models = config["models"]["providers"][provider]["models"].as_array()?;
    let found = models.iter().find(|m| m["id"].as_str() == Some(model))?;
    let input = found["input"].as_array()?;
    Some(input.iter().any(|i| i == "image"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(input: Value) -> Value {
        json!({
            "models": {"providers": {"fake": {"models": [
                {"id": "fake-model", "input": input},
                {"id": "vision", "input": ["text", "image"]}]}}},
            "agents": {"defaults": {"model": {"primary": "fake/fake-model"}},
                "entries": {"main": {}, "eye": {"model": "fake/vision"}}}
        })
    }

    #[test]
    fn by_the_models_input_list() {
        let text_only = config(json!(["text"]));
        assert_eq!(accepts_images(&text_only, "main", None), Some(false));
        assert_eq!(accepts_images(&text_only, "eye", None), Some(true), "the agent's own model");
        let o = ModelOverride { provider: None, model: "vision".into() };
        assert_eq!(accepts_images(&text_only, "main", Some(&o)), Some(true), "an override, default provider");
        assert_eq!(accepts_images(&config(json!(["text", "image"])), "main", None), Some(true));
        let o = ModelOverride { provider: Some("other".into()), model: "x".into() };
        assert_eq!(accepts_images(&text_only, "main", Some(&o)), None, "not described: the gateway decides");
        assert_eq!(accepts_images(&json!({}), "main", None), None);
    }
}
