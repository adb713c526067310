//! Encoding in scripts: `a.encode(asset, preset)` (submit, progress bar, wait), `submit_job`,
//! and the `Job` type whose `state`, `progress` and `errors` are read live from the service.

use std::time::Duration;

use rhai::{Array, Dynamic, Engine};

use super::account::Account;
use super::errors::{invalid, RhaiResult};
use super::media::Asset;
use crate::ams::model::{self, JobState};

/// An encoding job, with the account it runs in.
#[derive(Debug, Clone)]
pub struct Job {
    pub account: Account,
    pub job: model::Job,
}

impl Job {
    fn refresh(&mut self) -> RhaiResult<()> {
        let m = self.account.media()?;
        self.job = self.account.call(m.job(&self.job.id))?;
        Ok(())
    }

    fn tasks(&self) -> RhaiResult<Vec<model::Task>> {
        let m = self.account.media()?;
        self.account.call(m.job_tasks(&self.job.id))
    }

    fn progress(&self) -> RhaiResult<f64> {
        let tasks = self.tasks()?;
        Ok(if tasks.is_empty() {
            0.0
        } else {
            tasks.iter().map(|t| t.progress).sum::<f64>() / tasks.len() as f64
        })
    }

    fn errors(&self) -> RhaiResult<String> {
        Ok(self
            .tasks()?
            .iter()
            .flat_map(|t| {
                t.error_details
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.message))
            })
            .collect::<Vec<_>>()
            .join("; "))
    }

    fn output(&self) -> RhaiResult<Asset> {
        let m = self.account.media()?;
        let outs = self.account.call(m.job_outputs(&self.job.id))?;
        let asset = outs
            .into_iter()
            .next()
            .ok_or_else(|| invalid(format!("job '{}' has no output asset", self.job.id)))?;
        Ok(Asset {
            account: self.account.clone(),
            asset,
        })
    }

    /// Polls until the job ends, drawing progress; returns the final job.
    fn wait(&mut self) -> RhaiResult<Job> {
        let bar = crate::progress::bars_enabled().then(|| {
            let p = crate::progress::Progress::bytes(
                format!("encode {}", self.job.name.clone().unwrap_or_default()),
                100,
            );
            p
        });
        let mut shown = 0u64;
        let mut delay = Duration::from_millis(100);
        loop {
            self.refresh()?;
            let p = self.progress()?.round() as u64;
            if let Some(b) = &bar {
                if p > shown {
                    b.inc(p - shown);
                    shown = p;
                }
            }
            if matches!(
                self.job.state,
                JobState::Finished | JobState::Error | JobState::Canceled
            ) {
                if let Some(b) = bar {
                    b.finish();
                }
                return Ok(self.clone());
            }
            self.account
                .bridge
                .wait(async move { tokio::time::sleep(delay).await })?;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

fn submit(a: &Account, asset: &Asset, preset: &str, output: Option<&str>) -> RhaiResult<Job> {
    let m = a.media()?;
    let name = output
        .map(str::to_string)
        .unwrap_or_else(|| format!("OutputAsset_{}", uuid::Uuid::new_v4()));
    let job = a.call(m.submit_job(&asset.asset.id, preset, &name))?;
    Ok(Job {
        account: a.clone(),
        job,
    })
}

fn replicate(a: &Account, b: &Account, x: &Asset, opts: rhai::Map) -> RhaiResult<rhai::Map> {
    use crate::replicate::{replicate, Side};
    let mut locator_id = None;
    for (k, v) in &opts {
        match k.as_str() {
            "locator_id" => locator_id = Some(v.to_string()),
            other => {
                return Err(invalid(format!(
                    "replicate has no option '{other}'; known: locator_id"
                )))
            }
        }
    }
    let (ma, mb) = (a.media()?, b.media()?);
    let copy = crate::storage::CopyOptions {
        progress: crate::progress::bars_enabled(),
        ..Default::default()
    };
    let r = a.call(replicate(
        &Side {
            media: ma,
            storage: &a.storage,
        },
        &Side {
            media: mb,
            storage: &b.storage,
        },
        &x.asset.id,
        locator_id,
        &copy,
    ))?;
    let mut m = rhai::Map::new();
    m.insert(
        "origin".into(),
        Dynamic::from(super::media::Locator {
            account: a.clone(),
            locator: r.origin,
        }),
    );
    m.insert(
        "replica".into(),
        Dynamic::from(super::media::Locator {
            account: b.clone(),
            locator: r.replica,
        }),
    );
    m.insert(
        "target".into(),
        Dynamic::from(Asset {
            account: b.clone(),
            asset: r.target,
        }),
    );
    m.insert("copied".into(), (r.copy.copied as i64).into());
    m.insert("skipped".into(), (r.copy.skipped as i64).into());
    m.insert("warmed".into(), super::media::warmed_map(r.warmed).into());
    Ok(m)
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Job>("Job");
    engine.register_fn("to_string", |j: &mut Job| j.to_string());
    engine.register_fn("to_debug", |j: &mut Job| j.to_string());
    engine.register_global_module(rhai::exported_module!(api).into());
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} {})", self.job.id, self.job.state.name())
    }
}

/// Encoding jobs and replication as playbooks call them.
#[rhai::plugin::export_module]
mod api {
    use super::*;
    use super::{Account, Array, Asset, Job, RhaiResult};

    /// Replicates an asset from A to B, the walkthrough's seven steps in one idempotent,
    /// resumable call: A's origin locator, a read SAS, B's target asset, a write SAS, the
    /// verified copy, CreateFileInfos, B's origin locator with A's Id, and B's origin warmed.
    /// Returns #{origin, replica, target, copied, skipped, warmed} (warmed: #{manifests, ms},
    /// or #{error} when B's origin could not be reached).
    /// Example: let r = replicate(a, b, out); print(r.replica.path);
    #[rhai_fn(return_raw)]
    pub fn replicate(a: Account, b: Account, asset: Asset) -> RhaiResult<rhai::Map> {
        super::replicate(&a, &b, &asset, rhai::Map::new())
    }

    /// replicate with options: locator_id (use or create A's origin locator with this Id).
    /// Example: let r = replicate(a, b, out, #{ locator_id: "nb:lid:UUID:…" });
    #[rhai_fn(name = "replicate", return_raw)]
    pub fn replicate_with(
        a: Account,
        b: Account,
        asset: Asset,
        options: rhai::Map,
    ) -> RhaiResult<rhai::Map> {
        super::replicate(&a, &b, &asset, options)
    }

    /// The job's Id (nb:jid:UUID:…).
    /// Example: print(job.id);
    #[rhai_fn(get = "id", pure)]
    pub fn id(job: &mut Job) -> String {
        job.job.id.clone()
    }

    /// The job's name (empty when it has none).
    /// Example: print(job.name);
    #[rhai_fn(get = "name", pure)]
    pub fn name(job: &mut Job) -> String {
        job.job.name.clone().unwrap_or_default()
    }

    /// The job's state now (asked of the service): Queued, Scheduled, Processing, Finished,
    /// Error, Canceled or Canceling.
    /// Example: if job.state == "Error" { print(job.errors); }
    #[rhai_fn(get = "state", return_raw)]
    pub fn state(job: &mut Job) -> RhaiResult<String> {
        job.refresh()?;
        Ok(job.job.state.name().to_string())
    }

    /// The job's progress now, 0 to 100 (its tasks' average).
    /// Example: print(`${job.progress}%`);
    #[rhai_fn(get = "progress", pure, return_raw)]
    pub fn progress(job: &mut Job) -> RhaiResult<f64> {
        job.progress()
    }

    /// What went wrong, from the tasks' error details (empty when nothing did).
    /// Example: print(job.errors);
    #[rhai_fn(get = "errors", pure, return_raw)]
    pub fn errors(job: &mut Job) -> RhaiResult<String> {
        job.errors()
    }

    /// The job's (first) output asset.
    /// Example: let out = job.wait().output;
    #[rhai_fn(get = "output", pure, return_raw)]
    pub fn output(job: &mut Job) -> RhaiResult<Asset> {
        job.output()
    }

    /// How long the job ran, in seconds, as last read.
    /// Example: print(job.running_seconds);
    #[rhai_fn(get = "running_seconds", pure)]
    pub fn running_seconds(job: &mut Job) -> f64 {
        job.job.running_duration
    }

    /// Encodes an asset with Media Encoder Standard ("Adaptive Streaming", "H264 Multiple
    /// Bitrate 1080p", any other MES preset name, an MES JSON or XML preset, or a JSON
    /// ladder), waits with a progress bar, and returns the final job; its output asset's .ism is the primary file. A failed
    /// job is returned too: check job.state.
    /// Example: let job = a.encode(src, "Adaptive Streaming"); if job.state != "Finished" { throw job.errors; }
    #[rhai_fn(return_raw, pure)]
    pub fn encode(account: &mut Account, asset: Asset, preset: &str) -> RhaiResult<Job> {
        submit(account, &asset, preset, None)?.wait()
    }

    /// Encodes as encode(asset, preset), naming the output asset.
    /// Example: let job = a.encode(src, "Adaptive Streaming", "Encoded clip");
    #[rhai_fn(name = "encode", return_raw, pure)]
    pub fn encode_named(
        account: &mut Account,
        asset: Asset,
        preset: &str,
        output_name: &str,
    ) -> RhaiResult<Job> {
        submit(account, &asset, preset, Some(output_name))?.wait()
    }

    /// Submits an encoding job and returns at once; see job.wait(), job.state, job.progress.
    /// Example: let job = a.submit_job(src, "Adaptive Streaming"); print(job.state);
    #[rhai_fn(return_raw, pure)]
    pub fn submit_job(account: &mut Account, asset: Asset, preset: &str) -> RhaiResult<Job> {
        submit(account, &asset, preset, None)
    }

    /// Waits until the job is Finished, Error or Canceled (progress bar on a terminal).
    /// Example: let done = job.wait(); print(done.state);
    #[rhai_fn(return_raw)]
    pub fn wait(job: &mut Job) -> RhaiResult<Job> {
        job.wait()
    }

    /// Every job of the account.
    /// Example: for j in a.jobs() { print(`${j.name} ${j.state}`); }
    #[rhai_fn(return_raw, pure)]
    pub fn jobs(account: &mut Account) -> RhaiResult<Array> {
        let m = account.media()?;
        let all = account.call(m.jobs())?;
        Ok(all
            .into_iter()
            .map(|job| {
                Dynamic::from(Job {
                    account: account.clone(),
                    job,
                })
            })
            .collect())
    }

    /// Cancels a queued or running job; it ends Canceled with no output files registered.
    /// Example: a.cancel_job(job);
    #[rhai_fn(return_raw, pure)]
    pub fn cancel_job(account: &mut Account, job: Job) -> RhaiResult<()> {
        let m = account.media()?;
        account.call(m.cancel_job(&job.job.id))
    }
}
