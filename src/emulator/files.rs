//! `Files` (AssetFile): the file records of an asset's blobs.

use axum::http::StatusCode;
use axum::response::Response;

use super::odata::{ApiError, Body, SetInfo};
use super::{assets, no_content, now, to_value, Ctx};
use crate::ams::model::{Asset, AssetFile, IdKind};

pub const INFO: SetInfo = SetInfo {
    name: "Files",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.AssetFile",
    properties: &[
        "Id",
        "Name",
        "ContentFileSize",
        "ParentAssetId",
        "EncryptionVersion",
        "EncryptionScheme",
        "IsEncrypted",
        "EncryptionKeyId",
        "InitializationVector",
        "IsPrimary",
        "LastModified",
        "Created",
        "MimeType",
        "ContentChecksum",
        "Options",
    ],
    navigation: &["ParentAsset"],
};

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav.as_deref()) {
        ("GET", None, None) => ctx.list(&INFO),
        ("POST", None, None) => create(ctx),
        ("GET", Some(id), None) => ctx.get::<AssetFile>(&INFO, &id),
        ("GET", Some(id), Some(nav @ "ParentAsset")) => ctx.related(&INFO, &id, nav),
        ("MERGE" | "PATCH" | "PUT", Some(id), None) => update(ctx, &id),
        ("DELETE", Some(id), None) => {
            let _: AssetFile = ctx.load(&INFO, &id)?;
            ctx.st.db.delete(INFO.name, &id)?;
            Ok(no_content())
        }
        (m, _, Some(nav)) => Err(ApiError::not_found(format!(
            "{m} Files/{nav}: AssetFile has no navigation property '{nav}'"
        ))),
        (m, _, _) => Err(ApiError::not_allowed(m, "Files")),
    }
}

/// A new file record (also used by CreateFileInfos).
pub fn new_file(asset_id: &str, name: String) -> AssetFile {
    let t = now();
    AssetFile {
        id: IdKind::Content.new_id(),
        name,
        content_file_size: 0,
        parent_asset_id: asset_id.to_string(),
        encryption_version: None,
        encryption_scheme: None,
        is_encrypted: false,
        encryption_key_id: None,
        initialization_vector: None,
        is_primary: false,
        last_modified: t,
        created: t,
        mime_type: None,
        content_checksum: None,
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    crate::ams::model::check_file_name(name).map_err(|why| {
        ApiError::bad_request(format!("field 'Name' {why}: {}", name.escape_debug()))
    })
}

fn apply(f: &mut AssetFile, body: &Body) -> Result<(), ApiError> {
    if let Some(size) = body.long("ContentFileSize")? {
        if size < 0 {
            return Err(ApiError::bad_request(
                "field 'ContentFileSize' must not be negative",
            ));
        }
        f.content_file_size = size;
    }
    if body.has("MimeType") {
        f.mime_type = body.str("MimeType")?;
    }
    if body.has("ContentChecksum") {
        f.content_checksum = body.str("ContentChecksum")?;
    }
    if let Some(p) = body.bool("IsPrimary")? {
        f.is_primary = p;
    }
    if let Some(e) = body.bool("IsEncrypted")? {
        f.is_encrypted = e;
    }
    Ok(())
}

fn create(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let body = Body::parse(ctx.body)?;
    body.only_known(&INFO)?;
    let name = body.required_str("Name")?;
    check_name(&name)?;
    let asset_id = body.required_str("ParentAssetId")?;
    let _: Asset = ctx.load(&assets::INFO, &asset_id).map_err(|_| {
        ApiError::bad_request(format!(
            "field 'ParentAssetId': Asset '{asset_id}' was not found"
        ))
    })?;
    let mut f = new_file(&asset_id, name);
    apply(&mut f, &body)?;
    let v = to_value(&f)?;
    ctx.st.db.insert(INFO.name, &f.id, Some(&asset_id), &v)?;
    Ok(ctx.entity(&INFO, StatusCode::CREATED, v))
}

fn update(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let mut f: AssetFile = ctx.load(&INFO, id)?;
    let body = Body::parse(ctx.body)?;
    body.only_known(&INFO)?;
    body.read_only_unchanged(
        &to_value(&f)?,
        &[
            "Name",
            "ContentFileSize",
            "MimeType",
            "ContentChecksum",
            "IsPrimary",
            "IsEncrypted",
            "EncryptionScheme",
            "EncryptionVersion",
            "EncryptionKeyId",
            "InitializationVector",
        ],
        "File",
    )?;
    if let Some(name) = body.str("Name")? {
        check_name(&name)?;
        f.name = name;
    }
    apply(&mut f, &body)?;
    f.last_modified = now();
    ctx.st.db.update(INFO.name, id, &to_value(&f)?)?;
    Ok(no_content())
}
