//! The chat request body as borrowed wire types. Strings point into the
//! request text (copied only when they hold escapes); only the fields the
//! route reads are kept, every other value is walked and dropped. Each type
//! accepts any JSON value (a wrong type is the validator's business, with
//! zod's wording), a repeated key keeps its last value (as `JSON.parse`), and
//! every value goes through serde_json's `deserialize_any`: the same nesting
//! limit, number range and escape checks, in the same order, as parsing the
//! body into a `serde_json::Value`, so a refused body gets the same error at
//! the same position. No logic here.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value: objects read as `O` (a field set), array items as `E`.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a, O, E> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    Arr(Vec<E>),
    Obj(O),
}

/// A value validated and dropped (an array item or field nobody reads).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Skip;

/// Any value, kept only as far as its type and scalar (arrays keep their length).
pub type Any<'a> = Json<'a, Skip, Skip>;

/// zod's name for a JSON value's type.
impl<O, E> Json<'_, O, E> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Num(_) => "number",
            Json::Str(_) => "string",
            Json::Arr(_) => "array",
            Json::Obj(_) => "object",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_obj(&self) -> Option<&O> {
        match self {
            Json::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_arr(&self) -> Option<&[E]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn is_true(&self) -> bool {
        matches!(self, Json::Bool(true))
    }
}

/// The request body's top-level fields.
#[derive(Debug, Default)]
pub struct BodyFields<'a> {
    pub model: Option<Any<'a>>,
    pub stream: Option<Any<'a>>,
    pub stream_options: Option<Json<'a, IncludeUsage<'a>, Skip>>,
    pub tools: Option<Any<'a>>,
    pub tool_choice: Option<Json<'a, ToolChoice<'a>, Skip>>,
    pub messages: Option<Json<'a, Skip, Message<'a>>>,
    pub user: Option<Any<'a>>,
    pub max_tokens: Option<Any<'a>>,
    pub max_completion_tokens: Option<Any<'a>>,
    pub temperature: Option<Any<'a>>,
    pub top_p: Option<Any<'a>>,
    pub frequency_penalty: Option<Any<'a>>,
    pub presence_penalty: Option<Any<'a>>,
    pub seed: Option<Any<'a>>,
    pub stop: Option<Json<'a, Skip, Any<'a>>>,
    pub response_format: Option<Json<'a, TypeField<'a>, Skip>>,
}

/// The whole body.
pub type Body<'a> = Json<'a, BodyFields<'a>, Skip>;

#[derive(Debug, Default)]
pub struct IncludeUsage<'a> {
    pub include_usage: Option<Any<'a>>,
}

/// An object read for its `type` only (`response_format`).
#[derive(Debug, Default)]
pub struct TypeField<'a> {
    pub kind: Option<Any<'a>>,
}

#[derive(Debug, Default)]
pub struct ToolChoice<'a> {
    pub kind: Option<Any<'a>>,
    pub function: Option<Json<'a, Named<'a>, Skip>>,
}

/// An object read for its `name` only.
#[derive(Debug, Default)]
pub struct Named<'a> {
    pub name: Option<Any<'a>>,
}

/// One item of `messages`.
pub type Message<'a> = Json<'a, MessageFields<'a>, Skip>;

/// A message's fields. The rarely present ones live in one box, so a short
/// message costs ~80 bytes besides its strings.
#[derive(Debug, Default)]
pub struct MessageFields<'a> {
    pub role: Option<Any<'a>>,
    pub content: Option<Content<'a>>,
    pub rare: Option<Box<RareFields<'a>>>,
}

#[derive(Debug, Default)]
pub struct RareFields<'a> {
    pub name: Option<Any<'a>>,
    pub tool_call_id: Option<Any<'a>>,
    pub stop_reason: Option<Any<'a>>,
    pub tool_calls: Option<Json<'a, Skip, ToolCall<'a>>>,
}

impl<'a> MessageFields<'a> {
    pub fn rare(&self) -> &RareFields<'a> {
        const NONE: &RareFields<'static> =
            &RareFields { name: None, tool_call_id: None, stop_reason: None, tool_calls: None };
        self.rare.as_deref().unwrap_or(NONE)
    }
}

/// A message's `content`: a string, an array of parts, or anything else.
pub type Content<'a> = Json<'a, Skip, Part<'a>>;

pub type Part<'a> = Json<'a, PartFields<'a>, Skip>;

#[derive(Debug, Default)]
pub struct PartFields<'a> {
    pub kind: Option<Any<'a>>,
    pub text: Option<Any<'a>>,
    pub input_text: Option<Any<'a>>,
    pub image_url: Option<Json<'a, Url<'a>, Skip>>,
}

#[derive(Debug, Default)]
pub struct Url<'a> {
    pub url: Option<Any<'a>>,
}

pub type ToolCall<'a> = Json<'a, ToolCallFields<'a>, Skip>;

#[derive(Debug, Default)]
pub struct ToolCallFields<'a> {
    pub id: Option<Any<'a>>,
    pub function: Option<Json<'a, FunctionFields<'a>, Skip>>,
}

#[derive(Debug, Default)]
pub struct FunctionFields<'a> {
    pub name: Option<Any<'a>>,
    pub arguments: Option<Arguments<'a>>,
}

/// `function.arguments`: a string as is; anything else is rendered as
/// `JSON.stringify` would, from a `serde_json::Value` of just that value.
#[derive(Debug)]
pub enum Arguments<'a> {
    Null,
    Str(Cow<'a, str>),
    Other(serde_json::Value),
}

/// A set of object fields: stores the value of a key it reads, skips the rest.
pub trait Fields<'de>: Default {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

impl<'de> Fields<'de> for Skip {
    fn field<A: MapAccess<'de>>(&mut self, _: &str, map: &mut A) -> Result<(), A::Error> {
        map.next_value::<Skip>().map(drop)
    }
}

/// `fields!(Type { "json key" => field, ... })`: a repeated key overwrites.
macro_rules! fields {
    ($t:ident { $($key:literal => $($f:ident).+),* $(,)? }) => {
        impl<'de: 'a, 'a> Fields<'de> for $t<'a> {
            fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
                match key {
                    $($key => self.$($f).+ = Some(map.next_value()?),)*
                    _ => map.next_value::<Skip>().map(drop)?,
                }
                Ok(())
            }
        }
    };
}

fields!(BodyFields {
    "model" => model, "stream" => stream, "stream_options" => stream_options, "tools" => tools,
    "tool_choice" => tool_choice, "messages" => messages, "user" => user, "max_tokens" => max_tokens,
    "max_completion_tokens" => max_completion_tokens, "temperature" => temperature, "top_p" => top_p,
    "frequency_penalty" => frequency_penalty, "presence_penalty" => presence_penalty, "seed" => seed,
    "stop" => stop, "response_format" => response_format,
});
fields!(IncludeUsage { "include_usage" => include_usage });
fields!(TypeField { "type" => kind });
fields!(ToolChoice { "type" => kind, "function" => function });
fields!(Named { "name" => name });
fields!(PartFields { "type" => kind, "text" => text, "input_text" => input_text, "image_url" => image_url });
fields!(Url { "url" => url });
fields!(ToolCallFields { "id" => id, "function" => function });
fields!(FunctionFields { "name" => name, "arguments" => arguments });

impl<'de: 'a, 'a> Fields<'de> for MessageFields<'a> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let rare = || -> Box<RareFields<'a>> { Box::default() };
        match key {
            "role" => self.role = Some(map.next_value()?),
            "content" => self.content = Some(map.next_value()?),
            "name" => self.rare.get_or_insert_with(rare).name = Some(map.next_value()?),
            "tool_call_id" => self.rare.get_or_insert_with(rare).tool_call_id = Some(map.next_value()?),
            "stopReason" => self.rare.get_or_insert_with(rare).stop_reason = Some(map.next_value()?),
            "tool_calls" => self.rare.get_or_insert_with(rare).tool_calls = Some(map.next_value()?),
            _ => map.next_value::<Skip>().map(drop)?,
        }
        Ok(())
    }
}

/// An object key, borrowed unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Any::deserialize(d).map(|_| Skip)
    }
}

impl<'de: 'a, 'a, O: Fields<'de>, E: Deserialize<'de>> Deserialize<'de> for Json<'a, O, E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor(PhantomData))
    }
}

struct JsonVisitor<'a, O, E>(PhantomData<(&'a (), O, E)>);

impl<'de: 'a, 'a, O: Fields<'de>, E: Deserialize<'de>> Visitor<'de> for JsonVisitor<'a, O, E> {
    type Value = Json<'a, O, E>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<Er>(self, v: bool) -> Result<Self::Value, Er> {
        Ok(Json::Bool(v))
    }
    // As `serde_json::Value::as_f64` reads them.
    fn visit_i64<Er>(self, v: i64) -> Result<Self::Value, Er> {
        Ok(Json::Num(v as f64))
    }
    fn visit_u64<Er>(self, v: u64) -> Result<Self::Value, Er> {
        Ok(Json::Num(v as f64))
    }
    fn visit_f64<Er>(self, v: f64) -> Result<Self::Value, Er> {
        Ok(Json::Num(v))
    }
    fn visit_borrowed_str<Er>(self, v: &'de str) -> Result<Self::Value, Er> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<Er>(self, v: &str) -> Result<Self::Value, Er> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<Er>(self, v: String) -> Result<Self::Value, Er> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_unit<Er>(self) -> Result<Self::Value, Er> {
        Ok(Json::Null)
    }
    fn visit_none<Er>(self) -> Result<Self::Value, Er> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = O::default();
        while let Some(Key(key)) = map.next_key()? {
            fields.field(&key, &mut map)?;
        }
        Ok(Json::Obj(fields))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Arguments<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Arguments<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<Er>(self, v: bool) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Other(v.into()))
            }
            fn visit_i64<Er>(self, v: i64) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Other(v.into()))
            }
            fn visit_u64<Er>(self, v: u64) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Other(v.into()))
            }
            fn visit_f64<Er>(self, v: f64) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Other(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)))
            }
            fn visit_borrowed_str<Er>(self, v: &'de str) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Str(Cow::Borrowed(v)))
            }
            fn visit_str<Er>(self, v: &str) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<Er>(self, v: String) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Str(Cow::Owned(v)))
            }
            fn visit_unit<Er>(self) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Null)
            }
            fn visit_none<Er>(self) -> Result<Arguments<'a>, Er> {
                Ok(Arguments::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Arguments<'a>, A::Error> {
                serde_json::Value::deserialize(SeqAccessDeserializer::new(seq)).map(Arguments::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Arguments<'a>, A::Error> {
                serde_json::Value::deserialize(MapAccessDeserializer::new(map)).map(Arguments::Other)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped_and_last_key_wins() {
        let text = r#"{"messages":[{"role":"user","content":"a\nb","role":"assistant"}],"model":"x"}"#;
        let Json::Obj(body) = serde_json::from_str::<Body>(text).unwrap() else { panic!() };
        assert!(matches!(body.model, Some(Json::Str(Cow::Borrowed("x")))));
        let msgs = body.messages.as_ref().and_then(Json::as_arr).unwrap();
        let m = msgs[0].as_obj().unwrap();
        assert_eq!(m.role.as_ref().and_then(Json::as_str), Some("assistant"));
        assert!(matches!(m.content, Some(Json::Str(Cow::Owned(ref s))) if s == "a\nb"));
    }

    #[test]
    fn a_message_is_small() {
        // Per message of a big body; strings are borrowed from the body.
        assert!(std::mem::size_of::<Message>() <= 80, "{}", std::mem::size_of::<Message>());
    }

    #[test]
    fn refuses_what_a_value_refuses_with_the_same_error() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for text in [
            deep.as_str(),
            r#"{"x":1e400}"#,
            r#"{"messages":[{"content":"\ud800"}]}"#,
            r#"{"messages":[{"x":{"\udc00":1}}]}"#,
            r#"{"tools":[-1e999]}"#,
            r#"{"a":1} x"#,
        ] {
            let ours = serde_json::from_str::<Body>(text).unwrap_err().to_string();
            let value = serde_json::from_str::<serde_json::Value>(text).unwrap_err().to_string();
            assert_eq!(ours, value, "{text}");
        }
    }
}
