//! The demo's services, each a `swarmdrop` process of its own: `serve` (origin, tracker,
//! gateway), two edges and two seeders. The origin and the edges are reached through
//! shapers (emulated round trip and upload cap).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::BodyExt as _;
use swarmdrop_bench::child::{start_listening, Running};
use swarmdrop_publish::pack::{pack, Clock, LinkMode, NoProgress, PackOptions};

use super::{liar, policy, published, shaper, DemoArgs};

const SERVE_CONFIG: &str = "[gateway]\nallow_anonymous = true\n";

/// Everything the viewers need, and the processes behind it (stopped when dropped).
pub(crate) struct Services {
    pub origin: SocketAddr,
    pub origin_direct: SocketAddr,
    pub origin_sent: Arc<AtomicU64>,
    pub gateway: SocketAddr,
    pub tracker: SocketAddr,
    pub edges: Vec<SocketAddr>,
    pub edge_sent: Vec<Arc<AtomicU64>>,
    pub seeders: Vec<String>,
    /// `--liar`: the lying edge (behind its shaper) and the lying peer's address.
    pub liars: Option<(SocketAddr, String)>,
    pub root_json: PathBuf,
    children: std::sync::Mutex<Vec<(String, Running)>>,
}

impl Services {
    /// Kills the process named `name` (`edge0`, `seed1`, …), as a crash would.
    pub(crate) fn kill(&self, name: &str) -> bool {
        let mut children = self
            .children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = children.len();
        // Dropping a `Running` kills and reaps it.
        children.retain(|(n, _)| n != name);
        children.len() < before
    }
}

/// Starts this binary with `args`, keeps its stderr in `log`, and waits until it has
/// printed `listening <what> ADDR` for every name in `wanted`.
fn spawn(
    args: &[&str],
    log: &Path,
    wanted: &[&str],
) -> anyhow::Result<(Running, HashMap<String, String>)> {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    start_listening(&args, wanted, Some(log))
        .with_context(|| format!("starting swarmdrop (see {})", log.display()))
}

fn addr(found: &HashMap<String, String>, what: &str) -> anyhow::Result<SocketAddr> {
    found
        .get(what)
        .with_context(|| format!("no {what} address"))?
        .parse()
        .with_context(|| format!("the {what} address"))
}

pub(crate) async fn start(work: &Path, args: &DemoArgs) -> anyhow::Result<Services> {
    let tracker_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let tracker_url = format!("http://127.0.0.1:{tracker_port}/announce");
    let keys = work.join("keys");
    swarmdrop_publish::keyset::generate(&keys, 1, 1, true).context("generating keys")?;
    let policy_file = work.join("drop.toml");
    std::fs::write(&policy_file, policy(args.scale)).context("writing the policy")?;
    let out = published(work);
    eprintln!("packing the drop");
    pack(
        &PackOptions {
            assets_dir: work.join("drop"),
            policy_file,
            keys_dir: keys.clone(),
            out_dir: out.clone(),
            trackers: vec![tracker_url.clone()],
            webseeds: vec![],
            expiries: swarmdrop_manifest::tuf::release::Expiries::default(),
            link: LinkMode::Hardlink,
        },
        Clock::System,
        &NoProgress,
    )
    .context("packing the drop")?;
    let s = |p: &Path| p.display().to_string();
    let tracker_listen = format!("127.0.0.1:{tracker_port}");
    // Viewers sign in anonymously with proof of work, each from its own address.
    let config = work.join("serve.toml");
    std::fs::write(&config, SERVE_CONFIG).context("writing serve.toml")?;
    let (serve, found) = spawn(
        &[
            "serve",
            &s(&out),
            "--config",
            &s(&config),
            "--origin",
            "127.0.0.1:0",
            "--tracker-http",
            &tracker_listen,
            "--tracker-udp",
            "",
            "--gateway",
            "127.0.0.1:0",
            "--signing-key",
            &s(&keys.join("receipts.key")),
            "--drop",
            "demo-drop",
            "--domain",
            "demo.localhost",
            "--uri",
            "http://demo.localhost/",
            "--state",
            &s(&work.join("state.sqlite")),
        ],
        &work.join("serve.log"),
        &["origin", "gateway", "tracker-http"],
    )?;
    let origin_direct = addr(&found, "origin")?;
    let gateway = addr(&found, "gateway")?;
    let origin_shaper = shaper::start(
        "127.0.0.2",
        origin_direct,
        Some(args.origin_upload),
        Duration::from_millis(args.origin_rtt),
    )
    .await?;
    let root_json = out.join("metadata/1.root.json");
    let mut children = vec![("serve".to_owned(), serve)];
    let (mut edges, mut edge_sent) = (Vec::new(), Vec::new());
    for k in 0..2 {
        // A two-tier cache, as CDNs shield an origin: edge0 fills from the origin, edge1
        // from edge0 (through edge0's link), so the origin sends each object once.
        let upstream = edges.first().copied().unwrap_or(origin_shaper.addr);
        let link = args.edge_upload;
        // The edge paces itself a little under its link, as an operator sets a shaper
        // under the line rate: the queue then forms in the edge, which sends the most
        // urgent responses first (RFC 9218), not in the link, which cannot tell a
        // checkout page from a bulk range.
        let pace = (link / 100 * 95).max(1).to_string();
        let (edge, found) = spawn(
            &[
                "edge",
                "--origin",
                &format!("http://{upstream}/"),
                "--cache-dir",
                &s(&work.join(format!("edge{k}"))),
                "--root",
                &s(&root_json),
                "--listen",
                &format!("127.0.0.{}:0", 10 + k),
                "--upload-limit",
                &pace,
            ],
            &work.join(format!("edge{k}.log")),
            &["edge"],
        )?;
        children.push((format!("edge{k}"), edge));
        let shaped = shaper::start(
            &format!("127.0.0.{}", 30 + k),
            addr(&found, "edge")?,
            Some(link),
            Duration::from_millis(args.edge_rtt),
        )
        .await?;
        edges.push(shaped.addr);
        edge_sent.push(shaped.sent);
    }
    let mut seeders = Vec::new();
    for k in 0..2 {
        let (seeder, found) = spawn(
            &[
                "seed",
                &s(&out),
                "--listen",
                &format!("127.0.0.{}:0", 20 + k),
                "--upload-limit",
                &args.seeder_upload.to_string(),
            ],
            &work.join(format!("seed{k}.log")),
            &["seed"],
        )?;
        children.push((format!("seed{k}"), seeder));
        seeders.push(found.get("seed").cloned().unwrap_or_default());
    }
    // The creator pre-positions the drop on the edges before it opens, the way a CDN is
    // warmed for a scheduled release: the origin sends each object once (to edge0; edge1
    // fills from edge0), and no viewer's range waits behind a cold edge's fill. Edge
    // egress is counted from the opening, so warming does not count as serving viewers.
    for edge in &edges {
        warm(*edge, &out).await?;
    }
    for sent in &edge_sent {
        sent.store(0, std::sync::atomic::Ordering::Relaxed);
    }
    let liars = if args.liar {
        Some(start_liars(work, &out, args, &mut children).await?)
    } else {
        None
    };
    Ok(Services {
        origin: origin_shaper.addr,
        origin_direct,
        origin_sent: origin_shaper.sent,
        gateway,
        tracker: format!("127.0.0.1:{tracker_port}").parse()?,
        edges,
        edge_sent,
        seeders,
        liars,
        root_json,
        children: std::sync::Mutex::new(children),
    })
}

/// `--liar`: a lying peer (a real seeder of a damaged copy of the drop) and a lying edge
/// behind a shaper like the honest edges'.
async fn start_liars(
    work: &Path,
    published: &Path,
    args: &DemoArgs,
    children: &mut Vec<(String, Running)>,
) -> anyhow::Result<(SocketAddr, String)> {
    let copy = work.join("liar-published");
    liar::copy_published(published, &copy)?;
    let s = |p: &Path| p.display().to_string();
    let (seeder, found) = spawn(
        &[
            "seed",
            &s(&copy),
            "--listen",
            "127.0.0.22:0",
            "--upload-limit",
            &args.seeder_upload.to_string(),
        ],
        &work.join("liar-seed.log"),
        &["seed"],
    )?;
    children.push(("liar-seed".to_owned(), seeder));
    // Damaged only now: the seeder verified its files before it began listening.
    liar::damage_targets(&copy)?;
    let edge = liar::start_edge("127.0.0.12", published.to_path_buf()).await?;
    let shaped = shaper::start(
        "127.0.0.32",
        edge,
        Some(args.edge_upload),
        Duration::from_millis(args.edge_rtt),
    )
    .await?;
    Ok((shaped.addr, found.get("seed").cloned().unwrap_or_default()))
}

/// Fetches every published target outside `targets/bulk` through `edge`, so the edge
/// holds it before the first viewer asks.
async fn warm(edge: SocketAddr, published: &Path) -> anyhow::Result<()> {
    let paths: Vec<String> = liar::files_under(&published.join("targets"))?
        .into_iter()
        .filter_map(|path| {
            path.strip_prefix(published)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect();
    let base = swarmdrop_httpc::HttpUrl::parse(&format!("http://{edge}/"))
        .map_err(|e| anyhow::anyhow!("{edge}: {e}"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in paths.chunks(paths.len().div_ceil(8).max(1)) {
        let (base, chunk) = (base.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for path in chunk {
                let url = base.join(&path);
                let response =
                    swarmdrop_httpc::get(&url, &[], swarmdrop_httpc::Timeouts::default())
                        .await
                        .map_err(|e| anyhow::anyhow!("warming {url}: {e}"))?;
                let status = response.status();
                anyhow::ensure!(status.is_success(), "warming {url}: HTTP {status}");
                // Read to the end (the edge keeps what it filled) without holding it.
                let mut body = response.into_body();
                while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), body.frame())
                    .await
                    .map_err(|_| anyhow::anyhow!("warming {url}: no bytes for 60 s"))?
                {
                    frame.map_err(|e| anyhow::anyhow!("warming {url}: {e}"))?;
                }
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a warming task")??;
    }
    Ok(())
}
