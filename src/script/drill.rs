//! Drills in scripts: `local_env()` to stop and start a datacenter of the local environment,
//! `play(url, seconds)` / `start_play(url, seconds)` to watch a stream as a player does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, Map};

use super::errors::{host_error, IntoScript, RhaiResult};
use super::host::Bridge;
use crate::localenv::LocalEnv as Environment;
use crate::player::{play, PlayReport};

/// The local environment as a drill drives it.
#[derive(Clone)]
pub struct LocalEnv {
    env: Environment,
    bridge: Bridge,
}

type Running = tokio::task::JoinHandle<Result<PlayReport, crate::player::PlayError>>;

/// A player running in the background.
#[derive(Clone)]
pub struct Player {
    task: Arc<Mutex<Option<Running>>>,
    started: Instant,
    bridge: Bridge,
}

fn report_map(r: &PlayReport) -> Map {
    let mut m = Map::new();
    m.insert("requests".into(), (r.requests as i64).into());
    m.insert("failed".into(), (r.failed as i64).into());
    m.insert("seconds".into(), r.seconds.into());
    let served: Map = r
        .served_by
        .iter()
        .map(|(k, v)| (k.as_str().into(), Dynamic::from(*v as i64)))
        .collect();
    m.insert("served_by".into(), served.into());
    let switches: Array = r
        .switches
        .iter()
        .map(|(at, from, to)| {
            let mut s = Map::new();
            s.insert("at".into(), (*at).into());
            s.insert("from".into(), from.clone().into());
            s.insert("to".into(), to.clone().into());
            s.into()
        })
        .collect();
    m.insert("switches".into(), switches.into());
    let outages: Array = r
        .outages
        .iter()
        .map(|(from, to)| {
            let mut o = Map::new();
            o.insert("from".into(), (*from).into());
            o.insert("to".into(), to.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
            o.into()
        })
        .collect();
    m.insert("outages".into(), outages.into());
    m.insert("worst_ms".into(), r.worst_ms.into());
    m.insert("stall_ms".into(), r.stall_ms.into());
    let slow: Array = r
        .slow
        .iter()
        .map(|(at, ms, failed)| {
            let mut s = Map::new();
            s.insert("at".into(), (*at).into());
            s.insert("ms".into(), (*ms).into());
            s.insert("failed".into(), (*failed).into());
            s.into()
        })
        .collect();
    m.insert("slow".into(), slow.into());
    m.insert(
        "errors".into(),
        r.errors
            .iter()
            .map(|e| Dynamic::from(e.clone()))
            .collect::<Array>()
            .into(),
    );
    m
}

/// `#{ storage: "down", origin: "503", latency_ms: 2000 }` as faults; unknown keys and modes
/// are errors naming what is allowed.
fn parse_faults(m: &Map) -> RhaiResult<crate::faults::DatacenterFaults> {
    let invalid = |msg: String| host_error("invalid", msg, None, None);
    let mut f = crate::faults::DatacenterFaults {
        latency_ms: 2000,
        ..Default::default()
    };
    for (k, v) in m {
        match k.as_str() {
            "storage" | "origin" => {
                let mode: crate::faults::Mode = v.to_string().parse().map_err(invalid)?;
                if k == "storage" {
                    f.storage = mode;
                } else {
                    f.origin = mode;
                }
            }
            "latency_ms" | "cut_bytes" => {
                let n = v
                    .as_int()
                    .ok()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| invalid(format!("{k} must be a whole number, not {v}")))?;
                if k == "latency_ms" {
                    f.latency_ms = n;
                } else {
                    f.cut_bytes = n;
                }
            }
            other => {
                return Err(invalid(format!(
                    "'{other}' is not a fault; use storage, origin, latency_ms and cut_bytes"
                )))
            }
        }
    }
    Ok(f)
}

const GAP: Duration = Duration::from_millis(20);

fn player_error(e: impl std::fmt::Display) -> Box<rhai::EvalAltResult> {
    host_error("play", e.to_string(), None, None)
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<LocalEnv>("LocalEnv");
    engine.register_type_with_name::<Player>("Player");
    engine.register_global_module(rhai::exported_module!(api).into());
}

impl LocalEnv {
    fn running(&self) -> RhaiResult<crate::localenv::LocalState> {
        self.env.running().script()?.ok_or_else(|| {
            host_error(
                "local_env",
                "the local environment is not running",
                Some("run this playbook without an accounts file, or start it with `amsplay local up`".into()),
                None,
            )
        })
    }
}

/// Drills: the local environment's datacenters and players, as playbooks drive them.
#[rhai::plugin::export_module]
mod api {
    use super::super::host::host;
    use super::*;
    use super::{Map, RhaiResult};
    use rhai::plugin::*;

    /// The running local environment, for drills: env.stop("dc-a"), env.start("dc-a"),
    /// env.front (the front door's URL), env.origin("dc-b").
    /// Example: let env = local_env(); env.stop("dc-a");
    #[rhai_fn(return_raw)]
    pub fn local_env(ctx: NativeCallContext) -> RhaiResult<LocalEnv> {
        let handle = LocalEnv {
            env: Environment::default_location(),
            bridge: host(&ctx)?.bridge().clone(),
        };
        handle.running()?;
        Ok(handle)
    }

    /// The local environment's front door URL (players go there; it fails over between
    /// datacenters).
    /// Example: print(local_env().front);
    #[rhai_fn(get = "front", pure, return_raw)]
    pub fn front(env: &mut LocalEnv) -> RhaiResult<String> {
        env.running()?.front_url().ok_or_else(|| {
            host_error(
                "local_env",
                "the local environment has no front door",
                None,
                None,
            )
        })
    }

    /// The streaming origin (emulator) URL of a datacenter of the local environment.
    /// Example: print(local_env().origin("dc-b"));
    #[rhai_fn(pure, return_raw)]
    pub fn origin(env: &mut LocalEnv, datacenter: &str) -> RhaiResult<String> {
        env.running()?.origin_url(datacenter).ok_or_else(|| {
            host_error(
                "local_env",
                format!("no datacenter '{datacenter}'; the local environment has dc-a and dc-b"),
                None,
                None,
            )
        })
    }

    /// Breaks a datacenter's paths as real outages do, until env.heal(datacenter). Keys:
    /// storage (its emulator's and origin's path to storage) and origin (the path of players
    /// and the front door to its origin), each "ok", "down" (refused), "hang" (never
    /// answered), "slow" (latency_ms per request), "503" or "cut" (each connection cut after
    /// cut_bytes of answer, 64 KiB); latency_ms (2000).
    /// Example: env.fail("dc-a", #{ storage: "down" }); sleep(5); env.heal("dc-a");
    #[rhai_fn(pure, return_raw)]
    pub fn fail(env: &mut LocalEnv, datacenter: &str, faults: Map) -> RhaiResult<()> {
        let faults = parse_faults(&faults)?;
        env.bridge.call(env.env.fail(datacenter, faults))
    }

    /// Puts a datacenter's paths right again after env.fail.
    /// Example: local_env().heal("dc-a");
    #[rhai_fn(pure, return_raw)]
    pub fn heal(env: &mut LocalEnv, datacenter: &str) -> RhaiResult<()> {
        env.bridge.call(env.env.heal(datacenter))
    }

    /// Takes a whole datacenter down, as an outage would: its emulator (API and streaming
    /// origin) stops, finishing the answers under way, then its paths to storage and to its
    /// origin refuse connections.
    /// Example: local_env().stop("dc-a");
    #[rhai_fn(pure, return_raw)]
    pub fn stop(env: &mut LocalEnv, datacenter: &str) -> RhaiResult<()> {
        env.bridge.call(env.env.stop_datacenter(datacenter))
    }

    /// Brings a stopped datacenter back (same ports, same data) and heals its paths.
    /// Example: local_env().start("dc-a");
    #[rhai_fn(pure, return_raw)]
    pub fn start(env: &mut LocalEnv, datacenter: &str) -> RhaiResult<()> {
        env.bridge.call(env.env.start_datacenter(datacenter))
    }

    /// Starts playing an HLS stream in the background for `seconds` (master playlist, a
    /// variant, then its segments round and round); see player.wait() and player.elapsed.
    /// Example: let p = start_play(`${env.front}/${path}`, 10.0); sleep(2); env.stop("dc-a"); let r = p.wait();
    #[rhai_fn(return_raw)]
    pub fn start_play(ctx: NativeCallContext, url: &str, seconds: f64) -> RhaiResult<Player> {
        let url = url.to_string();
        let bridge = host(&ctx)?.bridge().clone();
        let task = bridge.spawn(async move { play(&url, seconds, GAP).await });
        Ok(Player {
            task: Arc::new(Mutex::new(Some(task))),
            started: Instant::now(),
            bridge,
        })
    }

    /// Seconds since the player started.
    /// Example: while p.elapsed < 3.0 { sleep(0.1); }
    #[rhai_fn(get = "elapsed", pure)]
    pub fn elapsed(player: &mut Player) -> f64 {
        player.started.elapsed().as_secs_f64()
    }

    /// Waits for a player to finish; returns #{requests, failed, seconds, served_by,
    /// switches, outages, errors, worst_ms, stall_ms, slow}.
    /// Example: let r = p.wait(); print(`${r.failed} of ${r.requests} failed`);
    #[rhai_fn(return_raw)]
    pub fn wait(player: &mut Player) -> RhaiResult<Map> {
        let task = player
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| player_error("this player was already waited for"))?;
        let report = player
            .bridge
            .wait(task)?
            .map_err(player_error)?
            .map_err(player_error)?;
        Ok(report_map(&report))
    }

    /// Plays an HLS stream for `seconds` as a player does and returns what it saw:
    /// #{requests, failed, seconds, served_by, switches, outages, errors, worst_ms, stall_ms,
    /// slow}.
    /// Example: let r = play(`${local_env().front}/${guid}/clip.ism/manifest(format=m3u8-aapl)`, 5.0);
    #[rhai_fn(name = "play", return_raw)]
    pub fn play_for(ctx: NativeCallContext, url: &str, seconds: f64) -> RhaiResult<Map> {
        let report = host(&ctx)?
            .bridge()
            .wait(play(url, seconds, GAP))?
            .map_err(player_error)?;
        Ok(report_map(&report))
    }
}
