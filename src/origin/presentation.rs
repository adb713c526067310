//! What an `.ism` describes, indexed: the renditions (a track of one of the MP4s, cut into
//! fragments at the video keyframes) that the manifests list and the fragments come from.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::error::OriginError;
use super::index::{Mp4Index, Track};
use crate::storage::Storage;

/// One rendition: a track of one of the MP4s, cut into fragments.
pub struct Rendition {
    pub bitrate: u32,
    pub blob: String,
    pub index: Arc<Mp4Index>,
    pub(super) video: bool,
    pub fragments: Vec<Range<usize>>,
    /// Bits a second of its fMP4 segments, measured when a master playlist first needs them
    /// (not while a cold origin indexes for its first fragment requests).
    rates: std::sync::OnceLock<Rates>,
}

/// A rendition's bit rates as players measure them: segment bytes over segment seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    pub peak: u64,
    pub average: u64,
}

impl Rates {
    /// Every segment's exact size (moof and mdat) over its duration.
    fn of(track: &Track, fragments: &[Range<usize>]) -> Result<Self, String> {
        let mut rates = Self::default();
        let (mut bytes, mut ticks) = (0u64, 0u64);
        for f in fragments {
            let size = super::fmp4::segment_size(track, f.clone())? as u64;
            let d = track.duration(f).max(1);
            let bps = (size * 8 * track.timescale as u64).div_ceil(d);
            rates.peak = rates.peak.max(bps);
            bytes += size;
            ticks += d;
        }
        rates.average = (bytes * 8 * track.timescale as u64).div_ceil(ticks.max(1));
        Ok(rates)
    }
}

impl Rendition {
    pub fn track(&self) -> &Track {
        let t = if self.video {
            self.index.video()
        } else {
            self.index.audio()
        };
        t.expect("checked when the presentation was loaded")
    }

    /// Its peak and average segment bit rates (the declared bit rate for both should a
    /// segment's size be unknowable).
    pub fn rates(&self) -> Rates {
        *self.rates.get_or_init(|| {
            Rates::of(self.track(), &self.fragments).unwrap_or_else(|e| {
                tracing::warn!(blob = %self.blob, error = %e, "segment sizes unknown; using the declared bit rate");
                Rates {
                    peak: self.bitrate as u64,
                    average: self.bitrate as u64,
                }
            })
        })
    }

    pub fn kind(&self) -> &'static str {
        if self.video {
            "video"
        } else {
            "audio"
        }
    }
}

/// What an `.ism` describes, indexed.
pub struct Presentation {
    pub container: String,
    pub video: Vec<Rendition>,
    pub audio: Option<Rendition>,
}

impl Presentation {
    /// Roughly what its indexes hold in memory: every indexed sample and fragment range, each
    /// distinct MP4 index counted once, plus a little for each box tree.
    pub fn approx_bytes(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        let mut bytes = 0;
        for r in self.video.iter().chain(self.audio.iter()) {
            bytes += r.fragments.len() * std::mem::size_of::<Range<usize>>();
            if seen.insert(Arc::as_ptr(&r.index)) {
                bytes += 16 << 10;
                bytes += r
                    .index
                    .tracks
                    .iter()
                    .map(|t| t.samples.len() * std::mem::size_of::<super::index::Sample>())
                    .sum::<usize>();
            }
        }
        bytes
    }

    /// Seconds to the end of its longest track: manifests round it up, never down, so a
    /// player reaches every sample (a duration ending before the audio does leaves a strict
    /// player waiting short of the end).
    pub fn duration_secs(&self) -> f64 {
        self.video
            .iter()
            .chain(self.audio.iter())
            .map(|r| r.track().duration_secs())
            .fold(0.0, f64::max)
    }

    /// Reads the `.ism` and indexes every file it names (all at once).
    pub async fn load(storage: &Storage, container: &str, ism: &str) -> Result<Self, OriginError> {
        let info = storage
            .blob(container, ism)
            .await?
            .ok_or_else(|| OriginError::not_found(format!("{ism} not found")))?;
        let text = storage.get_range(container, ism, 0..info.size).await?;
        let entries = smil_entries(&String::from_utf8_lossy(&text));
        let mut names: Vec<&String> = entries.iter().map(|(_, src, _)| src).collect();
        names.sort();
        names.dedup();
        let loaded = futures::future::try_join_all(
            names
                .iter()
                .map(|src| Mp4Index::load(storage, container, src)),
        )
        .await?;
        let indexes: HashMap<&String, Arc<Mp4Index>> = names
            .into_iter()
            .zip(loaded.into_iter().map(Arc::new))
            .collect();
        let mut video = Vec::new();
        let mut audio = None;
        for (kind, src, bitrate) in &entries {
            let index = indexes[src].clone();
            if kind == "video" {
                let fragments = index
                    .video()
                    .ok_or_else(|| OriginError::Unpackageable(format!("{src} has no video track")))?
                    .video_fragments();
                video.push(Rendition {
                    bitrate: *bitrate,
                    blob: src.clone(),
                    index,
                    video: true,
                    fragments,
                    rates: Default::default(),
                });
            } else if audio.is_none() && index.audio().is_some() {
                audio = Some(Rendition {
                    bitrate: *bitrate,
                    blob: src.clone(),
                    index,
                    video: false,
                    fragments: Vec::new(),
                    rates: Default::default(),
                });
            }
        }
        let first = video
            .first()
            .ok_or_else(|| OriginError::Unpackageable(format!("{ism} lists no video")))?;
        let vt = first.track();
        let cuts: Vec<f64> = first
            .fragments
            .iter()
            .map(|f| vt.start(f) as f64 / vt.timescale as f64)
            .collect();
        if let Some(a) = &mut audio {
            a.fragments = a.track().fragments_at(&cuts);
        }
        Ok(Self {
            container: container.to_string(),
            video,
            audio,
        })
    }

    pub fn rendition(&self, kind: &str, bitrate: u32) -> Option<&Rendition> {
        match kind {
            "video" => self.video.iter().find(|v| v.bitrate == bitrate),
            "audio" => self.audio.as_ref().filter(|a| a.bitrate == bitrate),
            _ => None,
        }
    }
}

/// `(kind, src, systemBitrate)` of each `<video>` / `<audio>` of a SMIL server manifest.
fn smil_entries(text: &str) -> Vec<(String, String, u32)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[start..].split('"').next()?.to_string())
    };
    let mut out = Vec::new();
    for kind in ["video", "audio"] {
        for part in text.split(&format!("<{kind} ")).skip(1) {
            let tag = part.split('>').next().unwrap_or_default();
            if let (Some(src), Some(b)) = (
                attr(tag, "src"),
                attr(tag, "systemBitrate").and_then(|b| b.parse().ok()),
            ) {
                out.push((kind.to_string(), src, b));
            }
        }
    }
    out
}
