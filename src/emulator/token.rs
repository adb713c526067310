//! The token endpoints (ACS and Azure AD style) and the bearer check every API call passes.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::odata::ApiError;
use super::AppState;
use crate::ams::auth::{self, TokenError, TokenResponse};

fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (auth::urldecode(k), auth::urldecode(v)))
        .collect()
}

fn refuse(error: &str, description: String) -> Response {
    let body = TokenError {
        error: error.into(),
        error_description: description,
    };
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/json; charset=utf-8")],
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response()
}

/// The refusal for bad client credentials, if they are bad.
fn refusal(st: &AppState, f: &std::collections::HashMap<String, String>) -> Option<Response> {
    if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Some(refuse(
            "unsupported_grant_type",
            "grant_type must be client_credentials".into(),
        ));
    }
    // Clients of the era sent `…&client_secret=KEY &scope=…`: the service took the key
    // without the spaces around it.
    let id = f.get("client_id").map(|s| s.trim()).unwrap_or_default();
    let secret = f.get("client_secret").map(|s| s.trim()).unwrap_or_default();
    let app = st
        .config
        .aad_client_id
        .as_deref()
        .is_some_and(|app| app.eq_ignore_ascii_case(id));
    if (id != st.config.account && !app) || secret != st.config.key {
        return Some(refuse(
            "invalid_client",
            format!("ACS50012: authentication failed for client_id '{id}'"),
        ));
    }
    None
}

fn lifetime(st: &AppState, default: i64) -> i64 {
    st.config.token_lifetime.unwrap_or(default)
}

fn json(body: &TokenResponse) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        serde_json::to_string(body).unwrap_or_default(),
    )
        .into_response()
}

/// `POST /v2/OAuth2-13` with `scope=urn:WindowsAzureMediaServices`.
pub fn acs(st: &AppState, body: &[u8]) -> Response {
    let f = form(body);
    if let Some(r) = refusal(st, &f) {
        return r;
    }
    let scope = f.get("scope").cloned().unwrap_or_default();
    if !scope.eq_ignore_ascii_case(auth::ACS_SCOPE) {
        return refuse(
            "invalid_scope",
            format!("scope must be {}, not '{scope}'", auth::ACS_SCOPE),
        );
    }
    let secs = lifetime(st, auth::ACS_LIFETIME_SECS);
    let expires = super::now().unix_timestamp() + secs;
    json(&TokenResponse {
        token_type: "http://schemas.xmlsoap.org/ws/2009/11/swt-token-profile-1.0".into(),
        access_token: auth::sign(&st.config.account, &st.config.key, auth::ACS_SCOPE, expires),
        expires_in: secs.to_string(),
        scope: Some(auth::ACS_SCOPE.into()),
        resource: None,
        expires_on: None,
    })
}

/// `POST /{tenant}/oauth2/token` with `resource=https://rest.media.azure.net`: a JWT, as
/// Azure AD issued them (its `aud` the resource, its `appid` the client).
pub fn aad(st: &AppState, tenant: &str, body: &[u8]) -> Response {
    let f = form(body);
    if let Some(r) = refusal(st, &f) {
        return r;
    }
    let resource = f.get("resource").cloned().unwrap_or_default();
    if resource.trim_end_matches('/') != auth::AAD_RESOURCE {
        return refuse(
            "invalid_resource",
            format!("resource must be {}, not '{resource}'", auth::AAD_RESOURCE),
        );
    }
    let secs = lifetime(st, auth::AAD_LIFETIME_SECS);
    let issued = super::now().unix_timestamp();
    let expires = issued + secs;
    let app_id = f
        .get("client_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    json(&TokenResponse {
        token_type: "Bearer".into(),
        access_token: auth::sign_jwt(
            &st.config.account,
            &st.config.key,
            tenant,
            &app_id,
            issued,
            expires,
        ),
        expires_in: secs.to_string(),
        scope: None,
        resource: Some(auth::AAD_RESOURCE.into()),
        expires_on: Some(expires.to_string()),
    })
}

/// Every API call needs `Authorization: Bearer <token from this account>`.
pub fn check(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("the request has no Authorization header; get a token at /v2/OAuth2-13 and send it as 'Authorization: Bearer <token>'"))?;
    // The scheme is case-insensitive (RFC 9110): Bearer, bearer, BEARER.
    let token = value
        .trim_start()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
        })?;
    auth::verify(
        token.trim(),
        &st.config.account,
        &st.config.key,
        super::now().unix_timestamp(),
    )
    .map_err(|p| ApiError::unauthorized(p.to_string()))
}
