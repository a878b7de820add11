//! Torrents the signed metadata names: fetched once, checked (the SHA-256 prefix in the
//! name, and the info hash of the parsed metainfo against the signed one), kept in
//! memory and under `DIR/torrents/`.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use swarmdrop_manifest::torrent::Metainfo;

use crate::index::TorrentRef;
use crate::state::{Edge, Refusal};

/// Largest torrent fetched.
const MAX_TORRENT_BYTES: usize = 16 << 20;

fn check(name: &str, wanted: &TorrentRef, bytes: &[u8]) -> Result<(), String> {
    let digest = hex::encode(Sha256::digest(bytes));
    if !digest.starts_with(&wanted.sha256_prefix) {
        return Err(format!(
            "{name}: its SHA-256 does not start with the {} its name promises",
            wanted.sha256_prefix
        ));
    }
    let meta = Metainfo::parse(bytes).map_err(|e| format!("{name}: {e}"))?;
    if meta.info_hash != wanted.info_hash {
        return Err(format!(
            "{name}: info hash {} is not the signed {}",
            meta.info_hash, wanted.info_hash
        ));
    }
    Ok(())
}

impl Edge {
    /// The verified bytes of torrent `name` and their ETag. Fetches are one at a time,
    /// so a crowd asking for a cold torrent makes one origin request.
    pub async fn torrent(
        &self,
        name: &str,
        wanted: &TorrentRef,
    ) -> Result<(Bytes, String), Refusal> {
        if let Some(held) = self.lock_torrents().get(name) {
            return Ok(held.clone());
        }
        let _one_at_a_time = self.torrent_fetch.lock().await;
        if let Some(held) = self.lock_torrents().get(name) {
            return Ok(held.clone());
        }
        // `name` was checked against the signed metadata's (hex-only) torrent names.
        let kept_path = self.dir.join("torrents").join(name);
        if let Ok(bytes) = tokio::fs::read(&kept_path).await {
            if check(name, wanted, &bytes).is_ok() {
                return Ok(self.hold_torrent(name, Bytes::from(bytes)));
            }
        }
        let url = self.origin_url(&format!("torrents/{name}"));
        self.metrics.origin_requests.fetch_add(1, Ordering::Relaxed);
        let timeouts = swarmdrop_httpc::Timeouts {
            connect: self.durations.origin_timeout,
            head: self.durations.origin_timeout,
            ..swarmdrop_httpc::Timeouts::default()
        };
        let fetched = swarmdrop_httpc::get_bytes(
            &url,
            &[],
            MAX_TORRENT_BYTES,
            timeouts,
            self.durations.origin_timeout,
        )
        .await;
        let bytes = match fetched {
            Ok((status, bytes)) if status == 200 => bytes,
            Ok((status, _)) => {
                self.metrics.origin_failures.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::new(
                    502,
                    "origin_failed",
                    format!("{url}: HTTP {status}"),
                ));
            }
            Err(e) => {
                self.metrics.origin_failures.fetch_add(1, Ordering::Relaxed);
                self.emit(
                    "origin_failed",
                    &format!("torrents/{name}"),
                    &wanted.class,
                    e.to_string(),
                );
                return Err(Refusal::new(502, "origin_failed", e.to_string()));
            }
        };
        self.metrics
            .origin_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Err(why) = check(name, wanted, &bytes) {
            self.metrics
                .verification_failures
                .fetch_add(1, Ordering::Relaxed);
            self.emit(
                "verification_failed",
                &format!("torrents/{name}"),
                &wanted.class,
                why.clone(),
            );
            return Err(Refusal::new(502, "verification_failed", why));
        }
        let temp = self.dir.join("torrents").join(format!(".{name}.tmp"));
        if tokio::fs::write(&temp, &bytes).await.is_ok() {
            let _ = tokio::fs::rename(&temp, &kept_path).await;
        }
        Ok(self.hold_torrent(name, bytes))
    }

    fn hold_torrent(&self, name: &str, bytes: Bytes) -> (Bytes, String) {
        let held = (
            bytes.clone(),
            format!("\"{}\"", hex::encode(Sha256::digest(&bytes))),
        );
        self.lock_torrents().insert(name.to_owned(), held.clone());
        held
    }
}
