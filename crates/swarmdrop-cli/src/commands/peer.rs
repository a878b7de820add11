//! `swarmdrop seed` and `swarmdrop get --p2p-only`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use swarmdrop_manifest::torrent::Metainfo;
use swarmdrop_peer::{run, run_all, serve_metrics, FileStore, Job, PeerMetrics, PeerOptions};

#[derive(Debug, clap::Args)]
pub(crate) struct SeedArgs {
    /// A published drop directory (its signed metadata is verified, then every asset
    /// with a torrent is seeded from PUBLISHED/targets on one port), or one asset's
    /// torrent (single-file, v1) with --data.
    #[arg(value_name = "PUBLISHED|FILE.torrent")]
    source: PathBuf,
    /// The asset's data, for a torrent file (checked piece by piece before seeding).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// For PUBLISHED: the root metadata to trust (obtained out of band); without it,
    /// PUBLISHED's own metadata/1.root.json is trusted on first use.
    #[arg(long, value_name = "ROOT.json")]
    root: Option<PathBuf>,
    /// Where to accept peers (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:6881")]
    listen: SocketAddr,
    #[command(flatten)]
    swarm: SwarmArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct GetArgs {
    /// The drop's origin URL (its published root, `http://host:port/`); with
    /// `--p2p-only`, an asset's torrent (single-file, v1) or a magnet link.
    #[arg(value_name = "URL|FILE.torrent|MAGNET")]
    pub(crate) torrent: String,
    /// Directory to write into: every asset under its drop path (a partial file from
    /// `--p2p-only` is resumed).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Peers only: one asset's torrent or magnet, from BitTorrent peers alone.
    #[arg(long)]
    p2p_only: bool,
    #[command(flatten)]
    pub(crate) hybrid: super::fetch::HybridArgs,
    /// Where to accept peers (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    #[command(flatten)]
    pub(crate) swarm: SwarmArgs,
}

/// How `seed` and `get` find peers, and where they report.
#[derive(Debug, clap::Args)]
pub(crate) struct SwarmArgs {
    /// Connect to this peer (repeatable).
    #[arg(long = "peer", value_name = "ADDR")]
    pub(crate) peers: Vec<SocketAddr>,
    /// Do not announce to the torrent's trackers.
    #[arg(long)]
    pub(crate) no_trackers: bool,
    /// Also announce to this HTTP tracker (repeatable).
    #[arg(long = "tracker", value_name = "URL")]
    pub(crate) trackers: Vec<String>,
    /// Serve Prometheus counters at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Protocol encryption (MSE). `plain`: dial in plain BitTorrent, accept plain and MSE.
    /// `prefer`: dial with MSE offering plaintext or RC4, accept both. `require`: dial and
    /// accept only MSE with RC4, for peers or networks that refuse plain BitTorrent.
    #[arg(long, value_enum, default_value_t = EncryptionArg::Plain)]
    encryption: EncryptionArg,
    /// Cap what is sent to all peers together (like 2MiB, per second).
    #[arg(long, value_name = "RATE")]
    pub(crate) upload_limit: Option<String>,
}

/// `--upload-limit` as a shared limiter.
pub(crate) fn upload_limit(
    args: &SwarmArgs,
) -> anyhow::Result<Option<std::sync::Arc<swarmdrop_peer::ratelimit::RateLimit>>> {
    args.upload_limit
        .as_deref()
        .map(|text| {
            swarmdrop_bench::parse_size(text)
                .map(|rate| std::sync::Arc::new(swarmdrop_peer::ratelimit::RateLimit::new(rate)))
                .with_context(|| format!("--upload-limit {text:?}"))
        })
        .transpose()
}

/// `--encryption` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum EncryptionArg {
    Plain,
    Prefer,
    Require,
}

impl From<EncryptionArg> for swarmdrop_peer::Encryption {
    fn from(arg: EncryptionArg) -> Self {
        match arg {
            EncryptionArg::Plain => swarmdrop_peer::Encryption::Plain,
            EncryptionArg::Prefer => swarmdrop_peer::Encryption::Prefer,
            EncryptionArg::Require => swarmdrop_peer::Encryption::Require,
        }
    }
}

/// The bencoded `info` dictionary of a torrent file, as it appears in it.
fn info_bytes(torrent: &[u8]) -> Option<bytes::Bytes> {
    let decoder = swarmdrop_bencode::Decoder {
        require_sorted_keys: false,
        ..swarmdrop_bencode::Decoder::default()
    };
    let value = decoder.decode(torrent).ok()?;
    let info = value.as_dict()?.get(b"info")?.as_dict()?.encoded();
    Some(bytes::Bytes::copy_from_slice(info))
}

fn read_torrent(path: &PathBuf) -> anyhow::Result<(Metainfo, Option<bytes::Bytes>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = Metainfo::parse(&bytes).with_context(|| format!("{}", path.display()))?;
    check_single_file(&meta, &path.display().to_string())?;
    Ok((meta, info_bytes(&bytes)))
}

fn check_single_file(meta: &Metainfo, what: &str) -> anyhow::Result<()> {
    if meta.files.len() != 1 {
        bail!("{what}: a multi-file torrent; swarmdrop publishes one torrent per asset and seeds only those");
    }
    Ok(())
}

/// A torrent file, or a magnet link whose metadata is fetched from peers first.
fn resolve(
    source: &str,
    runtime: &tokio::runtime::Runtime,
    peers: &[SocketAddr],
    trackers: &mut Vec<String>,
) -> anyhow::Result<(Metainfo, Option<bytes::Bytes>)> {
    if !source.starts_with("magnet:") {
        return read_torrent(&PathBuf::from(source));
    }
    let magnet = swarmdrop_peer::magnet::parse_magnet(source)?;
    trackers.extend(magnet.trackers.iter().cloned());
    let mut id = *b"-SD0001-000000000000";
    getrandom::getrandom(&mut id[8..]).context("the OS random number generator")?;
    eprintln!(
        "fetching the metadata of {} from peers",
        hex::encode(magnet.info_hash)
    );
    let info = runtime.block_on(swarmdrop_peer::magnet::fetch_metadata(
        &magnet,
        peers,
        trackers,
        id,
        std::time::Duration::from_secs(15),
    ))?;
    let mut torrent = b"d4:info".to_vec();
    torrent.extend_from_slice(&info);
    torrent.push(b'e');
    let meta = Metainfo::parse(&torrent).context("the fetched metadata")?;
    check_single_file(&meta, "the magnet's torrent")?;
    Ok((meta, Some(info)))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn start_metrics(
    runtime: &tokio::runtime::Runtime,
    addr: Option<SocketAddr>,
    metrics: &PeerMetrics,
) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("binding the metrics address {addr}"))?;
        eprintln!(
            "listening metrics {}",
            listener.local_addr().context("metrics address")?
        );
        runtime.spawn(serve_metrics(listener, metrics.clone()));
    }
    Ok(())
}

/// The torrents of a verified published directory, ready to seed.
fn published_jobs(args: &SeedArgs) -> anyhow::Result<Vec<Job>> {
    use swarmdrop_publish::verify::{verify, VerifyOptions};
    let options = VerifyOptions {
        published: args.source.clone(),
        trusted_root: args.root.clone(),
        assets: Vec::new(),
        now: swarmdrop_publish::pack::Clock::System.now(),
    };
    eprintln!("verifying {}", args.source.display());
    let report = verify(&options, &|_| {})
        .with_context(|| format!("verification of {} failed", args.source.display()))?;
    let mut jobs = Vec::new();
    for asset in &report.assets {
        let Some(torrent) = &asset.torrent_file else {
            continue;
        };
        let (meta, metadata) = read_torrent(torrent)?;
        let piece_length = u32::try_from(meta.piece_length).context("piece length")?;
        let store = FileStore::open(&asset.data_file, meta.length, piece_length, false)
            .with_context(|| format!("opening {}", asset.data_file.display()))?;
        eprintln!("seeding {} ({})", asset.path, meta.info_hash);
        jobs.push(Job {
            meta,
            store,
            metadata,
            progress: Box::new(|_, _| {}),
            verified: true,
            steer: None,
            check: None,
        });
    }
    if jobs.is_empty() {
        bail!(
            "{}: no asset has a torrent (no class of its policy lists the p2p path)",
            args.source.display()
        );
    }
    Ok(jobs)
}

/// One asset's torrent and data, checked piece by piece.
fn torrent_job(torrent: &PathBuf, data: Option<&PathBuf>) -> anyhow::Result<Job> {
    let data = data.with_context(|| {
        format!(
            "{}: a torrent file needs --data FILE (or pass a published directory)",
            torrent.display()
        )
    })?;
    let (meta, metadata) = read_torrent(torrent)?;
    let piece_length = u32::try_from(meta.piece_length).context("piece length")?;
    let mut store = FileStore::open(data, meta.length, piece_length, false)
        .with_context(|| format!("opening {}", data.display()))?;
    let have = store.recheck(&meta.pieces);
    if !have.is_full() {
        bail!(
            "{}: {} of {} pieces match the torrent; seed only complete data",
            data.display(),
            have.count(),
            have.len()
        );
    }
    Ok(Job {
        meta,
        store,
        metadata,
        progress: Box::new(|_, _| {}),
        verified: true,
        steer: None,
        check: None,
    })
}

pub(crate) fn seed(args: &SeedArgs) -> anyhow::Result<ExitCode> {
    let jobs = if args.source.is_dir() {
        if args.data.is_some() {
            bail!(
                "--data is for a torrent file; a published directory seeds from its own targets/"
            );
        }
        published_jobs(args)?
    } else {
        vec![torrent_job(&args.source, args.data.as_ref())?]
    };
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("seed address")?;
    eprintln!("listening seed {addr}");
    let options = PeerOptions {
        connect: args.swarm.peers.clone(),
        use_trackers: !args.swarm.no_trackers,
        extra_trackers: args.swarm.trackers.clone(),
        keep_seeding: true,
        metrics: PeerMetrics::default(),
        metadata: None,
        encryption: args.swarm.encryption.into(),
        upload_limit: upload_limit(&args.swarm)?,
        // A seeder or a peers-only download is the process's whole job.
        background: false,
    };
    let runtime = runtime()?;
    start_metrics(&runtime, args.swarm.metrics, &options.metrics)?;
    runtime
        .block_on(run_all(jobs, options, Some(listener)))
        .context("seeding")?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn get(args: &GetArgs) -> anyhow::Result<ExitCode> {
    if !args.p2p_only {
        return super::fetch::get(args);
    }
    let runtime = runtime()?;
    let mut trackers = args.swarm.trackers.clone();
    let (meta, metadata) = resolve(&args.torrent, &runtime, &args.swarm.peers, &mut trackers)?;
    let piece_length = u32::try_from(meta.piece_length).context("piece length")?;
    let name = &meta.files[0].path;
    if name.contains('/') || name.contains('\\') || name.starts_with('.') || name.is_empty() {
        bail!("{}: unsafe file name {name:?}", args.torrent);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join(name);
    let store = FileStore::open(&path, meta.length, piece_length, true)
        .with_context(|| format!("opening {}", path.display()))?;
    let bar = indicatif::ProgressBar::new(meta.pieces.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} pieces {elapsed_precise}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let reporter = bar.clone();
    let listener = match args.listen {
        Some(addr) => {
            Some(std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?)
        }
        None => None,
    };
    let options = PeerOptions {
        connect: args.swarm.peers.clone(),
        use_trackers: !args.swarm.no_trackers,
        extra_trackers: trackers,
        keep_seeding: false,
        metrics: PeerMetrics::default(),
        metadata,
        encryption: args.swarm.encryption.into(),
        upload_limit: upload_limit(&args.swarm)?,
        // A seeder or a peers-only download is the process's whole job.
        background: false,
    };
    start_metrics(&runtime, args.swarm.metrics, &options.metrics)?;
    let summary = runtime
        .block_on(run(
            meta,
            store,
            options,
            listener,
            Box::new(move |have, _| reporter.set_position(u64::from(have))),
        ))
        .context("downloading")?;
    bar.finish();
    if summary.have != summary.pieces {
        bail!("stopped with {} of {} pieces", summary.have, summary.pieces);
    }
    eprintln!(
        "done: {} ({} pieces verified; {} failed their hash, {} peers banned)",
        path.display(),
        summary.pieces,
        summary.hash_failures,
        summary.banned
    );
    Ok(ExitCode::SUCCESS)
}
