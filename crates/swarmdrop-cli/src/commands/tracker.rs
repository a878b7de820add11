//! `swarmdrop tracker`.

use std::process::ExitCode;

use anyhow::Context as _;
use swarmdrop_tracker::server::config::DEFAULT_CONFIG;
use swarmdrop_tracker::server::{bind, run as serve, TrackerConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// HTTP listen address ("" to turn HTTP off; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// UDP listen address ("" to turn UDP off; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    udp: Option<String>,
    /// Serve any info hash (an open tracker).
    #[arg(long)]
    open: bool,
    /// Serve this info hash (40 hex digits; repeatable), besides the config's.
    #[arg(long = "infohash", value_name = "HEX")]
    infohashes: Vec<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some((text, file)) = args.config.load(DEFAULT_CONFIG)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut config = TrackerConfig::parse(&text, &file).map_err(anyhow::Error::msg)?;
    if let Some(http) = &args.http {
        config.http = http.clone();
    }
    if let Some(udp) = &args.udp {
        config.udp = udp.clone();
    }
    config.open |= args.open;
    config
        .known_infohashes
        .extend(args.infohashes.iter().cloned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listeners = bind(&config)
            .await
            .context("binding the tracker's listeners")?;
        if let Some(http) = &listeners.http {
            eprintln!(
                "listening tracker-http {}",
                http.local_addr().context("HTTP address")?
            );
        }
        if let Some(udp) = &listeners.udp {
            eprintln!(
                "listening tracker-udp {}",
                udp.local_addr().context("UDP address")?
            );
        }
        tokio::select! {
            result = serve(config, listeners) => result.context("tracker"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
