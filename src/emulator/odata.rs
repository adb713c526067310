//! OData as Media Services v2 spoke it: the two JSON formats, error bodies, query options and
//! lenient request bodies. Everything entity-specific lives in the entity modules.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::ams::model::{lenient, parse_date};

pub use crate::ams::odata::Format;

/// An error as the service reported it: status, OData code, message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFound", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }
    /// A method the entity set or entity does not support (405).
    pub fn not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
    }
    /// The emulator's own disk has no room (507, as WebDAV named it).
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "InsufficientStorage",
            message,
        )
    }

    /// The OData error body in the request's format.
    pub fn into_response(self, fmt: Format) -> Response {
        if fmt == Format::Atom {
            let body = super::atom::error(self.code, &self.message);
            return respond(fmt, self.status, Payload::Xml(body));
        }
        let body = crate::ams::odata::ODataError::new(self.code, self.message).to_json(fmt);
        respond(fmt, self.status, body)
    }
}

impl From<super::db::DbError> for ApiError {
    fn from(e: super::db::DbError) -> Self {
        match e {
            super::db::DbError::Duplicate(id) => {
                ApiError::conflict(format!("an entity with Id '{id}' already exists"))
            }
            e @ super::db::DbError::DiskFull(_) => ApiError::insufficient_storage(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

/// Storage failures by meaning: what is not there is 404, storage that cannot answer now is
/// 503 (try again), a full local disk 507; the rest 500.
impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        use crate::storage::StorageError as E;
        let message = format!("storage: {e}");
        match &e {
            E::ContainerNotFound { .. } | E::BlobNotFound { .. } => ApiError::not_found(message),
            E::LocalFile { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                ApiError::insufficient_storage(format!(
                    "the emulator's disk is full ({e}); free space in its data folder (--data-dir)"
                ))
            }
            e if crate::retry::Transient::is_transient(e) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                message,
            ),
            _ => ApiError::internal(message),
        }
    }
}

/// An answer's body: JSON in the request's format, or Atom/XML.
pub enum Payload {
    Json(Value),
    /// An Atom entry document.
    Entry(String),
    /// An Atom feed document.
    Feed(String),
    /// Other XML: an error, a single value, the service document.
    Xml(String),
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}

/// A response with the payload's content type and the service's version headers (a JSON
/// payload answered to an Atom request is verbose JSON: the one format both read).
pub fn respond(fmt: Format, status: StatusCode, body: impl Into<Payload>) -> Response {
    // The version of the payload, as the service wrote it: 1.0 for an Atom entry, 2.0 for a
    // feed (it may carry a count), 3.0 for JSON.
    let (text, content_type, version) = match body.into() {
        Payload::Json(v) => (
            v.to_string(),
            match fmt {
                Format::Atom => Format::Verbose.content_type(),
                f => f.content_type(),
            },
            "3.0;",
        ),
        Payload::Entry(x) => (x, super::atom::ENTRY_TYPE, "1.0;"),
        Payload::Feed(x) => (x, super::atom::FEED_TYPE, "2.0;"),
        Payload::Xml(x) => (x, super::atom::XML_TYPE, "1.0;"),
    };
    let mut r = (status, text).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert("dataserviceversion", HeaderValue::from_static(version));
    r
}

/// What describes an entity set on the wire.
pub struct SetInfo {
    pub name: &'static str,
    pub type_name: &'static str,
    /// The entity type's properties, as the wire names them.
    pub properties: &'static [&'static str],
    /// Navigation properties, deferred in verbose JSON.
    pub navigation: &'static [&'static str],
}

/// One entity in the request's format.
pub fn entity_body(fmt: Format, api: &str, info: &SetInfo, mut entity: Value) -> Payload {
    Payload::Json(match fmt {
        Format::Minimal => {
            let mut out = Map::new();
            out.insert(
                "odata.metadata".into(),
                format!("{api}$metadata#{}/@Element", info.name).into(),
            );
            if let Value::Object(m) = entity {
                out.extend(m);
            }
            Value::Object(out)
        }
        Format::Verbose => json!({ "d": verbose_entity(api, info, &mut entity) }),
        Format::Atom => {
            let e = verbose_entity(api, info, &mut entity);
            return Payload::Entry(super::atom::entry(info, &e));
        }
    })
}

pub(crate) fn verbose_entity(api: &str, info: &SetInfo, entity: &mut Value) -> Value {
    let id = entity["Id"].as_str().unwrap_or_default().to_string();
    let url = crate::ams::odata::entity_uri(api, info.name, &id);
    let mut out = Map::new();
    out.insert(
        "__metadata".into(),
        json!({"id": url, "uri": url, "type": info.type_name}),
    );
    for nav in info.navigation {
        out.insert(
            (*nav).into(),
            json!({"__deferred": {"uri": format!("{url}/{nav}")}}),
        );
    }
    if let Value::Object(m) = entity.take() {
        for (k, v) in m {
            // Collection-valued properties, as verbose OData wrote them.
            let v = match (v, collection_type(&k)) {
                (Value::Array(items), Some(t)) => json!({
                    "__metadata": {"type": format!("Collection({t})")},
                    "results": items,
                }),
                (v, _) => v,
            };
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

/// The item type of a collection-valued property.
fn collection_type(property: &str) -> Option<&'static str> {
    Some(match property {
        "ErrorDetails" => "Microsoft.Cloud.Media.Vod.Rest.Data.Models.ErrorDetail",
        "HistoricalEvents" => "Microsoft.Cloud.Media.Vod.Rest.Data.Models.TaskHistoricalEvent",
        "JobNotificationSubscriptions" => {
            "Microsoft.Cloud.Media.Vod.Rest.Data.Models.JobNotificationSubscription"
        }
        _ => return None,
    })
}

/// A collection in the request's format: `count` is `$inlinecount`'s (a string, as OData v3
/// writes it), `select` the properties `$select` keeps.
pub fn collection_body(
    fmt: Format,
    api: &str,
    info: &SetInfo,
    entities: Vec<Value>,
    count: Option<usize>,
    select: Option<&[String]>,
) -> Payload {
    let keep = |mut e: Value| {
        if let (Some(props), Value::Object(m)) = (select, &mut e) {
            m.retain(|k, _| k == "__metadata" || props.iter().any(|p| p == k));
        }
        e
    };
    Payload::Json(match fmt {
        Format::Minimal => {
            let mut body = json!({
                "odata.metadata": format!("{api}$metadata#{}", info.name),
                "value": entities.into_iter().map(keep).collect::<Vec<_>>(),
            });
            if let Some(n) = count {
                body["odata.count"] = json!(n.to_string());
            }
            body
        }
        Format::Verbose => {
            let results: Vec<Value> = entities
                .into_iter()
                .map(|mut e| keep(verbose_entity(api, info, &mut e)))
                .collect();
            let mut d = json!({ "results": results });
            if let Some(n) = count {
                d["__count"] = json!(n.to_string());
            }
            json!({ "d": d })
        }
        Format::Atom => {
            let entries: Vec<Value> = entities
                .into_iter()
                .map(|mut e| keep(verbose_entity(api, info, &mut e)))
                .collect();
            return Payload::Feed(super::atom::feed(api, info, &entries, count));
        }
    })
}

/// A request body: verbose (`{"d": …}`) or plain, fields read leniently with errors that name
/// the field.
pub struct Body(Map<String, Value>);

impl Body {
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        Self::from_value(v)
    }

    /// A body from JSON already parsed (an object nested in a body: a job's task). JSON
    /// light's `Nav@odata.bind` (a URL, or a list of them, as the reference's `$batch` sample
    /// names a job's input assets) reads as the verbose `Nav` reference(s).
    pub fn from_value(v: Value) -> Result<Self, ApiError> {
        match crate::ams::odata::unwrap_entity(v) {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    let reference = |u: &Value| json!({"__metadata": {"uri": u}});
                    match (k.strip_suffix("@odata.bind"), v) {
                        (Some(nav), Value::Array(urls)) => {
                            out.insert(nav.into(), urls.iter().map(reference).collect());
                        }
                        (Some(nav), url @ Value::String(_)) => {
                            out.insert(nav.into(), reference(&url));
                        }
                        (_, v) => {
                            out.insert(k, v);
                        }
                    }
                }
                Ok(Body(out))
            }
            _ => Err(ApiError::bad_request(
                "the request body must be a JSON object",
            )),
        }
    }

    fn field(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Refuses a property the entity type does not have, as the service did (an OData
    /// client's typo is an error, not a silent no-op). Annotations (`__metadata`,
    /// `odata.type`, `Asset@odata.bind`) and navigation properties pass.
    pub fn only_known(&self, info: &SetInfo) -> Result<(), ApiError> {
        for k in self.0.keys() {
            let known = k == "__metadata"
                || k.contains('.')
                || k.contains('@')
                || info.properties.contains(&k.as_str())
                || info.navigation.contains(&k.as_str());
            if !known {
                return Err(ApiError::bad_request(format!(
                    "The property '{k}' does not exist on type '{}'. Make sure to only use property names that are defined by the type.",
                    info.type_name
                )));
            }
        }
        Ok(())
    }

    /// For MERGE/PATCH/PUT: every field outside `writable` must be absent or equal to the
    /// entity's current value (`current`, its wire JSON), as clients that send the whole
    /// entity do; changing a read-only field is a 400 naming it, never a silent no-op.
    pub fn read_only_unchanged(
        &self,
        current: &Value,
        writable: &[&str],
        entity: &str,
    ) -> Result<(), ApiError> {
        for (k, v) in &self.0 {
            if writable.contains(&k.as_str())
                || k == "__metadata"
                || k.contains('.')
                || k.contains('@')
            {
                continue;
            }
            let now = current.get(k).unwrap_or(&Value::Null);
            let same = values_equal(v, now)
                || values_equal(now, v)
                || matches!((v, now), (Value::String(a), Value::String(b))
                    if parse_date(a).is_some() && parse_date(a) == parse_date(b));
            if !same {
                return Err(ApiError::bad_request(format!(
                    "field '{k}' of {entity} cannot be changed; an update may change {}",
                    writable.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A string field, at most as long as the v2 service allowed it (`max_chars`).
    pub fn str(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.field(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() > max_chars(name) => {
                Err(ApiError::bad_request(format!(
                    "field '{name}' is {} characters long; at most {}",
                    s.chars().count(),
                    max_chars(name)
                )))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(ApiError::bad_request(format!(
                "field '{name}' must be a string, not {v}"
            ))),
        }
    }

    /// An array field (a verbose `{"results": […]}` too).
    pub fn array(&self, name: &str) -> Result<Option<Vec<Value>>, ApiError> {
        match self
            .field(name)
            .cloned()
            .map(crate::ams::odata::unwrap_collection)
        {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(v) => Err(ApiError::bad_request(format!(
                "field '{name}' must be an array, not {v}"
            ))),
        }
    }

    pub fn required_str(&self, name: &str) -> Result<String, ApiError> {
        self.str(name)?
            .ok_or_else(|| ApiError::bad_request(format!("field '{name}' is required")))
    }

    /// A finite number (NaN and infinities are refused: they cannot be stored or read back).
    pub fn number(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.field(name) {
            None => Ok(None),
            Some(v) => lenient::number(v)
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "field '{name}' must be a finite number, not {v}"
                    ))
                }),
        }
    }

    /// A whole number that fits in 32 bits (what every integer field of the v2 API is).
    pub fn int(&self, name: &str) -> Result<Option<i32>, ApiError> {
        match self.number(name)? {
            Some(n) if n.fract() != 0.0 => Err(ApiError::bad_request(format!(
                "field '{name}' must be a whole number, not {n}"
            ))),
            Some(n) if n < i32::MIN as f64 || n > i32::MAX as f64 => Err(ApiError::bad_request(
                format!("field '{name}' is out of range: {n}"),
            )),
            n => Ok(n.map(|n| n as i32)),
        }
    }

    /// A whole number of 64 bits (sizes).
    pub fn long(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.number(name)? {
            Some(n) if n.fract() != 0.0 || n.abs() > 9.0e15 => Err(ApiError::bad_request(format!(
                "field '{name}' must be a whole number of at most 9e15, not {n}"
            ))),
            n => Ok(n.map(|n| n as i64)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.field(name) {
            None => Ok(None),
            Some(v) => lenient::boolean(v).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!("field '{name}' must be true or false, not {v}"))
            }),
        }
    }

    pub fn date(&self, name: &str) -> Result<Option<time::OffsetDateTime>, ApiError> {
        match self.str(name)? {
            None => Ok(None),
            Some(s) => parse_date(&s)
                .filter(|d| (1900..=9000).contains(&d.year()))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "field '{name}' must be a date between the years 1900 and 9000 such as 2026-11-21T22:40:00Z, not '{s}'"
                    ))
                }),
        }
    }
}

/// The longest string the v2 service took in a field: entity names 512 characters (a file's
/// 260, checked with the other file-name rules), AlternateId 4,000, task bodies and
/// configurations (presets) up to 1 MiB, anything else 4,000.
pub fn max_chars(field: &str) -> usize {
    match field {
        "Name" => 512,
        "TaskBody" | "Configuration" => 1 << 20,
        _ => 4000,
    }
}

/// `$filter` (`eq`, `ne`, `and`), `$orderby`, `$top`, `$skip`, applied to wire JSON.
#[derive(Debug, Default)]
pub struct Query {
    filter: Option<super::filter::Filter>,
    orderby: Vec<(String, bool)>,
    top: Option<usize>,
    skip: usize,
    /// Service operation parameters (`assetid`, `jobid`, …): every key without a `$`.
    params: Vec<(String, String)>,
    /// `$inlinecount=allpages`: the count before paging goes with the page.
    pub inline_count: bool,
    /// `$select=Id,Name`: only these properties (`*` or absent: all).
    pub select: Option<Vec<String>>,
    /// `$expand=Tasks,OutputMediaAssets`: navigation properties written inline.
    pub expand: Vec<String>,
}

/// A collection after `$filter`, `$orderby`, `$skip` and `$top`.
pub struct Page {
    pub items: Vec<Value>,
    /// How many passed the filter, before paging.
    pub total: usize,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut q = Query::default();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (
                crate::ams::auth::urldecode(k),
                crate::ams::auth::urldecode(v),
            );
            match k.as_str() {
                "$filter" => {
                    q.filter = Some(
                        super::filter::Filter::parse(&v)
                            .map_err(|e| ApiError::bad_request(format!("$filter '{v}': {e}")))?,
                    )
                }
                "$orderby" => {
                    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let mut w = part.split_whitespace();
                        let prop = w.next().unwrap_or_default().to_string();
                        let desc = match w.next() {
                            None | Some("asc") => false,
                            Some("desc") => true,
                            Some(o) => {
                                return Err(ApiError::bad_request(format!(
                                    "$orderby: '{o}' is not asc or desc"
                                )))
                            }
                        };
                        q.orderby.push((prop, desc));
                    }
                }
                "$top" => {
                    q.top = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("$top must be a whole number, not '{v}'"))
                    })?)
                }
                "$skip" => {
                    q.skip = v.parse().map_err(|_| {
                        ApiError::bad_request(format!("$skip must be a whole number, not '{v}'"))
                    })?
                }
                "$inlinecount" => {
                    q.inline_count = match v.as_str() {
                        "allpages" => true,
                        "none" => false,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "$inlinecount must be allpages or none, not '{other}'"
                            )))
                        }
                    }
                }
                "$expand" => {
                    for nav in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        if nav.contains('/') {
                            return Err(ApiError::bad_request(format!(
                                "$expand '{nav}': one level of navigation is expanded, not paths"
                            )));
                        }
                        q.expand.push(nav.to_string());
                    }
                }
                "$select" => {
                    let props: Vec<String> = v
                        .split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect();
                    q.select = (!props.iter().any(|p| p == "*")).then_some(props);
                }
                k if !k.starts_with('$') => q.params.push((k.to_string(), v)),
                _ => {}
            }
        }
        Ok(q)
    }

    /// A service operation's parameter (name in any case), an OData string literal
    /// (`'nb:cid:UUID:…'`, quotes doubled inside) unquoted.
    pub fn param(&self, name: &str) -> Option<String> {
        let (_, v) = self
            .params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        let v = v.trim();
        Some(
            match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                Some(inner) => inner.replace("''", "'"),
                None => v.to_string(),
            },
        )
    }

    /// A parameter the operation cannot do without; 400 naming it and `usage` otherwise.
    pub fn required_param(&self, name: &str, usage: &str) -> Result<String, ApiError> {
        self.param(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            ApiError::bad_request(format!("{usage}: the parameter '{name}' is missing"))
        })
    }

    #[cfg(test)]
    pub fn apply(&self, items: Vec<Value>) -> Vec<Value> {
        self.page(items).items
    }

    /// Filters, orders and pages `items`, counting what passed the filter.
    pub fn page(&self, mut items: Vec<Value>) -> Page {
        if let Some(f) = &self.filter {
            items.retain(|e| f.matches(e));
        }
        let total = items.len();
        for (prop, desc) in self.orderby.iter().rev() {
            items.sort_by(|a, b| {
                let o = compare(&a[prop.as_str()], &b[prop.as_str()]);
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let items = items
            .into_iter()
            .skip(self.skip)
            .take(self.top.unwrap_or(usize::MAX))
            .collect();
        Page { items, total }
    }
}

fn values_equal(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::String(a), Value::String(b)) => a == b,
        (a, Value::Number(_)) => lenient::number(a) == lenient::number(want),
        (a, Value::Bool(b)) => lenient::boolean(a) == Some(*b),
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (lenient::number(a), lenient::number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a
            .as_str()
            .unwrap_or_default()
            .cmp(b.as_str().unwrap_or_default()),
    }
}

/// `Assets`, `Assets('key')`, `Assets(key)`, `Assets('key')/Files`: set, key, navigation; as
/// the .NET SDK also writes them: `MediaProcessors()` (no key), `Jobs('…')/OutputMediaAssets()`,
/// and the whole segment percent-encoded (`Assets%28%27nb%3Acid%3A…%27%29`, even `%2FAssets…`).
pub(crate) fn parse_resource(
    rest: &str,
) -> Result<(String, Option<String>, Option<String>), ApiError> {
    let decoded = crate::ams::auth::urldecode(rest);
    let rest = decoded.trim_start_matches('/').trim_end_matches('/');
    let (first, nav) = match rest.find(')') {
        Some(close) => {
            let after = rest[close + 1..].trim_start_matches('/');
            (
                &rest[..=close],
                (!after.is_empty()).then(|| after.to_string()),
            )
        }
        None => match rest.split_once('/') {
            Some((a, b)) => (a, Some(b.to_string())),
            None => (rest, None),
        },
    };
    match first.split_once('(') {
        Some((set, key)) => {
            let key = key
                .strip_suffix(')')
                .ok_or_else(|| ApiError::bad_request(format!("malformed key in '{rest}'")))?;
            let key = crate::ams::auth::urldecode(key);
            let key = key.trim_matches('\'').to_string();
            let nav = nav.map(|n| n.trim_end_matches("()").to_string());
            Ok((set.to_string(), (!key.is_empty()).then_some(key), nav))
        }
        None => Ok((first.to_string(), None, nav)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_orders_and_pages() {
        let items = vec![
            json!({"Name": "b", "Type": 2}),
            json!({"Name": "a", "Type": 1}),
            json!({"Name": "it's", "Type": "2"}),
        ];
        let q = Query::parse(Some("$filter=Type%20eq%202&$orderby=Name%20desc")).unwrap();
        let names: Vec<_> = q
            .apply(items.clone())
            .iter()
            .map(|e| e["Name"].clone())
            .collect();
        assert_eq!(names, vec![json!("it's"), json!("b")]);
        let q = Query::parse(Some("$filter=Name eq 'it''s' and Type eq 2")).unwrap();
        assert_eq!(q.apply(items.clone()).len(), 1);
        let q = Query::parse(Some("$orderby=Name&$skip=1&$top=1")).unwrap();
        assert_eq!(q.apply(items)[0]["Name"], "b");
        assert_eq!(
            Query::parse(Some("$filter=Name gt 'a'"))
                .unwrap()
                .apply(vec![json!({"Name": "b"})])
                .len(),
            1
        );
        assert!(Query::parse(Some("$filter=tolower(Name) eq 'a'")).is_err());
        assert!(Query::parse(Some("$top=x")).is_err());
    }

    #[test]
    fn odata_bind_reads_as_references() {
        let b = Body::from_value(json!({
            "Name": "j",
            "InputMediaAssets@odata.bind": ["https://h/api/Assets('a')"],
            "Asset@odata.bind": "https://h/api/Assets('b')",
        }))
        .unwrap();
        assert_eq!(
            b.0["InputMediaAssets"][0]["__metadata"]["uri"],
            "https://h/api/Assets('a')"
        );
        assert_eq!(
            b.0["Asset"]["__metadata"]["uri"],
            "https://h/api/Assets('b')"
        );
        assert!(!b.has("InputMediaAssets@odata.bind"));
    }

    #[test]
    fn bodies_are_lenient_and_errors_name_the_field() {
        let b =
            Body::parse(br#"{"d": {"DurationInMinutes": "440", "Permissions": 2, "Name": "p"}}"#)
                .unwrap();
        assert_eq!(b.number("DurationInMinutes").unwrap(), Some(440.0));
        assert_eq!(b.int("Permissions").unwrap(), Some(2));
        let b = Body::parse(br#"{"DurationInMinutes": "soon"}"#).unwrap();
        let e = b.number("DurationInMinutes").unwrap_err();
        assert!(e.message.contains("DurationInMinutes"), "{}", e.message);
        assert!(Body::parse(b"{not json").is_err());
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn bodies_and_query_options_never_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            json in "\\{(\"[A-Za-z]{1,12}\":(\"\\PC{0,12}\"|-?[0-9]{1,25}(\\.[0-9]{0,5})?(e[0-9]{1,3})?|true|null|\"inf\"|\"NaN\"),?){0,5}\\}",
            query in "\\PC{0,80}",
        ) {
            let _ = Body::parse(&body);
            if let Ok(b) = Body::parse(json.as_bytes()) {
                for f in ["Name", "Type", "Options", "DurationInMinutes", "StartTime", "Permissions"] {
                    let _ = b.str(f);
                    let _ = b.int(f);
                    let _ = b.long(f);
                    let _ = b.number(f);
                    let _ = b.date(f);
                    let _ = b.bool(f);
                }
            }
            let _ = Query::parse(Some(&query));
            let _ = Query::parse(Some(&format!("$filter=Name eq '{query}'&$top={query}&$orderby={query}")));
        }
    }
}
