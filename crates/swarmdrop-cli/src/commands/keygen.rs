//! `swarmdrop keygen`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory to write the keys into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Distinct root keys that must sign a root.
    #[arg(long, value_name = "N", default_value_t = 1)]
    root_threshold: u32,
    /// Root keys to generate (default: the threshold).
    #[arg(long, value_name = "M")]
    root_keys: Option<u32>,
    /// Replace existing keys in DIR. The old keys are gone for good.
    #[arg(long)]
    force: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let root_keys = args.root_keys.unwrap_or(args.root_threshold);
    let report =
        swarmdrop_publish::keyset::generate(&args.out, root_keys, args.root_threshold, args.force)
            .with_context(|| format!("generating keys in {}", args.out.display()))?;
    if args.json {
        super::print_json(&report)?;
    } else {
        println!(
            "wrote {} files to {}",
            report.files.len(),
            report.dir.display()
        );
        for (stem, key_id) in &report.key_ids {
            println!("  {stem:<10} {key_id}");
        }
        println!(
            "root threshold {} of {root_keys}; private keys are 0600 — keep the root keys offline after the first pack",
            report.root_threshold
        );
    }
    Ok(ExitCode::SUCCESS)
}
