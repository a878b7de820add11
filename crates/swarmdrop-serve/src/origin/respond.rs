//! Answering one request: path check, open, conditionals, range, streamed body.
//!
//! A file is opened once per request and its bytes are read from that handle in
//! 256 KiB chunks as the connection takes them (each read on the blocking pool), so
//! a large target never sits whole in memory, and a release that replaces
//! `timestamp.json` mid-response cannot mix two versions in one body.

use std::fs::{File, Metadata};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use swarmdrop_edge::proto::paths::PathError;
use swarmdrop_edge::proto::range::{self, RangeAnswer};
use swarmdrop_edge::source::read_at;

use super::paths::{map, Resource};
use super::Origin;

/// Bytes read per step.
const CHUNK: u64 = 256 * 1024;

fn refusal(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({ "error": code, "detail": detail });
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// Every request that is not `/metrics` or `/healthz`.
pub(crate) async fn object(State(origin): State<Arc<Origin>>, request: Request) -> Response {
    let response = answer(
        &origin,
        request.method(),
        request.uri().path(),
        request.headers(),
    )
    .await;
    origin.metrics.answered(response.status().as_u16());
    response
}

/// The `ETag` of a file without a content hash in its name: it changes whenever the
/// file is replaced (a new inode, as pack's rename gives) or rewritten.
fn metadata_etag(meta: &Metadata) -> String {
    use std::os::unix::fs::MetadataExt as _;
    format!(
        "\"{:x}-{:x}-{:x}.{:x}\"",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// True when an `If-None-Match` value lists `etag` (weak comparison, as RFC 9110
/// prescribes for it) or is `*`.
fn none_match(header: Option<&HeaderValue>, etag: &str) -> bool {
    header.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
    })
}

async fn answer(
    origin: &Arc<Origin>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only GET and HEAD are served",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let resource = match map(path) {
        Ok(resource) => resource,
        Err(e @ PathError::Bad(_)) => {
            return refusal(StatusCode::BAD_REQUEST, "bad_path", &e.to_string())
        }
        Err(e @ PathError::NotServed(_)) => {
            return refusal(StatusCode::NOT_FOUND, "not_found", &e.to_string())
        }
    };
    let opened = {
        let (origin, relative) = (origin.clone(), resource.relative.clone());
        tokio::task::spawn_blocking(move || origin.open(&relative))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    let (file, meta) = match opened {
        Ok(Some(opened)) => opened,
        Ok(None) => {
            return refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("{} is not in the published directory", resource.relative),
            )
        }
        // Out of descriptors, an unreadable file: ours to fix, not the client's.
        Err(e) => {
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "io_error",
                &format!("opening {}: {e}", resource.relative),
            )
        }
    };
    respond(origin, method, headers, &resource, file, &meta)
}

fn respond(
    origin: &Arc<Origin>,
    method: &Method,
    headers: &HeaderMap,
    resource: &Resource,
    file: File,
    meta: &Metadata,
) -> Response {
    let length = meta.len();
    let etag = resource
        .kind
        .name_etag(&resource.relative)
        .unwrap_or_else(|| metadata_etag(meta));
    let cache_control = resource.kind.cache_control(origin.mutable_max_age);
    let mut builder = Response::builder()
        .header(header::ETAG, etag.as_str())
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::ACCEPT_RANGES, "bytes");
    if none_match(headers.get(header::IF_NONE_MATCH), &etag) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    // If-Range with another validator (or a date, which we do not give out): the
    // representation may have changed, so send all of it.
    let range_header = match headers.get(header::IF_RANGE) {
        Some(v) if v.as_bytes() != etag.as_bytes() => None,
        _ => headers.get(header::RANGE).map(HeaderValue::as_bytes),
    };
    let (status, start, end) = match range::answer(range_header, length) {
        RangeAnswer::Full => (StatusCode::OK, 0, length),
        RangeAnswer::Partial { start, end } => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{length}"),
            );
            (StatusCode::PARTIAL_CONTENT, start, end + 1)
        }
        RangeAnswer::Unsatisfiable => {
            let mut response = refusal(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                &format!("{} has {length} bytes", resource.relative),
            );
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    builder = builder
        .status(status)
        .header(
            header::CONTENT_TYPE,
            swarmdrop_edge::serve::content_type(&resource.relative),
        )
        .header(header::CONTENT_LENGTH, end - start);
    let body = if *method == Method::HEAD || start == end {
        Body::empty()
    } else {
        Body::new(FileBody {
            file: Arc::new(file),
            at: start,
            end,
            reading: None,
            origin: origin.clone(),
        })
    };
    builder.body(body).unwrap_or_default()
}

/// One chunk being read on the blocking pool.
type Reading = Pin<Box<dyn std::future::Future<Output = std::io::Result<Bytes>> + Send>>;

/// `at..end` of a file, read a chunk at a time as the connection asks for it.
struct FileBody {
    file: Arc<File>,
    at: u64,
    end: u64,
    reading: Option<Reading>,
    origin: Arc<Origin>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            if let Some(reading) = self.reading.as_mut() {
                let read = match reading.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(read) => read,
                };
                self.reading = None;
                return Poll::Ready(Some(read.map(|chunk| {
                    let n = chunk.len() as u64;
                    self.at += n;
                    self.origin.metrics.served(n);
                    Frame::data(chunk)
                })));
            }
            if self.at >= self.end {
                return Poll::Ready(None);
            }
            let (file, at, len) = (self.file.clone(), self.at, (self.end - self.at).min(CHUNK));
            self.reading = Some(Box::pin(async move { read_at(&file, at, len).await }));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading.is_none() && self.at >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly() {
        let value = |text: &'static str| HeaderValue::from_static(text);
        assert!(none_match(Some(&value("\"a\"")), "\"a\""));
        assert!(none_match(Some(&value("W/\"a\"")), "\"a\""));
        assert!(none_match(Some(&value("\"b\", \"a\"")), "\"a\""));
        assert!(none_match(Some(&value("*")), "\"a\""));
        assert!(!none_match(Some(&value("\"b\"")), "\"a\""));
        assert!(!none_match(None, "\"a\""));
    }
}
