//! The end-of-run quality report (`swarmdrop_manifest::qoe`), built from the run's
//! [`Report`] and POSTed to the server once every asset is verified. The download has
//! already succeeded by then, so a report that cannot be sent is a note for the user,
//! never an error; every call is bounded in time.

use std::time::Duration;

use bytes::Bytes;
use swarmdrop_httpc::{post_json_bytes, HttpUrl, Timeouts};
use swarmdrop_manifest::qoe::{PathBytes, QoeAsset, QoeError, QoeReport, VERSION};
use swarmdrop_manifest::{ClassName, DropPath};

use crate::{ClientOptions, Progress, Report};

/// How long the whole POST may take.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(3),
    head: Duration::from_secs(5),
    source: None,
};
const BODY_TIME: Duration = Duration::from_secs(5);

/// The report for `report`, under a random `client_id`.
pub fn report_of(report: &Report, client_id: &str) -> Result<QoeReport, QoeError> {
    let mut bytes_by_path = PathBytes::default();
    for (label, n) in &report.bytes_by_path {
        // Labels are `p2p`, `origin`, and `edge0`, `edge1`, … (one per edge).
        let kind = match label.as_str() {
            "p2p" => &mut bytes_by_path.p2p,
            "origin" => &mut bytes_by_path.origin,
            _ => &mut bytes_by_path.edge,
        };
        *kind = kind.saturating_add(*n);
    }
    let mut assets = Vec::with_capacity(report.assets.len());
    for (i, a) in report.assets.iter().enumerate() {
        let named = |field: &str, e: swarmdrop_manifest::ModelError| {
            QoeError(format!("assets[{i}].{field}: {e}"))
        };
        assets.push(QoeAsset {
            path: DropPath::new(&a.path).map_err(|e| named("path", e))?,
            class: ClassName::new(&a.class).map_err(|e| named("class", e))?,
            bytes: a.bytes,
            budget_ms: a.budget_ms,
            arrival_ms: a.arrival_ms,
            within_budget: a.arrival_ms <= a.budget_ms,
        });
    }
    let qoe = QoeReport {
        version: VERSION,
        client_id: client_id.to_owned(),
        wall_ms: (report.seconds * 1e3) as u64,
        bytes_by_path,
        assets,
        decisions: report.decisions.clone(),
    };
    qoe.check()?;
    Ok(qoe)
}

/// A random id for one run (16 bytes, hex).
fn client_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness the id only has to be plausible, not unique.
    let _ = getrandom::getrandom(&mut bytes);
    hex::encode(bytes)
}

/// POSTs the report for `report` to `options.qoe`, with `authorization` (`Bearer …`)
/// when the run has a token. Says what happened through `progress`.
pub async fn send(
    options: &ClientOptions,
    report: &Report,
    authorization: Option<&str>,
    progress: &dyn Progress,
) {
    let Some(url) = &options.qoe else { return };
    match try_send(url, report, authorization, options.listen.map(|a| a.ip())).await {
        Ok(()) => progress.note(&format!("quality report sent to {url}")),
        Err(e) => progress.note(&format!("warning: quality report not sent to {url}: {e}")),
    }
}

async fn try_send(
    url: &str,
    report: &Report,
    authorization: Option<&str>,
    source: Option<std::net::IpAddr>,
) -> Result<(), String> {
    let url = HttpUrl::parse(url).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&report_of(report, &client_id()).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let timeouts = Timeouts {
        source: source.filter(|ip| !ip.is_unspecified()),
        ..TIMEOUTS
    };
    let (status, answer) = post_json_bytes(
        &url,
        &headers,
        Bytes::from(body),
        16 << 10,
        timeouts,
        BODY_TIME,
    )
    .await
    .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::AssetArrival;

    #[test]
    fn the_run_s_report_becomes_a_valid_qoe_report() {
        let arrival = |path: &str, class: &str, arrival_ms| AssetArrival {
            path: path.into(),
            class: class.into(),
            bytes: 100,
            budget_ms: 500,
            arrival_ms,
        };
        let report = Report {
            seconds: 1.25,
            classes: BTreeMap::new(),
            bytes_by_path: [("edge0", 5), ("edge1", 7), ("origin", 3), ("p2p", 11)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            refused_by_path: BTreeMap::new(),
            banned_mirrors: Vec::new(),
            banned_peers: 0,
            decisions: [("meets_deadline", 9), ("spare_capacity", 4)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            assets: vec![
                arrival("a/1.png", "keyframe", 120),
                arrival("b.bin", "bulk", 900),
            ],
        };
        let qoe = report_of(&report, "abc123").unwrap();
        assert_eq!(qoe.wall_ms, 1250);
        assert_eq!(
            qoe.bytes_by_path,
            PathBytes {
                p2p: 11,
                edge: 12,
                origin: 3
            }
        );
        assert!(qoe.assets[0].within_budget && !qoe.assets[1].within_budget);
        assert_eq!(qoe.version, VERSION);
        assert_eq!(qoe.decisions["spare_capacity"], 4);
        let text = serde_json::to_vec(&qoe).unwrap();
        assert_eq!(QoeReport::parse(&text).unwrap(), qoe);
        let mut bad = report.clone();
        bad.assets[1].class = "Bulk Class".into();
        assert!(report_of(&bad, "abc123")
            .unwrap_err()
            .0
            .starts_with("assets[1].class"));
    }

    #[test]
    fn the_report_format_names_every_reason_the_planner_gives() {
        let planner: Vec<&str> = swarmdrop_plan::Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            planner,
            swarmdrop_manifest::qoe::DECISION_REASONS,
            "swarmdrop_plan::Reason and the QoE report's reasons differ"
        );
    }
}
