//! The command line: every face of amsplay is a library function called from here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::AccountsFile;
use crate::localenv::{LocalEnv, LocalSession};
use crate::script::{self, build_engine, runner::RunError, Host};

const ABOUT: &str = "Failover playbooks for video-on-demand streaming.

amsplay runs Rhai playbooks against Azure Blob Storage and Media Services v2 accounts, and
serves what a failover needs: `serve`, a Media Services v2 emulator with its streaming origin
(Smooth, HLS and DASH from the encoded MP4s), and `front`, a front door that moves players to
the other datacenter's origin (or writes the same edge as an nginx configuration). With no
accounts file it brings up a local two-datacenter environment (Azurite with accounts dca and
dcb, an emulator each, and a front door, named dc-a and dc-b) so playbooks run on a fresh
machine as they are.";

const AFTER: &str = "Examples:
  amsplay run scripts/replicate_storage.rhai      run a playbook on the local environment
  amsplay --accounts prod.toml run my.rhai a b    run on real accounts, with ARGS = [\"a\", \"b\"]
  amsplay repl                                    explore interactively; try help()
  amsplay local up && amsplay local status        keep the local environment running
  amsplay run scripts/drill.rhai datacenter 10    stop datacenter A under a player, count errors

Accounts file: --accounts FILE, or $AMSPLAY_ACCOUNTS, or ./amsplay.toml (see amsplay.example.toml).
Logs go to stderr; set RUST_LOG=amsplay=debug for more.";

#[derive(Debug, Parser)]
#[command(name = "amsplay", version, about = ABOUT, after_help = AFTER)]
pub struct Cli {
    /// Accounts file naming the datacenters (default: $AMSPLAY_ACCOUNTS, then ./amsplay.toml,
    /// then the local environment).
    #[arg(long, global = true, value_name = "FILE")]
    pub accounts: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a playbook. Errors print as file:line:col with the source line, and exit 1.
    Run {
        /// Stop the playbook after this many operations (a runaway loop in automation ends
        /// with an error at the line it was running, instead of never).
        #[arg(long, value_name = "N")]
        max_operations: Option<u64>,
        /// Cap the memory the playbook may use, in MiB: data that keeps growing ends with an
        /// error at the line that grew it, and an allocation that fails anyway ends the run
        /// with one clear line (exit 71) instead of an abort.
        #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(16..=1 << 24))]
        max_memory: Option<u64>,
        /// The playbook (.rhai).
        playbook: PathBuf,
        /// Arguments the playbook sees as the array ARGS.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Compile playbooks without running them (syntax check).
    Check {
        #[arg(required = true)]
        playbooks: Vec<PathBuf>,
    },
    /// Interactive shell on the same engine: history, multi-line input, Tab completion, help().
    Repl,
    /// The operations console: a web page with both datacenters side by side (assets, files,
    /// locators with their Smooth/HLS/DASH URLs, jobs with live progress), the replication
    /// from A to B with a Replicate action, the origins' health as the front door sees them, a
    /// player through the front door showing which datacenter serves each segment, and the
    /// drill (stop, hang or break a datacenter's storage, heal). Updates live.
    ///
    /// `amsplay local up` starts one and prints its URL. On a loopback address (the default)
    /// no token is needed; on any other address --token (or AMSPLAY_CONSOLE_TOKEN) is
    /// required, and the printed URL carries it. Keys are never shown.
    /// Prints "listening on http://ADDR" once it accepts requests.
    Console {
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Datacenter A (replicated from).
        #[arg(long, default_value = "dc-a")]
        from: String,
        /// Datacenter B.
        #[arg(long, default_value = "dc-b")]
        to: String,
        /// The front door, for its health view and the player [default: the local
        /// environment's].
        #[arg(long, value_name = "URL")]
        front: Option<url::Url>,
        /// The fault points' control address, for the drill [default: the local
        /// environment's].
        #[arg(long, value_name = "ADDR")]
        faults: Option<std::net::SocketAddr>,
        /// A token every request must carry (required off loopback).
        #[arg(long, env = "AMSPLAY_CONSOLE_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Keep datacenter B in step with A, continuously (the playbook function sync()).
    ///
    /// Every asset of --from that has an OnDemandOrigin locator and a primary .ism is
    /// replicated to --to with the same locator Id (only blobs B lacks are copied) and kept
    /// verified: an asset changed in A, or not checked for --verify-every seconds, has its
    /// blobs compared by MD5 again. An asset deleted in A is reported (its replica deleted
    /// only with --delete). Either datacenter down: the pass says why and the next one
    /// retries. Prints each change as it happens; the state is written to --state after every
    /// pass. With no accounts file it syncs the local environment's dc-a to dc-b.
    ///
    /// Examples: amsplay sync                 (until Ctrl-C, a pass every 5 s)
    ///           amsplay sync --until-settled  (exit 0 once everything is identical)
    Sync {
        /// The datacenter replicated from.
        #[arg(long, default_value = "dc-a")]
        from: String,
        /// The datacenter kept in step.
        #[arg(long, default_value = "dc-b")]
        to: String,
        /// Seconds between passes (at most 1 while a job runs in A, 0.1 for 15 s after one
        /// ended: its output is about to be published).
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// Seconds after which an identical asset is verified again.
        #[arg(long, default_value_t = 300.0)]
        verify_every: f64,
        /// One pass, then exit: 0 when every asset is identical, 1 otherwise.
        #[arg(long, conflicts_with = "until_settled")]
        once: bool,
        /// Passes until every asset is identical (exit 0), at most 1000.
        #[arg(long)]
        until_settled: bool,
        /// Delete B's replica of an asset deleted in A.
        #[arg(long)]
        delete: bool,
        /// The state file (JSON), read at start and written after every pass
        /// [default: .amsplay/sync-FROM-TO.json].
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Print the final state as JSON (with --once or --until-settled).
        #[arg(long)]
        json: bool,
    },
    /// The local two-datacenter environment (Azurite with accounts dca and dcb).
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
    /// Serve one Media Services v2 account (REST API, tokens) over a Blob Storage account.
    ///
    /// Prints "listening on http://ADDR" once it accepts requests. Tokens: POST
    /// {url}/v2/OAuth2-13 (ACS) or {url}/{tenant}/oauth2/token (Azure AD); API: {url}/api/.
    Serve {
        /// Media Services account name (the token endpoint's client_id).
        #[arg(long)]
        account: String,
        /// Account key (client_secret); or set $AMSPLAY_MEDIA_KEY.
        #[arg(long, env = "AMSPLAY_MEDIA_KEY", hide_env_values = true)]
        key: String,
        /// Storage for asset containers: a datacenter of the accounts file, or the name of an
        /// environment variable holding a connection string.
        #[arg(long)]
        storage: String,
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Folder for the account's state (SQLite).
        #[arg(long)]
        data_dir: PathBuf,
        /// Base URL of the streaming origin for OnDemandOrigin locators (default: this server).
        #[arg(long)]
        streaming_base: Option<String>,
        /// This server's URL as clients reach it, for redirects, Location headers and OData
        /// metadata (default: http://LISTEN-ADDRESS). The request's Host header is never used.
        #[arg(long)]
        public_url: Option<String>,
        /// Token lifetime in seconds (for testing expiry).
        #[arg(long, hide = true)]
        token_lifetime: Option<i64>,
        /// An Azure AD application id (client_id) that stands for this account at
        /// /{tenant}/oauth2/token, as service principals did (the account name works too).
        #[arg(long, value_name = "GUID")]
        aad_client_id: Option<String>,
        /// ffmpeg to encode with (default: ffmpeg on PATH; ffprobe is looked for beside it).
        #[arg(long)]
        ffmpeg: Option<PathBuf>,
        /// Encoding jobs run at once.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Reach storage through this host:port (a proxy, a private endpoint, a fault point);
        /// URLs handed to clients keep the account's own endpoint.
        #[arg(long, value_name = "HOST:PORT")]
        storage_via: Option<String>,
        /// Longest wait for one storage read of the streaming origin; past it the origin
        /// answers 503 with Retry-After, so an edge fails over instead of waiting.
        #[arg(long, default_value_t = 3000)]
        storage_timeout_ms: u64,
        /// Memory of the streaming origin's fragment cache, in MiB, fractions allowed (the
        /// bodies it packaged most recently; its presentation indexes get a quarter of it).
        /// `GET /health` shows what it holds.
        #[arg(long, default_value = "256", value_parser = cache_mebibytes, value_name = "MiB")]
        origin_cache_mb: usize,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Fault points of the local environment (started by `amsplay local up`).
    #[command(hide = true)]
    Faults {
        /// The fault points and the control address, as JSON (see faults.rs).
        #[arg(long)]
        config: PathBuf,
    },
    /// Failover reverse proxy in front of origins, in priority order.
    ///
    /// Probes each origin's --probe-path every --probe-ms; an origin is down after --fall failed
    /// probes and up after --rise good ones. A streaming request that fails on an origin (connect
    /// error, timeout, 5xx) ejects it for --eject-ms and is retried on the next before the client
    /// sees anything; a body cut mid-way is resumed from the next origin with a Range request.
    /// Only GET and HEAD are proxied; CORS preflights are answered here; credentials are never
    /// forwarded. Bodies the origins mark `public, max-age` are kept in memory (--cache-mb) and
    /// answered from there, also while every origin is down. GET /status shows health.
    /// Prints "listening on http://ADDR" once it accepts requests.
    ///
    /// With --emit nginx it prints the same edge as an nginx configuration instead (caching,
    /// failover to the next origin on errors, timeouts and 502/503/504); see deploy/nginx/.
    #[command(after_help = "Examples:
  amsplay front --origin http://dc-a:7001 --origin http://dc-b:7002 --listen 0.0.0.0:8080
  amsplay front --emit nginx --origin http://dc-a:7001 --origin http://dc-b:7002 \\
      --listen 0.0.0.0:8080 --nginx-dir /var/cache/amsplay-nginx > /etc/nginx/amsplay.conf")]
    Front {
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// An origin, e.g. http://127.0.0.1:7001 (repeat; the first is the primary).
        #[arg(long = "origin", required = true)]
        origins: Vec<url::Url>,
        /// Milliseconds between health probes.
        #[arg(long, default_value_t = 500)]
        probe_ms: u64,
        /// Failed probes in a row before an origin is down.
        #[arg(long, default_value_t = 2)]
        fall: u32,
        /// Good probes in a row before it is up again.
        #[arg(long, default_value_t = 2)]
        rise: u32,
        /// Milliseconds to wait for an origin's response headers (connect included), or for
        /// the next chunk of its body, before trying the next origin.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
        /// The path probed on each origin: 2xx or 3xx in time is healthy (an amsplay origin's
        /// /health answers 200 only when its database and storage answer).
        #[arg(long, default_value = "/health")]
        probe_path: String,
        /// Milliseconds an origin stays out after it failed a streaming request (timeout,
        /// reset, 5xx), even while its probes pass.
        #[arg(long, default_value_t = 3000)]
        eject_ms: u64,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print a configuration for another edge instead of serving (nginx).
        #[arg(long, value_enum)]
        emit: Option<Edge>,
        /// With --emit nginx: the folder for nginx's pid file, temporary files and cache.
        #[arg(long, default_value = "/var/cache/amsplay-nginx")]
        nginx_dir: PathBuf,
        /// Memory for the front door's cache, in MiB (fractions allowed): bodies the origins
        /// mark `public, max-age` (fragments, manifests) answered from memory, also while
        /// every origin is down.
        #[arg(long, default_value = "256", value_parser = cache_mebibytes, value_name = "MiB")]
        cache_mb: usize,
        /// No cache: every request reaches an origin (for drills), in the front door and in
        /// the configuration --emit nginx writes.
        #[arg(long)]
        no_cache: bool,
    },
    /// Print the playbook API reference (Markdown with --markdown).
    Doc {
        #[arg(long)]
        markdown: bool,
    },
}

/// Edges `amsplay front --emit` writes configurations for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Edge {
    Nginx,
}

/// What one client connection may cost a server.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Longest wait for a request's headers (also closes idle kept-alive connections).
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Connections open at once (default: 1024, or half the file limit when lower).
    #[arg(long)]
    max_connections: Option<usize>,
}

impl LimitArgs {
    fn limits(&self) -> crate::server::Limits {
        let d = crate::server::Limits::default();
        crate::server::Limits {
            header_read: std::time::Duration::from_millis(self.header_timeout_ms.max(100)),
            max_connections: self.max_connections.unwrap_or(d.max_connections).max(1),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum LocalAction {
    /// Start it in the background (data under .amsplay/local) and write its accounts file.
    Up,
    /// Stop it; the data stays.
    Down,
    /// Show endpoints, account names and keys, for pointing other tools at it.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Break a datacenter's paths, as real outages do (`heal` puts them right).
    ///
    /// Modes: ok, down (connections refused), hang (accepted, never answered), slow (each
    /// request delayed by --latency-ms), 503 (origin answers Service Unavailable), cut (each
    /// connection cut after --cut-bytes of answer, as a datacenter dying mid-response).
    /// Example: amsplay local fail dc-a --storage down
    Fail {
        /// dc-a or dc-b.
        datacenter: String,
        /// The datacenter's path from its emulator and origin to storage.
        #[arg(long, default_value = "ok")]
        storage: crate::faults::Mode,
        /// The path from players and the front door to its origin.
        #[arg(long, default_value = "ok")]
        origin: crate::faults::Mode,
        /// Delay of the slow mode.
        #[arg(long, default_value_t = 2000)]
        latency_ms: u64,
        /// Bytes of answer each connection passes in the cut mode.
        #[arg(long, default_value_t = 65536)]
        cut_bytes: u64,
    },
    /// Put a datacenter's paths right again.
    Heal { datacenter: String },
}

/// Sets up logging to stderr, filtered by RUST_LOG (default: warnings, and amsplay's info).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,amsplay=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// `--origin-cache-mb`: MiB, fractions allowed, as bytes (64 KiB to 64 GiB).
fn cache_mebibytes(s: &str) -> Result<usize, String> {
    let mib: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of MiB (for example 256 or 0.5)"))?;
    if !(1.0 / 16.0..=65536.0).contains(&mib) {
        return Err(format!("{s} MiB is outside 0.0625 (64 KiB) to 65536"));
    }
    Ok((mib * f64::from(1u32 << 20)) as usize)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("amsplay-io")
        .build()?)
}

/// Accounts for a command: the accounts file if there is one, else the local environment.
fn accounts(
    rt: &tokio::runtime::Runtime,
    explicit: Option<&std::path::Path>,
) -> anyhow::Result<(AccountsFile, String, Option<LocalSession>)> {
    match AccountsFile::locate(explicit) {
        Some(path) => {
            let file = AccountsFile::load(&path)?;
            Ok((file, path.display().to_string(), None))
        }
        None => {
            let env = LocalEnv::default_location();
            let session = rt.block_on(env.session())?;
            // The environment runs in its own process groups, so Ctrl-C does not reach it; the
            // session takes it down when dropped, after a stop has ended the script.
            Ok((
                session.accounts.clone(),
                format!("the local environment in {}", env.root().display()),
                Some(session),
            ))
        }
    }
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("amsplay: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    match cli.command {
        Command::Run {
            max_operations,
            max_memory,
            playbook,
            args,
        } => {
            let stop = stop_on_signals(&rt);
            let (file, origin, session) = accounts(&rt, cli.accounts.as_deref())?;
            let host = Host::new(rt.handle().clone(), stop.clone(), file, origin);
            let mut engine = build_engine(host);
            if let Some(n) = max_operations {
                engine.set_max_operations(n);
            }
            if let Some(mb) = max_memory {
                // Rhai's data limits well inside the process's own, which also holds the
                // runtime, the local environment's handles and transfer buffers.
                script::limit_data(&mut engine, (mb << 20) / 2);
                crate::memory::limit(mb << 20)
                    .map_err(|e| anyhow::anyhow!("cannot set --max-memory: {e}"))?;
            }
            let result = script::runner::run_file(&engine, &playbook, &args);
            if let Some((name, code)) = stop.requested() {
                if let Err(e) = result {
                    eprint!("{e}");
                }
                if session.as_ref().is_some_and(|s| s.owned()) {
                    eprintln!("amsplay: {name}; stopping the local environment");
                }
                drop(session);
                return Ok(ExitCode::from(code as u8));
            }
            drop(session);
            Ok(report(result))
        }
        Command::Sync {
            from,
            to,
            interval,
            verify_every,
            once,
            until_settled,
            delete,
            state,
            json,
        } => {
            use script::sync::Until;
            let stop = stop_on_signals(&rt);
            let (file, origin, session) = accounts(&rt, cli.accounts.as_deref())?;
            let host = Host::new(rt.handle().clone(), stop.clone(), file, origin);
            let state = state.unwrap_or_else(|| {
                PathBuf::from(".amsplay").join(format!("sync-{from}-{to}.json"))
            });
            if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let options = crate::sync::SyncOptions {
                interval: std::time::Duration::from_secs_f64(interval.max(0.0)),
                verify_every: std::time::Duration::from_secs_f64(verify_every.max(0.0)),
                delete,
                state_file: Some(state),
            };
            let until = if once {
                Until::Passes(1)
            } else if until_settled {
                Until::Settled { max: 1000 }
            } else {
                Until::Stopped
            };
            let result = host.account(&from).and_then(|a| {
                let b = host.account(&to)?;
                script::sync::run(&a, &b, options, until, json)
            });
            let code = match result {
                Ok(s) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&s)?);
                    } else {
                        println!(
                            "sync: {} identical, {} in A only, {} differing, {} deleted in A after {} pass(es)",
                            s.count(crate::sync::State::Identical),
                            s.count(crate::sync::State::OnlyInA) + s.count(crate::sync::State::Copying),
                            s.count(crate::sync::State::Differs),
                            s.count(crate::sync::State::DeletedInA),
                            s.passes
                        );
                    }
                    if s.settled() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => match stop.requested() {
                    Some((_, code)) => ExitCode::from(code as u8),
                    None => {
                        eprintln!("amsplay sync: {e}");
                        ExitCode::from(1)
                    }
                },
            };
            drop(session);
            Ok(code)
        }
        Command::Console {
            listen,
            from,
            to,
            front,
            faults,
            token,
        } => {
            let (file, _, session) = accounts(&rt, cli.accounts.as_deref())?;
            let local = LocalEnv::default_location().running().ok().flatten();
            let open = |name: &str| -> anyhow::Result<crate::console::Datacenter> {
                let media = file.media(name)?.ok_or_else(|| {
                    anyhow::anyhow!("datacenter '{name}' has no Media Services account; the console needs one for each side")
                })?;
                Ok(crate::console::Datacenter {
                    name: name.to_string(),
                    media: crate::ams::client::MediaClient::new(media),
                    storage: crate::storage::Storage::open(&file.storage(name)?)?,
                })
            };
            let config = crate::console::ConsoleConfig {
                a: open(&from)?,
                b: open(&to)?,
                front: front
                    .map(|u| u.as_str().trim_end_matches('/').to_string())
                    .or_else(|| local.as_ref().and_then(|s| s.front_url())),
                faults: faults.or_else(|| {
                    local
                        .as_ref()
                        .and_then(|s| s.faults.as_ref())
                        .map(|f| std::net::SocketAddr::from(([127, 0, 0, 1], f.port)))
                }),
                token: token.filter(|t| !t.is_empty()),
                refresh: std::time::Duration::from_secs(1),
            };
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
                let addr = listener.local_addr()?;
                println!("listening on http://{addr}");
                if let Some(t) = &config.token {
                    println!("open http://{addr}/?token={t}");
                }
                crate::console::serve(config, listener, shutdown_signal()).await
            })?;
            drop(session);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { playbooks } => {
            let host = Host::new(
                rt.handle().clone(),
                script::Stop::default(),
                AccountsFile::default(),
                "none",
            );
            let engine = build_engine(host);
            let mut code = ExitCode::SUCCESS;
            for p in playbooks {
                match script::runner::check_file(&engine, &p) {
                    Ok(()) => println!("{}: ok", p.display()),
                    Err(e) => code = report(Err(e)),
                }
            }
            Ok(code)
        }
        Command::Repl => {
            let stop = stop_on_signals(&rt);
            let (file, origin, session) = accounts(&rt, cli.accounts.as_deref())?;
            let names = file.known_names();
            let host = Host::new(rt.handle().clone(), stop.clone(), file, origin.clone());
            let engine = build_engine(host);
            let banner = format!(
                "amsplay {} — accounts: {names} (from {origin})",
                env!("CARGO_PKG_VERSION")
            );
            script::repl::run(&engine, &banner, &stop)?;
            drop(session);
            Ok(ExitCode::SUCCESS)
        }
        Command::Local { action } => local(&rt, action),
        Command::Front {
            listen,
            origins,
            probe_ms,
            fall,
            rise,
            timeout_ms,
            probe_path,
            eject_ms,
            limits,
            emit,
            nginx_dir,
            cache_mb,
            no_cache,
        } => {
            if let Some(Edge::Nginx) = emit {
                let edge = crate::front::nginx::NginxEdge {
                    origins,
                    listen,
                    timeout: std::time::Duration::from_millis(timeout_ms.max(1)),
                    eject_for: std::time::Duration::from_millis(eject_ms),
                    dir: nginx_dir,
                    cache: !no_cache,
                };
                print!("{}", edge.render()?);
                return Ok(ExitCode::SUCCESS);
            }
            let config = crate::front::FrontConfig {
                origins,
                probe_interval: std::time::Duration::from_millis(probe_ms.max(10)),
                probe_path,
                fall: fall.max(1),
                rise: rise.max(1),
                timeout: std::time::Duration::from_millis(timeout_ms.max(10)),
                eject_for: std::time::Duration::from_millis(eject_ms),
                cache_bytes: if no_cache { 0 } else { cache_mb },
                limits: limits.limits(),
            };
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
                println!("listening on http://{}", listener.local_addr()?);
                crate::front::serve(config, listener, shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            account,
            key,
            storage,
            listen,
            data_dir,
            streaming_base,
            public_url,
            token_lifetime,
            aad_client_id,
            ffmpeg,
            jobs,
            storage_via,
            storage_timeout_ms,
            origin_cache_mb,
            limits,
        } => {
            // The origin's cache budget bounds its memory only if freed bodies go back.
            crate::memory::return_large_blocks();
            let storage_account = resolve_storage(cli.accounts.as_deref(), &storage)?;
            let storage =
                crate::storage::Storage::open_via(&storage_account, storage_via.as_deref())?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
                let addr = listener.local_addr()?;
                let config = crate::emulator::EmulatorConfig {
                    account,
                    key,
                    data_dir,
                    streaming_base: streaming_base.unwrap_or_else(|| format!("http://{addr}")),
                    public_url: public_url
                        .map(|u| u.trim_end_matches('/').to_string())
                        .unwrap_or_else(|| format!("http://{addr}")),
                    token_lifetime,
                    aad_client_id,
                    ffmpeg,
                    job_concurrency: jobs,
                    origin: crate::origin::OriginConfig {
                        storage_timeout: std::time::Duration::from_millis(
                            storage_timeout_ms.max(10),
                        ),
                        cache_bytes: origin_cache_mb,
                        ..Default::default()
                    },
                    limits: limits.limits(),
                };
                println!("listening on http://{addr}");
                crate::emulator::serve(config, storage, listener, shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Faults { config } => {
            let text = std::fs::read_to_string(&config)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", config.display()))?;
            let config: crate::faults::FaultsConfig = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{} is not a fault points file: {e}", config.display())
            })?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.control).await?;
                println!("listening on http://{}", listener.local_addr()?);
                crate::faults::run(config, listener, shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doc { markdown } => {
            let host = Host::new(
                rt.handle().clone(),
                script::Stop::default(),
                AccountsFile::default(),
                "none",
            );
            let engine = build_engine(host);
            if markdown {
                print!("{}", script::help::markdown(&engine));
            } else {
                for d in script::help::index(&engine).values() {
                    println!(
                        "{}\n  {}\n",
                        d.signatures.join("\n"),
                        d.doc.replace('\n', "\n  ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--storage`: a datacenter of the accounts file, else an environment variable holding a
/// connection string.
fn resolve_storage(
    accounts: Option<&std::path::Path>,
    name: &str,
) -> anyhow::Result<crate::config::StorageAccount> {
    if let Some(path) = AccountsFile::locate(accounts) {
        let file = AccountsFile::load(&path)?;
        if file.accounts.contains_key(name) {
            return Ok(file.storage(name)?);
        }
    }
    match std::env::var(name) {
        Ok(cs) => crate::config::parse_connection_string(&cs)
            .map_err(|e| anyhow::anyhow!("--storage {name}: the connection string in ${name} is not valid: {e}")),
        Err(_) => anyhow::bail!(
            "--storage {name}: not a datacenter of the accounts file, nor an environment variable holding a connection string"
        ),
    }
}

/// Ctrl-C, SIGTERM and SIGHUP as a stop for the scripts this command runs: the script ends
/// at the host call or operation it was in (no `catch` holds it back), and the command then
/// cleans up (a local environment it started goes down) and exits with the signal's code.
fn stop_on_signals(rt: &tokio::runtime::Runtime) -> script::Stop {
    let stop = script::Stop::default();
    let s = stop.clone();
    rt.spawn(async move {
        loop {
            let (name, code) = interrupted().await;
            s.request(name, code);
        }
    });
    stop
}

/// Waits for SIGINT (Ctrl-C), SIGTERM or SIGHUP; its name and the exit code a shell gives
/// for it (128 + the signal's number).
async fn interrupted() -> (&'static str, i32) {
    use tokio::signal::unix::{signal, SignalKind};
    let wait = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = wait(SignalKind::interrupt()) => ("interrupted", 130),
        _ = wait(SignalKind::terminate()) => ("terminated", 143),
        _ = wait(SignalKind::hangup()) => ("hung up", 129),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn report(result: Result<(), RunError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::Script(d)) => {
            eprint!("{d}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("amsplay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn local(rt: &tokio::runtime::Runtime, action: LocalAction) -> anyhow::Result<ExitCode> {
    let env = LocalEnv::default_location();
    match action {
        LocalAction::Up => {
            let state = rt.block_on(env.up())?;
            println!(
                "local environment up: Azurite pid {} on http://127.0.0.1:{}",
                state.azurite_pid, state.blob_port
            );
            for m in &state.media {
                println!(
                    "Media Services for {}: http://127.0.0.1:{}/api/ (pid {})",
                    m.datacenter, m.port, m.process.pid
                );
            }
            if let Some(front) = state.front_url() {
                println!("front door: {front} (origins dc-a, then dc-b; {front}/status)");
            }
            println!("accounts file: {}", env.accounts_path().display());
            if let Some(console) = state.console_url() {
                println!("console: {console}");
            }
            Ok(ExitCode::SUCCESS)
        }
        LocalAction::Down => {
            if rt.block_on(env.down())? {
                println!(
                    "local environment stopped (data kept in {})",
                    env.root().display()
                );
            } else {
                println!("the local environment was not running");
            }
            Ok(ExitCode::SUCCESS)
        }
        LocalAction::Fail {
            datacenter,
            storage,
            origin,
            latency_ms,
            cut_bytes,
        } => {
            let faults = crate::faults::DatacenterFaults {
                storage,
                origin,
                latency_ms,
                cut_bytes,
            };
            rt.block_on(env.fail(&datacenter, faults))?;
            println!("{datacenter}: storage {storage}, origin {origin} (heal with `amsplay local heal {datacenter}`)");
            Ok(ExitCode::SUCCESS)
        }
        LocalAction::Heal { datacenter } => {
            rt.block_on(env.heal(&datacenter))?;
            println!("{datacenter}: healed");
            Ok(ExitCode::SUCCESS)
        }
        LocalAction::Status { json } => {
            let Some(state) = env.running()? else {
                if json {
                    println!("{{\"running\":false}}");
                } else {
                    println!(
                        "the local environment is not running; start it with `amsplay local up`"
                    );
                }
                return Ok(ExitCode::from(3));
            };
            let dcs = env.datacenters(&state)?;
            let faults = rt.block_on(env.faults()).unwrap_or_default();
            if json {
                let v = serde_json::json!({
                    "running": true,
                    "azurite_pid": state.azurite_pid,
                    "blob_port": state.blob_port,
                    "started": state.started,
                    "front_door": state.front_url(),
                    "console": state.console_url(),
                    "accounts_file": env.accounts_path(),
                    "datacenters": dcs,
                    "faults": faults,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "running since {} (Azurite pid {}); accounts file {}",
                    state.started,
                    state.azurite_pid,
                    env.accounts_path().display()
                );
                if let Some(front) = state.front_url() {
                    println!("front door: {front} (status at {front}/status)");
                }
                if let Some(console) = state.console_url() {
                    println!("console:    {console}");
                }
                for dc in dcs {
                    println!("\n{}:", dc.name);
                    println!("  storage account    {}", dc.storage_account);
                    println!("  blob endpoint      {}", dc.blob_endpoint);
                    println!("  account key        {}", dc.account_key);
                    println!("  connection string  {}", dc.connection_string);
                    println!("  media account      {}", dc.media_account);
                    println!("  media API          {}", dc.media_api);
                    println!(
                        "  token endpoint     {} (ACS), {} (Azure AD)",
                        dc.media_token_endpoint, dc.media_aad_token_endpoint
                    );
                    println!("  media key          {}", dc.media_key);
                    println!("  streaming origin   {}", dc.origin);
                    if let Some(f) = faults.get(&dc.name) {
                        println!(
                            "  faults             storage {}, origin {}{}",
                            f.storage,
                            f.origin,
                            if f.storage == crate::faults::Mode::Slow
                                || f.origin == crate::faults::Mode::Slow
                            {
                                format!(" ({} ms)", f.latency_ms)
                            } else {
                                String::new()
                            }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cache_mebibytes;

    #[test]
    fn cache_sizes_take_fractions_and_refuse_nonsense() {
        assert_eq!(cache_mebibytes("256"), Ok(256 << 20));
        assert_eq!(cache_mebibytes("0.5"), Ok(512 << 10));
        for bad in ["0", "-1", "NaN", "inf", "1e9", "lots", ""] {
            assert!(cache_mebibytes(bad).is_err(), "{bad}");
        }
    }
}
