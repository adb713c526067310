//! From URL to entity module: token endpoints, the global root's 301, bearer checks, OData paths.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::odata::{parse_resource, ApiError, Format, Query};
use super::{
    assets, endpoints, files, functions, jobs, locators, notifications, policies, processors,
    protection, token, AppState, Ctx,
};
use crate::ams::auth::urldecode;

/// The path prefix that plays `media.windows.net`: requests there are redirected (301) to the
/// account's own `/api/`, as the global endpoint did.
pub const GLOBAL_PREFIX: &str = "/global";

/// The API and the streaming origin on one port: paths whose first segment is a locator GUID
/// (and `/health`) go to the origin's router, the rest to the API.
pub fn router(state: Arc<AppState>) -> axum::Router {
    use tower::ServiceExt;
    let origin = crate::origin::router(state.origin.clone());
    let api = axum::Router::new()
        .fallback(handle)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20));
    axum::Router::new().fallback_service(tower::service_fn(move |req: axum::extract::Request| {
        let target = if crate::origin::owns(req.uri().path()) {
            origin.clone()
        } else {
            api.clone()
        };
        target.oneshot(req)
    }))
}

/// Every API answer carries the service's request ids: `request-id` and `x-ms-request-id`
/// (one fresh id), and the client's own `client-request-id` and `x-ms-client-request-id`
/// echoed.
async fn handle(
    state: State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client_id = headers.get("client-request-id").cloned();
    let ms_client_id = headers.get("x-ms-client-request-id").cloned();
    let mut r = answer(state, method, uri, headers, body).await;
    let id = uuid::Uuid::new_v4().to_string();
    let h = r.headers_mut();
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        h.insert("request-id", v.clone());
        h.insert("x-ms-request-id", v);
    }
    if let Some(c) = client_id {
        h.insert("client-request-id", c);
    }
    if let Some(c) = ms_client_id {
        h.insert("x-ms-client-request-id", c);
    }
    // As the service did, so a browser client can read the request ids.
    h.insert(
        "access-control-expose-headers",
        axum::http::HeaderValue::from_static("request-id, x-ms-request-id"),
    );
    r
}

/// `answer` behind a box: a `$batch` part runs through the same routes.
fn answer_boxed(
    st: Arc<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(answer(State(st), method, uri, headers, body))
}

async fn answer(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // POST with `X-HTTP-Method: MERGE` (or DELETE, PUT, PATCH) is that method, as OData
    // clients behind proxies sent it; HEAD is GET without the body (hyper drops it).
    let tunnelled = headers
        .get("x-http-method")
        .and_then(|v| v.to_str().ok())
        .and_then(|m| Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).ok());
    let method = match (method, tunnelled) {
        (Method::POST, Some(m)) if ["MERGE", "DELETE", "PUT", "PATCH"].contains(&m.as_str()) => m,
        (Method::HEAD, _) => Method::GET,
        (m, _) => m,
    };
    let fmt = Format::from_accept(
        headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    let path = uri.path();
    let root = st.config.public_url.as_str();
    let lower = path.to_ascii_lowercase();

    if method == Method::POST && lower == "/v2/oauth2-13" {
        return token::acs(&st, &body);
    }
    // Azure AD style tokens at /{tenant}/oauth2/token, and nowhere else.
    let tenant = path
        .strip_prefix('/')
        .filter(|_| lower.ends_with("/oauth2/token"))
        .map(|p| &p[..p.len() - "/oauth2/token".len()])
        .filter(|tenant| !tenant.is_empty() && !tenant.contains('/'));
    if let (true, Some(tenant)) = (method == Method::POST, tenant) {
        return token::aad(&st, tenant, &body);
    }
    if path == "/" || lower == GLOBAL_PREFIX || lower.starts_with(&format!("{GLOBAL_PREFIX}/")) {
        return redirect(&format!("{root}/api/"));
    }
    let Some(rest) = strip_api(path) else {
        return ApiError::not_found(format!(
            "no such endpoint '{path}'; the API is under /api/, tokens at /v2/OAuth2-13"
        ))
        .into_response(fmt);
    };
    if let Err(e) = token::check(&st, &headers) {
        return e.into_response(fmt);
    }
    if let Err(e) = check_version(&headers, uri.query()) {
        return e.into_response(fmt);
    }
    if method == Method::POST && (rest == "$batch" || rest == "%24batch") {
        let st = st.clone();
        let run = move |m, u, h, b| answer_boxed(st.clone(), m, u, h, b);
        return super::batch::handle(&run, &headers, &body).await;
    }
    let query = match Query::parse(uri.query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(fmt),
    };
    // An Atom entry (the .NET SDK's) is read into the JSON body the entity modules take.
    let body = match super::atom::json_of(&headers, &body) {
        Ok(Some(v)) => Bytes::from(v.to_string()),
        Ok(None) => body,
        Err(e) => return e.into_response(fmt),
    };
    // `Assets/$count`, `Assets('…')/Files/$count`: the collection's count, as text.
    let (rest, count_only) = match rest
        .trim_end_matches('/')
        .strip_suffix("/$count")
        .or_else(|| rest.trim_end_matches('/').strip_suffix("/%24count"))
    {
        Some(collection) => (collection, true),
        None => (rest, false),
    };
    let ctx = Ctx {
        st: &st,
        fmt,
        api: format!("{root}/{}/", &path[1..4]),
        query,
        body: &body,
        count_only,
    };
    match dispatch(&ctx, &method, rest, uri.query()).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(%method, %path, error = %e.message, "request failed");
            }
            e.into_response(fmt)
        }
    }
}

/// `x-ms-version` (or `?api-version=`, as the reference allowed for a browser): the versions
/// the service had (2.0 to 2.19) are accepted, in any form a client wrote them (`2.19`,
/// ` 2.7 `); another version, or none, is 400 as the service answered.
fn check_version(headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
    let from_query = query.and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
            .map(|(_, v)| urldecode(v))
    });
    let text = match (headers.get("x-ms-version"), from_query) {
        (Some(v), _) => v.to_str().unwrap_or_default().trim().to_string(),
        (None, Some(q)) => q.trim().to_string(),
        (None, None) => {
            return Err(ApiError::bad_request(
                "The API version of Media Services is not specified: send the header x-ms-version: 2.19 (or ?api-version=2.19)",
            ))
        }
    };
    let text = text.as_str();
    let known = text
        .split_once('.')
        .filter(|(major, _)| *major == "2")
        .and_then(|(_, minor)| minor.parse::<u32>().ok())
        .is_some_and(|minor| minor <= 19);
    if known {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "x-ms-version '{text}' is not a version of this API; use 2.0 to 2.19"
        )))
    }
}

fn redirect(location: &str) -> Response {
    let mut r = (
        StatusCode::MOVED_PERMANENTLY,
        format!("<html><head><title>Object moved</title></head><body><h2>Object moved to <a href=\"{location}\">here</a>.</h2></body></html>"),
    )
        .into_response();
    if let Ok(v) = location.parse() {
        r.headers_mut().insert("location", v);
    }
    r
}

/// `/api/…` with `api` in any case; returns what follows it.
fn strip_api(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    // By characters, not bytes: a path may hold any UTF-8 after its first bytes.
    let (head, tail) = rest.split_at_checked(3).unwrap_or((rest, ""));
    (head.eq_ignore_ascii_case("api") && (tail.is_empty() || tail.starts_with('/')))
        .then(|| tail.trim_start_matches('/'))
}

async fn dispatch(
    ctx: &Ctx<'_>,
    method: &Method,
    rest: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    if rest.is_empty() {
        return Ok(service_document(ctx));
    }
    if method == Method::GET && (rest == "$metadata" || rest.eq_ignore_ascii_case("%24metadata")) {
        let edmx = super::odata::Payload::Xml(super::metadata::edmx());
        return Ok(super::odata::respond(Format::Atom, StatusCode::OK, edmx));
    }
    let (set, key, nav) = parse_resource(rest)?;
    let m = method.as_str();
    match set.as_str() {
        "Assets" => assets::handle(ctx, m, key, nav).await,
        "Files" => files::handle(ctx, m, key, nav).await,
        "AccessPolicies" => policies::handle(ctx, m, key, nav).await,
        "Locators" => locators::handle(ctx, m, key, nav).await,
        "MediaProcessors" => processors::handle(ctx, m, key, nav).await,
        "Jobs" => jobs::handle_jobs(ctx, m, key, nav).await,
        "Tasks" => jobs::handle_tasks(ctx, m, key, nav).await,
        "StreamingEndpoints" => endpoints::handle(ctx, m, key, nav).await,
        "Operations" => endpoints::handle_operations(ctx, m, key, nav).await,
        "NotificationEndPoints" => notifications::handle(ctx, m, key, nav).await,
        "CreateFileInfos" if m == "GET" => functions::create_file_infos(ctx, query).await,
        "CancelJob" if m == "GET" => jobs::cancel(ctx, query).await,
        "ContentKeys" => protection::handle(ctx, m, key, nav).await,
        "GetProtectionKeyId" if m == "GET" => protection::get_protection_key_id(ctx, query).await,
        "GetProtectionKey" if m == "GET" => protection::get_protection_key(ctx, query).await,
        "RebindContentKey" if m == "GET" => protection::rebind_content_key(ctx, query).await,
        other => Err(ApiError::not_found(format!(
            "'{other}' is not an entity set of this service (Assets, Files, AccessPolicies, Locators, MediaProcessors, Jobs, Tasks, StreamingEndpoints, Operations, NotificationEndPoints, ContentKeys)"
        ))),
    }
}

/// The service document: every entity set served (the ones `$metadata` describes).
fn service_document(ctx: &Ctx<'_>) -> Response {
    let sets: Vec<&str> = super::metadata::SETS.iter().map(|s| s.name).collect();
    let body = match ctx.fmt {
        Format::Minimal => serde_json::json!({
            "odata.metadata": format!("{}$metadata", ctx.api),
            "value": sets.iter().map(|s| serde_json::json!({"name": s, "url": s})).collect::<Vec<_>>(),
        })
        .into(),
        Format::Verbose => serde_json::json!({"d": {"EntitySets": sets}}).into(),
        Format::Atom => super::odata::Payload::Xml(super::atom::service(&ctx.api, &sets)),
    };
    super::odata::respond(ctx.fmt, StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_parse_raw_or_encoded() {
        let (s, k, n) = parse_resource("Assets('nb%3Acid%3AUUID%3Aab')/Files").unwrap();
        assert_eq!(
            (s.as_str(), k.as_deref(), n.as_deref()),
            ("Assets", Some("nb:cid:UUID:ab"), Some("Files"))
        );
        let (s, k, n) = parse_resource("Locators('nb:lid:UUID:1')").unwrap();
        assert_eq!(
            (s.as_str(), k.as_deref(), n),
            ("Locators", Some("nb:lid:UUID:1"), None)
        );
        assert_eq!(parse_resource("Assets").unwrap().0, "Assets");
        // As the .NET SDK writes them.
        let (s, k, n) = parse_resource("MediaProcessors()").unwrap();
        assert_eq!((s.as_str(), k, n), ("MediaProcessors", None, None));
        let (s, k, n) = parse_resource("Jobs('nb%3Ajid%3AUUID%3A1')/OutputMediaAssets()").unwrap();
        assert_eq!(
            (s.as_str(), k.as_deref(), n.as_deref()),
            ("Jobs", Some("nb:jid:UUID:1"), Some("OutputMediaAssets"))
        );
        for encoded in [
            "Assets%28%27nb%3Acid%3AUUID%3Aab%27%29",
            "%2FAssets%28%27nb%3Acid%3AUUID%3Aab%27%29",
        ] {
            let (s, k, _) = parse_resource(encoded).unwrap();
            assert_eq!(
                (s.as_str(), k.as_deref()),
                ("Assets", Some("nb:cid:UUID:ab"))
            );
        }
        assert_eq!(strip_api("/API/Assets"), Some("Assets"));
        assert_eq!(strip_api("/api/"), Some(""));
        assert_eq!(strip_api("/apix"), None);
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn api_paths_never_panic(path in "\\PC{0,40}", raw in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let _ = strip_api(&path).map(parse_resource);
            let lossy = String::from_utf8_lossy(&raw);
            let _ = strip_api(&lossy).map(parse_resource);
            let _ = parse_resource(&path);
        }
    }
}
