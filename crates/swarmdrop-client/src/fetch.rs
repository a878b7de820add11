//! Carrying out the plan: one task per HTTP range fetch (a `Range` GET to an edge or the
//! origin, streamed, with progress), pieces asked of the peer engine, and the loop that
//! feeds the planner what happened, checks what arrived before anything is written, and
//! finishes each asset.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarmdrop_httpc::Lane;
use swarmdrop_plan::{AssetId, Decision, Estimate, FetchId, PathId, PathKind, Planner};
use tokio::sync::mpsc;

mod finish;
mod peers;
mod range;

use crate::assets::{Asset, Refused};
use crate::follow::Followed;
use crate::mirrors::Mirror;
use crate::report::Recorder;
use crate::swarm::{self, Engine};
use crate::{
    decision_line, path_of, plan_kind, planner_for, spec_of, ClientError, ClientOptions, Event,
    Events, Progress, Report,
};

/// How often the planner is polled when nothing happens.
const TICK: Duration = Duration::from_millis(20);
/// A run with nothing in flight and nothing to start for this long is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

struct InFlight {
    asset: AssetId,
    offset: u64,
    length: u64,
    path: PathId,
    /// The HTTP task (none for pieces asked of peers).
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The path kinds an asset may use: its class's, in order, narrowed by `--paths`; the
/// peer path only when the engine runs its torrent.
fn kinds(asset: &Asset, options: &ClientOptions, with_peers: bool) -> Vec<PathKind> {
    asset
        .class_paths
        .iter()
        .map(|k| plan_kind(*k))
        .filter(|k| *k != PathKind::P2p || with_peers)
        .filter(|k| {
            options
                .only_paths
                .as_ref()
                .is_none_or(|only| only.contains(k))
        })
        .collect()
}

struct Run<'a> {
    options: &'a ClientOptions,
    progress: &'a dyn Progress,
    started: Instant,
    planner: Planner,
    recorder: Recorder,
    assets: Vec<Asset>,
    /// Each asset's id in the planner, once it is released.
    ids: Vec<Option<AssetId>>,
    /// What the engine said of each torrent's swarm before its asset was released.
    swarm_views: peers::SwarmViews,
    /// When each asset is (or was) released, in run milliseconds.
    released: Vec<u64>,
    kinds: Vec<Vec<PathKind>>,
    names: Vec<String>,
    events_file: Option<std::fs::File>,
    by_path: HashMap<PathId, Mirror>,
    auth: Option<String>,
    tx: Events,
    flights: HashMap<FetchId, InFlight>,
    /// Each asset's bytes are all in (it is finishing, or in place).
    finished: Vec<bool>,
    /// Each asset is checked whole and in place.
    in_place: Vec<bool>,
    /// Where finished assets go to be checked whole, renamed and flushed.
    finisher: Option<crate::assets::Finisher>,
    engine: Option<Engine>,
    /// Pieces the engine holds, per asset it runs.
    held: peers::Held,
    /// HTTP fetches handed to the engine, waiting for it to write them.
    handed: HashMap<(usize, u32), FetchId>,
    /// Bytes per class, for the progress display (grows as a live drop adds assets).
    totals: BTreeMap<String, u64>,
    /// Where background ranges run (see [`swarm::background_runtime`]).
    background: &'static tokio::runtime::Runtime,
    /// Something happened since the last poll that may call for a decision (a fetch
    /// ended, the swarm changed, an asset was released); bytes arriving do not.
    eventful: bool,
}

impl Run<'_> {
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn label(&self, path: PathId) -> String {
        match path.kind {
            PathKind::P2p => "p2p".into(),
            _ => self
                .by_path
                .get(&path)
                .map_or_else(|| path.to_string(), |m| m.label.clone()),
        }
    }

    fn decide(&mut self) {
        let t = self.now();
        for decision in self.planner.poll(t) {
            self.recorder.decided(decision.reason());
            if let Some(file) = self.events_file.as_mut() {
                let _ = writeln!(file, "{}", decision_line(t, &decision, &self.names));
            }
            match decision {
                Decision::Fetch {
                    fetch,
                    asset,
                    offset,
                    length,
                    path,
                    deadline,
                    hedge_of,
                    ..
                } => {
                    self.start(fetch, asset, (offset, length), path, deadline);
                    if let Some(original) = hedge_of {
                        self.copy_started(fetch, original);
                    }
                }
                Decision::Cancel { fetch, .. } => {
                    if let Some(flight) = self.flights.remove(&fetch) {
                        self.stop(&flight);
                        self.http_fetch_ended(&flight);
                    }
                }
                Decision::Urgent {
                    asset,
                    first_piece,
                    deadline,
                    ..
                } => {
                    if let Some(handle) = self.engine_handle(asset) {
                        handle.want(first_piece, Some(deadline));
                    }
                }
            }
        }
    }

    fn engine_handle(&self, asset: AssetId) -> Option<&swarmdrop_peer::TorrentHandle> {
        self.engine
            .as_ref()
            .and_then(|e| e.handles.get(&(asset.0 as usize)))
    }

    fn start(
        &mut self,
        fetch: FetchId,
        asset: AssetId,
        (offset, length): (u64, u64),
        path: PathId,
        deadline: u64,
    ) {
        let index = asset.0 as usize;
        let piece = self.assets[index]
            .pieces
            .as_ref()
            .map(|(p, _)| (offset / u64::from(*p)) as u32);
        // A piece the engine already holds is done whichever path was chosen.
        if let Some(piece) = piece {
            if self.held.has(index, piece) {
                let t = self.now();
                self.planner.progress(fetch, length, t);
                let _ = self.planner.complete(fetch, t);
                return;
            }
        }
        let task = if path.kind == PathKind::P2p {
            match (self.engine_handle(asset), piece) {
                (Some(handle), Some(piece)) => handle.want(piece, Some(deadline)),
                _ => return,
            }
            None
        } else {
            let Some(mirror) = self.by_path.get(&path) else {
                return;
            };
            let target = &self.assets[index];
            let url = mirror.url(&target.published);
            let now = self.now();
            let background = self.planner.is_background(deadline, now);
            let lane = match background {
                true => Lane::Background,
                false => Lane::Foreground,
            };
            let range = range::fetch_range(
                (url, mirror.timeouts(), lane),
                self.auth.clone(),
                (offset, length, target.length),
                (fetch, swarmdrop_plan::urgency(deadline, now)),
                self.tx.clone(),
            );
            // Background ranges run at a lower priority, on connections of their own.
            match background {
                true => Some(self.background.spawn(range)),
                false => Some(tokio::spawn(range)),
            }
        };
        self.flights.insert(
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

    fn stop(&self, flight: &InFlight) {
        match &flight.task {
            Some(task) => task.abort(),
            None => {
                if let (Some(handle), Some((p, _))) = (
                    self.engine_handle(flight.asset),
                    self.assets[flight.asset.0 as usize].pieces.as_ref(),
                ) {
                    handle.unwant((flight.offset / u64::from(*p)) as u32);
                }
            }
        }
    }

    fn verified(&mut self, fetch: FetchId, flight: &InFlight) {
        let t = self.now();
        // Its twin already won (the loser's bytes were in the queue before its cancel
        // was carried out), or the planner took the range back: these bytes were
        // fetched in vain and are not counted a second time.
        if self.planner.complete(fetch, t).is_err() {
            return;
        }
        if let Some(file) = self.events_file.as_mut() {
            let line = serde_json::json!({ "event": "verified", "fetch": fetch, "t_ms": t });
            let _ = writeln!(file, "{line}");
        }
        let asset = &self.assets[flight.asset.0 as usize];
        self.recorder
            .bytes(&asset.class, &self.label(flight.path), flight.length);
        self.progress.advanced(&asset.class, flight.length);
    }

    fn on_event(&mut self, event: Event) -> Result<(), ClientError> {
        let t = self.now();
        self.eventful |= !matches!(event, Event::Progress(..));
        match event {
            Event::Progress(fetch, n) => self.planner.progress(fetch, n, t),
            Event::Finished(k, result) => {
                result?;
                self.arrived(k);
            }
            Event::Failed(fetch, why) => {
                if let Some(flight) = self.flights.remove(&fetch) {
                    self.progress
                        .note(&format!("{}: {why}", self.label(flight.path)));
                    let _ = self.planner.fail(fetch, t);
                    self.http_fetch_ended(&flight);
                }
            }
            Event::Done(fetch, bytes) => {
                let Some(flight) = self.flights.remove(&fetch) else {
                    return Ok(());
                };
                let index = flight.asset.0 as usize;
                let asset = &mut self.assets[index];
                match asset.accept(flight.offset, flight.length, &bytes)? {
                    Ok(()) if asset.engine_writes => {
                        let piece = asset
                            .pieces
                            .as_ref()
                            .map_or(0, |(p, _)| (flight.offset / u64::from(*p)) as u32);
                        if self.held.has(index, piece) {
                            self.verified(fetch, &flight);
                        } else if let Some(handle) = self.engine_handle(flight.asset) {
                            handle.verified_elsewhere(piece, Bytes::from(bytes));
                            self.handed.insert((index, piece), fetch);
                            // The flight stays open until the engine has written it.
                            self.flights.insert(
                                fetch,
                                InFlight {
                                    task: None,
                                    ..flight
                                },
                            );
                        }
                    }
                    Ok(()) => self.verified(fetch, &flight),
                    Err(refused) => {
                        let name = asset.path.clone();
                        let who = self.label(flight.path);
                        self.recorder.refused(&who);
                        match refused {
                            // Signed bytes that do not match are a lie, not a glitch: the
                            // mirror is banned for the run and its other ranges move.
                            Refused::Digest => {
                                self.progress.note(&format!(
                                    "{who} sent bytes that fail their signed digest for {name}; banned for this run, fetching elsewhere"
                                ));
                                self.recorder.banned_mirror(&who);
                                let _ = self.planner.ban(fetch);
                            }
                            Refused::Length => {
                                self.progress.note(&format!(
                                    "{who} sent a range of the wrong length for {name}; fetching it elsewhere"
                                ));
                                let _ = self.planner.fail(fetch, t);
                            }
                        }
                        self.http_fetch_ended(&flight);
                    }
                }
            }
        }
        Ok(())
    }

    /// A live drop's new version: its new assets are needed from now, over HTTP (the
    /// peer engine runs the torrents it started with).
    fn add_followed(&mut self, version: u64, assets: Vec<Asset>) {
        self.eventful = true;
        let t = self.now();
        let bytes: u64 = assets.iter().map(|a| a.length).sum();
        self.progress.note(&format!(
            "version {version} of the drop: {} new asset(s), {:.1} MB",
            assets.len(),
            bytes as f64 / 1e6
        ));
        for asset in assets {
            let kinds = kinds(&asset, self.options, false);
            if kinds.is_empty() {
                self.progress.note(&format!(
                    "{}: class {} allows no path this run may use for a new asset; skipped",
                    asset.path, asset.class
                ));
                continue;
            }
            let total = self.totals.entry(asset.class.clone()).or_default();
            *total += asset.length;
            self.progress.class_total(&asset.class, *total);
            self.names.push(asset.path.clone());
            self.kinds.push(kinds);
            self.released.push(t);
            self.ids.push(None);
            self.finished.push(false);
            self.in_place.push(false);
            self.assets.push(asset);
        }
    }

    /// Hands the planner every asset whose release time has come.
    fn release(&mut self) -> Result<(), ClientError> {
        let t = self.now();
        for k in 0..self.assets.len() {
            if self.ids[k].is_none() && self.released[k] <= t {
                let spec = spec_of(&self.assets[k], self.kinds[k].clone());
                let id = self
                    .planner
                    .add_asset(spec, self.released[k])
                    .map_err(|e| ClientError::Usage(e.to_string()))?;
                self.ids[k] = Some(id);
                self.swarm_views.tell(k, id, &mut self.planner);
                self.eventful = true;
            }
        }
        Ok(())
    }
}

/// Runs the plan to the end: every asset verified and in place, or an error.
pub(crate) async fn carry_out(
    options: &ClientOptions,
    mirrors: &[Mirror],
    headers: &[(&str, &str)],
    mut assets: Vec<Asset>,
    started: Instant,
    progress: &dyn Progress,
    mut followed: Option<mpsc::UnboundedReceiver<Followed>>,
) -> Result<Report, ClientError> {
    let mut planner: Planner = planner_for(mirrors, options);
    let engine = swarm::start(&mut assets, options)?;
    if let Some(engine) = &engine {
        planner.add_path(
            PathId::P2P,
            Estimate {
                rtt_ms: 50.0,
                bytes_per_ms: 12_500.0,
            },
        );
        if let Some(addr) = engine.listening {
            progress.note(&format!("listening peers {addr}"));
        }
    }
    let events_file = match &options.events {
        Some(path) => {
            let io = |e: std::io::Error| ClientError::Io(format!("{}: {e}", path.display()));
            // Its directory may not exist yet (the demo's viewer 0 starts before any
            // viewer has made the directory they share).
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            Some(std::fs::File::create(path).map_err(io)?)
        }
        None => None,
    };
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for asset in &assets {
        *totals.entry(asset.class.clone()).or_default() += asset.length;
    }
    for (class, bytes) in &totals {
        progress.class_total(class, *bytes);
    }
    let t0 = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut all_kinds = Vec::new();
    let mut released = Vec::new();
    let mut scheduled = 0u64;
    for (index, asset) in assets.iter().enumerate() {
        let with_peers = engine
            .as_ref()
            .is_some_and(|e| e.handles.contains_key(&index));
        let kinds = kinds(asset, options, with_peers);
        if kinds.is_empty() {
            return Err(ClientError::Usage(format!(
                "{}: class {} allows no path this run may use",
                asset.path, asset.class
            )));
        }
        all_kinds.push(kinds);
        // Targets come in drop-path order, so a schedule follows the paths' order.
        released.push(match &options.schedule {
            Some((class, interval)) if *class == asset.class => {
                scheduled += 1;
                t0 + (scheduled - 1) * interval
            }
            _ => t0,
        });
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut run = Run {
        options,
        progress,
        started,
        planner,
        recorder: Recorder::default(),
        names: assets.iter().map(|a| a.path.clone()).collect(),
        finished: vec![false; assets.len()],
        in_place: vec![false; assets.len()],
        finisher: Some(crate::assets::finisher(tx.clone(), options.keep_page_cache)),
        ids: vec![None; assets.len()],
        swarm_views: peers::SwarmViews::default(),
        assets,
        released,
        kinds: all_kinds,
        events_file,
        by_path: mirrors
            .iter()
            .enumerate()
            .map(|(i, m)| (path_of(i, m), m.clone()))
            .collect(),
        auth: headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .map(|(_, v)| (*v).to_owned()),
        tx,
        flights: HashMap::new(),
        engine,
        held: peers::Held::default(),
        handed: HashMap::new(),
        totals,
        background: swarm::background_runtime()?,
        eventful: true,
    };
    let mut idle_since = Instant::now();
    // When a followed drop last brought something new (or the run began).
    let mut last_news = Instant::now();
    let follow_idle = options.follow.and_then(|f| f.idle);
    let mut decided = Instant::now();
    loop {
        run.release()?;
        // The planner is asked when something ended or changed, and otherwise once a
        // tick: each range's bytes arrive in dozens of events, and a poll per batch of
        // them cost fifty demo viewers more CPU than their checkout pages could spare.
        if run.eventful || decided.elapsed() >= TICK {
            run.eventful = false;
            decided = Instant::now();
            run.decide();
        }
        if run.finish_done()? {
            match &followed {
                None => break,
                Some(_) if follow_idle.is_some_and(|idle| last_news.elapsed() >= idle) => break,
                Some(_) => {}
            }
        }
        let waiting_release = run.ids.iter().any(Option::is_none);
        if run.flights.is_empty() && !waiting_release {
            if idle_since.elapsed() > STUCK_AFTER {
                let waiting: Vec<&str> = run
                    .assets
                    .iter()
                    .zip(&run.finished)
                    .filter(|(_, f)| !**f)
                    .map(|(a, _)| a.path.as_str())
                    .collect();
                return Err(ClientError::Stuck(format!(
                    "no allowed path could serve {} asset(s) for {}s: {}",
                    waiting.len(),
                    STUCK_AFTER.as_secs(),
                    waiting.join(", ")
                )));
            }
        } else {
            idle_since = Instant::now();
        }
        let swarm_events = async {
            match run.engine.as_mut() {
                Some(engine) => engine.events.recv().await,
                None => std::future::pending().await,
            }
        };
        let following = followed.is_some();
        let news = async {
            match followed.as_mut() {
                Some(followed) => followed.recv().await,
                None => std::future::pending().await,
            }
        };
        let interrupted = async {
            match following {
                // Following ends at an interrupt, with the report of what arrived.
                true => {
                    let _ = tokio::signal::ctrl_c().await;
                }
                false => std::future::pending().await,
            }
        };
        tokio::select! {
            event = rx.recv() => if let Some(event) = event {
                run.on_event(event)?;
                // Everything already waiting is taken in before the planner is asked
                // again: under load one poll per event would cost more than the events.
                while let Ok(event) = rx.try_recv() {
                    run.on_event(event)?;
                }
            },
            event = swarm_events => if let Some(event) = event {
                run.on_swarm(event);
                while let Some(event) = run.engine.as_mut().and_then(|e| e.events.try_recv().ok()) {
                    run.on_swarm(event);
                }
            },
            news = news => match news {
                Some(Followed::Assets(version, assets)) => {
                    last_news = Instant::now();
                    run.add_followed(version, assets);
                }
                Some(Followed::Note(line)) => progress.note(&line),
                None => followed = None,
            },
            () = interrupted => {
                progress.note("interrupted: no longer following the drop");
                break;
            }
            () = tokio::time::sleep(TICK) => {}
        }
    }
    // The poller stops when its receiver goes.
    drop(followed);
    for flight in run.flights.values() {
        run.stop(flight);
    }
    // Every file in place is flushed to disk before the run says it is done.
    if let Some(finisher) = run.finisher.take() {
        drop(finisher.jobs);
        finisher
            .flushed
            .await
            .map_err(|e| ClientError::Io(format!("finishing assets: {e}")))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = run.recorder.report(&run.assets, seconds);
    crate::qoe::send(options, &report, run.auth.as_deref(), progress).await;
    progress.downloaded();
    if let Some(engine) = run.engine.take() {
        if options.seed_after {
            match options.stop_seeding.clone() {
                Some(mut stop) => {
                    let _ = stop.wait_for(|stop| *stop).await;
                }
                None => {
                    progress.note("every asset verified; seeding until interrupted");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        for handle in engine.handles.values() {
            handle.stop();
        }
        let _ = engine.swarm.wait().await;
    }
    Ok(report)
}
