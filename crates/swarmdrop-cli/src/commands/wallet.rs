//! `swarmdrop wallet new`: a key file for `swarmdrop get --wallet`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use swarmdrop_client::token::wallet::WalletKey;

/// Ethereum wallet key files for signing in at a gateway (SIWE).
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Wallet {
    /// Write a fresh secp256k1 private key (0x and 64 hex digits, mode 0600) and print
    /// its checksummed address. For trying `get --wallet`; a real viewer signs in with
    /// the wallet they hold.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The key file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing file. The key in it is gone for good.
    #[arg(long)]
    force: bool,
    /// Print `{"address", "file"}` as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(wallet: &Wallet) -> anyhow::Result<ExitCode> {
    let Wallet::New(args) = wallet;
    let key = WalletKey::generate()?;
    key.write_new(&args.out, args.force)
        .with_context(|| format!("writing the key file {}", args.out.display()))?;
    let address = key.address().to_checksummed();
    if args.json {
        super::print_json(&serde_json::json!({ "address": address, "file": args.out }))?;
    } else {
        println!("{address}");
        eprintln!(
            "wrote {} (mode 0600); sign in with `swarmdrop get URL --gateway G --wallet {}`",
            args.out.display(),
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
