//! The hybrid client's scheduler as a sans-IO core: the verified targets, the live
//! estimates of every path instance and `now` go in; decisions come out — fetch this range
//! of this asset over this path by this deadline, hedge it on another, cancel the loser,
//! mark pieces urgent for the peer-to-peer picker. No sockets and no clock: the client
//! (`swarmdrop-client`) drives it, and the scripted scenarios in this crate's tests drive
//! it with a fake clock. The same inputs always give the same decisions, and every
//! decision carries its reason so that it can become an event. See docs/design/0007-plan.md.

mod decision;
mod estimate;
mod planner;

pub use decision::{Decision, Reason};
pub use estimate::{Estimate, PathHealth};
pub use planner::{AssetId, AssetSpec, FetchId, PlanConfig, Planner, PlannerError};

use serde::Serialize;

/// Milliseconds on the caller's clock.
pub type Millis = u64;

/// The kinds of path a class may allow, in the policy's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// BitTorrent peers (the swarm as a whole).
    P2p,
    /// One HTTP edge cache.
    Edge,
    /// The origin.
    Origin,
}

impl PathKind {
    /// The policy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::P2p => "p2p",
            PathKind::Edge => "edge",
            PathKind::Origin => "origin",
        }
    }

    /// Parses a policy path name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "p2p" => Some(PathKind::P2p),
            "edge" => Some(PathKind::Edge),
            "origin" => Some(PathKind::Origin),
            _ => None,
        }
    }
}

/// One path instance: the swarm, the origin, or edge number `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PathId {
    /// What it is.
    pub kind: PathKind,
    /// Which one (edges are numbered from 0; the swarm and the origin are 0).
    pub index: u16,
}

impl PathId {
    /// The swarm.
    pub const P2P: PathId = PathId {
        kind: PathKind::P2p,
        index: 0,
    };
    /// The origin.
    pub const ORIGIN: PathId = PathId {
        kind: PathKind::Origin,
        index: 0,
    };

    /// Edge number `index`.
    pub fn edge(index: u16) -> Self {
        PathId {
            kind: PathKind::Edge,
            index,
        }
    }
}

impl std::fmt::Display for PathId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            PathKind::Edge => write!(f, "edge{}", self.index),
            kind => f.write_str(kind.as_str()),
        }
    }
}

/// The RFC 9218 urgency to ask an HTTP path for with a range due at `deadline`, asked at
/// `now`: the time left, bucketed by doubling, so that an edge pacing its upload (most
/// urgent first) sends in about earliest-deadline order. 0 with half a second or less to
/// spare (a checkout page, a late keyframe), 1 within two seconds, 2 within five, 3 (the
/// default, what a plain browser gets) within ten, 4 within twenty, 5 within forty, 6
/// within eighty and 7 beyond. A keyframe fetched ahead of its time at 4 or 5 does not
/// wait behind the bulk ranges of a thousand viewers due in a minute.
pub fn urgency(deadline: Millis, now: Millis) -> u8 {
    match deadline.saturating_sub(now) {
        0..=500 => 0,
        501..=2_000 => 1,
        2_001..=5_000 => 2,
        5_001..=10_000 => 3,
        10_001..=20_000 => 4,
        20_001..=40_000 => 5,
        40_001..=80_000 => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests;
