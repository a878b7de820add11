//! `swarmdrop get URL`: the hybrid client over edges and the origin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{bail, Context as _};
use swarmdrop_client::{run, ClientOptions, Follow, Identity, Progress, Report};
use swarmdrop_plan::PathKind;

/// The hybrid client's options (`get` without `--p2p-only`).
#[derive(Debug, clap::Args)]
pub(crate) struct HybridArgs {
    /// An edge cache's base URL (repeatable); measured and used fastest first.
    #[arg(long = "edge", value_name = "URL")]
    edges: Vec<String>,
    /// The root metadata to trust (obtained out of band). Without it, the origin's
    /// metadata/1.root.json is trusted on first use, and the run says so.
    #[arg(long, value_name = "ROOT.json")]
    root: Option<PathBuf>,
    /// The gateway to sign in at (`swarmdrop serve`'s gateway listener), with
    /// --anonymous or --wallet. The run's quality report goes to URL/qoe (see --qoe).
    #[arg(long, value_name = "URL", requires = "identity")]
    gateway: Option<String>,
    /// Sign in anonymously with proof of work (needs --gateway; the drop must allow it).
    #[arg(long, requires = "gateway", group = "identity")]
    anonymous: bool,
    /// Sign in with an Ethereum wallet (SIWE, EIP-4361; needs --gateway): KEYFILE holds
    /// its secp256k1 private key as 64 hex digits, optionally 0x-prefixed.
    /// `swarmdrop wallet new --out KEYFILE` makes one.
    #[arg(
        long,
        value_name = "KEYFILE",
        requires = "gateway",
        group = "identity",
        conflicts_with = "anonymous"
    )]
    wallet: Option<PathBuf>,
    /// Send the end-of-run quality report (per asset: class, budget, arrival; bytes by
    /// path) to this URL instead of GATEWAY/qoe. A report that cannot be sent is a
    /// warning only.
    #[arg(long, value_name = "URL")]
    qoe: Option<String>,
    /// Send no quality report.
    #[arg(long, conflicts_with = "qoe")]
    no_qoe: bool,
    /// Only these paths, whatever the classes allow (comma-separated: p2p,edge,origin).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    paths: Vec<String>,
    /// Only this asset (drop path, repeatable); default: every signed target.
    #[arg(long = "asset", value_name = "PATH")]
    assets: Vec<String>,
    /// Write every scheduling decision, with its reason, as a JSON line here.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Follow a live drop: poll timestamp.json at the interval its live classes sign
    /// (`poll_ms` in the policy) and fetch each new version's new assets as they
    /// appear, until interrupted (the report covers what arrived).
    #[arg(long)]
    pub(crate) follow: bool,
    /// With --follow: stop once every asset is in and no new version has brought
    /// anything for this many seconds.
    #[arg(long, value_name = "SECONDS", requires = "follow")]
    pub(crate) follow_idle: Option<u64>,
    /// Keep serving peers once every asset is verified, until interrupted.
    #[arg(long)]
    seed_after: bool,
    /// Keep finished files in the OS page cache once they are on disk (by default they
    /// are dropped from it then, so a large drop does not push out what the machine was
    /// using; seeding reads them back from disk).
    #[arg(long)]
    keep_page_cache: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// One progress bar per class.
struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
}

impl Progress for Bars {
    fn class_total(&self, class: &str, bytes: u64) {
        let bar = self.multi.add(indicatif::ProgressBar::new(bytes));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>10} {bar:40} {bytes}/{total_bytes} {elapsed_precise}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(class.to_owned());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(class.to_owned(), bar);
        }
    }

    fn advanced(&self, class: &str, bytes: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(class).cloned()) {
            bar.inc(bytes);
        }
    }

    fn note(&self, line: &str) {
        // MultiProgress prints nothing when stderr is not a terminal; notes still matter.
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}

fn print_table(report: &Report) {
    println!(
        "{:<12} {:>9} {:>7} {:>9} {:>9} {:>8}  bytes by path",
        "class", "budget", "assets", "p50", "p99", "within"
    );
    for (class, c) in &report.classes {
        let paths: Vec<String> = c
            .bytes_by_path
            .iter()
            .map(|(path, n)| format!("{path} {:.1} MB", *n as f64 / 1e6))
            .collect();
        println!(
            "{:<12} {:>7}ms {:>7} {:>7}ms {:>7}ms {:>7.1}%  {}",
            class,
            c.budget_ms,
            c.assets,
            c.p50_ms,
            c.p99_ms,
            c.within_budget * 100.0,
            paths.join(", ")
        );
    }
    for (path, n) in &report.refused_by_path {
        println!("refused from {path}: {n} range(s) that failed verification");
    }
    for mirror in &report.banned_mirrors {
        println!("banned {mirror} for this run: it sent bytes that fail their signed digest");
    }
    if report.banned_peers > 0 {
        println!(
            "banned {} peer(s) for pieces that fail their hash",
            report.banned_peers
        );
    }
    if !report.decisions.is_empty() {
        println!(
            "decisions by reason: {}",
            swarmdrop_client::by_reason_line(&report.decisions)
        );
    }
    println!("done in {:.2} s", report.seconds);
}

/// Where the quality report goes: `--qoe`, else the gateway's `/qoe`; none with
/// `--no-qoe` or without either.
fn qoe_url(hybrid: &HybridArgs) -> Option<String> {
    if hybrid.no_qoe {
        return None;
    }
    hybrid.qoe.clone().or_else(|| {
        hybrid
            .gateway
            .as_ref()
            .map(|g| format!("{}/qoe", g.trim_end_matches('/')))
    })
}

pub(crate) fn get(args: &super::peer::GetArgs) -> anyhow::Result<ExitCode> {
    let hybrid = &args.hybrid;
    if !args.torrent.starts_with("http://") {
        bail!(
            "{}: give the drop's origin URL (http://host:port/), or --p2p-only with a torrent or magnet",
            args.torrent
        );
    }
    let only_paths = if hybrid.paths.is_empty() {
        None
    } else {
        let mut kinds = Vec::new();
        for name in &hybrid.paths {
            match PathKind::parse(name.trim()) {
                Some(kind) => kinds.push(kind),
                None => bail!("--paths: {name:?} is not a path (p2p, edge, origin)"),
            }
        }
        Some(kinds)
    };
    let options = ClientOptions {
        origin: args.torrent.clone(),
        edges: hybrid.edges.clone(),
        out_dir: args.out.clone(),
        root: hybrid.root.clone(),
        gateway: hybrid.gateway.clone(),
        identity: match (&hybrid.wallet, hybrid.anonymous) {
            (Some(path), _) => Some(Identity::Wallet(path.clone())),
            (None, true) => Some(Identity::Anonymous),
            (None, false) => None,
        },
        qoe: qoe_url(hybrid),
        only_paths,
        assets: hybrid.assets.clone(),
        events: hybrid.events.clone(),
        listen: args.listen,
        peers: args.swarm.peers.clone(),
        trackers: args.swarm.trackers.clone(),
        use_trackers: !args.swarm.no_trackers,
        seed_after: hybrid.seed_after,
        keep_page_cache: hybrid.keep_page_cache,
        stop_seeding: None,
        upload_limit: super::peer::upload_limit(&args.swarm)?,
        schedule: None,
        follow: hybrid.follow.then_some(Follow {
            idle: hybrid.follow_idle.map(std::time::Duration::from_secs),
        }),
    };
    let bars = Bars {
        multi: indicatif::MultiProgress::new(),
        bars: Mutex::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime
        .block_on(run(&options, &bars))
        .with_context(|| format!("fetching the drop at {}", args.torrent))?;
    if let Ok(bars) = bars.bars.lock() {
        for bar in bars.values() {
            bar.finish();
        }
    }
    if hybrid.json {
        super::print_json(&report)?;
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}
