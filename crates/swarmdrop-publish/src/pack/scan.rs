//! Finding the assets of a drop directory and giving each its drop path and class.

use std::path::{Path, PathBuf};

use swarmdrop_manifest::policy::{Class, Policy};
use swarmdrop_manifest::DropPath;

use crate::PublishError;

/// One asset found on disk.
#[derive(Debug, Clone)]
pub(crate) struct FoundAsset {
    pub(crate) source: PathBuf,
    pub(crate) path: DropPath,
    pub(crate) class: Class,
    pub(crate) length: u64,
}

/// Every regular file under `dir`, sorted by drop path. Symbolic links are refused
/// rather than followed: a link could publish a file from outside the drop.
pub(crate) fn scan(dir: &Path, policy: &Policy) -> Result<Vec<FoundAsset>, PublishError> {
    if !dir.is_dir() {
        return Err(PublishError::Asset {
            path: dir.to_owned(),
            problem: "is not a directory".into(),
        });
    }
    let mut assets = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_owned)
                .unwrap_or_else(|| dir.to_owned());
            PublishError::Asset {
                path,
                problem: e.to_string(),
            }
        })?;
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        let source = entry.path().to_owned();
        if kind.is_symlink() {
            return Err(PublishError::Asset {
                path: source,
                problem: "is a symbolic link; copy the file into the drop instead".into(),
            });
        }
        if !kind.is_file() {
            return Err(PublishError::Asset {
                path: source,
                problem: "is not a regular file".into(),
            });
        }
        let relative = source.strip_prefix(dir).map_err(|_| PublishError::Asset {
            path: source.clone(),
            problem: "is outside the drop directory".into(),
        })?;
        let segments: Option<Vec<&str>> = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect();
        let segments = segments.ok_or_else(|| PublishError::Asset {
            path: source.clone(),
            problem: "has a name that is not UTF-8".into(),
        })?;
        let path = DropPath::new(&segments.join("/"))?;
        let class = policy.class_for(&path)?.clone();
        let length = entry
            .metadata()
            .map_err(|e| PublishError::Asset {
                path: source.clone(),
                problem: e.to_string(),
            })?
            .len();
        assets.push(FoundAsset {
            source,
            path,
            class,
            length,
        });
    }
    if assets.is_empty() {
        return Err(PublishError::Asset {
            path: dir.to_owned(),
            problem: "contains no files to publish".into(),
        });
    }
    assets.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(assets)
}
