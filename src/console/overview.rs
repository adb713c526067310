//! What the console shows, gathered in one pass over both datacenters: each one's assets
//! (files, sizes, locators and their streaming URLs), jobs with their progress, the
//! replication state, the front door's view of the origins and the fault points. No keys.

use serde::Serialize;

use crate::ams::client::MediaClient;
use crate::ams::model::{Asset, JobState, Locator, LocatorType};
use crate::storage::Storage;
use crate::sync::{self, Surveyed};

/// One datacenter as the console reaches it.
pub struct Datacenter {
    pub name: String,
    pub media: MediaClient,
    pub storage: Storage,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    pub datacenters: Vec<DatacenterView>,
    pub replication: Vec<Surveyed>,
    /// The front door's `/status` (origins: up, ejected, why, served; switches), if any.
    pub front: Option<serde_json::Value>,
    pub front_url: Option<String>,
    /// The local environment's faults per datacenter, if it has fault points.
    pub faults: Option<serde_json::Value>,
    /// Asset Ids being replicated from the console right now.
    pub replicating: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DatacenterView {
    pub name: String,
    /// Why it could not be listed (the rest of the view is then empty).
    pub error: Option<String>,
    pub assets: Vec<AssetView>,
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AssetView {
    pub id: String,
    pub name: String,
    pub created: String,
    pub files: Vec<FileView>,
    pub bytes: u64,
    pub locators: Vec<LocatorView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileView {
    pub name: String,
    pub size: u64,
    pub primary: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LocatorView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub expires: String,
    /// Smooth, HLS and DASH URLs of the primary `.ism` (origin locators), and the HLS URL
    /// through the front door.
    pub smooth: Option<String>,
    pub hls: Option<String>,
    pub dash: Option<String>,
    pub front_hls: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobView {
    pub id: String,
    pub name: String,
    pub state: String,
    /// 0–100.
    pub progress: f64,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A datacenter's assets, locators and jobs (and the raw lists, for the replication survey).
async fn datacenter(
    dc: &Datacenter,
    front: Option<&str>,
) -> Result<(DatacenterView, Vec<Asset>, Vec<Locator>), String> {
    let err = |e: crate::ams::client::AmsError| e.to_string();
    let (assets, locators, jobs) =
        tokio::try_join!(dc.media.assets(), dc.media.locators(), dc.media.jobs()).map_err(err)?;
    let files = futures::future::join_all(assets.iter().map(|a| dc.media.files(&a.id))).await;
    let mut views = Vec::new();
    for (a, files) in assets.iter().zip(files) {
        let files = files.map_err(err)?;
        let primary = files
            .iter()
            .find(|f| f.is_primary && f.name.to_ascii_lowercase().ends_with(".ism"));
        let locators = locators
            .iter()
            .filter(|l| l.asset_id == a.id)
            .map(|l| {
                let base = primary
                    .filter(|_| l.kind == LocatorType::OnDemandOrigin)
                    .map(|p| format!("{}{}/manifest", l.path, p.name));
                let guid_path = primary.map(|p| format!("/{}/{}/manifest", l.guid(), p.name));
                LocatorView {
                    id: l.id.clone(),
                    kind: format!("{:?}", l.kind),
                    expires: rfc3339(l.expiration_date_time),
                    smooth: base.clone(),
                    hls: base.as_ref().map(|b| format!("{b}(format=m3u8-aapl)")),
                    dash: base.as_ref().map(|b| format!("{b}(format=mpd-time-csf)")),
                    front_hls: front
                        .zip(guid_path)
                        .filter(|_| l.kind == LocatorType::OnDemandOrigin)
                        .map(|(f, p)| format!("{f}{p}(format=m3u8-aapl)")),
                }
            })
            .collect();
        views.push(AssetView {
            id: a.id.clone(),
            name: a.name.clone().unwrap_or_default(),
            created: rfc3339(a.created),
            bytes: files
                .iter()
                .map(|f| f.content_file_size.max(0) as u64)
                .sum(),
            files: files
                .iter()
                .map(|f| FileView {
                    name: f.name.clone(),
                    size: f.content_file_size.max(0) as u64,
                    primary: f.is_primary,
                })
                .collect(),
            locators,
        });
    }
    views.sort_by(|x, y| y.created.cmp(&x.created));
    let mut job_views = Vec::new();
    for j in jobs.iter().rev().take(20) {
        let progress = if matches!(
            j.state,
            JobState::Queued | JobState::Scheduled | JobState::Processing
        ) {
            dc.media
                .job_tasks(&j.id)
                .await
                .map(|t| t.iter().map(|t| t.progress).sum::<f64>() / t.len().max(1) as f64)
                .unwrap_or(0.0)
        } else if j.state == JobState::Finished {
            100.0
        } else {
            0.0
        };
        job_views.push(JobView {
            id: j.id.clone(),
            name: j.name.clone().unwrap_or_default(),
            state: j.state.name().to_string(),
            progress,
        });
    }
    Ok((
        DatacenterView {
            name: dc.name.clone(),
            error: None,
            assets: views,
            jobs: job_views,
        },
        assets,
        locators,
    ))
}

/// Gathers the overview of A and B (in that order).
pub async fn gather(
    a: &Datacenter,
    b: &Datacenter,
    front_url: Option<&str>,
    front_status: Option<serde_json::Value>,
    faults: Option<serde_json::Value>,
    replicating: Vec<String>,
) -> Overview {
    let (ra, rb) = tokio::join!(datacenter(a, front_url), datacenter(b, front_url));
    let view =
        |dc: &Datacenter, r: &Result<(DatacenterView, Vec<Asset>, Vec<Locator>), String>| match r {
            Ok((v, _, _)) => v.clone(),
            Err(e) => DatacenterView {
                name: dc.name.clone(),
                error: Some(e.clone()),
                assets: Vec::new(),
                jobs: Vec::new(),
            },
        };
    let replication = match (&ra, &rb) {
        (Ok((_, assets, la)), Ok((_, _, lb))) => {
            sync::survey(&a.storage, &b.storage, assets, la, lb).await
        }
        _ => Vec::new(),
    };
    Overview {
        datacenters: vec![view(a, &ra), view(b, &rb)],
        replication,
        front: front_status,
        front_url: front_url.map(str::to_string),
        faults,
        replicating,
    }
}
