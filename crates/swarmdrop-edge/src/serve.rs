//! Serving objects: path check, token gate, index lookup, tier or fill, then the
//! response with ranges, ETags and cache headers.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

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

/// The `Content-Type` for a file name (by extension; `application/octet-stream` when
/// unknown). `swarmdrop serve`'s origin answers with the same types.
pub fn content_type(path: &str) -> &'static str {
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
    let digest = &target.sha256;
    let mut stale = None;
    if let Some(entry) = edge.tiers.memory.get(digest) {
        // The signed length must match too: one digest, one length.
        if entry.bytes.len() as u64 == target.length {
            let fresh_entry = fresh(edge, entry.filled);
            let source = Source::Memory(entry.bytes);
            if fresh_entry {
                return Ok((source, CacheStatus::HitMemory));
            }
            stale = Some(source);
        } else {
            edge.tiers.memory.invalidate(digest);
        }
    }
    if stale.is_none() {
        if let Some(entry) = edge.tiers.disk.get(digest) {
            if entry.length != target.length {
                edge.tiers.disk.invalidate(digest);
            } else {
                match std::fs::File::open(edge.tiers.object_path(digest)) {
                    Ok(file) => {
                        let source = Source::File(Arc::new(file));
                        if fresh(edge, entry.filled) {
                            return Ok((source, CacheStatus::HitDisk));
                        }
                        stale = Some(source);
                    }
                    // Gone (purged, or removed by hand): refill.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        edge.tiers.disk.invalidate(digest);
                    }
                    // Out of descriptors and the like: the file is fine, we are not.
                    Err(e) => {
                        return Err(Refusal::new(
                            503,
                            "cache_unavailable",
                            format!("opening a cached object: {e}"),
                        ))
                    }
                }
            }
        }
    }
    if let Some(source) = stale {
        // Content-addressed: the stale copy is byte for byte what a refill would bring.
        // Serve it now and refresh it behind the request; if the origin fails, the copy
        // lives on until ttl + stale_if_error (stale-while-revalidate, stale-if-error).
        if let Ok((fill, _)) = edge.fill(target) {
            let (edge, target) = (edge.clone(), target.clone());
            tokio::spawn(async move {
                if let Err(refusal) = finished(&fill).await {
                    edge.emit("stale_served", &target.name, &target.class, refusal.code);
                }
            });
        }
        return Ok((source, CacheStatus::Stale));
    }
    let (fill, coalesced) = edge.fill(target)?;
    let status = if coalesced {
        CacheStatus::Coalesced
    } else {
        CacheStatus::Miss
    };
    if target.length > edge.config.verify_before_send {
        return Ok((Source::Filling(fill), status));
    }
    finished(&fill).await?;
    let source = match verified_bytes(edge, target) {
        Some(bytes) => Source::Memory(bytes),
        // A handle of our own: the fill's is shared, and reads here seek.
        None => match std::fs::File::open(edge.tiers.object_path(digest)) {
            Ok(file) => Source::File(Arc::new(file)),
            Err(_) => Source::Filling(fill),
        },
    };
    Ok((source, status))
}

struct Representation<'a> {
    length: u64,
    etag: Cow<'a, str>,
    etag_value: Option<HeaderValue>,
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
    // Static and precomputed header values: no parsing or copying per request.
    let etag = rep
        .etag_value
        .clone()
        .or_else(|| HeaderValue::from_str(&rep.etag).ok())
        .unwrap_or_else(|| HeaderValue::from_static("\"\""));
    let cache_control = match &rep.cache_control {
        Cow::Borrowed(text) => HeaderValue::from_static(text),
        Cow::Owned(text) => {
            HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("no-store"))
        }
    };
    let mut builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"))
        .header(
            "x-swarmdrop-cache",
            HeaderValue::from_static(rep.status.as_str()),
        );
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
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rep.content_type),
        )
        .header(header::CONTENT_LENGTH, length);
    let body = match end {
        Some(end) if *method != Method::HEAD => {
            let urgency =
                crate::pacing::urgency(headers.get("priority").map(HeaderValue::as_bytes));
            stream(
                edge,
                source,
                (start, end),
                urgency,
                rep.class,
                rep.status,
                started,
            )
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

/// Every GET and HEAD that is not an API path.
pub async fn object(State(edge): State<Arc<Edge>>, request: Request) -> Response {
    let started = Instant::now();
    // The request by reference: extracting the header map or URI by value would clone it.
    let (method, uri, headers) = (request.method(), request.uri(), request.headers());
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
    let relative = request.object.relative();
    let granted = match edge.admit_viewer(token, &relative) {
        Ok(granted) => granted,
        Err(refusal) => return refusal_response(&refusal),
    };
    let granted = granted.as_deref();
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
            let (Some(bytes), Some(etag)) =
                (index.metadata.get(name).cloned(), index.etags.get(name))
            else {
                return not_found(&edge, &relative);
            };
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
                method,
                headers,
                (bytes, etag.clone()),
                cache_control,
                "metadata",
                started,
            )
        }
        Object::Torrent(name) => {
            let Some(wanted) = index.torrents.get(name) else {
                return not_found(&edge, &relative);
            };
            if let Err(refusal) = edge.admit_class(granted, &wanted.class, &relative) {
                return refusal_response(&refusal);
            }
            match edge.torrent(name, wanted).await {
                Ok(held_torrent) => held(
                    &edge,
                    method,
                    headers,
                    held_torrent,
                    immutable,
                    "torrent",
                    started,
                ),
                Err(refusal) => refusal_response(&refusal),
            }
        }
        Object::Target(served) => {
            let Some(target) = index.by_served.get(served).cloned() else {
                return not_found(&edge, &relative);
            };
            if let Err(refusal) = edge.admit_class(granted, &target.class, &target.name) {
                return refusal_response(&refusal);
            }
            // A revalidation needs no bytes: answer it from the signed digest alone.
            if etag_matches(headers.get(header::IF_NONE_MATCH), &target.etag) {
                let elapsed = started.elapsed();
                edge.metrics
                    .answered(&target.class, CacheStatus::Held, elapsed, Some(elapsed));
                return Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .header(header::ETAG, target.etag.as_str())
                    .header(header::CACHE_CONTROL, immutable.as_ref())
                    .body(Body::empty())
                    .unwrap_or_default();
            }
            match open(&edge, &target).await {
                Ok((source, status)) => {
                    let rep = Representation {
                        length: target.length,
                        etag: Cow::Borrowed(&target.etag),
                        etag_value: target.etag_value.clone(),
                        cache_control: immutable,
                        content_type: content_type(&target.name),
                        class: &target.class,
                        status,
                    };
                    respond(&edge, method, headers, rep, source, started)
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
    (bytes, etag): (Bytes, String),
    cache_control: Cow<'static, str>,
    class: &str,
    started: Instant,
) -> Response {
    let rep = Representation {
        length: bytes.len() as u64,
        etag: Cow::Owned(etag),
        etag_value: None,
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
