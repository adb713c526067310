//! Media Encoder Standard's presets, as a task's `Configuration` named or wrote them: the
//! built-in names with their H.264 layers (as the service's preset pages and the SDK's
//! `MediaEncoderStandardTaskPresetStrings` list them), and custom presets in MES's own JSON
//! (`Codecs` / `H264Layers` / `Outputs`) and XML (`<Preset xmlns="…/Preset/2014/03">`) schema,
//! layer sizes in pixels or percent of the source.
//!
//! What the emulator keeps of a preset: its video ladder, its audio's channels and bitrate
//! (as AAC-LC: ffmpeg's own encoder has no HE-AAC), and its `FileName` pattern (MES's
//! `{Basename}_{Width}x{Height}_{VideoBitrate}.mp4` for the built-in presets).

/// A layer's width or height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Pixels(u32),
    /// Percent of the source's.
    Percent(f64),
}

/// One H.264 layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layer {
    pub width: Size,
    pub height: Size,
    pub kbps: u32,
}

/// What a configuration asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Preset {
    /// "Adaptive Streaming" and "Content Adaptive Multiple Bitrate MP4": a ladder chosen from
    /// the source.
    Auto,
    /// Fixed layers, top first, and the preset's `Outputs` `FileName` pattern (MES's
    /// default, `{Basename}_{Width}x{Height}_{VideoBitrate}.mp4`, when it gives none).
    Layers(Vec<Layer>, Option<String>),
}

/// A preset's AAC track: channels and kbps (MES's default: stereo, 128 kbps).
pub fn audio(configuration: &str) -> (u32, u32) {
    const STEREO: (u32, u32) = (2, 128);
    let c = configuration.trim().trim_start_matches('\u{feff}');
    let bounded = |channels: u32, kbps: u32| {
        if (1..=8).contains(&channels) && (16..=1024).contains(&kbps) {
            (channels, kbps)
        } else {
            STEREO
        }
    };
    if c.starts_with('{') || c.starts_with('<') {
        let custom = if c.starts_with('<') {
            read_xml(c).ok()
        } else {
            serde_json::from_str(c)
                .ok()
                .and_then(|v| read_json(&v).ok())
        };
        return match custom.and_then(|c| c.audio) {
            Some((channels, kbps)) => bounded(channels, kbps),
            None => STEREO,
        };
    }
    let lower = c.to_ascii_lowercase();
    if lower.ends_with("audio 5.1") {
        (6, 384)
    } else if lower.ends_with("for ios") {
        (2, 64)
    } else if lower == "h264 single bitrate 720p for android" {
        (2, 192)
    } else if lower == "h264 single bitrate low quality sd for android" {
        (2, 24)
    } else {
        STEREO
    }
}

/// The `FileName` macros the emulator fills in (MES's, for video outputs).
pub const MACROS: [&str; 9] = [
    "{Basename}",
    "{Width}",
    "{Height}",
    "{Bitrate}",
    "{VideoBitrate}",
    "{AudioBitrate}",
    "{Codec}",
    "{Channel}",
    "{Extension}",
];

/// A `FileName` pattern with only known macros.
fn pattern(p: &str) -> Result<String, String> {
    let mut rest = p;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("FileName '{p}': a '{{' without '}}'"))?;
        let m = &rest[open..open + close + 1];
        if !MACROS.contains(&m) && m != "{Resolution}" {
            return Err(format!(
                "FileName '{p}': {m} is not a macro for video outputs (use {})",
                MACROS.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(p.to_string())
}

/// Layers as (width, height, kbps), top first.
type Layers = &'static [(u32, u32, u32)];

/// (name, layers) of every built-in H.264 preset.
const BUILT_IN: [(&str, Layers); 13] = [
    ("H264 Multiple Bitrate 1080p", &MBR_1080P),
    (
        "H264 Multiple Bitrate 16x9 SD",
        &[
            (848, 480, 1900),
            (848, 480, 1300),
            (640, 360, 900),
            (640, 360, 650),
            (432, 240, 400),
        ],
    ),
    (
        "H264 Multiple Bitrate 16x9 for iOS",
        &[
            (1920, 1080, 8500),
            (1280, 720, 6500),
            (1280, 720, 5000),
            (960, 540, 3500),
            (640, 360, 1200),
            (640, 360, 600),
            (480, 270, 400),
            (416, 214, 200),
        ],
    ),
    (
        "H264 Multiple Bitrate 4K",
        &[
            (4096, 2304, 20000),
            (3840, 2160, 18000),
            (3840, 2160, 16000),
            (3840, 2160, 14000),
            (2560, 1440, 12000),
            (2560, 1440, 10000),
            (2560, 1440, 8000),
            (1920, 1080, 6000),
            (1920, 1080, 4700),
            (1280, 720, 3400),
            (960, 540, 2250),
            (640, 360, 1000),
        ],
    ),
    (
        "H264 Multiple Bitrate 4x3 SD",
        &[
            (640, 480, 1600),
            (640, 480, 1300),
            (480, 360, 800),
            (480, 360, 600),
            (360, 240, 400),
        ],
    ),
    (
        "H264 Multiple Bitrate 4x3 for iOS",
        &[
            (1920, 1440, 8500),
            (1280, 960, 6500),
            (1280, 960, 5000),
            (960, 720, 3500),
            (640, 480, 1200),
            (640, 480, 600),
            (480, 360, 400),
            (400, 300, 200),
        ],
    ),
    (
        "H264 Multiple Bitrate 720p",
        &[
            (1280, 720, 3400),
            (960, 540, 2250),
            (960, 540, 1500),
            (640, 360, 1000),
            (640, 360, 650),
            (320, 180, 400),
        ],
    ),
    ("H264 Single Bitrate 1080p", &[(1920, 1080, 6750)]),
    ("H264 Single Bitrate 16x9 SD", &[(848, 480, 2200)]),
    ("H264 Single Bitrate 4K", &[(3840, 2160, 18000)]),
    ("H264 Single Bitrate 4x3 SD", &[(640, 480, 1800)]),
    ("H264 Single Bitrate 720p", &[(1280, 720, 4500)]),
    ("H264 Single Bitrate 720p for Android", &[(1280, 720, 2000)]),
];

/// Built-in names that are another's layers with other audio, or not listed above.
const ALIASES: [(&str, &str); 8] = [
    (
        "H264 Multiple Bitrate 1080p Audio 5.1",
        "H264 Multiple Bitrate 1080p",
    ),
    (
        "H264 Multiple Bitrate 16x9 SD Audio 5.1",
        "H264 Multiple Bitrate 16x9 SD",
    ),
    (
        "H264 Multiple Bitrate 4K Audio 5.1",
        "H264 Multiple Bitrate 4K",
    ),
    (
        "H264 Multiple Bitrate 4x3 SD Audio 5.1",
        "H264 Multiple Bitrate 4x3 SD",
    ),
    (
        "H264 Multiple Bitrate 720p Audio 5.1",
        "H264 Multiple Bitrate 720p",
    ),
    (
        "H264 Single Bitrate 1080p Audio 5.1",
        "H264 Single Bitrate 1080p",
    ),
    (
        "H264 Single Bitrate 16x9 SD Audio 5.1",
        "H264 Single Bitrate 16x9 SD",
    ),
    (
        "H264 Single Bitrate 720p Audio 5.1",
        "H264 Single Bitrate 720p",
    ),
];

const MBR_1080P: [(u32, u32, u32); 8] = [
    (1920, 1080, 6000),
    (1920, 1080, 4700),
    (1280, 720, 3400),
    (960, 540, 2250),
    (960, 540, 1500),
    (640, 360, 1000),
    (640, 360, 650),
    (320, 180, 400),
];

/// Single layers not covered by a table line above: (name, w, h, kbps).
const MORE_SINGLE: [(&str, u32, u32, u32); 4] = [
    ("H264 Single Bitrate 4K Audio 5.1", 3840, 2160, 18000),
    ("H264 Single Bitrate 4x3 SD Audio 5.1", 640, 480, 1800),
    (
        "H264 Single Bitrate High Quality SD for Android",
        480,
        360,
        500,
    ),
    (
        "H264 Single Bitrate Low Quality SD for Android",
        176,
        144,
        56,
    ),
];

/// Every preset name MES knew (the two audio-only ones aside).
#[cfg(test)]
fn names() -> Vec<&'static str> {
    let mut n = vec![
        "Adaptive Streaming",
        "Content Adaptive Multiple Bitrate MP4",
    ];
    n.extend(BUILT_IN.iter().map(|(name, _)| *name));
    n.extend(ALIASES.iter().map(|(name, _)| *name));
    n.extend(MORE_SINGLE.iter().map(|(name, ..)| *name));
    n
}

fn pixels(layers: &[(u32, u32, u32)]) -> Preset {
    Preset::Layers(
        layers
            .iter()
            .map(|&(w, h, kbps)| Layer {
                width: Size::Pixels(w),
                height: Size::Pixels(h),
                kbps,
            })
            .collect(),
        None,
    )
}

/// A configuration's preset: a built-in name (in any case), MES JSON, MES XML. `None` when it
/// is none of these (the encoder's own JSON ladder, or an unknown name).
pub fn parse(configuration: &str) -> Result<Option<Preset>, String> {
    let c = configuration.trim().trim_start_matches('\u{feff}');
    if c.starts_with('<') {
        return xml(c).map(Some);
    }
    if c.starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(c).map_err(|e| format!("not valid JSON: {e}"))?;
        return if v.get("Codecs").is_some() {
            json(&v).map(Some)
        } else {
            Ok(None)
        };
    }
    let is = |name: &str| c.eq_ignore_ascii_case(name);
    if is("Adaptive Streaming") || is("Content Adaptive Multiple Bitrate MP4") {
        return Ok(Some(Preset::Auto));
    }
    if is("AAC Audio") || is("AAC Good Quality Audio") {
        return Err(format!(
            "'{c}' makes audio only; audio-only presets are not emulated"
        ));
    }
    let target = ALIASES
        .iter()
        .find(|(alias, _)| is(alias))
        .map_or(c, |(_, to)| *to);
    if let Some((_, layers)) = BUILT_IN
        .iter()
        .find(|(name, _)| target.eq_ignore_ascii_case(name))
    {
        return Ok(Some(pixels(layers)));
    }
    if let Some(&(_, w, h, kbps)) = MORE_SINGLE.iter().find(|(name, ..)| is(name)) {
        return Ok(Some(pixels(&[(w, h, kbps)])));
    }
    Ok(None)
}

/// `Width`/`Height` as MES read them: a number, a numeric string, or a percentage.
fn size(v: &str) -> Result<Size, String> {
    let v = v.trim();
    if let Some(p) = v.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("'{v}' is not a percentage"))?;
        if !(1.0..=100.0).contains(&p) {
            return Err(format!("'{v}': a percentage is 1% to 100%"));
        }
        return Ok(Size::Percent(p));
    }
    let px: u32 = v
        .parse()
        .map_err(|_| format!("'{v}' is not a size in pixels or percent"))?;
    if px == 0 || px > 8192 || px % 2 == 1 {
        return Err(format!(
            "'{v}': sizes are even numbers of pixels up to 8192"
        ));
    }
    Ok(Size::Pixels(px))
}

fn layer(width: &str, height: &str, kbps: &str) -> Result<Layer, String> {
    let kbps: u32 = kbps
        .trim()
        .parse()
        .ok()
        .filter(|k| (1..=100_000).contains(k))
        .ok_or_else(|| format!("Bitrate '{kbps}' is not a number of kbps up to 100000"))?;
    Ok(Layer {
        width: size(width)?,
        height: size(height)?,
        kbps,
    })
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a custom preset (MES's JSON or XML) says: its layers, its output `FileName`, and
/// its `AACAudio` channels and kbps.
struct Custom {
    layers: Vec<Layer>,
    file_name: Option<String>,
    audio: Option<(u32, u32)>,
}

/// MES's JSON: the `H264Layers` of its `H264Video` codec.
fn json(v: &serde_json::Value) -> Result<Preset, String> {
    let c = read_json(v)?;
    if c.layers.is_empty() {
        return Err(
            "no H264Video codec with H264Layers (audio-only and image presets are not emulated)"
                .into(),
        );
    }
    Ok(Preset::Layers(c.layers, c.file_name))
}

fn read_json(v: &serde_json::Value) -> Result<Custom, String> {
    let codecs = v["Codecs"].as_array().ok_or("'Codecs' must be an array")?;
    let mut layers = Vec::new();
    for c in codecs.iter().filter(|c| c["Type"] == "H264Video") {
        for l in c["H264Layers"]
            .as_array()
            .ok_or("H264Video needs 'H264Layers'")?
        {
            layers.push(layer(
                &text(&l["Width"]),
                &text(&l["Height"]),
                &text(&l["Bitrate"]),
            )?);
        }
    }
    let file_name = v["Outputs"]
        .as_array()
        .and_then(|o| o.iter().find_map(|o| o["FileName"].as_str()))
        .map(pattern)
        .transpose()?;
    let audio = codecs.iter().find(|c| c["Type"] == "AACAudio").map(|a| {
        (
            a["Channels"].as_u64().unwrap_or(2) as u32,
            a["Bitrate"].as_u64().unwrap_or(128) as u32,
        )
    });
    Ok(Custom {
        layers,
        file_name,
        audio,
    })
}

/// MES's XML: `Preset/Encoding/H264Video/H264Layers/H264Layer` with `Bitrate`, `Width`,
/// `Height` (either namespace spelling, `http://` or `https://`).
fn xml(x: &str) -> Result<Preset, String> {
    let c = read_xml(x)?;
    if c.layers.is_empty() {
        return Err("no H264Layer (audio-only and image presets are not emulated)".into());
    }
    Ok(Preset::Layers(c.layers, c.file_name))
}

fn read_xml(x: &str) -> Result<Custom, String> {
    use quick_xml::events::Event;
    // UTF-16 declared but sent as text: the declaration is only a label here.
    let mut reader = quick_xml::Reader::from_str(x);
    reader.trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut layers = Vec::new();
    let mut current: Option<(String, String, String)> = None;
    let mut saw_preset = false;
    let mut file_name = None;
    let (mut channels, mut kbps): (Option<u32>, Option<u32>) = (None, None);
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("not valid XML: {e}"))?
        {
            Event::Start(t) => {
                let name = String::from_utf8_lossy(t.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "Preset" {
                        return Err(format!("the root element is <{name}>, not <Preset>"));
                    }
                    saw_preset = true;
                }
                if name == "H264Layer" {
                    current = Some(Default::default());
                }
                output_file_name(&t, &mut file_name)?;
                path.push(name);
            }
            Event::Empty(t) => output_file_name(&t, &mut file_name)?,
            Event::Text(t) => {
                let value = t.unescape().map_err(|e| e.to_string())?.into_owned();
                if let (Some(field), Some((w, h, b))) = (path.last(), current.as_mut()) {
                    match field.as_str() {
                        "Width" => *w = value,
                        "Height" => *h = value,
                        "Bitrate" => *b = value,
                        _ => {}
                    }
                } else if path.iter().any(|p| p == "AACAudio") {
                    match path.last().map(String::as_str) {
                        Some("Channels") => channels = value.trim().parse().ok(),
                        Some("Bitrate") => kbps = value.trim().parse().ok(),
                        _ => {}
                    }
                }
            }
            Event::End(_) if path.pop().as_deref() == Some("H264Layer") => {
                if let Some((w, h, b)) = current.take() {
                    layers.push(layer(&w, &h, &b)?);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_preset || !path.is_empty() {
        return Err("not a complete <Preset> document".into());
    }
    let audio = match (channels, kbps) {
        (None, None) => None,
        (c, k) => Some((c.unwrap_or(2), k.unwrap_or(128))),
    };
    Ok(Custom {
        layers,
        file_name,
        audio,
    })
}

/// The first `<Output FileName="…">`.
fn output_file_name(
    t: &quick_xml::events::BytesStart<'_>,
    file_name: &mut Option<String>,
) -> Result<(), String> {
    if file_name.is_none() && t.local_name().as_ref() == b"Output" {
        if let Some(a) = t
            .attributes()
            .flatten()
            .find(|a| a.key.local_name().as_ref() == b"FileName")
        {
            let v = a.unescape_value().map_err(|e| e.to_string())?;
            *file_name = Some(pattern(&v)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_name_is_known() {
        for name in names() {
            assert!(parse(name).unwrap().is_some(), "{name}");
            assert!(parse(&name.to_lowercase()).unwrap().is_some(), "{name}");
        }
        assert_eq!(names().len(), 27);
        let Some(Preset::Layers(l, _)) = parse("H264 Multiple Bitrate 4K Audio 5.1").unwrap()
        else {
            panic!()
        };
        assert_eq!((l.len(), l[0].kbps), (12, 20000));
        assert!(parse("AAC Audio").unwrap_err().contains("audio only"));
        assert_eq!(parse("Something Else").unwrap(), None);
    }

    #[test]
    fn audio_follows_the_preset() {
        assert_eq!(audio("Adaptive Streaming"), (2, 128));
        assert_eq!(audio("H264 Multiple Bitrate 720p Audio 5.1"), (6, 384));
        assert_eq!(audio("H264 Multiple Bitrate 16x9 for iOS"), (2, 64));
        assert_eq!(
            audio("H264 Single Bitrate Low Quality SD for Android"),
            (2, 24)
        );
        assert_eq!(
            audio(r#"{"Codecs":[{"Type":"AACAudio","Channels":1,"Bitrate":96}]}"#),
            (1, 96)
        );
        assert_eq!(
            audio("<Preset><Encoding><AACAudio><Channels>6</Channels><Bitrate>320</Bitrate></AACAudio></Encoding></Preset>"),
            (6, 320)
        );
        assert_eq!(
            audio(r#"{"Codecs":[{"Type":"AACAudio","Channels":99,"Bitrate":96}]}"#),
            (2, 128),
            "out of range: the default"
        );
    }

    #[test]
    fn custom_presets_in_json_and_xml() {
        let json = r#"{"Version":1.0,"Codecs":[{"KeyFrameInterval":"00:00:02","H264Layers":[{"Profile":"Auto","Level":"auto","Bitrate":1000,"MaxBitrate":1000,"BufferWindow":"00:00:05","Width":640,"Height":"360","Type":"H264Layer","FrameRate":"0/1"},{"Bitrate":400,"Width":"50%","Height":"50%","Type":"H264Layer"}],"Type":"H264Video"},{"Profile":"AACLC","Channels":2,"SamplingRate":48000,"Bitrate":128,"Type":"AACAudio"}],"Outputs":[{"FileName":"{Basename}_{Width}x{Height}_{VideoBitrate}.mp4","Format":{"Type":"MP4Format"}}]}"#;
        let want = Preset::Layers(
            vec![
                Layer {
                    width: Size::Pixels(640),
                    height: Size::Pixels(360),
                    kbps: 1000,
                },
                Layer {
                    width: Size::Percent(50.0),
                    height: Size::Percent(50.0),
                    kbps: 400,
                },
            ],
            Some("{Basename}_{Width}x{Height}_{VideoBitrate}.mp4".into()),
        );
        assert_eq!(parse(json).unwrap(), Some(want));
        for ns in ["http", "https"] {
            let xml = format!(
                r#"<?xml version="1.0" encoding="utf-16"?><Preset xmlns:xsd="http://www.w3.org/2001/XMLSchema" Version="1.0" xmlns="{ns}://www.windowsazure.com/media/encoding/Preset/2014/03"><Encoding><H264Video><KeyFrameInterval>00:00:02</KeyFrameInterval><H264Layers><H264Layer><Bitrate>4500</Bitrate><Width>1280</Width><Height>720</Height><FrameRate>0/1</FrameRate></H264Layer></H264Layers><Chapters /></H264Video><AACAudio><Profile>AACLC</Profile><Channels>2</Channels><Bitrate>128</Bitrate></AACAudio></Encoding><Outputs><Output FileName="{{Basename}}_{{Width}}x{{Height}}_{{VideoBitrate}}.mp4"><MP4Format /></Output></Outputs></Preset>"#
            );
            let Some(Preset::Layers(l, f)) = parse(&xml).unwrap() else {
                panic!()
            };
            assert_eq!(
                f.as_deref(),
                Some("{Basename}_{Width}x{Height}_{VideoBitrate}.mp4")
            );
            assert_eq!(
                l,
                vec![Layer {
                    width: Size::Pixels(1280),
                    height: Size::Pixels(720),
                    kbps: 4500
                }]
            );
        }
        for bad in [
            r#"{"Codecs":[{"Type":"AACAudio","Bitrate":128}]}"#,
            r#"{"Codecs":[{"Type":"H264Video","H264Layers":[{"Bitrate":1000,"Width":641,"Height":360}]}]}"#,
            r#"{"Codecs":[{"Type":"H264Video","H264Layers":[{"Bitrate":0,"Width":640,"Height":360}]}]}"#,
            "<Preset><Encoding>",
            "<Other/>",
            r#"{"Codecs":[{"Type":"H264Video","H264Layers":[{"Bitrate":1000,"Width":640,"Height":360}]}],"Outputs":[{"FileName":"{Basename}_{Index}.mp4"}]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // The encoder's own ladder JSON is not MES's.
        assert_eq!(parse(r#"{"rungs":[]}"#).unwrap(), None);
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn no_configuration_panics(c in "\\PC{0,120}", x in "<Preset>(<Encoding><H264Video><H264Layers>(<H264Layer>(<(Bitrate|Width|Height)>[0-9%]{0,6}</(Bitrate|Width|Height)>){0,3}</H264Layer>){0,2}</H264Layers></H264Video></Encoding>)?</Preset>") {
            let _ = parse(&c);
            let _ = parse(&x);
        }
    }
}
