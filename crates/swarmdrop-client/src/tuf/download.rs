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

use super::{base_url, drive, fetch_metadata, refresh, MetadataDir};
use crate::ClientError;

/// Longest wait for the next bytes of a target before giving up on the server.
const STALL: Duration = Duration::from_secs(30);

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
    let base = base_url(metadata_url)?;
    let fetch = |path: String, max: usize| {
        let base = base.clone();
        async move { fetch_metadata(&base, &path, max).await }
    };
    drive(&mut updater, Some(dir), fetch).await?;
    let info = updater.search_result().flatten().cloned().ok_or_else(|| {
        ClientError::Metadata(format!(
            "target {target:?} is not listed by any trusted targets role"
        ))
    })?;
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
    while let Some(frame) = tokio::time::timeout(STALL, body.frame())
        .await
        .map_err(|_| unreachable(format!("no bytes for {STALL:?}")))?
    {
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

/// A hidden file beside the destination that becomes it only once verified.
struct PartialFile {
    path: PathBuf,
}

impl PartialFile {
    fn create(dir: &Path, name: &str) -> Result<Self, ClientError> {
        let path = dir.join(format!(".{name}.part"));
        std::fs::File::create(&path)
            .map_err(|e| ClientError::Io(format!("creating {}: {e}", path.display())))?;
        Ok(PartialFile { path })
    }

    fn file(&self) -> Result<std::fs::File, ClientError> {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
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
