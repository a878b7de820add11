//! Late fetches: those silent too long fail, and those projected past their deadline are
//! hedged on another path (or, for swarm pieces, first marked urgent for the picker).

use std::collections::BTreeMap;

use super::{Chunk, Fetch, Planner};
use crate::decision::{Decision, Reason};
use crate::{FetchId, Millis, PathId, PathKind};

impl Planner {
    pub(super) fn fail_stalled(&mut self, now: Millis) {
        let stalled: Vec<FetchId> = self
            .fetches
            .iter()
            // The swarm reports a piece only once it verifies, and a slow piece there is
            // no broken server: it is hedged when late, never failed for silence.
            .filter(|(_, f)| f.path.kind != PathKind::P2p)
            // Every byte is in and the client is writing it (the peer engine may take a
            // while): that is not a silent server.
            .filter(|(_, f)| f.received < f.length)
            .filter(|(_, f)| now.saturating_sub(f.last_progress) > self.config.stall_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            let Some(f) = self.fetches.get(&id) else {
                continue;
            };
            if f.deadline.saturating_sub(now) > self.config.background_after_ms {
                if let Some(f) = self.fetches.remove(&id) {
                    self.forget(id, &f);
                    self.pending.push_back(Decision::Cancel {
                        fetch: id,
                        reason: Reason::Stalled,
                    });
                }
                continue;
            }
            self.pending.push_back(Decision::Cancel {
                fetch: id,
                reason: Reason::PathFailed,
            });
            let _ = self.fail(id, now);
        }
    }

    /// When an unhedged fetch will finish at the rate it has shown (or its path's).
    fn projected_finish(&self, f: &Fetch, now: Millis) -> Millis {
        // Silent for several stall times (an ask of peers none of whom sends the piece):
        // projected never to finish, so it is hedged whatever its path's record.
        if now.saturating_sub(f.last_progress) > self.config.stall_ms.saturating_mul(4) {
            return Millis::MAX;
        }
        let remaining = (f.length - f.received) as f64;
        let elapsed = now.saturating_sub(f.started).max(1) as f64;
        let rate = if f.received > 0 {
            f.received as f64 / elapsed
        } else {
            self.paths
                .get(&f.path)
                .map_or(1e-3, |p| p.estimate.bytes_per_ms)
                .max(1e-3)
                / 2.0
        };
        now.saturating_add((remaining / rate.max(1e-6)).min(1e12) as Millis)
    }

    /// BitTorrent's end game over HTTP: once every chunk of an asset is asked for, the
    /// oldest pieces still waiting on the swarm are copied to a path other than the
    /// origin that has a free slot; whichever copy lands first wins. The last pieces of
    /// a bulk asset otherwise wait on whichever slow peer was asked while the edges idle.
    pub(super) fn endgame(&mut self, now: Millis, load: &mut BTreeMap<PathId, (usize, u64)>) {
        for index in 0..self.assets.len() {
            let asset = &self.assets[index];
            if asset.done == asset.chunks.len() || asset.chunks.contains(&Chunk::Missing) {
                continue;
            }
            let mut waiting: Vec<(Millis, FetchId)> = self
                .fetches
                .iter()
                .filter(|(_, f)| {
                    f.asset.0 as usize == index
                        && f.path.kind == PathKind::P2p
                        && f.hedge_of.is_none()
                        && !f.hedged
                        && now.saturating_sub(f.started) >= self.config.hedge_after_ms
                })
                .map(|(id, f)| (f.started, *id))
                .collect();
            waiting.sort_unstable();
            for (_, id) in waiting {
                let Some(f) = self.fetches.get(&id).cloned() else {
                    continue;
                };
                let asset = &self.assets[index];
                let idle = self
                    .candidates(asset, f.chunk, now, load, 0)
                    .into_iter()
                    .filter(|(path, _)| {
                        path.kind != PathKind::Origin
                            && path.kind != PathKind::P2p
                            && load.get(path).map_or(0, |l| l.0)
                                < self.capacity_for(*path, asset, now)
                    })
                    .min_by_key(|(path, eta)| (*eta, *path));
                let Some((path, _)) = idle else {
                    break;
                };
                self.copy(id, &f, path, Reason::Endgame, now, load);
            }
        }
    }

    /// Fetches `f`'s range again on `path` as a copy of `original`, whichever lands first
    /// winning.
    fn copy(
        &mut self,
        original: FetchId,
        f: &Fetch,
        path: PathId,
        reason: Reason,
        now: Millis,
        load: &mut BTreeMap<PathId, (usize, u64)>,
    ) {
        self.issue(
            f.asset,
            f.chunk,
            path,
            now,
            Some(original),
            reason,
            load,
            f.length,
        );
        if let Some(m) = self.fetches.get_mut(&original) {
            m.hedged = true;
        }
    }

    pub(super) fn hedge_late(&mut self, now: Millis, load: &mut BTreeMap<PathId, (usize, u64)>) {
        let late: Vec<(FetchId, Millis)> = self
            .fetches
            .iter()
            .filter(|(_, f)| {
                f.hedge_of.is_none()
                    && !f.hedged
                    && now.saturating_sub(f.started) >= self.config.hedge_after_ms
            })
            .filter_map(|(id, f)| {
                let finish = self.projected_finish(f, now);
                (finish > f.deadline.max(now)).then_some((*id, finish))
            })
            .collect();
        for (id, finish) in late {
            let Some(f) = self.fetches.get(&id).cloned() else {
                continue;
            };
            if f.path.kind == PathKind::P2p && !f.urgent_sent {
                let piece = f.chunk as u32;
                self.pending.push_back(Decision::Urgent {
                    asset: f.asset,
                    first_piece: piece,
                    pieces: 1,
                    deadline: f.deadline,
                    reason: Reason::AtRisk,
                });
                if let Some(m) = self.fetches.get_mut(&id) {
                    m.urgent_sent = true;
                }
            }
            let asset = &self.assets[f.asset.0 as usize];
            // The other path must beat this fetch's own projection clearly.
            let open: Vec<(PathId, Millis)> = self
                .candidates(asset, f.chunk, now, load, 0)
                .into_iter()
                .filter(|(path, eta)| *path != f.path && *eta + 50 < finish)
                .filter(|(path, _)| {
                    load.get(path).map_or(0, |l| l.0) < self.capacity_for(*path, asset, now)
                })
                .collect();
            // The origin takes a hedge only if no other path can, only to save the
            // deadline, and never for background work (due more than
            // `background_after_ms` off): that waits for an edge's slot.
            let background = f.deadline.saturating_sub(now) > self.config.background_after_ms;
            let better = open
                .iter()
                .filter(|(path, _)| path.kind != PathKind::Origin)
                .min_by_key(|(path, eta)| (*eta, *path))
                .or_else(|| {
                    open.iter()
                        .filter(|(_, eta)| *eta <= f.deadline && !background)
                        .min_by_key(|(path, eta)| (*eta, *path))
                })
                .copied();
            if let Some((path, _)) = better {
                self.copy(id, &f, path, Reason::Hedge, now, load);
            }
        }
    }
}
