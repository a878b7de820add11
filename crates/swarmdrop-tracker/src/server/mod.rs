//! The tokio servers around the protocol core.

pub mod config;
pub mod http;
pub mod metrics;
pub mod revocations;
pub mod state;
pub mod udp;
#[cfg(target_os = "linux")]
mod udp_batch;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::TrackerConfig;
pub use state::{Tracker, TrackerError, TrackerEvent};

/// Bound listeners, ready to serve.
pub struct Listeners {
    /// The HTTP listener, if enabled.
    pub http: Option<tokio::net::TcpListener>,
    /// The UDP socket, if enabled.
    pub udp: Option<std::net::UdpSocket>,
}

/// Binds the configured listeners.
pub async fn bind(config: &TrackerConfig) -> std::io::Result<Listeners> {
    let http = if config.http.is_empty() {
        None
    } else {
        Some(tokio::net::TcpListener::bind(&config.http).await?)
    };
    let udp = if config.udp.is_empty() {
        None
    } else {
        Some(std::net::UdpSocket::bind(&config.udp)?)
    };
    Ok(Listeners { http, udp })
}

/// Builds the tracker (with its webhook sink) and serves both listeners until one fails.
pub async fn run(config: TrackerConfig, listeners: Listeners) -> Result<(), TrackerError> {
    run_until(config, listeners, std::future::pending()).await
}

/// As [`run`], until `shutdown` completes too: then HTTP stops accepting and finishes
/// the requests in flight. UDP answers one datagram at a time, so it has nothing in
/// flight; its blocking thread is left to end with the process.
pub async fn run_until(
    config: TrackerConfig,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), TrackerError> {
    let (sender, receiver) = if config.webhook.url.is_empty() {
        (None, None)
    } else {
        let (tx, rx) = tokio::sync::mpsc::channel(config.webhook.queue.max(1));
        (Some(tx), Some(rx))
    };
    let tracker = Arc::new(Tracker::new(config, sender)?);
    if let Some(rx) = receiver {
        tokio::spawn(webhook::run(tracker.clone(), rx));
    }
    if !tracker.config.private.drop.is_empty() && !tracker.config.private.revocations_url.is_empty()
    {
        let url = swarmdrop_httpc::HttpUrl::parse(&tracker.config.private.revocations_url)
            .map_err(|e| TrackerError(format!("private.revocations_url: {e}")))?;
        let every = Duration::from_secs(tracker.config.private.revocations_every.max(1));
        tokio::spawn(revocations::run(tracker.clone(), url, every));
    }
    let expiry = tracker.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            expiry.expire();
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    let udp_only = listeners.http.is_none() && listeners.udp.is_some();
    if let Some(listener) = listeners.http {
        let app = http::router(tracker.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
    } else if udp_only {
        tasks.spawn(async move {
            shutdown.await;
            Ok(())
        });
    }
    if let Some(socket) = listeners.udp {
        let udp_tracker = tracker.clone();
        #[cfg(target_os = "linux")]
        tasks.spawn_blocking(move || udp_batch::serve_batched(&udp_tracker, &socket));
        #[cfg(not(target_os = "linux"))]
        tasks.spawn_blocking(move || udp::serve_blocking(&udp_tracker, &socket));
    }
    match tasks.join_next().await {
        Some(Ok(Err(e))) => Err(TrackerError(format!("listener failed: {e}"))),
        Some(Err(e)) => Err(TrackerError(format!("listener task failed: {e}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
