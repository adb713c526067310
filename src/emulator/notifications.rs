//! `NotificationEndPoints` and the web hooks behind them: a job's or task's subscriptions
//! (`JobNotificationSubscriptions`, `TaskNotificationSubscriptions`) get a POST for each state
//! change, as Media Services sent them: JSON `{MessageVersion, ETag, EventType, TimeStamp,
//! Properties}`, signed `ms-signature: sha256=HEX` (HMAC-SHA256 of the body with the endpoint's
//! signing key), with `ms-mediaservices-accountid`. Creating an endpoint sends it a
//! registration message (EventType 2). Messages go out one at a time in the order of the
//! changes; delivery is best effort: three tries, then a warning.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::odata::{ApiError, Body, SetInfo};
use super::{now, to_value, AppState, Ctx};
use crate::ams::model::{format_date, IdKind, JobState, NotificationEndPoint};

pub const INFO: SetInfo = SetInfo {
    name: "NotificationEndPoints",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.NotificationEndPoint",
    properties: &[
        "Id",
        "Name",
        "EndPointType",
        "EndPointAddress",
        "Created",
        "CredentialType",
        "EncryptedEndPointCredential",
        "ProtectionKeyType",
        "ProtectionKeyId",
    ],
    navigation: &[],
};

/// Signing keys, by endpoint id (never answered on the API).
const KEYS: &str = "NotificationKeys";

/// The EventType numbers of the service's messages.
const JOB_STATE_CHANGE: i32 = 1;
const REGISTRATION: i32 = 2;
const TASK_STATE_CHANGE: i32 = 4;

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav) {
        ("GET", None, None) => ctx.list(&INFO),
        ("GET", Some(id), None) => ctx.get::<NotificationEndPoint>(&INFO, &id),
        ("POST", None, None) => create(ctx),
        ("DELETE", Some(id), None) => {
            let _: NotificationEndPoint = ctx.load(&INFO, &id)?;
            ctx.st.db.delete(INFO.name, &id)?;
            ctx.st.db.delete(KEYS, &id)?;
            Ok(super::no_content())
        }
        (m, _, _) => Err(ApiError::not_allowed(m, "NotificationEndPoints")),
    }
}

/// `POST NotificationEndPoints`: a web hook (EndPointType 3) at an http(s) address, with its
/// signing key base64 in `EncryptedEndPointCredential` (kept as given: this emulator has no
/// protection keys yet).
fn create(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let body = Body::parse(ctx.body)?;
    body.only_known(&INFO)?;
    let kind = body.int("EndPointType")?.unwrap_or(3);
    if kind != 3 {
        return Err(ApiError::bad_request(format!(
            "field 'EndPointType' {kind}: this emulator sends web hooks (3) only"
        )));
    }
    let address = body.required_str("EndPointAddress")?;
    let url = url::Url::parse(&address)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "field 'EndPointAddress' must be an http(s) URL, not '{address}'"
            ))
        })?;
    let key = match body.str("EncryptedEndPointCredential")? {
        Some(k) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .map_err(|_| {
                    ApiError::bad_request("field 'EncryptedEndPointCredential' must be base64")
                })?
        }
        None => Vec::new(),
    };
    let e = NotificationEndPoint {
        id: IdKind::NotificationEndPoint.new_id(),
        name: body.str("Name")?.unwrap_or_default(),
        end_point_type: kind,
        end_point_address: url.to_string(),
        created: now(),
    };
    let v = to_value(&e)?;
    ctx.st.db.insert_all(&[
        (INFO.name, e.id.as_str(), None, v.clone()),
        (
            KEYS,
            e.id.as_str(),
            None,
            json!({ "Key": hex::encode(&key) }),
        ),
    ])?;
    let properties = json!({
        "NotificationEndPointId": e.id,
        "State": "Registered",
        "Name": e.name,
        "Created": format_date(e.created),
        "AccountId": account_id(ctx.st),
    });
    send(ctx.st, &e.id, REGISTRATION, "1.0", properties);
    Ok(ctx.entity(&INFO, StatusCode::CREATED, v))
}

/// A stable account id for messages: a GUID derived from the account's name.
fn account_id(st: &AppState) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(st.config.account.as_bytes());
    uuid::Builder::from_random_bytes(h[..16].try_into().expect("16 bytes"))
        .into_uuid()
        .to_string()
}

/// Subscriptions that want a change to `new`.
fn wanted(subs: &[crate::ams::model::JobNotificationSubscription], new: JobState) -> Vec<String> {
    subs.iter()
        .filter(|s| s.target_job_state == 2 || new.is_final())
        .map(|s| s.notification_end_point_id.clone())
        .collect()
}

/// A job's state changed: its subscribers are told.
pub fn job_changed(st: &AppState, job: &crate::ams::model::Job, old: JobState) {
    for endpoint in wanted(&job.job_notification_subscriptions, job.state) {
        let properties = json!({
            "JobId": job.id,
            "NewState": job.state.name(),
            "OldState": old.name(),
            "AccountName": st.config.account,
            "AccountId": account_id(st),
            "NotificationEndPointId": endpoint,
        });
        send(st, &endpoint, JOB_STATE_CHANGE, "1.1", properties);
    }
}

/// A task's state changed: its subscribers are told.
pub fn task_changed(st: &AppState, job_id: &str, task: &crate::ams::model::Task, old: JobState) {
    for endpoint in wanted(&task.task_notification_subscriptions, task.state) {
        let properties = json!({
            "JobId": job_id,
            "TaskId": task.id,
            "NewState": task.state.name(),
            "OldState": old.name(),
            "AccountName": st.config.account,
            "AccountId": account_id(st),
            "NotificationEndPointId": endpoint,
        });
        send(st, &endpoint, TASK_STATE_CHANGE, "1.1", properties);
    }
}

/// POSTs one message to an endpoint in the background.
fn send(st: &AppState, endpoint: &str, event: i32, version: &str, properties: Value) {
    let (Ok(Some(e)), Ok(Some(k))) = (st.db.get(INFO.name, endpoint), st.db.get(KEYS, endpoint))
    else {
        tracing::warn!(%endpoint, "notification endpoint gone; message dropped");
        return;
    };
    let Some(address) = e["EndPointAddress"].as_str().map(str::to_string) else {
        return;
    };
    let key = hex::decode(k["Key"].as_str().unwrap_or_default()).unwrap_or_default();
    let message = json!({
        "MessageVersion": version,
        "ETag": hex::encode(uuid::Uuid::new_v4().as_bytes()),
        "EventType": event,
        "TimeStamp": format_date(now()),
        "Properties": properties,
    })
    .to_string();
    let signature = {
        use hmac::{Hmac, Mac};
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        m.update(message.as_bytes());
        format!("sha256={}", hex::encode_upper(m.finalize().into_bytes()))
    };
    let delivery = Delivery {
        address,
        signature,
        account: account_id(st),
        message,
    };
    if outbox().send(delivery).is_err() {
        tracing::warn!("the web hook sender stopped; message dropped");
    }
}

/// One message for one web hook.
struct Delivery {
    address: String,
    signature: String,
    account: String,
    message: String,
}

/// The queue of messages, sent one at a time (so a hook sees changes in their order).
fn outbox() -> &'static tokio::sync::mpsc::UnboundedSender<Delivery> {
    static OUTBOX: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Delivery>> =
        std::sync::OnceLock::new();
    OUTBOX.get_or_init(|| {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            while let Some(d) = rx.recv().await {
                deliver(&http, &d).await;
            }
        });
        tx
    })
}

async fn deliver(http: &reqwest::Client, d: &Delivery) {
    for attempt in 1..=3u64 {
        let r = http
            .post(&d.address)
            .header("content-type", "application/json; charset=utf-8")
            .header("ms-signature", &d.signature)
            .header("ms-mediaservices-accountid", &d.account)
            .body(d.message.clone())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => return,
            other => {
                tracing::warn!(address = %d.address, attempt, result = ?other.map(|r| r.status()), "web hook not delivered");
                tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
            }
        }
    }
}
