//! The manifests MES wrote beside the MP4s: a SMIL server manifest (`.ism`) that lists the
//! files with their bitrates and track ids, and a Smooth client manifest (`.ismc`) with the
//! quality levels and the 2 s chunks, on the 10 MHz timescale.

use std::path::Path;

use super::encoder::{Rung, AUDIO_KBPS, GOP_SECONDS};

/// What a Smooth client needs to set up its decoders, read from an encoded MP4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodecData {
    /// `00000001` + SPS + `00000001` + PPS, in upper-case hex.
    pub video: String,
    /// The AAC AudioSpecificConfig in hex (e.g. `1190`), sampling rate and channels.
    pub audio: Option<(String, u32, u8)>,
}

/// Reads the H.264 parameter sets and the AAC configuration of an MP4.
pub fn codec_data(path: &Path) -> Result<CodecData, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mp4 = mp4::read_mp4(f).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = CodecData::default();
    for track in mp4.tracks().values() {
        match track.track_type() {
            Ok(mp4::TrackType::Video) => {
                let sps = track.sequence_parameter_set().map_err(|e| e.to_string())?;
                let pps = track.picture_parameter_set().map_err(|e| e.to_string())?;
                out.video = format!(
                    "00000001{}00000001{}",
                    hex::encode_upper(sps),
                    hex::encode_upper(pps)
                );
            }
            Ok(mp4::TrackType::Audio) => {
                let profile = track.audio_profile().map(|p| p as u16).unwrap_or(2);
                let freq = track.sample_freq_index().map(|f| f as u16).unwrap_or(3);
                let chans = track.channel_config().map(|c| c as u16).unwrap_or(2);
                let asc = (profile << 11) | (freq << 7) | (chans << 3);
                let rate = track.sample_freq_index().map(|f| f.freq()).unwrap_or(48000);
                out.audio = Some((format!("{asc:04X}"), rate, chans as u8));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Smooth Streaming's timescale: 10,000,000 ticks a second.
pub const TIMESCALE: u64 = 10_000_000;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The server manifest: one `<video>` per rung (track 1), one `<audio>` (track 2 of the first file).
pub fn ism(name: &str, rungs: &[Rung], has_audio: bool) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>\n<smil xmlns=\"http://www.w3.org/2001/SMIL20/Language\">\n  <head>\n    <meta name=\"formats\" content=\"mp4-v2\" />\n  </head>\n  <body>\n    <switch>\n",
    );
    for r in rungs {
        s.push_str(&format!(
            "      <video src=\"{}\" systemBitrate=\"{}\">\n        <param name=\"trackID\" value=\"1\" valuetype=\"data\" />\n      </video>\n",
            esc(&r.file_name(name)),
            r.kbps * 1000
        ));
    }
    if has_audio {
        if let Some(first) = rungs.first() {
            s.push_str(&format!(
                "      <audio src=\"{}\" systemBitrate=\"{}\">\n        <param name=\"trackID\" value=\"2\" valuetype=\"data\" />\n      </audio>\n",
                esc(&first.file_name(name)),
                AUDIO_KBPS * 1000
            ));
        }
    }
    s.push_str("    </switch>\n  </body>\n</smil>\n");
    s
}

/// The client manifest: quality levels (with each rung's CodecPrivateData, in rung order) and
/// chunk durations (2 s GOPs, the last one shorter).
pub fn ismc(rungs: &[Rung], codecs: &[CodecData], duration_secs: f64, has_audio: bool) -> String {
    let total = (duration_secs * TIMESCALE as f64).round() as u64;
    let chunk = GOP_SECONDS as u64 * TIMESCALE;
    let mut chunks = Vec::new();
    let mut t = 0;
    while t < total {
        chunks.push((t, chunk.min(total - t)));
        t += chunk;
    }
    let c_elems: String = chunks
        .iter()
        .enumerate()
        .map(|(i, (t, d))| {
            if i == 0 {
                format!("      <c t=\"{t}\" d=\"{d}\" />\n")
            } else {
                format!("      <c d=\"{d}\" />\n")
            }
        })
        .collect();
    let (max_w, max_h) = rungs
        .iter()
        .fold((0, 0), |(w, h), r| (w.max(r.width), h.max(r.height)));
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SmoothStreamingMedia MajorVersion=\"2\" MinorVersion=\"2\" Duration=\"{total}\" TimeScale=\"{TIMESCALE}\">\n  <StreamIndex Chunks=\"{}\" Type=\"video\" Url=\"QualityLevels({{bitrate}})/Fragments(video={{start time}})\" QualityLevels=\"{}\" MaxWidth=\"{max_w}\" MaxHeight=\"{max_h}\" DisplayWidth=\"{max_w}\" DisplayHeight=\"{max_h}\">\n",
        chunks.len(),
        rungs.len()
    );
    for (i, r) in rungs.iter().enumerate() {
        let cpd = codecs.get(i).map(|c| c.video.as_str()).unwrap_or_default();
        s.push_str(&format!(
            "    <QualityLevel Index=\"{i}\" Bitrate=\"{}\" FourCC=\"H264\" MaxWidth=\"{}\" MaxHeight=\"{}\" CodecPrivateData=\"{cpd}\" />\n",
            r.kbps * 1000, r.width, r.height
        ));
    }
    s.push_str(&c_elems);
    s.push_str("  </StreamIndex>\n");
    if has_audio {
        let (asc, rate, chans) = codecs
            .first()
            .and_then(|c| c.audio.clone())
            .unwrap_or_else(|| ("1190".into(), 48000, 2));
        s.push_str(&format!(
            "  <StreamIndex Chunks=\"{}\" Type=\"audio\" Url=\"QualityLevels({{bitrate}})/Fragments(audio={{start time}})\" QualityLevels=\"1\" Language=\"und\">\n    <QualityLevel Index=\"0\" Bitrate=\"{}\" FourCC=\"AACL\" SamplingRate=\"{rate}\" Channels=\"{chans}\" BitsPerSample=\"16\" PacketSize=\"4\" AudioTag=\"255\" CodecPrivateData=\"{asc}\" />\n{c_elems}  </StreamIndex>\n",
            chunks.len(),
            AUDIO_KBPS * 1000
        ));
    }
    s.push_str("</SmoothStreamingMedia>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_list_every_rung() {
        let rungs = vec![
            Rung {
                width: 640,
                height: 360,
                kbps: 1150,
            },
            Rung {
                width: 320,
                height: 180,
                kbps: 380,
            },
        ];
        let s = ism("clip", &rungs, true);
        assert!(s.contains("src=\"clip_640x360_1150.mp4\" systemBitrate=\"1150000\""));
        assert_eq!(s.matches("<video ").count(), 2);
        assert_eq!(s.matches("<audio ").count(), 1);
        let c = ismc(&rungs, &[], 5.0, true);
        assert!(c.contains("Duration=\"50000000\""));
        assert!(c.contains("Chunks=\"3\""));
        assert!(c.contains("<c t=\"0\" d=\"20000000\" />"));
        assert!(c.contains("<c d=\"10000000\" />"));
    }
}
