//! `Jobs` and `Tasks`: read access to the entity sets and their navigation (`Jobs('…')/Tasks`).
//! Submitting jobs (POST) comes with the encoder.

use axum::http::StatusCode;
use axum::response::Response;

use super::odata::{ApiError, SetInfo};
use super::routes::not_allowed;
use super::{to_value, Ctx};
use crate::ams::model::{Job, Task};

pub const JOBS: SetInfo = SetInfo {
    name: "Jobs",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Job",
    navigation: &["Tasks", "OutputMediaAssets", "InputMediaAssets"],
};

pub const TASKS: SetInfo = SetInfo {
    name: "Tasks",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Task",
    navigation: &["OutputMediaAssets", "InputMediaAssets"],
};

pub async fn handle_jobs(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav.as_deref()) {
        ("GET", None, None) => Ok(ctx.collection(&JOBS, ctx.st.db.list(JOBS.name, None)?)),
        ("GET", Some(id), None) => {
            let j: Job = ctx.load(&JOBS, &id)?;
            Ok(ctx.entity(&JOBS, StatusCode::OK, to_value(&j)?))
        }
        ("GET", Some(id), Some("Tasks")) => {
            let _: Job = ctx.load(&JOBS, &id)?;
            Ok(ctx.collection(&TASKS, ctx.st.db.list(TASKS.name, Some(&id))?))
        }
        (m, _, _) => Err(not_allowed(m, "Jobs")),
    }
}

pub async fn handle_tasks(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav) {
        ("GET", None, None) => Ok(ctx.collection(&TASKS, ctx.st.db.list(TASKS.name, None)?)),
        ("GET", Some(id), None) => {
            let t: Task = ctx.load(&TASKS, &id)?;
            Ok(ctx.entity(&TASKS, StatusCode::OK, to_value(&t)?))
        }
        (m, _, _) => Err(not_allowed(m, "Tasks")),
    }
}
