//! Fragmented MP4 with `mp4-atom`: an initialization segment per track (`ftyp` + a `moov` with
//! empty sample tables and `mvex`), and media fragments (`moof` with `mfhd`, `tfhd`, `tfdt`,
//! `trun`, then `mdat`) cut from the progressive file's samples.

use std::ops::Range;

use mp4_atom::{
    Encode, FourCC, Ftyp, Mfhd, Moof, Moov, Mvex, Stco, StszSamples, Tfdt, Tfhd, Traf, Trex, Trun,
    TrunEntry, TrunSamples,
};

use super::index::{Mp4Index, Sample, Track};

/// Sample flags: a sync sample (depends on nothing) and a non-sync one.
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

fn encode(out: &mut Vec<u8>, atom: &impl Encode) -> Result<(), String> {
    atom.encode(out).map_err(|e| e.to_string())
}

/// The initialization segment of one track.
pub fn init_segment(index: &Mp4Index, track: &Track) -> Result<Vec<u8>, String> {
    let mut trak = track.trak.clone();
    let stbl = &mut trak.mdia.minf.stbl;
    stbl.stts.entries.clear();
    stbl.ctts = None;
    stbl.stss = None;
    stbl.stsc.entries.clear();
    stbl.stsz.samples = StszSamples::Different { sizes: Vec::new() };
    stbl.stco = Some(Stco::default());
    stbl.co64 = None;
    let moov = Moov {
        mvhd: index.moov.mvhd.clone(),
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: track.id,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: 0,
            }],
        }),
        trak: vec![trak],
        ..Default::default()
    };
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: vec![
            FourCC::new(b"iso6"),
            FourCC::new(b"isom"),
            FourCC::new(b"dash"),
            FourCC::new(b"mp41"),
        ],
    };
    let mut out = Vec::new();
    encode(&mut out, &ftyp)?;
    encode(&mut out, &moov)?;
    Ok(out)
}

/// The `moof` of a fragment of `samples` whose `mdat` payload starts `data_offset` bytes
/// after the `moof`'s first byte.
fn moof(track: &Track, samples: &[Sample], sequence: u32, data_offset: i32) -> Moof {
    let entries: Vec<TrunEntry> = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.size),
            flags: Some(if s.sync || !track.video {
                SYNC
            } else {
                NON_SYNC
            }),
            cts: Some(s.cts_offset),
        })
        .collect();
    Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: track.id,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: samples.first().map_or(0, |s| s.dts),
            }),
            trun: vec![Trun {
                data_offset: Some(data_offset),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Default::default()
        }],
    }
}

/// The size in bytes of the media fragment of samples `range` (what `media_segment` makes).
pub fn segment_size(track: &Track, range: Range<usize>) -> Result<usize, String> {
    let samples = &track.samples[range];
    let mut probe = Vec::new();
    encode(&mut probe, &moof(track, samples, 0, 0))?;
    Ok(probe.len() + 8 + samples.iter().map(|s| s.size as usize).sum::<usize>())
}

/// One media fragment (moof + mdat) of samples `range`; `data` holds the file's bytes from
/// `data_start` on, covering every sample of the range.
pub fn media_segment(
    track: &Track,
    range: Range<usize>,
    sequence: u32,
    data: &[u8],
    data_start: u64,
) -> Result<Vec<u8>, String> {
    let samples = &track.samples[range];
    if samples.is_empty() {
        return Err("an empty fragment".into());
    }
    let mut probe = Vec::new();
    encode(&mut probe, &moof(track, samples, sequence, 0))?;
    let moof_size = probe.len();
    let payload: usize = samples.iter().map(|s| s.size as usize).sum();
    let mut out = Vec::with_capacity(moof_size + 8 + payload);
    encode(
        &mut out,
        &moof(track, samples, sequence, (moof_size + 8) as i32),
    )?;
    push_mdat(&mut out, samples, data, data_start)?;
    Ok(out)
}

/// Appends the `mdat` of `samples`, their bytes taken from `data` (the file's bytes from
/// `data_start` on).
pub(super) fn push_mdat(
    out: &mut Vec<u8>,
    samples: &[Sample],
    data: &[u8],
    data_start: u64,
) -> Result<(), String> {
    let payload: usize = samples.iter().map(|s| s.size as usize).sum();
    out.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for s in samples {
        let at = (s.offset - data_start) as usize;
        let bytes = data
            .get(at..at + s.size as usize)
            .ok_or("sample bytes outside the range read")?;
        out.extend_from_slice(bytes);
    }
    Ok(())
}

/// The byte span of the file covering `range`'s samples.
pub fn span(track: &Track, range: Range<usize>) -> Range<u64> {
    let samples = &track.samples[range];
    let start = samples.iter().map(|s| s.offset).min().unwrap_or(0);
    let end = samples
        .iter()
        .map(|s| s.offset + s.size as u64)
        .max()
        .unwrap_or(0);
    start..end
}
