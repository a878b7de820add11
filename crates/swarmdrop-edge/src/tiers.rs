//! The memory and disk tiers: two `moka` caches (TinyLFU admission, byte-weighted LRU
//! eviction), keyed by SHA-256. The disk tier's files are `objects/<sha256 hex>`, named
//! only by digests; a file gets that name by an atomic rename after its digest checked,
//! so every file there is known good, including after a restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;

/// A cached object's digest.
pub type Digest = [u8; 32];

/// A memory-tier entry.
#[derive(Debug, Clone)]
pub struct MemoryEntry {
    /// The bytes.
    pub bytes: Bytes,
    /// When it was filled (its freshness counts from here).
    pub filled: SystemTime,
}

/// A disk-tier entry.
#[derive(Debug, Clone, Copy)]
pub struct DiskEntry {
    /// Length in bytes.
    pub length: u64,
    /// When it was filled.
    pub filled: SystemTime,
}

/// Entries live `ttl + stale_if_error` from their fill.
struct Lifetime(Duration);

fn remaining(filled: SystemTime, lifetime: Duration) -> Duration {
    let age = SystemTime::now()
        .duration_since(filled)
        .unwrap_or(Duration::ZERO);
    lifetime.saturating_sub(age)
}

impl Expiry<Digest, MemoryEntry> for Lifetime {
    fn expire_after_create(&self, _: &Digest, value: &MemoryEntry, _: Instant) -> Option<Duration> {
        Some(remaining(value.filled, self.0))
    }
    fn expire_after_update(
        &self,
        _: &Digest,
        value: &MemoryEntry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(value.filled, self.0))
    }
}

impl Expiry<Digest, DiskEntry> for Lifetime {
    fn expire_after_create(&self, _: &Digest, value: &DiskEntry, _: Instant) -> Option<Duration> {
        Some(remaining(value.filled, self.0))
    }
    fn expire_after_update(
        &self,
        _: &Digest,
        value: &DiskEntry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(value.filled, self.0))
    }
}

/// Evictions by tier, for /metrics.
#[derive(Debug, Default)]
pub struct Evictions {
    /// Memory tier.
    pub memory: AtomicU64,
    /// Disk tier.
    pub disk: AtomicU64,
}

/// Both tiers.
pub struct Tiers {
    /// Memory.
    pub memory: Cache<Digest, MemoryEntry>,
    /// Disk (weights in KiB, so one entry may exceed 4 GiB).
    pub disk: Cache<Digest, DiskEntry>,
    objects: PathBuf,
    /// Largest object the memory tier takes.
    pub memory_object_max: u64,
    /// Evictions so far.
    pub evictions: Arc<Evictions>,
}

fn counts_as_eviction(cause: RemovalCause) -> bool {
    matches!(cause, RemovalCause::Size | RemovalCause::Expired)
}

impl Tiers {
    /// Tiers bounded by `memory_bytes` and `disk_bytes`, keeping files under `objects`.
    pub fn new(
        objects: &Path,
        memory_bytes: u64,
        disk_bytes: u64,
        memory_object_max: u64,
        lifetime: Duration,
    ) -> Self {
        let evictions = Arc::new(Evictions::default());
        let counted = evictions.clone();
        let memory = Cache::builder()
            .max_capacity(memory_bytes)
            .weigher(|_: &Digest, e: &MemoryEntry| u32::try_from(e.bytes.len()).unwrap_or(u32::MAX))
            .expire_after(Lifetime(lifetime))
            .eviction_listener(move |_, _, cause| {
                if counts_as_eviction(cause) {
                    counted.memory.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        let counted = evictions.clone();
        let dir = objects.to_path_buf();
        let disk = Cache::builder()
            .max_capacity(disk_bytes.div_ceil(1024))
            .weigher(|_: &Digest, e: &DiskEntry| {
                u32::try_from(e.length.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
            })
            .expire_after(Lifetime(lifetime))
            .eviction_listener(move |digest: Arc<Digest>, _, cause| {
                if counts_as_eviction(cause) {
                    counted.disk.fetch_add(1, Ordering::Relaxed);
                }
                // A replacement is the same digest renamed into place: keep the file.
                if cause != RemovalCause::Replaced {
                    let _ = std::fs::remove_file(dir.join(hex::encode(*digest)));
                }
            })
            .build();
        Self {
            memory,
            disk,
            objects: objects.to_path_buf(),
            memory_object_max,
            evictions,
        }
    }

    /// Where the disk tier keeps `digest`.
    pub fn object_path(&self, digest: &Digest) -> PathBuf {
        self.objects.join(hex::encode(digest))
    }

    /// A fresh temporary name in the objects directory (same filesystem as the final
    /// name, so the rename is atomic).
    pub fn temp_path(&self, digest: &Digest, nonce: u64) -> PathBuf {
        self.objects
            .join(format!(".fill-{}-{nonce:016x}", hex::encode(digest)))
    }

    /// Re-admits the files a previous run left: verified objects by their digest names
    /// (dropped when past their lifetime), and unfinished fills deleted. Returns how many
    /// objects came back.
    pub fn readmit(&self, lifetime: Duration) -> std::io::Result<usize> {
        let mut readmitted = 0;
        for entry in std::fs::read_dir(&self.objects)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            let mut digest = [0u8; 32];
            if name.len() != 64 || hex::decode_to_slice(name, &mut digest).is_err() {
                // Leftovers of fills a crash interrupted; never served.
                if name.starts_with(".fill-") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let meta = entry.metadata()?;
            let filled = meta.modified().unwrap_or_else(|_| SystemTime::now());
            if remaining(filled, lifetime).is_zero() || !meta.is_file() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            self.disk.insert(
                digest,
                DiskEntry {
                    length: meta.len(),
                    filled,
                },
            );
            readmitted += 1;
        }
        Ok(readmitted)
    }

    /// Drops `digest` from both tiers (and its file).
    pub fn purge(&self, digest: &Digest) -> bool {
        let in_memory = self.memory.remove(digest).is_some();
        let on_disk = self.disk.remove(digest).is_some();
        in_memory || on_disk
    }

    /// Drops everything.
    pub fn purge_all(&self) {
        self.memory.invalidate_all();
        self.disk.invalidate_all();
        self.memory.run_pending_tasks();
        self.disk.run_pending_tasks();
    }
}
