//! A player for drills: reads an HLS stream the way a player does (master playlist, a variant
//! playlist, then its init segment and media segments in order, round and round) and records
//! every request: whether it failed, and which origin served it (`x-served-by` from the front
//! door), so a drill can count failures and see when traffic moved.
//!
//! It also tells what a viewer would have seen: the longest stall of a player that holds
//! `BUFFER_SEGMENTS` segments and fetches one at a time. Starting full, the buffer drains
//! while a request is under way (failed ones and their retry included) and grows by the
//! segment's duration when it arrives, never past the cap; whenever it runs dry the picture
//! stops until the next segment arrives. Only request latencies matter, not the drill's pace.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a play session saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlayReport {
    pub requests: u64,
    pub failed: u64,
    pub seconds: f64,
    /// Requests answered by each origin.
    pub served_by: BTreeMap<String, u64>,
    /// Changes of the serving origin: (seconds since start, from, to).
    pub switches: Vec<(f64, String, String)>,
    /// The first few failures, for the report.
    pub errors: Vec<String>,
    /// The slowest request, in milliseconds.
    pub worst_ms: f64,
    /// The longest stall a player with a `BUFFER_SEGMENTS` buffer would have seen, in ms.
    pub stall_ms: f64,
    /// Requests that took `SLOW_MS` or more: (seconds since start, milliseconds, failed).
    pub slow: Vec<(f64, f64, bool)>,
    /// Spells without a successful answer: from the start of the first failed request to
    /// the end of the next successful one (None: none came before the end).
    pub outages: Vec<(f64, Option<f64>)>,
}

/// Segments a player keeps buffered.
pub const BUFFER_SEGMENTS: f64 = 3.0;

/// Requests at least this slow are listed in the report.
pub const SLOW_MS: f64 = 200.0;

/// Why one request of the player got no usable answer (recorded in the report, as text).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {source}")]
    Request {
        url: url::Url,
        source: reqwest::Error,
    },
    #[error("{url}: {status}")]
    Status {
        url: url::Url,
        status: reqwest::StatusCode,
    },
    #[error("cannot resolve {reference}: {source}")]
    Resolve {
        reference: String,
        source: url::ParseError,
    },
    #[error("the master playlist lists no variant")]
    NoVariant,
}

/// Why a player could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("'{url}' is not a URL: {source}")]
    NotAUrl {
        url: String,
        source: url::ParseError,
    },
    #[error("cannot build an HTTP client: {0}")]
    Client(reqwest::Error),
}

fn resolve(base: &url::Url, reference: &str) -> Result<url::Url, FetchError> {
    base.join(reference).map_err(|source| FetchError::Resolve {
        reference: reference.to_string(),
        source,
    })
}

/// The URIs of a playlist, relative to it: variant playlists of a master, or the init segment
/// and media segments of a media playlist.
fn playlist_uris(text: &str) -> Vec<String> {
    playlist_entries(text).into_iter().map(|(u, _)| u).collect()
}

/// The same with each URI's duration in seconds (`#EXTINF`; 0 for the rest).
fn playlist_entries(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut duration = 0.0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            out.push((rest.trim_end_matches('"').to_string(), 0.0));
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d
                .split(',')
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push((line.to_string(), std::mem::take(&mut duration)));
        }
    }
    out
}

struct Recorder {
    started: Instant,
    report: PlayReport,
    last_origin: Option<String>,
    /// Seconds of media in the modelled player's buffer (None until the first segment).
    buffer: Option<f64>,
    stall: f64,
}

impl Recorder {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            report: PlayReport::default(),
            last_origin: None,
            buffer: None,
            stall: 0.0,
        }
    }

    /// Records a request that began at `began` and the segment duration it was for.
    fn timed(&mut self, began: Instant, segment: f64, result: Result<Option<String>, FetchError>) {
        let secs = began.elapsed().as_secs_f64();
        let ms = secs * 1000.0;
        self.report.worst_ms = self.report.worst_ms.max(ms);
        if ms >= SLOW_MS && self.report.slow.len() < 1000 {
            let at = began.duration_since(self.started).as_secs_f64();
            self.report.slow.push((at, ms, result.is_err()));
        }
        if segment > 0.0 {
            let cap = BUFFER_SEGMENTS * segment;
            let mut level = self.buffer.unwrap_or(cap) - secs;
            if level < 0.0 {
                self.stall += -level;
                level = 0.0;
            } else {
                self.stall = 0.0;
            }
            self.report.stall_ms = self.report.stall_ms.max(self.stall * 1000.0);
            if result.is_ok() {
                level = (level + segment).min(cap);
            }
            self.buffer = Some(level);
        }
        self.timed_record(began, result);
    }

    fn timed_record(&mut self, began: Instant, result: Result<Option<String>, FetchError>) {
        let now = self.started.elapsed().as_secs_f64();
        match (&result, self.report.outages.last_mut()) {
            (Ok(_), Some((_, end @ None))) => *end = Some(now),
            (Err(_), None) | (Err(_), Some((_, Some(_)))) => {
                let at = began.duration_since(self.started).as_secs_f64();
                self.report.outages.push((at, None));
            }
            _ => {}
        }
        self.record(result);
    }

    fn record(&mut self, result: Result<Option<String>, FetchError>) {
        self.report.requests += 1;
        match result {
            Ok(origin) => {
                let origin = origin.unwrap_or_else(|| "(direct)".into());
                *self.report.served_by.entry(origin.clone()).or_default() += 1;
                if let Some(last) = &self.last_origin {
                    if *last != origin {
                        let at = self.started.elapsed().as_secs_f64();
                        self.report
                            .switches
                            .push((at, last.clone(), origin.clone()));
                    }
                }
                self.last_origin = Some(origin);
            }
            Err(e) => {
                self.report.failed += 1;
                if self.report.errors.len() < 10 {
                    self.report.errors.push(e.to_string());
                }
            }
        }
    }
}

async fn fetch(
    http: &reqwest::Client,
    url: &url::Url,
) -> Result<(bytes::Bytes, Option<String>), FetchError> {
    let request = |source| FetchError::Request {
        url: url.clone(),
        source,
    };
    let r = http.get(url.clone()).send().await.map_err(request)?;
    if !r.status().is_success() {
        return Err(FetchError::Status {
            url: url.clone(),
            status: r.status(),
        });
    }
    let origin = r
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.bytes().await.map_err(request)?;
    Ok((body, origin))
}

/// Plays the HLS stream at `url` for `seconds`, pausing `gap` between requests.
pub async fn play(url: &str, seconds: f64, gap: Duration) -> Result<PlayReport, PlayError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(PlayError::Client)?;
    let master = url::Url::parse(url).map_err(|source| PlayError::NotAUrl {
        url: url.to_string(),
        source,
    })?;
    let mut rec = Recorder::new();
    let deadline = Duration::from_secs_f64(seconds.max(0.0));
    // The manifests, as a player reads them first (retried, so the drill can start anywhere).
    let mut segments: Vec<(url::Url, f64)> = Vec::new();
    while segments.is_empty() && rec.started.elapsed() < deadline {
        let began = Instant::now();
        let r = async {
            let (text, origin) = fetch(&http, &master).await?;
            let variant = playlist_uris(&String::from_utf8_lossy(&text))
                .into_iter()
                .next()
                .ok_or(FetchError::NoVariant)?;
            let variant = resolve(&master, &variant)?;
            let (media, _) = fetch(&http, &variant).await?;
            let uris = playlist_entries(&String::from_utf8_lossy(&media))
                .iter()
                .map(|(u, d)| Ok((resolve(&variant, u)?, *d)))
                .collect::<Result<Vec<_>, FetchError>>()?;
            Ok::<_, FetchError>((uris, origin))
        }
        .await;
        match r {
            Ok((uris, origin)) => {
                rec.timed(began, 0.0, Ok(origin));
                segments = uris;
            }
            Err(e) => {
                rec.timed(began, 0.0, Err(e));
                tokio::time::sleep(gap).await;
            }
        }
    }
    let mut i = 0;
    while rec.started.elapsed() < deadline && !segments.is_empty() {
        let (url, duration) = &segments[i % segments.len()];
        let began = Instant::now();
        let result = fetch(&http, url).await.map(|(_, origin)| origin);
        rec.timed(began, *duration, result);
        i += 1;
        tokio::time::sleep(gap).await;
    }
    rec.report.seconds = rec.started.elapsed().as_secs_f64();
    Ok(rec.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_give_their_uris_in_order() {
        let media = "#EXTM3U\n#EXT-X-MAP:URI=\"Fragments(video=i,format=m3u8-aapl).mp4\"\n#EXTINF:2.0,\nFragments(video=0,format=m3u8-aapl).m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(
            playlist_uris(media),
            [
                "Fragments(video=i,format=m3u8-aapl).mp4",
                "Fragments(video=0,format=m3u8-aapl).m4s"
            ]
        );
        let base =
            url::Url::parse("http://h/g/x.ism/QualityLevels(1)/Manifest(video,format=m3u8-aapl)")
                .unwrap();
        assert_eq!(
            resolve(&base, "Fragments(video=0,format=m3u8-aapl).m4s")
                .unwrap()
                .as_str(),
            "http://h/g/x.ism/QualityLevels(1)/Fragments(video=0,format=m3u8-aapl).m4s"
        );
    }

    #[test]
    fn a_spell_without_answers_runs_from_the_first_failure_to_the_next_success() {
        let mut rec = Recorder::new();
        let ok = || Ok(Some("a".to_string()));
        let unavailable = || {
            Err(FetchError::Status {
                url: url::Url::parse("http://h/s.m4s").unwrap(),
                status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
            })
        };
        rec.timed(Instant::now(), 2.0, ok());
        rec.timed(Instant::now(), 2.0, unavailable());
        rec.timed(Instant::now(), 2.0, unavailable());
        rec.timed(Instant::now(), 2.0, ok());
        rec.timed(Instant::now(), 2.0, unavailable());
        let o = &rec.report.outages;
        assert_eq!(o.len(), 2, "{o:?}");
        assert!(o[0].1.is_some_and(|end| end >= o[0].0));
        assert_eq!(o[1].1, None, "the last spell never ended");
        assert_eq!(rec.report.failed, 3);
    }
}
