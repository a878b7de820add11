//! Getting one asset into `targets/` under its hash name, hashed on the way.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use swarmdrop_manifest::tuf::metadata::TargetFile;
use swarmdrop_manifest::DropPath;

use super::LinkMode;
use crate::digest::{digest_file, Digests};
use crate::flush::Flusher;
use crate::layout::Layout;
use crate::PublishError;

/// One asset on its way into `targets/`.
pub(super) struct Target<'a> {
    pub(super) source: &'a Path,
    pub(super) path: &'a DropPath,
    pub(super) piece_length: Option<u32>,
    pub(super) previous: Option<&'a TargetFile>,
}

/// True when both paths are the same file (a hard link from an earlier `--link hardlink`).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

fn fingerprint(path: &Path) -> Result<(u64, Option<std::time::SystemTime>), PublishError> {
    let meta = fs::metadata(path).map_err(|e| PublishError::io(path, e))?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Hashes an asset and makes sure its hash-named file is in `targets/`, queued for sync.
///
/// When the previous release had the same path and length and its file is there, the
/// asset is hashed without copying: an unchanged asset is read once and written never.
/// In copy mode a published file that is the source itself (an earlier hard link) is
/// replaced by a copy, so copy mode always leaves files a later edit cannot touch.
pub(super) fn publish_target(
    layout: &Layout,
    target: &Target<'_>,
    link: LinkMode,
    flusher: &Flusher,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Digests, PublishError> {
    let (source, path) = (target.source, target.path);
    let previous = target
        .previous
        .and_then(|p| {
            p.hashes
                .get("sha256")
                .map(|hash| (p.length, layout.target(path, hash), hash))
        })
        .filter(|(length, file, _)| {
            fs::metadata(file).is_ok_and(|m| m.len() == *length)
                && fs::metadata(source).is_ok_and(|m| m.len() == *length)
        });
    if let Some((_, file, previous_hash)) = previous {
        let keep_link = link == LinkMode::Copy && same_file(source, &file);
        if !keep_link {
            let digests = digest_file(source, target.piece_length, None, progress)?;
            if &digests.sha256_hex() == previous_hash {
                return Ok(digests);
            }
        }
    }
    let dir = layout
        .target(path, "partial")
        .parent()
        .unwrap_or(layout.root())
        .to_owned();
    fs::create_dir_all(&dir).map_err(|e| PublishError::io(&dir, e))?;
    match link {
        LinkMode::Copy => copy_into_targets(layout, target, flusher, progress),
        LinkMode::Hardlink => {
            let before = fingerprint(source)?;
            let digests = digest_file(source, target.piece_length, None, progress)?;
            let final_path = layout.target(path, &digests.sha256_hex());
            if final_path.exists() {
                return Ok(digests);
            }
            match fs::hard_link(source, &final_path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::CrossesDevices => {
                    return copy_into_targets(layout, target, flusher, progress);
                }
                Err(e) => return Err(PublishError::io(&final_path, e)),
            }
            if fingerprint(&final_path)? != before {
                let _ = fs::remove_file(&final_path);
                return Err(PublishError::Asset {
                    path: source.to_owned(),
                    problem: "changed while it was being packed; pack again".into(),
                });
            }
            flusher.sync(final_path);
            Ok(digests)
        }
    }
}

/// Copies while hashing into a temporary name, then renames onto the hash name
/// (replacing any earlier file of that name, which holds the same bytes or is a link).
fn copy_into_targets(
    layout: &Layout,
    target: &Target<'_>,
    flusher: &Flusher,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Digests, PublishError> {
    let path = target.path;
    let dir = layout
        .target(path, "partial")
        .parent()
        .unwrap_or(layout.root())
        .to_owned();
    let temp = dir.join(format!(
        ".{}.partial-{}",
        path.file_name(),
        std::process::id()
    ));
    let digests = match digest_file(target.source, target.piece_length, Some(&temp), progress) {
        Ok(d) => d,
        Err(e) => {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
    };
    let final_path = layout.target(path, &digests.sha256_hex());
    if let Err(e) = fs::rename(&temp, &final_path) {
        let _ = fs::remove_file(&temp);
        return Err(PublishError::io(&final_path, e));
    }
    flusher.sync(final_path);
    Ok(digests)
}
