//! `swarmdrop edge`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use swarmdrop_edge::config::DEFAULT_CONFIG;
use swarmdrop_edge::{Edge, EdgeConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// The origin: base URL of a published directory (http://HOST:PORT/).
    #[arg(long, value_name = "URL")]
    origin: Option<String>,
    /// Listen address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The edge's cache directory (disk tier, verified metadata).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The drop's trusted root.json (default: trust the origin's on first use).
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// Pace the edge's upload to RATE per second (e.g. 60MiB), most urgent responses
    /// first by their RFC 9218 Priority header (limits.upload_bytes_per_second).
    #[arg(long, value_name = "RATE")]
    upload_limit: Option<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some((text, file)) = args.config.load(DEFAULT_CONFIG)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut config = EdgeConfig::parse(&text, &file).map_err(anyhow::Error::msg)?;
    if let Some(origin) = &args.origin {
        config.origin = origin.clone();
    }
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if let Some(dir) = &args.cache_dir {
        config.cache_dir = dir.clone();
    }
    if let Some(root) = &args.root {
        config.root = root.clone();
    }
    if let Some(rate) = &args.upload_limit {
        config.limits.upload_bytes_per_second = swarmdrop_bench::parse_size(rate)
            .with_context(|| format!("--upload-limit {rate:?}"))?;
    }
    let edge = Arc::new(Edge::new(config).context("edge")?);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(edge.config.listen.as_str())
        .with_context(|| format!("listen address {:?}", edge.config.listen))?
        .next()
        .with_context(|| {
            format!(
                "listen address {:?} resolves to nothing",
                edge.config.listen
            )
        })?;
    let listener =
        swarmdrop_edge::server::shared_listener(addr).with_context(|| format!("binding {addr}"))?;
    // Bound: connections queue in the kernel from here on, and are served once the
    // metadata is loaded (on a runtime of its own, so every serving thread starts with it).
    eprintln!(
        "listening edge {}",
        listener.local_addr().context("edge address")?
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(swarmdrop_edge::server::prepare(&edge));
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    swarmdrop_edge::server::serve_per_core(edge, listener, threads).context("edge")?;
    Ok(ExitCode::SUCCESS)
}
