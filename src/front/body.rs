//! A response body streamed from an origin to the client, resumed on the next origin if the
//! first fails in the middle of it.
//!
//! Resuming asks the next available origin for the remaining bytes with `Range` and
//! `If-Range: <etag>`; only a 206 with the same ETag starting at the right byte continues the
//! body (both datacenters package the same bytes for the same path, so the ETags agree). With
//! no such origin the body ends in an error, as the first origin's failure would have.

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use super::cache::Filler;
use super::Front;

/// What is needed to ask another origin for the rest of a body.
pub struct Resume {
    path: String,
    headers: HeaderMap,
    etag: String,
    /// Offset in the whole resource of the body's first byte, and of its last.
    start: u64,
    end: u64,
}

impl Resume {
    /// A plan for a 200 or 206 with an ETag and a known length; None otherwise.
    pub fn plan(resp: &reqwest::Response, path: &str, headers: &HeaderMap) -> Option<Self> {
        let etag = resp.headers().get("etag")?.to_str().ok()?.to_string();
        let (start, end) = match resp.status() {
            StatusCode::OK => (0, resp.content_length()?.checked_sub(1)?),
            StatusCode::PARTIAL_CONTENT => {
                content_range(resp.headers().get("content-range")?.to_str().ok()?)?
            }
            _ => return None,
        };
        Some(Self {
            path: path.to_string(),
            headers: headers.clone(),
            etag,
            start,
            end,
        })
    }
}

/// `bytes a-b/total` → (a, b).
fn content_range(v: &str) -> Option<(u64, u64)> {
    let (range, _) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

struct State {
    front: Arc<Front>,
    origin: usize,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    sent: u64,
    resume: Option<Resume>,
    /// The body being kept in the front door's cache as it passes.
    fill: Option<Filler>,
    done: bool,
}

type Item = Result<Bytes, std::io::Error>;

/// The body of `resp` (from origin `origin`), resumed elsewhere when `resume` allows, and
/// kept by `fill` once it has passed whole.
pub fn stream(
    front: Arc<Front>,
    origin: usize,
    resp: reqwest::Response,
    resume: Option<Resume>,
    fill: Option<Filler>,
) -> impl futures::Stream<Item = Item> + Send + 'static {
    let state = State {
        front,
        origin,
        body: resp.bytes_stream().boxed(),
        sent: 0,
        resume,
        fill,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            let failure = match tokio::time::timeout(s.front.timeout, s.body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    s.sent += chunk.len() as u64;
                    if s.fill.as_mut().is_some_and(|f| f.push(&chunk)) {
                        if let Some(f) = s.fill.take() {
                            f.finish();
                        }
                    }
                    return Some((Ok(chunk), s));
                }
                Ok(None) => match &s.resume {
                    Some(r) if s.sent < r.end - r.start + 1 => "the body ended early".to_string(),
                    _ => return None,
                },
                Ok(Some(Err(e))) => crate::storage::error_chain(&e),
                Err(_) => format!("no data for {} ms", s.front.timeout.as_millis()),
            };
            let failed = s.origin;
            let url = s.front.origins.list[failed].url.clone();
            if s.resume.is_some() {
                s.front
                    .origins
                    .eject(failed, &format!("mid-body: {failure}"));
            }
            if let Some(next) = resume_elsewhere(&mut s).await {
                tracing::warn!(from = %url, to = %s.front.origins.list[next].url, at = s.sent, "body resumed on the next origin");
                continue;
            }
            tracing::warn!(origin = %url, error = %failure, at = s.sent, "body failed and could not be resumed");
            s.done = true;
            s.fill = None;
            let e = std::io::Error::new(std::io::ErrorKind::BrokenPipe, failure);
            return Some((Err(e), s));
        }
    })
}

/// Asks the other available origins, in order, for the rest; the one that answers right
/// becomes the body's source.
async fn resume_elsewhere(s: &mut State) -> Option<usize> {
    let r = s.resume.as_ref()?;
    let from = r.start + s.sent;
    let range = format!("bytes={from}-{}", r.end);
    for i in s.front.origins.order(Some(s.origin)) {
        let Ok(resp) = s
            .front
            .ask(
                i,
                &Method::GET,
                &r.path,
                &r.headers,
                Some((&range, &r.etag)),
            )
            .await
        else {
            s.front.origins.eject(i, "failed while resuming a body");
            continue;
        };
        let same = resp.status() == StatusCode::PARTIAL_CONTENT
            && resp.headers().get("etag").and_then(|v| v.to_str().ok()) == Some(&r.etag)
            && resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(content_range)
                == Some((from, r.end));
        if same {
            s.origin = i;
            s.body = resp.bytes_stream().boxed();
            return Some(i);
        }
        tracing::warn!(origin = %s.front.origins.list[i].url, status = %resp.status(), "cannot resume there: another version of the body");
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_ranges_parse() {
        assert_eq!(super::content_range("bytes 10-19/100"), Some((10, 19)));
        assert_eq!(super::content_range("bytes */100"), None);
    }
}
