//! Media Services v2 entities as they travel on the wire: one set of types for the client and
//! the emulator. Serialization follows the REST reference's samples (PascalCase names,
//! `ContentFileSize` as a string, dates as ISO 8601 with a `Z`); deserialization is lenient the
//! way the service was: numbers may come as JSON numbers or strings, dates as ISO 8601, the
//! en-US "G" format the walkthrough's C# sends (`11/21/2026 10:40:00 PM`) or OData `/Date(ms)/`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// Kinds of entity ids: `nb:{kind}:UUID:{guid}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `nb:oid:UUID:…`: a streaming endpoint (an "origin").
    Origin,
    /// `nb:opid:UUID:…`: an operation.
    Operation,
    /// `nb:nepid:UUID:…`: a notification endpoint.
    NotificationEndPoint,
    /// `nb:kid:UUID:…`: a content key.
    ContentKey,
    /// Assets and files.
    Content,
    Policy,
    Locator,
    Job,
    Task,
    Processor,
}

impl IdKind {
    fn tag(self) -> &'static str {
        match self {
            IdKind::Content => "cid",
            IdKind::Policy => "pid",
            IdKind::Locator => "lid",
            IdKind::Job => "jid",
            IdKind::Task => "tid",
            IdKind::Processor => "mpid",
            IdKind::Origin => "oid",
            IdKind::Operation => "opid",
            IdKind::NotificationEndPoint => "nepid",
            IdKind::ContentKey => "kid",
        }
    }

    /// A fresh id of this kind.
    pub fn new_id(self) -> String {
        self.id(&uuid::Uuid::new_v4())
    }

    /// The id of this kind for a GUID.
    pub fn id(self, guid: &uuid::Uuid) -> String {
        format!("nb:{}:UUID:{}", self.tag(), guid.hyphenated())
    }

    /// Parses `nb:{kind}:UUID:{guid}` (GUID in any case) into the GUID.
    pub fn parse(self, id: &str) -> Option<uuid::Uuid> {
        let rest = id.strip_prefix("nb:")?;
        let (tag, rest) = rest.split_once(':')?;
        let guid = rest.strip_prefix("UUID:")?;
        (tag == self.tag()).then_some(())?;
        uuid::Uuid::parse_str(guid).ok()
    }
}

/// Asset: a container of files in one blob container, `asset-{guid}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Asset {
    pub id: String,
    #[serde(deserialize_with = "lenient::i32")]
    pub state: i32,
    #[serde(with = "date")]
    pub created: OffsetDateTime,
    #[serde(with = "date")]
    pub last_modified: OffsetDateTime,
    #[serde(default)]
    pub alternate_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::i32")]
    pub options: i32,
    pub uri: String,
    #[serde(default)]
    pub storage_account_name: String,
}

impl Asset {
    /// The blob container holding the asset's files.
    pub fn container(&self) -> String {
        asset_container(&self.id)
    }
}

/// The container of an asset id: `asset-{guid}`.
pub fn asset_container(asset_id: &str) -> String {
    match IdKind::Content.parse(asset_id) {
        Some(g) => format!("asset-{}", g.hyphenated()),
        None => format!("asset-{}", asset_id.rsplit(':').next().unwrap_or_default()),
    }
}

/// AssetFile (entity set `Files`): one blob of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssetFile {
    pub id: String,
    pub name: String,
    #[serde(with = "int64_string")]
    pub content_file_size: i64,
    pub parent_asset_id: String,
    #[serde(default)]
    pub encryption_version: Option<String>,
    #[serde(default)]
    pub encryption_scheme: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_encrypted: bool,
    #[serde(default)]
    pub encryption_key_id: Option<String>,
    #[serde(default)]
    pub initialization_vector: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub is_primary: bool,
    #[serde(with = "date")]
    pub last_modified: OffsetDateTime,
    #[serde(with = "date")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub content_checksum: Option<String>,
}

/// Characters Media Services v2 refuses in an AssetFile's Name.
pub const FILE_NAME_RESERVED: &str = "!*'();:@&=+$,/?%#[]\"";

/// Whether `name` can be an AssetFile's Name, as Media Services v2 ruled (1 to 260 characters,
/// none of `FILE_NAME_RESERVED`), and so can never be a path: no separators, no `..`, no control
/// characters. The reason when it cannot.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() || name.chars().count() > 260 {
        "must be 1 to 260 characters"
    } else if name.chars().any(|c| FILE_NAME_RESERVED.contains(c)) {
        "must not contain any of !*'();:@&=+$,/?%#[]\""
    } else if name.contains('\\') || name.contains("..") {
        "must not contain a path (no \\ and no ..)"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(why.to_string())
}

/// An integer enum of the v2 wire: written as its number, read leniently (a number or a
/// numeric string); a number that names no variant is refused.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $n:literal => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $n,)*
        }

        impl $name {
            /// Every variant, in number order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The variant's name, as the .NET SDK's enum spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The variant a wire number names.
            pub fn from_number(n: i64) -> Option<Self> {
                match n {
                    $($n => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i32(*self as i32)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = lenient::i64(d)?;
                Self::from_number(n).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{n} is not a {}: one of {}",
                        stringify!($name),
                        Self::ALL
                            .iter()
                            .map(|v| format!("{} ({})", *v as i32, v.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            }
        }
    };
}

/// Permission flags of an access policy (AccessPermissions): Read 1, Write 2, Delete 4,
/// List 8, combined with `|`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Self = Self(0);
    pub const READ: Self = Self(1);
    pub const WRITE: Self = Self(2);
    pub const DELETE: Self = Self(4);
    pub const LIST: Self = Self(8);

    /// The flags a wire number holds; `None` when it holds bits no permission has.
    pub fn from_bits(n: i64) -> Option<Self> {
        (0..=15).contains(&n).then_some(Self(n as u8))
    }

    pub fn bits(self) -> i32 {
        self.0 as i32
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for Permissions {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Permissions {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.bits())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = lenient::i64(d)?;
        Self::from_bits(n).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{n} is not a set of permissions: Read 1, Write 2, Delete 4, List 8, added together"
            ))
        })
    }
}

/// AccessPolicy: a duration and permissions that locators refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessPolicy {
    pub id: String,
    #[serde(with = "date")]
    pub created: OffsetDateTime,
    #[serde(with = "date")]
    pub last_modified: OffsetDateTime,
    pub name: String,
    #[serde(deserialize_with = "lenient::f64")]
    pub duration_in_minutes: f64,
    pub permissions: Permissions,
}

wire_enum! {
    /// LocatorType.
    #[derive(Default)]
    LocatorType {
        #[default]
        None = 0 => "None",
        /// A SAS URL of the asset's container.
        Sas = 1 => "Sas",
        /// A streaming path on the origin.
        OnDemandOrigin = 2 => "OnDemandOrigin",
    }
}

/// Locator: a SAS URL of the asset's container, or a streaming path on the origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Locator {
    pub id: String,
    #[serde(with = "date")]
    pub expiration_date_time: OffsetDateTime,
    #[serde(rename = "Type")]
    pub kind: LocatorType,
    pub path: String,
    pub base_uri: String,
    pub content_access_component: String,
    pub access_policy_id: String,
    pub asset_id: String,
    #[serde(with = "date")]
    pub start_time: OffsetDateTime,
    #[serde(default)]
    pub name: Option<String>,
}

impl Locator {
    /// The GUID part of the id, which is also the origin path segment.
    pub fn guid(&self) -> String {
        IdKind::Locator
            .parse(&self.id)
            .map(|g| g.hyphenated().to_string())
            .unwrap_or_default()
    }

    /// The blob container a SAS locator's BaseUri names (its last path segment).
    pub fn container(&self) -> String {
        url::Url::parse(&self.base_uri)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(str::to_string))
            })
            .unwrap_or_default()
    }
}

/// MediaProcessor: an encoder the account offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MediaProcessor {
    pub id: String,
    pub description: String,
    pub name: String,
    pub sku: String,
    pub vendor: String,
    pub version: String,
}

wire_enum! {
    /// JobState (also a task's state).
    JobState {
        Queued = 0 => "Queued",
        Scheduled = 1 => "Scheduled",
        Processing = 2 => "Processing",
        Finished = 3 => "Finished",
        Error = 4 => "Error",
        Canceled = 5 => "Canceled",
        Canceling = 6 => "Canceling",
    }
}

impl JobState {
    /// Whether the job (or task) has ended and will not change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Finished | Self::Error | Self::Canceled)
    }
}

/// Job: a set of tasks run on input assets, producing output assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Job {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(with = "date")]
    pub created: OffsetDateTime,
    #[serde(with = "date")]
    pub last_modified: OffsetDateTime,
    #[serde(default, with = "date_opt")]
    pub start_time: Option<OffsetDateTime>,
    #[serde(default, with = "date_opt")]
    pub end_time: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub priority: i32,
    #[serde(default, deserialize_with = "lenient::f64")]
    pub running_duration: f64,
    pub state: JobState,
    #[serde(default)]
    pub template_id: Option<String>,
    /// Web hooks told of the job's state changes.
    #[serde(default, deserialize_with = "collection::deserialize")]
    pub job_notification_subscriptions: Vec<JobNotificationSubscription>,
}

/// A job's (or task's) subscription of a notification endpoint to its state changes;
/// `target_job_state` 1 is final states only, 2 every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobNotificationSubscription {
    pub notification_end_point_id: String,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub target_job_state: i32,
}

/// A step in a task's life, as the service logged them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskHistoricalEvent {
    pub code: String,
    pub message: String,
    #[serde(with = "date")]
    pub time_stamp: OffsetDateTime,
}

/// One error of a task, as the service reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Task: one operation of a job (an encode), with its progress and errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub configuration: Option<String>,
    pub media_processor_id: String,
    #[serde(default)]
    pub task_body: Option<String>,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub options: i32,
    #[serde(default, deserialize_with = "lenient::i32")]
    pub priority: i32,
    #[serde(default, deserialize_with = "lenient::f64")]
    pub progress: f64,
    #[serde(default, deserialize_with = "lenient::f64")]
    pub running_duration: f64,
    #[serde(default, with = "date_opt")]
    pub start_time: Option<OffsetDateTime>,
    #[serde(default, with = "date_opt")]
    pub end_time: Option<OffsetDateTime>,
    pub state: JobState,
    #[serde(default, deserialize_with = "collection::deserialize")]
    pub error_details: Vec<ErrorDetail>,
    #[serde(default, deserialize_with = "collection::deserialize")]
    pub historical_events: Vec<TaskHistoricalEvent>,
    #[serde(default, deserialize_with = "collection::deserialize")]
    pub task_notification_subscriptions: Vec<JobNotificationSubscription>,
    #[serde(default)]
    pub perf_message: Option<String>,
    /// A protected configuration's key and scheme (none in the clear).
    #[serde(default)]
    pub encryption_key_id: Option<String>,
    #[serde(default)]
    pub encryption_scheme: Option<String>,
    #[serde(default)]
    pub encryption_version: Option<String>,
    #[serde(default)]
    pub initialization_vector: Option<String>,
}

/// NotificationEndPoint: where a job's or task's state changes are sent (a web hook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NotificationEndPoint {
    pub id: String,
    pub name: String,
    /// 1 Azure queue, 3 web hook.
    #[serde(deserialize_with = "lenient::i32")]
    pub end_point_type: i32,
    pub end_point_address: String,
    #[serde(with = "date")]
    pub created: OffsetDateTime,
}

/// StreamingEndpoint: the origin's front, which serves only while Running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamingEndpoint {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(with = "date")]
    pub created: OffsetDateTime,
    #[serde(with = "date")]
    pub last_modified: OffsetDateTime,
    /// Stopped, Starting, Running, Stopping, Deleting or Scaling.
    pub state: String,
    pub host_name: String,
    #[serde(deserialize_with = "lenient::i32")]
    pub scale_units: i32,
    #[serde(default)]
    pub cdn_enabled: bool,
}

/// Operation: a long-running change (a streaming endpoint's Start, Stop or Scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Operation {
    pub id: String,
    /// InProgress, Succeeded or Failed.
    pub state: String,
    pub target_entity_id: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Request bodies the client sends; the emulator reads the same names (leniently).
pub mod requests {
    use serde::Serialize;

    use crate::ams::odata::EntityRef;

    /// `POST Jobs`: a job with its tasks, in one request (the REST reference's form).
    #[derive(Debug, Clone, Default, Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct NewJob {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub priority: Option<i32>,
        pub input_media_assets: Vec<EntityRef>,
        pub tasks: Vec<TaskSpec>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub job_notification_subscriptions: Vec<super::JobNotificationSubscription>,
    }

    /// One task of a new job: a media processor, its configuration (a preset name or a
    /// ladder), and the task body naming its input and output assets.
    #[derive(Debug, Clone, Default, Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct TaskSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub configuration: Option<String>,
        pub media_processor_id: String,
        pub task_body: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub task_notification_subscriptions: Vec<super::JobNotificationSubscription>,
        /// `TaskOptions`: 1 is ProtectedConfiguration (the configuration is encrypted).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub options: Option<i32>,
        /// A protected configuration's content key, scheme, version and IV.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub encryption_key_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub encryption_scheme: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub encryption_version: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub initialization_vector: Option<String>,
    }

    impl TaskSpec {
        /// The task body of a task that reads `JobInputAsset(input)` and writes
        /// `JobOutputAsset(output)` named `output_name`.
        pub fn task_body(input: usize, output: usize, output_name: &str) -> String {
            let esc = output_name
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;");
            format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><taskBody><inputAsset>JobInputAsset({input})</inputAsset><outputAsset assetCreationOptions=\"0\" assetName=\"{esc}\">JobOutputAsset({output})</outputAsset></taskBody>")
        }
    }

    #[derive(Debug, Clone, Default, Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct NewAsset {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        pub options: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub alternate_id: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct NewAccessPolicy {
        pub name: String,
        pub duration_in_minutes: f64,
        pub permissions: super::Permissions,
    }

    #[derive(Debug, Clone, Default, Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct NewLocator {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        pub asset_id: String,
        pub access_policy_id: String,
        #[serde(rename = "Type")]
        pub kind: super::LocatorType,
        #[serde(with = "super::date_opt", skip_serializing_if = "Option::is_none")]
        pub start_time: Option<time::OffsetDateTime>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
    }

    #[derive(Debug, Clone, Default, Serialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct NewFile {
        pub name: String,
        pub parent_asset_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub content_file_size: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mime_type: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub content_checksum: Option<String>,
        pub is_primary: bool,
        pub is_encrypted: bool,
    }
}

/// Formats a date as the service does: `2015-01-18T22:06:40.6010903Z`.
pub fn format_date(d: OffsetDateTime) -> String {
    let d = d.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.nanosecond() / 100
    )
}

/// Parses the date forms clients sent: ISO 8601 (with or without offset, any fraction),
/// en-US "G" (`11/21/2026 10:40:00 PM`, taken as UTC) and OData `/Date(ms)/`.
pub fn parse_date(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let s = s.trim();
    if let Some(ms) = s
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
        .and_then(|r| r.split(['+', '-']).next())
        .and_then(|r| r.parse::<i64>().ok())
    {
        return OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok();
    }
    if let Ok(d) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(d);
    }
    // ISO without an offset: the service meant UTC. .NET's parser also took a space for the
    // `T` (`2026-11-22 04:03:14.838552`).
    let naive = format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let iso = match s.as_bytes().get(10) {
        Some(b' ') if s.as_bytes().get(4) == Some(&b'-') => format!("{}T{}", &s[..10], &s[11..]),
        _ => s.to_string(),
    };
    if let Ok(d) = time::PrimitiveDateTime::parse(iso.trim_end_matches('Z'), &naive) {
        return Some(d.assume_utc());
    }
    // en-US "G": M/d/yyyy h:mm:ss tt
    let (date, rest) = s.split_once(' ')?;
    let (clock, ampm) = rest.trim().split_once(' ')?;
    let mut dp = date.split('/').map(|p| p.parse::<u32>().ok());
    let (m, d, y) = (dp.next()??, dp.next()??, dp.next()??);
    let mut cp = clock.split(':').map(|p| p.parse::<u32>().ok());
    let (mut h, mi, se) = (cp.next()??, cp.next()??, cp.next()??);
    match ampm.to_ascii_uppercase().as_str() {
        "AM" if h == 12 => h = 0,
        "AM" => {}
        "PM" if h < 12 => h += 12,
        "PM" => {}
        _ => return None,
    }
    let month = time::Month::try_from(m as u8).ok()?;
    let date = time::Date::from_calendar_date(y as i32, month, d as u8).ok()?;
    let t = time::Time::from_hms(h as u8, mi as u8, se as u8).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// Dates as the service writes them, read in any form `parse_date` knows.
pub mod date {
    use super::*;

    pub fn serialize<S: Serializer>(d: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_date(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse_date(&s).ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a date")))
    }
}

/// Optional dates (`null` until set).
pub mod date_opt {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_date(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse_date(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a date"))),
        }
    }
}

/// Int64 values the service serializes as strings (`"ContentFileSize":"3186542"`).
pub mod int64_string {
    use super::*;

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        super::lenient::i64(d)
    }
}

/// A collection-valued property: a JSON array, or verbose OData's
/// `{"__metadata": {"type": "Collection(…)"}, "results": […]}`; null is empty.
pub mod collection {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: serde::de::DeserializeOwned,
    {
        let v = serde_json::Value::deserialize(d)?;
        let items = match v {
            serde_json::Value::Null => return Ok(Vec::new()),
            serde_json::Value::Object(mut m) => m.remove("results").unwrap_or_default(),
            v => v,
        };
        serde_json::from_value(items).map_err(serde::de::Error::custom)
    }
}

/// Numbers and booleans accepted as JSON values or as strings.
pub mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    /// The number in a JSON number or numeric string.
    pub fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The boolean in a JSON bool or "true"/"false".
    pub fn boolean(v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => s.trim().to_ascii_lowercase().parse().ok(),
            _ => None,
        }
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let v = value(d)?;
        number(&v)
            .filter(|n| n.fract() == 0.0)
            .map(|n| n as i64)
            .ok_or_else(|| serde::de::Error::custom(format!("{v} is not an integer")))
    }

    pub fn i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        self::i64(d).map(|n| n as i32)
    }

    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let v = value(d)?;
        number(&v).ok_or_else(|| serde::de::Error::custom(format!("{v} is not a number")))
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let v = value(d)?;
        boolean(&v).ok_or_else(|| serde::de::Error::custom(format!("{v} is not a boolean")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_enums_are_numbers_read_leniently_and_refused_when_unknown() {
        let j: JobState = serde_json::from_str("\"4\"").unwrap();
        assert_eq!((j, j.name()), (JobState::Error, "Error"));
        assert_eq!(serde_json::to_string(&JobState::Canceling).unwrap(), "6");
        let e = serde_json::from_str::<JobState>("7")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("0 (Queued)") && e.contains("6 (Canceling)"),
            "{e}"
        );
        let l: LocatorType = serde_json::from_str("2").unwrap();
        assert_eq!(l, LocatorType::OnDemandOrigin);
        assert!(serde_json::from_str::<LocatorType>("4294967298").is_err());
        let p: Permissions = serde_json::from_str("9").unwrap();
        assert!(p.contains(Permissions::READ | Permissions::LIST));
        assert!(!p.intersects(Permissions::WRITE | Permissions::DELETE));
        assert_eq!(serde_json::to_string(&p).unwrap(), "9");
        assert!(serde_json::from_str::<Permissions>("16").is_err());
    }

    #[test]
    fn file_names_follow_the_v2_rules_and_are_never_paths() {
        for ok in [
            "clip.mp4",
            "Big Buck Bunny_1920x1080_6780.mp4",
            "é.ism",
            &"x".repeat(260),
        ] {
            assert_eq!(check_file_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../x.mp4",
            "a/b.mp4",
            "a\\b.mp4",
            "a..b",
            "x?.mp4",
            "a\u{0}b",
            &"x".repeat(261),
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates_in_every_form() {
        let iso = parse_date("2015-01-18T22:06:40.6010903Z").unwrap();
        assert_eq!(format_date(iso), "2015-01-18T22:06:40.6010903Z");
        assert_eq!(
            parse_date("2015-02-19T00:05:53").unwrap().unix_timestamp(),
            parse_date("2015-02-19T00:05:53Z").unwrap().unix_timestamp()
        );
        let g = parse_date("11/21/2026 10:40:00 PM").unwrap();
        assert_eq!(format_date(g), "2026-11-21T22:40:00.0000000Z");
        assert_eq!(parse_date("1/2/2026 12:05:00 AM").unwrap().hour(), 0);
        assert_eq!(
            parse_date("/Date(1421640053000)/")
                .unwrap()
                .unix_timestamp(),
            1421640053
        );
        assert!(parse_date("tomorrow").is_none());
        // As .NET's DateTime.Parse took them: a space for the T, no zone.
        let d = parse_date("2026-11-22 04:03:14.838552").unwrap();
        assert_eq!((d.hour(), d.minute(), d.microsecond()), (4, 3, 838552));
        assert_eq!(parse_date("2026-11-22T04:03:14").unwrap().second(), 14);
    }

    #[test]
    fn file_size_is_a_string_and_numbers_may_be_strings() {
        let f: AssetFile = serde_json::from_value(serde_json::json!({
            "Id": "nb:cid:UUID:f13a0137-0a62-9d4c-b3b9-ca944b5142c5",
            "Name": "BigBuckBunny.mp4",
            "ContentFileSize": "3186542",
            "ParentAssetId": "nb:cid:UUID:9bc8ff20-24fb-4fdb-9d7c-b04c7ee573a1",
            "IsEncrypted": "false",
            "IsPrimary": false,
            "LastModified": "2015-01-19T00:34:08.1934137Z",
            "Created": "2015-01-19T00:34:08.1934137Z",
            "MimeType": "video/mp4",
            "ContentChecksum": null
        }))
        .unwrap();
        assert_eq!(f.content_file_size, 3186542);
        let back = serde_json::to_value(&f).unwrap();
        assert_eq!(back["ContentFileSize"], "3186542");
        let p: AccessPolicy = serde_json::from_value(serde_json::json!({
            "Id": "nb:pid:UUID:be0ac48d-af7d-4877-9d60-1805d68bffae",
            "Created": "2015-01-18T22:18:06.6370575Z",
            "LastModified": "2015-01-18T22:18:06.6370575Z",
            "Name": "NewUploadPolicy", "DurationInMinutes": "440", "Permissions": "2"
        }))
        .unwrap();
        assert_eq!(
            (p.duration_in_minutes, p.permissions),
            (440.0, Permissions::WRITE)
        );
    }

    #[test]
    fn jobs_and_tasks_round_trip() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "Id": "nb:jid:UUID:1",
            "Name": "My encoding job",
            "Created": "2015-01-19T00:34:08.1934137Z",
            "LastModified": "2015-01-19T00:34:08.1934137Z",
            "StartTime": null,
            "EndTime": null,
            "Priority": 0,
            "RunningDuration": 0.0,
            "State": "2",
            "TemplateId": null
        }))
        .unwrap();
        assert_eq!(job.state.name(), "Processing");
        assert_eq!(
            serde_json::to_value(&job).unwrap()["StartTime"],
            serde_json::Value::Null
        );
        let task: Task = serde_json::from_value(serde_json::json!({
            "Id": "nb:tid:UUID:1",
            "Configuration": "Adaptive Streaming",
            "MediaProcessorId": "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56",
            "TaskBody": "<taskBody><inputAsset>JobInputAsset(0)</inputAsset><outputAsset>JobOutputAsset(0)</outputAsset></taskBody>",
            "Progress": "42.5",
            "State": 4,
            "ErrorDetails": [{"Code": "ErrorDownloadingInputAssetMalformedContent", "Message": "bad input"}],
            "StartTime": "2015-01-19T00:34:08Z"
        }))
        .unwrap();
        assert_eq!(task.progress, 42.5);
        assert_eq!(
            task.error_details[0].code,
            "ErrorDownloadingInputAssetMalformedContent"
        );
        let back = serde_json::to_value(&task).unwrap();
        assert_eq!(back["StartTime"], "2015-01-19T00:34:08.0000000Z");
    }

    #[test]
    fn ids_and_containers() {
        let id = "nb:cid:UUID:9BC8FF20-24fb-4fdb-9d7c-b04c7ee573a1";
        assert_eq!(
            asset_container(id),
            "asset-9bc8ff20-24fb-4fdb-9d7c-b04c7ee573a1"
        );
        assert!(IdKind::Locator.parse(id).is_none());
        assert!(IdKind::Content.new_id().starts_with("nb:cid:UUID:"));
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn dates_and_names_never_panic(
            text in "\\PC{0,40}",
            iso in "-?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}T[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\\.[0-9]{1,9})?Z?",
            ms in proptest::num::i64::ANY,
        ) {
            for s in [text.clone(), iso, format!("/Date({ms})/"), format!("/Date({ms}+0100)/")] {
                if let Some(d) = parse_date(&s) {
                    let _ = format_date(d);
                }
            }
            let _ = check_file_name(&text);
        }
    }
}
