//! The metadata directory: trusted metadata kept between refreshes under unversioned,
//! quoted names (`root.json`, `timestamp.json`, `%3F.json`), each written atomically so a
//! crash leaves the old copy or the new one, never half of either.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::ClientError;

/// A directory of kept metadata.
#[derive(Debug, Clone)]
pub struct MetadataDir {
    dir: PathBuf,
}

impl MetadataDir {
    /// The directory at `dir` (it is created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MetadataDir { dir: dir.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Starts trust from `root` (copied as given: the first refresh checks it).
    pub fn init(&self, root: &[u8]) -> Result<(), ClientError> {
        self.write("root.json", root)
    }

    /// A kept file, if it exists and is at most `max_bytes` long (a longer one cannot be
    /// valid, so it is not read into memory).
    pub fn read(&self, file: &str, max_bytes: usize) -> Option<Vec<u8>> {
        let handle = std::fs::File::open(self.dir.join(file)).ok()?;
        let mut bytes = Vec::new();
        let limit = u64::try_from(max_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        handle.take(limit).read_to_end(&mut bytes).ok()?;
        (bytes.len() <= max_bytes).then_some(bytes)
    }

    /// Keeps `bytes` as `file`: written to a hidden temporary name beside it, synced,
    /// then renamed over the old copy.
    pub fn write(&self, file: &str, bytes: &[u8]) -> Result<(), ClientError> {
        let io = |what: &str, e: std::io::Error| {
            ClientError::Io(format!("{what} {}: {e}", self.dir.join(file).display()))
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating the directory of", e))?;
        let temporary = self.dir.join(format!(".{file}.tmp"));
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut out = std::fs::File::create(&temporary)?;
            out.write_all(bytes)?;
            out.sync_all()?;
            std::fs::rename(&temporary, self.dir.join(file))
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            io("writing", e)
        })
    }

    /// Deletes kept files (missing ones are fine).
    pub fn forget(&self, files: &[String]) -> Result<(), ClientError> {
        for file in files {
            match std::fs::remove_file(self.dir.join(file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ClientError::Io(format!(
                        "deleting {}: {e}",
                        self.dir.join(file).display()
                    )))
                }
            }
        }
        Ok(())
    }
}
