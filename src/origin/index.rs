//! The index of a progressive MP4 in blob storage: its `moov`, read with ranged reads (the
//! encoder writes it first, `+faststart`) and decoded with `mp4-atom`, expanded into per-track
//! sample tables, and cut into fragments at the video keyframes (every 2 s, the same instants in
//! every rung).

use std::ops::Range;

use mp4_atom::{Codec, Decode, Moov, StszSamples, Trak};

use crate::storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{blob} is not an MP4 the origin can package: {message}")]
    Format { blob: String, message: String },
}

/// One sample: where its bytes are and when it plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub offset: u64,
    pub size: u32,
    pub dts: u64,
    pub duration: u32,
    pub cts_offset: i64,
    pub sync: bool,
}

/// A track's samples and its description.
#[derive(Debug, Clone)]
pub struct Track {
    pub id: u32,
    pub video: bool,
    pub timescale: u32,
    pub samples: Vec<Sample>,
    pub trak: Trak,
}

/// A progressive MP4's index.
#[derive(Debug, Clone)]
pub struct Mp4Index {
    pub moov: Moov,
    pub tracks: Vec<Track>,
}

/// Bytes read from the start of an MP4 in the first request: enough for the `moov` of a
/// faststart file of about three minutes (a longer one takes a second read of its `moov`).
const HEAD_BYTES: u64 = 128 << 10;

/// The largest `moov` read (a faststart index of many hours is a few megabytes).
const MAX_MOOV: u64 = 64 << 20;

pub(super) fn format_err(blob: &str, message: impl Into<String>) -> IndexError {
    IndexError::Format {
        blob: blob.to_string(),
        message: message.into(),
    }
}

impl Mp4Index {
    /// Reads the `moov` of `blob`, `size` bytes long, and indexes its tracks: one ranged read
    /// of its head (where the encoder's `+faststart` puts the `moov`), and a second read only
    /// when the `moov` reaches past that head.
    pub async fn load(
        storage: &Storage,
        container: &str,
        blob: &str,
        size: u64,
    ) -> Result<Self, IndexError> {
        let head = storage
            .get_range(container, blob, 0..size.min(HEAD_BYTES))
            .await?;
        let mut pos = 0u64;
        let moov = loop {
            if pos + 16 > size {
                return Err(format_err(blob, "no moov box"));
            }
            let header = if pos + 16 <= head.len() as u64 {
                head.slice(pos as usize..pos as usize + 16)
            } else {
                storage.get_range(container, blob, pos..pos + 16).await?
            };
            let mut box_size = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes")) as u64;
            if box_size == 1 {
                box_size = u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"));
            } else if box_size == 0 {
                box_size = size - pos;
            }
            if box_size < 8 || pos + box_size > size {
                return Err(format_err(
                    blob,
                    format!("a box at {pos} claims {box_size} bytes"),
                ));
            }
            if &header[4..8] == b"moov" {
                if box_size > MAX_MOOV {
                    return Err(format_err(
                        blob,
                        format!("its moov claims {box_size} bytes; at most {MAX_MOOV}"),
                    ));
                }
                let end = pos + box_size;
                break if end <= head.len() as u64 {
                    head.slice(pos as usize..end as usize)
                } else {
                    storage.get_range(container, blob, pos..end).await?
                };
            }
            pos += box_size;
        };
        Self::parse(&moov).map_err(|m| format_err(blob, m))
    }

    /// Indexes a `moov` box given as bytes (header included).
    pub fn parse(moov_bytes: &[u8]) -> Result<Self, String> {
        let moov = Moov::decode(&mut &moov_bytes[..]).map_err(|e| e.to_string())?;
        let tracks = moov.trak.iter().map(track).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { moov, tracks })
    }

    pub fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.video)
    }

    pub fn audio(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| !t.video)
    }
}

/// The most samples a track may claim: over 18 hours of 60 fps video, or of AAC at 48 kHz.
/// A sample table is only as trustworthy as the file it came from; a 92 KB `moov` claiming
/// 4·10⁸ samples must not cost gigabytes.
pub const MAX_SAMPLES: usize = 4_000_000;

fn track(trak: &Trak) -> Result<Track, String> {
    let stbl = &trak.mdia.minf.stbl;
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => {
            let count = *count as usize;
            if count > MAX_SAMPLES || (count > 0 && *size == 0) {
                return Err(format!(
                    "stsz claims {count} samples of {size} bytes (at most {MAX_SAMPLES} samples of a size above 0)"
                ));
            }
            vec![*size; count]
        }
        StszSamples::Different { sizes } => sizes.clone(),
    };
    let count = sizes.len();
    if count > MAX_SAMPLES {
        return Err(format!("stsz lists {count} samples; at most {MAX_SAMPLES}"));
    }
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(s), _) => s.entries.iter().map(|&o| o as u64).collect(),
        (_, Some(c)) => c.entries.clone(),
        _ => return Err("a track has no chunk offsets".into()),
    };
    let mut offsets = Vec::with_capacity(count);
    let runs = &stbl.stsc.entries;
    for (ri, run) in runs.iter().enumerate() {
        let last = runs
            .get(ri + 1)
            .map(|r| r.first_chunk)
            .unwrap_or(chunks.len() as u32 + 1);
        for chunk in run.first_chunk..last {
            if offsets.len() >= count {
                break;
            }
            let mut off = *(chunk as usize)
                .checked_sub(1)
                .and_then(|c| chunks.get(c))
                .ok_or("stsc names a missing chunk")?;
            for _ in 0..run.samples_per_chunk {
                let i = offsets.len();
                if i >= count {
                    break;
                }
                offsets.push(off);
                off = off.saturating_add(sizes[i] as u64);
            }
        }
    }
    if offsets.len() != count {
        return Err(format!(
            "sample tables disagree ({} offsets, {count} samples)",
            offsets.len()
        ));
    }
    let mut durations = Vec::with_capacity(count);
    // Run lengths are counted against the samples there are, never taken on trust.
    for e in &stbl.stts.entries {
        let room = count - durations.len();
        durations.extend(std::iter::repeat_n(
            e.sample_delta,
            (e.sample_count as usize).min(room),
        ));
    }
    durations.resize(count, durations.last().copied().unwrap_or(0));
    let mut cts = Vec::with_capacity(count);
    if let Some(ctts) = &stbl.ctts {
        for e in &ctts.entries {
            let room = count - cts.len();
            cts.extend(std::iter::repeat_n(
                e.sample_offset,
                (e.sample_count as usize).min(room),
            ));
        }
    }
    cts.resize(count, 0);
    let sync: Option<std::collections::HashSet<u32>> = stbl
        .stss
        .as_ref()
        .map(|s| s.entries.iter().copied().collect());
    let mut dts = 0u64;
    let samples = (0..count)
        .map(|i| {
            let s = Sample {
                offset: offsets[i],
                size: sizes[i],
                dts,
                duration: durations[i],
                cts_offset: cts[i],
                sync: sync
                    .as_ref()
                    .is_none_or(|set| set.contains(&(i as u32 + 1))),
            };
            dts += durations[i] as u64;
            s
        })
        .collect();
    Ok(Track {
        id: trak.tkhd.track_id,
        video: trak.mdia.hdlr.handler.as_ref() == b"vide",
        timescale: trak.mdia.mdhd.timescale,
        samples,
        trak: trak.clone(),
    })
}

impl Track {
    /// Fragments of a video track: each starts at a sync sample.
    pub fn video_fragments(&self) -> Vec<Range<usize>> {
        let starts: Vec<usize> = self
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sync)
            .map(|(i, _)| i)
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| s..starts.get(k + 1).copied().unwrap_or(self.samples.len()))
            .collect()
    }

    /// Fragments cut at the given instants (seconds), for audio beside video.
    pub fn fragments_at(&self, cuts: &[f64]) -> Vec<Range<usize>> {
        let ts = self.timescale as f64;
        let idx = |t: f64| {
            self.samples
                .partition_point(|s| (s.dts as f64) / ts < t - 1e-9)
        };
        cuts.iter()
            .enumerate()
            .map(|(k, &t)| {
                idx(t)
                    ..cuts
                        .get(k + 1)
                        .map(|&n| idx(n))
                        .unwrap_or(self.samples.len())
            })
            .filter(|r| !r.is_empty())
            .collect()
    }

    /// The media time its edit list starts presenting at (the encoder's B-frame delay for
    /// video, the AAC priming for audio), in the track's timescale: what a player subtracts
    /// from every composition time so that the track starts at 0.
    pub fn presentation_offset(&self) -> u64 {
        self.trak
            .edts
            .as_ref()
            .and_then(|e| e.elst.as_ref())
            .and_then(|l| l.entries.iter().find_map(|e| e.media_time))
            .unwrap_or(0)
    }

    /// Seconds from its first sample's decoding to its last sample's end (edits aside): how
    /// long a player may see it play.
    pub fn duration_secs(&self) -> f64 {
        self.samples.iter().map(|s| s.duration as u64).sum::<u64>() as f64
            / self.timescale.max(1) as f64
    }

    /// Frames a second (samples over seconds; for a video track).
    pub fn frame_rate(&self) -> f64 {
        let secs = self.duration_secs();
        if secs > 0.0 {
            self.samples.len() as f64 / secs
        } else {
            0.0
        }
    }

    pub fn start(&self, r: &Range<usize>) -> u64 {
        self.samples[r.start].dts
    }

    pub fn duration(&self, r: &Range<usize>) -> u64 {
        self.samples[r.clone()]
            .iter()
            .map(|s| s.duration as u64)
            .sum()
    }

    /// Width and height of a video track.
    pub fn size(&self) -> (u16, u16) {
        match self.trak.mdia.minf.stbl.stsd.codecs.first() {
            Some(Codec::Avc1(a)) => (a.visual.width, a.visual.height),
            _ => (0, 0),
        }
    }

    /// The RFC 6381 codec: `avc1.64001f` or `mp4a.40.2`.
    pub fn codec(&self) -> String {
        match self.trak.mdia.minf.stbl.stsd.codecs.first() {
            Some(Codec::Avc1(a)) => format!(
                "avc1.{:02x}{:02x}{:02x}",
                a.avcc.avc_profile_indication,
                a.avcc.profile_compatibility,
                a.avcc.avc_level_indication
            ),
            _ => "mp4a.40.2".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `moov` of a two-second clip made by ffmpeg.
    fn clip_moov() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.mp4");
        let ok = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .args(["testsrc=size=64x64:rate=10:duration=2", "-c:v", "libx264"])
            .args(["-movflags", "+faststart"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ffmpeg");
        let bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(4).position(|w| w == b"moov").unwrap() - 4;
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        bytes[at..at + size].to_vec()
    }

    /// Rewrites the `stsz` box as "`count` samples of one size", fixing its parents' sizes.
    fn claim_samples(moov: &[u8], count: u32) -> Vec<u8> {
        let tag = moov.windows(4).position(|w| w == b"stsz").unwrap();
        let at = tag - 4;
        let old = u32::from_be_bytes(moov[at..at + 4].try_into().unwrap()) as usize;
        let mut stsz = Vec::new();
        stsz.extend_from_slice(&20u32.to_be_bytes());
        stsz.extend_from_slice(b"stsz");
        stsz.extend_from_slice(&[0, 0, 0, 0]);
        stsz.extend_from_slice(&1u32.to_be_bytes());
        stsz.extend_from_slice(&count.to_be_bytes());
        let removed = (old - 20) as u32;
        let mut out = [&moov[..at], &stsz[..], &moov[at + old..]].concat();
        for parent in [&b"stbl"[..], b"minf", b"mdia", b"trak", b"moov"] {
            let p = out[..at].windows(4).rposition(|w| w == parent).unwrap() - 4;
            let size = u32::from_be_bytes(out[p..p + 4].try_into().unwrap()) - removed;
            out[p..p + 4].copy_from_slice(&size.to_be_bytes());
        }
        out
    }

    #[test]
    fn a_sample_table_claiming_millions_of_samples_is_refused_without_allocating_them() {
        let moov = clip_moov();
        assert!(Mp4Index::parse(&moov).is_ok(), "the clip itself indexes");
        let crafted = claim_samples(&moov, 400_000_000);
        let err = Mp4Index::parse(&crafted).unwrap_err();
        assert!(err.contains("400000000 samples"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 64, ..crate::testing::budget() })]
        #[test]
        fn damaged_indexes_never_panic(flips in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..8), raw in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = Mp4Index::parse(&raw);
            let mut moov = MOOV.with(|m| m.clone());
            for (at, byte) in flips {
                let i = at % moov.len();
                moov[i] = byte;
            }
            let _ = Mp4Index::parse(&moov);
        }
    }

    thread_local! {
        static MOOV: Vec<u8> = clip_moov();
    }
}
