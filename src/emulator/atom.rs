//! Atom/XML, the format the Media Services .NET SDK spoke (WCF Data Services 5.6, OData v3):
//! it never switched to JSON. Request entries are read into the JSON bodies the entity modules
//! take; answers are written from the verbose JSON shape as Atom entries and feeds, errors as
//! OData's XML error. Shapes follow the SDK's own recorded exchanges (IngestLog.txt in
//! Azure/azure-sdk-for-media-services): `xml:base`, an absolute `<id>` equal to the 201's
//! `Location`, a relative `rel="edit"` link, one `related/{Nav}` link per navigation property,
//! `m:properties` with `m:type` on every non-string value and `m:null="true"` for nulls.

use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::odata::{ApiError, SetInfo};

const ATOM: &str = "http://www.w3.org/2005/Atom";
const DATA: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices";
const META: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata";
const SCHEME: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme";
const RELATED: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/related/";

pub const ENTRY_TYPE: &str = "application/atom+xml;type=entry;charset=utf-8";
pub const FEED_TYPE: &str = "application/atom+xml;type=feed;charset=utf-8";
pub const XML_TYPE: &str = "application/xml;charset=utf-8";

/// Whether a request body is XML (an Atom entry).
pub fn is_xml(content_type: &str) -> bool {
    let c = content_type.to_ascii_lowercase();
    c.contains("atom+xml") || c.starts_with("application/xml") || c.starts_with("text/xml")
}

/// Whether a request's headers say its body is XML.
pub fn has_xml_body(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_xml)
}

/// The JSON body an XML request body stands for (`None` when the body is not XML, or empty).
pub fn json_of(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Option<Value>, ApiError> {
    if !has_xml_body(headers) || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    read_entry(body).map(Some)
}

/// The EDM type the service gave a property, by its name (the v2 model names properties
/// alike across entity types); strings have none.
pub fn edm_type(property: &str) -> Option<&'static str> {
    Some(match property {
        "Created" | "LastModified" | "StartTime" | "EndTime" | "ExpirationDateTime"
        | "Timestamp" | "FreeTrialEndTime" => "Edm.DateTime",
        "ContentFileSize" => "Edm.Int64",
        "DurationInMinutes" | "Progress" | "RunningDuration" => "Edm.Double",
        "IsPrimary" | "IsEncrypted" | "CdnEnabled" | "IsDefault" => "Edm.Boolean",
        "State"
        | "Options"
        | "FormatOption"
        | "Permissions"
        | "Type"
        | "Priority"
        | "ScaleUnits"
        | "EndPointType"
        | "CredentialType"
        | "ProtectionKeyType"
        | "ContentKeyType"
        | "TargetJobState"
        | "NotificationEndPointType"
        | "Code"
        | "Level" => "Edm.Int32",
        _ => return None,
    })
}

/// Collection-valued properties: the SDK writes them without `m:type`, an empty one as an
/// empty element.
fn collection(property: &str) -> bool {
    matches!(
        property,
        "ErrorDetails"
            | "HistoricalEvents"
            | "JobNotificationSubscriptions"
            | "TaskNotificationSubscriptions"
    )
}

/// Navigation properties that lead to one entity (an Atom `type=entry` link).
fn single(nav: &str) -> bool {
    matches!(nav, "AccessPolicy" | "Asset" | "Job" | "StorageAccount")
}

/// Text and double-quoted attribute values escaped (`'` stays as the service wrote it, in
/// `Assets('…')`).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// `https://host/api/` of an absolute entity URI `https://host/api/Assets('…')`.
fn base_of(uri: &str) -> &str {
    uri.rfind("/api/").map_or(uri, |i| &uri[..i + 5])
}

fn now() -> String {
    let d = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// One property as `<d:Name m:type=…>value</d:Name>`.
fn property(out: &mut String, name: &str, v: &Value) {
    let typed = |t: Option<&str>| t.map(|t| format!(" m:type=\"{t}\"")).unwrap_or_default();
    match v {
        Value::Null => {
            out.push_str(&format!(
                "<d:{name}{} m:null=\"true\" />",
                typed(edm_type(name))
            ));
        }
        Value::Bool(b) => out.push_str(&format!("<d:{name} m:type=\"Edm.Boolean\">{b}</d:{name}>")),
        Value::Number(n) => {
            let t = edm_type(name).unwrap_or(if n.is_f64() {
                "Edm.Double"
            } else {
                "Edm.Int32"
            });
            let text = match (t, n.as_f64()) {
                ("Edm.Double", Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => {
                    format!("{}", f as i64)
                }
                _ => n.to_string(),
            };
            out.push_str(&format!("<d:{name} m:type=\"{t}\">{text}</d:{name}>"));
        }
        Value::String(s) => out.push_str(&format!(
            "<d:{name}{}>{}</d:{name}>",
            typed(edm_type(name)),
            escape(s)
        )),
        // A collection as verbose JSON writes it, or a bare array.
        Value::Object(m) if m.contains_key("results") => {
            let t = m
                .get("__metadata")
                .and_then(|x| x["type"].as_str())
                .unwrap_or("Collection(Edm.String)");
            out.push_str(&format!("<d:{name} m:type=\"{}\">", escape(t)));
            for item in m["results"].as_array().into_iter().flatten() {
                element(out, item);
            }
            out.push_str(&format!("</d:{name}>"));
        }
        Value::Array(items) => {
            out.push_str(&format!("<d:{name}>"));
            for item in items {
                element(out, item);
            }
            out.push_str(&format!("</d:{name}>"));
        }
        Value::Object(m) => {
            out.push_str(&format!("<d:{name}>"));
            for (k, v) in m {
                property(out, k, v);
            }
            out.push_str(&format!("</d:{name}>"));
        }
    }
}

/// One item of a collection: `<d:element>`, complex items with their properties inside.
fn element(out: &mut String, item: &Value) {
    match item {
        Value::Object(m) => {
            out.push_str("<d:element>");
            for (k, v) in m.iter().filter(|(k, _)| *k != "__metadata") {
                property(out, k, v);
            }
            out.push_str("</d:element>");
        }
        v => property(out, "element", v),
    }
}

/// The inside of an `<entry>` for a verbose JSON entity (with `__metadata` and `__deferred`).
fn entry_body(out: &mut String, info: &SetInfo, e: &Value) {
    let uri = e["__metadata"]["uri"].as_str().unwrap_or_default();
    let base = base_of(uri);
    let edit = uri.strip_prefix(base).unwrap_or(uri);
    let type_name = e["__metadata"]["type"].as_str().unwrap_or(info.type_name);
    let title = type_name.rsplit('.').next().unwrap_or(type_name);
    out.push_str(&format!(
        "<id>{}</id><category term=\"{}\" scheme=\"{SCHEME}\" /><link rel=\"edit\" title=\"{title}\" href=\"{}\" />",
        escape(uri),
        escape(type_name),
        escape(edit)
    ));
    let Value::Object(m) = e else { return };
    for (k, v) in m {
        if let Some(href) = v["__deferred"]["uri"].as_str() {
            let kind = if single(k) { "entry" } else { "feed" };
            out.push_str(&format!(
                "<link rel=\"{RELATED}{k}\" type=\"application/atom+xml;type={kind}\" title=\"{k}\" href=\"{}\" />",
                escape(href.strip_prefix(base).unwrap_or(href))
            ));
        }
    }
    out.push_str(&format!(
        "<title /><updated>{}</updated><author><name /></author><content type=\"application/xml\"><m:properties>",
        now()
    ));
    for (k, v) in m {
        if k == "__metadata" || v.get("__deferred").is_some() {
            continue;
        }
        property(out, k, v);
    }
    out.push_str("</m:properties></content>");
}

fn namespaces(base: &str) -> String {
    format!(
        "xml:base=\"{}\" xmlns=\"{ATOM}\" xmlns:d=\"{DATA}\" xmlns:m=\"{META}\"",
        escape(base)
    )
}

/// An entity (verbose JSON) as an Atom entry document.
pub fn entry(info: &SetInfo, e: &Value) -> String {
    let base = base_of(e["__metadata"]["uri"].as_str().unwrap_or_default());
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><entry {}>",
        namespaces(base)
    );
    entry_body(&mut out, info, e);
    out.push_str("</entry>");
    out
}

/// A collection (verbose JSON entities) as an Atom feed of the set at `api`; `count` is
/// `$inlinecount`'s.
pub fn feed(api: &str, info: &SetInfo, entities: &[Value], count: Option<usize>) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed {}><id>{}{}</id><title type=\"text\">{}</title><updated>{}</updated><link rel=\"self\" title=\"{}\" href=\"{}\" />",
        namespaces(api),
        escape(api),
        info.name,
        info.name,
        now(),
        info.name,
        info.name
    );
    if let Some(n) = count {
        out.push_str(&format!("<m:count>{n}</m:count>"));
    }
    for e in entities {
        out.push_str("<entry>");
        entry_body(&mut out, info, e);
        out.push_str("</entry>");
    }
    out.push_str("</feed>");
    out
}

/// A single value, as a service operation answers in XML:
/// `<Name xmlns="…/dataservices">value</Name>`.
pub fn value(name: &str, v: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><{name} xmlns=\"{DATA}\">{}</{name}>",
        escape(v)
    )
}

/// The AtomPub service document: the sets served.
pub fn service(api: &str, sets: &[&str]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><service xml:base=\"{}\" xmlns=\"http://www.w3.org/2007/app\" xmlns:atom=\"{ATOM}\"><workspace><atom:title>Default</atom:title>",
        escape(api)
    );
    for s in sets {
        out.push_str(&format!(
            "<collection href=\"{s}\"><atom:title>{s}</atom:title></collection>"
        ));
    }
    out.push_str("</workspace></service>");
    out
}

/// OData's XML error body.
pub fn error(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?><m:error xmlns:m=\"{META}\"><m:code>{}</m:code><m:message xml:lang=\"en-US\">{}</m:message></m:error>",
        escape(code),
        escape(message)
    )
}

/// The JSON body an Atom request entry stands for: its `m:properties` typed by their
/// `m:type`, nulls as null, .NET's unset date (`0001-01-01T00:00:00`) as null, collections
/// as arrays, and each `related/{Nav}` link as `{Nav: [{"__metadata": {"uri": href}}]}` (an
/// object for links to one entity), as the JSON formats name related entities.
pub fn read_entry(xml: &[u8]) -> Result<Value, ApiError> {
    if let Some(uri) = read_uri(xml) {
        return Ok(serde_json::json!({ "uri": uri }));
    }
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("the request body is not a valid Atom entry: {e}"))
    };
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.trim_text(true);
    let mut buf = Vec::new();
    let mut out = Map::new();
    // Open elements below <m:properties>: (name, m:type, null, collected value).
    let mut stack: Vec<Open> = Vec::new();
    let mut in_properties = false;
    let mut saw_entry = false;
    // Elements open: a document cut short is not an entry.
    let mut depth = 0usize;
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| bad(&e))?;
        match event {
            Event::Start(ref t) | Event::Empty(ref t) => {
                let empty = matches!(event, Event::Empty(_));
                if !empty {
                    depth += 1;
                }
                let name = local(t.name().as_ref());
                let attr = |want: &str| -> Option<String> {
                    t.attributes().flatten().find_map(|a| {
                        (local(a.key.as_ref()) == want)
                            .then(|| a.unescape_value().ok().map(|v| v.into_owned()))
                            .flatten()
                    })
                };
                if name == "entry" {
                    saw_entry = true;
                } else if name == "properties" && !in_properties {
                    in_properties = !empty;
                } else if in_properties {
                    let open = Open {
                        name: name.clone(),
                        edm: attr("type"),
                        null: attr("null").is_some_and(|v| v == "true"),
                        text: String::new(),
                        children: Vec::new(),
                    };
                    if empty {
                        let (k, v) = open.finish();
                        put(&mut stack, &mut out, k, v);
                    } else {
                        stack.push(open);
                    }
                } else if name == "link" {
                    let rel = attr("rel").unwrap_or_default();
                    if let (Some(nav), Some(href)) = (rel.strip_prefix(RELATED), attr("href")) {
                        let reference = serde_json::json!({"__metadata": {"uri": href}});
                        if single(nav) {
                            out.insert(nav.to_string(), reference);
                        } else if let Some(Value::Array(a)) = out.get_mut(nav) {
                            a.push(reference);
                        } else {
                            out.insert(nav.to_string(), Value::Array(vec![reference]));
                        }
                    }
                }
            }
            Event::Text(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.unescape().map_err(|e| bad(&e))?);
                }
            }
            Event::CData(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(ref t) => {
                depth = depth.saturating_sub(1);
                let name = local(t.name().as_ref());
                if in_properties && name == "properties" && stack.is_empty() {
                    in_properties = false;
                } else if let Some(open) = stack.pop() {
                    let (k, v) = open.finish();
                    put(&mut stack, &mut out, k, v);
                }
            }
            Event::Eof if depth > 0 => return Err(bad(&"the document ends inside an element")),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_entry {
        return Err(bad(&"no <entry> element"));
    }
    Ok(Value::Object(out))
}

/// The text of a `<uri>` document (the body of a `$links` POST in XML), if it is one.
fn read_uri(xml: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.trim_text(true);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(t) if local(t.name().as_ref()) == "uri" => {
                let mut text = String::new();
                loop {
                    buf.clear();
                    match reader.read_event_into(&mut buf).ok()? {
                        Event::Text(t) => text.push_str(&t.unescape().ok()?),
                        Event::End(_) => return Some(text),
                        _ => return None,
                    }
                }
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            _ => return None,
        }
        buf.clear();
    }
}

/// An element being read below `<m:properties>`.
struct Open {
    name: String,
    edm: Option<String>,
    null: bool,
    text: String,
    /// Child elements: a complex value's properties, or a collection's `d:element`s.
    children: Vec<(String, Value)>,
}

impl Open {
    fn finish(self) -> (String, Value) {
        let listed = self
            .edm
            .as_deref()
            .is_some_and(|t| t.starts_with("Collection("))
            || collection(&self.name);
        let v = if self.null {
            Value::Null
        } else if listed || self.children.iter().any(|(k, _)| k == "element") {
            Value::Array(self.children.into_iter().map(|(_, v)| v).collect())
        } else if !self.children.is_empty() {
            Value::Object(self.children.into_iter().collect())
        } else {
            typed(self.edm.as_deref(), self.text)
        };
        (self.name, v)
    }
}

fn put(stack: &mut [Open], out: &mut Map<String, Value>, k: String, v: Value) {
    match stack.last_mut() {
        Some(parent) => parent.children.push((k, v)),
        None => {
            out.insert(k, v);
        }
    }
}

/// A property's text as the JSON value of its EDM type.
fn typed(edm: Option<&str>, text: String) -> Value {
    match edm {
        Some("Edm.Int32" | "Edm.Int64" | "Edm.Int16" | "Edm.Byte" | "Edm.SByte") => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        Some("Edm.Double" | "Edm.Single" | "Edm.Decimal") => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or(Value::String(text)),
        Some("Edm.Boolean") => match text.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => Value::String(text),
        },
        // .NET's DateTime.MinValue: a date the client never set.
        Some("Edm.DateTime") if text.trim().starts_with("0001-01-01") => Value::Null,
        _ => Value::String(text),
    }
}

/// `d:Name` → `Name`.
fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    s.rsplit(':').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK's POST Assets entry, as its recorded exchange shows it.
    const SDK_ASSET: &str = r#"<?xml version="1.0" encoding="utf-8"?><entry xmlns="http://www.w3.org/2005/Atom" xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">  <id />  <title />  <updated>2013-04-11T16:29:39Z</updated>  <author>    <name />  </author>  <content type="application/xml">    <m:properties>      <d:AlternateId m:null="true" />      <d:Created m:type="Edm.DateTime">0001-01-01T00:00:00</d:Created>      <d:Id m:null="true" />      <d:LastModified m:type="Edm.DateTime">0001-01-01T00:00:00</d:LastModified>      <d:Name>UploadSingleFile_4/11/2013 4:29:38 PM</d:Name>      <d:Options m:type="Edm.Int32">0</d:Options>      <d:State m:type="Edm.Int32">0</d:State>    </m:properties>  </content></entry>"#;

    #[test]
    fn the_sdks_entries_read_as_json_bodies() {
        let v = read_entry(SDK_ASSET.as_bytes()).unwrap();
        assert_eq!(v["Name"], "UploadSingleFile_4/11/2013 4:29:38 PM");
        assert_eq!(v["Options"], 0);
        assert!(v["Id"].is_null() && v["Created"].is_null() && v["AlternateId"].is_null());
        let job = format!(
            r#"<entry xmlns="{ATOM}" xmlns:d="{DATA}" xmlns:m="{META}"><link rel="{RELATED}InputMediaAssets" type="application/atom+xml;type=feed" title="InputMediaAssets" href="https://h/api/Assets('a')" /><id /><content type="application/xml"><m:properties><d:JobNotificationSubscriptions /><d:Name>j &amp; k</d:Name><d:Priority m:type="Edm.Int32">0</d:Priority><d:RunningDuration m:type="Edm.Double">0</d:RunningDuration><d:ErrorDetails m:type="Collection(X.ErrorDetail)"><d:element><d:Code>C</d:Code><d:Message>M</d:Message></d:element></d:ErrorDetails></m:properties></content></entry>"#
        );
        let v = read_entry(job.as_bytes()).unwrap();
        assert_eq!(v["Name"], "j & k");
        assert_eq!(
            v["InputMediaAssets"][0]["__metadata"]["uri"],
            "https://h/api/Assets('a')"
        );
        assert_eq!(v["RunningDuration"], 0.0);
        assert_eq!(v["ErrorDetails"][0]["Code"], "C");
        assert!(read_entry(b"<feed/>").is_err());
        assert!(read_entry(b"<entry").is_err());
        assert!(read_entry(b"<entry><content>").is_err());
        assert!(read_entry(b"{\"Name\": 1}").is_err());
    }

    #[test]
    fn entities_write_as_the_service_wrote_them() {
        let info = super::super::assets::INFO;
        let e = serde_json::json!({
            "__metadata": {"uri": "https://h/api/Assets('nb%3Acid%3AUUID%3A1')", "type": info.type_name},
            "Files": {"__deferred": {"uri": "https://h/api/Assets('nb%3Acid%3AUUID%3A1')/Files"}},
            "Id": "nb:cid:UUID:1", "State": 0, "Created": "2013-04-11T16:29:41.0515166Z",
            "AlternateId": null, "Name": "a<b", "Options": 0,
        });
        let xml = entry(&info, &e);
        for part in [
            "xml:base=\"https://h/api/\"",
            "<id>https://h/api/Assets('nb%3Acid%3AUUID%3A1')</id>",
            "<link rel=\"edit\" title=\"Asset\" href=\"Assets('nb%3Acid%3AUUID%3A1')\" />",
            "related/Files\" type=\"application/atom+xml;type=feed\" title=\"Files\" href=\"Assets('nb%3Acid%3AUUID%3A1')/Files\"",
            "<d:State m:type=\"Edm.Int32\">0</d:State>",
            "<d:Created m:type=\"Edm.DateTime\">2013-04-11T16:29:41.0515166Z</d:Created>",
            "<d:AlternateId m:null=\"true\" />",
            "<d:Name>a&lt;b</d:Name>",
        ] {
            assert!(xml.contains(part), "{part} in {xml}");
        }
        // What is written reads back.
        let back = read_entry(xml.as_bytes()).unwrap();
        assert_eq!(back["Name"], "a<b");
        assert_eq!(back["State"], 0);
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn no_body_panics(text in "\\PC{0,200}", props in "(<d:[A-Za-z]{1,8}( m:type=\"(Edm.Int32|Edm.Double|Edm.Boolean|Edm.DateTime|Collection\\(X\\))\")?( m:null=\"true\")?>[^<]{0,12}(</d:[A-Za-z]{1,8}>)?){0,6}") {
            let _ = read_entry(text.as_bytes());
            let doc = format!("<entry xmlns=\"{ATOM}\" xmlns:d=\"{DATA}\" xmlns:m=\"{META}\"><content><m:properties>{props}</m:properties></content></entry>");
            let _ = read_entry(doc.as_bytes());
        }
    }
}
