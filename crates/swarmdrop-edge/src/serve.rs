//! Serving objects: path check, token gate, index lookup, tier or fill, then the
//! response with ranges, ETags and cache headers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::fill::{finished, verified_bytes};
use crate::index::Target;
use crate::metrics::CacheStatus;
use crate::proto::paths::{self, Object, PathError};
use crate::proto::range::{self, RangeAnswer};
use crate::source::{stream, Source};
use crate::state::{bearer, Edge, Refusal};

/// A JSON error response.
pub fn refusal_response(refusal: &Refusal) -> Response {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = serde_json::json!({ "error": refusal.code, "detail": refusal.detail });
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refusal_response(&self)
    }
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit('.').next().unwrap_or("");
    match extension {
        "json" => "application/json",
        "torrent" => "application/x-bittorrent",
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp4" | "m4s" => "video/mp4",
        "ts" => "video/mp2t",
        "m3u8" => "application/vnd.apple.mpegurl",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn fresh(edge: &Edge, filled: SystemTime) -> bool {
    SystemTime::now()
        .duration_since(filled)
        .is_ok_and(|age| age < edge.durations.ttl)
}

/// What to answer a target request with.
async fn open(edge: &Arc<Edge>, target: &Arc<Target>) -> Result<(Source, CacheStatus), Refusal> {
    let mut stale = None;
    if let Some(entry) = edge.tiers.memory.get(&target.sha256) {
        let source = Source::Memory(entry.bytes);
        if fresh(edge, entry.filled) {
            return Ok((source, CacheStatus::HitMemory));
        }
        stale = Some(source);
    }
    if stale.is_none() {
        if let Some(entry) = edge.tiers.disk.get(&target.sha256) {
            match std::fs::File::open(edge.tiers.object_path(&target.sha256)) {
                Ok(file) => {
                    let source = Source::File(Arc::new(file));
                    if fresh(edge, entry.filled) {
                        return Ok((source, CacheStatus::HitDisk));
                    }
                    stale = Some(source);
                }
                // The file went away under us (purged, or removed by hand): refill.
                Err(_) => edge.tiers.disk.invalidate(&target.sha256),
            }
        }
    }
    let (fill, coalesced) = edge.fill(target)?;
    let status = if coalesced {
        CacheStatus::Coalesced
    } else {
        CacheStatus::Miss
    };
    if stale.is_none() && target.length > edge.config.verify_before_send {
        return Ok((Source::Filling(fill), status));
    }
    match finished(&fill).await {
        Ok(()) => {
            let source = match verified_bytes(edge, target) {
                Some(bytes) => Source::Memory(bytes),
                // A handle of our own: the fill's is shared, and reads here seek.
                None => match std::fs::File::open(edge.tiers.object_path(&target.sha256)) {
                    Ok(file) => Source::File(Arc::new(file)),
                    Err(_) => Source::Filling(fill),
                },
            };
            Ok((source, status))
        }
        Err(refusal) => match stale {
            Some(source) => {
                edge.emit("stale_served", &target.name, &target.class, refusal.code);
                Ok((source, CacheStatus::Stale))
            }
            None => Err(refusal),
        },
    }
}

struct Representation<'a> {
    length: u64,
    etag: Cow<'a, str>,
    cache_control: Cow<'static, str>,
    content_type: &'static str,
    class: &'a str,
    status: CacheStatus,
}

fn etag_matches(header: Option<&HeaderValue>, etag: &str) -> bool {
    header.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
    })
}

fn respond(
    edge: &Arc<Edge>,
    method: &Method,
    headers: &HeaderMap,
    rep: Representation<'_>,
    source: Source,
    started: Instant,
) -> Response {
    let mut builder = Response::builder()
        .header(header::ETAG, rep.etag.as_ref())
        .header(header::CACHE_CONTROL, rep.cache_control.as_ref())
        .header(header::ACCEPT_RANGES, "bytes")
        .header("x-swarmdrop-cache", rep.status.as_str());
    if etag_matches(headers.get(header::IF_NONE_MATCH), &rep.etag) {
        let elapsed = started.elapsed();
        edge.metrics
            .answered(rep.class, rep.status, elapsed, Some(elapsed));
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    // If-Range with another validator: send the whole representation.
    let range_header = match headers.get(header::IF_RANGE) {
        Some(v) if v.as_bytes() != rep.etag.as_bytes() => None,
        _ => headers.get(header::RANGE).map(HeaderValue::as_bytes),
    };
    let (status, start, end) = match range::answer(range_header, rep.length) {
        RangeAnswer::Full => (StatusCode::OK, 0, rep.length.checked_sub(1)),
        RangeAnswer::Partial { start, end } => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", rep.length),
            );
            (StatusCode::PARTIAL_CONTENT, start, Some(end))
        }
        RangeAnswer::Unsatisfiable => {
            edge.metrics.refusal("range_not_satisfiable");
            let mut response = refusal_response(&Refusal::new(
                416,
                "range_not_satisfiable",
                format!("the representation has {} bytes", rep.length),
            ));
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", rep.length)) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    let length = end.map_or(0, |end| end + 1 - start);
    builder = builder
        .status(status)
        .header(header::CONTENT_TYPE, rep.content_type)
        .header(header::CONTENT_LENGTH, length);
    let body = match end {
        Some(end) if *method != Method::HEAD => {
            stream(edge, source, start, end, rep.class, rep.status, started)
        }
        _ => {
            let elapsed = started.elapsed();
            edge.metrics
                .answered(rep.class, rep.status, elapsed, Some(elapsed));
            Body::empty()
        }
    };
    builder.body(body).unwrap_or_default()
}

fn sha256_etag(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(bytes)))
}

/// Every GET and HEAD that is not an API path.
pub async fn object(
    State(edge): State<Arc<Edge>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    if method != Method::GET && method != Method::HEAD {
        return refusal_response(&Refusal::new(
            405,
            "method_not_allowed",
            "only GET and HEAD are served",
        ));
    }
    let request = match paths::parse(uri.path()) {
        Ok(request) => request,
        Err(e) => {
            let (status, code) = match e {
                PathError::Bad(_) => (400, "bad_path"),
                PathError::NotServed(_) => (404, "not_found"),
            };
            return refusal_response(&edge.refuse(
                Refusal::new(status, code, e.to_string()),
                "",
                "",
            ));
        }
    };
    let header_token = bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let token = request.token.as_deref().or(header_token);
    let private = !edge.config.private.drop.is_empty();
    let visibility = if private { "private" } else { "public" };
    let immutable = Cow::Borrowed(if private {
        "private, max-age=31536000, immutable"
    } else {
        "public, max-age=31536000, immutable"
    });
    let index = match edge.index().await {
        Ok(index) => index,
        Err(refusal) => return refusal_response(&refusal),
    };
    let not_found = |edge: &Edge, what: &str| {
        refusal_response(&edge.refuse(
            Refusal::new(
                404,
                "not_found",
                format!("{what} is not in the signed metadata"),
            ),
            what,
            "",
        ))
    };
    match &request.object {
        Object::Metadata(name) => {
            let Some(bytes) = index.metadata.get(name).cloned() else {
                return not_found(&edge, &request.object.relative());
            };
            if let Err(refusal) = edge.admit_viewer(token, "", &request.object.relative()) {
                return refusal_response(&refusal);
            }
            let cache_control = if name == "timestamp.json" || name == "root.json" {
                Cow::Owned(format!(
                    "{visibility}, max-age={}",
                    edge.durations.timestamp_ttl.as_secs()
                ))
            } else {
                immutable
            };
            held(
                &edge,
                &method,
                &headers,
                bytes,
                cache_control,
                "metadata",
                started,
            )
        }
        Object::Torrent(name) => {
            let Some(wanted) = index.torrents.get(name) else {
                return not_found(&edge, &request.object.relative());
            };
            if let Err(refusal) = edge.admit_viewer(token, "", &request.object.relative()) {
                return refusal_response(&refusal);
            }
            match edge.torrent(name, wanted).await {
                Ok(bytes) => held(
                    &edge, &method, &headers, bytes, immutable, "torrent", started,
                ),
                Err(refusal) => refusal_response(&refusal),
            }
        }
        Object::Target(served) => {
            let Some(target) = index.by_served.get(served).cloned() else {
                return not_found(&edge, &request.object.relative());
            };
            if let Err(refusal) = edge.admit_viewer(token, &target.class, &target.name) {
                return refusal_response(&refusal);
            }
            match open(&edge, &target).await {
                Ok((source, status)) => {
                    let rep = Representation {
                        length: target.length,
                        etag: Cow::Borrowed(&target.etag),
                        cache_control: immutable,
                        content_type: content_type(&target.name),
                        class: &target.class,
                        status,
                    };
                    respond(&edge, &method, &headers, rep, source, started)
                }
                Err(refusal) => {
                    edge.metrics.refusal(refusal.code);
                    refusal_response(&refusal)
                }
            }
        }
    }
}

fn held(
    edge: &Arc<Edge>,
    method: &Method,
    headers: &HeaderMap,
    bytes: Bytes,
    cache_control: Cow<'static, str>,
    class: &str,
    started: Instant,
) -> Response {
    let rep = Representation {
        length: bytes.len() as u64,
        etag: Cow::Owned(sha256_etag(&bytes)),
        cache_control,
        content_type: if class == "torrent" {
            "application/x-bittorrent"
        } else {
            "application/json"
        },
        class,
        status: CacheStatus::Held,
    };
    respond(edge, method, headers, rep, Source::Memory(bytes), started)
}
