//! What the peer engine reports: pieces verified (whichever fetch brought them is done),
//! the swarm's availability for the planner, hash failures and bans for the report.

use swarmdrop_peer::SwarmEvent;
use swarmdrop_plan::PathKind;

use super::Run;

impl Run<'_> {
    pub(super) fn on_swarm(&mut self, event: SwarmEvent) {
        self.eventful = true;
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
                // Every fetch that was bringing this piece is done: the handed-over HTTP
                // range, and any ask of peers. (The handed range may have been cancelled
                // and the piece asked of peers again; the engine, which now holds it, will
                // not fetch it a second time, so that ask must end here.)
                let handed = self.handed.remove(&(index, piece));
                let piece_length = self.assets[index]
                    .pieces
                    .as_ref()
                    .map_or(1, |(p, _)| u64::from(*p));
                let done: Vec<_> = self
                    .flights
                    .iter()
                    .filter(|(id, f)| {
                        f.asset.0 as usize == index
                            && f.offset / piece_length == u64::from(piece)
                            && (Some(**id) == handed || f.path.kind == PathKind::P2p)
                    })
                    .map(|(id, _)| *id)
                    .collect();
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
