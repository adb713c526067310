//! `Assets`: create (with its blob container), read, list, update, delete (with its container,
//! files and locators), and the navigation to `Files` and `Locators`.

use axum::http::StatusCode;
use axum::response::Response;

use super::odata::{ApiError, Body, SetInfo};
use super::{files, locators, no_content, now, to_value, AppState, Ctx};
use crate::ams::model::requests::NewAsset;
use crate::ams::model::{asset_container, Asset, IdKind};

pub const INFO: SetInfo = SetInfo {
    name: "Assets",
    type_name: "Microsoft.Cloud.Media.Vod.Rest.Data.Models.Asset",
    properties: &[
        "Id",
        "State",
        "Created",
        "LastModified",
        "AlternateId",
        "Name",
        "Options",
        "FormatOption",
        "Uri",
        "StorageAccountName",
    ],
    navigation: &[
        "Locators",
        "ContentKeys",
        "Files",
        "ParentAssets",
        "StorageAccount",
    ],
};

pub async fn handle(
    ctx: &Ctx<'_>,
    method: &str,
    key: Option<String>,
    nav: Option<String>,
) -> Result<Response, ApiError> {
    match (method, key, nav.as_deref()) {
        ("GET", None, None) => ctx.list(&INFO),
        ("POST", None, None) => create(ctx).await,
        ("GET", Some(id), None) => ctx.get::<Asset>(&INFO, &id),
        ("MERGE" | "PATCH" | "PUT", Some(id), None) => update(ctx, &id),
        ("DELETE", Some(id), None) => delete(ctx, &id).await,
        (m, Some(id), Some(nav)) if nav.starts_with("$links/") => {
            super::protection::asset_links(ctx, m, &id, &nav["$links/".len()..])
        }
        ("GET", Some(id), Some(nav)) => ctx.related(&INFO, &id, nav),
        (m, _, _) => Err(ApiError::not_allowed(m, "Assets")),
    }
}

/// A `POST Assets` body as the shared request type, every field checked and named.
fn read_new_asset(body: &Body) -> Result<NewAsset, ApiError> {
    body.only_known(&INFO)?;
    let options = body.int("Options")?.unwrap_or(0);
    if ![0, 1, 2, 4].contains(&options) {
        return Err(ApiError::bad_request(format!(
            "field 'Options' must be 0 (None), 1 (StorageEncrypted), 2 (CommonEncryptionProtected) or 4 (EnvelopeEncryptionProtected), not {options}"
        )));
    }
    Ok(NewAsset {
        name: body.str("Name")?,
        options,
        alternate_id: body.str("AlternateId")?,
    })
}

async fn create(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    // Every field is checked before anything exists: a refused request leaves nothing.
    let new = read_new_asset(&Body::parse(ctx.body)?)?;
    let asset = new_asset(ctx.st, new.name, new.alternate_id, new.options);
    let v = to_value(&asset)?;
    with_containers(ctx.st, &[&asset], || {
        Ok(ctx.st.db.insert(INFO.name, &asset.id, None, &v)?)
    })
    .await?;
    Ok(ctx.entity(&INFO, StatusCode::CREATED, v))
}

/// A new, empty asset of this account; its container (named from its id) not created yet.
pub(super) fn new_asset(
    st: &AppState,
    name: Option<String>,
    alternate_id: Option<String>,
    options: i32,
) -> Asset {
    let id = IdKind::Content.new_id();
    let t = now();
    Asset {
        uri: format!(
            "{}/{}",
            st.storage.endpoint().trim_end_matches('/'),
            asset_container(&id)
        ),
        storage_account_name: st.storage.account().to_string(),
        id,
        state: 0,
        created: t,
        last_modified: t,
        alternate_id,
        name,
        options,
    }
}

/// Creates the containers of `assets`, then `store`s their records (with whatever goes with
/// them, in one transaction). When either fails the containers made go again, so a refused
/// request (a full disk, say) leaves nothing behind.
pub(super) async fn with_containers<T>(
    st: &AppState,
    assets: &[&Asset],
    store: impl FnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut made = Vec::new();
    let mut result = Ok(());
    for a in assets {
        let container = a.container();
        match st.storage.create_container(&container).await {
            Ok(true) => made.push(container),
            Ok(false) => {}
            Err(e) => {
                result = Err(ApiError::from(e));
                break;
            }
        }
    }
    let result = result.and_then(|()| store());
    if result.is_err() {
        for container in made {
            if let Err(undo) = st.storage.delete_container(&container).await {
                tracing::warn!(%container, error = %undo, "could not remove the container of an asset that was not created");
            }
        }
    }
    result
}

fn update(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let mut a: Asset = ctx.load(&INFO, id)?;
    let body = Body::parse(ctx.body)?;
    body.only_known(&INFO)?;
    body.read_only_unchanged(&to_value(&a)?, &["Name", "AlternateId"], "Asset")?;
    if body.has("Name") {
        a.name = body.str("Name")?;
    }
    if body.has("AlternateId") {
        a.alternate_id = body.str("AlternateId")?;
    }
    a.last_modified = now();
    ctx.st.db.update(INFO.name, id, &to_value(&a)?)?;
    Ok(no_content())
}

/// `DELETE Assets('…')`: the asset, its files and locators, and its blob container unless
/// `?keepcontainer=true` (the SDK's `DeleteAsync(keepAzureStorageContainer: true)`).
async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Response, ApiError> {
    let a: Asset = ctx.load(&INFO, id)?;
    let keep = ctx
        .query
        .param("keepcontainer")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !keep {
        ctx.st.storage.delete_container(&a.container()).await?;
    }
    ctx.st.db.delete_children(locators::INFO.name, id)?;
    ctx.st.db.delete_children(files::INFO.name, id)?;
    ctx.st
        .db
        .delete_children(super::protection::ASSET_LINKS, id)?;
    ctx.st.db.delete(INFO.name, id)?;
    Ok(no_content())
}
