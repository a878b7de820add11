//! `swarmdrop serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use swarmdrop_serve::ServeConfig;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The published directory (what `swarmdrop pack --out` wrote).
    #[arg(value_name = "PUBLISHED")]
    published: Option<PathBuf>,
    #[command(flatten)]
    config: super::ConfigFile,
    /// The state file (SQLite; created when missing).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The origin's listen address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    origin: Option<String>,
    /// The tracker's HTTP listen address ("" turns it off).
    #[arg(long, value_name = "ADDR")]
    tracker_http: Option<String>,
    /// The tracker's UDP listen address ("" turns it off).
    #[arg(long, value_name = "ADDR")]
    tracker_udp: Option<String>,
    /// The gateway's listen address ("" runs without a gateway).
    #[arg(long, value_name = "ADDR")]
    gateway: Option<String>,
    /// The gateway's token signing key (PKCS#8 PEM from `swarmdrop keygen`).
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// The drop the gateway's tokens admit to.
    #[arg(long, value_name = "NAME")]
    drop: Option<String>,
    /// The SIWE domain messages must name.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// The SIWE URI messages must sign in to.
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
}

fn set<T: Clone>(field: &mut T, flag: Option<&T>) {
    if let Some(value) = flag {
        *field = value.clone();
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let defaults = swarmdrop_serve::default_config();
    let Some((text, file)) = args.config.load(&defaults)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut config = ServeConfig::parse(&text, &file)?;
    set(&mut config.published, args.published.as_ref());
    set(&mut config.state, args.state.as_ref());
    set(&mut config.origin.listen, args.origin.as_ref());
    set(&mut config.tracker.http, args.tracker_http.as_ref());
    set(&mut config.tracker.udp, args.tracker_udp.as_ref());
    set(&mut config.gateway.listen, args.gateway.as_ref());
    set(&mut config.gateway.signing_key, args.signing_key.as_ref());
    set(&mut config.gateway.drop, args.drop.as_ref());
    set(&mut config.gateway.domain, args.domain.as_ref());
    set(&mut config.gateway.uri, args.uri.as_ref());
    let drain = config.drain_timeout;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let shutdown = async move {
        swarmdrop_serve::signalled().await;
        eprintln!("shutting down: draining requests in flight (up to {drain:?})");
    };
    let result = runtime.block_on(swarmdrop_serve::run(config, shutdown, |service, addr| {
        eprintln!("listening {service} {addr}");
    }));
    // The tracker's UDP thread blocks in recvmmsg and has nothing in flight: do not
    // wait for it (the runtime would otherwise wait forever).
    runtime.shutdown_timeout(Duration::from_millis(200));
    result.context("serve")?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}
