//! `spare_edges`: edges with a free slot seed a bulk asset beside the swarm.

use super::*;

fn spare_decisions(out: &Outcome) -> Vec<&Decision> {
    out.decisions
        .iter()
        .filter(|d| d.reason() == Reason::SpareCapacity)
        .collect()
}

#[test]
fn spare_edges_seed_the_bulk_beside_a_slow_swarm() {
    let (end_game_only, without) = bulk_with_a_slow_swarm_and(true, false);
    let (spare, out) = bulk_with_a_slow_swarm_and(true, true);
    assert!(spare_decisions(&without).is_empty());
    // The end game alone waits for every piece to be asked of the swarm first (about
    // 9 s); edges that take pieces from the start finish in a fraction of that.
    assert!(
        spare * 2 < end_game_only,
        "with spare edges {spare} ms, end game only {end_game_only} ms"
    );
    let seeded = spare_decisions(&out);
    assert!(!seeded.is_empty(), "{:?}", out.log);
    assert!(seeded.iter().all(|d| matches!(
        d,
        Decision::Fetch { path, hedge_of: None, .. } if path.kind == Edge
    )));
    // The swarm still carries its part, and the origin nothing.
    let p2p = out.bytes_by_path.get(&PathId::P2P).copied().unwrap_or(0);
    assert!(p2p >= 1 << 20, "the swarm carried only {p2p} bytes");
    assert_eq!(
        out.bytes_by_path.get(&PathId::ORIGIN),
        None,
        "{:?}",
        out.log
    );
}

/// A planner (with `spread`) with the swarm and two fast edges, and a 128 MiB bulk asset
/// the swarm holds, with spare edges.
fn swarm_and_two_edges_with_128_mib(spread: u64) -> (Planner, AssetId) {
    let mut planner = Planner::new(PlanConfig {
        spread,
        ..PlanConfig::default()
    });
    for path in [PathId::P2P, PathId::edge(0), PathId::edge(1)] {
        planner.add_path(
            path,
            Estimate {
                rtt_ms: 10.0,
                bytes_per_ms: 12_500.0,
            },
        );
    }
    let bulk = add_bulk_the_swarm_holds(&mut planner, 128 << 20, true);
    (planner, bulk)
}

#[test]
fn spare_pieces_start_farthest_from_where_the_swarm_work_starts() {
    let mut planner = swarm_and_two_edges_with_128_mib(10).0;
    let first = planner.poll(0);
    let swarm: Vec<u64> = first
        .iter()
        .filter_map(|d| match d {
            Decision::Fetch { path, offset, .. } if *path == PathId::P2P => {
                Some(offset / (256 << 10))
            }
            _ => None,
        })
        .collect();
    let seeded: Vec<(PathId, u64)> = first
        .iter()
        .filter(|d| d.reason() == Reason::SpareCapacity)
        .filter_map(|d| match d {
            Decision::Fetch { path, offset, .. } => Some((*path, offset / (256 << 10))),
            _ => None,
        })
        .collect();
    // The swarm is asked from piece 10 on; each edge takes one piece, from piece 9 down.
    assert_eq!(swarm.first(), Some(&10));
    assert_eq!(
        seeded,
        vec![(PathId::edge(0), 9), (PathId::edge(1), 8)],
        "{first:?}"
    );
    // With its one piece in flight an edge takes no more.
    assert!(planner
        .poll(5)
        .iter()
        .all(|d| d.reason() != Reason::SpareCapacity));
}

#[test]
fn an_edge_slower_than_the_swarm_keeps_no_spare_share() {
    fn crawling(_: Millis) -> f64 {
        100.0 // 0.1 MB/s: a piece takes 2.6 s
    }
    fn steady_swarm(_: Millis) -> f64 {
        10_000.0 // 10 MB/s: through its queue of 64 pieces in 1.7 s
    }
    let paths: Vec<(PathId, SimPath)> = three_paths(crawling, None)
        .into_iter()
        .filter(|(p, _)| *p != PathId::edge(1))
        .collect();
    let mut sim = Sim::new(&paths);
    sim.paths.get_mut(&PathId::P2P).unwrap().rate = steady_swarm;
    add_bulk_the_swarm_holds(&mut sim.planner, 64 << 20, true);
    let out = sim.run(60_000);
    assert!(sim.planner.all_done());
    // Before it has shown its rate the edge is assumed able and takes a piece; once it
    // has, it takes no more (the swarm works for about 7 s).
    let seeded = spare_decisions(&out);
    assert!(
        seeded.len() <= 1,
        "{} spare pieces on a crawling edge",
        seeded.len()
    );
    let p2p = out.bytes_by_path.get(&PathId::P2P).copied().unwrap_or(0);
    assert!(p2p >= 60 << 20, "the swarm carried only {p2p} bytes");
}

/// What the peer engine has told the planner of the other leechers.
enum Told {
    Nothing,
    NoLeechers,
    Leechers { mean: f64, count: usize },
}

/// A planner with the swarm and two edges and a 128 MiB bulk asset (512 pieces) the
/// swarm holds, told `told` once the viewer holds 66 pieces: the spare pieces it then
/// sends to the edges.
fn spare_after_66_pieces(told: Told) -> usize {
    let (mut planner, bulk) = swarm_and_two_edges_with_128_mib(0);
    // The swarm's 64 pieces and the edges' two spare ones all arrive.
    let first = planner.poll(0);
    for d in &first {
        if let Decision::Fetch { fetch, .. } = d {
            planner.complete(*fetch, 0).unwrap();
        }
    }
    assert_eq!(first.len(), 66, "{first:?}");
    match told {
        Told::Nothing => {}
        Told::NoLeechers => planner.set_leechers_progress(bulk, None),
        Told::Leechers { mean, count } => planner.set_leechers_progress(bulk, Some((mean, count))),
    }
    planner
        .poll(1)
        .into_iter()
        .filter(|d| d.reason() == Reason::SpareCapacity)
        .count()
}

#[test]
fn a_viewer_ahead_of_the_other_leechers_leaves_the_spare_edges_to_them() {
    let level = 66.0 / 512.0;
    let among_49 = |mean: f64| spare_after_66_pieces(Told::Leechers { mean, count: 49 });
    assert_eq!(
        spare_after_66_pieces(Told::Nothing),
        2,
        "no word from the swarm"
    );
    assert_eq!(
        spare_after_66_pieces(Told::NoLeechers),
        2,
        "no leecher connected"
    );
    // Behind or level, it takes two pieces at a time from each edge, the share of those
    // ahead; ahead, none.
    assert_eq!(among_49(0.2), 4, "behind");
    assert_eq!(among_49(level), 4, "level");
    assert_eq!(among_49(0.1), 0, "ahead");
    assert_eq!(among_49(f64::NAN), 2, "no number");
    // Ahead of a handful, it keeps its share: the edges are hardly theirs to share.
    let ahead_of = |count| spare_after_66_pieces(Told::Leechers { mean: 0.1, count });
    assert_eq!(ahead_of(7), 2);
    assert_eq!(ahead_of(8), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever the swarm's and the edges' rates, spare pieces go to edges only, each a
    /// fresh fetch (never a copy), the origin carries nothing, and the asset completes
    /// no later than the swarm with end-game copies alone would have it (give or take a
    /// piece's time).
    #[test]
    fn spare_edges_only_ever_add(swarm_rate in 500u32..40_000, edge_rate in 200u32..20_000) {
        let run = |spare_edges: bool| {
            let paths: Vec<(PathId, SimPath)> = three_paths(fast, None)
                .into_iter()
                .filter(|(p, _)| *p != PathId::ORIGIN)
                .collect();
            let mut sim = Sim::new(&paths);
            sim.paths.get_mut(&PathId::P2P).unwrap().rate = match swarm_rate {
                r if r < 2_000 => |_| 1_000.0,
                r if r < 10_000 => |_| 5_000.0,
                _ => |_| 30_000.0,
            };
            let edge: fn(Millis) -> f64 = match edge_rate {
                r if r < 1_000 => |_| 300.0,
                r if r < 5_000 => |_| 3_000.0,
                _ => |_| 15_000.0,
            };
            for e in [PathId::edge(0), PathId::edge(1)] {
                sim.paths.get_mut(&e).unwrap().rate = edge;
            }
            let bulk = add_bulk_the_swarm_holds(&mut sim.planner, 16 << 20, spare_edges);
            let out = sim.run(60_000);
            prop_assert!(sim.planner.all_done());
            Ok((out.finished[&bulk], out))
        };
        let (alone, _) = run(false)?;
        let (spare, out) = run(true)?;
        for d in spare_decisions(&out) {
            prop_assert!(
                matches!(d, Decision::Fetch { path, hedge_of: None, .. } if path.kind == Edge),
                "{:?}", d
            );
        }
        prop_assert_eq!(out.bytes_by_path.get(&PathId::ORIGIN), None);
        prop_assert!(spare <= alone + 1_000, "spare {} ms, without {} ms", spare, alone);
    }
}
