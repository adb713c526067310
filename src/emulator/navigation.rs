//! Navigation properties: what an entity's `Assets('…')/Files`, `Jobs('…')/Tasks`,
//! `Locators('…')/AccessPolicy` … are, in one place, for `GET {Set}('…')/{nav}` and for
//! `$expand` alike.

use serde_json::Value;

use super::odata::{ApiError, SetInfo};
use super::{assets, files, jobs, locators, policies, AppState};

/// What a navigation property leads to.
pub enum Related {
    /// A collection (`Files`, `Tasks`, `OutputMediaAssets`, …).
    Many(&'static SetInfo, Vec<Value>),
    /// One entity (`ParentAsset`, `AccessPolicy`, `Asset`).
    One(&'static SetInfo, Value),
}

/// The entities `nav` of entity `id` of set `set` leads to; 404 naming the property when the
/// set has no such navigation, and when the entity does not exist.
pub fn related(st: &AppState, set: &SetInfo, id: &str, nav: &str) -> Result<Related, ApiError> {
    let load = |info: &SetInfo, id: &str| {
        st.db
            .get(info.name, id)?
            .ok_or_else(|| ApiError::not_found(format!("{} '{id}' was not found", info.name)))
    };
    let entity = load(set, id)?;
    let field = |name: &str| entity[name].as_str().unwrap_or_default().to_string();
    let assets_of = |ids: &[String]| -> Result<Related, ApiError> {
        let items = ids
            .iter()
            .filter_map(|id| st.db.get(assets::INFO.name, id).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Related::Many(&assets::INFO, items))
    };
    match (set.name, nav) {
        ("Assets", "Files") => Ok(Related::Many(
            &files::INFO,
            st.db.list(files::INFO.name, Some(id))?,
        )),
        ("Assets", "Locators") => Ok(Related::Many(
            &locators::INFO,
            st.db.list(locators::INFO.name, Some(id))?,
        )),
        ("Assets", "ParentAssets") => Ok(Related::Many(&assets::INFO, Vec::new())),
        ("Assets", "ContentKeys") => {
            let keys = super::protection::linked(st, id)?
                .iter()
                .map(|k| serde_json::to_value(k).map_err(|e| ApiError::internal(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Related::Many(&super::protection::INFO, keys))
        }
        ("Files", "ParentAsset") => Ok(Related::One(
            &assets::INFO,
            load(&assets::INFO, &field("ParentAssetId"))?,
        )),
        ("Locators", "Asset") => Ok(Related::One(
            &assets::INFO,
            load(&assets::INFO, &field("AssetId"))?,
        )),
        ("Locators", "AccessPolicy") => Ok(Related::One(
            &policies::INFO,
            load(&policies::INFO, &field("AccessPolicyId"))?,
        )),
        ("Jobs", "Tasks") => Ok(Related::Many(
            &jobs::TASKS,
            st.db.list(jobs::TASKS.name, Some(id))?,
        )),
        ("Jobs", "InputMediaAssets") => assets_of(&jobs::links(&st.db, id)?.inputs),
        ("Jobs", "OutputMediaAssets") => assets_of(&jobs::links(&st.db, id)?.outputs),
        ("Tasks", "InputMediaAssets" | "OutputMediaAssets") => {
            let (inputs, outputs) = jobs::task_assets(st, id)?;
            assets_of(if nav == "InputMediaAssets" {
                &inputs
            } else {
                &outputs
            })
        }
        (_, other) => Err(ApiError::not_found(format!(
            "{} has no navigation property '{other}'{}",
            super::singular(set),
            if set.navigation.is_empty() {
                String::new()
            } else {
                format!(" (it has {})", set.navigation.join(", "))
            }
        ))),
    }
}
