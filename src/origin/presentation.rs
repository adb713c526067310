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
    /// Bytes of that file.
    pub size: u64,
    pub index: Arc<Mp4Index>,
    pub(super) video: bool,
    pub fragments: Vec<Range<usize>>,
    /// Its fragments cut into runs, each read with one ranged read (`plan_runs`).
    runs: Vec<Range<usize>>,
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

    /// The run holding fragment `seq` (fragment indexes).
    pub fn run_of(&self, seq: usize) -> Range<usize> {
        let i = self.runs.partition_point(|r| r.end <= seq);
        self.runs.get(i).cloned().unwrap_or(seq..seq + 1)
    }

    /// The bytes of the file that fragments `seqs` span.
    pub fn span(&self, seqs: Range<usize>) -> Range<u64> {
        let f = &self.fragments;
        let (first, last) = (seqs.start, seqs.end.max(seqs.start + 1) - 1);
        match (f.get(first), f.get(last)) {
            (Some(a), Some(b)) => super::fmp4::span(self.track(), a.start..b.end),
            _ => 0..0,
        }
    }

    pub fn kind(&self) -> &'static str {
        if self.video {
            "video"
        } else {
            "audio"
        }
    }
}

/// The largest `.ism` read (one names a few files in a few hundred bytes each).
const MAX_ISM: u64 = 1 << 20;

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

    /// Reads the `.ism` and indexes every file it names (all at once), in two rounds of
    /// storage requests: the container's listing (every file's size) beside the `.ism`, then
    /// the head of each MP4 (`Mp4Index::load`). Each rendition's runs span at most
    /// `run_bytes` (`plan_runs`).
    pub async fn load(
        storage: &Storage,
        container: &str,
        ism: &str,
        run_bytes: u64,
    ) -> Result<Self, OriginError> {
        let (listing, text) = futures::join!(
            storage.blobs(container),
            storage.get_prefix(container, ism, MAX_ISM + 1)
        );
        let sizes: HashMap<String, u64> = listing?.into_iter().map(|b| (b.name, b.size)).collect();
        match sizes.get(ism) {
            None => return Err(OriginError::not_found(format!("{ism} not found"))),
            Some(&n) if n == 0 || n > MAX_ISM => {
                return Err(OriginError::Unpackageable(format!(
                    "{ism} is {n} bytes; a server manifest has 1 to {MAX_ISM}"
                )))
            }
            Some(_) => {}
        }
        let entries = smil_entries(&String::from_utf8_lossy(&text?));
        let mut names: Vec<&String> = entries.iter().map(|(_, src, _)| src).collect();
        names.sort();
        names.dedup();
        let sizes = &sizes;
        let loaded = futures::future::try_join_all(names.iter().map(|src| async move {
            match sizes.get(src.as_str()) {
                Some(&size) => Mp4Index::load(storage, container, src, size).await,
                None => Err(super::index::format_err(src, "no such blob")),
            }
        }))
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
                    size: sizes[src.as_str()],
                    index,
                    video: true,
                    fragments,
                    runs: Vec::new(),
                    rates: Default::default(),
                });
            } else if audio.is_none() && index.audio().is_some() {
                audio = Some(Rendition {
                    bitrate: *bitrate,
                    blob: src.clone(),
                    size: sizes[src.as_str()],
                    index,
                    video: false,
                    fragments: Vec::new(),
                    runs: Vec::new(),
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
        for r in video.iter_mut().chain(audio.iter_mut()) {
            let sizes: Vec<u64> = (0..r.fragments.len())
                .map(|i| {
                    let s = r.span(i..i + 1);
                    s.end - s.start
                })
                .collect();
            r.runs = plan_runs(&sizes, run_bytes);
        }
        Ok(Self {
            container: container.to_string(),
            video,
            audio,
        })
    }

    /// The other renditions whose track is in `r`'s file (an MP4 holds its audio beside a
    /// video track).
    pub fn in_file_of<'a>(&'a self, r: &'a Rendition) -> impl Iterator<Item = &'a Rendition> {
        self.video
            .iter()
            .chain(self.audio.iter())
            .filter(move |o| o.blob == r.blob && !std::ptr::eq(*o, r))
    }

    pub fn rendition(&self, kind: &str, bitrate: u32) -> Option<&Rendition> {
        match kind {
            "video" => self.video.iter().find(|v| v.bitrate == bitrate),
            "audio" => self.audio.as_ref().filter(|a| a.bitrate == bitrate),
            _ => None,
        }
    }
}

/// Bytes one ranged read of a rendition spans at most (less with a small fragment cache, so
/// that one read never fills it: `run_bytes`).
pub const RUN_BYTES: u64 = 8 << 20;

/// The most a run spans for a fragment cache of `cache_bytes`: `RUN_BYTES`, or an eighth of a
/// smaller cache (at least 256 KiB).
pub fn run_bytes(cache_bytes: usize) -> u64 {
    RUN_BYTES.min(cache_bytes as u64 / 8).max(256 << 10)
}

/// Cuts a rendition's fragments into runs of consecutive fragments, each read with one ranged
/// read whoever asks for one of them first: as few runs as keep each within `most` bytes (a
/// fragment larger than that is a run of its own), cut at the fragment boundaries nearest to
/// equal shares of the bytes.
///
/// Runs are fixed when the presentation is indexed, so a crowd of players arriving in any
/// order reads each run once, and every read is as large as it can be: storage answers a few
/// large reads far faster than many small ones. Equal shares of more than `most` are each over
/// half of it, and so over 4 MiB with the default `RUN_BYTES`: Azurite reads a range of up to
/// 4 MiB twice (to give it an MD5), so there one read just over that costs a third of two
/// just under it.
fn plan_runs(sizes: &[u64], most: u64) -> Vec<Range<usize>> {
    let total: u64 = sizes.iter().sum();
    let most = most.max(1);
    let share = total.div_ceil(total.div_ceil(most).max(1)).max(1);
    let mut runs = Vec::new();
    let (mut first, mut bytes, mut done) = (0, 0u64, 0u64);
    for (i, &size) in sizes.iter().enumerate() {
        // Close the run before this fragment when it would go past `most`, or when the
        // boundary before it is nearer the next share's end than the one after it.
        let goal = (runs.len() as u64 + 1) * share;
        let before = goal.abs_diff(done);
        let after = goal.abs_diff(done + size);
        if i > first && (bytes + size > most || before < after) {
            runs.push(first..i);
            (first, bytes) = (i, 0);
        }
        bytes += size;
        done += size;
    }
    if first < sizes.len() {
        runs.push(first..sizes.len());
    }
    runs
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn bytes(sizes: &[u64], runs: &[Range<usize>]) -> Vec<u64> {
        runs.iter().map(|r| sizes[r.clone()].iter().sum()).collect()
    }

    #[test]
    fn runs_are_few_even_and_within_the_read_size() {
        // A 1080p rung: ten fragments of 1.7 MB: three runs of 5 to 7 MB, none under 4 MiB.
        let rung = [1_740_000u64; 10];
        let runs = plan_runs(&rung, RUN_BYTES);
        assert_eq!(runs, vec![0..3, 3..7, 7..10]);
        assert!(bytes(&rung, &runs)
            .iter()
            .all(|&b| b > 4 * MIB && b <= RUN_BYTES));
        // Just over one read: two halves, each over 4 MiB.
        let over = [910_000u64; 10];
        let halves = bytes(&over, &plan_runs(&over, RUN_BYTES));
        assert_eq!(halves.len(), 2);
        assert!(halves.iter().all(|&b| b > 4 * MIB), "{halves:?}");
        // What fits in one read is one run; nothing is no run.
        assert_eq!(plan_runs(&[120_000; 10], RUN_BYTES), vec![0..10]);
        assert_eq!(plan_runs(&[], RUN_BYTES), Vec::<Range<usize>>::new());
    }

    #[test]
    fn a_fragment_larger_than_a_read_is_a_run_of_its_own() {
        let sizes = [MIB, 20 * MIB, MIB, MIB];
        let runs = plan_runs(&sizes, RUN_BYTES);
        assert!(runs.contains(&(1..2)), "{runs:?}");
        let covered: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(covered, vec![0, 1, 2, 3], "every fragment once, in order");
    }

    #[test]
    fn a_small_cache_reads_smaller_runs() {
        assert_eq!(run_bytes(256 << 20), RUN_BYTES);
        assert_eq!(run_bytes(16 << 20), 2 << 20);
        assert_eq!(run_bytes(1 << 20), 256 << 10, "never under 256 KiB");
        let runs = plan_runs(&[100_000; 30], run_bytes(1 << 20));
        assert!(runs.len() >= 12, "{runs:?}");
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn runs_cover_every_fragment_once_within_the_read_size(sizes in proptest::collection::vec(1u64..12 << 20, 0..60), most in 1u64..16 << 20) {
            let runs = plan_runs(&sizes, most);
            let covered: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
            proptest::prop_assert_eq!(covered, (0..sizes.len()).collect::<Vec<_>>());
            for (r, b) in runs.iter().zip(bytes(&sizes, &runs)) {
                proptest::prop_assert!(r.len() == 1 || b <= most, "{:?}: {}", r, b);
            }
        }
    }
}
