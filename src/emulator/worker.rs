//! The job queue: a worker that takes Queued jobs in order (concurrency configurable, one by
//! default), encodes with ffmpeg, uploads the outputs into the output asset's container and
//! registers them as Files. Job state lives in SQLite, so a restarted emulator picks up where it
//! stopped: jobs that were Scheduled or Processing when it died run again from the start (their
//! outputs are overwritten); jobs that were Canceling end Canceled. Every change of a job's
//! state is made here (`cancel`, `finish`, `recover` and the run itself).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, Semaphore};

use super::encoder::{self, EncodeError};
use super::jobs::{links, JOBS, TASKS};
use super::odata::ApiError;
use super::{assets, files, functions, manifest, now, to_value, AppState};
use crate::ams::model::{Asset, AssetFile, ErrorDetail, Job, JobState, Task, TaskHistoricalEvent};
use crate::storage::TransferOptions;

/// Wakes the worker and carries cancellations to running jobs.
#[derive(Default)]
pub struct JobControl {
    notify: Notify,
    cancels: Mutex<HashMap<String, watch::Sender<bool>>>,
}

impl JobControl {
    /// A job was queued.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Asks a running job to stop.
    pub fn cancel(&self, job_id: &str) {
        if let Some(tx) = self
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
        {
            let _ = tx.send(true);
        }
    }
}

fn load<T: serde::de::DeserializeOwned>(st: &AppState, set: &str, id: &str) -> Result<T, ApiError> {
    let v = st
        .db
        .get(set, id)?
        .ok_or_else(|| ApiError::not_found(format!("{set} '{id}' was not found")))?;
    serde_json::from_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

/// Asks for a job's end (CancelJob): a queued job ends Canceled now, a running one becomes
/// Canceling and its encoder is stopped (it ends Canceled when the worker sees it); asking
/// again while Canceling changes nothing, and an ended job cannot be canceled.
pub fn cancel(st: &AppState, job: &mut Job) -> Result<(), ApiError> {
    match job.state {
        JobState::Queued => finish(st, job, JobState::Canceled),
        JobState::Scheduled | JobState::Processing => {
            let old = job.state;
            job.state = JobState::Canceling;
            job.last_modified = now();
            st.db.update(JOBS.name, &job.id, &to_value(&*job)?)?;
            super::notifications::job_changed(st, job, old);
            st.jobs.cancel(&job.id);
            Ok(())
        }
        JobState::Canceling => Ok(()),
        s => Err(ApiError::bad_request(format!(
            "Job '{}' is already {}",
            job.id,
            s.name()
        ))),
    }
}

/// Ends a job in `state` (Finished, Error, Canceled).
pub fn finish(st: &AppState, job: &mut Job, state: JobState) -> Result<(), ApiError> {
    let t = now();
    let old = job.state;
    job.state = state;
    job.end_time = Some(t);
    job.last_modified = t;
    if let Some(start) = job.start_time {
        job.running_duration = (t - start).as_seconds_f64();
    }
    st.db.update(JOBS.name, &job.id, &to_value(job)?)?;
    super::notifications::job_changed(st, job, old);
    Ok(())
}

/// A step of the task's life in its HistoricalEvents (`Code: Message`).
fn log_event(task: &mut Task, text: &str) {
    let (code, message) = text.split_once(": ").unwrap_or((text, ""));
    task.historical_events.push(TaskHistoricalEvent {
        code: code.into(),
        message: message.into(),
        time_stamp: now(),
    });
}

fn update_task(st: &AppState, task: &Task) {
    if let Ok(v) = to_value(task) {
        let _ = st.db.update(TASKS.name, &task.id, &v);
    }
}

/// Puts interrupted jobs back in the queue (or ends the ones being canceled).
fn recover(st: &AppState) -> Result<(), ApiError> {
    for v in st.db.list(JOBS.name, None)? {
        let Ok(mut job) = serde_json::from_value::<Job>(v) else {
            continue;
        };
        match job.state {
            JobState::Scheduled | JobState::Processing => {
                tracing::warn!(job = %job.id, "the emulator stopped while this job ran: running it again");
                job.state = JobState::Queued;
                job.start_time = None;
                st.db.update(JOBS.name, &job.id, &to_value(&job)?)?;
            }
            JobState::Canceling => finish(st, &mut job, JobState::Canceled)?,
            _ => {}
        }
    }
    Ok(())
}

fn next_queued(st: &AppState) -> Result<Option<Job>, ApiError> {
    let mut queued: Vec<Job> = st
        .db
        .list(JOBS.name, None)?
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Job>(v).ok())
        .filter(|j| j.state == JobState::Queued)
        .collect();
    queued.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.created.cmp(&b.created)));
    Ok(queued.into_iter().next())
}

/// Starts the worker; it runs until the process ends.
pub fn start(st: Arc<AppState>, concurrency: usize) {
    if let Err(e) = recover(&st) {
        tracing::error!(error = %e.message, "cannot recover the job queue");
    }
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        loop {
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            let next = match next_queued(&st) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e.message, "job queue");
                    None
                }
            };
            match next {
                Some(mut job) => {
                    let old = job.state;
                    job.state = JobState::Scheduled;
                    job.last_modified = now();
                    if let Ok(v) = to_value(&job) {
                        let _ = st.db.update(JOBS.name, &job.id, &v);
                    }
                    super::notifications::job_changed(&st, &job, old);
                    let st = st.clone();
                    tokio::spawn(async move {
                        run_job(&st, job).await;
                        drop(permit);
                        st.jobs.wake();
                    });
                }
                None => {
                    drop(permit);
                    tokio::select! {
                        _ = st.jobs.notify.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    });
}

async fn run_job(st: &AppState, mut job: Job) {
    let (tx, rx) = watch::channel(false);
    st.jobs
        .cancels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id.clone(), tx);
    let old = job.state;
    job.state = JobState::Processing;
    job.start_time = Some(now());
    job.last_modified = now();
    if let Ok(v) = to_value(&job) {
        let _ = st.db.update(JOBS.name, &job.id, &v);
    }
    super::notifications::job_changed(st, &job, old);
    let outcome = run_tasks(st, &job, rx).await;
    st.jobs
        .cancels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    let state = match &outcome {
        Ok(()) => JobState::Finished,
        Err(EncodeError::Canceled) => JobState::Canceled,
        Err(_) => JobState::Error,
    };
    if let Err(e) = &outcome {
        tracing::info!(job = %job.id, error = %e, "job ended {}", state.name());
    }
    if let Err(e) = finish(st, &mut job, state) {
        tracing::error!(job = %job.id, error = %e.message, "cannot record the job's end");
    }
}

async fn run_tasks(
    st: &AppState,
    job: &Job,
    cancel: watch::Receiver<bool>,
) -> Result<(), EncodeError> {
    let l = links(&st.db, &job.id).map_err(|e| EncodeError::State(e.message))?;
    for (task_id, input, output) in &l.tasks {
        let mut task: Task =
            load(st, TASKS.name, task_id).map_err(|e| EncodeError::State(e.message))?;
        let queued = task.state;
        task.state = JobState::Processing;
        task.start_time = Some(now());
        log_event(&mut task, "Processing: the encoder started");
        update_task(st, &task);
        super::notifications::task_changed(st, &job.id, &task, queued);
        let started = Instant::now();
        let result = run_task(
            st,
            &job.id,
            &mut task,
            &l.inputs[*input],
            &l.outputs[*output],
            cancel.clone(),
        )
        .await;
        task.end_time = Some(now());
        task.running_duration = started.elapsed().as_secs_f64();
        match &result {
            Ok(()) => {
                task.state = JobState::Finished;
                task.progress = 100.0;
            }
            Err(EncodeError::Canceled) => task.state = JobState::Canceled,
            Err(e) => {
                task.state = JobState::Error;
                task.error_details.push(ErrorDetail {
                    code: error_code(e).into(),
                    message: e.to_string(),
                });
            }
        }
        let ended = format!("{}: the task ended", task.state.name());
        log_event(&mut task, &ended);
        update_task(st, &task);
        super::notifications::task_changed(st, &job.id, &task, JobState::Processing);
        result?;
    }
    Ok(())
}

fn error_code(e: &EncodeError) -> &'static str {
    match e {
        EncodeError::NotVideo(_) => "ErrorParsingConfiguration",
        EncodeError::UnknownPreset(_) => "ErrorParsingConfiguration",
        EncodeError::NotInstalled { .. } => "ErrorProcessingTask",
        _ => "ErrorProcessingTask",
    }
}

/// A storage failure, unless it was the local disk (a download into a full work folder).
fn storage_err(e: crate::storage::StorageError) -> EncodeError {
    match &e {
        crate::storage::StorageError::LocalFile { source, .. }
            if source.raw_os_error() == Some(libc::ENOSPC) =>
        {
            EncodeError::DiskFull(e.to_string())
        }
        _ => EncodeError::Storage(e.to_string()),
    }
}

/// The emulator's own records could not be read or written.
fn state_err(e: super::db::DbError) -> EncodeError {
    match e {
        e @ super::db::DbError::DiskFull(_) => EncodeError::DiskFull(e.to_string()),
        e => EncodeError::State(e.to_string()),
    }
}

async fn run_task(
    st: &AppState,
    job_id: &str,
    task: &mut Task,
    input: &str,
    output: &str,
    cancel: watch::Receiver<bool>,
) -> Result<(), EncodeError> {
    let work: PathBuf = st
        .config
        .data_dir
        .join("work")
        .join(job_id.replace(':', "_"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("out"))?;
    let result = encode_into(st, task, input, output, &work, cancel).await;
    let _ = std::fs::remove_dir_all(&work);
    if result.is_err() {
        // Nothing half-written stays in the output asset.
        let out: Result<Asset, _> = load(st, assets::INFO.name, output);
        if let Ok(out) = out {
            if let Ok(blobs) = st.storage.blobs(&out.container()).await {
                for b in blobs {
                    let _ = st.storage.delete_blob(&out.container(), &b.name).await;
                }
            }
            let _ = st.db.delete_children(files::INFO.name, output);
        }
    }
    result
}

async fn encode_into(
    st: &AppState,
    task: &mut Task,
    input: &str,
    output: &str,
    work: &std::path::Path,
    cancel: watch::Receiver<bool>,
) -> Result<(), EncodeError> {
    let input_asset: Asset =
        load(st, assets::INFO.name, input).map_err(|e| EncodeError::State(e.message))?;
    let output_asset: Asset =
        load(st, assets::INFO.name, output).map_err(|e| EncodeError::State(e.message))?;
    // The mezzanine: the primary file, else the first file, else the first blob.
    let files: Vec<AssetFile> = st
        .db
        .list(files::INFO.name, Some(input))
        .map_err(state_err)?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let name = match files.iter().find(|f| f.is_primary).or(files.first()) {
        Some(f) => f.name.clone(),
        None => st
            .storage
            .blobs(&input_asset.container())
            .await
            .map_err(storage_err)?
            .into_iter()
            .map(|b| b.name)
            .find(|n| crate::ams::model::check_file_name(n).is_ok())
            .ok_or_else(|| {
                EncodeError::NotVideo(format!(
                    "input asset '{input}' has no files (blobs whose names cannot be file names are ignored)"
                ))
            })?,
    };
    // The input is called what the encoder decides, inside its work folder, whatever the
    // blob's name (it may come from an older database or a blob nobody registered).
    let local = work.join(local_input_name(&name));
    st.storage
        .download_file(
            &input_asset.container(),
            &name,
            &local,
            &TransferOptions::default(),
            None,
        )
        .await
        .map_err(storage_err)?;
    let src = encoder::probe(&st.tools, &local).await?;
    let preset = task
        .configuration
        .clone()
        .unwrap_or_else(|| "Adaptive Streaming".into());
    // A protected configuration is decrypted only to run it; the record keeps it encrypted.
    let preset = match (&task.encryption_key_id, &task.initialization_vector) {
        (Some(key), Some(iv)) if task.encryption_scheme.is_some() => {
            super::protection::clear_configuration(st, key, iv, &preset)
                .await
                .map_err(|e| EncodeError::State(e.message))?
        }
        _ => preset,
    };
    let rungs = encoder::ladder(&preset, &src)?;
    let audio = encoder::audio(&preset);
    let stem = std::path::Path::new(&name)
        .file_stem()
        .map(|s| {
            s.to_string_lossy().replace(
                |c: char| !(c.is_alphanumeric() || c == '-' || c == '_'),
                "_",
            )
        })
        .unwrap_or_else(|| "output".into());
    let out_dir = work.join("out");
    let mut last = Instant::now();
    let task_id = task.id.clone();
    let plan = encoder::Plan {
        input: &local,
        out_dir: &out_dir,
        name: &stem,
        src: &src,
        rungs: &rungs,
        audio,
    };
    let mp4s = encoder::encode(
        &st.tools,
        &plan,
        |p| {
            if last.elapsed() >= Duration::from_millis(500) {
                last = Instant::now();
                if let Ok(mut t) = load::<Task>(st, TASKS.name, &task_id) {
                    t.progress = (p * 10.0).round() / 10.0;
                    update_task(st, &t);
                }
            }
        },
        cancel.clone(),
    )
    .await?;
    std::fs::write(
        out_dir.join(format!("{stem}.ism")),
        manifest::ism(&stem, &rungs, src.has_audio.then_some(audio)),
    )?;
    let codecs = mp4s
        .iter()
        .map(|p| manifest::codec_data(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EncodeError::Ffmpeg)?;
    std::fs::write(
        out_dir.join(format!("{stem}.ismc")),
        manifest::ismc(
            &rungs,
            &codecs,
            src.duration,
            src.has_audio.then_some(audio),
        ),
    )?;
    // MES's metadata files: what it wrote, and what it read.
    let written: Vec<manifest::Written<'_>> = mp4s
        .iter()
        .zip(&rungs)
        .map(|(p, rung)| manifest::Written {
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            rung,
        })
        .collect();
    let source_stem = std::path::Path::new(&name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| stem.clone());
    let output_metadata = out_dir.join(format!("{stem}_manifest.xml"));
    std::fs::write(
        &output_metadata,
        manifest::output_metadata(&name, &written, &src, audio),
    )?;
    let guid = crate::ams::model::IdKind::Content
        .parse(input)
        .map(|g| g.to_string())
        .unwrap_or_else(|| source_stem.clone());
    let input_metadata = out_dir.join(format!("{guid}_metadata.xml"));
    let input_size = std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0);
    std::fs::write(
        &input_metadata,
        manifest::input_metadata(&name, input_size, &src),
    )?;
    let mut outputs = mp4s;
    outputs.push(out_dir.join(format!("{stem}.ism")));
    outputs.push(out_dir.join(format!("{stem}.ismc")));
    outputs.push(output_metadata);
    outputs.push(input_metadata);
    for path in &outputs {
        if *cancel.borrow() {
            return Err(EncodeError::Canceled);
        }
        let blob = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        st.storage
            .upload_file(
                &output_asset.container(),
                path,
                &blob,
                &TransferOptions::default(),
                None,
            )
            .await
            .map_err(storage_err)?;
    }
    if *cancel.borrow() {
        return Err(EncodeError::Canceled);
    }
    functions::register_files(st, output)
        .await
        .map_err(|e| EncodeError::State(e.message))?;
    // Keep the task's latest progress write from racing the final state.
    *task = load(st, TASKS.name, &task.id).map_err(|e| EncodeError::State(e.message))?;
    Ok(())
}

/// The work folder's name for an input blob: `input` and the blob's extension when that is a
/// plain one (letters and digits, at most 8), so no name can lead outside the folder.
fn local_input_name(blob: &str) -> String {
    let ext = blob
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()));
    match ext {
        Some(e) => format!("input.{}", e.to_ascii_lowercase()),
        None => "input".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_encoders_input_name_never_leaves_its_folder() {
        use super::local_input_name as n;
        assert_eq!(n("mezzanine.MP4"), "input.mp4");
        assert_eq!(n("../../../../etc/passwd"), "input");
        assert_eq!(n("..\\..\\x.mov"), "input.mov");
        assert_eq!(n("a.b/../c"), "input");
        assert_eq!(n("clip.mp4/.."), "input");
        assert_eq!(n("noext"), "input");
    }
}
