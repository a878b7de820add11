//! The origin: a published directory over HTTP/1.1, as the edges, BEP 19 webseed
//! clients and TUF clients fetch it. GET and HEAD, single ranges, ETags and
//! conditionals, `Cache-Control` by mutability, `/metrics`; nothing but the files pack
//! writes, and never a directory listing.

pub mod metrics;
pub mod paths;
mod respond;

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse as _;
use axum::routing::get;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::OriginSettings;
pub use metrics::Metrics;

/// Largest request head read; a bigger one gets 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A published directory that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct OriginError {
    /// The directory.
    pub path: String,
    /// What is wrong.
    pub detail: String,
}

/// The origin's state.
#[derive(Debug)]
pub struct Origin {
    /// The published root, resolved (symlinks followed once, here).
    root: PathBuf,
    mutable_max_age: u64,
    header_timeout: Duration,
    max_connections: usize,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}

impl Origin {
    /// An origin for the published directory `published`. It must look like one (pack
    /// writes `metadata/timestamp.json` last, so its presence means a whole release).
    pub fn new(published: &Path, settings: &OriginSettings) -> Result<Self, OriginError> {
        let error = |detail: String| OriginError {
            path: published.display().to_string(),
            detail,
        };
        let root = std::fs::canonicalize(published).map_err(|e| error(e.to_string()))?;
        if !root.is_dir() {
            return Err(error("not a directory".into()));
        }
        if !root.join("metadata").join("timestamp.json").is_file() {
            return Err(error(
                "not a published drop (no metadata/timestamp.json); run `swarmdrop pack --out` first"
                    .into(),
            ));
        }
        Ok(Self {
            root,
            mutable_max_age: settings.mutable_max_age,
            header_timeout: settings.header_timeout,
            max_connections: settings.max_connections.max(1),
            metrics: Metrics::default(),
        })
    }

    /// The published root being served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens `relative` (already checked by [`paths::map`]) if it is a regular file
    /// inside the root. A symlink the publisher placed is followed only while it stays
    /// inside the root. Blocking.
    fn open(&self, relative: &str) -> std::io::Result<Option<(File, Metadata)>> {
        let resolved = match std::fs::canonicalize(self.root.join(relative)) {
            Ok(resolved) => resolved,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        if !resolved.starts_with(&self.root) {
            return Ok(None);
        }
        let file = match File::open(&resolved) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        Ok(meta.is_file().then_some((file, meta)))
    }
}

/// The origin's routes: `/metrics`, `/healthz`, and every other path as a file.
pub fn router(origin: Arc<Origin>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(origin): axum::extract::State<Arc<Origin>>| async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        origin.metrics.render(),
                    )
                        .into_response()
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(respond::object)
        .with_state(origin)
}

/// Counts an open connection for as long as it lives.
struct Open(Arc<Origin>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `listener` until `shutdown` completes, then stops accepting and waits for
/// every connection to finish the request it is on (idle keep-alive connections close
/// at once). The caller bounds that wait.
pub async fn serve(
    origin: Arc<Origin>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let app = router(origin.clone());
    let graceful = GracefulShutdown::new();
    // At the cap, stop accepting until a connection ends: each holds buffers and
    // possibly a file.
    let slots = Arc::new(Semaphore::new(origin.max_connections));
    tokio::pin!(shutdown);
    loop {
        if slots.available_permits() == 0 {
            origin
                .metrics
                .connection_waits
                .fetch_add(1, Ordering::Relaxed);
        }
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(origin.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        origin.metrics.connections.fetch_add(1, Ordering::Relaxed);
        let open = Open(origin.clone());
        tokio::spawn(async move {
            let (_slot, _open) = (slot, open);
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
