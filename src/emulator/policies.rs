//! `AccessPolicies`: a duration and permissions for locators.

use axum::http::StatusCode;
use axum::response::Response;

use super::odata::{ApiError, Body, SetInfo};
use super::{no_content, now, to_value, Ctx};
use crate::ams::model::requests::NewAccessPolicy;
use crate::ams::model::{AccessPolicy, IdKind, Permissions};

pub const INFO: SetInfo = SetInfo {
    name: "AccessPolicies",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.AccessPolicy",
    properties: &[
        "Id",
        "Created",
        "LastModified",
        "Name",
        "DurationInMinutes",
        "Permissions",
    ],
    navigation: &[],
};

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav) {
        ("GET", None, None) => ctx.list(&INFO),
        ("POST", None, None) => create(ctx),
        ("GET", Some(id), None) => ctx.get::<AccessPolicy>(&INFO, &id),
        ("MERGE" | "PATCH" | "PUT", Some(id), None) => {
            let mut p: AccessPolicy = ctx.load(&INFO, &id)?;
            let body = Body::parse(ctx.body)?;
            body.only_known(&INFO)?;
            body.read_only_unchanged(&to_value(&p)?, &["Name"], "AccessPolicy")?;
            if let Some(name) = body.str("Name")? {
                p.name = name;
            }
            p.last_modified = now();
            ctx.st.db.update(INFO.name, &id, &to_value(&p)?)?;
            Ok(no_content())
        }
        ("DELETE", Some(id), None) => {
            let p: AccessPolicy = ctx.load(&INFO, &id)?;
            // A locator's permissions and lifetime come from its policy: it goes first.
            let _guard = ctx.st.sas_lock.lock().await;
            let users = ctx
                .st
                .db
                .list(super::locators::INFO.name, None)?
                .into_iter()
                .filter(|v| v["AccessPolicyId"].as_str() == Some(p.id.as_str()))
                .count();
            if users > 0 {
                return Err(ApiError::conflict(format!(
                    "AccessPolicy '{}' is used by {users} locator(s); delete them first",
                    p.id
                )));
            }
            ctx.st.db.delete(INFO.name, &p.id)?;
            Ok(no_content())
        }
        (m, _, Some(nav)) => Err(ApiError::not_found(format!(
            "{m} AccessPolicies/{nav}: AccessPolicy has no navigation properties"
        ))),
        (m, _, _) => Err(ApiError::not_allowed(m, "AccessPolicies")),
    }
}

/// A `POST AccessPolicies` body as the shared request type, every field checked and named.
fn read_new_policy(body: &Body) -> Result<NewAccessPolicy, ApiError> {
    body.only_known(&INFO)?;
    let duration = body.number("DurationInMinutes")?.ok_or_else(|| {
        ApiError::bad_request(
            "field 'DurationInMinutes' is required (the policy's lifetime in minutes)",
        )
    })?;
    // At most a hundred years: a lifetime added to any start date stays a date.
    const MAX_MINUTES: f64 = 100.0 * 366.0 * 24.0 * 60.0;
    if !(duration > 0.0 && duration <= MAX_MINUTES) {
        return Err(ApiError::bad_request(format!(
            "field 'DurationInMinutes' must be positive and at most {MAX_MINUTES} (100 years), not {duration}"
        )));
    }
    let number = body.int("Permissions")?.unwrap_or(0);
    let permissions = Permissions::from_bits(number.into()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "field 'Permissions' must combine None 0, Read 1, Write 2, Delete 4, List 8, not {number}"
        ))
    })?;
    Ok(NewAccessPolicy {
        name: body.str("Name")?.unwrap_or_default(),
        duration_in_minutes: duration,
        permissions,
    })
}

fn create(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let new = read_new_policy(&Body::parse(ctx.body)?)?;
    let t = now();
    let p = AccessPolicy {
        id: IdKind::Policy.new_id(),
        created: t,
        last_modified: t,
        name: new.name,
        duration_in_minutes: new.duration_in_minutes,
        permissions: new.permissions,
    };
    let v = to_value(&p)?;
    ctx.st.db.insert(INFO.name, &p.id, None, &v)?;
    Ok(ctx.entity(&INFO, StatusCode::CREATED, v))
}
