//! The edge identity gateway: admits viewers (Sign-In with Ethereum, or proof-of-work
//! when the drop allows anonymous viewers) and services (edges, seeders), and issues
//! short-lived PASETO tokens that edges and the tracker verify offline.
//!
//! Decisions live in `swarmdrop-identity`; this crate is the HTTP shell: axum routes,
//! the state store ([`store::IdentityStore`]: in memory, or `swarmdrop-state`'s SQLite
//! file under `swarmdrop serve`), `/metrics`.
#![warn(missing_docs)]

pub mod config;
mod handlers;
pub mod metrics;
mod state;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use config::GatewayConfig;
pub use state::{Gateway, GatewayError, Refusal};

/// Largest request body accepted (a SIWE message is at most 8 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Text a hosting process adds to the gateway's `/metrics` ([`Gateway::with_metrics_hook`]).
pub type MetricsHook = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/auth/nonce", get(handlers::nonce))
        .route("/auth/siwe", post(handlers::siwe))
        .route("/auth/challenge", get(handlers::challenge))
        .route("/auth/anonymous", post(handlers::anonymous))
        .route("/auth/service", post(handlers::service))
        .route("/auth/refresh", post(handlers::refresh))
        .route("/auth/keys", get(handlers::keys))
        .route("/auth/revocations", get(handlers::revocations))
        .route("/admin/revoke", post(handlers::revoke))
        .route("/metrics", get(handlers::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(gateway)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(gateway, Router::new(), listener, shutdown).await
}

/// Serves the gateway's routes and a hosting process's `extra` ones on one listener
/// until `shutdown` completes. `extra` keeps its own state and body limit (the
/// gateway's 16 KiB applies to its own routes only), and must not repeat a gateway
/// path; its handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_with(
    gateway: Arc<Gateway>,
    extra: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(gateway)
            .merge(extra)
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
