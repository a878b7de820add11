//! The demo's report: per class across every viewer, egress, the peers' share, bulk
//! completion against the Kumar–Ross bound, what the viewers did about liars; as a
//! table or JSON.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use swarmdrop_client::{percentile, Report};
use swarmdrop_procstat::CpuTrace;

use super::processes::Services;
use super::DemoArgs;

/// One class across every viewer.
#[derive(Debug, Serialize)]
pub(crate) struct ClassFigures {
    pub(crate) budget_ms: u64,
    pub(crate) arrivals: usize,
    pub(crate) within_budget: f64,
    pub(crate) p50_ms: u64,
    pub(crate) p99_ms: u64,
    /// Verified bytes by path kind (`p2p`, `edge`, `origin`), every viewer.
    pub(crate) bytes_by_path: BTreeMap<String, u64>,
}

/// `edge0`, `edge1`, … count as `edge`.
fn path_kind(label: &str) -> &str {
    if label.starts_with("edge") {
        "edge"
    } else {
        label
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct DemoReport {
    /// The paths the viewers could use.
    pub(crate) paths: String,
    pub(crate) viewers: usize,
    pub(crate) completed: usize,
    pub(crate) drop_bytes: u64,
    pub(crate) seconds: f64,
    /// `--scale`: the factor on every emulated upload cap and the keyframe size.
    pub(crate) scale: f64,
    pub(crate) classes: BTreeMap<String, ClassFigures>,
    pub(crate) origin_egress_vs_drop: f64,
    pub(crate) edge_egress_vs_drop: f64,
    pub(crate) p2p_share: f64,
    pub(crate) bulk_completion_s: f64,
    pub(crate) kumar_ross_bound_s: f64,
    pub(crate) bulk_vs_bound: f64,
    /// The same bound with the keyframes' schedule on the servers' uploads (their class
    /// does not allow peers): what the drop's own mix leaves for the bulk asset.
    pub(crate) bound_with_keyframes_s: f64,
    pub(crate) bulk_vs_bound_with_keyframes: f64,
    pub(crate) bytes_by_path: BTreeMap<String, u64>,
    /// How busy the machine's CPUs were (everything on it, not only the demo) from the
    /// first viewer's start until the last had the bulk asset, 0 to 1 (Linux only): near
    /// 1, the machine rather than the emulated links the bound is computed from is the
    /// likely limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_busy_share: Option<f64>,
    /// The part of that time the hypervisor gave to other guests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_steal_share: Option<f64>,
    /// The viewers' planner decisions by reason, all viewers together.
    pub(crate) decisions: BTreeMap<String, u64>,
    /// `--liar`: what the viewers did about the liars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) liar: Option<LiarFigures>,
    /// With `--liar` or `--chaos`: bytes of the completed viewers' files that differ from
    /// the drop (compared byte for byte after the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) corrupted_bytes_written: Option<u64>,
    pub(crate) errors: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// What the viewers did about the lying edge and the lying peer.
#[derive(Debug, Default, Serialize)]
pub(crate) struct LiarFigures {
    /// Completed viewers.
    pub(crate) viewers: usize,
    /// Viewers the lying edge sent at least one range (the others never asked it for
    /// one, having found the honest edges faster).
    pub(crate) took_from_the_edge: usize,
    /// Viewers that banned the lying edge.
    pub(crate) banned_the_edge: usize,
    /// Ranges from the lying edge refused by their signed digest, all viewers.
    pub(crate) edge_ranges_refused: u64,
    /// Verified bytes the lying edge brought (must be 0).
    pub(crate) edge_bytes_accepted: u64,
    /// Viewers some peer sent a piece that failed its hash.
    pub(crate) sent_a_bad_piece: usize,
    /// Viewers that banned at least one peer.
    pub(crate) banned_a_peer: usize,
    /// Peer bans, all viewers.
    pub(crate) peer_bans: u64,
    /// Pieces refused from peers, all viewers.
    pub(crate) pieces_refused: u64,
}

pub(crate) fn summarize(
    args: &DemoArgs,
    services: &Services,
    results: &[(Duration, Result<Report, String>)],
    drop_bytes: u64,
    bulk_bytes: u64,
    seconds: f64,
    cpu: &CpuTrace,
) -> anyhow::Result<DemoReport> {
    let mut arrivals: BTreeMap<String, (u64, Vec<u64>)> = BTreeMap::new();
    let mut class_bytes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut bytes_by_path: BTreeMap<String, u64> = BTreeMap::new();
    let mut decisions: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut bulk_done = 0f64;
    for (offset, result) in results {
        match result {
            Ok(report) => {
                for (class, c) in &report.classes {
                    let entry = arrivals
                        .entry(class.clone())
                        .or_insert((c.budget_ms, Vec::new()));
                    entry.1.extend(&c.arrivals_ms);
                    let by_path = class_bytes.entry(class.clone()).or_default();
                    for (path, n) in &c.bytes_by_path {
                        *by_path.entry(path_kind(path).to_owned()).or_default() += n;
                    }
                }
                for (reason, n) in &report.decisions {
                    *decisions.entry(reason.clone()).or_default() += n;
                }
                for (path, n) in &report.bytes_by_path {
                    *bytes_by_path.entry(path_kind(path).to_owned()).or_default() += n;
                }
                if let Some(bulk) = report.classes.get("bulk") {
                    let done = offset.as_secs_f64()
                        + bulk.arrivals_ms.iter().max().copied().unwrap_or(0) as f64 / 1e3;
                    bulk_done = bulk_done.max(done);
                }
            }
            Err(e) => errors.push(e.clone()),
        }
    }
    let classes = arrivals
        .into_iter()
        .map(|(class, (budget_ms, mut times))| {
            times.sort_unstable();
            let within = times.iter().filter(|t| **t <= budget_ms).count();
            let figures = ClassFigures {
                budget_ms,
                arrivals: times.len(),
                within_budget: within as f64 / times.len().max(1) as f64,
                p50_ms: percentile(&times, 0.5),
                p99_ms: percentile(&times, 0.99),
                bytes_by_path: class_bytes.remove(&class).unwrap_or_default(),
            };
            (class, figures)
        })
        .collect();
    let server_upload =
        args.origin_upload as f64 + 2.0 * args.edge_upload as f64 + 2.0 * args.seeder_upload as f64;
    let viewers_upload = args.viewers as f64 * args.viewer_upload as f64;
    let n = args.viewers as f64;
    let f = bulk_bytes as f64;
    let bound = super::bound::kumar_ross(f, n, server_upload, viewers_upload);
    let keyframe_secs = args.keyframe_interval as f64 / 1e3;
    let keyframe_load = if args.keyframes > 0 && keyframe_secs > 0.0 {
        n * args.keyframe_size as f64 / keyframe_secs
    } else {
        0.0
    };
    let bound_with_keyframes = super::bound::with_server_load(
        f,
        n,
        server_upload,
        viewers_upload,
        keyframe_load,
        args.keyframes as f64 * keyframe_secs,
    );
    let ratio = |bound: f64| if bound > 0.0 { bulk_done / bound } else { 0.0 };
    let cpu = cpu.share_between(Duration::ZERO, Duration::from_secs_f64(bulk_done));
    let liar = args.liar.then(|| {
        // The lying edge is the last edge each viewer was given.
        let label = format!("edge{}", services.edges.len());
        let mut figures = LiarFigures::default();
        for report in results.iter().filter_map(|(_, r)| r.as_ref().ok()) {
            figures.viewers += 1;
            let refused = report.refused_by_path.get(&label).copied().unwrap_or(0);
            let accepted = report.bytes_by_path.get(&label).copied().unwrap_or(0);
            figures.took_from_the_edge += usize::from(refused + accepted > 0);
            figures.banned_the_edge += usize::from(report.banned_mirrors.contains(&label));
            figures.edge_ranges_refused += refused;
            figures.edge_bytes_accepted += accepted;
            figures.sent_a_bad_piece +=
                usize::from(report.refused_by_path.get("p2p").copied().unwrap_or(0) > 0);
            figures.banned_a_peer += usize::from(report.banned_peers > 0);
            figures.peer_bans += report.banned_peers;
            figures.pieces_refused += report.refused_by_path.get("p2p").copied().unwrap_or(0);
        }
        figures
    });
    let total: u64 = bytes_by_path.values().sum();
    let edge_sent: u64 = services
        .edge_sent
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    Ok(DemoReport {
        paths: String::new(),
        viewers: results.len(),
        completed: results.iter().filter(|(_, r)| r.is_ok()).count(),
        drop_bytes,
        seconds,
        scale: args.scale,
        classes,
        origin_egress_vs_drop: services.origin_sent.load(Ordering::Relaxed) as f64 / drop_bytes as f64,
        edge_egress_vs_drop: edge_sent as f64 / drop_bytes as f64,
        p2p_share: bytes_by_path.get("p2p").copied().unwrap_or(0) as f64 / total.max(1) as f64,
        bulk_completion_s: bulk_done,
        kumar_ross_bound_s: bound,
        bulk_vs_bound: ratio(bound),
        bound_with_keyframes_s: bound_with_keyframes,
        bulk_vs_bound_with_keyframes: ratio(bound_with_keyframes),
        bytes_by_path,
        cpu_busy_share: cpu.map(|c| c.busy),
        cpu_steal_share: cpu.map(|c| c.steal),
        decisions,
        liar,
        corrupted_bytes_written: None,
        errors,
        notes: vec![
            "origin egress counts every byte it sent, the edges' fills while warming too; edge egress counts what the edges sent from the opening (to viewers, and edge0's to edge1)".into(),
            "the Kumar-Ross bound uses the caps: u_s = origin + edges + seeders, u_i = each viewer's upload; viewers' downloads are not capped".into(),
            "round trips are emulated to the origin and the edges; peer links have loopback latency".into(),
        ]
        .into_iter()
        .chain(cpu.filter(|c| c.busy >= SATURATED).map(|c| {
            format!(
                "the machine's CPUs were {:.0}% busy until the bulk asset was complete{}",
                c.busy * 100.0,
                saturated_note(args.scale)
            )
        }))
        .collect(),
    })
}

/// A busy share from which the CPUs, not the emulated links, likely set the pace.
const SATURATED: f64 = 0.9;

/// Said of a run at least [`SATURATED`] busy (`/proc/stat` counts the whole machine, so
/// this says what is likely, not what is proven), with the `--scale` that halves the load
/// while that is allowed.
fn saturated_note(scale: f64) -> String {
    let lighter = if scale / 2.0 >= super::MIN_SCALE {
        format!(
            " (--scale {} runs the same drop's proportions at half the load per second)",
            scale / 2.0
        )
    } else {
        String::new()
    };
    format!(
        ": every viewer's hashing, disk writes and sockets share this one machine, so it likely set the pace rather than the emulated links the bound is computed from{lighter}"
    )
}

pub(crate) fn print_report(r: &DemoReport) {
    println!(
        "{} viewers ({} completed) in {:.1} s; the drop is {:.1} MB",
        r.viewers,
        r.completed,
        r.seconds,
        r.drop_bytes as f64 / 1e6
    );
    if r.scale != 1.0 {
        println!(
            "emulated upload caps and keyframe size at {}x the given ones (--scale)",
            r.scale
        );
    }
    println!(
        "{:<10} {:>8} {:>9} {:>8} {:>8}",
        "class", "budget", "in budget", "p50", "p99"
    );
    for (class, c) in &r.classes {
        println!(
            "{:<10} {:>6}ms {:>8.1}% {:>6}ms {:>6}ms",
            class,
            c.budget_ms,
            c.within_budget * 100.0,
            c.p50_ms,
            c.p99_ms
        );
    }
    println!(
        "origin egress {:.2}x the drop (target <= 1.5, goal 1.1); edges {:.2}x",
        r.origin_egress_vs_drop, r.edge_egress_vs_drop
    );
    println!("peers carried {:.1}% of all bytes", r.p2p_share * 100.0);
    println!(
        "planner decisions by reason: {}",
        swarmdrop_client::by_reason_line(&r.decisions)
    );
    println!(
        "bulk complete for every viewer after {:.1} s; Kumar-Ross bound {:.1} s; ratio {:.2} (target <= 1.5, goal 1.15)",
        r.bulk_completion_s, r.kumar_ross_bound_s, r.bulk_vs_bound
    );
    println!(
        "  with the keyframes' schedule on the same server uploads the bound is {:.1} s; ratio {:.2}",
        r.bound_with_keyframes_s, r.bulk_vs_bound_with_keyframes
    );
    if let (Some(busy), Some(steal)) = (r.cpu_busy_share, r.cpu_steal_share) {
        println!(
            "the machine's CPUs were {:.0}% busy until the bulk asset was complete ({:.0}% stolen by the hypervisor){}",
            busy * 100.0,
            steal * 100.0,
            if busy >= SATURATED {
                saturated_note(r.scale)
            } else {
                String::new()
            }
        );
    }
    for e in &r.errors {
        println!("viewer failed: {e}");
    }
    if let Some(l) = &r.liar {
        println!(
            "liar: {} of {} viewers banned the lying edge, of the {} it sent a range ({} ranges refused, {} bytes accepted); {} banned the lying peer, of the {} sent a bad piece ({} bans, {} pieces refused)",
            l.banned_the_edge,
            l.viewers,
            l.took_from_the_edge,
            l.edge_ranges_refused,
            l.edge_bytes_accepted,
            l.banned_a_peer,
            l.sent_a_bad_piece,
            l.peer_bans,
            l.pieces_refused
        );
    }
    if let Some(n) = r.corrupted_bytes_written {
        println!("corrupted bytes written by any viewer: {n} (every file compared with the drop)");
    }
    for note in r.notes.iter().filter(|n| n.starts_with("chaos")) {
        println!("{note}; every viewer that completed verified every asset");
    }
}

/// `--compare`: the drop with peers, then without.
#[derive(Debug, Serialize)]
pub(crate) struct Comparison {
    with_peers: DemoReport,
    without_peers: DemoReport,
    /// With peers ÷ without: below 1 means peers helped.
    origin_egress_ratio: f64,
    edge_egress_ratio: f64,
    bulk_completion_ratio: f64,
}

impl Comparison {
    pub(crate) fn of(with_peers: DemoReport, without_peers: DemoReport) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Comparison {
            origin_egress_ratio: ratio(
                with_peers.origin_egress_vs_drop,
                without_peers.origin_egress_vs_drop,
            ),
            edge_egress_ratio: ratio(
                with_peers.edge_egress_vs_drop,
                without_peers.edge_egress_vs_drop,
            ),
            bulk_completion_ratio: ratio(
                with_peers.bulk_completion_s,
                without_peers.bulk_completion_s,
            ),
            with_peers,
            without_peers,
        }
    }

    pub(crate) fn print(&self) {
        for r in [&self.with_peers, &self.without_peers] {
            println!("== paths {} ==", r.paths);
            print_report(r);
            println!();
        }
        println!(
            "with peers / without: origin egress {:.2}, edge egress {:.2}, bulk completion {:.2}",
            self.origin_egress_ratio, self.edge_egress_ratio, self.bulk_completion_ratio
        );
    }
}
