//! The assets of one run: what the signed targets say about each, the part file it is
//! written into, and the checks every range passes before a byte is written — a piece
//! against the signed SHA-256 midstates around it, or its SHA-1 from the torrent the
//! signed targets pin where the pack recorded no midstates, or the asset's signed
//! SHA-256 and length — and the whole-file SHA-256 before the part file is renamed into
//! place (read back from disk unless the asset was checked whole before it was written,
//! or piece by piece against its midstates).

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use sha1::Digest as _;
use swarmdrop_manifest::midstates::Midstates;
use swarmdrop_manifest::tuf::metadata::TargetFile;
use swarmdrop_manifest::DropPath;

use crate::ClientError;

/// One asset being fetched.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Its drop path.
    pub(crate) path: String,
    /// Its class.
    pub(crate) class: String,
    /// The class's budget.
    pub(crate) budget_ms: u64,
    /// The class's paths, in the policy's order.
    pub(crate) class_paths: Vec<swarmdrop_manifest::model::PathKind>,
    /// Edges with a free slot also take pieces while the swarm carries the class.
    pub(crate) spare_edges: bool,
    /// The signed length.
    pub(crate) length: u64,
    /// The signed SHA-256 (hex).
    pub(crate) sha256: String,
    /// Where it is published, relative to the root (hash-named).
    pub(crate) published: String,
    /// The torrent's piece length and piece hashes, when it has a torrent.
    pub(crate) pieces: Option<(u32, Vec<[u8; 20]>)>,
    /// Its torrent, checked against the signed info hash.
    pub(crate) meta: Option<swarmdrop_manifest::torrent::Metainfo>,
    /// The signed SHA-256 midstates between its pieces, when the pack recorded them:
    /// each piece is checked against them instead of its SHA-1, wherever it came from,
    /// and the file is then known to match its signed SHA-256 without a read-back.
    pub(crate) midstates: Option<std::sync::Arc<Midstates>>,
    /// The peer engine writes this asset (its pieces from peers, and the ones fetched
    /// over HTTP once checked): `accept` only checks.
    pub(crate) engine_writes: bool,
    /// The whole asset was checked against its signed SHA-256 in one range and written:
    /// the part file holds exactly the signed bytes, and finishing need not read it back.
    written_whole: bool,
    /// Handed over to be finished, or discarded: no more writes.
    closed: bool,
    part: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

/// Why a range was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The bytes do not match their signed digest.
    Digest,
    /// Fewer or more bytes than asked.
    Length,
}

impl Asset {
    /// An asset from its signed target entry, to be written under `out_dir`.
    pub(crate) fn new(
        name: &str,
        target: &TargetFile,
        out_dir: &Path,
    ) -> Result<Self, ClientError> {
        let path =
            DropPath::new(name).map_err(|e| ClientError::Metadata(format!("{name}: {e}")))?;
        let sha256 = target
            .hashes
            .get("sha256")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                ClientError::Metadata(format!("{name}: no sha256 in the signed targets"))
            })?
            .to_ascii_lowercase();
        let custom = target.swarmdrop().ok_or_else(|| {
            ClientError::Metadata(format!("{name}: no swarmdrop class in the signed targets"))
        })?;
        let dest = out_dir.join(path.as_str());
        // Named by content too: a live drop's next version of the same path is assembled
        // beside the one still arriving, never into it.
        let part = dest.with_file_name(format!(
            ".{}.{}.part",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("asset"),
            &sha256[..16]
        ));
        Ok(Asset {
            published: format!("targets/{}", path.hash_prefixed(&sha256)),
            path: name.to_owned(),
            class: custom.class.to_string(),
            budget_ms: custom.budget_ms,
            class_paths: custom.paths.clone(),
            spare_edges: custom.spare_edges,
            length: target.length,
            sha256,
            pieces: None,
            meta: None,
            midstates: None,
            engine_writes: false,
            written_whole: false,
            closed: false,
            part,
            dest,
            file: None,
        })
    }

    /// Checks `bytes`, fetched for `offset`, against what is signed; writes them on
    /// success.
    pub(crate) fn accept(
        &mut self,
        offset: u64,
        expected: u64,
        bytes: &[u8],
    ) -> Result<Result<(), Refused>, ClientError> {
        if bytes.len() as u64 != expected {
            return Ok(Err(Refused::Length));
        }
        let whole = self.pieces.is_none() && offset == 0 && expected == self.length;
        let good = match &self.pieces {
            Some((piece_length, hashes)) => {
                let index = offset / u64::from(*piece_length);
                match &self.midstates {
                    Some(midstates) => {
                        offset.is_multiple_of(u64::from(*piece_length))
                            && midstates.check(index, bytes)
                    }
                    None => hashes
                        .get(index as usize)
                        .is_some_and(|want| <[u8; 20]>::from(sha1::Sha1::digest(bytes)) == *want),
                }
            }
            // Without pieces a range is checked whole: the planner fetches such assets
            // in one range unless they are too large to hold, which `finish` then checks.
            None if offset == 0 && expected == self.length => {
                hex::encode(sha2::Sha256::digest(bytes)) == self.sha256
            }
            None => true,
        };
        if !good {
            return Ok(Err(Refused::Digest));
        }
        // Checked all the same, so a liar is refused whichever copy came first; but not
        // written: the engine writes its own; a part file holding the whole signed asset
        // must not take a partial range over it (one that lost a race, unchecked on its
        // own); and a part file handed over to be finished, or discarded, is not reopened
        // (that would truncate it).
        if self.engine_writes || self.written_whole || self.closed {
            return Ok(Ok(()));
        }
        let file = self.open()?;
        file.write_all_at(bytes, offset)
            .map_err(|e| ClientError::Io(format!("{}: {e}", self.part.display())))?;
        self.written_whole = whole;
        Ok(Ok(()))
    }

    /// The part file the asset is assembled in.
    pub(crate) fn part_path(&self) -> &Path {
        &self.part
    }

    fn open(&mut self) -> Result<&File, ClientError> {
        if self.closed {
            return Err(ClientError::Io(format!(
                "{}: already finished or discarded",
                self.part.display()
            )));
        }
        if self.file.is_none() {
            if let Some(dir) = self.part.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ClientError::Io(format!("{}: {e}", dir.display())))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&self.part)
                .map_err(|e| ClientError::Io(format!("{}: {e}", self.part.display())))?;
            file.set_len(self.length)
                .map_err(|e| ClientError::Io(format!("{}: {e}", self.part.display())))?;
            self.file = Some(file);
        }
        self.file
            .as_ref()
            .ok_or_else(|| ClientError::Io("the part file vanished".into()))
    }

    /// A newer version of this path is already in place: this one's bytes are dropped.
    pub(crate) fn discard(&mut self) {
        self.closed = true;
        self.file = None;
        let _ = std::fs::remove_file(&self.part);
    }

    /// All bytes are in: what [`Finishing::run`] needs to check the whole file and put
    /// it in place, off the async threads.
    pub(crate) fn finishing(&mut self) -> Result<Finishing, ClientError> {
        if !self.engine_writes {
            self.open()?;
        }
        self.closed = true;
        Ok(Finishing {
            path: self.path.clone(),
            // Every piece passed its midstates, so the file's SHA-256 has been computed
            // and matched piece by piece already.
            sha256: (!self.written_whole && self.midstates.is_none()).then(|| self.sha256.clone()),
            part: self.part.clone(),
            dest: self.dest.clone(),
            written: self.file.take(),
        })
    }
}

/// An asset whose bytes are all in, to be checked whole and renamed into place.
#[derive(Debug)]
pub(crate) struct Finishing {
    path: String,
    /// The signed SHA-256 to check the file against; `None` when the asset was checked
    /// whole in memory before it was written ([`Asset::accept`]).
    sha256: Option<String>,
    part: PathBuf,
    dest: PathBuf,
    written: Option<File>,
}

impl Finishing {
    /// The whole file's SHA-256 against the signed one (unless the asset was checked
    /// whole before it was written), then renamed into place, so a reader never sees a
    /// partial or unverified file; returns the file, to be flushed to disk. This blocks
    /// (a bulk asset is read back whole).
    pub(crate) fn run(self) -> Result<(PathBuf, File), ClientError> {
        let part = &self.part;
        let io = |e: std::io::Error| ClientError::Io(format!("{}: {e}", part.display()));
        let mut file = File::open(part).map_err(io)?;
        if let Some(signed) = &self.sha256 {
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            if hex::encode(hasher.finalize()) != *signed {
                return Err(ClientError::Verification(format!(
                    "{}: the assembled file does not match its signed SHA-256",
                    self.path
                )));
            }
        }
        std::fs::rename(part, &self.dest).map_err(io)?;
        // The engine wrote it: any descriptor of the file flushes it.
        Ok((self.dest, self.written.unwrap_or(file)))
    }
}

/// Finishes assets off the async threads: checking a bulk asset whole, or a flush that
/// waits on a busy disk, would stall every task they run (in the demo, fifty viewers
/// and the emulated links).
pub(crate) struct Finisher {
    /// Assets whose bytes are all in, by index.
    pub(crate) jobs: std::sync::mpsc::Sender<(usize, Finishing)>,
    /// Ends once `jobs` is dropped and every finished file is flushed to disk.
    pub(crate) flushed: tokio::task::JoinHandle<Result<(), ClientError>>,
}

/// One thread checks and renames assets in the order they are handed over (so a live
/// drop's newer version of a path is renamed after the older) and reports each as
/// [`Event::Finished`](crate::Event::Finished) once it is in place; another flushes them
/// to disk behind it (each file, and at the end each directory one was renamed into)
/// and, unless `keep_page_cache`, drops large ones from the OS page cache (see
/// [`ClientOptions::keep_page_cache`](crate::ClientOptions)). An asset is usable as soon
/// as it is in place; the run reports success only once every file and its name are
/// flushed.
pub(crate) fn finisher(events: crate::Events, keep_page_cache: bool) -> Finisher {
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Finishing)>();
    let flushed = tokio::task::spawn_blocking(move || {
        let (to_flush, flushing) = std::sync::mpsc::channel::<(PathBuf, File)>();
        let flusher = std::thread::Builder::new()
            .name("flush".into())
            .spawn(move || {
                let mut first_error = None;
                let mut dirs = std::collections::BTreeSet::new();
                for (path, file) in flushing {
                    if let Err(e) = file.sync_all() {
                        first_error.get_or_insert_with(|| {
                            ClientError::Io(format!("{}: {e}", path.display()))
                        });
                        continue;
                    }
                    if !keep_page_cache {
                        drop_large_from_page_cache(&file);
                    }
                    if let Some(dir) = path.parent() {
                        dirs.insert(dir.to_path_buf());
                    }
                }
                // A renamed file's name is on disk only once its directory is synced too:
                // each directory once, at the end, rather than a directory write per keyframe.
                for dir in dirs {
                    if let Err(e) = sync_dir(&dir) {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            })
            .map_err(|e| ClientError::Io(format!("a thread to flush files: {e}")))?;
        for (index, job) in rx {
            let result = job.run().map(|in_place| {
                let _ = to_flush.send(in_place);
            });
            if events.send(crate::Event::Finished(index, result)).is_err() {
                break;
            }
        }
        drop(to_flush);
        flusher
            .join()
            .unwrap_or_else(|_| Err(ClientError::Io("the thread flushing files failed".into())))
    });
    Finisher { jobs: tx, flushed }
}

/// Syncs a directory, so the names renamed into it are on disk.
fn sync_dir(dir: &Path) -> Result<(), ClientError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ClientError::Io(format!("{}: syncing the directory: {e}", dir.display())))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Files from this size on leave the page cache once flushed; smaller ones (a keyframe, a
/// page) stay, since a player reads them as soon as they arrive and they cost little.
pub(crate) const DROP_FROM_PAGE_CACHE_AT: u64 = 4 << 20;

/// Tells the kernel a flushed file's cached pages will not be needed, if the file is at
/// least [`DROP_FROM_PAGE_CACHE_AT`] (its pages are clean, so they are dropped, not
/// written). Advice: where it is refused or unsupported, nothing changes but memory use.
fn drop_large_from_page_cache(file: &File) {
    #[cfg(target_os = "linux")]
    if file
        .metadata()
        .is_ok_and(|m| m.len() >= DROP_FROM_PAGE_CACHE_AT)
    {
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An asset without a torrent (checked whole, like a keyframe), signed for `bytes`.
    fn asset(bytes: &[u8], dir: &Path) -> Asset {
        asset_at(bytes, dir, "frames/k0001.bin")
    }

    /// A 16-byte asset in a fresh directory (kept alive by the first value).
    fn sixteen_bytes() -> (tempfile::TempDir, Vec<u8>, Asset) {
        let dir = tempfile::tempdir().unwrap();
        let signed = b"0123456789abcdef".to_vec();
        let asset = asset(&signed, dir.path());
        (dir, signed, asset)
    }

    fn asset_at(bytes: &[u8], dir: &Path, name: &str) -> Asset {
        let target: TargetFile = serde_json::from_value(serde_json::json!({
            "length": bytes.len(),
            "hashes": {"sha256": hex::encode(sha2::Sha256::digest(bytes))},
            "custom": {"class": "keyframe", "budget_ms": 800, "paths": ["edge", "origin"]},
        }))
        .unwrap();
        Asset::new(name, &target, dir).unwrap()
    }

    /// Two ranges, each unchecked on its own (the asset is checked whole at the end).
    fn accept_in_halves(asset: &mut Asset, bytes: &[u8]) {
        let half = bytes.len() / 2;
        let (a, b) = bytes.split_at(half);
        assert_eq!(asset.accept(0, a.len() as u64, a).unwrap(), Ok(()));
        assert_eq!(
            asset.accept(half as u64, b.len() as u64, b).unwrap(),
            Ok(())
        );
    }

    /// Finishes `asset`: whether the file was read back to be checked, and what is in
    /// place.
    fn finish(asset: &mut Asset) -> (bool, Result<Vec<u8>, ClientError>) {
        let finishing = asset.finishing().unwrap();
        let read_back = finishing.sha256.is_some();
        let in_place = finishing
            .run()
            .map(|(dest, _)| std::fs::read(dest).unwrap());
        (read_back, in_place)
    }

    /// A torrent asset of 64-byte pieces with the midstates a pack records (and SHA-1
    /// piece hashes that match nothing, so only the midstates can pass a piece).
    fn pieced(bytes: &[u8], dir: &Path) -> Asset {
        let mut asset = asset_at(bytes, dir, "bulk/patch.bin");
        let mut hasher = swarmdrop_manifest::midstates::MidstateHasher::new(Some(64));
        hasher.update(bytes);
        let (sha256, states) = hasher.finish();
        let midstates = Midstates::from_hex(&states, 64, bytes.len() as u64, sha256).unwrap();
        asset.pieces = Some((64, vec![[0u8; 20]; bytes.len().div_ceil(64)]));
        asset.midstates = Some(std::sync::Arc::new(midstates));
        asset
    }

    #[test]
    fn pieces_pass_their_midstates_in_any_order_and_the_file_is_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let signed: Vec<u8> = (0..200u32).map(|i| (i * 13) as u8).collect();
        let mut asset = pieced(&signed, dir.path());
        let mut damaged = signed[64..128].to_vec();
        damaged[3] ^= 1;
        assert_eq!(
            asset.accept(64, 64, &damaged).unwrap(),
            Err(Refused::Digest)
        );
        // A good piece offered at another piece's offset.
        assert_eq!(
            asset.accept(0, 64, &signed[64..128]).unwrap(),
            Err(Refused::Digest)
        );
        for start in [128usize, 0, 192, 64] {
            let end = (start + 64).min(signed.len());
            assert_eq!(
                asset
                    .accept(start as u64, (end - start) as u64, &signed[start..end])
                    .unwrap(),
                Ok(()),
                "piece at {start}"
            );
        }
        let (read_back, in_place) = finish(&mut asset);
        assert!(!read_back);
        assert_eq!(in_place.unwrap(), signed);
    }

    /// Bytes of `path` in the page cache, from `fincore` (util-linux; Debian ships it in
    /// util-linux-extra).
    #[cfg(target_os = "linux")]
    fn cached_bytes(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore runs (apt: util-linux-extra)");
        assert!(out.status.success(), "fincore: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// Flushes a keyframe-class asset of `len` bytes through a finisher; returns how much
    /// of it is then in the page cache, and its bytes as read back after that.
    #[cfg(target_os = "linux")]
    async fn flushed(len: u64, keep_page_cache: bool) -> (u64, bool) {
        let signed: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        // Under target/, on the disk the build uses: a tmpfs TMPDIR ignores the advice.
        let dir =
            tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")).unwrap();
        let mut asset = asset(&signed, dir.path());
        assert_eq!(asset.accept(0, len, &signed).unwrap(), Ok(()));
        let (events, mut finished) = tokio::sync::mpsc::unbounded_channel();
        let finisher = finisher(events, keep_page_cache);
        finisher.jobs.send((0, asset.finishing().unwrap())).unwrap();
        drop(finisher.jobs);
        finisher.flushed.await.unwrap().unwrap();
        assert!(matches!(
            finished.recv().await,
            Some(crate::Event::Finished(0, Ok(())))
        ));
        let dest = dir.path().join("frames/k0001.bin");
        let cached = cached_bytes(&dest);
        // Read last: reading puts the pages back.
        (cached, std::fs::read(&dest).unwrap() == signed)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_large_flushed_file_leaves_the_page_cache_unless_it_is_kept() {
        let large = DROP_FROM_PAGE_CACHE_AT;
        assert_eq!(flushed(large, false).await, (0, true), "dropped, not lost");
        let (kept, intact) = flushed(large, true).await;
        assert!(kept > 0 && intact, "kept: {kept} bytes cached");
        // A small file (a keyframe a player reads at once) stays cached.
        let (small, intact) = flushed(256 << 10, false).await;
        assert!(small > 0 && intact, "small: {small} bytes cached");
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_is_synced_or_the_error_names_it() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync_dir(dir.path()).is_ok());
        let gone = dir.path().join("gone");
        let e = sync_dir(&gone).unwrap_err().to_string();
        assert!(
            e.contains("gone") && e.contains("syncing the directory"),
            "{e}"
        );
    }

    #[test]
    fn an_asset_checked_whole_is_put_in_place_without_reading_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let signed = b"a keyframe's bytes".to_vec();
        let mut asset = asset(&signed, dir.path());
        assert_eq!(
            asset.accept(0, signed.len() as u64, &signed).unwrap(),
            Ok(())
        );
        let (read_back, in_place) = finish(&mut asset);
        assert!(!read_back, "checked whole: nothing to read back");
        assert_eq!(in_place.unwrap(), signed);
    }

    #[test]
    fn a_range_arriving_after_the_whole_asset_does_not_overwrite_it() {
        let (_dir, signed, mut asset) = sixteen_bytes();
        // A partial range before the whole one is overwritten by it.
        assert_eq!(asset.accept(0, 4, b"soon").unwrap(), Ok(()));
        assert_eq!(asset.accept(0, 16, &signed).unwrap(), Ok(()));
        // A hedge's partial range (unchecked on its own) with different bytes.
        assert_eq!(asset.accept(4, 4, b"lost").unwrap(), Ok(()));
        // A lying copy of the whole that lost the race is still refused.
        assert_eq!(
            asset.accept(0, 16, b"0123456789abcdeX").unwrap(),
            Err(Refused::Digest)
        );
        assert_eq!(finish(&mut asset).1.unwrap(), signed);
    }

    #[test]
    fn an_asset_assembled_from_ranges_is_checked_whole_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let signed = b"0123456789abcdef".to_vec();
        let mut good = asset(&signed, dir.path());
        accept_in_halves(&mut good, &signed);
        let (read_back, in_place) = finish(&mut good);
        assert!(read_back, "assembled: read back and checked");
        assert_eq!(in_place.unwrap(), signed);

        let dir = tempfile::tempdir().unwrap();
        let mut bad = asset(&signed, dir.path());
        assert_eq!(bad.accept(0, 8, &signed[..8]).unwrap(), Ok(()));
        assert_eq!(bad.accept(8, 8, b"89abcdeX").unwrap(), Ok(()));
        assert!(matches!(
            finish(&mut bad).1,
            Err(ClientError::Verification(_))
        ));
        assert!(!dir.path().join("frames/k0001.bin").exists());
    }

    #[test]
    fn a_whole_range_that_does_not_match_is_refused_and_not_written() {
        let (_dir, signed, mut asset) = sixteen_bytes();
        assert_eq!(
            asset.accept(0, 16, b"0123456789abcdeX").unwrap(),
            Err(Refused::Digest)
        );
        assert_eq!(
            asset.accept(0, 16, &signed[..15]).unwrap(),
            Err(Refused::Length)
        );
        assert!(!asset.part_path().exists(), "nothing refused is written");
        // The honest copy still finishes, and is the one checked whole.
        assert_eq!(asset.accept(0, 16, &signed).unwrap(), Ok(()));
        let (read_back, in_place) = finish(&mut asset);
        assert!(!read_back);
        assert_eq!(in_place.unwrap(), signed);
    }

    #[test]
    fn nothing_is_written_after_an_asset_is_handed_over_or_discarded() {
        let (dir, signed, mut asset) = sixteen_bytes();
        accept_in_halves(&mut asset, &signed);
        let finishing = asset.finishing().unwrap();
        // A late range from a race that lost: reopening would truncate the part file
        // under the thread checking it.
        assert_eq!(asset.accept(0, 8, &signed[..8]).unwrap(), Ok(()));
        let (dest, _) = finishing.run().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), signed);
        assert!(asset.finishing().is_err(), "finished once only");

        let mut dropped = asset_at(&signed, dir.path(), "frames/k0002.bin");
        assert_eq!(dropped.accept(0, 8, &signed[..8]).unwrap(), Ok(()));
        dropped.discard();
        assert_eq!(dropped.accept(8, 8, &signed[8..]).unwrap(), Ok(()));
        assert!(!dropped.part_path().exists(), "no part file left behind");
    }

    #[test]
    fn an_empty_asset_is_checked_and_put_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut asset = asset(b"", dir.path());
        assert_eq!(asset.accept(0, 0, b"").unwrap(), Ok(()));
        let (read_back, in_place) = finish(&mut asset);
        assert!(!read_back);
        assert_eq!(in_place.unwrap(), b"");
    }
}
