//! The one place that builds the Rhai `Engine`.

use std::sync::Arc;

use rhai::Engine;

use super::host::Host;
use super::{account, drill, help, jobs, media, storage, sync, util};

/// What a playbook may hold by default (strings, arrays and maps sized from it).
pub const DEFAULT_DATA_BYTES: u64 = 1 << 30;

/// Sizes Rhai's data limits from a memory budget: a string a quarter of it, arrays and maps
/// by a rough per-element cost. Growth past them is a script error at the line that grew.
pub fn limit_data(engine: &mut Engine, bytes: u64) {
    let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).max(1);
    engine.set_max_string_size(usize_of(bytes / 4));
    engine.set_max_array_size(usize_of(bytes / 64));
    engine.set_max_map_size(usize_of(bytes / 256));
}

/// Builds the engine with every amsplay function registered and documented.
pub fn build_engine(host: Arc<Host>) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_call_levels(256);
    // Plugin functions (`#[export_module]`) find the host here.
    engine.set_default_tag(rhai::Dynamic::from(host.clone()));
    // A stop (Ctrl-C, SIGTERM, SIGHUP) also ends a script that never calls into the host.
    let stop = host.bridge().stop().clone();
    engine.on_progress(move |_| stop.requested().map(|(name, _)| name.into()));
    limit_data(&mut engine, DEFAULT_DATA_BYTES);
    engine.on_debug(|text, source, pos| {
        let src = source.unwrap_or("script");
        eprintln!(
            "{src}:{}:{}: debug: {text}",
            pos.line().unwrap_or(0),
            pos.position().unwrap_or(0)
        );
    });
    account::register(&mut engine);
    storage::register(&mut engine);
    media::register(&mut engine);
    jobs::register(&mut engine);
    sync::register(&mut engine);
    drill::register(&mut engine);
    util::register(&mut engine);
    help::install(&mut engine);
    engine
}
