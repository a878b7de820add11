//! The accept loop: hyper's HTTP/1.1 connection builder, so each connection has a
//! deadline for its request head and a bounded header buffer (axum::serve sets neither).

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::admin::router;
use crate::state::Edge;

/// Largest request head read; a bigger one gets 431.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Serves `listener` until it fails.
pub async fn serve(edge: Arc<Edge>, listener: TcpListener) -> std::io::Result<()> {
    let app = router(edge.clone());
    let header_timeout = edge.durations.header_timeout;
    let slots = Arc::new(tokio::sync::Semaphore::new(
        edge.config.limits.max_connections.max(1),
    ));
    loop {
        // At the cap, stop accepting until a connection ends: every open connection
        // holds buffers and possibly a file.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Starts an edge: loads kept metadata (or fetches it), then serves.
pub async fn run(edge: Arc<Edge>, listener: TcpListener) -> std::io::Result<()> {
    if edge.load_kept().await.is_err() {
        if let Err(refusal) = edge.refresh().await {
            eprintln!(
                "warning: no verified metadata yet ({}); requests will retry the origin",
                refusal.detail
            );
        }
    }
    serve(edge, listener).await
}
