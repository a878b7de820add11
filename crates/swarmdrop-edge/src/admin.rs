//! The control plane's API: pre-warm, purge, status; plus /metrics and /healthz.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::fill::finished;
use crate::index::Target;
use crate::serve::object;
use crate::state::{bearer, Edge, Refusal};

/// Most objects pre-warmed at once.
const PREWARM_PARALLEL: usize = 4;

/// The edge's routes.
pub fn router(edge: Arc<Edge>) -> Router {
    Router::new()
        .route("/admin/prewarm", post(prewarm))
        .route("/admin/purge", post(purge))
        .route("/admin/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(object)
        .with_state(edge)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Selection {
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    all: bool,
}

fn admin(edge: &Edge, headers: &HeaderMap) -> Result<String, Refusal> {
    edge.admit_admin(bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ))
}

fn selection(body: &Bytes) -> Result<Selection, Refusal> {
    if body.is_empty() {
        return Ok(Selection::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Refusal::new(400, "malformed_request", format!("request body: {e}")))
}

async fn selected(edge: &Arc<Edge>, selection: &Selection) -> Result<Vec<Arc<Target>>, Refusal> {
    let index = edge.index().await?;
    if selection.targets.is_empty() {
        return Ok(index.targets_of(&selection.classes));
    }
    selection
        .targets
        .iter()
        .map(|name| {
            index.by_name.get(name).cloned().ok_or_else(|| {
                Refusal::new(
                    404,
                    "not_found",
                    format!("target {name:?} is not in the signed metadata"),
                )
            })
        })
        .collect()
}

async fn warm(edge: Arc<Edge>, target: Arc<Target>) -> Result<u64, Refusal> {
    if edge.tiers.memory.contains_key(&target.sha256)
        || edge.tiers.disk.contains_key(&target.sha256)
    {
        return Ok(0);
    }
    let (fill, _) = edge.fill(&target)?;
    finished(&fill).await.map(|()| target.length)
}

async fn prewarm(
    State(edge): State<Arc<Edge>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let who = admin(&edge, &headers)?;
    let selection = selection(&body)?;
    let targets = selected(&edge, &selection).await?;
    let (mut filled, mut bytes, mut failed) = (0u64, 0u64, Vec::new());
    for batch in targets.chunks(PREWARM_PARALLEL) {
        let mut tasks = tokio::task::JoinSet::new();
        for target in batch {
            let (edge, target) = (edge.clone(), target.clone());
            tasks.spawn(async move { (target.name.clone(), warm(edge, target).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(n))) => {
                    filled += 1;
                    bytes += n;
                }
                Ok((name, Err(refusal))) => failed.push(
                    json!({ "target": name, "error": refusal.code, "detail": refusal.detail }),
                ),
                Err(e) => failed
                    .push(json!({ "target": "", "error": "internal", "detail": e.to_string() })),
            }
        }
    }
    edge.emit(
        "prewarm",
        "",
        &selection.classes.join(","),
        format!(
            "{filled} targets ({bytes} bytes from the origin) for {who}; {} failed",
            failed.len()
        ),
    );
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((
        status,
        Json(json!({ "filled": filled, "bytes": bytes, "failed": failed })),
    )
        .into_response())
}

async fn purge(
    State(edge): State<Arc<Edge>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let who = admin(&edge, &headers)?;
    let selection = selection(&body)?;
    if !selection.all && selection.classes.is_empty() && selection.targets.is_empty() {
        return Err(Refusal::new(
            400,
            "malformed_request",
            "say what to purge: {\"targets\": [..]}, {\"classes\": [..]} or {\"all\": true}",
        ));
    }
    let purged = if selection.all {
        let before = edge.tiers.memory.entry_count() + edge.tiers.disk.entry_count();
        edge.tiers.purge_all();
        edge.lock_torrents().clear();
        before
    } else {
        let targets = selected(&edge, &selection).await?;
        targets
            .iter()
            .filter(|t| edge.tiers.purge(&t.sha256))
            .count() as u64
    };
    edge.emit(
        "purge",
        "",
        &selection.classes.join(","),
        format!("{purged} entries for {who}"),
    );
    Ok(Json(json!({ "purged": purged })).into_response())
}

async fn status(State(edge): State<Arc<Edge>>, headers: HeaderMap) -> Result<Response, Refusal> {
    admin(&edge, &headers)?;
    let g = edge.gauges();
    let index = edge.current_index();
    Ok(Json(json!({
        "origin": edge.origin.to_string(),
        "memory": { "bytes": g.memory_bytes, "entries": g.memory_entries, "capacity": edge.config.memory_bytes },
        "disk": { "bytes": g.disk_bytes, "entries": g.disk_entries, "capacity": edge.config.disk_bytes },
        "fills_running": g.fills,
        "metadata": index.as_ref().map(|i| json!({
            "root": i.versions[0], "timestamp": i.versions[1], "snapshot": i.versions[2], "targets": i.versions[3],
            "target_count": i.by_name.len(),
        })),
        "private": !edge.config.private.drop.is_empty(),
    }))
    .into_response())
}

async fn metrics(State(edge): State<Arc<Edge>>) -> Response {
    let text = edge.metrics.render(&edge.gauges());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
