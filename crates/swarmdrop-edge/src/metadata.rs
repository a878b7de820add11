//! Keeping the index current: walk root → timestamp → snapshot → targets from the origin
//! through `TrustedSet`, at most once per `timestamp_ttl`, one refresh at a time. Verified
//! files are kept under `DIR/metadata/` so a restarted edge has an index even when the
//! origin is down.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use swarmdrop_manifest::tuf::{Role, TrustedSet, TufError};

use crate::index::{Index, MetadataFiles};
use crate::state::{Edge, Refusal};

/// Largest metadata file fetched.
const MAX_METADATA_BYTES: usize = 32 << 20;
/// Most root rotations followed in one refresh.
const MAX_ROTATIONS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum From {
    Origin,
    Kept,
}

impl Edge {
    async fn metadata_file(&self, from: From, name: &str) -> Result<Option<Bytes>, String> {
        match from {
            From::Kept => match tokio::fs::read(self.dir.join("metadata").join(name)).await {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!(
                    "{}: {e}",
                    self.dir.join("metadata").join(name).display()
                )),
            },
            From::Origin => {
                let url = self.origin_url(&format!("metadata/{name}"));
                self.metrics.origin_requests.fetch_add(1, Ordering::Relaxed);
                let timeouts = swarmdrop_httpc::Timeouts {
                    connect: self.durations.origin_timeout,
                    head: self.durations.origin_timeout,
                    ..swarmdrop_httpc::Timeouts::default()
                };
                let (status, body) = swarmdrop_httpc::get_bytes(
                    &url,
                    &[],
                    MAX_METADATA_BYTES,
                    timeouts,
                    self.durations.origin_timeout,
                )
                .await
                .map_err(|e| e.to_string())?;
                self.metrics
                    .origin_bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                match status.as_u16() {
                    200 => Ok(Some(body)),
                    404 | 410 => Ok(None),
                    other => Err(format!("{url}: HTTP {other}")),
                }
            }
        }
    }

    async fn required(&self, from: From, name: &str) -> Result<Bytes, String> {
        self.metadata_file(from, name)
            .await?
            .ok_or_else(|| format!("metadata/{name} is missing"))
    }

    /// The trust anchor: `--root`, else what an earlier run kept, else the origin's
    /// `1.root.json` trusted on first use.
    async fn anchor(&self, from: From) -> Result<Bytes, String> {
        if let Some(first) = self.lock_roots().first() {
            return Ok(first.clone());
        }
        let root = &self.config.root;
        if !root.as_os_str().is_empty() {
            return tokio::fs::read(root)
                .await
                .map(Bytes::from)
                .map_err(|e| format!("{}: {e}", root.display()));
        }
        if let Some(kept) = self.metadata_file(From::Kept, "1.root.json").await? {
            return Ok(kept);
        }
        if from == From::Kept {
            return Err("no metadata kept from an earlier run".into());
        }
        let first = self.required(From::Origin, "1.root.json").await?;
        eprintln!(
            "warning: no --root given; trusting the origin's 1.root.json on first use (sha256 {})",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&first))
        );
        Ok(first)
    }

    async fn load(&self, from: From) -> Result<(Index, MetadataFiles), String> {
        let tuf = |name: &str, e: TufError| format!("metadata/{name}: {e}");
        let anchor = self.anchor(from).await?;
        let mut set = TrustedSet::new(&anchor, self.now()).map_err(|e| tuf("root", e))?;
        let mut roots = vec![anchor];
        // Roots already trusted need no fetching; then look for newer ones.
        let known: Vec<Bytes> = self.lock_roots().iter().skip(1).cloned().collect();
        for bytes in known {
            set.update_root(&bytes).map_err(|e| tuf("root", e))?;
            roots.push(bytes);
        }
        for _ in 0..MAX_ROTATIONS {
            let name = format!("{}.root.json", set.root().version + 1);
            let Some(bytes) = self.metadata_file(from, &name).await? else {
                break;
            };
            set.update_root(&bytes).map_err(|e| tuf(&name, e))?;
            roots.push(bytes);
        }
        if !set.root().consistent_snapshot {
            return Err(
                "the root does not use consistent snapshots; the edge serves only that layout"
                    .into(),
            );
        }
        let timestamp = self.required(from, "timestamp.json").await?;
        set.update_timestamp(&timestamp)
            .map_err(|e| tuf("timestamp.json", e))?;
        let snapshot_version = set
            .timestamp()
            .and_then(|t| t.meta.get("snapshot.json"))
            .map(|m| m.version)
            .ok_or_else(|| {
                tuf(
                    "timestamp.json",
                    TufError::MissingMeta {
                        parent: Role::Timestamp.to_string(),
                        name: "snapshot.json".into(),
                    },
                )
            })?;
        let name = format!("{snapshot_version}.snapshot.json");
        let snapshot = self.required(from, &name).await?;
        set.update_snapshot(&snapshot, false)
            .map_err(|e| tuf(&name, e))?;
        let targets_version = set
            .snapshot()
            .and_then(|s| s.meta.get("targets.json"))
            .map(|m| m.version)
            .ok_or_else(|| {
                tuf(
                    &name,
                    TufError::MissingMeta {
                        parent: Role::Snapshot.to_string(),
                        name: "targets.json".into(),
                    },
                )
            })?;
        let name = format!("{targets_version}.targets.json");
        let targets = self.required(from, &name).await?;
        set.update_targets(&targets).map_err(|e| tuf(&name, e))?;
        let files = MetadataFiles {
            roots,
            timestamp,
            snapshot,
            targets,
        };
        let index = Index::build(&set, &files).map_err(|e| e.to_string())?;
        Ok((index, files))
    }

    async fn keep(&self, index: &Index) -> Result<(), String> {
        let dir = self.dir.join("metadata");
        for (name, bytes) in &index.metadata {
            let path = dir.join(name);
            let temp = dir.join(format!(".{name}.tmp"));
            tokio::fs::write(&temp, bytes)
                .await
                .map_err(|e| format!("{}: {e}", temp.display()))?;
            tokio::fs::rename(&temp, &path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn install(&self, index: Index, files: MetadataFiles) -> Arc<Index> {
        let index = Arc::new(index);
        *self.lock_roots() = files.roots;
        let previous = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(index.clone());
        if previous.as_ref().map(|p| p.versions) != Some(index.versions) {
            self.emit(
                "metadata",
                "",
                "",
                format!(
                    "root {} timestamp {} snapshot {} targets {}",
                    index.versions[0], index.versions[1], index.versions[2], index.versions[3]
                ),
            );
        }
        index
    }

    /// At start: the index a previous run kept, if it still verifies.
    pub async fn load_kept(&self) -> Result<Arc<Index>, String> {
        let (index, files) = self.load(From::Kept).await?;
        Ok(self.install(index, files))
    }

    /// The index. Once one has verified, a request never waits for the origin: past
    /// `timestamp_ttl` a refresh starts behind it (one at a time) and the current index
    /// answers meanwhile (stale-while-revalidate). Before any index, the request waits for
    /// the first refresh, and its failure is the answer.
    pub async fn index(self: &Arc<Self>) -> Result<Arc<Index>, Refusal> {
        if let Some(index) = self.current_index() {
            let fresh = self
                .lock_checked()
                .is_some_and(|at| at.elapsed() < self.durations.timestamp_ttl);
            if !fresh && !self.refresh_pending.swap(true, Ordering::AcqRel) {
                let edge = self.clone();
                tokio::spawn(async move {
                    let _ = edge.refresh().await;
                    edge.refresh_pending.store(false, Ordering::Release);
                });
            }
            return Ok(index);
        }
        self.refresh().await
    }

    /// Walks the metadata from the origin (one walk at a time) and installs it; a failure
    /// keeps the last verified index, if any.
    pub async fn refresh(&self) -> Result<Arc<Index>, Refusal> {
        let _guard = self.refreshing.lock().await;
        let current = self.current_index();
        // Without an index, requests queue here: let them share a recent failure rather
        // than each walking a dead origin again.
        if current.is_none() {
            if let Some((at, refusal)) = self.lock_last_failure().as_ref() {
                if at.elapsed()
                    < self
                        .durations
                        .timestamp_ttl
                        .max(std::time::Duration::from_secs(1))
                {
                    return Err(refusal.clone());
                }
            }
        }
        if let Some(index) = &current {
            if self
                .lock_checked()
                .is_some_and(|at| at.elapsed() < self.durations.timestamp_ttl)
            {
                return Ok(index.clone());
            }
        }
        let loaded = self.load(From::Origin).await.and_then(|(index, files)| {
            match &current {
                                // Each refresh walks from the root, so the walk's own rollback checks see
                // nothing older: compare every role with what is being served.
                Some(old) if (0..4).any(|role| index.versions[role] < old.versions[role]) => Err(format!(
                    "metadata versions {:?} (root, timestamp, snapshot, targets) from the origin go back from the {:?} already served (rollback)",
                    index.versions, old.versions
                )),
                _ => Ok((index, files)),
            }
        });
        *self.lock_checked() = Some(Instant::now());
        match loaded {
            Ok((index, files)) => {
                if let Err(e) = self.keep(&index).await {
                    eprintln!("warning: could not keep verified metadata: {e}");
                }
                Ok(self.install(index, files))
            }
            Err(e) => {
                self.metrics
                    .metadata_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.emit("origin_failed", "metadata/timestamp.json", "", e.clone());
                current.ok_or_else(|| {
                    let refusal = Refusal::new(
                        502,
                        "origin_failed",
                        format!("no verified metadata yet: {e}"),
                    );
                    *self.lock_last_failure() = Some((Instant::now(), refusal.clone()));
                    refusal
                })
            }
        }
    }
}
