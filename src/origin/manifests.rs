//! The manifests players read: HLS (master and per-rendition playlists, fMP4 segments) and DASH
//! (SegmentTemplate with SegmentTimeline), built from the presentation's index.

use super::{Presentation, Rendition};

fn secs(ticks: u64, timescale: u32) -> f64 {
    ticks as f64 / timescale.max(1) as f64
}

/// `QualityLevels(b)/Fragments(kind=t,format=f)`: one URL shape for every format.
pub fn fragment_url(r: &Rendition, t: &str, format: &str) -> String {
    format!(
        "QualityLevels({})/Fragments({}={t},format={format})",
        r.bitrate,
        r.kind()
    )
}

/// The HLS master playlist: one variant per video rung, audio as a rendition group.
pub fn hls_master(p: &Presentation) -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = &p.audio {
        s.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"QualityLevels({})/Manifest(audio,format=m3u8-aapl)\"\n",
            a.bitrate
        ));
    }
    for v in &p.video {
        let track = v.track();
        let (w, h) = track.size();
        let codecs = match &p.audio {
            Some(a) => format!("{},{}", track.codec(), a.track().codec()),
            None => track.codec(),
        };
        // As RFC 8216 defines them: the peak and the average segment bit rate, audio included.
        let audio = p.audio.as_ref().map(|a| a.rates()).unwrap_or_default();
        let rates = v.rates();
        let (peak, average) = (rates.peak + audio.peak, rates.average + audio.average);
        s.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},RESOLUTION={w}x{h},FRAME-RATE={:.3},CODECS=\"{codecs}\"",
            track.frame_rate()
        ));
        if p.audio.is_some() {
            s.push_str(",AUDIO=\"audio\"");
        }
        s.push_str(&format!(
            "\nQualityLevels({})/Manifest(video,format=m3u8-aapl)\n",
            v.bitrate
        ));
    }
    s
}

/// One rendition's HLS media playlist; its URLs resolve under `QualityLevels(b)/`. Segment URLs
/// end in `.m4s` (the init segment's in `.mp4`) because players such as ffmpeg only fetch HLS
/// segments whose names carry a media extension.
pub fn hls_media(r: &Rendition) -> String {
    let track = r.track();
    let target = r
        .fragments
        .iter()
        .map(|f| secs(track.duration(f), track.timescale).ceil() as u64)
        .max()
        .unwrap_or(2);
    let local = |u: String| {
        u.split_once('/')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or(u)
    };
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"{}\"\n",
        local(fragment_url(r, "i", "m3u8-aapl")) + ".mp4"
    );
    for f in &r.fragments {
        s.push_str(&format!(
            "#EXTINF:{:.6},\n{}\n",
            secs(track.duration(f), track.timescale),
            local(fragment_url(r, &track.start(f).to_string(), "m3u8-aapl")) + ".m4s"
        ));
    }
    s.push_str("#EXT-X-ENDLIST\n");
    s
}

fn representation(r: &Rendition, id: usize) -> String {
    let track = r.track();
    let timeline: String = r
        .fragments
        .iter()
        .map(|f| format!("<S t=\"{}\" d=\"{}\"/>", track.start(f), track.duration(f)))
        .collect();
    let template = format!(
        "<SegmentTemplate timescale=\"{}\" initialization=\"{}\" media=\"{}\"><SegmentTimeline>{timeline}</SegmentTimeline></SegmentTemplate>",
        track.timescale,
        fragment_url(r, "i", "mpd-time-csf"),
        fragment_url(r, "$Time$", "mpd-time-csf"),
    );
    if track.video {
        let (w, h) = track.size();
        format!("<Representation id=\"{id}\" bandwidth=\"{}\" width=\"{w}\" height=\"{h}\" codecs=\"{}\">{template}</Representation>", r.bitrate, track.codec())
    } else {
        format!(
            "<Representation id=\"{id}\" bandwidth=\"{}\" codecs=\"{}\" audioSamplingRate=\"{}\"><AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\"/>{template}</Representation>",
            r.bitrate,
            track.codec(),
            track.timescale
        )
    }
}

/// An ISO 8601 duration in whole milliseconds, rounded up: `PT30.001S`.
fn iso_duration(secs: f64) -> String {
    let ms = (secs * 1000.0 - 1e-6).ceil().max(0.0) as u64;
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// The DASH manifest (`format=mpd-time-csf`).
pub fn dash(p: &Presentation) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"PT3S\">\n<Period>\n<AdaptationSet id=\"1\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n",
        iso_duration(p.duration_secs())
    );
    for (i, v) in p.video.iter().enumerate() {
        s.push_str(&representation(v, i + 1));
        s.push('\n');
    }
    s.push_str("</AdaptationSet>\n");
    if let Some(a) = &p.audio {
        s.push_str("<AdaptationSet id=\"2\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">\n");
        s.push_str(&representation(a, p.video.len() + 1));
        s.push_str("\n</AdaptationSet>\n");
    }
    s.push_str("</Period>\n</MPD>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::iso_duration;

    #[test]
    fn durations_round_up_to_the_millisecond() {
        assert_eq!(iso_duration(30.0), "PT30.000S");
        assert_eq!(iso_duration(30.00018), "PT30.001S");
        assert_eq!(iso_duration(4.9995), "PT5.000S");
        assert_eq!(iso_duration(0.0), "PT0.000S");
    }
}
