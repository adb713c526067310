//! `MediaProcessors`: the encoders this account offers (read only).

use axum::http::StatusCode;
use axum::response::Response;

use super::odata::{ApiError, SetInfo};
use super::{to_value, Ctx};
use crate::ams::model::MediaProcessor;

pub const INFO: SetInfo = SetInfo {
    name: "MediaProcessors",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.MediaProcessor",
    properties: &["Id", "Description", "Name", "Sku", "Vendor", "Version"],
    navigation: &[],
};

/// Media Encoder Standard, with the id the service gave it.
pub fn media_encoder_standard() -> MediaProcessor {
    MediaProcessor {
        id: "nb:mpid:UUID:ff4df607-d419-42f0-bc17-a481b1331e56".into(),
        description: "Media Encoder Standard (emulated by amsplay with ffmpeg)".into(),
        name: "Media Encoder Standard".into(),
        sku: String::new(),
        vendor: "Microsoft".into(),
        version: "4.9".into(),
    }
}

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    let all = [media_encoder_standard()];
    match (method, key, nav) {
        ("GET", None, None) => {
            Ok(ctx.collection(&INFO, all.iter().map(to_value).collect::<Result<_, _>>()?))
        }
        ("GET", Some(id), None) => {
            let p = all.iter().find(|p| p.id == id).ok_or_else(|| {
                ApiError::not_found(format!("MediaProcessor '{id}' was not found"))
            })?;
            Ok(ctx.entity(&INFO, StatusCode::OK, to_value(p)?))
        }
        (m, _, _) => Err(ApiError::not_allowed(m, "MediaProcessors")),
    }
}
