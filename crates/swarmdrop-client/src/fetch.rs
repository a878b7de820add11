//! Carrying out the plan: one task per range fetch (an HTTP `Range` GET to an edge or the
//! origin, streamed, with progress), and the loop that feeds the planner what happened,
//! checks and writes what arrived, and finishes each asset.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use swarmdrop_httpc::{get, HttpUrl, Timeouts};
use swarmdrop_plan::{AssetId, Decision, FetchId, PathId, PathKind, Planner};
use tokio::sync::mpsc;

use crate::assets::{Asset, Refused};
use crate::mirrors::Mirror;
use crate::report::Recorder;
use crate::{
    decision_line, path_of, plan_kind, planner_for, spec_of, ClientError, ClientOptions, Event,
    Events, Progress, Report,
};

/// How often the planner is polled when nothing happens.
const TICK: Duration = Duration::from_millis(20);
/// A run with nothing in flight and nothing to start for this long is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// One range GET, streamed into memory (a chunk is at most one piece or 32 MiB).
async fn fetch_range(
    url: HttpUrl,
    auth: Option<String>,
    offset: u64,
    length: u64,
    total: u64,
    fetch: FetchId,
    events: Events,
) {
    let range = format!("bytes={}-{}", offset, offset + length.max(1) - 1);
    let mut headers: Vec<(&str, &str)> = vec![("range", &range)];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    let fail = |why: String| {
        let _ = events.send(Event::Failed(fetch, why));
    };
    let response = match get(&url, &headers, Timeouts::default()).await {
        Ok(response) => response,
        Err(e) => return fail(e.to_string()),
    };
    let status = response.status().as_u16();
    let whole = offset == 0 && length == total;
    if status != 206 && !(status == 200 && whole) {
        return fail(format!("{url}: HTTP {status}"));
    }
    let mut body = response.into_body();
    let mut bytes = Vec::with_capacity(length as usize);
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return fail(format!("{url}: {e}")),
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > length as usize {
                return fail(format!("{url}: more bytes than the {length} asked for"));
            }
            bytes.extend_from_slice(&data);
            let _ = events.send(Event::Progress(fetch, data.len() as u64));
        }
    }
    let _ = events.send(Event::Done(fetch, bytes));
}

struct InFlight {
    asset: AssetId,
    offset: u64,
    length: u64,
    path: PathId,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the plan to the end: every asset verified and in place, or an error.
pub(crate) async fn carry_out(
    options: &ClientOptions,
    mirrors: &[Mirror],
    headers: &[(&str, &str)],
    mut assets: Vec<Asset>,
    started: Instant,
    progress: &dyn Progress,
) -> Result<Report, ClientError> {
    let auth = headers
        .iter()
        .find(|(k, _)| *k == "authorization")
        .map(|(_, v)| (*v).to_owned());
    let mut planner: Planner = planner_for(mirrors, options);
    let mut recorder = Recorder::default();
    let names: Vec<String> = assets.iter().map(|a| a.path.clone()).collect();
    let mut events_file = match &options.events {
        Some(path) => Some(
            std::fs::File::create(path)
                .map_err(|e| ClientError::Io(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for asset in &assets {
        *totals.entry(asset.class.as_str()).or_default() += asset.length;
    }
    for (class, bytes) in &totals {
        progress.class_total(class, *bytes);
    }
    let now = |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut ids = Vec::new();
    for asset in &assets {
        let kinds = kinds(&asset.class_paths, options);
        if kinds.is_empty() {
            return Err(ClientError::Usage(format!(
                "{}: class {} allows no path this run may use (the peer path needs `get --p2p-only` for now)",
                asset.path, asset.class
            )));
        }
        ids.push(
            planner
                .add_asset(spec_of(asset, kinds), now(started))
                .map_err(|e| ClientError::Usage(e.to_string()))?,
        );
    }
    let by_path: HashMap<PathId, &Mirror> = mirrors
        .iter()
        .enumerate()
        .map(|(i, m)| (path_of(i, m), m))
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut flights: HashMap<FetchId, InFlight> = HashMap::new();
    let mut finished = vec![false; assets.len()];
    let mut idle_since = Instant::now();
    loop {
        let t = now(started);
        for decision in planner.poll(t) {
            if let Some(file) = events_file.as_mut() {
                let _ = writeln!(file, "{}", decision_line(t, &decision, &names));
            }
            match decision {
                Decision::Fetch {
                    fetch,
                    asset,
                    offset,
                    length,
                    path,
                    ..
                } => {
                    let Some(mirror) = by_path.get(&path) else {
                        continue;
                    };
                    let target = &assets[asset.0 as usize];
                    let url = mirror.url(&target.published);
                    let task = tokio::spawn(fetch_range(
                        url,
                        auth.clone(),
                        offset,
                        length,
                        target.length,
                        fetch,
                        tx.clone(),
                    ));
                    flights.insert(
                        fetch,
                        InFlight {
                            asset,
                            offset,
                            length,
                            path,
                            task,
                        },
                    );
                }
                Decision::Cancel { fetch, .. } => {
                    if let Some(flight) = flights.remove(&fetch) {
                        flight.task.abort();
                    }
                }
                // No peer engine in this client yet: nothing to hurry.
                Decision::Urgent { .. } => {}
            }
        }
        for (k, id) in ids.iter().enumerate() {
            if !finished[k] && planner.is_done(*id) {
                assets[k].finish()?;
                finished[k] = true;
                recorder.arrived(&assets[k], now(started));
            }
        }
        if finished.iter().all(|f| *f) {
            break;
        }
        if flights.is_empty() {
            if idle_since.elapsed() > STUCK_AFTER {
                let waiting: Vec<&str> = assets
                    .iter()
                    .zip(&finished)
                    .filter(|(_, f)| !**f)
                    .map(|(a, _)| a.path.as_str())
                    .collect();
                return Err(ClientError::Stuck(format!(
                    "no allowed path could serve {} for {}s: {}",
                    waiting.len(),
                    STUCK_AFTER.as_secs(),
                    waiting.join(", ")
                )));
            }
        } else {
            idle_since = Instant::now();
        }
        let event = match tokio::time::timeout(TICK, rx.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) | Err(_) => continue,
        };
        let t = now(started);
        match event {
            Event::Progress(fetch, n) => planner.progress(fetch, n, t),
            Event::Failed(fetch, why) => {
                if let Some(flight) = flights.remove(&fetch) {
                    progress.note(&format!(
                        "{}: {why}",
                        by_path.get(&flight.path).map_or("?", |m| m.label.as_str())
                    ));
                    let _ = planner.fail(fetch, t);
                }
            }
            Event::Done(fetch, bytes) => {
                let Some(flight) = flights.remove(&fetch) else {
                    continue;
                };
                let asset = &mut assets[flight.asset.0 as usize];
                match asset.accept(flight.offset, flight.length, &bytes)? {
                    Ok(()) => {
                        recorder.bytes(&asset.class, &label(&by_path, flight.path), flight.length);
                        progress.advanced(&asset.class, flight.length);
                        let _ = planner.complete(fetch, t);
                    }
                    Err(refused) => {
                        let why = match refused {
                            Refused::Digest => "bytes that fail their signed digest",
                            Refused::Length => "a range of the wrong length",
                        };
                        let who = label(&by_path, flight.path);
                        progress.note(&format!(
                            "{who} sent {why} for {}; fetching it elsewhere",
                            asset.path
                        ));
                        recorder.refused(&who);
                        let _ = planner.fail(fetch, t);
                    }
                }
            }
        }
    }
    for flight in flights.into_values() {
        flight.task.abort();
    }
    Ok(recorder.report(&assets, started.elapsed().as_secs_f64()))
}

fn label(by_path: &HashMap<PathId, &Mirror>, path: PathId) -> String {
    match path.kind {
        PathKind::P2p => "p2p".into(),
        _ => by_path
            .get(&path)
            .map_or_else(|| path.to_string(), |m| m.label.clone()),
    }
}

/// The path kinds an asset may use: its class's, in order, narrowed by `--paths`; the
/// peer path is left out until this client runs a peer engine.
pub(crate) fn kinds(
    class_paths: &[swarmdrop_manifest::model::PathKind],
    options: &ClientOptions,
) -> Vec<PathKind> {
    class_paths
        .iter()
        .map(|k| plan_kind(*k))
        .filter(|k| *k != PathKind::P2p)
        .filter(|k| {
            options
                .only_paths
                .as_ref()
                .is_none_or(|only| only.contains(k))
        })
        .collect()
}
