//! What the peer engine reports: pieces verified (whichever fetch brought them is done),
//! the swarm's availability for the planner, hash failures and bans for the report.

use std::collections::HashMap;

use swarmdrop_peer::SwarmEvent;
use swarmdrop_plan::{AssetId, FetchId, PathKind, Planner};

use super::{InFlight, Run};

/// What the engine last said of one torrent's swarm.
#[derive(Debug, Default)]
struct SwarmView {
    pieces: Option<Vec<bool>>,
    leechers: Option<(f64, usize)>,
}

/// What the engine said of each torrent's swarm before its asset was released, by asset
/// index. Kept until the release, because the engine says it again only when it
/// changes; once released, an asset's news goes straight to the planner.
#[derive(Debug, Default)]
pub(super) struct SwarmViews(HashMap<usize, SwarmView>);

impl SwarmViews {
    fn heard_pieces(&mut self, index: usize, pieces: Vec<bool>) {
        self.0.entry(index).or_default().pieces = Some(pieces);
    }

    fn heard_leechers(&mut self, index: usize, leechers: Option<(f64, usize)>) {
        self.0.entry(index).or_default().leechers = leechers;
    }

    /// Tells `planner` what was heard of asset `index`'s swarm (its id there: `id`), now
    /// that it is released, and forgets it.
    pub(super) fn tell(&mut self, index: usize, id: AssetId, planner: &mut Planner) {
        let Some(view) = self.0.remove(&index) else {
            return;
        };
        if let Some(pieces) = &view.pieces {
            planner.set_swarm_pieces(id, pieces);
        }
        planner.set_leechers_progress(id, view.leechers);
    }
}

impl Run<'_> {
    /// The engine's piece number for `flight`, when its asset is a torrent the engine runs.
    fn piece_of(&self, flight: &InFlight) -> Option<u32> {
        let (piece_length, _) = self.assets[flight.asset.0 as usize].pieces.as_ref()?;
        self.engine_handle(flight.asset)?;
        Some((flight.offset / u64::from(*piece_length)) as u32)
    }

    /// `copy` fetches over HTTP a piece peers were asked for (`original`): unless peers
    /// have sent half of it already, the engine cancels its requests and leaves it to
    /// the copy, so that its bytes come once.
    pub(super) fn copy_started(&self, copy: FetchId, original: FetchId) {
        let (Some(copy), Some(original)) = (self.flights.get(&copy), self.flights.get(&original))
        else {
            return;
        };
        if copy.path.kind == PathKind::P2p || original.path.kind != PathKind::P2p {
            return;
        }
        if let (Some(piece), Some(handle)) = (self.piece_of(copy), self.engine_handle(copy.asset)) {
            handle.fetching_elsewhere(piece);
        }
    }

    /// An HTTP fetch ended without its bytes: if peers still owe its piece (they were
    /// told to leave it to this fetch), they are asked again.
    pub(super) fn http_fetch_ended(&self, flight: &InFlight) {
        if flight.path.kind == PathKind::P2p {
            return;
        }
        let Some(piece) = self.piece_of(flight) else {
            return;
        };
        let still_asked = self.flights.values().any(|f| {
            f.asset == flight.asset
                && f.path.kind == PathKind::P2p
                && self.piece_of(f) == Some(piece)
        });
        if let (true, Some(handle)) = (still_asked, self.engine_handle(flight.asset)) {
            handle.want(piece, self.planner.deadline(flight.asset));
        }
    }

    pub(super) fn on_swarm(&mut self, event: SwarmEvent) {
        self.eventful = true;
        let Some(engine) = self.engine.as_ref() else {
            return;
        };
        match event {
            SwarmEvent::Available { info_hash, pieces } => {
                if let Some(index) = engine.by_hash.get(&info_hash).copied() {
                    match self.ids[index] {
                        Some(id) => self.planner.set_swarm_pieces(id, &pieces),
                        None => self.swarm_views.heard_pieces(index, pieces),
                    }
                }
            }
            SwarmEvent::LeechersProgress {
                info_hash,
                mean,
                leechers,
            } => {
                if let Some(index) = engine.by_hash.get(&info_hash).copied() {
                    let leechers = mean.map(|m| (m, leechers as usize));
                    match self.ids[index] {
                        Some(id) => self.planner.set_leechers_progress(id, leechers),
                        None => self.swarm_views.heard_leechers(index, leechers),
                    }
                }
            }
            SwarmEvent::Verified {
                info_hash,
                index: piece,
            } => {
                let Some(index) = engine.by_hash.get(&info_hash).copied() else {
                    return;
                };
                self.held.mark(index, piece);
                // Every fetch that was bringing this piece is done: the handed-over HTTP
                // range, and any ask of peers. (The handed range may have been cancelled
                // and the piece asked of peers again; the engine, which now holds it, will
                // not fetch it a second time, so that ask must end here.)
                let handed = self.handed.remove(&(index, piece));
                let piece_length = self.assets[index]
                    .pieces
                    .as_ref()
                    .map_or(1, |(p, _)| u64::from(*p));
                // The handed range brought these bytes: it completes first, and the asks
                // of peers after it lost the race (the first to complete is the one
                // counted).
                let mut done: Vec<_> = self
                    .flights
                    .iter()
                    .filter(|(id, f)| {
                        f.asset.0 as usize == index
                            && f.offset / piece_length == u64::from(piece)
                            && (Some(**id) == handed || f.path.kind == PathKind::P2p)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                done.sort_unstable_by_key(|id| (Some(*id) != handed, *id));
                for fetch in done {
                    if let Some(flight) = self.flights.remove(&fetch) {
                        if flight.path.kind == PathKind::P2p {
                            self.planner.progress(fetch, flight.length, self.now());
                        }
                        self.verified(fetch, &flight);
                    }
                }
            }
            SwarmEvent::HashFailed { .. } => self.recorder.refused("p2p"),
            SwarmEvent::Banned { .. } => self.recorder.banned_peer(),
        }
    }
}

/// The pieces the peer engine holds, per asset, whichever path brought them. A piece it
/// verified while no fetch of ours was bringing it (peers' late blocks, or between a
/// cancel and the next fetch) must count too: the engine ignores a copy handed over of a
/// piece it holds and will not fetch it again, so a fetch waiting on it would never end.
#[derive(Debug, Default)]
pub(super) struct Held(HashMap<usize, Vec<bool>>);

impl Held {
    /// The engine verified `piece` of asset `asset`.
    pub(super) fn mark(&mut self, asset: usize, piece: u32) {
        let slots = self.0.entry(asset).or_default();
        let piece = piece as usize;
        if slots.len() <= piece {
            slots.resize(piece + 1, false);
        }
        slots[piece] = true;
    }

    /// Whether the engine holds `piece` of asset `asset`.
    pub(super) fn has(&self, asset: usize, piece: u32) -> bool {
        self.0
            .get(&asset)
            .and_then(|slots| slots.get(piece as usize))
            .copied()
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::{Held, SwarmViews};
    use swarmdrop_plan::{AssetSpec, Decision, Estimate, PathId, PathKind, PlanConfig, Planner};

    #[test]
    fn what_the_engine_said_before_an_asset_was_released_reaches_the_planner() {
        let mut planner = Planner::new(PlanConfig::default());
        planner.add_path(
            PathId::P2P,
            Estimate {
                rtt_ms: 10.0,
                bytes_per_ms: 12_500.0,
            },
        );
        // The engine reports its swarm (every piece held by some peer) before the asset
        // is released: the planner has nothing to tell yet.
        let mut views = SwarmViews::default();
        views.heard_pieces(0, vec![true; 4]);
        views.heard_leechers(0, Some((0.5, 10)));
        let spec = AssetSpec {
            name: "bulk/patch.bin".into(),
            class: "bulk".into(),
            length: 4 << 18,
            piece_length: Some(1 << 18),
            budget_ms: 60_000,
            paths: vec![PathKind::P2p],
            spare_edges: false,
        };
        let asking_peers = |planner: &mut Planner, now| {
            planner
                .poll(now)
                .iter()
                .filter(|d| matches!(d, Decision::Fetch { path, .. } if *path == PathId::P2P))
                .count()
        };
        let id = planner.add_asset(spec, 0).unwrap();
        assert_eq!(
            asking_peers(&mut planner, 0),
            0,
            "no peer known to hold a piece"
        );
        // Released, it is told what was heard; the engine would not say it again.
        views.tell(0, id, &mut planner);
        assert_eq!(asking_peers(&mut planner, 1), 4);
    }

    #[test]
    fn a_verified_piece_is_held_whatever_came_before() {
        let mut held = Held::default();
        assert!(!held.has(0, 129));
        // The first piece the engine reports for an asset, with nothing recorded yet:
        // a lookup into an empty list once dropped it, and a --chaos run hung on it.
        held.mark(0, 129);
        assert!(held.has(0, 129));
        assert!(!held.has(0, 128) && !held.has(0, 130) && !held.has(1, 129));
        held.mark(0, 3);
        assert!(held.has(0, 3) && held.has(0, 129));
    }
}
