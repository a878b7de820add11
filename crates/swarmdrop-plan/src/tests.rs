//! Scripted scenarios with a fake clock: emulated paths (rate, RTT, failures) carry out the
//! planner's decisions in 10 ms steps, sharing each path's rate among its fetches.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

mod spare;

const STEP: Millis = 10;

/// One emulated path: bytes per ms as a function of time, an RTT, and a time from which
/// every fetch on it fails.
#[derive(Clone)]
struct SimPath {
    rate: fn(Millis) -> f64,
    rtt: Millis,
    fails_from: Option<Millis>,
}

struct Active {
    path: PathId,
    remaining: u64,
    first_byte: Millis,
    range: (AssetId, u64),
}

#[derive(Default)]
struct Outcome {
    finished: BTreeMap<AssetId, Millis>,
    bytes_by_path: BTreeMap<PathId, u64>,
    /// Ranges that arrived from a liar and were refused.
    refused_by_path: BTreeMap<PathId, u64>,
    log: Vec<String>,
    decisions: Vec<Decision>,
    /// Fetches of a range already in flight that were not hedges.
    duplicates: usize,
}

struct Sim {
    planner: Planner,
    paths: BTreeMap<PathId, SimPath>,
    active: BTreeMap<FetchId, Active>,
    /// Paths whose bytes fail their digest: the client bans them on arrival.
    liars: Vec<PathId>,
}

impl Sim {
    fn new(paths: &[(PathId, SimPath)]) -> Self {
        let mut planner = Planner::new(PlanConfig::default());
        for (id, p) in paths {
            // Every prior is the client's optimistic guess (100 Mbit/s): a path is
            // assumed able until it shows otherwise; the planner must learn the rest.
            planner.add_path(
                *id,
                Estimate {
                    rtt_ms: p.rtt as f64,
                    bytes_per_ms: 12_500.0,
                },
            );
        }
        Sim {
            planner,
            paths: paths.iter().cloned().collect(),
            active: BTreeMap::new(),
            liars: Vec::new(),
        }
    }

    fn run(&mut self, until: Millis) -> Outcome {
        let out = self.run_from(0, until + 1);
        if std::env::var_os("PLAN_DEBUG").is_some() {
            eprintln!(
                "bytes {:?} finished {:?} reasons {:?}",
                out.bytes_by_path,
                out.finished.values().max(),
                out.decisions
                    .iter()
                    .map(|d| format!("{:?}", d.reason()))
                    .fold(BTreeMap::<String, usize>::new(), |mut m, r| {
                        *m.entry(r).or_default() += 1;
                        m
                    })
            );
        }
        out
    }

    fn advance(&mut self, now: Millis, out: &mut Outcome) {
        let mut per_path: BTreeMap<PathId, usize> = BTreeMap::new();
        for a in self.active.values().filter(|a| a.first_byte <= now) {
            *per_path.entry(a.path).or_default() += 1;
        }
        let ids: Vec<FetchId> = self.active.keys().copied().collect();
        for id in ids {
            let a = &self.active[&id];
            let path = &self.paths[&a.path];
            if a.first_byte > now {
                continue;
            }
            if path.fails_from.is_some_and(|t| now >= t) {
                self.active.remove(&id);
                // It may already have been cancelled with its path (the client sees the
                // same race): the planner says so and nothing changes.
                let _ = self.planner.fail(id, now);
                continue;
            }
            let share = (path.rate)(now) * STEP as f64 / per_path[&a.path] as f64;
            let bytes = (share as u64).min(a.remaining);
            let path_id = a.path;
            *out.bytes_by_path.entry(path_id).or_default() += bytes;
            self.planner.progress(id, bytes, now);
            let a = self.active.get_mut(&id).unwrap();
            a.remaining -= bytes;
            if a.remaining == 0 {
                self.active.remove(&id);
                if self.liars.contains(&path_id) {
                    *out.refused_by_path.entry(path_id).or_default() += 1;
                    let _ = self.planner.ban(id);
                } else {
                    let _ = self.planner.complete(id, now);
                }
            }
        }
    }
}

fn spec(
    name: &str,
    length: u64,
    budget_ms: Millis,
    paths: &[PathKind],
    piece: Option<u32>,
) -> AssetSpec {
    AssetSpec {
        name: name.into(),
        class: name.split('/').next().unwrap_or(name).into(),
        length,
        piece_length: piece,
        budget_ms,
        paths: paths.to_vec(),
        spare_edges: false,
    }
}

use PathKind::{Edge, Origin, P2p};

/// A 200 KiB keyframe of the example drop's class (edge, then peers, then origin).
fn add_keyframe(planner: &mut Planner, name: &str, budget_ms: Millis, at: Millis) -> AssetId {
    planner
        .add_asset(
            spec(name, 200 << 10, budget_ms, &[Edge, P2p, Origin], None),
            at,
        )
        .unwrap()
}

/// A drop like the example: a checkout page, keyframes, one bulk asset with a torrent.
fn add_drop(
    planner: &mut Planner,
    keyframes: usize,
    swarm_has_bulk: bool,
) -> (AssetId, Vec<AssetId>, AssetId) {
    let checkout = planner
        .add_asset(
            spec("checkout/index.html", 64 << 10, 300, &[Edge, Origin], None),
            0,
        )
        .unwrap();
    let frames = (0..keyframes)
        .map(|k| add_keyframe(planner, &format!("keyframe/{k}"), 800, 0))
        .collect();
    let bulk = planner
        .add_asset(
            spec(
                "bulk/patch",
                64 << 20,
                60_000,
                &[P2p, Edge, Origin],
                Some(256 << 10),
            ),
            0,
        )
        .unwrap();
    if swarm_has_bulk {
        planner.set_swarm_pieces(bulk, &[true; 256]);
    }
    (checkout, frames, bulk)
}

fn fast(_: Millis) -> f64 {
    20_000.0 // 20 MB/s
}
fn swarm(_: Millis) -> f64 {
    40_000.0
}
fn slow_origin(_: Millis) -> f64 {
    5_000.0
}
fn slows_at_one_second(now: Millis) -> f64 {
    if now < 1_000 {
        20_000.0
    } else {
        500.0
    }
}

fn three_paths(edge0: fn(Millis) -> f64, edge0_fails: Option<Millis>) -> Vec<(PathId, SimPath)> {
    vec![
        (
            PathId::P2P,
            SimPath {
                rate: swarm,
                rtt: 30,
                fails_from: None,
            },
        ),
        (
            PathId::edge(0),
            SimPath {
                rate: edge0,
                rtt: 10,
                fails_from: edge0_fails,
            },
        ),
        (
            PathId::edge(1),
            SimPath {
                rate: fast,
                rtt: 20,
                fails_from: None,
            },
        ),
        (
            PathId::ORIGIN,
            SimPath {
                rate: slow_origin,
                rtt: 60,
                fails_from: None,
            },
        ),
    ]
}

fn within_budget(out: &Outcome, planner: &Planner, assets: &[AssetId]) -> bool {
    assets.iter().all(|a| {
        out.finished
            .get(a)
            .is_some_and(|t| *t <= planner.deadline(*a).unwrap())
    })
}

#[test]
fn healthy_swarm_carries_the_bulk_and_the_origin_stays_idle() {
    let mut sim = Sim::new(&three_paths(fast, None));
    let (checkout, frames, bulk) = add_drop(&mut sim.planner, 20, true);
    let out = sim.run(120_000);
    assert!(sim.planner.all_done());
    assert!(within_budget(&out, &sim.planner, &[checkout]));
    assert!(within_budget(&out, &sim.planner, &frames));
    assert!(within_budget(&out, &sim.planner, &[bulk]));
    let p2p = out.bytes_by_path.get(&PathId::P2P).copied().unwrap_or(0);
    assert!(
        p2p >= 48 << 20,
        "the swarm carried only {p2p} bytes of the 64 MiB bulk asset"
    );
    assert_eq!(
        out.bytes_by_path.get(&PathId::ORIGIN),
        None,
        "origin used: {:?}",
        out.log
    );
}

/// A swarm that sends nothing for `MS` ms (connections, handshakes, unchokes), then
/// 40 MB/s.
fn silent_until<const MS: Millis>(now: Millis) -> f64 {
    if now < MS {
        0.0
    } else {
        40_000.0
    }
}

/// A bulk asset of `length` the swarm holds, fetched over the swarm (`rate`), two fast
/// edges and a slow origin: the outcome, once everything is done within its budget.
fn bulk_beside(rate: fn(Millis) -> f64, length: u64) -> Outcome {
    let mut sim = Sim::new(&three_paths(fast, None));
    sim.paths.get_mut(&PathId::P2P).unwrap().rate = rate;
    let bulk = add_bulk_the_swarm_holds(&mut sim.planner, length, false);
    let out = sim.run(120_000);
    assert!(sim.planner.all_done());
    assert!(within_budget(&out, &sim.planner, &[bulk]));
    out
}

#[test]
fn a_swarm_slow_to_send_its_first_piece_is_not_hedged_away() {
    // A first piece that takes 1.5 s is no sign of a dead swarm: its pieces must not all
    // be hedged on the edges (sampled after 200 ms, as before, the swarm carried nothing).
    let out = bulk_beside(silent_until::<1_500>, 64 << 20);
    let hedges = out
        .decisions
        .iter()
        .filter(|d| d.reason() == Reason::Hedge)
        .count();
    assert!(hedges <= 8, "{hedges} hedges");
    let p2p = out.bytes_by_path.get(&PathId::P2P).copied().unwrap_or(0);
    assert!(p2p >= 48 << 20, "the swarm carried only {p2p} bytes");
}

#[test]
fn a_swarm_silent_at_first_is_asked_again() {
    // Silent for 3 s, the swarm loses every race to the edges meanwhile, but it must not
    // be written off for good: its prior comes back once it has idled, and it carries its
    // share of what is left.
    let out = bulk_beside(silent_until::<3_000>, 512 << 20);
    let p2p = out.bytes_by_path.get(&PathId::P2P).copied().unwrap_or(0);
    assert!(
        p2p >= 64 << 20,
        "the swarm carried only {p2p} bytes of the 512 MiB bulk asset"
    );
}

#[test]
fn a_slow_edge_loses_its_share_and_late_fetches_are_hedged() {
    let mut sim = Sim::new(&three_paths(slows_at_one_second, None));
    let (_, _, _) = add_drop(&mut sim.planner, 0, false);
    // Keyframes arrive every 100 ms from t = 1.2 s, as a live drop publishes them.
    let mut frames = Vec::new();
    let mut out = sim.run(1_200);
    for k in 0..30u64 {
        frames.push(add_keyframe(
            &mut sim.planner,
            &format!("keyframe/{k}"),
            800,
            1_200 + k * 100,
        ));
        let more = sim.run_from(1_200 + k * 100, 1_300 + k * 100);
        out.merge(more);
    }
    let more = sim.run_from(4_300, 90_000);
    out.merge(more);
    assert!(sim.planner.all_done());
    assert!(
        within_budget(&out, &sim.planner, &frames),
        "keyframes late: {:?}",
        out.finished
    );
    let hedges = out
        .decisions
        .iter()
        .filter(|d| d.reason() == Reason::Hedge)
        .count();
    let late_on_edge0 = out
        .decisions
        .iter()
        .filter(|d| matches!(d, Decision::Fetch { path, asset, .. } if *path == PathId::edge(0) && frames.contains(asset)))
        .count();
    assert!(
        late_on_edge0 <= 6,
        "{late_on_edge0} of 30 keyframes still went to the slowed edge"
    );
    assert!(
        hedges >= 1 || late_on_edge0 == 0,
        "no hedge although edge0 slowed down"
    );
    assert!(
        sim.planner
            .estimate(PathId::edge(0))
            .unwrap()
            .0
            .bytes_per_ms
            < 5_000.0
    );
}

#[test]
fn a_failed_edge_is_bypassed_without_the_origin() {
    let mut sim = Sim::new(&three_paths(fast, Some(0)));
    let (checkout, frames, bulk) = add_drop(&mut sim.planner, 20, true);
    let out = sim.run(120_000);
    assert!(sim.planner.all_done());
    assert!(
        within_budget(&out, &sim.planner, &frames),
        "{:?}",
        out.finished
    );
    assert!(within_budget(&out, &sim.planner, &[checkout, bulk]));
    assert_eq!(out.bytes_by_path.get(&PathId::edge(0)), None);
    assert_eq!(
        out.bytes_by_path.get(&PathId::ORIGIN),
        None,
        "origin used although edge1 was healthy"
    );
}

#[test]
fn a_lying_edge_is_banned_for_good_and_its_share_goes_elsewhere() {
    // edge0 is the fastest path and every byte it sends fails its digest.
    let mut sim = Sim::new(&three_paths(fast, None));
    sim.liars.push(PathId::edge(0));
    let (checkout, frames, bulk) = add_drop(&mut sim.planner, 20, true);
    let out = sim.run(120_000);
    assert!(sim.planner.all_done());
    assert!(within_budget(&out, &sim.planner, &[checkout, bulk]));
    // One lie is enough: a ban is not a back-off, so edge0 is never tried again.
    assert_eq!(out.refused_by_path.get(&PathId::edge(0)), Some(&1));
    let fetches_on_edge0 = out
        .decisions
        .iter()
        .filter(|d| matches!(d, Decision::Fetch { path, .. } if *path == PathId::edge(0)))
        .count();
    let cancelled = out
        .decisions
        .iter()
        .filter(|d| {
            matches!(
                d,
                Decision::Cancel {
                    reason: Reason::PathBanned,
                    ..
                }
            )
        })
        .count();
    assert!(
        fetches_on_edge0 <= 1 + cancelled,
        "edge0 got {fetches_on_edge0} fetches, {cancelled} cancelled with its ban"
    );
    assert_eq!(
        sim.planner.estimate(PathId::edge(0)).map(|(_, e)| e),
        Some(1.0)
    );
    assert_eq!(
        out.bytes_by_path.get(&PathId::ORIGIN),
        None,
        "origin used although edge1 and the swarm were honest"
    );
    assert!(within_budget(&out, &sim.planner, &frames[1..]));
}

#[test]
fn a_ban_is_not_lifted_by_a_late_success_or_failure() {
    let mut planner = Planner::new(PlanConfig::default());
    let prior = Estimate {
        rtt_ms: 10.0,
        bytes_per_ms: 12_500.0,
    };
    planner.add_path(PathId::edge(0), prior);
    planner.add_path(PathId::edge(1), prior);
    for k in 0..2 {
        add_keyframe(&mut planner, &format!("keyframe/{k}"), 800, 0);
    }
    let first = planner.poll(0);
    let on_edge0: Vec<FetchId> = first
        .iter()
        .filter_map(|d| match d {
            Decision::Fetch { fetch, path, .. } if *path == PathId::edge(0) => Some(*fetch),
            _ => None,
        })
        .collect();
    assert!(!on_edge0.is_empty(), "{first:?}");
    assert_eq!(planner.ban(on_edge0[0]), Ok(PathId::edge(0)));
    // A fetch still on it finishes after the ban (the client saw it complete before the
    // cancel): the planner refuses it by name and the ban stands.
    if let Some(other) = on_edge0.get(1) {
        assert_eq!(
            planner.complete(*other, 5),
            Err(PlannerError::Unknown("fetch"))
        );
    }
    for d in &first {
        if let Decision::Fetch { path, fetch, .. } = d {
            if *path != PathId::edge(0) {
                let _ = planner.complete(*fetch, 5);
            }
        }
    }
    for now in (10..2_000).step_by(10) {
        for d in planner.poll(now) {
            if let Decision::Fetch { path, fetch, .. } = d {
                assert_ne!(path, PathId::edge(0), "a banned path got a fetch at {now}");
                planner.progress(fetch, 200 << 10, now);
                let _ = planner.complete(fetch, now);
            }
        }
    }
    assert!(planner.all_done());
    assert_eq!(
        planner.ban(FetchId(9_999)),
        Err(PlannerError::Unknown("fetch"))
    );
}

#[test]
fn background_work_leaves_half_the_edge_to_urgent_assets() {
    let mut planner = Planner::new(PlanConfig::default());
    planner.add_path(
        PathId::edge(0),
        Estimate {
            rtt_ms: 10.0,
            bytes_per_ms: 12_500.0,
        },
    );
    planner
        .add_asset(
            spec("bulk/patch.bin", 64 << 20, 60_000, &[Edge], Some(1 << 18)),
            0,
        )
        .unwrap();
    let on_edge = |decisions: &[Decision]| {
        decisions
            .iter()
            .filter(|d| matches!(d, Decision::Fetch { .. }))
            .count()
    };
    let first = planner.poll(0);
    assert_eq!(on_edge(&first), PlanConfig::default().edge_in_flight / 2);
    // A keyframe due now is not queued behind the bulk download.
    let frame = add_keyframe(&mut planner, "keyframe/0", 800, 10);
    let next = planner.poll(10);
    assert!(
        next.iter()
            .any(|d| matches!(d, Decision::Fetch { asset, .. } if *asset == frame)),
        "{next:?}"
    );
}

#[test]
fn a_stalled_background_fetch_is_retried_without_taking_its_edge_down() {
    // An edge still filling a large object from its origin sends nothing for its far
    // ranges for a while: those ranges go back, and the edge keeps serving the rest.
    let mut planner = Planner::new(PlanConfig::default());
    for path in [PathId::edge(0), PathId::ORIGIN] {
        planner.add_path(
            path,
            Estimate {
                rtt_ms: 10.0,
                bytes_per_ms: 12_500.0,
            },
        );
    }
    planner
        .add_asset(
            spec(
                "bulk/patch.bin",
                64 << 20,
                60_000,
                &[Edge, Origin],
                Some(1 << 18),
            ),
            0,
        )
        .unwrap();
    let first = planner.poll(0);
    assert!(first
        .iter()
        .all(|d| matches!(d, Decision::Fetch { path, .. } if *path == PathId::edge(0))));
    let stall = PlanConfig::default().stall_ms;
    let frame = add_keyframe(&mut planner, "keyframe/0", 800, stall + 10);
    let next = planner.poll(stall + 10);
    let cancels: Vec<Reason> = next
        .iter()
        .filter_map(|d| match d {
            Decision::Cancel { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(cancels.len(), first.len(), "{next:?}");
    assert!(cancels.iter().all(|r| *r == Reason::Stalled), "{cancels:?}");
    assert!(
        next.iter().any(|d| matches!(d,
            Decision::Fetch { asset, path, .. } if *asset == frame && *path == PathId::edge(0))),
        "the keyframe still goes to the edge: {next:?}"
    );
}

#[test]
fn an_ask_of_peers_that_never_answers_is_hedged_over_http() {
    // The peer engine may never bring a piece (its only holder died): however good the
    // swarm's record, a silent ask is hedged once it has been silent long enough.
    let mut planner = Planner::new(PlanConfig::default());
    for (path, rate) in [(PathId::P2P, 40_000.0), (PathId::edge(0), 12_500.0)] {
        planner.add_path(
            path,
            Estimate {
                rtt_ms: 10.0,
                bytes_per_ms: rate,
            },
        );
    }
    let bulk = planner
        .add_asset(
            spec(
                "bulk/patch.bin",
                1 << 20,
                60_000,
                &[P2p, Edge],
                Some(1 << 15),
            ),
            0,
        )
        .unwrap();
    planner.set_swarm_pieces(bulk, &[true; 32]);
    let first = planner.poll(0);
    assert!(first
        .iter()
        .all(|d| matches!(d, Decision::Fetch { path, .. } if *path == PathId::P2P)));
    let silent = 4 * PlanConfig::default().stall_ms + 10;
    let later = planner.poll(silent);
    assert!(
        later.iter().any(|d| matches!(d,
            Decision::Fetch { path, reason: Reason::Hedge, .. } if *path == PathId::edge(0))),
        "{later:?}"
    );
}

#[test]
fn with_no_peers_the_bulk_goes_to_the_edges() {
    let mut sim = Sim::new(&three_paths(fast, None));
    let (_, _, bulk) = add_drop(&mut sim.planner, 10, false);
    let out = sim.run(120_000);
    assert!(sim.planner.all_done());
    assert!(within_budget(&out, &sim.planner, &[bulk]));
    assert_eq!(out.bytes_by_path.get(&PathId::P2P), None);
    assert_eq!(out.bytes_by_path.get(&PathId::ORIGIN), None);
}

#[test]
fn when_every_other_path_is_down_the_origin_serves() {
    let paths = vec![
        (
            PathId::edge(0),
            SimPath {
                rate: fast,
                rtt: 10,
                fails_from: Some(0),
            },
        ),
        (
            PathId::ORIGIN,
            SimPath {
                rate: slow_origin,
                rtt: 60,
                fails_from: None,
            },
        ),
    ];
    let mut sim = Sim::new(&paths);
    let frame = add_keyframe(&mut sim.planner, "keyframe/0", 800, 0);
    let out = sim.run(10_000);
    assert!(sim.planner.is_done(frame));
    assert!(
        out.decisions
            .iter()
            .any(|d| d.reason() == Reason::OthersFailed),
        "{:?}",
        out.log
    );
}

#[test]
fn a_blown_budget_takes_the_fastest_path() {
    let mut sim = Sim::new(&three_paths(fast, None));
    let late = add_keyframe(&mut sim.planner, "keyframe/late", 0, 0);
    let out = sim.run(10_000);
    assert!(sim.planner.is_done(late));
    assert!(
        matches!(
            out.decisions[0],
            Decision::Fetch {
                reason: Reason::BudgetBlown,
                ..
            }
        ),
        "{:?}",
        out.log
    );
}

#[test]
fn the_same_inputs_give_the_same_decisions() {
    let run = || {
        let mut sim = Sim::new(&three_paths(slows_at_one_second, Some(5_000)));
        add_drop(&mut sim.planner, 20, true);
        sim.run(120_000).log
    };
    assert_eq!(run(), run());
}

#[test]
fn bad_assets_are_refused_by_name() {
    let mut p = Planner::new(PlanConfig::default());
    assert_eq!(
        p.add_asset(spec("x", 1, 1, &[], None), 0),
        Err(PlannerError::NoPaths("x".into()))
    );
    assert_eq!(
        p.add_asset(spec("y", 1, 1, &[Edge], Some(0)), 0),
        Err(PlannerError::ZeroChunk("y".into()))
    );
    assert_eq!(
        p.complete(FetchId(9), 0),
        Err(PlannerError::Unknown("fetch"))
    );
    let empty = p.add_asset(spec("z", 0, 1, &[Edge], None), 0).unwrap();
    assert!(p.is_done(empty));
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        for (a, t) in other.finished {
            self.finished.entry(a).or_insert(t);
        }
        for (p, b) in other.bytes_by_path {
            *self.bytes_by_path.entry(p).or_default() += b;
        }
        self.log.extend(other.log);
        self.decisions.extend(other.decisions);
        self.duplicates += other.duplicates;
    }
}

impl Sim {
    /// Runs from `from` to `until` (the clock is the caller's; `run` starts at 0).
    fn run_from(&mut self, from: Millis, until: Millis) -> Outcome {
        let mut out = Outcome::default();
        let mut now = from;
        while now < until {
            for d in self.planner.poll(now) {
                out.log.push(serde_json::to_string(&d).unwrap());
                if let Decision::Fetch {
                    fetch,
                    asset,
                    offset,
                    path,
                    length,
                    hedge_of,
                    ..
                } = &d
                {
                    if hedge_of.is_none()
                        && self.active.values().any(|a| a.range == (*asset, *offset))
                    {
                        out.duplicates += 1;
                    }
                    let rtt = self.paths[path].rtt;
                    self.active.insert(
                        *fetch,
                        Active {
                            path: *path,
                            remaining: *length,
                            first_byte: now + rtt,
                            range: (*asset, *offset),
                        },
                    );
                } else if let Decision::Cancel { fetch, .. } = &d {
                    self.active.remove(fetch);
                }
                out.decisions.push(d);
            }
            if self.planner.all_done() {
                break;
            }
            now += STEP;
            self.advance(now, &mut out);
            let mut a = 0;
            while self.planner.deadline(AssetId(a)).is_some() {
                if self.planner.is_done(AssetId(a)) {
                    out.finished.entry(AssetId(a)).or_insert(now);
                }
                a += 1;
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the rates and failures, as long as one path works: everything completes,
    /// no range is fetched twice except as a hedge, and the origin is only chosen for a
    /// reason that allows it.
    #[test]
    fn everything_completes_and_the_origin_rule_holds(
        edge0_fails in proptest::option::of(0u64..5_000),
        edge1_fails in proptest::option::of(0u64..5_000),
        swarm_has in any::<bool>(),
        frames in 1usize..12,
    ) {
        let mut paths = three_paths(fast, edge0_fails);
        paths[2].1.fails_from = edge1_fails;
        let mut sim = Sim::new(&paths);
        add_drop(&mut sim.planner, frames, swarm_has);
        let out = sim.run(600_000);
        prop_assert!(sim.planner.all_done());
        prop_assert_eq!(out.duplicates, 0);
        for d in &out.decisions {
            if let Decision::Fetch { path, reason, .. } = d {
                if path.kind == PathKind::Origin {
                    prop_assert!(
                        !matches!(reason, Reason::MeetsDeadline),
                        "origin chosen as if it were a preferred path"
                    );
                }
            }
        }
    }
}

#[test]
fn urgency_follows_the_time_left() {
    use crate::urgency;
    assert_eq!(urgency(1_300, 1_000), 0);
    assert_eq!(urgency(1_000, 5_000), 0, "past its deadline: most urgent");
    assert_eq!(urgency(1_800, 1_000), 1);
    assert_eq!(urgency(5_000, 1_000), 2);
    assert_eq!(urgency(9_000, 1_000), 3);
    assert_eq!(urgency(16_000, 1_000), 4);
    assert_eq!(urgency(31_000, 1_000), 5);
    assert_eq!(urgency(61_000, 1_000), 6);
    assert_eq!(urgency(100_000, 1_000), 7);
    // Monotone: less time left is never less urgent.
    let mut last = 7;
    for left in (0..200_000).rev().step_by(250) {
        let u = urgency(left, 0);
        assert!(u <= last, "{left} ms left: u={u} after u={last}");
        last = u;
    }
}

/// A planner with only the swarm, which holds every piece of one asset of `pieces` 16 KiB
/// pieces due `budget_ms` from 0.
fn swarm_only(spread: u64, pieces: u64, budget_ms: Millis) -> Planner {
    let mut planner = Planner::new(PlanConfig {
        spread,
        ..PlanConfig::default()
    });
    planner.add_path(
        PathId::P2P,
        Estimate {
            rtt_ms: 20.0,
            bytes_per_ms: 1_000.0,
        },
    );
    let asset = planner
        .add_asset(
            AssetSpec {
                name: "bulk/patch.bin".into(),
                class: "bulk".into(),
                length: pieces * 16_384,
                piece_length: Some(16_384),
                budget_ms,
                paths: vec![PathKind::P2p],
                spare_edges: false,
            },
            0,
        )
        .unwrap();
    planner.set_swarm_pieces(asset, &vec![true; pieces as usize]);
    planner
}

fn pieces_asked(planner: &mut Planner) -> Vec<u64> {
    planner
        .poll(0)
        .iter()
        .filter_map(|d| match d {
            Decision::Fetch { offset, .. } => Some(offset / 16_384),
            _ => None,
        })
        .collect()
}

#[test]
fn background_pieces_start_at_the_spread_and_wrap_round() {
    assert_eq!(
        pieces_asked(&mut swarm_only(13, 10, 60_000)),
        vec![3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    );
    // Due soon, an asset goes in order whatever the spread.
    assert_eq!(pieces_asked(&mut swarm_only(13, 3, 800)), vec![0, 1, 2]);
}

#[test]
fn the_origin_takes_no_hedge_of_background_work_until_it_is_due_soon() {
    let mut planner = Planner::new(PlanConfig::default());
    planner.add_path(
        PathId::P2P,
        Estimate {
            rtt_ms: 20.0,
            bytes_per_ms: 1_000.0,
        },
    );
    planner.add_path(
        PathId::ORIGIN,
        Estimate {
            rtt_ms: 60.0,
            bytes_per_ms: 100.0,
        },
    );
    let bulk = planner
        .add_asset(
            AssetSpec {
                name: "bulk/patch.bin".into(),
                class: "bulk".into(),
                length: 16_384,
                piece_length: Some(16_384),
                budget_ms: 60_000,
                paths: vec![PathKind::P2p, PathKind::Origin],
                spare_edges: false,
            },
            0,
        )
        .unwrap();
    planner.set_swarm_pieces(bulk, &[true]);
    let first = planner.poll(0);
    assert!(matches!(
        first.as_slice(),
        [Decision::Fetch { path, .. }] if *path == PathId::P2P
    ));
    // The peers stay silent: projected never to finish, the piece is at risk, but with
    // 47 s to spare the origin is not asked.
    let at_risk = planner.poll(13_000);
    assert!(
        !at_risk
            .iter()
            .any(|d| matches!(d, Decision::Fetch { path, .. } if path.kind == PathKind::Origin)),
        "{at_risk:?}"
    );
    // Within `background_after_ms` of its deadline it is no longer background work.
    let due = planner.poll(51_000);
    assert!(
        due.iter().any(|d| matches!(
            d,
            Decision::Fetch { path, reason: Reason::Hedge, .. } if path.kind == PathKind::Origin
        )),
        "{due:?}"
    );
}

/// A bulk asset of `length` (256 KiB pieces, due in a minute) whose every piece some
/// connected peer holds.
fn add_bulk_the_swarm_holds(planner: &mut Planner, length: u64, spare_edges: bool) -> AssetId {
    let bulk = planner
        .add_asset(
            AssetSpec {
                spare_edges,
                ..spec(
                    "bulk/patch",
                    length,
                    60_000,
                    &[P2p, Edge, Origin],
                    Some(256 << 10),
                )
            },
            0,
        )
        .unwrap();
    planner.set_swarm_pieces(bulk, &vec![true; length.div_ceil(256 << 10) as usize]);
    bulk
}

/// The swarm holds every piece of a 32 MiB bulk asset but moves only 2 MB/s; two edges
/// (and a slow origin) may be there too. Returns when it finished, and the outcome.
fn bulk_with_a_slow_swarm(edges: bool) -> (Millis, Outcome) {
    bulk_with_a_slow_swarm_and(edges, false)
}

/// The same, with the bulk class's `spare_edges` set or not.
fn bulk_with_a_slow_swarm_and(edges: bool, spare_edges: bool) -> (Millis, Outcome) {
    fn slow_swarm(_: Millis) -> f64 {
        2_000.0
    }
    let paths: Vec<(PathId, SimPath)> = three_paths(fast, None)
        .into_iter()
        .filter(|(p, _)| edges || p.kind != Edge)
        .collect();
    let mut sim = Sim::new(&paths);
    sim.paths.get_mut(&PathId::P2P).unwrap().rate = slow_swarm;
    let bulk = add_bulk_the_swarm_holds(&mut sim.planner, 32 << 20, spare_edges);
    let out = sim.run(60_000);
    assert!(sim.planner.all_done());
    (out.finished[&bulk], out)
}

#[test]
fn in_the_end_game_idle_edges_copy_the_pieces_still_waiting_on_the_swarm() {
    let (swarm_alone, alone) = bulk_with_a_slow_swarm(false);
    let (with_edges, out) = bulk_with_a_slow_swarm(true);
    // The swarm alone makes the deadline (about 17 s for 32 MiB), so the swarm is asked
    // first for every piece it can take; but once every piece is asked for, the pieces
    // still waiting on it are copied to the idle edges, and the asset lands sooner.
    assert!(swarm_alone < 60_000, "{swarm_alone}");
    assert!(
        with_edges < swarm_alone,
        "with edges {with_edges} ms, the swarm alone {swarm_alone} ms"
    );
    let p2p = out.bytes_by_path.get(&PathId::P2P).copied().unwrap_or(0);
    assert!(p2p >= 16 << 20, "the swarm carried only {p2p} bytes");
    let copies: Vec<&Decision> = out
        .decisions
        .iter()
        .filter(|d| d.reason() == Reason::Endgame)
        .collect();
    assert!(!copies.is_empty(), "{:?}", out.log);
    assert!(copies.iter().all(|d| matches!(
        d,
        Decision::Fetch { path, hedge_of: Some(_), .. } if path.kind == Edge
    )));
    for out in [&alone, &out] {
        assert_eq!(
            out.bytes_by_path.get(&PathId::ORIGIN),
            None,
            "{:?}",
            out.log
        );
    }
    // Each copy that lost its race was cancelled.
    assert!(out.decisions.iter().any(|d| matches!(
        d,
        Decision::Cancel {
            reason: Reason::LostRace,
            ..
        }
    )));
}
