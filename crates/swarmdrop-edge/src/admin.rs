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

/// The targets a selection names, and the names the signed metadata does not list.
async fn selected(
    edge: &Arc<Edge>,
    selection: &Selection,
) -> Result<(Vec<Arc<Target>>, Vec<String>), Refusal> {
    let index = edge.index().await?;
    if selection.targets.is_empty() {
        return Ok((index.targets_of(&selection.classes), Vec::new()));
    }
    let (mut found, mut unknown) = (Vec::new(), Vec::new());
    for name in &selection.targets {
        match index.by_name.get(name) {
            Some(target) => found.push(target.clone()),
            None => unknown.push(name.clone()),
        }
    }
    Ok((found, unknown))
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
    let (targets, unknown) = selected(&edge, &selection).await?;
    let (mut filled, mut bytes) = (0u64, 0u64);
    let mut failed: Vec<serde_json::Value> = unknown
        .iter()
        .map(|name| json!({ "target": name, "error": "not_found", "detail": "not in the signed targets metadata" }))
        .collect();
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
    // 200 when all is warm; 404 when the only trouble is names the metadata does not
    // list; 502 when a fill failed. The body says which, target by target.
    let status = if failed.is_empty() {
        StatusCode::OK
    } else if failed.iter().all(|f| f["error"] == "not_found") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_GATEWAY
    };
    let mut answer = json!({ "filled": filled, "bytes": bytes, "failed": failed });
    if status != StatusCode::OK {
        // The usual error shape too, so a client that checks only that understands.
        answer["error"] = json!(if status == StatusCode::NOT_FOUND {
            "not_found"
        } else {
            "prewarm_incomplete"
        });
        answer["detail"] = json!(format!(
            "{} of the selected targets were not pre-warmed",
            failed.len()
        ));
    }
    Ok((status, Json(answer)).into_response())
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
        // moka counts lazily: settle pending work so the count is the real one.
        edge.tiers.memory.run_pending_tasks();
        edge.tiers.disk.run_pending_tasks();
        let before = edge.tiers.memory.entry_count() + edge.tiers.disk.entry_count();
        edge.tiers.purge_all();
        edge.lock_torrents().clear();
        before
    } else {
        let (targets, _unknown) = selected(&edge, &selection).await?;
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
