//! `StreamingEndpoints` and `Operations`: the account's `default` streaming endpoint, which the
//! origin serves behind only while it is Running, and the asynchronous operations that start,
//! stop and scale it (`POST StreamingEndpoints('…')/Start` → 202 with an `operation-id` header;
//! `GET Operations('…')` says how it went). Stopping the endpoint is a clean way to take an
//! origin out of service in a drill, as the portal did: it answers 503 until started again.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::odata::{ApiError, Body, SetInfo};
use super::{now, to_value, AppState, Ctx};
use crate::ams::model::{IdKind, Operation, StreamingEndpoint};

pub const INFO: SetInfo = SetInfo {
    name: "StreamingEndpoints",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.StreamingEndpoint",
    properties: &[
        "Id",
        "Name",
        "Description",
        "Created",
        "LastModified",
        "State",
        "HostName",
        "ScaleUnits",
        "CdnEnabled",
        "CdnProvider",
        "CdnProfile",
        "CustomHostNames",
        "AccessControl",
        "CacheControl",
        "CrossSiteAccessPolicies",
        "FreeTrialEndTime",
        "StreamingEndpointVersion",
    ],
    navigation: &[],
};

pub const OPERATIONS: SetInfo = SetInfo {
    name: "Operations",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Operation",
    properties: &["Id", "State", "TargetEntityId", "ErrorCode", "ErrorMessage"],
    navigation: &[],
};

/// Scale units an endpoint may have (the service sold up to 10 per endpoint).
const MAX_SCALE_UNITS: i32 = 10;

/// Makes sure the `default` endpoint exists (Running on first start) and puts the origin in
/// its state; called once as the emulator starts.
pub fn restore(st: &AppState) -> Result<(), ApiError> {
    let all = st.db.list(INFO.name, None)?;
    let endpoint = match all.into_iter().next() {
        Some(v) => serde_json::from_value::<StreamingEndpoint>(v)
            .map_err(|e| ApiError::internal(format!("the streaming endpoint record: {e}")))?,
        None => {
            let t = now();
            let host = st
                .config
                .streaming_base
                .split("://")
                .nth(1)
                .unwrap_or(&st.config.streaming_base)
                .trim_end_matches('/')
                .to_string();
            let e = StreamingEndpoint {
                id: IdKind::Origin.new_id(),
                name: "default".into(),
                description: Some("the emulator's streaming origin".into()),
                created: t,
                last_modified: t,
                state: "Running".into(),
                host_name: host,
                scale_units: 0,
                cdn_enabled: false,
            };
            st.db.insert(INFO.name, &e.id, None, &to_value(&e)?)?;
            e
        }
    };
    st.origin.set_serving(endpoint.state == "Running");
    Ok(())
}

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav.as_deref()) {
        ("GET", None, None) => ctx.list(&INFO),
        ("GET", Some(id), None) => ctx.get::<StreamingEndpoint>(&INFO, &id),
        ("POST", Some(id), Some(action @ ("Start" | "Stop" | "Scale"))) => {
            operate(ctx, &id, action)
        }
        ("POST", None, None) | ("DELETE", Some(_), None) => Err(ApiError::bad_request(
            "this emulator has one streaming endpoint, 'default': start, stop or scale it",
        )),
        (m, _, Some(nav)) => Err(ApiError::not_found(format!(
            "{m} StreamingEndpoints/{nav}: use Start, Stop or Scale"
        ))),
        (m, _, _) => Err(ApiError::not_allowed(m, "StreamingEndpoints")),
    }
}

/// Start, Stop or Scale: done at once (the origin has nothing to provision), recorded as a
/// Succeeded operation, answered 202 with its id as the service did.
fn operate(ctx: &Ctx<'_>, id: &str, action: &str) -> Result<Response, ApiError> {
    let mut e: StreamingEndpoint = ctx.load(&INFO, id)?;
    match action {
        "Start" => e.state = "Running".into(),
        "Stop" => e.state = "Stopped".into(),
        _ => {
            let units = Body::parse(ctx.body)?
                .int("scaleUnits")?
                .ok_or_else(|| ApiError::bad_request("field 'scaleUnits' is required"))?;
            if !(0..=MAX_SCALE_UNITS).contains(&units) {
                return Err(ApiError::bad_request(format!(
                    "field 'scaleUnits' must be 0 to {MAX_SCALE_UNITS}, not {units}"
                )));
            }
            if e.state != "Running" {
                return Err(ApiError::bad_request(format!(
                    "StreamingEndpoint '{id}' is {}; only a running endpoint can be scaled",
                    e.state
                )));
            }
            e.scale_units = units;
        }
    }
    e.last_modified = now();
    let op = Operation {
        id: IdKind::Operation.new_id(),
        state: "Succeeded".into(),
        target_entity_id: e.id.clone(),
        error_code: None,
        error_message: None,
    };
    ctx.st
        .db
        .insert_all(&[(OPERATIONS.name, op.id.as_str(), None, to_value(&op)?)])?;
    ctx.st.db.update(INFO.name, &e.id, &to_value(&e)?)?;
    ctx.st.origin.set_serving(e.state == "Running");
    tracing::info!(endpoint = %e.id, action, state = %e.state, "streaming endpoint");
    let mut r = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&op.id) {
        r.headers_mut().insert("operation-id", v);
    }
    Ok(r)
}

pub async fn handle_operations(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav) {
        ("GET", Some(id), None) => ctx.get::<Operation>(&OPERATIONS, &id),
        ("GET", None, None) => ctx.list(&OPERATIONS),
        (m, _, _) => Err(ApiError::not_allowed(m, "Operations")),
    }
}
