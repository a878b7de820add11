//! The planner: assets cut into chunks (a torrent's pieces, or fixed HTTP ranges), fetches
//! in flight, path estimates, and the rules that turn them into decisions.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::decision::{Decision, Reason};
use crate::estimate::{Estimate, PathHealth, PathState};
use crate::{Millis, PathId, PathKind};

mod late;
mod spare;

/// An asset's number in this planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AssetId(pub u32);

/// A fetch's number in this planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FetchId(pub u64);

/// A verified target to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSpec {
    /// Its drop path (for events).
    pub name: String,
    /// Its class (for events).
    pub class: String,
    /// Length in bytes.
    pub length: u64,
    /// Its torrent's piece length, when it has one: chunks are then pieces, so every
    /// chunk can be checked against its SHA-1 whichever path brought it.
    pub piece_length: Option<u32>,
    /// The class's latency budget, from when the asset is added.
    pub budget_ms: Millis,
    /// The class's paths, in the policy's order of preference.
    pub paths: Vec<PathKind>,
    /// Edges with a free slot also take pieces the swarm carries (see `fill_spare`).
    pub spare_edges: bool,
}

/// Limits and thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanConfig {
    /// Chunk size for assets without a torrent.
    pub chunk_bytes: u64,
    /// Fetches in flight per edge.
    pub edge_in_flight: usize,
    /// Fetches in flight at the origin.
    pub origin_in_flight: usize,
    /// Pieces asked of the swarm at once.
    pub p2p_in_flight: usize,
    /// A fetch younger than this is not hedged.
    pub hedge_after_ms: Millis,
    /// A fetch with no progress for this long has failed.
    pub stall_ms: Millis,
    /// An asset due further off than this is background work: it gets at most half of
    /// an edge's or the origin's slots.
    pub background_after_ms: Millis,
    /// Where background work on a torrent's pieces starts: piece `spread` modulo the
    /// count, wrapping round. Viewers given different values start on different pieces
    /// and so have pieces to trade from the first minute; all starting at piece 0 they
    /// hold the same ones and their uploads idle. Due work always goes in order.
    pub spread: u64,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            chunk_bytes: 1 << 20,
            edge_in_flight: 4,
            origin_in_flight: 4,
            p2p_in_flight: 64,
            hedge_after_ms: 250,
            stall_ms: 3_000,
            background_after_ms: 10_000,
            spread: 0,
        }
    }
}

/// An asset the planner cannot take, or a call naming something it never issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlannerError {
    /// The class allows no path.
    #[error("{0}: its class allows no path")]
    NoPaths(String),
    /// A piece length or chunk size of zero.
    #[error("{0}: a chunk of zero bytes")]
    ZeroChunk(String),
    /// An asset id or fetch id this planner did not issue (or already finished).
    #[error("unknown {0}")]
    Unknown(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Missing,
    InFlight(Vec<FetchId>),
    Done,
}

#[derive(Debug)]
struct Asset {
    spec: AssetSpec,
    deadline: Millis,
    chunk_len: u64,
    chunks: Vec<Chunk>,
    /// Pieces some connected peer holds (torrent assets; empty: none known).
    swarm_has: Vec<bool>,
    /// How far the connected peers still downloading it have got, and how many they
    /// are (see `fill_spare`).
    leechers_progress: Option<(f64, usize)>,
    done: usize,
}

impl Asset {
    fn range(&self, chunk: usize) -> (u64, u64) {
        let offset = chunk as u64 * self.chunk_len;
        (offset, self.chunk_len.min(self.spec.length - offset))
    }
}

#[derive(Debug, Clone)]
struct Fetch {
    asset: AssetId,
    chunk: usize,
    path: PathId,
    length: u64,
    received: u64,
    started: Millis,
    last_progress: Millis,
    deadline: Millis,
    hedge_of: Option<FetchId>,
    hedged: bool,
    urgent_sent: bool,
}

/// The scheduler. Feed it assets, paths and what happened; poll it for decisions.
#[derive(Debug)]
pub struct Planner {
    config: PlanConfig,
    paths: BTreeMap<PathId, PathState>,
    assets: Vec<Asset>,
    fetches: BTreeMap<FetchId, Fetch>,
    next_fetch: u64,
    pending: VecDeque<Decision>,
}

impl Planner {
    /// An empty planner.
    pub fn new(config: PlanConfig) -> Self {
        Planner {
            config,
            paths: BTreeMap::new(),
            assets: Vec::new(),
            fetches: BTreeMap::new(),
            next_fetch: 1,
            pending: VecDeque::new(),
        }
    }

    /// Adds (or resets the prior of) a path instance.
    pub fn add_path(&mut self, path: PathId, prior: Estimate) {
        self.paths.insert(path, PathState::new(prior));
    }

    /// A path's current estimate and error rate.
    pub fn estimate(&self, path: PathId) -> Option<(Estimate, f64)> {
        self.paths.get(&path).map(|p| (p.estimate, p.error_rate))
    }

    /// Adds an asset, due `budget_ms` from `now`.
    pub fn add_asset(&mut self, spec: AssetSpec, now: Millis) -> Result<AssetId, PlannerError> {
        if spec.paths.is_empty() {
            return Err(PlannerError::NoPaths(spec.name));
        }
        let chunk_len = match spec.piece_length {
            Some(piece) => u64::from(piece),
            None => self.config.chunk_bytes,
        };
        if chunk_len == 0 {
            return Err(PlannerError::ZeroChunk(spec.name));
        }
        let count = spec.length.div_ceil(chunk_len).max(1) as usize;
        let id = AssetId(self.assets.len() as u32);
        let mut chunks = vec![Chunk::Missing; count];
        let mut done = 0;
        if spec.length == 0 {
            chunks[0] = Chunk::Done;
            done = 1;
        }
        self.assets.push(Asset {
            deadline: now.saturating_add(spec.budget_ms),
            spec,
            chunk_len,
            chunks,
            swarm_has: Vec::new(),
            leechers_progress: None,
            done,
        });
        Ok(id)
    }

    /// Whether every byte of `asset` has arrived (and been reported complete).
    pub fn is_done(&self, asset: AssetId) -> bool {
        self.assets
            .get(asset.0 as usize)
            .is_some_and(|a| a.done == a.chunks.len())
    }

    /// Whether every asset is done.
    pub fn all_done(&self) -> bool {
        self.assets.iter().all(|a| a.done == a.chunks.len())
    }

    /// Whether work due at `deadline` is background work at `now` (due more than
    /// `background_after_ms` away): a caller may run it at a lower priority.
    pub fn is_background(&self, deadline: Millis, now: Millis) -> bool {
        deadline.saturating_sub(now) > self.config.background_after_ms
    }

    /// When `asset` is due.
    pub fn deadline(&self, asset: AssetId) -> Option<Millis> {
        self.assets.get(asset.0 as usize).map(|a| a.deadline)
    }

    /// The peer engine's view: which pieces of `asset` some connected peer holds.
    pub fn set_swarm_pieces(&mut self, asset: AssetId, have: &[bool]) {
        if let Some(a) = self.assets.get_mut(asset.0 as usize) {
            a.swarm_has = have.to_vec();
        }
    }

    /// A round-trip time measured to `path`.
    pub fn rtt_sample(&mut self, path: PathId, rtt_ms: f64) {
        if let Some(p) = self.paths.get_mut(&path) {
            p.rtt_sample(rtt_ms);
        }
    }

    /// `bytes` more of `fetch` arrived.
    pub fn progress(&mut self, fetch: FetchId, bytes: u64, now: Millis) {
        let Some(f) = self.fetches.get_mut(&fetch) else {
            return;
        };
        f.received = (f.received + bytes).min(f.length);
        f.last_progress = now;
        if let Some(p) = self.paths.get_mut(&f.path) {
            p.received(bytes, now);
        }
    }

    /// `fetch` completed and its bytes verified. Other fetches of the same range are
    /// cancelled (they lost the race).
    pub fn complete(&mut self, fetch: FetchId, now: Millis) -> Result<(), PlannerError> {
        let f = self
            .fetches
            .remove(&fetch)
            .ok_or(PlannerError::Unknown("fetch"))?;
        let remaining = f.length - f.received;
        if let Some(p) = self.paths.get_mut(&f.path) {
            p.received(remaining, now);
            p.succeeded();
        }
        let asset = &mut self.assets[f.asset.0 as usize];
        if let Chunk::InFlight(others) = std::mem::replace(&mut asset.chunks[f.chunk], Chunk::Done)
        {
            asset.done += 1;
            for other in others.into_iter().filter(|o| *o != fetch) {
                self.fetches.remove(&other);
                self.pending.push_back(Decision::Cancel {
                    fetch: other,
                    reason: Reason::LostRace,
                });
            }
        }
        Ok(())
    }

    /// `fetch` failed (an error, or bytes that did not verify): its path is struck and
    /// its range fetched again.
    pub fn fail(&mut self, fetch: FetchId, now: Millis) -> Result<(), PlannerError> {
        let f = self
            .fetches
            .remove(&fetch)
            .ok_or(PlannerError::Unknown("fetch"))?;
        self.forget(fetch, &f);
        let went_down = self.paths.get_mut(&f.path).is_some_and(|p| p.failed(now));
        if went_down {
            self.cancel_all_on(f.path, Reason::PathFailed);
        }
        Ok(())
    }

    /// Cancels every fetch on `path`; their ranges are missing again.
    fn cancel_all_on(&mut self, path: PathId, reason: Reason) {
        let stranded: Vec<FetchId> = self
            .fetches
            .iter()
            .filter(|(_, other)| other.path == path)
            .map(|(id, _)| *id)
            .collect();
        for id in stranded {
            if let Some(other) = self.fetches.remove(&id) {
                self.forget(id, &other);
                self.pending
                    .push_back(Decision::Cancel { fetch: id, reason });
            }
        }
    }

    /// `fetch` brought bytes that failed their signed digest: its path lied, so it is
    /// banned for the rest of the run (never backed off and retried), every other fetch
    /// on it is cancelled, and their ranges are fetched again elsewhere.
    pub fn ban(&mut self, fetch: FetchId) -> Result<PathId, PlannerError> {
        let f = self
            .fetches
            .remove(&fetch)
            .ok_or(PlannerError::Unknown("fetch"))?;
        self.forget(fetch, &f);
        if let Some(p) = self.paths.get_mut(&f.path) {
            p.error_rate = 1.0;
            p.health = PathHealth::Banned;
        }
        self.cancel_all_on(f.path, Reason::PathBanned);
        Ok(f.path)
    }

    /// Takes `fetch` off its chunk; a chunk left with no fetch is missing again.
    fn forget(&mut self, fetch: FetchId, f: &Fetch) {
        let chunk = &mut self.assets[f.asset.0 as usize].chunks[f.chunk];
        if let Chunk::InFlight(ids) = chunk {
            ids.retain(|id| *id != fetch);
            if ids.is_empty() {
                *chunk = Chunk::Missing;
            }
        }
        if let Some(original) = f.hedge_of {
            if let Some(o) = self.fetches.get_mut(&original) {
                o.hedged = false;
            }
        }
    }

    /// What `asset` may take of `path`'s slots: an asset with time to spare (more than
    /// `background_after_ms` to its deadline) gets at most half of an HTTP path's, so
    /// a keyframe released behind a bulk download never waits for a slot.
    fn capacity_for(&self, path: PathId, asset: &Asset, now: Millis) -> usize {
        let all = self.capacity(path);
        let background = asset.deadline.saturating_sub(now) > self.config.background_after_ms;
        if background && path.kind != PathKind::P2p {
            (all / 2).max(1)
        } else {
            all
        }
    }

    fn capacity(&self, path: PathId) -> usize {
        match path.kind {
            PathKind::Edge => self.config.edge_in_flight,
            PathKind::Origin => self.config.origin_in_flight,
            PathKind::P2p => self.config.p2p_in_flight,
        }
    }

    /// Everything decided since the last poll, and what `now` calls for.
    pub fn poll(&mut self, now: Millis) -> Vec<Decision> {
        let mut load: BTreeMap<PathId, (usize, u64)> = BTreeMap::new();
        for f in self.fetches.values() {
            let e = load.entry(f.path).or_default();
            e.0 += 1;
            e.1 += f.length - f.received;
        }
        for (id, p) in &mut self.paths {
            p.tick(now, load.contains_key(id));
        }
        self.fail_stalled(now);
        self.hedge_late(now, &mut load);
        self.assign(now, &mut load);
        self.fill_spare(now, &mut load);
        self.endgame(now, &mut load);
        self.pending.drain(..).collect()
    }

    /// Path instances allowed for `asset` that are up (and for the swarm, hold the
    /// piece), with the time `chunk` would be done on each, counting `ahead` bytes of the
    /// same asset waiting before it.
    fn candidates(
        &self,
        asset: &Asset,
        chunk: usize,
        now: Millis,
        load: &BTreeMap<PathId, (usize, u64)>,
        ahead: u64,
    ) -> Vec<(PathId, Millis)> {
        let (_, length) = asset.range(chunk);
        let mut out = Vec::new();
        for (id, state) in &self.paths {
            if !asset.spec.paths.contains(&id.kind) || !state.is_up(now) {
                continue;
            }
            if id.kind == PathKind::P2p
                && (asset.spec.piece_length.is_none()
                    || !asset.swarm_has.get(chunk).copied().unwrap_or(false))
            {
                continue;
            }
            let queued = load.get(id).map_or(0, |l| l.1);
            out.push((*id, state.eta(now, queued + ahead, length)));
        }
        out
    }

    /// The rule: the first kind in the class's order whose best instance meets the
    /// deadline; the origin only when nothing else does or everything else is down; past
    /// the deadline, whatever is fastest.
    fn choose(
        &self,
        asset: &Asset,
        candidates: &[(PathId, Millis)],
        now: Millis,
    ) -> Option<(PathId, Reason)> {
        let fastest = |filter: &dyn Fn(&PathId) -> bool| {
            candidates
                .iter()
                .filter(|(p, _)| filter(p))
                .min_by_key(|(p, eta)| (*eta, *p))
                .copied()
        };
        // Past the deadline, or with none projected to meet it, the fastest path other
        // than the origin: the origin cannot save a deadline it would miss too, and an
        // overloaded drop must not fall through to it wholesale.
        let not_origin = |p: &PathId| p.kind != PathKind::Origin;
        if now >= asset.deadline {
            return fastest(&not_origin)
                .or_else(|| fastest(&|_| true))
                .map(|(p, _)| (p, Reason::BudgetBlown));
        }
        for kind in &asset.spec.paths {
            if *kind == PathKind::Origin {
                continue;
            }
            if let Some((path, eta)) = fastest(&|p| p.kind == *kind) {
                if eta <= asset.deadline {
                    return Some((path, Reason::MeetsDeadline));
                }
            }
        }
        let others = fastest(&|p| p.kind != PathKind::Origin);
        let origin = fastest(&|p| p.kind == PathKind::Origin);
        match (others, origin) {
            (None, Some((path, _))) => Some((path, Reason::OthersFailed)),
            (Some(_), Some((path, eta))) if eta <= asset.deadline => {
                Some((path, Reason::OnlyOriginMeetsDeadline))
            }
            (Some((path, _)), _) => Some((path, Reason::NoPathMeetsDeadline)),
            (None, None) => None,
        }
    }

    fn assign(&mut self, now: Millis, load: &mut BTreeMap<PathId, (usize, u64)>) {
        let mut order: Vec<usize> = (0..self.assets.len())
            .filter(|a| self.assets[*a].done < self.assets[*a].chunks.len())
            .collect();
        order.sort_by_key(|a| (self.assets[*a].deadline, *a));
        for index in order {
            let mut ahead = 0u64;
            // Paths other than the swarm do not depend on the chunk: whether any is up
            // for this asset is known once, so that while they are all full a bulk
            // asset's pieces no peer holds are passed over without weighing each (the
            // planner runs after every event, and a bulk asset has thousands).
            let others_up = {
                let asset = &self.assets[index];
                self.paths.iter().any(|(p, state)| {
                    p.kind != PathKind::P2p
                        && asset.spec.paths.contains(&p.kind)
                        && state.is_up(now)
                })
            };
            let count = self.assets[index].chunks.len();
            let first = {
                let asset = &self.assets[index];
                let background =
                    asset.deadline.saturating_sub(now) > self.config.background_after_ms;
                if background && asset.spec.piece_length.is_some() {
                    (self.config.spread % count as u64) as usize
                } else {
                    0
                }
            };
            for chunk in (first..count).chain(0..first) {
                // Most of a bulk asset's chunks are done or in flight: the cheapest test
                // first, since the planner runs many times a second.
                if self.assets[index].chunks[chunk] != Chunk::Missing {
                    continue;
                }
                let free = self
                    .paths
                    .keys()
                    .any(|p| load.get(p).map_or(0, |l| l.0) < self.capacity(*p));
                if !free {
                    return;
                }
                // Every path this asset may use is full: its other chunks wait too (and
                // a bulk asset has hundreds, each of which would be weighed in vain).
                let asset = &self.assets[index];
                let usable = self.paths.keys().any(|p| {
                    asset.spec.paths.contains(&p.kind)
                        && load.get(p).map_or(0, |l| l.0) < self.capacity_for(*p, asset, now)
                });
                if !usable {
                    break;
                }
                let asset = &self.assets[index];
                let length = asset.range(chunk).1;
                let swarm_may_take = asset.spec.piece_length.is_some()
                    && asset.swarm_has.get(chunk).copied().unwrap_or(false);
                if !swarm_may_take && !self.has_room_besides_swarm(asset, now, load) {
                    // What `choose` would pick is full: the chunk waits, as below.
                    if others_up {
                        ahead += length;
                    }
                    continue;
                }
                let candidates = self.candidates(asset, chunk, now, load, ahead);
                let Some((path, reason)) = self.choose(asset, &candidates, now) else {
                    continue;
                };
                if load.get(&path).map_or(0, |l| l.0) >= self.capacity_for(path, asset, now) {
                    // Its best path is busy: it waits, and counts for those behind it.
                    ahead += length;
                    continue;
                }
                self.issue(
                    AssetId(index as u32),
                    chunk,
                    path,
                    now,
                    None,
                    reason,
                    load,
                    length,
                );
            }
        }
    }

    /// Whether some path other than the swarm that `asset` may use has a free slot.
    fn has_room_besides_swarm(
        &self,
        asset: &Asset,
        now: Millis,
        load: &BTreeMap<PathId, (usize, u64)>,
    ) -> bool {
        self.paths.keys().any(|p| {
            p.kind != PathKind::P2p
                && asset.spec.paths.contains(&p.kind)
                && load.get(p).map_or(0, |l| l.0) < self.capacity_for(*p, asset, now)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn issue(
        &mut self,
        asset: AssetId,
        chunk: usize,
        path: PathId,
        now: Millis,
        hedge_of: Option<FetchId>,
        reason: Reason,
        load: &mut BTreeMap<PathId, (usize, u64)>,
        length: u64,
    ) {
        let id = FetchId(self.next_fetch);
        self.next_fetch += 1;
        let a = &mut self.assets[asset.0 as usize];
        let (offset, _) = a.range(chunk);
        let deadline = a.deadline;
        match &mut a.chunks[chunk] {
            Chunk::InFlight(ids) => ids.push(id),
            other => *other = Chunk::InFlight(vec![id]),
        }
        let e = load.entry(path).or_default();
        e.0 += 1;
        e.1 += length;
        self.fetches.insert(
            id,
            Fetch {
                asset,
                chunk,
                path,
                length,
                received: 0,
                started: now,
                last_progress: now,
                deadline,
                hedge_of,
                hedged: false,
                urgent_sent: false,
            },
        );
        self.pending.push_back(Decision::Fetch {
            fetch: id,
            asset,
            offset,
            length,
            path,
            deadline,
            hedge_of,
            reason,
        });
    }
}
