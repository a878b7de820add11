//! `swarmdrop gateway`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use swarmdrop_gateway::config::DEFAULT_CONFIG;
use swarmdrop_gateway::{Gateway, GatewayConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Listen address (port 0 picks a free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// SIWE domain messages must name.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// SIWE URI messages must sign in to.
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
    /// EIP-155 chain id.
    #[arg(long, value_name = "N")]
    chain_id: Option<u64>,
    /// ed25519 private key that signs tokens (PKCS#8 PEM from `swarmdrop keygen`).
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// The drop tokens admit to.
    #[arg(long, value_name = "NAME")]
    drop: Option<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some((text, file)) = args.config.load(DEFAULT_CONFIG)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut config = GatewayConfig::parse(&text, &file)?;
    if let Some(v) = &args.listen {
        config.listen = v.clone();
    }
    if let Some(v) = &args.domain {
        config.domain = v.clone();
    }
    if let Some(v) = &args.uri {
        config.uri = v.clone();
    }
    if let Some(v) = args.chain_id {
        config.chain_id = v;
    }
    if let Some(v) = &args.signing_key {
        config.signing_key = v.clone();
    }
    if let Some(v) = &args.drop {
        config.drop = v.clone();
    }
    let listen = config.listen.clone();
    let gateway = Arc::new(Gateway::new(config).context("starting the gateway")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let address = listener.local_addr().context("reading the bound address")?;
        eprintln!("listening gateway {address}");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        swarmdrop_gateway::serve(gateway, listener, shutdown)
            .await
            .context("serving")
    })?;
    Ok(ExitCode::SUCCESS)
}
