//! Spare edges: for a class whose policy sets `spare_edges`, an edge with a free slot is a
//! permanently unchoked seed (BEP 19's web seed) for the pieces the swarm carries. Without
//! it an edge takes only what the swarm cannot bring by the deadline, and with a budget of
//! a minute that is almost nothing: the edges idle while every viewer waits on peers.
//!
//! Each edge takes at most one such piece per asset at a time (two, below), and only
//! while it would bring that piece sooner than the swarm can work through what it has
//! already been asked for, so a slow or loaded edge loses its share and a fast swarm keeps
//! its own. The piece is the farthest from where this viewer's swarm work starts
//! (`spread`): viewers start at different places, so what one fetches from an edge is
//! what its neighbours lack, and its bytes add to the swarm's trade rather than replace
//! it.
//!
//! A viewer ahead of the peers still downloading (more of the asset than their mean)
//! takes no spare pieces while there are `MIN_LEECHERS_TO_YIELD` of them or more: the
//! edges are shared by every viewer, and a drop is done when its last viewer is.
//! Tit-for-tat lets the first viewers in trade among themselves fastest, so without this
//! they finished in half the time of the last, who then ran alone at the end on what the
//! swarm and the edges could still give them. A viewer behind them takes two pieces at a
//! time from each edge, so that the edges are as busy as when every viewer took one
//! (with one, a tenth of their bulk rate went unused). With a few leechers the edges are
//! hardly theirs to share, and yielding in turn would only halve what each takes from
//! them.

use std::collections::BTreeMap;

use super::{Asset, Chunk, Planner};
use crate::decision::Reason;
use crate::{AssetId, Millis, PathId, PathKind};

/// Fewest other leechers for a viewer ahead of them to leave the spare edges to them.
const MIN_LEECHERS_TO_YIELD: usize = 8;

/// Spare pieces of one asset each edge takes at a time: one, or two for a viewer behind
/// its fellow leechers while those ahead yield (so the edges stay as busy as before).
fn spare_per_edge(asset: &Asset) -> Option<usize> {
    let own = asset.done as f64 / asset.chunks.len().max(1) as f64;
    match asset.leechers_progress {
        Some((mean, n)) if n >= MIN_LEECHERS_TO_YIELD => (own <= mean).then_some(2),
        _ => Some(1),
    }
}

impl Planner {
    /// The peer engine's view: how far the connected peers still downloading `asset`
    /// have got (the mean share of its pieces each holds) and how many they are; `None`:
    /// no such peer.
    pub fn set_leechers_progress(&mut self, asset: AssetId, leechers: Option<(f64, usize)>) {
        if let Some(a) = self.assets.get_mut(asset.0 as usize) {
            a.leechers_progress = leechers.filter(|(mean, _)| mean.is_finite());
        }
    }

    pub(super) fn fill_spare(&mut self, now: Millis, load: &mut BTreeMap<PathId, (usize, u64)>) {
        let mut order: Vec<usize> = (0..self.assets.len())
            .filter(|a| {
                let asset = &self.assets[*a];
                asset.spec.spare_edges
                    && asset.done < asset.chunks.len()
                    && asset.spec.piece_length.is_some()
                    && asset.spec.paths.first() == Some(&PathKind::P2p)
                    && now < asset.deadline
                    && spare_per_edge(asset).is_some()
            })
            .collect();
        order.sort_by_key(|a| (self.assets[*a].deadline, *a));
        for index in order {
            while let Some((path, chunk)) = self.spare_pick(index, now, load) {
                let length = self.assets[index].range(chunk).1;
                self.issue(
                    AssetId(index as u32),
                    chunk,
                    path,
                    now,
                    None,
                    Reason::SpareCapacity,
                    load,
                    length,
                );
            }
        }
    }

    /// The edge that would bring a piece of asset `index` soonest, among those with a
    /// free slot, none of this asset's pieces in flight, and an estimate that beats the
    /// swarm's queue; and the piece.
    fn spare_pick(
        &self,
        index: usize,
        now: Millis,
        load: &BTreeMap<PathId, (usize, u64)>,
    ) -> Option<(PathId, usize)> {
        let asset = &self.assets[index];
        // When the swarm would be through what it has been asked for (never, if this
        // viewer has no swarm path up).
        let swarm_done = self
            .paths
            .iter()
            .filter(|(p, state)| p.kind == PathKind::P2p && state.is_up(now))
            .map(|(p, state)| state.eta(now, load.get(p).map_or(0, |l| l.1), 0))
            .min()
            .unwrap_or(Millis::MAX);
        let per_edge = spare_per_edge(asset)?;
        let mut carrying: BTreeMap<PathId, usize> = BTreeMap::new();
        for f in self
            .fetches
            .values()
            .filter(|f| f.asset.0 as usize == index)
        {
            *carrying.entry(f.path).or_default() += 1;
        }
        let (path, _) = self
            .paths
            .iter()
            .filter(|(p, state)| {
                p.kind == PathKind::Edge
                    && state.is_up(now)
                    && carrying.get(*p).copied().unwrap_or(0) < per_edge
                    && load.get(*p).map_or(0, |l| l.0) < self.capacity_for(**p, asset, now)
            })
            .map(|(p, state)| {
                let queued = load.get(p).map_or(0, |l| l.1);
                (*p, state.eta(now, queued, asset.chunk_len))
            })
            .filter(|(_, eta)| *eta < swarm_done)
            .min_by_key(|(p, eta)| (*eta, *p))?;
        let count = asset.chunks.len();
        let start = (self.config.spread % count as u64) as usize;
        let chunk = (1..=count)
            .map(|k| (start + count - k) % count)
            .find(|c| asset.chunks[*c] == Chunk::Missing)?;
        Some((path, chunk))
    }
}
