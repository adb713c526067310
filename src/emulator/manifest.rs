//! The manifests MES wrote beside the MP4s: a SMIL server manifest (`.ism`) that lists the
//! files with their bitrates and track ids, and a Smooth client manifest (`.ismc`) with the
//! quality levels and the 2 s chunks, on the 10 MHz timescale.

use super::encoder::{Rung, AUDIO_KBPS, GOP_SECONDS};

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

/// The client manifest: quality levels and chunk durations (2 s GOPs, the last one shorter).
pub fn ismc(rungs: &[Rung], duration_secs: f64, has_audio: bool) -> String {
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
        s.push_str(&format!(
            "    <QualityLevel Index=\"{i}\" Bitrate=\"{}\" FourCC=\"H264\" MaxWidth=\"{}\" MaxHeight=\"{}\" />\n",
            r.kbps * 1000, r.width, r.height
        ));
    }
    s.push_str(&c_elems);
    s.push_str("  </StreamIndex>\n");
    if has_audio {
        s.push_str(&format!(
            "  <StreamIndex Chunks=\"{}\" Type=\"audio\" Url=\"QualityLevels({{bitrate}})/Fragments(audio={{start time}})\" QualityLevels=\"1\" Language=\"und\">\n    <QualityLevel Index=\"0\" Bitrate=\"{}\" FourCC=\"AACL\" SamplingRate=\"48000\" Channels=\"2\" BitsPerSample=\"16\" PacketSize=\"4\" AudioTag=\"255\" />\n{c_elems}  </StreamIndex>\n",
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
        let c = ismc(&rungs, 5.0, true);
        assert!(c.contains("Duration=\"50000000\""));
        assert!(c.contains("Chunks=\"3\""));
        assert!(c.contains("<c t=\"0\" d=\"20000000\" />"));
        assert!(c.contains("<c d=\"10000000\" />"));
    }
}
