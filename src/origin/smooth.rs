//! Smooth Streaming: the client manifest (10 MHz timescale, quality levels with their
//! CodecPrivateData, chunk times) and PIFF fragments (`moof` + `mdat` whose times are in 10 MHz
//! ticks, with the `tfxd` box that carries the fragment's absolute time and duration).

use std::ops::Range;

use mp4_atom::{Codec, Encode, Mfhd, Moof, Tfdt, Tfhd, Traf, Trun, TrunEntry, TrunSamples};

use super::index::Track;
use super::{Presentation, Rendition};

/// Smooth's timescale: 10,000,000 ticks a second.
pub const TIMESCALE: u64 = 10_000_000;

/// The PIFF track fragment extended header box (`tfxd`).
const TFXD: [u8; 16] = [
    0x6D, 0x1D, 0x9B, 0x05, 0x42, 0xD5, 0x44, 0xE6, 0x80, 0xE2, 0x14, 0x1D, 0xAF, 0xF7, 0x57, 0xB2,
];

/// A time in the track's timescale, in 10 MHz ticks.
pub fn hns(t: u64, timescale: u32) -> u64 {
    (t as u128 * TIMESCALE as u128 / timescale.max(1) as u128) as u64
}

fn codec_private_data(track: &Track) -> (String, Option<(u32, u16)>) {
    match track.trak.mdia.minf.stbl.stsd.codecs.first() {
        Some(Codec::Avc1(a)) => {
            let mut s = String::new();
            for nal in a
                .avcc
                .sequence_parameter_sets
                .iter()
                .chain(a.avcc.picture_parameter_sets.iter())
            {
                s.push_str("00000001");
                s.push_str(&hex::encode_upper(nal));
            }
            (s, None)
        }
        Some(Codec::Mp4a(m)) => {
            let asc = match &m.esds.es_desc.dec_config.dec_specific {
                Some(d) => {
                    ((d.profile as u16) << 11)
                        | ((d.freq_index as u16) << 7)
                        | ((d.chan_conf as u16) << 3)
                }
                None => 0x1190,
            };
            (
                format!("{asc:04X}"),
                Some((track.timescale, m.audio.channel_count)),
            )
        }
        _ => (String::new(), None),
    }
}

fn chunks(r: &Rendition) -> String {
    let t = r.track();
    r.fragments
        .iter()
        .map(|f| {
            let start = hns(t.start(f), t.timescale);
            let end = hns(t.start(f) + t.duration(f), t.timescale);
            format!("    <c t=\"{start}\" d=\"{}\" />\n", end - start)
        })
        .collect()
}

/// The Smooth client manifest (`…/manifest`).
pub fn manifest(p: &Presentation) -> String {
    let duration = (p.duration_secs() * TIMESCALE as f64).ceil() as u64;
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SmoothStreamingMedia MajorVersion=\"2\" MinorVersion=\"2\" Duration=\"{duration}\" TimeScale=\"{TIMESCALE}\">\n"
    );
    if let Some(first) = p.video.first() {
        let (mw, mh) = p
            .video
            .iter()
            .map(|v| v.track().size())
            .fold((0, 0), |(w, h), (a, b)| (w.max(a), h.max(b)));
        s.push_str(&format!(
            "  <StreamIndex Type=\"video\" Name=\"video\" Chunks=\"{}\" QualityLevels=\"{}\" Url=\"QualityLevels({{bitrate}})/Fragments(video={{start time}})\" MaxWidth=\"{mw}\" MaxHeight=\"{mh}\" DisplayWidth=\"{mw}\" DisplayHeight=\"{mh}\">\n",
            first.fragments.len(),
            p.video.len()
        ));
        for (i, v) in p.video.iter().enumerate() {
            let (w, h) = v.track().size();
            let (cpd, _) = codec_private_data(v.track());
            s.push_str(&format!(
                "    <QualityLevel Index=\"{i}\" Bitrate=\"{}\" FourCC=\"H264\" MaxWidth=\"{w}\" MaxHeight=\"{h}\" CodecPrivateData=\"{cpd}\" />\n",
                v.bitrate
            ));
        }
        s.push_str(&chunks(first));
        s.push_str("  </StreamIndex>\n");
    }
    if let Some(a) = &p.audio {
        let (cpd, info) = codec_private_data(a.track());
        let (rate, channels) = info.unwrap_or((48000, 2));
        s.push_str(&format!(
            "  <StreamIndex Type=\"audio\" Name=\"audio\" Chunks=\"{}\" QualityLevels=\"1\" Url=\"QualityLevels({{bitrate}})/Fragments(audio={{start time}})\">\n    <QualityLevel Index=\"0\" Bitrate=\"{}\" FourCC=\"AACL\" SamplingRate=\"{rate}\" Channels=\"{channels}\" BitsPerSample=\"16\" PacketSize=\"4\" AudioTag=\"255\" CodecPrivateData=\"{cpd}\" />\n",
            a.fragments.len(),
            a.bitrate
        ));
        s.push_str(&chunks(a));
        s.push_str("  </StreamIndex>\n");
    }
    s.push_str("</SmoothStreamingMedia>\n");
    s
}

/// The fragment of `r` starting at `start_hns` (10 MHz ticks), if there is one.
pub fn fragment_at(r: &Rendition, start_hns: u64) -> Option<(usize, Range<usize>)> {
    let t = r.track();
    r.fragments
        .iter()
        .enumerate()
        .find(|(_, f)| hns(t.start(f), t.timescale) == start_hns)
        .map(|(i, f)| (i, f.clone()))
}

/// A PIFF fragment: sample times converted to 10 MHz ticks, a `tfxd` box in the `traf`.
pub fn fragment(
    track: &Track,
    range: Range<usize>,
    sequence: u32,
    data: &[u8],
    data_start: u64,
) -> Result<Vec<u8>, String> {
    let samples = &track.samples[range];
    let first = samples.first().ok_or("an empty fragment")?;
    let ts = track.timescale;
    // Smooth has no edit list: the composition times carry it (signed, in a version 1
    // `trun`), so the encoder's B-frame delay and the AAC priming are not played, and video
    // and audio start together as in HLS and DASH (whose init segments keep the edit list).
    let shift = hns(track.presentation_offset(), ts) as i64;
    let entries: Vec<TrunEntry> = samples
        .iter()
        .map(|s| {
            let duration = hns(s.dts + s.duration as u64, ts) - hns(s.dts, ts);
            let cts = s.cts_offset.signum() * hns(s.cts_offset.unsigned_abs(), ts) as i64 - shift;
            TrunEntry {
                duration: Some(duration as u32),
                size: Some(s.size),
                flags: Some(if s.sync || !track.video {
                    0x0200_0000
                } else {
                    0x0101_0000
                }),
                cts: Some(cts),
            }
        })
        .collect();
    let start = hns(first.dts, ts);
    let duration: u64 = entries.iter().map(|e| e.duration.unwrap_or(0) as u64).sum();
    let moof = |data_offset: i32| Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: 1,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: start,
            }),
            trun: vec![Trun {
                data_offset: Some(data_offset),
                samples: TrunSamples::Explicit(entries.clone()),
            }],
            ..Default::default()
        }],
    };
    let mut tfxd = Vec::with_capacity(44);
    tfxd.extend_from_slice(&44u32.to_be_bytes());
    tfxd.extend_from_slice(b"uuid");
    tfxd.extend_from_slice(&TFXD);
    tfxd.extend_from_slice(&[1, 0, 0, 0]);
    tfxd.extend_from_slice(&start.to_be_bytes());
    tfxd.extend_from_slice(&duration.to_be_bytes());
    let mut probe = Vec::new();
    moof(0).encode(&mut probe).map_err(|e| e.to_string())?;
    let moof_size = probe.len() + tfxd.len();
    let payload: usize = samples.iter().map(|s| s.size as usize).sum();
    // Sized once: a buffer grown by doubling holds up to twice the fragment in the cache.
    let mut out = Vec::with_capacity(moof_size + 8 + payload);
    moof((moof_size + 8) as i32)
        .encode(&mut out)
        .map_err(|e| e.to_string())?;
    // The traf is the moof's last box: append tfxd to it and grow both sizes.
    let traf_at = 8 + u32::from_be_bytes(out[8..12].try_into().expect("4 bytes")) as usize;
    if &out[traf_at + 4..traf_at + 8] != b"traf" {
        return Err("unexpected moof layout".into());
    }
    out.extend_from_slice(&tfxd);
    for at in [0, traf_at] {
        let size =
            u32::from_be_bytes(out[at..at + 4].try_into().expect("4 bytes")) + tfxd.len() as u32;
        out[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }
    super::fmp4::push_mdat(&mut out, samples, data, data_start)?;
    Ok(out)
}
