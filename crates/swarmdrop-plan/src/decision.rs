//! What the planner decides, and why.

use serde::Serialize;

use crate::planner::{AssetId, FetchId};
use crate::{Millis, PathId};

/// Why a decision was taken; each becomes the `reason` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The first path in the class's order that is projected to meet the deadline.
    MeetsDeadline,
    /// No allowed path other than the origin is projected to meet the deadline.
    OnlyOriginMeetsDeadline,
    /// Every allowed path other than the origin is down.
    OthersFailed,
    /// No allowed path is projected to meet the deadline: the fastest one is used.
    NoPathMeetsDeadline,
    /// The deadline has already passed: the fastest path is used.
    BudgetBlown,
    /// A fetch is projected to miss its deadline: the same range on another path.
    Hedge,
    /// Every chunk of the asset is asked for and some wait on the swarm: an idle path
    /// other than the origin takes a copy of the oldest (BitTorrent's end game).
    Endgame,
    /// An edge had a free slot while the swarm carries the asset: it takes a piece the
    /// swarm is least likely to bring soon, as a web seed would (BEP 19).
    SpareCapacity,
    /// A hedged range arrived on the other path first.
    LostRace,
    /// The fetch's path failed or stalled; its range goes back to be fetched again.
    PathFailed,
    /// A fetch with time to spare made no progress for the stall time: its range goes
    /// back to be fetched again, but its path is not counted as failed (an edge still
    /// filling a large object from its origin is slow for that object, not down for
    /// every other one).
    Stalled,
    /// The fetch's path sent bytes that failed their signed digest and is banned for
    /// the rest of the run; its range goes back to be fetched again.
    PathBanned,
    /// A piece the swarm holds is at risk: the peer picker should hurry it.
    AtRisk,
}

impl Reason {
    /// Every reason, in declaration order (what a report counting decisions may name).
    pub const ALL: [Reason; 13] = [
        Reason::MeetsDeadline,
        Reason::OnlyOriginMeetsDeadline,
        Reason::OthersFailed,
        Reason::NoPathMeetsDeadline,
        Reason::BudgetBlown,
        Reason::Hedge,
        Reason::Endgame,
        Reason::SpareCapacity,
        Reason::LostRace,
        Reason::PathFailed,
        Reason::Stalled,
        Reason::PathBanned,
        Reason::AtRisk,
    ];

    /// The reason's name, as events and reports spell it (`meets_deadline`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MeetsDeadline => "meets_deadline",
            Reason::OnlyOriginMeetsDeadline => "only_origin_meets_deadline",
            Reason::OthersFailed => "others_failed",
            Reason::NoPathMeetsDeadline => "no_path_meets_deadline",
            Reason::BudgetBlown => "budget_blown",
            Reason::Hedge => "hedge",
            Reason::Endgame => "endgame",
            Reason::SpareCapacity => "spare_capacity",
            Reason::LostRace => "lost_race",
            Reason::PathFailed => "path_failed",
            Reason::Stalled => "stalled",
            Reason::PathBanned => "path_banned",
            Reason::AtRisk => "at_risk",
        }
    }
}

/// One decision for the client to carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Fetch `length` bytes at `offset` of `asset` over `path` by `deadline`. For the
    /// swarm, the range is whole pieces (`first_piece` onwards) and the deadline goes to
    /// the peer picker.
    Fetch {
        /// Names this fetch in later calls and decisions.
        fetch: FetchId,
        /// The asset.
        asset: AssetId,
        /// Byte offset.
        offset: u64,
        /// Bytes.
        length: u64,
        /// The path instance.
        path: PathId,
        /// When it must be done, on the caller's clock.
        deadline: Millis,
        /// Set when this duplicates a slow fetch on another path.
        hedge_of: Option<FetchId>,
        /// Why this path.
        reason: Reason,
    },
    /// Stop a fetch (its bytes are no longer wanted).
    Cancel {
        /// The fetch.
        fetch: FetchId,
        /// Why.
        reason: Reason,
    },
    /// Tell the peer picker that these pieces are urgent.
    Urgent {
        /// The asset.
        asset: AssetId,
        /// First piece.
        first_piece: u32,
        /// Pieces from `first_piece`.
        pieces: u32,
        /// When they must be done.
        deadline: Millis,
        /// Why.
        reason: Reason,
    },
}

impl Decision {
    /// The decision's reason.
    pub fn reason(&self) -> Reason {
        match self {
            Decision::Fetch { reason, .. }
            | Decision::Cancel { reason, .. }
            | Decision::Urgent { reason, .. } => *reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn every_reason_is_listed_once_and_named_as_serde_names_it() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            let serde_name = serde_json::to_value(reason).unwrap();
            assert_eq!(serde_name, reason.as_str(), "{reason:?}");
            assert!(!Reason::ALL[..i].contains(reason), "{reason:?} twice");
        }
        // A new variant must join ALL: this match stops compiling until it is named.
        let listed = |r: Reason| match r {
            Reason::MeetsDeadline
            | Reason::OnlyOriginMeetsDeadline
            | Reason::OthersFailed
            | Reason::NoPathMeetsDeadline
            | Reason::BudgetBlown
            | Reason::Hedge
            | Reason::Endgame
            | Reason::SpareCapacity
            | Reason::LostRace
            | Reason::PathFailed
            | Reason::Stalled
            | Reason::PathBanned
            | Reason::AtRisk => Reason::ALL.contains(&r),
        };
        assert!(Reason::ALL.iter().all(|r| listed(*r)));
    }
}
