//! `swarmdrop tuf-client`: the TUF client workflow with a metadata directory, following
//! the client contract of the TUF conformance suite (theupdateframework/tuf-conformance,
//! `CLIENT-CLI.md`): exit 0 when the step succeeded fully, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use swarmdrop_client::tuf::{download, refresh, MetadataDir};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  swarmdrop tuf-client --metadata-dir meta init root.json\n  swarmdrop tuf-client --metadata-dir meta --metadata-url http://127.0.0.1:8000/metadata/ refresh\n  swarmdrop tuf-client --metadata-dir meta --metadata-url http://127.0.0.1:8000/metadata/ \\\n      --target-name a/b.txt --target-base-url http://127.0.0.1:8000/targets/ --target-dir out download"
)]
pub(crate) struct Args {
    /// Where trusted metadata is kept between runs (root.json, timestamp.json,
    /// snapshot.json, targets.json and delegated roles as <quoted name>.json).
    #[arg(long, value_name = "DIR")]
    metadata_dir: PathBuf,
    /// The repository's metadata URL (refresh, download).
    #[arg(long, value_name = "URL")]
    metadata_url: Option<String>,
    /// The target path to download, as the targets metadata lists it (download).
    #[arg(long, value_name = "PATH")]
    target_name: Option<String>,
    /// The repository's targets URL (download).
    #[arg(long, value_name = "URL")]
    target_base_url: Option<String>,
    /// Where verified targets are stored, each as its quoted target path (download).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Print what was done as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    step: Step,
}

#[derive(Debug, clap::Subcommand)]
enum Step {
    /// Trust this root.json from now on (copied as given; no network).
    Init {
        /// The root metadata obtained out of band.
        #[arg(value_name = "TRUSTED_ROOT")]
        trusted_root: PathBuf,
    },
    /// Bring the trusted metadata up to date (root rotations, timestamp, snapshot,
    /// targets), refusing rollbacks, freezes, mix-and-match and bad signatures.
    Refresh,
    /// Refresh, find --target-name through the delegations, and store it verified in
    /// --target-dir (a stored copy that still matches is not fetched again).
    Download,
}

fn required<'a, T>(value: &'a Option<T>, flag: &str) -> anyhow::Result<&'a T> {
    value
        .as_ref()
        .with_context(|| format!("this step needs {flag}"))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = MetadataDir::new(&args.metadata_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = match &args.step {
        Step::Init { trusted_root } => {
            let root = std::fs::read(trusted_root)
                .with_context(|| format!("reading {}", trusted_root.display()))?;
            dir.init(&root)?;
            serde_json::json!({ "initialized": args.metadata_dir })
        }
        Step::Refresh => {
            let url = required(&args.metadata_url, "--metadata-url")?;
            let updater = runtime.block_on(refresh(&dir, url))?;
            for note in updater.notes() {
                eprintln!("note: {note}");
            }
            let versions = |v: Option<u64>| v.map_or(serde_json::Value::Null, |v| v.into());
            let trusted = updater.trusted();
            serde_json::json!({
                "root": trusted.root().version,
                "timestamp": versions(trusted.timestamp().map(|t| t.version)),
                "snapshot": versions(trusted.snapshot().map(|s| s.version)),
                "targets": versions(trusted.targets().map(|t| t.version)),
            })
        }
        Step::Download => {
            let url = required(&args.metadata_url, "--metadata-url")?;
            let name = required(&args.target_name, "--target-name")?;
            let base = required(&args.target_base_url, "--target-base-url")?;
            let target_dir = required(&args.target_dir, "--target-dir")?;
            let done = runtime.block_on(download(&dir, url, name, base, target_dir))?;
            serde_json::json!({
                "target": name,
                "path": done.path,
                "length": done.length,
                "cached": done.cached,
            })
        }
    };
    if args.json {
        println!("{report}");
    } else if !matches!(args.step, Step::Init { .. }) {
        eprintln!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
