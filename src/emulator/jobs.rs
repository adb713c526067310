//! `Jobs` and `Tasks`: submitting encoding jobs (`POST Jobs` with `InputMediaAssets` references
//! and inline `Tasks`), reading them with their navigation (`Tasks`, `InputMediaAssets`,
//! `OutputMediaAssets`), and `CancelJob`. The work itself is done by `worker.rs`.

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::odata::{ApiError, Body, SetInfo};
use super::{assets, encoder, no_content, now, processors, to_value, Ctx};
use crate::ams::model::requests::{NewJob, TaskSpec};
use crate::ams::model::{Asset, IdKind, Job, JobNotificationSubscription, JobState, Task};
use crate::ams::odata::{EntityRef, RefMetadata};

pub const JOBS: SetInfo = SetInfo {
    name: "Jobs",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Job",
    properties: &[
        "Id",
        "Name",
        "Created",
        "LastModified",
        "EndTime",
        "Priority",
        "RunningDuration",
        "StartTime",
        "State",
        "TemplateId",
        "JobNotificationSubscriptions",
    ],
    navigation: &["Tasks", "OutputMediaAssets", "InputMediaAssets"],
};

pub const TASKS: SetInfo = SetInfo {
    name: "Tasks",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Task",
    properties: &[
        "Id",
        "Configuration",
        "EndTime",
        "ErrorDetails",
        "HistoricalEvents",
        "MediaProcessorId",
        "Name",
        "PerfMessage",
        "Priority",
        "Progress",
        "RunningDuration",
        "StartTime",
        "State",
        "TaskBody",
        "Options",
        "EncryptionKeyId",
        "EncryptionScheme",
        "EncryptionVersion",
        "InitializationVector",
        "TaskNotificationSubscriptions",
    ],
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
        ("GET", Some(id), Some("State")) => {
            let j: Job = ctx.load(&JOBS, &id)?;
            Ok(ctx.value("State", "Edm.Int32", serde_json::json!(j.state)))
        }
        ("GET", Some(id), Some(nav)) => ctx.related(&JOBS, &id, nav),
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

/// A protected configuration's key and IV.
struct Protected {
    key_id: String,
    iv: String,
}

/// Whether a task's configuration is protected (`Options` 1, or an encryption scheme named),
/// and with what; the scheme and version must be the SDK's.
fn protected(t: &TaskSpec) -> Result<Option<Protected>, ApiError> {
    let on = t.options.unwrap_or(0) & 1 == 1 || t.encryption_scheme.is_some();
    if !on {
        return Ok(None);
    }
    let scheme = t.encryption_scheme.as_deref().unwrap_or_default();
    if scheme != super::protection::SCHEME {
        return Err(ApiError::bad_request(format!(
            "field 'EncryptionScheme': '{scheme}' is not '{}'",
            super::protection::SCHEME
        )));
    }
    if let Some(v) = t
        .encryption_version
        .as_deref()
        .filter(|v| *v != super::protection::VERSION)
    {
        return Err(ApiError::bad_request(format!(
            "field 'EncryptionVersion': '{v}' is not '{}'",
            super::protection::VERSION
        )));
    }
    let key_id = t.encryption_key_id.clone().ok_or_else(|| {
        ApiError::bad_request("field 'EncryptionKeyId' is required for a protected configuration")
    })?;
    let iv = t.initialization_vector.clone().ok_or_else(|| {
        ApiError::bad_request(
            "field 'InitializationVector' is required for a protected configuration",
        )
    })?;
    Ok(Some(Protected { key_id, iv }))
}

/// The assets a task reads and writes (its job's, picked by the task's indexes).
pub fn task_assets(
    st: &super::AppState,
    task_id: &str,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let job = st
        .db
        .list(JOBS.name, None)?
        .into_iter()
        .filter_map(|j| j["Id"].as_str().map(str::to_string))
        .find(|jid| {
            links(&st.db, jid)
                .map(|l| l.tasks.iter().any(|t| t.0 == task_id))
                .unwrap_or(false)
        });
    let l = match job {
        Some(j) => links(&st.db, &j)?,
        None => Links::default(),
    };
    let (ti, to) = l
        .tasks
        .iter()
        .find(|t| t.0 == task_id)
        .map(|t| (t.1, t.2))
        .unwrap_or((0, 0));
    let pick = |v: &Vec<String>, i: usize| v.get(i).cloned().into_iter().collect::<Vec<_>>();
    Ok((pick(&l.inputs, ti), pick(&l.outputs, to)))
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
        ("GET", Some(id), Some(nav)) => ctx.related(&TASKS, &id, nav),
        (m, _, _) => Err(ApiError::not_allowed(m, "Tasks")),
    }
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

/// An attribute's value in a tag, XML entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let raw = tag[start..].split('"').next()?;
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The start tag at `i` up to its closing `>` (quotes respected: `>` may stand in a value).
fn start_tag(body: &str, i: usize) -> &str {
    let mut quoted = false;
    for (n, c) in body[i..].char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return &body[i..i + n],
            _ => {}
        }
    }
    &body[i..]
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
        .map(|i| start_tag(body, i))
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

/// Jobs a request may hold at most this many tasks.
const MAX_TASKS: usize = 30;

/// A `POST Jobs` body as the shared request type, every field checked and named.
fn new_job(body: &Body) -> Result<NewJob, ApiError> {
    body.only_known(&JOBS)?;
    let inputs = body.array("InputMediaAssets")?.ok_or_else(|| {
        ApiError::bad_request(
            "field 'InputMediaAssets' is required: [{\"__metadata\":{\"uri\":\"…/Assets('…')\"}}]",
        )
    })?;
    let input_media_assets = inputs
        .iter()
        .map(|v| {
            // `{"__metadata": {"uri": …}}`, or the bare `{"uri": …}` some clients sent.
            let reference = serde_json::from_value::<EntityRef>(v.clone())
                .ok()
                .or_else(|| {
                    let uri = v.get("uri")?.as_str()?;
                    Some(EntityRef {
                        metadata: RefMetadata { uri: uri.into() },
                    })
                })
                .filter(|r| r.key("Assets").is_some());
            reference.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "field 'InputMediaAssets': {v} does not reference an asset"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tasks = body
        .array("Tasks")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("field 'Tasks' is required (at least one task)"))?;
    if tasks.len() > MAX_TASKS {
        return Err(ApiError::bad_request(format!(
            "field 'Tasks' holds {} tasks; a job may have at most {MAX_TASKS}",
            tasks.len()
        )));
    }
    let tasks = tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let named = |e: ApiError| ApiError::bad_request(format!("Tasks[{i}]: {}", e.message));
            let tb = Body::from_value(t).map_err(named)?;
            tb.only_known(&TASKS).map_err(named)?;
            Ok(TaskSpec {
                name: tb.str("Name").map_err(named)?,
                configuration: tb.str("Configuration").map_err(named)?,
                media_processor_id: tb.required_str("MediaProcessorId").map_err(named)?,
                task_body: tb.required_str("TaskBody").map_err(named)?,
                task_notification_subscriptions: subscriptions(
                    &tb,
                    "TaskNotificationSubscriptions",
                )
                .map_err(named)?,
                options: tb.int("Options").map_err(named)?,
                encryption_key_id: tb.str("EncryptionKeyId").map_err(named)?,
                encryption_scheme: tb.str("EncryptionScheme").map_err(named)?,
                encryption_version: tb.str("EncryptionVersion").map_err(named)?,
                initialization_vector: tb.str("InitializationVector").map_err(named)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(NewJob {
        name: body.str("Name")?,
        priority: body.int("Priority")?,
        input_media_assets,
        tasks,
        job_notification_subscriptions: subscriptions(body, "JobNotificationSubscriptions")?,
    })
}

/// `[{"NotificationEndPointId": "nb:nepid:UUID:…", "TargetJobState": 2}]` (1: final states
/// only, 2: every change).
fn subscriptions(body: &Body, field: &str) -> Result<Vec<JobNotificationSubscription>, ApiError> {
    let Some(items) = body.array(field)? else {
        return Ok(Vec::new());
    };
    items
        .into_iter()
        .map(|v| {
            let s = Body::from_value(v)?;
            let target = s.int("TargetJobState")?.unwrap_or(2);
            if !(1..=2).contains(&target) {
                return Err(ApiError::bad_request(format!(
                    "field '{field}': TargetJobState must be 1 (final states only) or 2 (all), not {target}"
                )));
            }
            Ok(JobNotificationSubscription {
                notification_end_point_id: s.required_str("NotificationEndPointId")?,
                target_job_state: target,
            })
        })
        .collect()
}

async fn submit(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let new = new_job(&Body::parse(ctx.body)?)?;
    // Every reference and task is checked before anything exists.
    let mut inputs = Vec::new();
    for r in &new.input_media_assets {
        let id = r.key("Assets").unwrap_or_default();
        let _: Asset = ctx.load(&assets::INFO, &id).map_err(|e| {
            ApiError::bad_request(format!("field 'InputMediaAssets': {}", e.message))
        })?;
        inputs.push(id);
    }
    // Subscriptions name endpoints that exist.
    let subscribed = new.job_notification_subscriptions.iter().chain(
        new.tasks
            .iter()
            .flat_map(|t| &t.task_notification_subscriptions),
    );
    for s in subscribed {
        if ctx
            .st
            .db
            .get(
                super::notifications::INFO.name,
                &s.notification_end_point_id,
            )?
            .is_none()
        {
            return Err(ApiError::bad_request(format!(
                "NotificationEndPoint '{}' does not exist; create it first",
                s.notification_end_point_id
            )));
        }
    }
    let mes = processors::media_encoder_standard();
    let mut parsed = Vec::new();
    for (i, t) in new.tasks.iter().enumerate() {
        if t.media_processor_id != mes.id {
            return Err(ApiError::bad_request(format!(
                "Tasks[{i}]: MediaProcessor '{}' does not exist; use {} ({})",
                t.media_processor_id, mes.id, mes.name
            )));
        }
        let config = t
            .configuration
            .clone()
            .unwrap_or_else(|| "Adaptive Streaming".into());
        let named = |e: ApiError| ApiError::bad_request(format!("Tasks[{i}]: {}", e.message));
        let protection = protected(t).map_err(named)?;
        let clear = match &protection {
            Some(p) => super::protection::clear_configuration(ctx.st, &p.key_id, &p.iv, &config)
                .await
                .map_err(named)?,
            None => config.clone(),
        };
        encoder::check_preset(&clear).map_err(|e| {
            ApiError::bad_request(format!("Tasks[{i}]: field 'Configuration': {e}"))
        })?;
        let tbody = parse_task_body(&t.task_body)?;
        if tbody.input >= inputs.len() {
            return Err(ApiError::bad_request(format!(
                "Tasks[{i}]: JobInputAsset({}) but the job has {} input asset(s)",
                tbody.input,
                inputs.len()
            )));
        }
        // Each output asset belongs to a task: JobOutputAsset(n) numbers them from 0, so a
        // job makes at most as many as it has tasks (a huge n made thousands of assets).
        let count = new.tasks.len();
        if tbody.output >= count {
            return Err(ApiError::bad_request(format!(
                "Tasks[{i}]: JobOutputAsset({}) but a job of {count} task(s) makes at most {count} output asset(s): JobOutputAsset(0) to JobOutputAsset({})",
                tbody.output,
                count - 1
            )));
        }
        parsed.push((
            t.name.clone(),
            config,
            t.task_body.clone(),
            tbody,
            t.task_notification_subscriptions.clone(),
            protection,
        ));
    }
    // Output assets exist from the moment the job does.
    let job_id = IdKind::Job.new_id();
    let max_out = parsed.iter().map(|p| p.3.output).max().unwrap_or(0);
    let outputs: Vec<Asset> = (0..=max_out)
        .map(|n| {
            let (name, options) = parsed
                .iter()
                .find(|p| p.3.output == n)
                .map(|p| (p.3.output_name.clone(), p.3.output_options))
                .unwrap_or((None, 0));
            // Without assetName, the reference's rule: the inner text with a suffix of the
            // job's Name, or of its Id when it has none ("JobOutputAsset(0)_NewJob").
            let name = name.unwrap_or_else(|| {
                let suffix = new
                    .name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| job_id.clone());
                format!("JobOutputAsset({n})_{suffix}")
            });
            assets::new_asset(ctx.st, Some(name), None, options)
        })
        .collect();
    let t = now();
    let job = Job {
        id: job_id.clone(),
        name: new.name.clone(),
        created: t,
        last_modified: t,
        start_time: None,
        end_time: None,
        priority: new.priority.unwrap_or(0),
        running_duration: 0.0,
        state: JobState::Queued,
        template_id: None,
        job_notification_subscriptions: new.job_notification_subscriptions.clone(),
    };
    let mut links = Links {
        inputs,
        outputs: outputs.iter().map(|a| a.id.clone()).collect(),
        tasks: Vec::new(),
    };
    let mut tasks = Vec::new();
    for (name, config, task_body, tb, subscriptions, protection) in parsed {
        let task = Task {
            id: IdKind::Task.new_id(),
            name,
            configuration: Some(config),
            media_processor_id: mes.id.clone(),
            task_body: Some(task_body),
            options: if protection.is_some() { 1 } else { 0 },
            priority: 0,
            progress: 0.0,
            running_duration: 0.0,
            start_time: None,
            end_time: None,
            state: JobState::Queued,
            error_details: Vec::new(),
            historical_events: Vec::new(),
            task_notification_subscriptions: subscriptions,
            perf_message: None,
            encryption_key_id: protection.as_ref().map(|p| p.key_id.clone()),
            encryption_scheme: protection
                .as_ref()
                .map(|_| super::protection::SCHEME.into()),
            encryption_version: protection
                .as_ref()
                .map(|_| super::protection::VERSION.into()),
            initialization_vector: protection.map(|p| p.iv),
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
    super::worker::cancel(ctx.st, &mut job)?;
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
        let body = serde_json::json!({
            "InputMediaAssets": [{"__metadata": {"uri": "https://media.windows.net/api/Assets('nb%3Acid%3AUUID%3Aabc')"}}],
            "Tasks": [{"MediaProcessorId": "p", "TaskBody": "<taskBody/>"}]
        });
        let job = new_job(&Body::from_value(body).unwrap()).unwrap();
        let input = job.input_media_assets[0].key("Assets");
        assert_eq!(input.as_deref(), Some("nb:cid:UUID:abc"));
        let no_body =
            serde_json::json!({"InputMediaAssets": [], "Tasks": [{"MediaProcessorId": "p"}]});
        let e = new_job(&Body::from_value(no_body).unwrap()).unwrap_err();
        assert_eq!(e.message, "Tasks[0]: field 'TaskBody' is required");
    }

    /// What the client sends is what the emulator reads: one request type, both ways.
    #[test]
    fn the_clients_job_is_the_emulators_job() {
        let sent = NewJob {
            name: Some("Encode x".into()),
            priority: Some(2),
            input_media_assets: vec![EntityRef::new("http://h/api/", "Assets", "nb:cid:UUID:ab")],
            tasks: vec![TaskSpec {
                name: Some("t".into()),
                configuration: Some("Adaptive Streaming".into()),
                media_processor_id: "nb:mpid:UUID:1".into(),
                task_body: TaskSpec::task_body(0, 0, "out <&>"),
                task_notification_subscriptions: vec![JobNotificationSubscription {
                    notification_end_point_id: "nb:nepid:UUID:1".into(),
                    target_job_state: 1,
                }],
                ..Default::default()
            }],
            job_notification_subscriptions: vec![JobNotificationSubscription {
                notification_end_point_id: "nb:nepid:UUID:2".into(),
                target_job_state: 2,
            }],
        };
        let wire = serde_json::to_vec(&serde_json::json!({ "d": sent })).unwrap();
        let read = new_job(&Body::parse(&wire).unwrap()).unwrap();
        assert_eq!(format!("{read:?}"), format!("{sent:?}"));
        let tb = parse_task_body(&read.tasks[0].task_body).unwrap();
        assert_eq!(tb.output_name.as_deref(), Some("out <&>"));
    }
}
