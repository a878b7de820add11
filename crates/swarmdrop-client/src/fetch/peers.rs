//! What the peer engine reports: pieces verified (whichever fetch brought them is done),
//! the swarm's availability for the planner, hash failures and bans for the report.

use swarmdrop_peer::SwarmEvent;
use swarmdrop_plan::PathKind;

use super::Run;

impl Run<'_> {
    pub(super) fn on_swarm(&mut self, event: SwarmEvent) {
        let Some(engine) = self.engine.as_ref() else {
            return;
        };
        match event {
            SwarmEvent::Available { info_hash, pieces } => {
                if let Some(id) = engine.by_hash.get(&info_hash).and_then(|i| self.ids[*i]) {
                    self.planner.set_swarm_pieces(id, &pieces);
                }
            }
            SwarmEvent::Verified {
                info_hash,
                index: piece,
            } => {
                let Some(index) = engine.by_hash.get(&info_hash).copied() else {
                    return;
                };
                if let Some(slot) = self.held.entry(index).or_default().get_mut(piece as usize) {
                    *slot = true;
                }
                // Whichever fetch was bringing this piece is done: the handed-over HTTP
                // range, or the ask of peers.
                let fetch = self.handed.remove(&(index, piece)).or_else(|| {
                    let piece_length = self.assets[index]
                        .pieces
                        .as_ref()
                        .map_or(1, |(p, _)| u64::from(*p));
                    self.flights
                        .iter()
                        .find(|(_, f)| {
                            f.asset.0 as usize == index
                                && f.path.kind == PathKind::P2p
                                && f.offset / piece_length == u64::from(piece)
                        })
                        .map(|(id, _)| *id)
                });
                if let Some(fetch) = fetch {
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
