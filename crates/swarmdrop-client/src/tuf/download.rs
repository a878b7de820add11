//! A target through the TUF workflow: refresh, find it through the delegations, reuse
//! the stored copy if it still matches, else stream it from the targets URL, checking
//! length and hashes as it arrives and stopping at the signed length (endless data).
//! The file appears under its quoted path only once it verified.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt as _;
use swarmdrop_httpc::{HttpUrl, Timeouts};
use swarmdrop_manifest::tuf::quote::file_name;
use swarmdrop_manifest::tuf::trusted::Digests;
use swarmdrop_manifest::tuf::TargetFile;

use super::{base_url, drive, refresh, MetadataDir, MetadataUrl};
use crate::ClientError;

/// Longest wait for the next bytes of a target before giving up on the server.
const STALL: Duration = Duration::from_secs(30);
/// The slowest average rate a target may arrive at (after a minute's grace), so a
/// server dripping a byte just under every [`STALL`] cannot hold the client for ages.
const SLOWEST_BYTES_PER_SECOND: u64 = 16 << 10;

/// What [`download`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the verified file is.
    pub path: PathBuf,
    /// Its length.
    pub length: u64,
    /// Whether the stored copy already matched (nothing was fetched).
    pub cached: bool,
}

/// Refreshes `dir` from `metadata_url`, finds `target` (through delegations), and makes
/// sure `target_dir` holds it verified, as `quote(target)`.
pub async fn download(
    dir: &MetadataDir,
    metadata_url: &str,
    target: &str,
    target_base_url: &str,
    target_dir: &Path,
) -> Result<Downloaded, ClientError> {
    let targets_base = HttpUrl::parse(target_base_url)
        .map_err(|e| ClientError::Usage(format!("target base URL: {e}")))?;
    let mut updater = refresh(dir, metadata_url).await?;
    updater
        .find_target(target)
        .map_err(|e| ClientError::Metadata(e.to_string()))?;
    drive(
        &mut updater,
        Some(dir),
        &MetadataUrl(base_url(metadata_url)?),
    )
    .await?;
    let info = match updater.search_result() {
        Some(Ok(Some(info))) => info.clone(),
        Some(Err(e)) => return Err(ClientError::Metadata(format!("looking up {target:?}: {e}"))),
        Some(Ok(None)) | None => {
            return Err(ClientError::Metadata(format!(
                "target {target:?} is not listed by any trusted targets role"
            )))
        }
    };
    let path = target_dir.join(file_name(target));
    if matches_signed(&path, target, &info) {
        return Ok(Downloaded {
            path,
            length: info.length,
            cached: true,
        });
    }
    std::fs::create_dir_all(target_dir)
        .map_err(|e| ClientError::Io(format!("creating {}: {e}", target_dir.display())))?;
    let url = targets_base.join(&updater.target_url_path(target, &info));
    let partial = PartialFile::create(target_dir, &file_name(target))?;
    stream_verified(&url, target, &info, partial.file()?)
        .await
        .inspect_err(|_| partial.discard())?;
    partial.finish(&path)?;
    Ok(Downloaded {
        path,
        length: info.length,
        cached: false,
    })
}

/// Whether the file at `path` has the signed length and hashes.
fn matches_signed(path: &Path, target: &str, info: &TargetFile) -> bool {
    use std::io::Read as _;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut digests = Digests::new(Some(&info.hashes));
    let mut buffer = vec![0u8; 64 << 10];
    let mut length = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                length += n as u64;
                if length > info.length {
                    return false;
                }
                digests.update(&buffer[..n]);
            }
            Err(_) => return false,
        }
    }
    digests.finish(target, length, Some(info.length)).is_ok()
}

/// Streams `url` into `out`, checking against `info`; refuses a body longer than the
/// signed length as soon as it gets there.
async fn stream_verified(
    url: &HttpUrl,
    target: &str,
    info: &TargetFile,
    mut out: std::fs::File,
) -> Result<(), ClientError> {
    let unreachable = |problems: String| ClientError::Unreachable {
        what: url.to_string(),
        problems,
    };
    let response = swarmdrop_httpc::get(url, &[], Timeouts::default())
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unreachable(format!("HTTP {}", response.status())));
    }
    let mut body = response.into_body();
    let mut digests = Digests::new(Some(&info.hashes));
    let mut length = 0u64;
    let allowed = Duration::from_secs(60 + info.length / SLOWEST_BYTES_PER_SECOND);
    let deadline = tokio::time::Instant::now() + allowed;
    loop {
        let wait = STALL.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let Some(frame) = tokio::time::timeout(wait, body.frame())
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no bytes for {wait:?}, or not all {} bytes within {allowed:?}",
                    info.length
                ))
            })?
        else {
            break;
        };
        let frame = frame.map_err(|e| unreachable(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        length += data.len() as u64;
        if length > info.length {
            return Err(ClientError::Verification(format!(
                "{target}: the server sent more than the {} bytes signed for it",
                info.length
            )));
        }
        digests.update(&data);
        out.write_all(&data)
            .map_err(|e| ClientError::Io(format!("writing {target}: {e}")))?;
    }
    digests
        .finish(target, length, Some(info.length))
        .map_err(|e| ClientError::Verification(e.to_string()))?;
    out.sync_all()
        .map_err(|e| ClientError::Io(format!("writing {target}: {e}")))
}

/// A file beside the destination that becomes it only once verified. Its name starts
/// with `%part.`, which quoting never produces (a quoted `%` is always followed by two
/// hex digits), so it cannot be any target's file.
struct PartialFile {
    path: PathBuf,
    file: std::fs::File,
}

impl PartialFile {
    fn create(dir: &Path, name: &str) -> Result<Self, ClientError> {
        let path = dir.join(format!("%part.{name}"));
        let file = std::fs::File::create(&path)
            .map_err(|e| ClientError::Io(format!("creating {}: {e}", path.display())))?;
        Ok(PartialFile { path, file })
    }

    fn file(&self) -> Result<std::fs::File, ClientError> {
        self.file
            .try_clone()
            .map_err(|e| ClientError::Io(format!("opening {}: {e}", self.path.display())))
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn finish(self, destination: &Path) -> Result<(), ClientError> {
        std::fs::rename(&self.path, destination).map_err(|e| {
            self.discard();
            ClientError::Io(format!("renaming into {}: {e}", destination.display()))
        })
    }
}
