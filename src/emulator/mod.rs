//! `amsplay serve`: one Media Services v2 account, faithful to the public REST reference, over
//! a real Blob Storage account.
//!
//! - `routes.rs` turns OData URLs (`Assets('nb%3Acid…')/Files`, `/API/`, the global root's 301)
//!   into calls of the entity modules, after checking the bearer token (`token.rs`);
//! - one module per entity set: `assets.rs`, `files.rs`, `policies.rs`, `locators.rs`,
//!   `processors.rs`, `jobs.rs` (Jobs and Tasks); `functions.rs` holds `CreateFileInfos`;
//! - `odata.rs` has the envelopes, error bodies and query options; `db.rs` the SQLite state.

mod assets;
mod atom;
mod batch;
pub(crate) mod db;
pub mod encoder;
mod endpoints;
mod files;
mod filter;
mod functions;
mod jobs;
mod locators;
pub mod manifest;
mod metadata;
mod navigation;
mod notifications;
pub(crate) mod odata;
mod policies;
mod presets;
mod processors;
mod protection;
mod routes;
mod token;
mod worker;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::storage::Storage;
use db::Db;
use odata::{ApiError, Format, Query, SetInfo};

/// How an emulator is set up.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Media Services account name (the token endpoint's client_id).
    pub account: String,
    /// Account key (the token endpoint's client_secret; also signs tokens).
    pub key: String,
    /// Where SQLite keeps the account's entities.
    pub data_dir: PathBuf,
    /// Base URL of the streaming origin, for OnDemandOrigin locator paths.
    pub streaming_base: String,
    /// This server's base URL as clients reach it (redirects, Location, OData metadata);
    /// never taken from the request's Host header.
    pub public_url: String,
    /// Token lifetime override in seconds (tests of expiry); None: as the service did.
    pub token_lifetime: Option<i64>,
    /// An Azure AD application id (a GUID) accepted as client_id beside the account name.
    pub aad_client_id: Option<String>,
    /// ffmpeg to encode with (ffprobe is looked for beside it); None: from PATH.
    pub ffmpeg: Option<PathBuf>,
    /// Jobs encoded at once.
    pub job_concurrency: usize,
    /// How the streaming origin treats storage (deadline, read-ahead).
    pub origin: crate::origin::OriginConfig,
    /// Header-read timeout and connection cap.
    pub limits: crate::server::Limits,
}

/// Shared by every request.
pub struct AppState {
    pub config: EmulatorConfig,
    pub db: Arc<Db>,
    pub storage: Storage,
    pub tools: encoder::Tools,
    pub jobs: worker::JobControl,
    /// The streaming origin, served beside the API.
    pub origin: Arc<crate::origin::Origin>,
    /// Held while a container's stored access policies change (they are written whole).
    pub sas_lock: tokio::sync::Mutex<()>,
    /// The protection key protected task configurations are wrapped to.
    pub protection: protection::Keys,
}

/// The emulator's router, to serve or to call in-process.
pub fn router(state: Arc<AppState>) -> axum::Router {
    routes::router(state)
}

/// Opens the state and serves on `listener` until `shutdown` completes.
pub async fn serve(
    config: EmulatorConfig,
    storage: Storage,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = Arc::new(Db::open(&config.data_dir)?);
    let tools = match &config.ffmpeg {
        Some(p) => encoder::Tools::with_ffmpeg(p.clone()),
        None => encoder::Tools::default(),
    };
    let concurrency = config.job_concurrency;
    let limits = config.limits;
    let origin =
        crate::origin::Origin::new(&storage, locators::origin_source(db.clone()), config.origin);
    let protection = protection::Keys::new(&config.data_dir);
    let state = Arc::new(AppState {
        protection,
        config,
        db,
        storage,
        tools,
        jobs: worker::JobControl::default(),
        origin,
        sas_lock: tokio::sync::Mutex::new(()),
    });
    endpoints::restore(&state).map_err(|e| anyhow::anyhow!(e.message))?;
    worker::start(state.clone(), concurrency);
    tracing::info!(addr = %listener.local_addr()?, account = %state.config.account, "Media Services emulator listening");
    crate::server::serve(listener, router(state), limits, shutdown).await?;
    Ok(())
}

/// One API request as the entity modules see it.
pub(crate) struct Ctx<'a> {
    pub st: &'a AppState,
    pub fmt: Format,
    /// The API root as the client reached it, e.g. `http://127.0.0.1:7000/api/`.
    pub api: String,
    pub query: Query,
    pub body: &'a [u8],
    /// `…/$count`: a collection answers with its count as plain text.
    pub count_only: bool,
}

impl Ctx<'_> {
    /// Reads an entity or answers 404 naming it.
    pub fn load<T: DeserializeOwned>(&self, info: &SetInfo, id: &str) -> Result<T, ApiError> {
        let v = self.st.db.get(info.name, id)?.ok_or_else(|| {
            ApiError::not_found(format!("{} '{id}' was not found", singular(info)))
        })?;
        serde_json::from_value(v).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// `GET {Set}`: every entity of the set, with the request's query options.
    pub fn list(&self, info: &SetInfo) -> Result<Response, ApiError> {
        Ok(self.collection(info, self.st.db.list(info.name, None)?))
    }

    /// `GET {Set}('id')`: one entity, read as `T` (so a damaged record is an error, not a reply).
    pub fn get<T: DeserializeOwned + serde::Serialize>(
        &self,
        info: &SetInfo,
        id: &str,
    ) -> Result<Response, ApiError> {
        let e: T = self.load(info, id)?;
        Ok(self.entity(info, StatusCode::OK, to_value(&e)?))
    }

    /// `$expand`: the requested navigation properties written into `entity`, as the format
    /// writes them (verbose: `{"results": […]}` or the entity; minimal: an array or the entity).
    fn expand(&self, info: &SetInfo, mut entity: Value) -> Result<Value, ApiError> {
        let id = entity["Id"].as_str().unwrap_or_default().to_string();
        for nav in &self.query.expand {
            if !info.navigation.contains(&nav.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "$expand: {} has no navigation property '{nav}' (it has {})",
                    singular(info),
                    info.navigation.join(", ")
                )));
            }
            let verbose = matches!(self.fmt, Format::Verbose | Format::Atom);
            let inline = match navigation::related(self.st, info, &id, nav)? {
                navigation::Related::Many(i, items) => {
                    let items: Vec<Value> = items
                        .into_iter()
                        .map(|mut e| {
                            if verbose {
                                odata::verbose_entity(&self.api, i, &mut e)
                            } else {
                                e
                            }
                        })
                        .collect();
                    if verbose {
                        serde_json::json!({ "results": items })
                    } else {
                        Value::Array(items)
                    }
                }
                navigation::Related::One(i, mut e) => {
                    if verbose {
                        odata::verbose_entity(&self.api, i, &mut e)
                    } else {
                        e
                    }
                }
            };
            entity[nav.as_str()] = inline;
        }
        Ok(entity)
    }

    pub fn entity(&self, info: &SetInfo, status: StatusCode, value: Value) -> Response {
        let value = match self.expand(info, value) {
            Ok(v) => v,
            Err(e) => return e.into_response(self.fmt),
        };
        let id = value["Id"].as_str().unwrap_or_default().to_string();
        let mut r = odata::respond(
            self.fmt,
            status,
            odata::entity_body(self.fmt, &self.api, info, value),
        );
        if status == StatusCode::CREATED {
            if let Ok(v) = crate::ams::odata::entity_uri(&self.api, info.name, &id).parse() {
                r.headers_mut().insert("location", v);
            }
        }
        r
    }

    /// A single value (a property, a service operation's result) in the request's format:
    /// `{"d": {name: v}}`, `{"odata.metadata": …#edm, "value": v}`, or XML.
    pub fn value(&self, name: &str, edm: &str, v: Value) -> Response {
        let body = match self.fmt {
            Format::Verbose => serde_json::json!({ "d": { name: v } }).into(),
            Format::Minimal => serde_json::json!({
                "odata.metadata": format!("{}$metadata#{edm}", self.api),
                "value": v,
            })
            .into(),
            Format::Atom => {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                odata::Payload::Xml(atom::value(name, &text))
            }
        };
        odata::respond(self.fmt, StatusCode::OK, body)
    }

    /// `GET {Set}('id')/{nav}`: what the navigation property leads to.
    pub fn related(&self, info: &SetInfo, id: &str, nav: &str) -> Result<Response, ApiError> {
        Ok(match navigation::related(self.st, info, id, nav)? {
            navigation::Related::Many(i, items) => self.collection(i, items),
            navigation::Related::One(i, e) => self.entity(i, StatusCode::OK, e),
        })
    }

    pub fn collection(&self, info: &SetInfo, items: Vec<Value>) -> Response {
        let page = self.query.page(items);
        if self.count_only {
            let mut r = axum::response::IntoResponse::into_response((
                StatusCode::OK,
                page.total.to_string(),
            ));
            r.headers_mut().insert(
                "content-type",
                axum::http::HeaderValue::from_static("text/plain;charset=utf-8"),
            );
            return r;
        }
        let items = match page
            .items
            .into_iter()
            .map(|e| self.expand(info, e))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(items) => items,
            Err(e) => return e.into_response(self.fmt),
        };
        let count = self.query.inline_count.then_some(page.total);
        let body = odata::collection_body(
            self.fmt,
            &self.api,
            info,
            items,
            count,
            self.query.select.as_deref(),
        );
        odata::respond(self.fmt, StatusCode::OK, body)
    }
}

/// `Assets` -> `Asset`, for messages.
pub(crate) fn singular(info: &SetInfo) -> &'static str {
    info.type_name.rsplit('.').next().unwrap_or(info.name)
}

pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

pub(crate) fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

pub(crate) fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
