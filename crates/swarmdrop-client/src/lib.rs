//! The hybrid client: a token from the gateway (when asked: anonymous proof of work, or
//! a wallet's Sign-In with Ethereum, [`token`]), the TUF chain from the
//! fastest edge (falling back to the others and the origin), then the `swarmdrop-plan`
//! scheduler carried out over HTTP ranges to the edges and the origin. Every range is
//! checked before it is written (a piece's SHA-1 from the torrent the signed targets pin,
//! or the signed SHA-256), every asset is checked whole before it is renamed into place,
//! and the run ends with a per-class report against the budgets, also sent to the
//! server as a quality report ([`qoe`]). See docs/design/0007-plan.md.
//!
//! Usable as a library: a player or launcher calls [`run`] with a [`Progress`] of its own.

mod assets;
mod fetch;
mod follow;
pub mod mirrors;
pub mod qoe;
mod report;
mod swarm;
pub mod token;
pub mod tuf;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use swarmdrop_manifest::tuf::updater::{Updater, UpdaterConfig};
use swarmdrop_manifest::UtcTime;
use swarmdrop_plan::{AssetSpec, Decision, Estimate, PathId, PathKind, PlanConfig, Planner};
use tokio::sync::mpsc;

pub use report::{by_reason_line, percentile, AssetArrival, ClassReport, Report};

/// What went wrong; each names the file, mirror or asset.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad option.
    #[error("{0}")]
    Usage(String),
    /// No mirror could answer for a file.
    #[error("no mirror could serve {what}: {problems}")]
    Unreachable {
        /// The file.
        what: String,
        /// What each mirror said.
        problems: String,
    },
    /// The gateway refused or failed.
    #[error("gateway: {0}")]
    Gateway(String),
    /// The signed metadata was refused or is incomplete.
    #[error("metadata: {0}")]
    Metadata(String),
    /// Bytes that did not verify where no other path could replace them.
    #[error("verification: {0}")]
    Verification(String),
    /// A local file.
    #[error("{0}")]
    Io(String),
    /// Every allowed path failed for an asset.
    #[error("{0}")]
    Stuck(String),
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The origin's published root (`http://host:port/`).
    pub origin: String,
    /// Edge base URLs.
    pub edges: Vec<String>,
    /// Where the assets are written (under their drop paths).
    pub out_dir: PathBuf,
    /// The root metadata to trust; without it the origin's `1.root.json` is trusted on
    /// first use (and the run says so).
    pub root: Option<PathBuf>,
    /// The gateway's base URL: where a token comes from (see `identity`).
    pub gateway: Option<String>,
    /// How to sign in at `gateway`; `None` fetches without a token.
    pub identity: Option<Identity>,
    /// Where the end-of-run quality report is POSTed (`{gateway}/qoe` for `swarmdrop
    /// serve`); `None` sends none. A report that cannot be sent is a note, not an error.
    pub qoe: Option<String>,
    /// Only these path kinds (policy names), whatever the classes allow.
    pub only_paths: Option<Vec<PathKind>>,
    /// Only these drop paths (default: every target).
    pub assets: Vec<String>,
    /// Write every decision as a JSON line here.
    pub events: Option<PathBuf>,
    /// Where to accept peers (the peer path also dials out without it).
    pub listen: Option<std::net::SocketAddr>,
    /// Peers to connect to, besides the ones the trackers name.
    pub peers: Vec<std::net::SocketAddr>,
    /// Trackers to announce to, besides the torrents' own.
    pub trackers: Vec<String>,
    /// Announce to the torrents' own trackers.
    pub use_trackers: bool,
    /// Keep serving peers once every asset is verified, until interrupted (or until
    /// `stop_seeding` says so).
    pub seed_after: bool,
    /// For a program running viewers: seeding after the download ends when this turns
    /// true (instead of at an interrupt).
    pub stop_seeding: Option<tokio::sync::watch::Receiver<bool>>,
    /// Caps what the peer engine sends to all peers together.
    pub upload_limit: Option<std::sync::Arc<swarmdrop_peer::ratelimit::RateLimit>>,
    /// A player's schedule: the assets of this class, in drop-path order, are needed one
    /// every `interval_ms` from the start (keyframe k at k × interval), and each one's
    /// budget counts from then. Without it every asset is needed at once.
    pub schedule: Option<(String, u64)>,
    /// Follow a live drop: poll `timestamp.json` at the interval its live classes sign
    /// and fetch every new version's new assets, until interrupted (or idle, see
    /// [`Follow`]).
    pub follow: Option<Follow>,
    /// Keep large finished files in the OS page cache once they are flushed. By default
    /// the client drops files of 4 MiB or more from it then (`POSIX_FADV_DONTNEED`; libtorrent's
    /// `disk_io_write_mode = disable_os_cache` keeps written data out of it too), so a drop
    /// of several gigabytes does not push out what the player, the game and the rest of
    /// the machine were using. Whoever reads such a file afterwards reads it from disk, and
    /// seeding reads its pieces back in. Smaller files (keyframes, pages) stay cached.
    pub keep_page_cache: bool,
}

/// How long to follow a live drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Follow {
    /// Stop once every asset is in and no new version has brought new assets for this
    /// long; `None` follows until interrupted.
    pub idle: Option<std::time::Duration>,
}

/// Who the client signs in at the gateway as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Proof of work, no identity (when the drop allows anonymous viewers).
    Anonymous,
    /// Sign-In with Ethereum with the private key in this key file.
    Wallet(PathBuf),
}

/// Progress for a display: totals per class once known, then bytes as they verify.
pub trait Progress: Send + Sync {
    /// `class` will bring `bytes` in total.
    fn class_total(&self, class: &str, bytes: u64);
    /// `bytes` more of `class` verified.
    fn advanced(&self, class: &str, bytes: u64);
    /// A line for the user (warnings, where metadata came from).
    fn note(&self, line: &str);
    /// Every asset is verified and in place (seeding, if asked, goes on after this).
    fn downloaded(&self) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn class_total(&self, _: &str, _: u64) {}
    fn advanced(&self, _: &str, _: u64) {}
    fn note(&self, _: &str) {}
}

const MAX_TORRENT_BYTES: usize = 16 << 20;

/// Fetches the drop's signed targets and every asset; returns the report.
pub async fn run(options: &ClientOptions, progress: &dyn Progress) -> Result<Report, ClientError> {
    let started = Instant::now();
    // A viewer's HTTP calls come from the address it listens on for peers, as they
    // would from its own host.
    let source = options
        .listen
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    let mut mirrors = mirrors::parse_mirrors(&options.origin, &options.edges, source)?;
    let token = sign_in(options, source, progress).await?;
    let bearer = token.as_ref().map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    mirrors::probe(&mut mirrors, &headers).await;
    // Metadata and torrents come from any mirror, whatever `--paths` allows for assets:
    // they are small, signed, and needed before any path can be used.
    let trusted = refresh(options, &mirrors, &mirrors, &headers, progress).await?;
    let targets = trusted
        .targets()
        .map(|t| t.targets.clone())
        .unwrap_or_default();
    let mut assets = Vec::new();
    for (name, target) in &targets {
        if options.assets.is_empty() || options.assets.contains(name) {
            assets.push(assets::Asset::new(name, target, &options.out_dir)?);
        }
    }
    for wanted in &options.assets {
        if !targets.contains_key(wanted) {
            return Err(ClientError::Metadata(format!(
                "{wanted} is not a signed target"
            )));
        }
    }
    load_torrents(&mut assets, &targets, &mirrors, &headers).await?;
    let followed = options.follow.map(|_| {
        let interval = follow::poll_interval(&targets).unwrap_or_else(|| {
            progress.note(&format!(
                "following: the drop signs no live class (poll_ms); polling every {} s",
                follow::DEFAULT_POLL.as_secs()
            ));
            follow::DEFAULT_POLL
        });
        follow::Poller {
            options: options.clone(),
            mirrors: mirrors.clone(),
            bearer: bearer.clone(),
            interval,
            known: targets.iter().map(|(n, t)| follow::key(n, t)).collect(),
            versions: follow::Versions::of(&trusted),
        }
        .start()
    });
    fetch::carry_out(
        options, &mirrors, &headers, assets, started, progress, followed,
    )
    .await
}

/// The token `options` ask for, if any.
async fn sign_in(
    options: &ClientOptions,
    source: Option<std::net::IpAddr>,
    progress: &dyn Progress,
) -> Result<Option<String>, ClientError> {
    let (gateway, identity) = match (&options.gateway, &options.identity) {
        (Some(gateway), Some(identity)) => (gateway, identity),
        (None, Some(_)) => {
            return Err(ClientError::Usage(
                "signing in needs the gateway's URL (--gateway)".into(),
            ))
        }
        (_, None) => return Ok(None),
    };
    let token = match identity {
        Identity::Anonymous => token::anonymous(gateway, source).await?,
        Identity::Wallet(path) => {
            // The key is read before any request, so a bad file fails fast.
            let key = token::wallet::WalletKey::load(path)?;
            let token = token::wallet::sign_in(gateway, &key, system_time()?, source).await?;
            progress.note(&format!("signed in as {}", key.address()));
            token
        }
    };
    Ok(Some(token))
}

fn allowed(options: &ClientOptions, mirror: &mirrors::Mirror) -> bool {
    let kind = if mirror.label == "origin" {
        PathKind::Origin
    } else {
        PathKind::Edge
    };
    options
        .only_paths
        .as_ref()
        .is_none_or(|only| only.contains(&kind))
}

/// The TUF walk over the mirrors (edges first); the anchor is `--root`, else the origin's
/// first root on trust.
async fn refresh(
    options: &ClientOptions,
    all: &[mirrors::Mirror],
    mirrors: &[mirrors::Mirror],
    headers: &[(&str, &str)],
    progress: &dyn Progress,
) -> Result<swarmdrop_manifest::tuf::TrustedSet, ClientError> {
    let anchor = match &options.root {
        Some(path) => tokio::fs::read(path)
            .await
            .map_err(|e| ClientError::Io(format!("{}: {e}", path.display())))?,
        None => {
            let origin = all.last().map(std::slice::from_ref).unwrap_or_default();
            let first = mirrors::fetch_first(origin, "metadata/1.root.json", 16 << 20, headers)
                .await?
                .ok_or_else(|| {
                    ClientError::Metadata("the origin has no metadata/1.root.json".into())
                })?;
            progress.note(&format!(
                "warning: no --root given; trusting the origin's 1.root.json on first use (sha256 {})",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&first))
            ));
            first.to_vec()
        }
    };
    let mut updater = Updater::new(&anchor, system_time()?, UpdaterConfig::default())
        .map_err(|e| ClientError::Metadata(format!("the trusted root: {e}")))?;
    let source = mirrors::MirrorSource { mirrors, headers };
    tuf::drive(&mut updater, None, &source).await?;
    Ok(updater.into_trusted())
}

/// Each torrent the signed targets pin: fetched, its info hash checked against the
/// signed one, its piece hashes kept to check ranges by.
async fn load_torrents(
    assets: &mut [assets::Asset],
    targets: &BTreeMap<String, swarmdrop_manifest::tuf::metadata::TargetFile>,
    mirrors: &[mirrors::Mirror],
    headers: &[(&str, &str)],
) -> Result<(), ClientError> {
    for asset in assets.iter_mut() {
        let Some(p2p) = targets
            .get(&asset.path)
            .and_then(|t| t.swarmdrop())
            .and_then(|c| c.p2p)
        else {
            continue;
        };
        let bytes = mirrors::fetch_first(mirrors, &p2p.torrent, MAX_TORRENT_BYTES, headers)
            .await?
            .ok_or_else(|| ClientError::Metadata(format!("{} is missing", p2p.torrent)))?;
        let meta = swarmdrop_manifest::torrent::Metainfo::parse(&bytes)
            .map_err(|e| ClientError::Metadata(format!("{}: {e}", p2p.torrent)))?;
        if meta.info_hash != p2p.infohash || meta.length != asset.length {
            return Err(ClientError::Metadata(format!(
                "{}: not the torrent the signed targets pin for {}",
                p2p.torrent, asset.path
            )));
        }
        // The engine cuts pieces by the torrent's length, the checks by the signed one.
        if meta.piece_length != u64::from(p2p.piece_length) {
            return Err(ClientError::Metadata(format!(
                "{}: pieces of {} bytes, but the signed targets say {} for {}",
                p2p.torrent, meta.piece_length, p2p.piece_length, asset.path
            )));
        }
        if let Some(states) = &p2p.sha256_midstates {
            let mut sha256 = [0u8; 32];
            hex::decode_to_slice(&asset.sha256, &mut sha256).map_err(|_| {
                ClientError::Metadata(format!("{}: the signed sha256 is not hex", asset.path))
            })?;
            let midstates = swarmdrop_manifest::midstates::Midstates::from_hex(
                states,
                p2p.piece_length,
                asset.length,
                sha256,
            )
            .map_err(|e| ClientError::Metadata(format!("{}: sha256_midstates: {e}", asset.path)))?;
            asset.midstates = Some(std::sync::Arc::new(midstates));
        }
        asset.pieces = Some((p2p.piece_length, meta.pieces.clone()));
        asset.meta = Some(meta);
    }
    Ok(())
}

/// The reference time of a refresh: the system clock, read once.
pub(crate) fn system_time() -> Result<UtcTime, ClientError> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UtcTime::from_unix(i64::try_from(seconds).unwrap_or(i64::MAX))
        .map_err(|e| ClientError::Usage(format!("the system clock: {e}")))
}

/// The planner's path for a mirror.
fn path_of(index: usize, mirror: &mirrors::Mirror) -> PathId {
    if mirror.label == "origin" {
        PathId::ORIGIN
    } else {
        PathId::edge(index as u16)
    }
}

fn plan_kind(kind: swarmdrop_manifest::model::PathKind) -> PathKind {
    match kind {
        swarmdrop_manifest::model::PathKind::P2p => PathKind::P2p,
        swarmdrop_manifest::model::PathKind::Edge => PathKind::Edge,
        swarmdrop_manifest::model::PathKind::Origin => PathKind::Origin,
    }
}

/// A planner with every reachable mirror as a path (priors: the probe's RTT, 100 Mbit/s).
fn planner_for(mirrors: &[mirrors::Mirror], options: &ClientOptions) -> Planner {
    let mut planner = Planner::new(PlanConfig {
        // Assets without a torrent are checked whole; 32 MiB bounds what one holds.
        chunk_bytes: 32 << 20,
        // Each run starts its background pieces somewhere of its own, so that viewers
        // joining together hold different pieces to trade.
        spread: std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            0u8,
        ),
        ..PlanConfig::default()
    });
    for (index, mirror) in mirrors.iter().enumerate() {
        if !allowed(options, mirror) {
            continue;
        }
        // Edges start optimistic (100 Mbit/s) and prove otherwise; the origin starts
        // pessimistic (0.8 Mbit/s): it is the path of last resort, shared by every viewer
        // at once, and an unmeasured origin must not look better than a measured, busy
        // edge (with a kinder prior, each of a thousand viewers would try it before
        // learning it is crowded).
        let bytes_per_ms = if mirror.label == "origin" {
            100.0
        } else {
            12_500.0
        };
        planner.add_path(
            path_of(index, mirror),
            Estimate {
                rtt_ms: mirror.rtt.map_or(200.0, |r| r.as_secs_f64() * 1e3),
                bytes_per_ms,
            },
        );
    }
    planner
}

fn spec_of(asset: &assets::Asset, kinds: Vec<PathKind>) -> AssetSpec {
    AssetSpec {
        name: asset.path.clone(),
        class: asset.class.clone(),
        length: asset.length,
        piece_length: asset.pieces.as_ref().map(|(p, _)| *p),
        budget_ms: asset.budget_ms,
        paths: kinds,
        spare_edges: asset.spare_edges,
    }
}

/// What a fetch task reports.
enum Event {
    Progress(swarmdrop_plan::FetchId, u64),
    Done(swarmdrop_plan::FetchId, Vec<u8>),
    Failed(swarmdrop_plan::FetchId, String),
    /// The asset at this index was checked whole and put in place (or not).
    Finished(usize, Result<(), ClientError>),
}

type Events = mpsc::UnboundedSender<Event>;

fn decision_line(elapsed_ms: u64, decision: &Decision, asset_names: &[String]) -> String {
    let mut value = serde_json::to_value(decision).unwrap_or_default();
    if let (Some(map), Decision::Fetch { asset, .. } | Decision::Urgent { asset, .. }) =
        (value.as_object_mut(), decision)
    {
        if let Some(name) = asset_names.get(asset.0 as usize) {
            map.insert("asset_path".into(), name.clone().into());
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.insert("t_ms".into(), elapsed_ms.into());
    }
    value.to_string()
}
