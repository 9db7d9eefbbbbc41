//! OpenAI response wire types clawbridge emits for `stream:false`, with the
//! gateway's key order. Serialize-only.

use serde::Serialize;

use crate::gateway::RunUsage;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

impl Usage {
    /// `toOpenAiChatCompletionsUsage`: prompt = input + cache reads (cache
    /// writes are not counted), total = the larger of the sum and the run's total.
    pub fn from_run(u: Option<&RunUsage>) -> Self {
        let Some(u) = u else { return Usage::default() };
        let prompt = u.input + u.cache_read;
        let sum = prompt + u.output;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: u.output,
            total_tokens: sum.max(u.total),
            prompt_tokens_details: (u.cache_read > 0).then_some(PromptDetails { cached_tokens: u.cache_read }),
            completion_tokens_details: u.reasoning.map(|r| CompletionDetails { reasoning_tokens: r }),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: [Choice<'a>; 1],
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct Choice<'a> {
    pub index: u32,
    pub message: Message<'a>,
    pub finish_reason: &'a str,
}

#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

/// The body of a non-streamed completion.
pub fn completion_body(
    id: &str,
    created: u64,
    model: &str,
    content: &str,
    finish_reason: &str,
    usage: Usage,
) -> Vec<u8> {
    let body = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice { index: 0, message: Message { role: "assistant", content }, finish_reason }],
        usage,
    };
    serde_json::to_vec(&body).expect("completion serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_captured_non_stream_body() {
        let path = format!("{}/tests/fixtures/builtin-nonstream.txt", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let want = text.lines().find(|l| l.starts_with("{\"id\"")).unwrap();
        let usage = Usage::from_run(Some(&RunUsage { input: 10, output: 3, total: 13, ..Default::default() }));
        let got = completion_body(
            "chatcmpl_5040ec89-3fa3-44dd-8c02-d613f82f8980",
            1795636699,
            "openclaw/default",
            "Hello, world!",
            "stop",
            usage,
        );
        assert_eq!(std::str::from_utf8(&got).unwrap(), want);
    }
}
