//! Response bodies: memory bytes, a disk-tier file, or a fill still running, streamed
//! chunk by chunk from a range's start to its end. Nothing reads a whole file.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::fill::{Fill, Progress};
use crate::metrics::CacheStatus;
use crate::state::Edge;

/// Bytes read per step: large enough for throughput, small enough that a client that
/// stops reading pins little (the channel holds one chunk).
const CHUNK: u64 = 256 * 1024;
/// What a paced response sends per grant: a more urgent response waits for at most the
/// slice being sent, not for the rest of a long body.
const PACED_SLICE: usize = 32 * 1024;

/// Where a response's bytes come from.
#[derive(Clone)]
pub enum Source {
    /// The memory tier (or verified metadata).
    Memory(Bytes),
    /// A verified disk-tier file, opened for this response alone (reads seek it).
    File(Arc<std::fs::File>),
    /// A fill still running; large objects only (small ones are verified first).
    Filling(Arc<Fill>),
}

/// A body fed by a pump task, of exactly `remaining` bytes.
pub struct ChannelBody {
    chunks: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    remaining: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.chunks.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads `len` bytes at `offset` of a handle this response owns: seek and read into
/// uninitialised capacity (no zeroing of a buffer about to be overwritten).
async fn read_owned(file: &Arc<std::fs::File>, offset: u64, len: u64) -> std::io::Result<Bytes> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut handle: &std::fs::File = &file;
        handle.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        handle.take(len).read_to_end(&mut buf)?;
        if (buf.len() as u64) < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "cached file is shorter than its entry",
            ));
        }
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Reads `len` bytes at `offset` of a handle others share (no seeking), on the
/// blocking pool. (`swarmdrop serve`'s origin streams its files with it too.)
pub async fn read_at(file: &Arc<std::fs::File>, offset: u64, len: u64) -> std::io::Result<Bytes> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt as _;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file is shorter than expected",
                ));
            }
            filled += n;
        }
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// How far a response of `start..=end` may read a fill now, at least past `at`: every
/// byte written, except the response's own last byte, which waits until the whole
/// object's digest has checked. So no response, whole or ranged, completes with bytes the
/// signed metadata has not vouched for; on a mismatch it is cut short instead.
async fn readable(
    watch: &mut tokio::sync::watch::Receiver<Progress>,
    at: u64,
    end: u64,
) -> std::io::Result<u64> {
    loop {
        let limit = match &*watch.borrow_and_update() {
            Progress::Verified => end + 1,
            Progress::Running(written) => (*written).min(end),
            Progress::Failed(refusal) => {
                return Err(std::io::Error::other(format!(
                    "{}: {}",
                    refusal.code, refusal.detail
                )))
            }
        };
        if limit > at {
            return Ok(limit);
        }
        if watch.changed().await.is_err() {
            let last = watch.borrow().clone();
            if last != Progress::Verified {
                return Err(std::io::Error::other("the fill stopped"));
            }
        }
    }
}

/// Streams `start..=end` of `source` as a response body; counts bytes and the total
/// time under `class` when the last byte is handed over.
pub fn stream(
    edge: &Arc<Edge>,
    source: Source,
    (start, end): (u64, u64),
    urgency: u8,
    class: &str,
    status: CacheStatus,
    started: Instant,
) -> axum::body::Body {
    let length = end + 1 - start;
    let first_byte = started.elapsed();
    let pacer = edge.pacer().cloned();
    if let (Source::Memory(bytes), None) = (&source, &pacer) {
        let slice =
            bytes.slice(usize::try_from(start).unwrap_or(0)..usize::try_from(end + 1).unwrap_or(0));
        edge.metrics
            .bytes_served
            .fetch_add(length, Ordering::Relaxed);
        edge.metrics
            .answered(class, status, first_byte, Some(first_byte));
        return axum::body::Body::from(slice);
    }
    edge.metrics.answered(class, status, first_byte, None);
    let class = class.to_owned();
    let (tx, rx) = mpsc::channel(1);
    let edge = edge.clone();
    tokio::spawn(async move {
        let mut at = start;
        let mut watch = match &source {
            Source::Filling(fill) => Some(fill.watch()),
            _ => None,
        };
        while at <= end {
            let want = (end + 1 - at).min(CHUNK);
            let chunk = match &source {
                Source::Memory(bytes) => Ok(bytes.slice(
                    usize::try_from(at).unwrap_or(usize::MAX).min(bytes.len())
                        ..usize::try_from(at + want)
                            .unwrap_or(usize::MAX)
                            .min(bytes.len()),
                )),
                Source::File(file) => read_owned(file, at, want).await,
                Source::Filling(fill) => match watch.as_mut() {
                    Some(watch) => match readable(watch, at, end).await {
                        Ok(limit) => read_at(&fill.file, at, want.min(limit - at)).await,
                        Err(e) => Err(e),
                    },
                    None => break,
                },
            };
            match chunk {
                Ok(chunk) if chunk.is_empty() => {
                    let _ = tx
                        .send(Err(std::io::Error::other(
                            "the object is shorter than its entry",
                        )))
                        .await;
                    return;
                }
                Ok(mut chunk) => {
                    let n = chunk.len() as u64;
                    // Paced: a slice at a time, so a more urgent response can go between.
                    while !chunk.is_empty() {
                        let part = chunk.split_to(chunk.len().min(PACED_SLICE));
                        if let Some(pacer) = &pacer {
                            pacer.acquire(urgency, part.len() as u64).await;
                        }
                        if tx.send(Ok(part)).await.is_err() {
                            return;
                        }
                    }
                    edge.metrics.bytes_served.fetch_add(n, Ordering::Relaxed);
                    at += n;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        edge.metrics.total(&class, started.elapsed());
    });
    axum::body::Body::new(
        ChannelBody {
            chunks: rx,
            remaining: length,
        }
        .map_err(axum::Error::new),
    )
}
