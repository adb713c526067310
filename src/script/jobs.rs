//! Encoding in scripts: `a.encode(asset, preset)` (submit, progress bar, wait), `submit_job`,
//! and the `Job` type whose `state`, `progress` and `errors` are read live from the service.

use std::time::Duration;

use rhai::{Array, Dynamic, Engine};

use super::account::Account;
use super::errors::{invalid, RhaiResult};
use super::host::{func, getter};
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
            std::thread::sleep(delay);
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
    for with_opts in [false, true] {
        const DOC: &str = "Replicates an asset from A to B, the walkthrough's seven steps in one idempotent, resumable\ncall: A's origin locator, a read SAS, B's target asset, a write SAS, the verified copy,\nCreateFileInfos, B's origin locator with A's Id, and B's origin warmed. Options: locator_id (use\nor create A's origin locator with this Id). Returns #{origin, replica, target, copied, skipped,\nwarmed} (warmed: #{manifests, ms}, or #{error} when B's origin could not be reached).\nExample: let r = replicate(a, b, out, #{}); print(r.replica.path);";
        if with_opts {
            func(
                "replicate",
                &[
                    "a: Account",
                    "b: Account",
                    "asset: Asset",
                    "options: Map",
                    "Map",
                ],
                DOC,
            )
            .register_into_engine(engine, |a: Account, b: Account, x: Asset, o: rhai::Map| {
                replicate(&a, &b, &x, o)
            });
        } else {
            func(
                "replicate",
                &["a: Account", "b: Account", "asset: Asset", "Map"],
                DOC,
            )
            .register_into_engine(engine, |a: Account, b: Account, x: Asset| {
                replicate(&a, &b, &x, rhai::Map::new())
            });
        }
    }

    engine.register_type_with_name::<Job>("Job");
    getter(
        "Job",
        "id",
        "String",
        "The job's Id (nb:jid:UUID:…).\nExample: print(job.id);",
    )
    .register_into_engine(engine, |j: &mut Job| j.job.id.clone());
    getter(
        "Job",
        "name",
        "String",
        "The job's name (empty when it has none).\nExample: print(job.name);",
    )
    .register_into_engine(engine, |j: &mut Job| j.job.name.clone().unwrap_or_default());
    getter("Job", "state", "String", "The job's state now (asked of the service): Queued, Scheduled, Processing, Finished, Error, Canceled or Canceling.\nExample: if job.state == \"Error\" { print(job.errors); }").register_into_engine(engine, |j: &mut Job| -> RhaiResult<String> {
        j.refresh()?;
        Ok(j.job.state.name().to_string())
    });
    getter("Job", "progress", "f64", "The job's progress now, 0 to 100 (its tasks' average).\nExample: print(`${job.progress}%`);").register_into_engine(engine, |j: &mut Job| j.progress());
    getter("Job", "errors", "String", "What went wrong, from the tasks' error details (empty when nothing did).\nExample: print(job.errors);").register_into_engine(engine, |j: &mut Job| j.errors());
    getter(
        "Job",
        "output",
        "Asset",
        "The job's (first) output asset.\nExample: let out = job.wait().output;",
    )
    .register_into_engine(engine, |j: &mut Job| j.output());
    getter(
        "Job",
        "running_seconds",
        "f64",
        "How long the job ran, in seconds, as last read.\nExample: print(job.running_seconds);",
    )
    .register_into_engine(engine, |j: &mut Job| j.job.running_duration);
    engine.register_fn("to_string", |j: &mut Job| {
        format!("Job({} {})", j.job.id, j.job.state.name())
    });
    engine.register_fn("to_debug", |j: &mut Job| {
        format!("Job({} {})", j.job.id, j.job.state.name())
    });

    func("encode", &["account: Account", "asset: Asset", "preset: String", "Job"],
        "Encodes an asset with Media Encoder Standard (\"Adaptive Streaming\", \"H264 Multiple Bitrate 1080p\",\n\"H264 Multiple Bitrate 720p\" or a JSON ladder), waits with a progress bar, and returns the final\njob; its output asset's .ism is the primary file. A failed job is returned too: check job.state.\nExample: let job = a.encode(src, \"Adaptive Streaming\"); if job.state != \"Finished\" { throw job.errors; }")
        .register_into_engine(engine, |a: &mut Account, x: Asset, preset: &str| -> RhaiResult<Job> {
            submit(a, &x, preset, None)?.wait()
        });
    func("encode", &["account: Account", "asset: Asset", "preset: String", "output_name: String", "Job"],
        "Encodes as encode(asset, preset), naming the output asset.\nExample: let job = a.encode(src, \"Adaptive Streaming\", \"Encoded clip\");")
        .register_into_engine(engine, |a: &mut Account, x: Asset, preset: &str, out: &str| -> RhaiResult<Job> {
            submit(a, &x, preset, Some(out))?.wait()
        });
    func("submit_job", &["account: Account", "asset: Asset", "preset: String", "Job"],
        "Submits an encoding job and returns at once; see job.wait(), job.state, job.progress.\nExample: let job = a.submit_job(src, \"Adaptive Streaming\"); print(job.state);")
        .register_into_engine(engine, |a: &mut Account, x: Asset, preset: &str| submit(a, &x, preset, None));
    func("wait", &["job: Job", "Job"],
        "Waits until the job is Finished, Error or Canceled (progress bar on a terminal).\nExample: let done = job.wait(); print(done.state);")
        .register_into_engine(engine, |j: &mut Job| j.wait());
    func(
        "jobs",
        &["account: Account", "Array"],
        "Every job of the account.\nExample: for j in a.jobs() { print(`${j.name} ${j.state}`); }",
    )
    .register_into_engine(engine, |a: &mut Account| -> RhaiResult<Array> {
        let m = a.media()?;
        let all = a.call(m.jobs())?;
        Ok(all
            .into_iter()
            .map(|job| {
                Dynamic::from(Job {
                    account: a.clone(),
                    job,
                })
            })
            .collect())
    });
    func("cancel_job", &["account: Account", "job: Job", "()"],
        "Cancels a queued or running job; it ends Canceled with no output files registered.\nExample: a.cancel_job(job);")
        .register_into_engine(engine, |a: &mut Account, j: Job| -> RhaiResult<()> {
            let m = a.media()?;
            a.call(m.cancel_job(&j.job.id))
        });
}
