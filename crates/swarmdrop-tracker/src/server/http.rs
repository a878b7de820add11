//! The HTTP tracker: `/announce`, `/announce/<token>`, `/scrape`, `/scrape/<token>`,
//! `/metrics`. Every answer is HTTP 200 with a bencoded body, refusals included, as
//! BitTorrent clients expect (`failure reason`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::state::{AnnounceRequest, Tracker};
use crate::proto::http::{
    parse_announce, parse_scrape, write_announce, write_failure, write_scrape,
};

type Shared = State<Arc<Tracker>>;

fn bencoded(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn failure(reason: &str) -> Response {
    let mut out = Vec::new();
    write_failure(&mut out, reason);
    bencoded(out)
}

fn announce(
    tracker: &Tracker,
    client: SocketAddr,
    query: Option<String>,
    token: Option<&str>,
) -> Response {
    let started = Instant::now();
    let response = match parse_announce(query.unwrap_or_default().as_bytes()) {
        Err(e) => {
            let refusal = tracker.refuse("http", client, None, "malformed_request", e.0);
            failure(&refusal.message)
        }
        Ok(request) => {
            let peer = SocketAddr::new(client.ip(), request.port);
            let answer = tracker.announce(&AnnounceRequest {
                protocol: "http",
                peer,
                info_hash: request.info_hash,
                left: request.left,
                event: request.event,
                numwant: request.numwant,
                token,
            });
            match answer {
                Err(refusal) => failure(&refusal.message),
                Ok(answer) => {
                    let mut out = Vec::with_capacity(128 + answer.peers.len() * 18);
                    let config = &tracker.config;
                    match write_announce(
                        &mut out,
                        config.interval,
                        config.min_interval,
                        answer.stats.seeders,
                        answer.stats.leechers,
                        &answer.peers,
                        None,
                    ) {
                        Ok(()) => bencoded(out),
                        Err(e) => failure(&e.to_string()),
                    }
                }
            }
        }
    };
    tracker.metrics.http_latency.observe(started.elapsed());
    response
}

fn scrape(
    tracker: &Tracker,
    client: SocketAddr,
    query: Option<String>,
    token: Option<&str>,
) -> Response {
    let hashes = match parse_scrape(query.unwrap_or_default().as_bytes()) {
        Ok(hashes) => hashes,
        Err(e) => {
            return failure(
                &tracker
                    .refuse("http", client, None, "malformed_request", e.0)
                    .message,
            )
        }
    };
    match tracker.scrape("http", client, &hashes, token) {
        Err(refusal) => failure(&refusal.message),
        Ok(stats) => {
            let pairs: Vec<_> = hashes.into_iter().zip(stats).collect();
            let mut out = Vec::new();
            match write_scrape(&mut out, &pairs) {
                Ok(()) => bencoded(out),
                Err(e) => failure(&e.to_string()),
            }
        }
    }
}

/// The HTTP tracker's routes.
pub fn router(tracker: Arc<Tracker>) -> Router {
    Router::new()
        .route(
            "/announce",
            get(
                |State(t): Shared,
                 ConnectInfo(c): ConnectInfo<SocketAddr>,
                 RawQuery(q): RawQuery| async move { announce(&t, c, q, None) },
            ),
        )
        .route(
            "/announce/{token}",
            get(
                |State(t): Shared,
                 ConnectInfo(c): ConnectInfo<SocketAddr>,
                 Path(token): Path<String>,
                 RawQuery(q): RawQuery| async move { announce(&t, c, q, Some(&token)) },
            ),
        )
        .route(
            "/scrape",
            get(
                |State(t): Shared,
                 ConnectInfo(c): ConnectInfo<SocketAddr>,
                 RawQuery(q): RawQuery| async move { scrape(&t, c, q, None) },
            ),
        )
        .route(
            "/scrape/{token}",
            get(
                |State(t): Shared,
                 ConnectInfo(c): ConnectInfo<SocketAddr>,
                 Path(token): Path<String>,
                 RawQuery(q): RawQuery| async move { scrape(&t, c, q, Some(&token)) },
            ),
        )
        .route(
            "/metrics",
            get(|State(t): Shared| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    t.metrics.render(&t.gauges()),
                )
                    .into_response()
            }),
        )
        .with_state(tracker)
}
