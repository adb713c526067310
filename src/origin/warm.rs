//! Warming an origin: ask it for a presentation's manifests in every format before the first
//! player does, so it has read every rendition's index (kept in its presentation cache) and a
//! standby that takes over after a failover answers its first requests at warm speed.

use std::time::{Duration, Instant};

/// The manifests asked for, as suffixes of `…/name.ism/manifest`: Smooth, HLS, DASH.
pub const FORMATS: [&str; 3] = ["", "(format=m3u8-aapl)", "(format=mpd-time-csf)"];

/// What warming did.
#[derive(Debug, Clone, PartialEq)]
pub struct Warmed {
    /// Manifests answered.
    pub manifests: usize,
    /// How long it took, in milliseconds.
    pub ms: f64,
}

/// Warms the origin serving the Smooth manifest at `manifest` (`{locator path}{name}.ism/manifest`).
/// The Smooth manifest first (it reads every index), then the others at once.
pub async fn warm(manifest: &str) -> Result<Warmed, String> {
    let began = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let get = |suffix: &str| {
        let url = format!("{manifest}{suffix}");
        let http = http.clone();
        async move {
            let r = http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {}", crate::storage::error_chain(&e)))?;
            if !r.status().is_success() {
                return Err(format!("{url} answered {}", r.status()));
            }
            r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            Ok::<_, String>(())
        }
    };
    get(FORMATS[0]).await?;
    futures::future::try_join_all(FORMATS[1..].iter().map(|f| get(f))).await?;
    Ok(Warmed {
        manifests: FORMATS.len(),
        ms: began.elapsed().as_secs_f64() * 1000.0,
    })
}
