//! Clients' quality-of-experience reports: `POST /qoe` and `GET /qoe/summary`, served
//! on the gateway's listener.
//!
//! Why here and not in `swarmdrop-gateway`: the reports are stored in the state file
//! (`swarmdrop-state`, which depends on the gateway crate, not the other way round), and
//! they are serve's business — a standalone `swarmdrop gateway` has no state file and no
//! drop to report on. Why on the gateway's listener: that is the one address a client
//! already talks to (`get --gateway URL` reports to `URL/qoe`), and the gateway is what
//! checks its token ([`Gateway::authenticate`]: rate limit, risk, token offline; anonymous
//! tokens are fine). The gateway serves these routes beside its own
//! (`swarmdrop_gateway::serve_with`) and appends [`metrics::QoeMetrics`] to its
//! `/metrics`.
//!
//! Reports are parsed strictly (`swarmdrop_manifest::qoe`: size cap, unknown fields
//! refused, bounded counts and names, every refusal naming its field as a 400), stored
//! with the token's subject and tier, counted, and summarised from the newest stored
//! rows only.

pub mod metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use swarmdrop_gateway::{Gateway, Refusal};
use swarmdrop_manifest::qoe::{percentile, PathBytes, QoeReport, MAX_REPORT_BYTES};
use swarmdrop_manifest::UtcTime;
use swarmdrop_state::qoe::{NewQoe, QoeRetention, RecentQoe};
use swarmdrop_state::StateFile;

use crate::config::QoeSettings;
use metrics::QoeMetrics;

/// What the QoE routes share.
pub struct QoeService {
    gateway: Arc<Gateway>,
    state: Arc<StateFile>,
    metrics: Arc<QoeMetrics>,
    settings: QoeSettings,
}

impl QoeService {
    /// The service over the gateway that checks tokens and the state file that keeps
    /// reports; `metrics` is the one the gateway's `/metrics` hook renders.
    pub fn new(
        gateway: Arc<Gateway>,
        state: Arc<StateFile>,
        metrics: Arc<QoeMetrics>,
        settings: QoeSettings,
    ) -> Self {
        Self {
            gateway,
            state,
            metrics,
            settings,
        }
    }
}

/// The routes, for `swarmdrop_gateway::serve_with`.
pub fn router(service: Arc<QoeService>) -> Router {
    Router::new()
        .route("/qoe", post(report))
        .route("/qoe/summary", get(summary))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
        .with_state(service)
}

fn now() -> UtcTime {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UtcTime::saturating_from_unix(i64::try_from(seconds).unwrap_or(i64::MAX))
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
}

/// `POST /qoe`: a checked report, stored and counted. 202 with its id.
async fn report(
    State(qoe): State<Arc<QoeService>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Refusal> {
    let claims = qoe
        .gateway
        .authenticate("qoe", addr.ip(), &headers, qoe.settings.require_token)
        .await
        .inspect_err(|r| qoe.metrics.refused(r.code))?;
    let report = QoeReport::parse(&bytes).map_err(|e| {
        qoe.metrics.refused("malformed_report");
        Refusal::new(StatusCode::BAD_REQUEST, "malformed_report", e.0)
    })?;
    let received = now();
    let new = NewQoe {
        subject: claims.as_ref().map(|c| c.sub.clone()).unwrap_or_default(),
        tier: claims
            .as_ref()
            .map(|c| c.tier.as_str().to_owned())
            .unwrap_or_default(),
        received,
        expires: received.plus_seconds(qoe.settings.max_age),
        report,
    };
    let keep = QoeRetention {
        max_reports: qoe.settings.max_reports,
        max_asset_rows: qoe.settings.max_asset_rows,
    };
    let id = qoe.state.record_qoe(new.clone(), keep).await.map_err(|e| {
        qoe.metrics.refused("store_unavailable");
        unavailable(e)
    })?;
    qoe.metrics.observe(&new.report);
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

/// One class in the summary.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClassSummary {
    /// Reports that had assets of this class (among the rows read).
    pub reports: usize,
    /// Assets of this class (among the rows read).
    pub assets: usize,
    /// Share of those within their budget.
    pub within_budget: f64,
    /// Median arrival after the asset was needed.
    pub p50_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
}

/// `GET /qoe/summary`'s answer.
#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Reports stored.
    pub reports: u64,
    /// Asset rows the figures below come from (the newest, at most `summary_rows`).
    pub rows: usize,
    /// Bytes by path kind over the newest `summary_rows` reports.
    pub bytes_by_path: PathBytes,
    /// By class.
    pub classes: BTreeMap<String, ClassSummary>,
}

/// The summary of `recent` (rows newest first).
pub fn summarise(recent: &RecentQoe) -> Summary {
    let mut by_class: BTreeMap<&str, (Vec<u64>, usize, Vec<i64>)> = BTreeMap::new();
    for a in &recent.assets {
        let entry = by_class.entry(a.class.as_str()).or_default();
        entry.0.push(a.arrival_ms);
        entry.1 += usize::from(a.within_budget);
        entry.2.push(a.report);
    }
    let classes = by_class
        .into_iter()
        .map(|(class, (mut arrivals, within, mut reports))| {
            arrivals.sort_unstable();
            reports.sort_unstable();
            reports.dedup();
            let summary = ClassSummary {
                reports: reports.len(),
                assets: arrivals.len(),
                within_budget: within as f64 / arrivals.len().max(1) as f64,
                p50_ms: percentile(&arrivals, 0.5),
                p99_ms: percentile(&arrivals, 0.99),
            };
            (class.to_owned(), summary)
        })
        .collect();
    Summary {
        reports: recent.reports,
        rows: recent.assets.len(),
        bytes_by_path: recent.bytes_by_path,
        classes,
    }
}

/// `GET /qoe/summary`: per class, from the newest stored rows.
async fn summary(
    State(qoe): State<Arc<QoeService>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
) -> Result<Json<Summary>, Refusal> {
    qoe.gateway
        .authenticate("qoe_summary", addr.ip(), &HeaderMap::new(), false)
        .await?;
    let rows = qoe.settings.summary_rows;
    let recent = qoe
        .state
        .recent_qoe(rows, rows)
        .await
        .map_err(unavailable)?;
    Ok(Json(summarise(&recent)))
}

#[cfg(test)]
mod tests {
    use swarmdrop_state::qoe::StoredAsset;

    use super::*;

    #[test]
    fn the_summary_is_per_class_from_the_rows() {
        let row = |report, class: &str, arrival_ms, within_budget| StoredAsset {
            report,
            class: class.into(),
            arrival_ms,
            within_budget,
        };
        let recent = RecentQoe {
            reports: 7,
            bytes_by_path: PathBytes {
                p2p: 1,
                edge: 2,
                origin: 3,
            },
            assets: vec![
                row(2, "keyframe", 300, true),
                row(2, "keyframe", 900, false),
                row(1, "keyframe", 100, true),
                row(1, "bulk", 5000, true),
            ],
        };
        let s = summarise(&recent);
        assert_eq!((s.reports, s.rows), (7, 4));
        let k = &s.classes["keyframe"];
        assert_eq!((k.reports, k.assets, k.p50_ms, k.p99_ms), (2, 3, 300, 900));
        assert!((k.within_budget - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.classes["bulk"].reports, 1);
        assert_eq!(summarise(&RecentQoe::default()).classes.len(), 0);
    }
}
