//! Pull-through fills: one origin fetch per object however many requests want it,
//! streamed into a temporary file while hashing, verified against the signed metadata,
//! then renamed into the disk tier. Requests read the temporary file behind the writer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;

use crate::index::Target;
use crate::state::{Edge, Refusal};
use crate::tiers::{DiskEntry, MemoryEntry};

/// Where a fill stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// This many bytes are in the temporary file (not yet verified).
    Running(u64),
    /// Complete and verified.
    Verified,
    /// Failed; nothing was cached. The refusal to give waiting clients.
    Failed(Refusal),
}

/// One object being fetched from the origin.
pub struct Fill {
    /// What is being fetched.
    pub target: Arc<Target>,
    /// A read handle on the temporary file (valid after the rename too).
    pub file: Arc<std::fs::File>,
    progress: watch::Sender<Progress>,
}

impl Fill {
    /// Progress updates.
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

fn nonce() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::getrandom(&mut bytes);
    u64::from_le_bytes(bytes)
}

impl Edge {
    /// The fill for `target`: the running one (true: coalesced) or a new one.
    pub fn fill(self: &Arc<Self>, target: &Arc<Target>) -> Result<(Arc<Fill>, bool), Refusal> {
        let mut fills = self.lock_fills();
        if let Some(fill) = fills.get(&target.sha256) {
            return Ok((fill.clone(), true));
        }
        let temp = self.tiers.temp_path(&target.sha256, nonce());
        let io = |e: std::io::Error| {
            Refusal::new(503, "cache_unavailable", format!("{}: {e}", temp.display()))
        };
        let writer = std::fs::File::create_new(&temp).map_err(io)?;
        let reader = std::fs::File::open(&temp).map_err(io)?;
        let (progress, _) = watch::channel(Progress::Running(0));
        let fill = Arc::new(Fill {
            target: target.clone(),
            file: Arc::new(reader),
            progress,
        });
        fills.insert(target.sha256, fill.clone());
        drop(fills);
        let edge = self.clone();
        let running = fill.clone();
        tokio::spawn(async move {
            let _unstick = Unstick {
                edge: edge.clone(),
                fill: running.clone(),
            };
            let outcome = edge
                .run_fill(&running, tokio::fs::File::from_std(writer), &temp)
                .await;
            let final_state = match outcome {
                Ok(()) => Progress::Verified,
                Err(refusal) => {
                    let _ = tokio::fs::remove_file(&temp).await;
                    Progress::Failed(refusal)
                }
            };
            edge.lock_fills().remove(&running.target.sha256);
            running.progress.send_replace(final_state);
        });
        Ok((fill, false))
    }

    async fn run_fill(
        &self,
        fill: &Fill,
        mut writer: tokio::fs::File,
        temp: &std::path::Path,
    ) -> Result<(), Refusal> {
        let target = &fill.target;
        let relative = format!("targets/{}", target.served);
        let url = self.origin_url(&relative);
        let started = Instant::now();
        let origin_failed = |detail: String| {
            self.metrics.origin_failures.fetch_add(1, Ordering::Relaxed);
            self.emit("origin_failed", &target.name, &target.class, detail.clone());
            Refusal::new(502, "origin_failed", detail)
        };
        self.metrics.origin_requests.fetch_add(1, Ordering::Relaxed);
        let timeouts = swarmdrop_httpc::Timeouts {
            connect: self.durations.origin_timeout,
            head: self.durations.origin_timeout,
            ..swarmdrop_httpc::Timeouts::default()
        };
        let response = swarmdrop_httpc::get(&url, &[], timeouts)
            .await
            .map_err(|e| origin_failed(e.to_string()))?;
        if response.status() != 200 {
            return Err(origin_failed(format!("{url}: HTTP {}", response.status())));
        }
        let deadline = tokio::time::Instant::now() + self.durations.origin_body_timeout;
        let mut body = response.into_body();
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let keep_in_memory = target.length <= self.tiers.memory_object_max;
        let io = |e: std::io::Error| {
            Refusal::new(503, "cache_unavailable", format!("{}: {e}", temp.display()))
        };
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| {
                    origin_failed(format!(
                        "{url}: body not complete within {:?}",
                        self.durations.origin_body_timeout
                    ))
                })?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| origin_failed(format!("{url}: {e}")))?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            self.metrics
                .origin_bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if written + chunk.len() as u64 > target.length {
                return Err(self.verification_failed(
                    target,
                    "the origin sent more bytes than the signed length",
                ));
            }
            hasher.update(&chunk);
            // tokio's File hands writes to a blocking task; flush so that readers behind
            // the writer find every byte the progress promises.
            writer.write_all(&chunk).await.map_err(io)?;
            writer.flush().await.map_err(io)?;

            written += chunk.len() as u64;
            fill.progress.send_replace(Progress::Running(written));
        }
        writer.flush().await.map_err(io)?;
        if written != target.length {
            return Err(self.verification_failed(
                target,
                &format!(
                    "the origin sent {written} bytes; the signed length is {}",
                    target.length
                ),
            ));
        }
        if <[u8; 32]>::from(hasher.finalize()) != target.sha256 {
            return Err(
                self.verification_failed(target, "SHA-256 does not match the signed metadata")
            );
        }
        // Durable before it is named: after a crash, every file under its digest's name
        // holds exactly those bytes (a restart re-admits files by name).
        writer.sync_all().await.map_err(io)?;
        let object = self.tiers.object_path(&target.sha256);
        tokio::fs::rename(temp, &object).await.map_err(io)?;
        if let Some(dir) = object.parent() {
            if let Ok(dir) = tokio::fs::File::open(dir).await {
                let _ = dir.sync_all().await;
            }
        }
        let filled = SystemTime::now();
        self.tiers.disk.insert(
            target.sha256,
            DiskEntry {
                length: written,
                filled,
            },
        );
        if keep_in_memory {
            // Read back from the page cache rather than held during the fill, so that
            // many fills at once hold no more memory than their buffers.
            if let Ok(bytes) = tokio::fs::read(&object).await {
                if bytes.len() as u64 == target.length {
                    self.tiers.memory.insert(
                        target.sha256,
                        MemoryEntry {
                            bytes: Bytes::from(bytes),
                            filled,
                        },
                    );
                }
            }
        }
        self.emit(
            "fill",
            &target.name,
            &target.class,
            format!(
                "{written} bytes from the origin in {:.3} s, verified",
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    fn verification_failed(&self, target: &Target, why: &str) -> Refusal {
        self.metrics
            .verification_failures
            .fetch_add(1, Ordering::Relaxed);
        self.emit("verification_failed", &target.name, &target.class, why);
        Refusal::new(
            502,
            "verification_failed",
            format!("{}: {why}; not cached and not served", target.name),
        )
    }
}

/// Should a fill task ever die before it finishes (a panic), this ends the fill as
/// failed, so that no waiter hangs and the next request starts afresh.
struct Unstick {
    edge: Arc<Edge>,
    fill: Arc<Fill>,
}

impl Drop for Unstick {
    fn drop(&mut self) {
        if matches!(*self.fill.progress.borrow(), Progress::Running(_)) {
            self.edge.lock_fills().remove(&self.fill.target.sha256);
            self.fill
                .progress
                .send_replace(Progress::Failed(Refusal::new(
                    502,
                    "fill_failed",
                    "the fill stopped unexpectedly",
                )));
        }
    }
}

/// Waits until `fill` is verified or failed.
pub async fn finished(fill: &Fill) -> Result<(), Refusal> {
    let mut watch = fill.watch();
    loop {
        match &*watch.borrow_and_update() {
            Progress::Verified => return Ok(()),
            Progress::Failed(refusal) => return Err(refusal.clone()),
            Progress::Running(_) => {}
        }
        if watch.changed().await.is_err() {
            // The sender is gone: its last value is final.
            return match &*watch.borrow() {
                Progress::Verified => Ok(()),
                Progress::Failed(refusal) => Err(refusal.clone()),
                Progress::Running(_) => Err(Refusal::new(502, "origin_failed", "the fill stopped")),
            };
        }
    }
}

/// Bytes of a verified small object, straight from the memory tier (after `finished`).
pub fn verified_bytes(edge: &Edge, target: &Target) -> Option<Bytes> {
    edge.tiers.memory.get(&target.sha256).map(|e| e.bytes)
}
