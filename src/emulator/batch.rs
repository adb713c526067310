//! `POST /api/$batch`: OData v3 batches as the .NET SDK's `job.Submit()` sent them
//! (`multipart/mixed`, one changeset: `POST Jobs` with Content-ID 1, then `POST $1/Tasks` per
//! task, `$n` naming an earlier part's entity), and reads outside changesets.
//!
//! Each part runs through the same routes as a request of its own, with the batch's
//! credentials and version. A changeset is one unit: a job's `$n/Tasks` parts are folded into
//! the job's own body, so the job is created with its tasks at once (as the service queued it,
//! whole), and each task part is answered with the task it became. A part that fails ends the
//! changeset: what its earlier parts created is deleted again, and the changeset's answer is
//! that one error. The answer is `multipart/mixed; boundary=batchresponse_…`, each part
//! `application/http` with the inner `Content-ID` the client matches its changes by.

use std::future::Future;
use std::pin::Pin;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::odata::{ApiError, Format};

/// Parts in one batch at most (the service's limit was 1,000 operations).
const MAX_PARTS: usize = 1000;

/// One request of a batch.
#[derive(Debug, Clone)]
pub struct Part {
    pub method: Method,
    /// The URL as written (absolute, relative to the API root, or starting with `$n`).
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub content_id: Option<String>,
}

/// A batch: reads and changesets, in order.
#[derive(Debug)]
pub enum Item {
    Read(Part),
    Changeset(Vec<Part>),
}

/// What a part got back.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Runs one request through the API's routes.
pub type Run<'a> = &'a (dyn Fn(Method, Uri, HeaderMap, Bytes) -> Pin<Box<dyn Future<Output = Response> + Send>>
         + Send
         + Sync);

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("$batch: {}", message.into()))
}

/// `boundary=…` of a multipart content type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts between `--boundary` lines (each without its trailing line break).
fn split<'a>(body: &'a str, boundary: &str) -> Result<Vec<&'a str>, ApiError> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Anything before the first delimiter is a preamble.
    let Some(start) = rest.find(&delimiter) else {
        return Err(bad(format!("no part starts with --{boundary}")));
    };
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with("--") {
            return Ok(parts);
        }
        let Some(end) = rest.find(&delimiter) else {
            return Err(bad(format!("the batch does not end with --{boundary}--")));
        };
        let part = rest[..end]
            .strip_prefix("\r\n")
            .or_else(|| rest[..end].strip_prefix('\n'))
            .unwrap_or(&rest[..end]);
        let part = part
            .strip_suffix("\r\n")
            .or_else(|| part.strip_suffix('\n'))
            .unwrap_or(part);
        parts.push(part);
        if parts.len() > MAX_PARTS {
            return Err(bad(format!("more than {MAX_PARTS} parts")));
        }
        rest = &rest[end + delimiter.len()..];
    }
}

/// Header lines up to the first empty line; the rest.
fn headers_and_rest(text: &str) -> Result<(HeaderMap, &str), ApiError> {
    let mut headers = HeaderMap::new();
    let mut rest = text;
    loop {
        let (line, after) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let line = line.trim_end_matches('\r');
        rest = after;
        if line.is_empty() {
            return Ok((headers, rest));
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("a header line without ':': {line}")))?;
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| bad(format!("not a header name: {k}")))?;
        let value =
            HeaderValue::from_str(v.trim()).map_err(|_| bad(format!("not a header value: {v}")))?;
        headers.append(name, value);
        if after.is_empty() {
            return Ok((headers, ""));
        }
    }
}

/// One `application/http` part: its MIME headers, the request line, its headers, its body.
fn request(part: &str) -> Result<Part, ApiError> {
    let (_, http) = headers_and_rest(part)?;
    let http = http.trim_start_matches(['\r', '\n']);
    let (line, rest) = http.split_once('\n').unwrap_or((http, ""));
    let mut words = line.trim_end_matches('\r').split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(bad(format!("not a request line: {line}")));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| bad(format!("not a method: {method}")))?;
    let (headers, body) = headers_and_rest(rest)?;
    let content_id = headers
        .get("content-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string());
    Ok(Part {
        method,
        url: url.to_string(),
        headers,
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_id,
    })
}

/// Reads a batch body of `content_type`.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<Item>, ApiError> {
    let b = boundary(content_type)
        .ok_or_else(|| bad("the Content-Type must be multipart/mixed with a boundary"))?;
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let mut items = Vec::new();
    for part in split(text, &b)? {
        let (mime, rest) = headers_and_rest(part)?;
        let kind = mime
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if kind.starts_with("multipart/mixed") {
            let inner = boundary(&kind).ok_or_else(|| bad("a changeset without a boundary"))?;
            let mut parts = Vec::new();
            for p in split(rest, &inner)? {
                parts.push(request(p)?);
            }
            items.push(Item::Changeset(parts));
        } else {
            items.push(Item::Read(request(part)?));
        }
    }
    Ok(items)
}

/// The path below the API root of a part's URL (absolute, `/api/…`, relative, or `$n/…`
/// with `$n` replaced by the entity part `n` created).
fn resolve(url: &str, created: &[(String, String)]) -> Result<String, ApiError> {
    let path = match url.find("/api/") {
        Some(i) if url.starts_with("http") || url.starts_with('/') => &url[i + 5..],
        _ => url.trim_start_matches('/'),
    };
    // `$1`, `$1/Tasks`: a Content-ID (digits); `$batch`, `$metadata` are not references.
    if let Some(reference) = path
        .strip_prefix('$')
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    {
        let (id, tail) = reference.split_once('/').unwrap_or((reference, ""));
        let (_, location) = created
            .iter()
            .find(|(cid, _)| cid == id)
            .ok_or_else(|| bad(format!("${id} names no earlier part of the changeset")))?;
        let below = location
            .find("/api/")
            .map_or(location.as_str(), |i| &location[i + 5..]);
        return Ok(if tail.is_empty() {
            below.to_string()
        } else {
            format!("{below}/{tail}")
        });
    }
    Ok(path.to_string())
}

/// A part's headers with the batch's credentials and version beneath them; a part in Atom
/// without an `Accept` is answered in Atom.
fn merged(outer: &HeaderMap, part: &HeaderMap) -> HeaderMap {
    let mut h = part.clone();
    if super::atom::has_xml_body(&h) && !h.contains_key("accept") {
        h.insert(
            "accept",
            HeaderValue::from_static("application/atom+xml,application/xml"),
        );
    }
    for k in ["authorization", "x-ms-version", "x-ms-client-request-id"] {
        if !h.contains_key(k) {
            if let Some(v) = outer.get(k) {
                h.insert(k, v.clone());
            }
        }
    }
    h
}

async fn call(run: Run<'_>, method: Method, path: &str, headers: HeaderMap, body: Bytes) -> Answer {
    // OData has no batch inside a batch (and a nested one would recurse).
    let first = path.split(['/', '?']).next().unwrap_or_default();
    if first.eq_ignore_ascii_case("$batch") || first.eq_ignore_ascii_case("%24batch") {
        return error_answer(bad("a batch cannot hold another $batch"));
    }
    let uri: Uri = match format!("/api/{path}").parse() {
        Ok(u) => u,
        Err(_) => {
            return Answer {
                status: StatusCode::BAD_REQUEST,
                headers: HeaderMap::new(),
                body: Bytes::from(format!("$batch: not a URL: {path}")),
            }
        }
    };
    let r = run(method, uri, headers, body).await;
    let status = r.status();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// A part's body as JSON (an Atom entry read as the routes read one).
fn json_body(p: &Part) -> Result<Value, ApiError> {
    if let Some(v) = super::atom::json_of(&p.headers, &p.body)? {
        Ok(v)
    } else if p.body.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Object(Default::default()))
    } else {
        serde_json::from_slice(&p.body).map_err(|e| bad(format!("a part's body: {e}")))
    }
}

fn is_jobs(p: &Part) -> bool {
    p.method == Method::POST && {
        let path = resolve(&p.url, &[]).unwrap_or_default();
        path.trim_end_matches("()").eq_ignore_ascii_case("Jobs")
    }
}

/// The Content-ID of the job part a `$n/Tasks` part adds to.
fn task_of(p: &Part, jobs: &[String]) -> Option<String> {
    let (id, tail) = p
        .url
        .rsplit_once("/$")
        .map(|(_, r)| r)
        .or(p.url.strip_prefix('$'))?
        .split_once('/')?;
    (p.method == Method::POST && tail.trim_end_matches("()").eq_ignore_ascii_case("Tasks"))
        .then(|| id.to_string())
        .filter(|id| jobs.contains(id))
}

/// A job's body with its task parts folded in, and those parts' Content-IDs in order.
struct Folded {
    body: Value,
    tasks: Vec<Option<String>>,
}

/// Runs a changeset; one answer per part, or the one error that ended it.
async fn changeset(
    run: Run<'_>,
    outer: &HeaderMap,
    parts: Vec<Part>,
) -> Result<Vec<(Option<String>, Answer)>, Answer> {
    let jobs: Vec<String> = parts
        .iter()
        .filter(|p| is_jobs(p))
        .filter_map(|p| p.content_id.clone())
        .collect();
    // A job's tasks, folded into its body, by the job's Content-ID.
    let mut folded: std::collections::HashMap<String, Folded> = Default::default();
    for p in &parts {
        if let Some(job) = task_of(p, &jobs) {
            let task = json_body(p).map_err(error_answer)?;
            let f = match folded.entry(job.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let jp = parts
                        .iter()
                        .find(|j| j.content_id.as_deref() == Some(job.as_str()))
                        .ok_or_else(|| error_answer(bad("a task part names no job")))?;
                    let mut body = json_body(jp).map_err(error_answer)?;
                    if !body["Tasks"].is_array() {
                        body["Tasks"] = Value::Array(Vec::new());
                    }
                    e.insert(Folded {
                        body,
                        tasks: Vec::new(),
                    })
                }
            };
            if let Some(tasks) = f.body["Tasks"].as_array_mut() {
                tasks.push(task);
            }
            f.tasks.push(p.content_id.clone());
        }
    }
    let mut created: Vec<(String, String)> = Vec::new();
    // Answers by part, written in the parts' order.
    let mut answers: Vec<Option<(Option<String>, Answer)>> = parts.iter().map(|_| None).collect();
    let undo = |created: Vec<(String, String)>, failed: Answer| async move {
        for (_, location) in created.into_iter().rev() {
            if let Ok(path) = resolve(&location, &[]) {
                let _ = call(
                    run,
                    Method::DELETE,
                    &path,
                    merged(outer, &HeaderMap::new()),
                    Bytes::new(),
                )
                .await;
            }
        }
        failed
    };
    let job_index = |cid: &str| {
        parts
            .iter()
            .position(|j| j.content_id.as_deref() == Some(cid))
    };
    for (i, p) in parts.iter().enumerate() {
        // A job with tasks runs when its last task part comes (what its tasks need, such as
        // their content keys, comes first in the changeset).
        let i = match task_of(p, &jobs) {
            Some(job) => {
                let last = folded
                    .get(&job)
                    .and_then(|f| f.tasks.last().cloned())
                    .flatten();
                if last != p.content_id {
                    continue;
                }
                match job_index(&job) {
                    Some(j) => j,
                    None => continue,
                }
            }
            None if p
                .content_id
                .as_ref()
                .is_some_and(|id| folded.contains_key(id)) =>
            {
                continue
            }
            None => i,
        };
        let p = &parts[i];
        let path = match resolve(&p.url, &created) {
            Ok(path) => path,
            Err(e) => return Err(undo(created, error_answer(e)).await),
        };
        let mut headers = merged(outer, &p.headers);
        let body = match p
            .content_id
            .as_ref()
            .and_then(|id| folded.get(id).map(|f| &f.body))
        {
            Some(json) => {
                headers.insert(
                    "content-type",
                    HeaderValue::from_static("application/json;odata=verbose"),
                );
                Bytes::from(json.to_string())
            }
            None => p.body.clone(),
        };
        let a = call(run, p.method.clone(), &path, headers, body).await;
        if !a.status.is_success() {
            return Err(undo(created, a).await);
        }
        let location = a
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let (Some(id), Some(l)) = (&p.content_id, &location) {
            created.push((id.clone(), l.clone()));
        }
        // The tasks folded into this job: each answered with the task it became.
        if let (Some(id), Some(l)) = (&p.content_id, &location) {
            if let Some(task_ids) = folded.get(id).map(|f| &f.tasks) {
                let below = resolve(l, &[]).unwrap_or_default();
                let mut list_headers = merged(outer, &HeaderMap::new());
                list_headers.insert("accept", HeaderValue::from_static("application/json"));
                let list = call(
                    run,
                    Method::GET,
                    &format!("{below}/Tasks"),
                    list_headers,
                    Bytes::new(),
                )
                .await;
                let tasks: Value = serde_json::from_slice(&list.body).unwrap_or_default();
                let ids: Vec<String> = tasks["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["Id"].as_str().map(str::to_string))
                    .collect();
                answers[i] = Some((p.content_id.clone(), a));
                for (k, cid) in task_ids.iter().enumerate() {
                    let Some(tid) = ids.get(k) else { continue };
                    let task_path = crate::ams::odata::key_path("Tasks", tid);
                    let Some(t_index) = parts
                        .iter()
                        .position(|t| t.content_id == *cid && task_of(t, &jobs).is_some())
                    else {
                        continue;
                    };
                    let headers = merged(outer, &parts[t_index].headers);
                    let mut t = call(run, Method::GET, &task_path, headers, Bytes::new()).await;
                    if t.status == StatusCode::OK {
                        t.status = StatusCode::CREATED;
                        if let Ok(v) = HeaderValue::from_str(&format!(
                            "{}/{}",
                            l.rsplit_once("/Jobs(").map_or(l.as_str(), |(root, _)| root),
                            task_path
                        )) {
                            t.headers.insert("location", v);
                        }
                    }
                    answers[t_index] = Some((cid.clone(), t));
                }
                continue;
            }
        }
        answers[i] = Some((p.content_id.clone(), a));
    }
    Ok(answers.into_iter().flatten().collect())
}

fn error_answer(e: ApiError) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static(super::atom::XML_TYPE),
    );
    Answer {
        status: e.status,
        headers,
        body: Bytes::from(super::atom::error(e.code, &e.message)),
    }
}

/// Writes one `application/http` response part.
fn write_part(out: &mut Vec<u8>, boundary: &str, content_id: Option<&str>, a: &Answer) {
    let reason = a.status.canonical_reason().unwrap_or("");
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 {} {reason}\r\n",
            a.status.as_u16()
        )
        .as_bytes(),
    );
    if let Some(id) = content_id {
        out.extend_from_slice(format!("Content-ID: {id}\r\n").as_bytes());
    }
    for (k, v) in &a.headers {
        if matches!(
            k.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", a.body.len()).as_bytes());
    out.extend_from_slice(&a.body);
    out.extend_from_slice(b"\r\n");
}

/// Answers a `$batch` request.
pub async fn handle(run: Run<'_>, headers: &HeaderMap, body: &[u8]) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let items = match parse(content_type, body) {
        Ok(items) => items,
        Err(e) => return e.into_response(Format::Atom),
    };
    let id = uuid::Uuid::new_v4();
    let batch = format!("batchresponse_{id}");
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Read(p) => {
                let a = match resolve(&p.url, &[]) {
                    Ok(path) => {
                        call(
                            run,
                            p.method.clone(),
                            &path,
                            merged(headers, &p.headers),
                            p.body.clone(),
                        )
                        .await
                    }
                    Err(e) => error_answer(e),
                };
                write_part(&mut out, &batch, p.content_id.as_deref(), &a);
            }
            Item::Changeset(parts) => {
                let set = format!("changesetresponse_{}", uuid::Uuid::new_v4());
                out.extend_from_slice(
                    format!("--{batch}\r\nContent-Type: multipart/mixed; boundary={set}\r\n\r\n")
                        .as_bytes(),
                );
                match changeset(run, headers, parts).await {
                    Ok(answers) => {
                        for (cid, a) in &answers {
                            write_part(&mut out, &set, cid.as_deref(), a);
                        }
                    }
                    Err(failed) => write_part(&mut out, &set, None, &failed),
                }
                out.extend_from_slice(format!("--{set}--\r\n").as_bytes());
            }
        }
    }
    out.extend_from_slice(format!("--{batch}--\r\n").as_bytes());
    let mut r = (StatusCode::ACCEPTED, out).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={batch}")) {
        r.headers_mut().insert("content-type", v);
    }
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("1.0;"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_parse_with_any_line_ends_and_references_resolve() {
        let body = "preamble\n--b\nContent-Type: application/http\n\nGET https://h/api/Assets HTTP/1.1\nAccept: application/json\n\n--b\nContent-Type: multipart/mixed; boundary=c\n\n--c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPOST /api/Jobs HTTP/1.1\r\nContent-ID: 1\r\n\r\n{\"Name\":\"j\"}\r\n--c\r\nContent-Type: application/http\r\n\r\nPOST $1/Tasks HTTP/1.1\r\nContent-ID: 2\r\n\r\n{}\r\n--c--\r\n--b--";
        let items = parse("multipart/mixed; boundary=b", body.as_bytes()).unwrap();
        let [Item::Read(read), Item::Changeset(parts)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!(
            (read.method.as_str(), read.url.as_str()),
            ("GET", "https://h/api/Assets")
        );
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_id.as_deref(), Some("1"));
        assert_eq!(&parts[0].body[..], b"{\"Name\":\"j\"}");
        assert!(is_jobs(&parts[0]));
        assert_eq!(task_of(&parts[1], &["1".into()]), Some("1".into()));
        let created = vec![("1".to_string(), "https://h/api/Jobs('x')".to_string())];
        assert_eq!(resolve("$1/Tasks", &created).unwrap(), "Jobs('x')/Tasks");
        assert_eq!(resolve("https://h/api/$1", &created).unwrap(), "Jobs('x')");
        assert!(resolve("$7/Tasks", &created).is_err());
        for bad in [
            "",
            "--x\n",
            "--b\nContent-Type: application/http\n\nnot a request",
        ] {
            assert!(
                parse("multipart/mixed; boundary=b", bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        assert!(parse("application/json", body.as_bytes()).is_err());
    }

    proptest::proptest! {
        #![proptest_config(crate::testing::budget())]
        #[test]
        fn no_batch_panics(body in "(--b\r?\n(Content-Type: (application/http|multipart/mixed; boundary=c)\r?\n)?\r?\n([A-Z]{0,6} [^ \r\n]{0,20} HTTP/1.1\r?\n)?([A-Za-z-]{1,10}: [^\r\n]{0,10}\r?\n){0,3}\r?\n[^\r\n]{0,20}\r?\n){0,4}(--b--)?") {
            let _ = parse("multipart/mixed; boundary=b", body.as_bytes());
        }
    }
}
