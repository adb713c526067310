//! Service functions: `CreateFileInfos`, which registers an asset's blobs as Files.

use axum::response::Response;
use base64::Engine as _;

use super::odata::ApiError;
use super::{assets, files, no_content, now, to_value, AppState, Ctx};
use crate::ams::model::{Asset, AssetFile};

/// `GET CreateFileInfos?assetid='nb%3Acid%3AUUID%3A…'`: one File per blob in the asset's
/// container (size, MIME type, MD5 as ContentChecksum); existing Files are brought up to date,
/// so calling it again changes nothing. A single `.ism` becomes the primary file. Blobs whose
/// names cannot be file names (paths, reserved characters) are skipped and listed,
/// percent-encoded, in the `x-amsplay-skipped-blobs` header.
pub async fn create_file_infos(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response, ApiError> {
    let asset_id = super::odata::Query::parse(query)?
        .required_param("assetid", "CreateFileInfos needs ?assetid='<asset id>'")?;
    let _: Asset = ctx.load(&assets::INFO, &asset_id)?;
    let skipped = register_files(ctx.st, &asset_id).await?;
    let mut r = no_content();
    if !skipped.is_empty() {
        let names: Vec<String> = skipped
            .iter()
            .take(20)
            .map(|n| url::form_urlencoded::byte_serialize(n.as_bytes()).collect())
            .collect();
        if let Ok(v) = axum::http::HeaderValue::from_str(&names.join(", ")) {
            r.headers_mut().insert("x-amsplay-skipped-blobs", v);
        }
    }
    Ok(r)
}

/// One File per blob of the asset's container, brought up to date; a single `.ism` becomes the
/// primary file. Used by CreateFileInfos and by finished encoding jobs. Returns the names of
/// blobs skipped because they cannot be file names.
pub async fn register_files(st: &AppState, asset_id: &str) -> Result<Vec<String>, ApiError> {
    let v = st
        .db
        .get(assets::INFO.name, asset_id)?
        .ok_or_else(|| ApiError::not_found(format!("Asset '{asset_id}' was not found")))?;
    let asset: Asset = serde_json::from_value(v).map_err(|e| ApiError::internal(e.to_string()))?;
    let (blobs, skipped): (Vec<_>, Vec<_>) = st
        .storage
        .blobs(&asset.container())
        .await?
        .into_iter()
        .partition(|b| crate::ams::model::check_file_name(&b.name).is_ok());
    let skipped: Vec<String> = skipped.into_iter().map(|b| b.name).collect();
    if !skipped.is_empty() {
        tracing::warn!(asset = %asset_id, blobs = ?skipped, "blobs whose names cannot be file names were not registered");
    }
    let existing: Vec<AssetFile> = st
        .db
        .list(files::INFO.name, Some(asset_id))?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let ism: Vec<&str> = blobs
        .iter()
        .map(|b| b.name.as_str())
        .filter(|n| n.to_ascii_lowercase().ends_with(".ism"))
        .collect();
    let has_primary = existing.iter().any(|f| f.is_primary);
    for b in &blobs {
        let checksum = b
            .md5
            .map(|m| base64::engine::general_purpose::STANDARD.encode(m));
        let mime = Some(if b.content_type.is_empty() {
            "application/octet-stream".to_string()
        } else {
            b.content_type.clone()
        });
        let primary = !has_primary && ism.len() == 1 && ism[0] == b.name;
        match existing.iter().find(|f| f.name == b.name) {
            Some(f) => {
                let mut g = f.clone();
                g.content_file_size = b.size as i64;
                g.content_checksum = checksum;
                g.mime_type = mime;
                g.is_primary |= primary;
                if &g != f {
                    g.last_modified = now();
                    st.db.update(files::INFO.name, &g.id, &to_value(&g)?)?;
                }
            }
            None => {
                let mut f = files::new_file(asset_id, b.name.clone());
                f.content_file_size = b.size as i64;
                f.content_checksum = checksum;
                f.mime_type = mime;
                f.is_primary = primary;
                st.db
                    .insert(files::INFO.name, &f.id, Some(asset_id), &to_value(&f)?)?;
            }
        }
    }
    Ok(skipped)
}
