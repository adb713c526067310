//! Drills in scripts: `local_env()` to stop and start a datacenter of the local environment,
//! `play(url, seconds)` / `start_play(url, seconds)` to watch a stream as a player does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, Map};

use super::errors::{host_error, IntoScript, RhaiResult};
use super::host::{func, getter, Bridge, Host};
use crate::localenv::LocalEnv;
use crate::player::{play, PlayReport};

/// The local environment as a drill drives it.
#[derive(Clone)]
pub struct LocalEnvHandle {
    env: LocalEnv,
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

pub fn register(engine: &mut Engine, host: &Arc<Host>) {
    engine.register_type_with_name::<LocalEnvHandle>("LocalEnv");
    engine.register_type_with_name::<Player>("Player");

    let h = host.clone();
    func("local_env", &["LocalEnv"],
        "The running local environment, for drills: env.stop(\"dc-a\"), env.start(\"dc-a\"), env.front (the\nfront door's URL), env.origin(\"dc-b\").\nExample: let env = local_env(); env.stop(\"dc-a\");")
        .register_into_engine(engine, move || -> RhaiResult<LocalEnvHandle> {
            let env = LocalEnv::default_location();
            env.running().script()?.ok_or_else(|| {
                host_error("local_env", "the local environment is not running", Some("run this playbook without an accounts file, or start it with `amsplay local up`".into()), None)
            })?;
            Ok(LocalEnvHandle { env, bridge: h.bridge().clone() })
        });
    getter("LocalEnv", "front", "String", "The local environment's front door URL (players go there; it fails over between datacenters).\nExample: print(local_env().front);").register_into_engine(engine, |e: &mut LocalEnvHandle| -> RhaiResult<String> {
        let state = e.env.running().script()?.ok_or_else(|| {
            host_error(
                "local_env",
                "the local environment is not running",
                None,
                None,
            )
        })?;
        state.front_url().ok_or_else(|| {
            host_error(
                "local_env",
                "the local environment has no front door",
                None,
                None,
            )
        })
    });
    func("origin", &["env: LocalEnv", "datacenter: String", "String"],
        "The streaming origin (emulator) URL of a datacenter of the local environment.\nExample: print(local_env().origin(\"dc-b\"));")
        .register_into_engine(engine, |e: &mut LocalEnvHandle, dc: &str| -> RhaiResult<String> {
            let state = e.env.running().script()?.ok_or_else(|| host_error("local_env", "the local environment is not running", None, None))?;
            state
                .origin_url(dc)
                .ok_or_else(|| host_error("local_env", format!("no datacenter '{dc}'; the local environment has dc-a and dc-b"), None, None))
        });
    func("fail", &["env: LocalEnv", "datacenter: String", "faults: Map", "()"],
        "Breaks a datacenter's paths as real outages do, until env.heal(datacenter). Keys: storage (its\nemulator's and origin's path to storage) and origin (the path of players and the front door to\nits origin), each \"ok\", \"down\" (refused), \"hang\" (never answered), \"slow\" (latency_ms per\nrequest), \"503\" or \"cut\" (each connection cut after cut_bytes of answer, 64 KiB); latency_ms (2000).\nExample: env.fail(\"dc-a\", #{ storage: \"down\" }); sleep(5); env.heal(\"dc-a\");")
        .register_into_engine(engine, |e: &mut LocalEnvHandle, dc: &str, faults: Map| -> RhaiResult<()> {
            let faults = parse_faults(&faults)?;
            e.bridge.call(e.env.fail(dc, faults))
        });
    func("heal", &["env: LocalEnv", "datacenter: String", "()"],
        "Puts a datacenter's paths right again after env.fail.\nExample: local_env().heal(\"dc-a\");")
        .register_into_engine(engine, |e: &mut LocalEnvHandle, dc: &str| -> RhaiResult<()> {
            e.bridge.call(e.env.heal(dc))
        });
    func("stop", &["env: LocalEnv", "datacenter: String", "()"],
        "Takes a whole datacenter down, as an outage would: its emulator (API and streaming origin)\nstops, and its paths to storage and to its origin refuse connections.\nExample: local_env().stop(\"dc-a\");")
        .register_into_engine(engine, |e: &mut LocalEnvHandle, dc: &str| -> RhaiResult<()> {
            e.bridge.call(e.env.stop_datacenter(dc))
        });
    func("start", &["env: LocalEnv", "datacenter: String", "()"],
        "Brings a stopped datacenter back (same ports, same data) and heals its paths.\nExample: local_env().start(\"dc-a\");")
        .register_into_engine(engine, |e: &mut LocalEnvHandle, dc: &str| -> RhaiResult<()> {
            e.bridge.call(e.env.start_datacenter(dc))
        });

    let h = host.clone();
    func("start_play", &["url: String", "seconds: f64", "Player"],
        "Starts playing an HLS stream in the background for `seconds` (master playlist, a variant, then\nits segments round and round); see player.wait() and player.elapsed.\nExample: let p = start_play(`${env.front}/${path}`, 10.0); sleep(2); env.stop(\"dc-a\"); let r = p.wait();")
        .register_into_engine(engine, move |url: &str, seconds: f64| -> Player {
            let url = url.to_string();
            let bridge = h.bridge().clone();
            let task = bridge.spawn(async move { play(&url, seconds, GAP).await });
            Player { task: Arc::new(Mutex::new(Some(task))), started: Instant::now(), bridge }
        });
    getter(
        "Player",
        "elapsed",
        "f64",
        "Seconds since the player started.\nExample: while p.elapsed < 3.0 { sleep(0.1); }",
    )
    .register_into_engine(engine, |p: &mut Player| p.started.elapsed().as_secs_f64());
    func("wait", &["player: Player", "Map"],
        "Waits for a player to finish; returns #{requests, failed, seconds, served_by, switches, outages, errors, worst_ms, stall_ms, slow}.\nExample: let r = p.wait(); print(`${r.failed} of ${r.requests} failed`);")
        .register_into_engine(engine, |p: &mut Player| -> RhaiResult<Map> {
            let task = p.task.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or_else(|| player_error("this player was already waited for"))?;
            let report = p.bridge.wait(task)?.map_err(player_error)?.map_err(player_error)?;
            Ok(report_map(&report))
        });
    let h = host.clone();
    func("play", &["url: String", "seconds: f64", "Map"],
        "Plays an HLS stream for `seconds` as a player does and returns what it saw:\n#{requests, failed, seconds, served_by, switches, outages, errors, worst_ms, stall_ms, slow}.\nExample: let r = play(`${local_env().front}/${guid}/clip.ism/manifest(format=m3u8-aapl)`, 5.0);")
        .register_into_engine(engine, move |url: &str, seconds: f64| -> RhaiResult<Map> {
            let report = h.bridge().wait(play(url, seconds, GAP))?.map_err(player_error)?;
            Ok(report_map(&report))
        });
}
