//! The Media Services v2 client: tokens (ACS or Azure AD) cached and refreshed before they
//! expire, the global endpoint's 301 followed by re-issuing the request (once, as the REST
//! reference says), verbose OData JSON, retries of idempotent calls on 5xx and timeouts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::{self, TokenResponse};
use super::model::{
    requests, AccessPolicy, Asset, AssetFile, Job, Locator, MediaProcessor, Operation, Permissions,
    StreamingEndpoint, Task,
};
use super::odata::{key_path, unwrap_collection, unwrap_entity, EntityRef, ODataError};
use crate::config::MediaAccount;
use crate::retry::{RetryPolicy, Transient};

#[derive(Debug, thiserror::Error)]
pub enum AmsError {
    #[error("Media Services account '{account}': {message}")]
    NotFound { account: String, message: String },
    #[error("Media Services account '{account}' refused the request ({status}): {message}")]
    Refused {
        account: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("Media Services account '{account}' refused the credentials: {message}")]
    Auth { account: String, message: String },
    #[error("Media Services at {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("Media Services answered something unexpected: {0}")]
    Protocol(String),
}

impl AmsError {
    pub fn status(&self) -> Option<u16> {
        match self {
            AmsError::NotFound { .. } => Some(404),
            AmsError::Refused { status, .. } => Some(*status),
            AmsError::Auth { .. } => Some(401),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AmsError::NotFound { .. } => "not_found",
            AmsError::Refused { status: 409, .. } => "conflict",
            AmsError::Refused { .. } => "refused",
            AmsError::Auth { .. } => "auth",
            AmsError::Unreachable { .. } => "unreachable",
            AmsError::Protocol(_) => "protocol",
        }
    }
}

impl Transient for AmsError {
    fn is_transient(&self) -> bool {
        matches!(self, AmsError::Unreachable { .. })
            || matches!(self, AmsError::Refused { status, .. } if *status >= 500)
    }
}

/// A Media Services account, ready to call. Cheap to share.
pub struct MediaClient {
    cfg: MediaAccount,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
    api: Mutex<url::Url>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for MediaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaClient({} at {})", self.cfg.account, self.cfg.api)
    }
}

impl MediaClient {
    pub fn new(cfg: MediaAccount) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            api: Mutex::new(cfg.api.clone()),
            cfg,
            http,
            token: Mutex::new(None),
            retry: RetryPolicy::default(),
        }
    }

    pub fn account(&self) -> &str {
        &self.cfg.account
    }

    fn unreachable(url: &str, e: reqwest::Error) -> AmsError {
        let mut msg = e.to_string();
        let mut cur = std::error::Error::source(&e);
        while let Some(s) = cur {
            msg = format!("{msg}: {s}");
            cur = s.source();
        }
        AmsError::Unreachable {
            url: url.to_string(),
            message: msg,
        }
    }

    /// A valid bearer token, fetched again five minutes before it expires.
    pub async fn token(&self) -> Result<String, AmsError> {
        if let Some((t, until)) = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            if Instant::now() < until {
                return Ok(t);
            }
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", self.cfg.account.clone()),
            ("client_secret", self.cfg.key.clone()),
        ];
        if self.cfg.aad {
            form.push(("resource", auth::AAD_RESOURCE.into()));
        } else {
            form.push(("scope", auth::ACS_SCOPE.into()));
        }
        let url = self.cfg.token_endpoint.as_str();
        let resp = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| Self::unreachable(url, e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| Self::unreachable(url, e))?;
        if !status.is_success() {
            let message = serde_json::from_str::<auth::TokenError>(&text)
                .map(|e| e.error_description)
                .unwrap_or(text);
            return Err(AmsError::Auth {
                account: self.cfg.account.clone(),
                message,
            });
        }
        let t: TokenResponse = serde_json::from_str(&text)
            .map_err(|e| AmsError::Protocol(format!("token response: {e}")))?;
        let secs: u64 = t.expires_in.parse().unwrap_or(3600);
        let margin = (secs / 10).min(300);
        let until = Instant::now() + Duration::from_secs(secs.saturating_sub(margin));
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((t.access_token.clone(), until));
        Ok(t.access_token)
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// One API call: `path` is relative to the API root (`Assets`, `Locators('…')`).
    /// Returns the status and the body's JSON (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), AmsError> {
        self.call_with_headers(method, path, body)
            .await
            .map(|(status, json, _)| (status, json))
    }

    /// As [`call`](Self::call), with the answer's headers (an operation's `operation-id`).
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value, reqwest::header::HeaderMap), AmsError> {
        // A POST is never repeated: the first may have been done although its answer was lost.
        if method == Method::POST {
            return self.call_once(method, path, body).await;
        }
        self.retry
            .run(path, || self.call_once(method.clone(), path, body))
            .await
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value, reqwest::header::HeaderMap), AmsError> {
        let mut redirected = false;
        let mut reauthed = false;
        loop {
            let base = self.api.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let url = format!("{}{path}", ensure_slash(base.as_str()));
            let token = self.token().await?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("Authorization", format!("Bearer {token}"))
                .header("x-ms-version", "2.19")
                .header("DataServiceVersion", "3.0")
                .header("MaxDataServiceVersion", "3.0")
                .header("Accept", "application/json;odata=verbose");
            if let Some(b) = body {
                req = req
                    .header("Content-Type", "application/json;odata=verbose")
                    .body(b.to_string());
            }
            let resp = req.send().await.map_err(|e| Self::unreachable(&url, e))?;
            let status = resp.status();
            if status == StatusCode::MOVED_PERMANENTLY && !redirected {
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url::Url::parse(l).ok())
                    .ok_or_else(|| AmsError::Protocol("a 301 without a usable Location".into()))?;
                tracing::debug!(%location, "Media Services redirected the API root");
                *self.api.lock().unwrap_or_else(|e| e.into_inner()) = location;
                redirected = true;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !reauthed {
                self.forget_token();
                reauthed = true;
                continue;
            }
            let headers = resp.headers().clone();
            let text = resp.text().await.map_err(|e| Self::unreachable(&url, e))?;
            let json: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if status.is_success() {
                return Ok((status, json, headers));
            }
            let (code, message) = match ODataError::from_json(&json) {
                Some(e) => (e.code, e.message.value),
                None => (String::new(), format!("{status}: {json}")),
            };
            let account = self.cfg.account.clone();
            return Err(match status.as_u16() {
                404 => AmsError::NotFound { account, message },
                401 => AmsError::Auth { account, message },
                s => AmsError::Refused {
                    account,
                    status: s,
                    code,
                    message,
                },
            });
        }
    }

    async fn get_one<T: DeserializeOwned>(&self, path: &str) -> Result<T, AmsError> {
        let (_, v) = self.call(Method::GET, path, None).await?;
        entity(v)
    }

    async fn get_list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, AmsError> {
        let (_, v) = self.call(Method::GET, path, None).await?;
        list(v)
    }

    async fn create<T: DeserializeOwned>(
        &self,
        set: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, AmsError> {
        let body = serde_json::to_value(body).map_err(|e| AmsError::Protocol(e.to_string()))?;
        let (_, v) = self.call(Method::POST, set, Some(&body)).await?;
        entity(v)
    }

    pub async fn create_asset(&self, name: &str) -> Result<Asset, AmsError> {
        self.create(
            "Assets",
            &requests::NewAsset {
                name: Some(name.to_string()),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn asset(&self, id: &str) -> Result<Asset, AmsError> {
        self.get_one(&key_path("Assets", id)).await
    }

    pub async fn assets(&self) -> Result<Vec<Asset>, AmsError> {
        self.get_list("Assets").await
    }

    pub async fn delete_asset(&self, id: &str) -> Result<(), AmsError> {
        self.call(Method::DELETE, &key_path("Assets", id), None)
            .await
            .map(|_| ())
    }

    pub async fn files(&self, asset_id: &str) -> Result<Vec<AssetFile>, AmsError> {
        self.get_list(&format!("{}/Files", key_path("Assets", asset_id)))
            .await
    }

    pub async fn create_file(&self, f: &requests::NewFile) -> Result<AssetFile, AmsError> {
        self.create("Files", f).await
    }

    /// MERGE of some fields of a file (`IsPrimary`, `ContentFileSize`, …).
    pub async fn update_file(&self, id: &str, fields: &Value) -> Result<(), AmsError> {
        self.call(
            Method::from_bytes(b"MERGE").expect("valid method"),
            &key_path("Files", id),
            Some(fields),
        )
        .await
        .map(|_| ())
    }

    pub async fn create_access_policy(
        &self,
        name: &str,
        minutes: f64,
        permissions: Permissions,
    ) -> Result<AccessPolicy, AmsError> {
        self.create(
            "AccessPolicies",
            &requests::NewAccessPolicy {
                name: name.to_string(),
                duration_in_minutes: minutes,
                permissions,
            },
        )
        .await
    }

    pub async fn access_policies(&self) -> Result<Vec<AccessPolicy>, AmsError> {
        self.get_list("AccessPolicies").await
    }

    pub async fn create_locator(&self, l: &requests::NewLocator) -> Result<Locator, AmsError> {
        self.create("Locators", l).await
    }

    pub async fn locator(&self, id: &str) -> Result<Locator, AmsError> {
        self.get_one(&key_path("Locators", id)).await
    }

    pub async fn locators(&self) -> Result<Vec<Locator>, AmsError> {
        self.get_list("Locators").await
    }

    /// The OnDemandOrigin locators only (`$filter=Type eq 2`).
    pub async fn origin_locators(&self) -> Result<Vec<Locator>, AmsError> {
        self.get_list("Locators?$filter=Type%20eq%202").await
    }

    /// Assets modified after `since` (`$filter=LastModified gt datetime'…'`, to the second).
    pub async fn assets_modified_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<Asset>, AmsError> {
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let at = since
            .to_offset(time::UtcOffset::UTC)
            .format(&format)
            .map_err(|e| AmsError::Protocol(e.to_string()))?;
        self.get_list(&format!(
            "Assets?$filter=LastModified%20gt%20datetime'{at}'"
        ))
        .await
    }

    pub async fn asset_locators(&self, asset_id: &str) -> Result<Vec<Locator>, AmsError> {
        self.get_list(&format!("{}/Locators", key_path("Assets", asset_id)))
            .await
    }

    pub async fn delete_locator(&self, id: &str) -> Result<(), AmsError> {
        self.call(Method::DELETE, &key_path("Locators", id), None)
            .await
            .map(|_| ())
    }

    /// Registers every blob of the asset's container as a File (idempotent).
    pub async fn create_file_infos(&self, asset_id: &str) -> Result<(), AmsError> {
        let path = format!("CreateFileInfos?assetid='{}'", asset_id.replace(':', "%3A"));
        self.call(Method::GET, &path, None).await.map(|_| ())
    }

    pub async fn processors(&self) -> Result<Vec<MediaProcessor>, AmsError> {
        self.get_list("MediaProcessors").await
    }

    pub async fn streaming_endpoints(&self) -> Result<Vec<StreamingEndpoint>, AmsError> {
        self.get_list("StreamingEndpoints").await
    }

    /// `Start`, `Stop` or `Scale` (with `{"scaleUnits": n}`) a streaming endpoint, then polls
    /// its operation until it ends; an operation that failed is an error naming its code.
    pub async fn operate_endpoint(
        &self,
        id: &str,
        action: &str,
        body: Option<&Value>,
    ) -> Result<StreamingEndpoint, AmsError> {
        let path = format!("{}/{action}", key_path("StreamingEndpoints", id));
        let empty = serde_json::json!({});
        let (_, _, headers) = self
            .call_with_headers(Method::POST, &path, Some(body.unwrap_or(&empty)))
            .await?;
        let op = headers
            .get("operation-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AmsError::Protocol(format!("{action}: no operation-id header")))?
            .to_string();
        let mut wait = Duration::from_millis(100);
        loop {
            let o: Operation = self.get_one(&key_path("Operations", &op)).await?;
            match o.state.as_str() {
                "Succeeded" => break,
                "Failed" => {
                    return Err(AmsError::Refused {
                        account: self.cfg.account.clone(),
                        status: 500,
                        code: o.error_code.unwrap_or_default(),
                        message: o
                            .error_message
                            .unwrap_or_else(|| format!("{action} failed")),
                    })
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.get_one(&key_path("StreamingEndpoints", id)).await
    }

    /// Submits a one-task encoding job on the latest "Media Encoder Standard", as the
    /// walkthrough's CreateEncodingJob does; the output asset is created with the job.
    pub async fn submit_job(
        &self,
        input_asset_id: &str,
        preset: &str,
        output_name: &str,
    ) -> Result<Job, AmsError> {
        let processor = self
            .processors()
            .await?
            .into_iter()
            .filter(|p| p.name == "Media Encoder Standard")
            .max_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)))
            .ok_or_else(|| {
                AmsError::Protocol("the account has no \"Media Encoder Standard\" processor".into())
            })?;
        let api = self.api.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let job = requests::NewJob {
            name: Some(format!("Encode {output_name}")),
            priority: None,
            input_media_assets: vec![EntityRef::new(api.as_str(), "Assets", input_asset_id)],
            tasks: vec![requests::TaskSpec {
                name: Some("Encoding task".into()),
                configuration: Some(preset.to_string()),
                media_processor_id: processor.id,
                task_body: requests::TaskSpec::task_body(0, 0, output_name),
                ..Default::default()
            }],
            job_notification_subscriptions: Vec::new(),
        };
        let body = serde_json::to_value(&job).map_err(|e| AmsError::Protocol(e.to_string()))?;
        let (_, v) = self.call(Method::POST, "Jobs", Some(&body)).await?;
        entity(v)
    }

    pub async fn job(&self, id: &str) -> Result<Job, AmsError> {
        self.get_one(&key_path("Jobs", id)).await
    }

    pub async fn jobs(&self) -> Result<Vec<Job>, AmsError> {
        self.get_list("Jobs").await
    }

    /// Jobs not yet ended: Queued, Scheduled or Processing (`$filter=State lt 3`).
    pub async fn active_jobs(&self) -> Result<Vec<Job>, AmsError> {
        self.get_list("Jobs?$filter=State%20lt%203").await
    }

    pub async fn job_tasks(&self, id: &str) -> Result<Vec<Task>, AmsError> {
        self.get_list(&format!("{}/Tasks", key_path("Jobs", id)))
            .await
    }

    pub async fn job_outputs(&self, id: &str) -> Result<Vec<Asset>, AmsError> {
        self.get_list(&format!("{}/OutputMediaAssets", key_path("Jobs", id)))
            .await
    }

    pub async fn cancel_job(&self, id: &str) -> Result<(), AmsError> {
        let path = format!("CancelJob?jobid='{}'", id.replace(':', "%3A"));
        self.call(Method::GET, &path, None).await.map(|_| ())
    }
}

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn ensure_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

fn entity<T: DeserializeOwned>(v: Value) -> Result<T, AmsError> {
    serde_json::from_value(unwrap_entity(v)).map_err(|e| AmsError::Protocol(format!("entity: {e}")))
}

fn list<T: DeserializeOwned>(v: Value) -> Result<Vec<T>, AmsError> {
    serde_json::from_value(unwrap_collection(v))
        .map_err(|e| AmsError::Protocol(format!("collection: {e}")))
}
