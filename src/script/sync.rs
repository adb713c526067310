//! `sync(a, b, #{…})`: continuous replication in playbooks (the library is `crate::sync`; the
//! `amsplay sync` command calls [`run`] too).

use std::time::Duration;

use rhai::{Array, Dynamic, Engine, Map};

use super::account::Account;
use super::errors::{invalid, RhaiResult};
use crate::replicate::Side;
use crate::sync::{State, SyncOptions, SyncState, Syncer};

/// How long `run` goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until stopped (Ctrl-C).
    Stopped,
    /// This many passes.
    Passes(u64),
    /// Until a pass leaves every asset identical (or `max` passes).
    Settled { max: u64 },
}

/// Runs passes from A to B, printing each change (unless `quiet`); returns the last state.
pub fn run(
    a: &Account,
    b: &Account,
    options: SyncOptions,
    until: Until,
    quiet: bool,
) -> RhaiResult<SyncState> {
    let (ma, mb) = (a.media()?, b.media()?);
    let (sa, sb) = (
        Side {
            media: ma,
            storage: &a.storage,
        },
        Side {
            media: mb,
            storage: &b.storage,
        },
    );
    let mut syncer = Syncer::new(options);
    let mut n = 0u64;
    loop {
        let pass = a.bridge.wait(syncer.pass(&sa, &sb))?;
        n += 1;
        if !quiet {
            for (name, from, to) in &pass.changes {
                match from {
                    Some(f) => println!("sync: {name}: {} -> {}", f.as_str(), to.as_str()),
                    None => println!("sync: {name}: {}", to.as_str()),
                }
            }
            for e in &pass.errors {
                println!("sync: retrying next pass: {e}");
            }
        }
        let done = match until {
            Until::Stopped => false,
            Until::Passes(p) => n >= p,
            Until::Settled { max } => syncer.state.settled() || n >= max,
        };
        if done {
            return Ok(syncer.state);
        }
        // Quicker for a while after a job in A ended (see Syncer::next_wait).
        let wait = syncer.next_wait();
        a.bridge.wait(async { tokio::time::sleep(wait).await })?;
    }
}

/// The state as playbooks read it.
pub fn state_map(s: &SyncState) -> Map {
    let mut m = Map::new();
    m.insert("passes".into(), (s.passes as i64).into());
    for state in [
        State::OnlyInA,
        State::Copying,
        State::Identical,
        State::Differs,
        State::DeletedInA,
        State::Deleted,
    ] {
        m.insert(state.as_str().into(), (s.count(state) as i64).into());
    }
    m.insert("settled".into(), s.settled().into());
    m.insert(
        "a_error".into(),
        s.a_error
            .clone()
            .map(Dynamic::from)
            .unwrap_or(Dynamic::UNIT),
    );
    let assets: Array = s
        .assets
        .values()
        .map(|x| {
            let mut a = Map::new();
            a.insert("asset_id".into(), x.asset_id.clone().into());
            a.insert("name".into(), x.name.clone().into());
            a.insert("locator_id".into(), x.locator_id.clone().into());
            a.insert("state".into(), x.state.as_str().into());
            a.insert("since".into(), x.since.clone().into());
            a.insert(
                "verified".into(),
                x.verified
                    .clone()
                    .map(Dynamic::from)
                    .unwrap_or(Dynamic::UNIT),
            );
            a.insert("copied".into(), (x.copied as i64).into());
            a.insert(
                "error".into(),
                x.error.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT),
            );
            a.into()
        })
        .collect();
    m.insert("assets".into(), assets.into());
    m
}

fn number(v: &Dynamic, what: &str) -> RhaiResult<f64> {
    v.as_float()
        .or_else(|_| v.as_int().map(|i| i as f64))
        .map_err(|_| {
            invalid(format!(
                "sync option {what} must be a number, not {}",
                v.type_name()
            ))
        })
}

/// Options from a playbook's map.
fn options(opts: &Map) -> RhaiResult<(SyncOptions, Until, bool)> {
    let mut o = SyncOptions::default();
    let mut until = Until::Stopped;
    let mut quiet = false;
    for (k, v) in opts {
        match k.as_str() {
            "interval" => o.interval = Duration::from_secs_f64(number(v, "interval")?.max(0.0)),
            "verify_every" => {
                o.verify_every = Duration::from_secs_f64(number(v, "verify_every")?.max(0.0))
            }
            "passes" => until = Until::Passes(number(v, "passes")?.max(1.0) as u64),
            "until_settled" => {
                if v.as_bool().unwrap_or(false) {
                    until = Until::Settled { max: 1000 };
                }
            }
            "delete" => o.delete = v.as_bool().unwrap_or(false),
            "quiet" => quiet = v.as_bool().unwrap_or(false),
            "state_file" => o.state_file = Some(v.to_string().into()),
            other => {
                return Err(invalid(format!(
                    "sync has no option '{other}'; known: interval, passes, until_settled, verify_every, delete, quiet, state_file"
                )))
            }
        }
    }
    Ok((o, until, quiet))
}

pub fn register(engine: &mut Engine) {
    engine.register_global_module(rhai::exported_module!(api).into());
}

/// Continuous replication as playbooks call it.
#[rhai::plugin::export_module]
mod api {
    use super::{options, run, state_map, Account, Map, RhaiResult};
    #[allow(unused_imports)]
    use rhai::plugin::*;

    /// Keeps B in step with A: every asset of A with an origin locator and a primary .ism is
    /// replicated (same locator Id) and kept verified (MD5); assets changed in A are checked
    /// again, assets deleted in A reported (deleted in B with delete: true). Passes every
    /// `interval` seconds until stopped, `passes` passes, or until_settled (every asset
    /// identical). Either datacenter down: it retries next pass. Returns #{passes, identical,
    /// only_in_a, copying, differs, deleted_in_a, settled, a_error, assets: [#{name, state,
    /// locator_id, verified, copied, error}]}.
    /// Example: let s = sync(a, b, #{ interval: 5.0, until_settled: true }); print(s.identical);
    #[rhai_fn(return_raw)]
    pub fn sync(a: Account, b: Account, opts: Map) -> RhaiResult<Map> {
        let (o, until, quiet) = options(&opts)?;
        Ok(state_map(&run(&a, &b, o, until, quiet)?))
    }
}
