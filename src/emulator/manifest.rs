//! The manifests MES wrote beside the MP4s: a SMIL server manifest (`.ism`) that lists the
//! files with their bitrates and track ids, a Smooth client manifest (`.ismc`) with the
//! quality levels and the 2 s chunks, on the 10 MHz timescale; and its two metadata files,
//! `{source}_manifest.xml` (what was written) and `{input asset GUID}_metadata.xml` (what was
//! read), in the schemas of the reference's output and input metadata pages.

use std::path::Path;

use super::encoder::{Audio, Rung, GOP_SECONDS};

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
pub fn ism(name: &str, rungs: &[Rung], audio: Option<Audio>) -> String {
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
    if let (Some(a), Some(first)) = (audio, rungs.first()) {
        s.push_str(&format!(
            "      <audio src=\"{}\" systemBitrate=\"{}\">\n        <param name=\"trackID\" value=\"2\" valuetype=\"data\" />\n      </audio>\n",
            esc(&first.file_name(name)),
            a.kbps * 1000
        ));
    }
    s.push_str("    </switch>\n  </body>\n</smil>\n");
    s
}

/// The client manifest: quality levels (with each rung's CodecPrivateData, in rung order) and
/// chunk durations (2 s GOPs, the last one shorter).
pub fn ismc(
    rungs: &[Rung],
    codecs: &[CodecData],
    duration_secs: f64,
    audio: Option<Audio>,
) -> String {
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
    if let Some(a) = audio {
        let (asc, rate, chans) = codecs
            .first()
            .and_then(|c| c.audio.clone())
            .unwrap_or_else(|| ("1190".into(), 48000, 2));
        s.push_str(&format!(
            "  <StreamIndex Chunks=\"{}\" Type=\"audio\" Url=\"QualityLevels({{bitrate}})/Fragments(audio={{start time}})\" QualityLevels=\"1\" Language=\"und\">\n    <QualityLevel Index=\"0\" Bitrate=\"{}\" FourCC=\"AACL\" SamplingRate=\"{rate}\" Channels=\"{chans}\" BitsPerSample=\"16\" PacketSize=\"4\" AudioTag=\"255\" CodecPrivateData=\"{asc}\" />\n{c_elems}  </StreamIndex>\n",
            chunks.len(),
            a.kbps * 1000
        ));
    }
    s.push_str("</SmoothStreamingMedia>\n");
    s
}

/// `PT8.4288444S`: seconds as an xs:duration.
fn xs_duration(secs: f64) -> String {
    let s = format!("{:.3}", secs.max(0.0));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("PT{s}S")
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// One file MES wrote: its name, size in bytes and the rung it holds.
pub struct Written<'a> {
    pub name: String,
    pub size: u64,
    pub rung: &'a Rung,
}

/// `{source}_manifest.xml`: one `AssetFile` per MP4 with its size, duration, source, video
/// track (size, aspect ratio, frame rate, measured and target kbps) and audio track.
pub fn output_metadata(
    source: &str,
    files: &[Written<'_>],
    src: &super::encoder::Source,
    audio: Audio,
) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<AssetFiles xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns=\"http://schemas.microsoft.com/windowsazure/mediaservices/2013/05/mediaencoder/metadata\">\n",
    );
    for f in files {
        let r = f.rung;
        let g = gcd(r.width, r.height);
        let kbps = (f.size as f64 * 8.0 / src.duration.max(0.001) / 1000.0).round() as u64;
        s.push_str(&format!(
            "  <AssetFile Name=\"{}\" Size=\"{}\" Duration=\"{}\">\n    <Sources>\n      <Source Name=\"{}\" />\n    </Sources>\n    <VideoTracks>\n      <VideoTrack Id=\"1\" FourCC=\"avc1\" Width=\"{}\" Height=\"{}\" DisplayAspectRatioNumerator=\"{}\" DisplayAspectRatioDenominator=\"{}\" Framerate=\"{:.3}\" TargetFramerate=\"0\" Bitrate=\"{kbps}\" TargetBitrate=\"{}\" />\n    </VideoTracks>\n",
            esc(&f.name),
            f.size,
            xs_duration(src.duration),
            esc(source),
            r.width,
            r.height,
            r.width / g,
            r.height / g,
            src.fps,
            r.kbps
        ));
        if src.has_audio {
            s.push_str(&format!(
                "    <AudioTracks>\n      <AudioTrack Id=\"2\" Codec=\"aac\" Channels=\"{}\" SamplingRate=\"48000\" Bitrate=\"{}\" BitsPerSample=\"0\" />\n    </AudioTracks>\n",
                audio.channels,
                audio.kbps
            ));
        }
        s.push_str("  </AssetFile>\n");
    }
    s.push_str("</AssetFiles>\n");
    s
}

/// `{input asset GUID}_metadata.xml`: the source as it was read (size, duration, its video
/// and audio tracks).
pub fn input_metadata(name: &str, size: u64, src: &super::encoder::Source) -> String {
    let g = gcd(src.width, src.height);
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<AssetFiles xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns=\"http://schemas.microsoft.com/windowsazure/mediaservices/2014/07/mediaencoder/inputmetadata\">\n  <AssetFile Name=\"{}\" Size=\"{size}\" Duration=\"{}\" NumberOfStreams=\"{}\" FormatNames=\"mov,mp4,m4a,3gp,3g2,mj2\" FormatVerboseName=\"QuickTime / MOV\" StartTime=\"PT0S\" OverallBitRate=\"{}\">\n    <VideoTracks>\n      <VideoTrack Id=\"1\" Codec=\"h264\" Width=\"{}\" Height=\"{}\" DisplayAspectRatioNumerator=\"{}\" DisplayAspectRatioDenominator=\"{}\" FrameRate=\"{:.3}\" />\n    </VideoTracks>\n",
        esc(name),
        xs_duration(src.duration),
        if src.has_audio { 2 } else { 1 },
        (size as f64 * 8.0 / src.duration.max(0.001) / 1000.0).round() as u64,
        src.width,
        src.height,
        src.width / g,
        src.height / g,
        src.fps
    );
    if src.has_audio {
        s.push_str(
            "    <AudioTracks>\n      <AudioTrack Id=\"2\" Codec=\"aac\" />\n    </AudioTracks>\n",
        );
    }
    s.push_str("  </AssetFile>\n</AssetFiles>\n");
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
                ..Default::default()
            },
            Rung {
                width: 320,
                height: 180,
                kbps: 380,
                ..Default::default()
            },
        ];
        let s = ism(
            "clip",
            &rungs,
            Some(super::super::encoder::Audio::default()),
        );
        assert!(s.contains("src=\"clip_640x360_1150.mp4\" systemBitrate=\"1150000\""));
        assert_eq!(s.matches("<video ").count(), 2);
        assert_eq!(s.matches("<audio ").count(), 1);
        let c = ismc(
            &rungs,
            &[],
            5.0,
            Some(super::super::encoder::Audio::default()),
        );
        assert!(c.contains("Duration=\"50000000\""));
        assert!(c.contains("Chunks=\"3\""));
        assert!(c.contains("<c t=\"0\" d=\"20000000\" />"));
        assert!(c.contains("<c d=\"10000000\" />"));
    }
}
