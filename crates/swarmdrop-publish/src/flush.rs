//! Making published files durable without stalling the hashing.
//!
//! A release is visible once `timestamp.json` is renamed into place; every target it
//! names must be on disk first, or a crash could publish a timestamp whose files are
//! gone. Syncing each target right after writing it would stall the next file's
//! hashing on the disk, so a flusher thread syncs finished files while hashing goes
//! on, then every directory from theirs up to the published root (so renames and
//! newly made directories are durable too); `pack` waits for it before writing the
//! timestamp.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

use crate::PublishError;

/// Syncs files handed to it on a background thread.
pub(crate) struct Flusher {
    files: Option<Sender<PathBuf>>,
    worker: Option<JoinHandle<Result<(), PublishError>>>,
}

impl Flusher {
    /// Starts a flusher for files under `root`.
    pub(crate) fn start(root: PathBuf) -> Self {
        let (files, incoming) = channel::<PathBuf>();
        let worker = std::thread::spawn(move || -> Result<(), PublishError> {
            let mut dirs = BTreeSet::new();
            let mut first_error = None;
            for path in incoming {
                if let Err(e) = fs::File::open(&path).and_then(|f| f.sync_all()) {
                    first_error.get_or_insert(PublishError::io(&path, e));
                }
                let mut dir = path.parent();
                while let Some(d) = dir {
                    if !dirs.insert(d.to_owned()) || d == root {
                        break;
                    }
                    dir = d.parent().filter(|_| d.starts_with(&root));
                }
            }
            for dir in dirs {
                // Directories cannot be synced on every platform; a failure there is
                // not worth failing a pack that wrote and synced every file.
                let _ = fs::File::open(&dir).and_then(|d| d.sync_all());
            }
            first_error.map_or(Ok(()), Err)
        });
        Self {
            files: Some(files),
            worker: Some(worker),
        }
    }

    /// Queues a finished file for syncing.
    pub(crate) fn sync(&self, path: PathBuf) {
        if let Some(files) = &self.files {
            // The worker only stops when we drop the sender, so this cannot fail.
            let _ = files.send(path);
        }
    }

    /// Waits until everything queued is on disk.
    pub(crate) fn finish(mut self) -> Result<(), PublishError> {
        drop(self.files.take());
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(PublishError::Layout("the file-sync thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.files.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
