//! The OData envelope of the v2 wire, one definition for the client and the emulator: entity
//! key paths and references, the two JSON formats (verbose `{"d": …}` and minimal
//! `{"value": …}`), and the error body.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `Assets('nb%3Acid%3AUUID%3A…')`: an entity's path below the API root (the id's colons
/// percent-encoded, as the .NET SDK writes them).
pub fn key_path(set: &str, id: &str) -> String {
    format!("{set}('{}')", id.replace(':', "%3A"))
}

/// An entity's URI: `{api}Assets('…')`, with one slash between the root and the path.
pub fn entity_uri(api: &str, set: &str, id: &str) -> String {
    format!("{}/{}", api.trim_end_matches('/'), key_path(set, id))
}

/// The JSON format of a request or an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json;odata=verbose`: `{"d": …}`, `__metadata`, `__deferred`.
    Verbose,
    /// `application/json` (minimal metadata): `odata.metadata`, `value`.
    Minimal,
    /// Atom/XML, what the .NET SDK asks for (`application/atom+xml,application/xml`): the
    /// emulator answers it (from the verbose shape); amsplay's client never asks for it.
    Atom,
}

impl Format {
    /// The format an `Accept` header asks for: Atom for XML without JSON, verbose for
    /// `odata=verbose`, minimal otherwise.
    pub fn from_accept(accept: &str) -> Self {
        let a = accept.to_ascii_lowercase();
        if (a.contains("atom+xml") || a.contains("application/xml")) && !a.contains("json") {
            Format::Atom
        } else if a.contains("odata=verbose") {
            Format::Verbose
        } else {
            Format::Minimal
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Verbose => "application/json;odata=verbose;charset=utf-8",
            Format::Atom => "application/atom+xml;charset=utf-8",
            Format::Minimal => {
                "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
            }
        }
    }
}

/// A body without its verbose wrapper: `{"d": X}` is X, anything else is itself.
pub fn unwrap_entity(v: Value) -> Value {
    match v {
        Value::Object(mut m) if m.len() == 1 && m.contains_key("d") => {
            m.remove("d").unwrap_or_default()
        }
        v => v,
    }
}

/// A collection's items: `{"d": {"results": […]}}`, `{"d": […]}` or `{"value": […]}`.
pub fn unwrap_collection(v: Value) -> Value {
    match unwrap_entity(v) {
        Value::Object(mut m) if m.contains_key("results") => {
            m.remove("results").unwrap_or_default()
        }
        Value::Object(mut m) if m.contains_key("value") => m.remove("value").unwrap_or_default(),
        v => v,
    }
}

/// A reference to an entity by its URI, as a job names its input assets:
/// `{"__metadata": {"uri": "https://…/api/Assets('nb%3Acid%3AUUID%3A…')"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityRef {
    #[serde(rename = "__metadata")]
    pub metadata: RefMetadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefMetadata {
    pub uri: String,
}

impl EntityRef {
    pub fn new(api: &str, set: &str, id: &str) -> Self {
        Self {
            metadata: RefMetadata {
                uri: entity_uri(api, set, id),
            },
        }
    }

    /// The id of the `set` entity the URI names, percent-decoded; `None` when it names none.
    pub fn key(&self, set: &str) -> Option<String> {
        let uri = &self.metadata.uri;
        let start = uri.find(&format!("{set}("))? + set.len() + 1;
        let end = uri[start..].find(')')? + start;
        let key = crate::ams::auth::urldecode(&uri[start..end]);
        Some(key.trim_matches('\'').to_string())
    }
}

/// The error body: `{"odata.error": {code, message: {lang, value}}}` in the minimal format,
/// `{"error": …}` in the verbose one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ODataError {
    pub code: String,
    pub message: ErrorMessage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub lang: String,
    pub value: String,
}

impl ODataError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: ErrorMessage {
                lang: "en-US".into(),
                value: message.into(),
            },
        }
    }

    /// The body in a format.
    pub fn to_json(&self, fmt: Format) -> Value {
        let key = match fmt {
            Format::Verbose | Format::Atom => "error",
            Format::Minimal => "odata.error",
        };
        json!({ key: self })
    }

    /// The error in a body of either format; `None` when the body holds none.
    pub fn from_json(v: &Value) -> Option<Self> {
        let inner = v.get("odata.error").or_else(|| v.get("error"))?;
        serde_json::from_value(inner.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_both_ways() {
        assert_eq!(
            key_path("Assets", "nb:cid:UUID:ab"),
            "Assets('nb%3Acid%3AUUID%3Aab')"
        );
        let r = EntityRef::new("http://h/api/", "Assets", "nb:cid:UUID:ab");
        assert_eq!(
            r.metadata.uri,
            "http://h/api/Assets('nb%3Acid%3AUUID%3Aab')"
        );
        assert_eq!(r.key("Assets").as_deref(), Some("nb:cid:UUID:ab"));
        assert_eq!(r.key("Jobs"), None);
        for fmt in [Format::Verbose, Format::Minimal] {
            let e = ODataError::new("BadRequest", "field 'Name' is too long");
            assert_eq!(ODataError::from_json(&e.to_json(fmt)), Some(e));
        }
        let items = json!([{"Id": "a"}]);
        for body in [
            json!({"d": {"results": items.clone()}}),
            json!({"d": items.clone()}),
            json!({"odata.metadata": "m", "value": items.clone()}),
        ] {
            assert_eq!(unwrap_collection(body), items);
        }
        assert_eq!(unwrap_entity(json!({"d": {"Id": "a"}})), json!({"Id": "a"}));
    }
}
