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
    // One pool of slots for every serving thread.
    let slots = edge.connection_slots.clone();
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

/// A listener on `addr` that other listeners may share (`SO_REUSEPORT`): the kernel
/// spreads connections across them.
pub fn shared_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Serves on `threads` threads, each a single-threaded runtime accepting from the same
/// listening socket (like nginx's workers): a connection lives on one thread from accept
/// to close, with no cross-thread wake-ups on the hot path. Returns when a thread's
/// listener fails.
pub fn serve_per_core(
    edge: Arc<Edge>,
    first: std::net::TcpListener,
    threads: usize,
) -> std::io::Result<()> {
    // Every thread accepts from the same socket (duplicated descriptors), as nginx's
    // workers do: an idle thread takes the next connection, so load balances itself.
    // Separate SO_REUSEPORT sockets hash connections to threads instead, and a busy
    // thread then keeps its share: measured here, that tripled the p99 latency.
    let mut listeners = Vec::with_capacity(threads.max(1));
    for _ in 1..threads.max(1) {
        listeners.push(first.try_clone()?);
    }
    listeners.push(first);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for (n, listener) in listeners.into_iter().enumerate() {
        let (edge, done) = (edge.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("edge-{n}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            serve(edge, TcpListener::from_std(listener)?).await
                        })
                    });
                let _ = done.send(result);
            })?;
    }
    done_rx
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("every edge thread stopped")))
}

/// Loads kept metadata, or fetches it, before serving.
pub async fn prepare(edge: &Arc<Edge>) {
    if edge.load_kept().await.is_err() {
        if let Err(refusal) = edge.refresh().await {
            eprintln!(
                "warning: no verified metadata yet ({}); requests will retry the origin",
                refusal.detail
            );
        }
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
