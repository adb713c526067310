//! `Jobs` and `Tasks`: submitting encoding jobs (`POST Jobs` with `InputMediaAssets` references
//! and inline `Tasks`), reading them with their navigation (`Tasks`, `InputMediaAssets`,
//! `OutputMediaAssets`), and `CancelJob`. The work itself is done by `worker.rs`.

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::odata::{ApiError, Body, SetInfo};
use super::{assets, encoder, no_content, now, processors, to_value, Ctx};
use crate::ams::auth::urldecode;
use crate::ams::model::{Asset, IdKind, Job, JobState, Task};

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

/// Which assets a job reads and writes (kept beside the wire entities).
pub const LINKS: &str = "JobLinks";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Links {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Per task (in order): (task id, input index, output index).
    pub tasks: Vec<(String, usize, usize)>,
}

pub fn links(ctx_db: &super::db::Db, job_id: &str) -> Result<Links, ApiError> {
    let v = ctx_db.get(LINKS, job_id)?.unwrap_or_default();
    Ok(serde_json::from_value(v).unwrap_or_default())
}

pub async fn handle_jobs(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav.as_deref()) {
        ("GET", None, None) => ctx.list(&JOBS),
        ("POST", None, None) => submit(ctx).await,
        ("GET", Some(id), None) => ctx.get::<Job>(&JOBS, &id),
        ("GET", Some(id), Some(nav)) => {
            let _: Job = ctx.load(&JOBS, &id)?;
            let l = links(&ctx.st.db, &id)?;
            match nav {
                "Tasks" => Ok(ctx.collection(&TASKS, ctx.st.db.list(TASKS.name, Some(&id))?)),
                "InputMediaAssets" => assets_of(ctx, &l.inputs),
                "OutputMediaAssets" => assets_of(ctx, &l.outputs),
                "State" => {
                    let j: Job = ctx.load(&JOBS, &id)?;
                    Ok(super::odata::respond(
                        ctx.fmt,
                        StatusCode::OK,
                        state_body(ctx, j.state),
                    ))
                }
                other => Err(ApiError::not_found(format!(
                    "Job has no navigation property '{other}'"
                ))),
            }
        }
        ("DELETE", Some(id), None) => {
            let j: Job = ctx.load(&JOBS, &id)?;
            if matches!(
                j.state,
                JobState::Queued | JobState::Scheduled | JobState::Processing | JobState::Canceling
            ) {
                return Err(ApiError::bad_request(format!(
                    "Job '{id}' is {}; cancel it first",
                    j.state.name()
                )));
            }
            ctx.st.db.delete_children(TASKS.name, &id)?;
            ctx.st.db.delete(LINKS, &id)?;
            ctx.st.db.delete(JOBS.name, &id)?;
            Ok(no_content())
        }
        (m, _, _) => Err(ApiError::not_allowed(m, "Jobs")),
    }
}

fn state_body(ctx: &Ctx<'_>, state: JobState) -> Value {
    match ctx.fmt {
        super::odata::Format::Verbose => serde_json::json!({"d": {"State": state}}),
        super::odata::Format::Minimal => {
            serde_json::json!({"odata.metadata": format!("{}$metadata#Edm.Int32", ctx.api), "value": state})
        }
    }
}

fn assets_of(ctx: &Ctx<'_>, ids: &[String]) -> Result<Response, ApiError> {
    let items = ids
        .iter()
        .filter_map(|id| ctx.st.db.get(assets::INFO.name, id).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ctx.collection(&assets::INFO, items))
}

pub async fn handle_tasks(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav.as_deref()) {
        ("GET", None, None) => ctx.list(&TASKS),
        ("GET", Some(id), None) => ctx.get::<Task>(&TASKS, &id),
        ("GET", Some(id), Some(nav @ ("OutputMediaAssets" | "InputMediaAssets"))) => {
            let _: Task = ctx.load(&TASKS, &id)?;
            let job = ctx
                .st
                .db
                .list(JOBS.name, None)?
                .into_iter()
                .filter_map(|j| j["Id"].as_str().map(str::to_string))
                .find(|jid| {
                    links(&ctx.st.db, jid)
                        .map(|l| l.tasks.iter().any(|t| t.0 == id))
                        .unwrap_or(false)
                });
            let l = match job {
                Some(j) => links(&ctx.st.db, &j)?,
                None => Links::default(),
            };
            let (ti, to) = l
                .tasks
                .iter()
                .find(|t| t.0 == id)
                .map(|t| (t.1, t.2))
                .unwrap_or((0, 0));
            let pick =
                |v: &Vec<String>, i: usize| v.get(i).cloned().into_iter().collect::<Vec<_>>();
            if nav == "OutputMediaAssets" {
                assets_of(ctx, &pick(&l.outputs, to))
            } else {
                assets_of(ctx, &pick(&l.inputs, ti))
            }
        }
        (m, _, _) => Err(ApiError::not_allowed(m, "Tasks")),
    }
}

/// The asset id in `{"__metadata":{"uri":".../Assets('nb%3Acid%3AUUID%3A…')"}}`.
fn referenced_asset(v: &Value) -> Option<String> {
    let uri = v["__metadata"]["uri"]
        .as_str()
        .or_else(|| v["uri"].as_str())?;
    let start = uri.find("Assets(")? + "Assets(".len();
    let end = uri[start..].find(')')? + start;
    Some(urldecode(&uri[start..end]).trim_matches('\'').to_string())
}

/// `JobInputAsset(n)` / `JobOutputAsset(n)` and the output's `assetName` from a TaskBody.
struct TaskBody {
    input: usize,
    output: usize,
    output_name: Option<String>,
    output_options: i32,
}

fn index_of(body: &str, marker: &str) -> Option<usize> {
    let start = body.find(marker)? + marker.len();
    body[start..].split(')').next()?.trim().parse().ok()
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(tag[start..].split('"').next()?.to_string())
}

fn parse_task_body(body: &str) -> Result<TaskBody, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(format!("field 'TaskBody' {why}: expected <taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset assetName=\"…\">JobOutputAsset(0)</outputAsset></taskBody>"))
    };
    if !body.contains("<taskBody") {
        return Err(bad("is not a taskBody"));
    }
    let input = index_of(body, "JobInputAsset(").ok_or_else(|| bad("names no JobInputAsset(n)"))?;
    let output =
        index_of(body, "JobOutputAsset(").ok_or_else(|| bad("names no JobOutputAsset(n)"))?;
    let tag = body
        .find("<outputAsset")
        .map(|i| &body[i..i + body[i..].find('>').unwrap_or(0)])
        .unwrap_or_default();
    Ok(TaskBody {
        input,
        output,
        output_name: attribute(tag, "assetName"),
        output_options: attribute(tag, "assetCreationOptions")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0),
    })
}

async fn submit(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let body = Body::parse(ctx.body)?;
    let raw: Value = serde_json::from_slice(ctx.body).unwrap_or_default();
    let raw = raw.get("d").cloned().unwrap_or(raw);
    let inputs: Vec<String> = raw["InputMediaAssets"]
        .as_array()
        .ok_or_else(|| ApiError::bad_request("field 'InputMediaAssets' is required: [{\"__metadata\":{\"uri\":\"…/Assets('…')\"}}]"))?
        .iter()
        .map(|v| referenced_asset(v).ok_or_else(|| ApiError::bad_request(format!("field 'InputMediaAssets': {v} does not reference an asset"))))
        .collect::<Result<_, _>>()?;
    for id in &inputs {
        let _: Asset = ctx.load(&assets::INFO, id).map_err(|e| {
            ApiError::bad_request(format!("field 'InputMediaAssets': {}", e.message))
        })?;
    }
    let tasks = raw["Tasks"]
        .as_array()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("field 'Tasks' is required (at least one task)"))?;
    const MAX_TASKS: usize = 30;
    if tasks.len() > MAX_TASKS {
        return Err(ApiError::bad_request(format!(
            "field 'Tasks' holds {} tasks; a job may have at most {MAX_TASKS}",
            tasks.len()
        )));
    }
    let mes = processors::media_encoder_standard();
    let mut parsed = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let tb = Body::parse(t.to_string().as_bytes())?;
        let mp = tb
            .required_str("MediaProcessorId")
            .map_err(|e| ApiError::bad_request(format!("Tasks[{i}]: {}", e.message)))?;
        if mp != mes.id {
            return Err(ApiError::bad_request(format!(
                "Tasks[{i}]: MediaProcessor '{mp}' does not exist; use {} ({})",
                mes.id, mes.name
            )));
        }
        let config = tb
            .str("Configuration")?
            .unwrap_or_else(|| "Adaptive Streaming".into());
        encoder::check_preset(&config).map_err(|e| {
            ApiError::bad_request(format!("Tasks[{i}]: field 'Configuration': {e}"))
        })?;
        let task_body = tb
            .required_str("TaskBody")
            .map_err(|e| ApiError::bad_request(format!("Tasks[{i}]: {}", e.message)))?;
        let tbody = parse_task_body(&task_body)?;
        if tbody.input >= inputs.len() {
            return Err(ApiError::bad_request(format!(
                "Tasks[{i}]: JobInputAsset({}) but the job has {} input asset(s)",
                tbody.input,
                inputs.len()
            )));
        }
        // Each output asset belongs to a task: JobOutputAsset(n) numbers them from 0, so a
        // job makes at most as many as it has tasks (a huge n made thousands of assets).
        if tbody.output >= tasks.len() {
            return Err(ApiError::bad_request(format!(
                "Tasks[{i}]: JobOutputAsset({}) but a job of {} task(s) makes at most {} output asset(s): JobOutputAsset(0) to JobOutputAsset({})",
                tbody.output,
                tasks.len(),
                tasks.len(),
                tasks.len() - 1
            )));
        }
        parsed.push((tb.str("Name")?, config, task_body, tbody));
    }
    // Output assets exist from the moment the job does.
    let max_out = parsed.iter().map(|p| p.3.output).max().unwrap_or(0);
    let outputs: Vec<Asset> = (0..=max_out)
        .map(|n| {
            let (name, options) = parsed
                .iter()
                .find(|p| p.3.output == n)
                .map(|p| (p.3.output_name.clone(), p.3.output_options))
                .unwrap_or((None, 0));
            let name = name.unwrap_or_else(|| format!("JobOutputAsset({n})"));
            assets::new_asset(ctx.st, Some(name), None, options)
        })
        .collect();
    let t = now();
    let job = Job {
        id: IdKind::Job.new_id(),
        name: body.str("Name")?,
        created: t,
        last_modified: t,
        start_time: None,
        end_time: None,
        priority: body.int("Priority")?.unwrap_or(0),
        running_duration: 0.0,
        state: JobState::Queued,
        template_id: None,
    };
    let mut links = Links {
        inputs,
        outputs: outputs.iter().map(|a| a.id.clone()).collect(),
        tasks: Vec::new(),
    };
    let mut tasks = Vec::new();
    for (name, config, task_body, tb) in parsed {
        let task = Task {
            id: IdKind::Task.new_id(),
            name,
            configuration: Some(config),
            media_processor_id: mes.id.clone(),
            task_body: Some(task_body),
            options: 0,
            priority: 0,
            progress: 0.0,
            running_duration: 0.0,
            start_time: None,
            end_time: None,
            state: JobState::Queued,
            error_details: Vec::new(),
            perf_message: None,
        };
        links.tasks.push((task.id.clone(), tb.input, tb.output));
        tasks.push(task);
    }
    // The job, its tasks and its outputs are written together or not at all.
    let v = to_value(&job)?;
    let mut records = Vec::new();
    for a in &outputs {
        records.push((assets::INFO.name, a.id.as_str(), None, to_value(a)?));
    }
    for t in &tasks {
        records.push((
            TASKS.name,
            t.id.as_str(),
            Some(job.id.as_str()),
            to_value(t)?,
        ));
    }
    let links = serde_json::to_value(&links).map_err(|e| ApiError::internal(e.to_string()))?;
    records.push((LINKS, job.id.as_str(), None, links));
    records.push((JOBS.name, job.id.as_str(), None, v.clone()));
    let outputs: Vec<&Asset> = outputs.iter().collect();
    assets::with_containers(ctx.st, &outputs, || Ok(ctx.st.db.insert_all(&records)?)).await?;
    ctx.st.jobs.wake();
    Ok(ctx.entity(&JOBS, StatusCode::CREATED, v))
}

/// `GET CancelJob?jobid='…'`.
pub async fn cancel(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response, ApiError> {
    let id = super::odata::Query::parse(query)?
        .required_param("jobid", "CancelJob needs ?jobid='<job id>'")?;
    let mut job: Job = ctx.load(&JOBS, &id)?;
    match job.state {
        JobState::Queued => {
            super::worker::finish(ctx.st, &mut job, JobState::Canceled)?;
        }
        JobState::Scheduled | JobState::Processing => {
            job.state = JobState::Canceling;
            job.last_modified = now();
            ctx.st.db.update(JOBS.name, &id, &to_value(&job)?)?;
            ctx.st.jobs.cancel(&id);
        }
        JobState::Canceling => {}
        s => {
            return Err(ApiError::bad_request(format!(
                "Job '{id}' is already {}",
                s.name()
            )));
        }
    }
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_bodies_and_asset_references() {
        let tb = parse_task_body("<?xml version=\"1.0\" encoding=\"utf-8\"?><taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset assetCreationOptions=\"0\" assetName=\"Output Asset\">JobOutputAsset(0)</outputAsset></taskBody>").unwrap();
        assert_eq!(
            (
                tb.input,
                tb.output,
                tb.output_name.as_deref(),
                tb.output_options
            ),
            (0, 0, Some("Output Asset"), 0)
        );
        assert!(parse_task_body("<taskBody/>").is_err());
        let v = serde_json::json!({"__metadata": {"uri": "https://media.windows.net/api/Assets('nb%3Acid%3AUUID%3Aabc')"}});
        assert_eq!(referenced_asset(&v).as_deref(), Some("nb:cid:UUID:abc"));
    }
}
