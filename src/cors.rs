//! CORS for streams: any site may embed our streams, with the headers its player adds.
//!
//! Streaming answers carry `Access-Control-Allow-Origin: *` and expose the headers players
//! read (`Content-Length`, `Content-Range`, `ETag`, which datacenter served). A request a
//! browser must preflight (an `Authorization` header added by hls.js's `xhrSetup`, a dash.js
//! interceptor, a Shaka request filter, `CMCD-Request`…) gets its `OPTIONS` answered here by
//! the origin and the front door alike: never forwarded, never counted against an origin.
//! No credentials mode is offered (`Allow-Credentials` is never sent), so a wildcard is safe.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Response headers a page's script may read beyond the CORS-safelisted ones.
pub const EXPOSE: &str = "Content-Length, Content-Range, ETag, x-served-by, x-cache";

/// Methods streams answer.
pub const METHODS: &str = "GET, HEAD, OPTIONS";

/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "86400";

/// The CORS headers every streaming answer carries.
pub fn allow(h: &mut HeaderMap) {
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(EXPOSE),
    );
}

/// An `OPTIONS` with `Access-Control-Request-Method`: a browser's preflight.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key("access-control-request-method")
}

/// The answer to a preflight: the methods streams answer and whatever headers were asked.
pub fn preflight(headers: &HeaderMap) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    allow(h);
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(METHODS),
    );
    if let Some(asked) = headers.get("access-control-request-headers") {
        h.insert("access-control-allow-headers", asked.clone());
    }
    h.insert("access-control-max-age", HeaderValue::from_static(MAX_AGE));
    // Answers differ by what was asked: a cache keeps them apart.
    h.insert(
        "vary",
        HeaderValue::from_static("Access-Control-Request-Headers"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preflight_is_answered_with_the_headers_it_asked_for() {
        let mut asked = HeaderMap::new();
        asked.insert("access-control-request-method", "GET".parse().unwrap());
        asked.insert(
            "access-control-request-headers",
            "authorization,cmcd-request".parse().unwrap(),
        );
        assert!(is_preflight(&Method::OPTIONS, &asked));
        assert!(!is_preflight(&Method::GET, &asked));
        assert!(!is_preflight(&Method::OPTIONS, &HeaderMap::new()));
        let r = preflight(&asked);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization,cmcd-request"
        );
        assert_eq!(h["access-control-allow-methods"], METHODS);
        assert!(h["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("Content-Range"));
        assert!(h.contains_key("access-control-max-age"));
    }
}
