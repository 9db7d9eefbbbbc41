//! One-pass decoding of the frames the link routes. An `agent` event's
//! payload is decoded where it stands, its `data` typed by the `stream` read
//! before it, and skipped unread for runs that are not this link's; every
//! other payload stays raw for the caller. The gateway writes `type` and
//! `event` before `payload`, and `stream` before `data` (see the captures);
//! other orders cost a second pass over the raw text and decode the same.
//! Pure serde, no IO.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::frames::{AssistantData, ErrorShape, LifecycleData};

/// An incoming frame.
#[derive(Debug)]
pub struct Frame<'a> {
    pub kind: Cow<'a, str>,
    pub event: Option<Cow<'a, str>>,
    pub id: Option<Cow<'a, str>>,
    pub ok: Option<bool>,
    pub error: Option<ErrorShape>,
    pub payload: Payload<'a>,
}

#[derive(Debug)]
pub enum Payload<'a> {
    None,
    /// Anything but an `agent` event, undecoded.
    Raw(&'a RawValue),
    Agent(AgentEvent<'a>),
}

/// An `agent` event: `{runId, stream, sessionKey, data, ...}`.
#[derive(Debug)]
pub struct AgentEvent<'a> {
    pub run_id: Cow<'a, str>,
    /// The run's canonical session key (`agent:<id>:<key>`), in every release.
    pub session_key: Option<Cow<'a, str>>,
    /// `assistant`, `lifecycle`, `tool`, ...; empty when absent.
    pub stream: Cow<'a, str>,
    pub data: AgentData,
}

#[derive(Debug, PartialEq)]
pub enum AgentData {
    Assistant(Box<AssistantData>),
    Lifecycle(Box<LifecycleData>),
    /// Another stream, another client's run, or no `data`.
    Other,
}

/// Decodes one frame. `ours` tells whether a run id belongs to this link:
/// the `data` of other runs (the gateway broadcasts every run) is skipped.
pub fn decode<'a>(text: &'a str, ours: &dyn Fn(&str) -> bool) -> serde_json::Result<Frame<'a>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let frame = FrameSeed { ours }.deserialize(&mut de)?;
    de.end()?;
    Ok(frame)
}

/// A string borrowed from the input unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Cow<'de, str>, A::Error> {
    Ok(map.next_value::<Text<'de>>()?.0)
}

fn optional_text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Cow<'de, str>>, A::Error> {
    Ok(map.next_value::<Option<Text<'de>>>()?.map(|t| t.0))
}

struct FrameSeed<'o> {
    ours: &'o dyn Fn(&str) -> bool,
}

impl<'de> DeserializeSeed<'de> for FrameSeed<'_> {
    type Value = Frame<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Frame<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FrameSeed<'_> {
    type Value = Frame<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a gateway frame")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Frame<'de>, A::Error> {
        let (mut kind, mut event, mut id, mut ok, mut error) = (None, None, None, None, None);
        let mut payload = Payload::None;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key.0 {
                "type" => kind = Some(text(&mut map)?),
                "event" => event = optional_text(&mut map)?,
                "id" => id = optional_text(&mut map)?,
                "ok" => ok = map.next_value()?,
                "error" => error = map.next_value()?,
                "payload" if is_agent_event(kind.as_deref(), event.as_deref()) => {
                    payload = Payload::Agent(map.next_value_seed(EventSeed { ours: self.ours })?);
                }
                "payload" => payload = map.next_value::<Option<&'de RawValue>>()?.map_or(Payload::None, Payload::Raw),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        if let (Payload::Raw(raw), true) = (&payload, is_agent_event(Some(&kind), event.as_deref())) {
            // `payload` came before `type`/`event`: decode it now.
            let mut de = serde_json::Deserializer::from_str(raw.get());
            payload = Payload::Agent(EventSeed { ours: self.ours }.deserialize(&mut de).map_err(de::Error::custom)?);
        }
        Ok(Frame { kind, event, id, ok, error, payload })
    }
}

fn is_agent_event(kind: Option<&str>, event: Option<&str>) -> bool {
    kind == Some("event") && event == Some("agent")
}

struct EventSeed<'o> {
    ours: &'o dyn Fn(&str) -> bool,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = AgentEvent<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AgentEvent<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = AgentEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an agent event payload")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AgentEvent<'de>, A::Error> {
        let (mut run_id, mut stream) = (None::<Cow<'de, str>>, None::<Cow<'de, str>>);
        let mut session_key = None::<Cow<'de, str>>;
        let (mut data, mut raw_data) = (None, None::<&'de RawValue>);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key.0 {
                "runId" => run_id = Some(text(&mut map)?),
                "stream" => stream = Some(text(&mut map)?),
                "sessionKey" => session_key = optional_text(&mut map)?,
                "data" => match (&run_id, &stream) {
                    (Some(run), Some(stream)) if (self.ours)(run) => data = Some(typed_data(&mut map, stream)?),
                    (Some(_), Some(_)) => {
                        map.next_value::<IgnoredAny>()?;
                        data = Some(AgentData::Other);
                    }
                    // `data` before `runId` or `stream`: decode it after.
                    _ => raw_data = map.next_value()?,
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let run_id = run_id.ok_or_else(|| de::Error::missing_field("runId"))?;
        let data = match (data, raw_data) {
            (Some(data), _) => data,
            (None, Some(raw)) if (self.ours)(&run_id) => {
                let stream = stream.as_deref().unwrap_or("");
                data_from_str(raw.get(), stream).map_err(de::Error::custom)?
            }
            (None, _) => AgentData::Other,
        };
        Ok(AgentEvent { run_id, session_key, stream: stream.unwrap_or_default(), data })
    }
}

/// `data` typed by its stream; only `assistant` and `lifecycle` are routed.
fn typed_data<'de, A: MapAccess<'de>>(map: &mut A, stream: &str) -> Result<AgentData, A::Error> {
    Ok(match stream {
        "assistant" => AgentData::Assistant(map.next_value()?),
        "lifecycle" => AgentData::Lifecycle(map.next_value()?),
        _ => {
            map.next_value::<IgnoredAny>()?;
            AgentData::Other
        }
    })
}

fn data_from_str(raw: &str, stream: &str) -> serde_json::Result<AgentData> {
    Ok(match stream {
        "assistant" => AgentData::Assistant(serde_json::from_str(raw)?),
        "lifecycle" => AgentData::Lifecycle(serde_json::from_str(raw)?),
        _ => AgentData::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    use crate::gateway::frames::captured_text as captured;

    const RUN: &str = "idem-f7bfd0a7007b4a198aa0ac02f8bd7908";

    fn ours(id: &str) -> bool {
        id == RUN
    }

    #[test]
    fn captured_assistant_event_decodes_in_one_pass() {
        let s =
            captured("ws-agent-run.jsonl", |f| f["event"] == "agent" && f["payload"]["data"]["delta"] == ", world!");
        let f = decode(&s, &ours).unwrap();
        assert_eq!((f.kind.as_ref(), f.event.as_deref()), ("event", Some("agent")));
        let Payload::Agent(ev) = f.payload else { panic!("{:?}", f.payload) };
        assert_eq!(ev.run_id, RUN);
        assert_eq!(ev.session_key.as_deref(), Some("agent:main:main"));
        let AgentData::Assistant(d) = ev.data else { panic!("{:?}", ev.data) };
        assert_eq!((d.text.as_deref(), d.delta.as_deref()), (Some("Hello, world!"), Some(", world!")));
    }

    #[test]
    fn captured_lifecycle_error_keeps_its_failover_reason() {
        let s = captured("ws-agent-upstream-400.jsonl", |f| {
            f["event"] == "agent" && f["payload"]["data"]["phase"] == "error"
        });
        let run = serde_json::from_str::<Value>(&s).unwrap()["payload"]["runId"].as_str().unwrap().to_string();
        let Payload::Agent(ev) = decode(&s, &|id| id == run).unwrap().payload else { panic!() };
        let AgentData::Lifecycle(d) = ev.data else { panic!("{:?}", ev.data) };
        assert_eq!(d.phase, "error");
        assert_eq!(d.error_observation.unwrap().failover_reason.as_deref(), Some("format"));
    }

    #[test]
    fn other_runs_and_other_streams_are_not_decoded() {
        // Not valid `AssistantData` (a numeric delta): skipped, so no error.
        let s = json!({"type":"event","event":"agent","payload":{"runId":"theirs","stream":"assistant","data":{"delta":5}}})
            .to_string();
        let Payload::Agent(ev) = decode(&s, &ours).unwrap().payload else { panic!() };
        assert_eq!((ev.run_id.as_ref(), ev.data), ("theirs", AgentData::Other));
        let s = json!({"type":"event","event":"agent","payload":{"runId":RUN,"stream":"tool","data":{"x":[1]}}})
            .to_string();
        let Payload::Agent(ev) = decode(&s, &ours).unwrap().payload else { panic!() };
        assert_eq!(ev.data, AgentData::Other);
        // Ours with data that is not `AssistantData`: an error, as before.
        let s = json!({"type":"event","event":"agent","payload":{"runId":RUN,"stream":"assistant","data":{"delta":5}}});
        assert!(decode(&s.to_string(), &ours).is_err());
    }

    #[test]
    fn any_field_order_decodes_the_same() {
        let canonical = r#"{"type":"event","event":"agent","payload":{"runId":"R","stream":"assistant","data":{"delta":"hi","text":"hi"}},"seq":3}"#;
        let reordered = r#"{"seq":3,"payload":{"data":{"text":"hi","delta":"hi"},"stream":"assistant","runId":"R"},"event":"agent","type":"event"}"#;
        let escaped = r#"{"type":"ev\u0065nt","event":"agent","payload":{"runId":"\u0052","stream":"assistant","data":{"delta":"hi","text":"hi"}}}"#;
        for s in [canonical, reordered, escaped] {
            let Payload::Agent(ev) = decode(s, &|id| id == "R").unwrap().payload else { panic!("{s}") };
            let AgentData::Assistant(d) = ev.data else { panic!("{s}") };
            assert_eq!(
                (ev.run_id.as_ref(), d.delta.as_deref(), d.text.as_deref()),
                ("R", Some("hi"), Some("hi")),
                "{s}"
            );
        }
    }

    #[test]
    fn responses_keep_a_raw_payload() {
        let s = captured("ws-agent-unknown-agent.jsonl", |f| f["type"] == "res" && f["ok"] == false);
        let f = decode(&s, &ours).unwrap();
        assert_eq!((f.kind.as_ref(), f.ok), ("res", Some(false)));
        assert!(f.id.is_some());
        assert_eq!(f.error.unwrap().code, "INVALID_REQUEST");
        let s = captured("ws-agent-run.jsonl", |f| f["type"] == "res" && f["payload"]["status"] == "ok");
        let Payload::Raw(p) = decode(&s, &ours).unwrap().payload else { panic!() };
        assert_eq!(serde_json::from_str::<Value>(p.get()).unwrap()["status"], "ok");
    }

    #[test]
    fn malformed_frames_are_errors() {
        for s in [
            "",
            "[]",
            "{}",
            r#"{"type":1}"#,
            r#"{"type":"event","event":"agent","payload":{}}"#,
            "{\"type\":\"res\"} x",
        ] {
            assert!(decode(s, &ours).is_err(), "{s:?}");
        }
        let f = decode(r#"{"type":"event","event":"agent"}"#, &ours).unwrap();
        assert!(matches!(f.payload, Payload::None));
    }
}
