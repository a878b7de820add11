//! Following a live drop: while the run goes on, `timestamp.json` is polled at the
//! interval the drop's live classes sign (`poll_ms`, the shortest of them); when its bytes
//! change, the whole chain is walked again from the trusted root, versions older than the
//! ones already trusted are refused (no rollback to a stale release), and every target
//! that is new — a new path, or new bytes at a known path — goes to the running plan.
//!
//! The poller is its own task and owns what it needs; it talks to the run over a channel
//! and stops when the run drops the receiving end.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use swarmdrop_manifest::tuf::metadata::TargetFile;
use swarmdrop_manifest::tuf::TrustedSet;
use tokio::sync::mpsc;

use crate::assets::Asset;
use crate::mirrors::{fetch_first, Mirror};
use crate::{load_torrents, refresh, ClientOptions, Quiet};

/// How often to poll when the drop signs no live class.
pub(crate) const DEFAULT_POLL: Duration = Duration::from_secs(5);
/// The most `timestamp.json` may weigh.
const MAX_TIMESTAMP_BYTES: usize = 64 << 10;

/// What the poller tells the run.
pub(crate) enum Followed {
    /// A new version's new assets (signed targets version, assets).
    Assets(u64, Vec<Asset>),
    /// Something the user should see (a failed poll, a refused rollback).
    Note(String),
}

/// The versions already trusted; a refresh must not go below any of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Versions {
    timestamp: u64,
    snapshot: u64,
    targets: u64,
}

impl Versions {
    pub(crate) fn of(trusted: &TrustedSet) -> Self {
        Versions {
            timestamp: trusted.timestamp().map_or(0, |t| t.version),
            snapshot: trusted.snapshot().map_or(0, |s| s.version),
            targets: trusted.targets().map_or(0, |t| t.version),
        }
    }

    /// The role that went back, if any.
    fn rollback_from(&self, newer: &Versions) -> Option<(&'static str, u64, u64)> {
        [
            ("timestamp", self.timestamp, newer.timestamp),
            ("snapshot", self.snapshot, newer.snapshot),
            ("targets", self.targets, newer.targets),
        ]
        .into_iter()
        .find(|(_, old, new)| new < old)
    }
}

/// The poll interval the signed targets ask for: the shortest `poll_ms` of any target.
pub(crate) fn poll_interval(targets: &BTreeMap<String, TargetFile>) -> Option<Duration> {
    targets
        .values()
        .filter_map(|t| t.swarmdrop().and_then(|c| c.poll_ms))
        .min()
        .map(Duration::from_millis)
}

/// What identifies an asset across versions: its path and its bytes.
pub(crate) fn key(name: &str, target: &TargetFile) -> (String, String) {
    let sha256 = target
        .hashes
        .get("sha256")
        .map(|h| h.to_ascii_lowercase())
        .unwrap_or_default();
    (name.to_owned(), sha256)
}

/// Everything the poller needs, owned.
pub(crate) struct Poller {
    pub options: ClientOptions,
    pub mirrors: Vec<Mirror>,
    pub bearer: Option<String>,
    pub interval: Duration,
    pub known: HashSet<(String, String)>,
    pub versions: Versions,
}

impl Poller {
    /// Starts polling; the receiver gets new assets and notes.
    pub(crate) fn start(self) -> mpsc::UnboundedReceiver<Followed> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(self.run(tx));
        rx
    }

    async fn run(mut self, tx: mpsc::UnboundedSender<Followed>) {
        let mut last_timestamp: Option<bytes::Bytes> = None;
        loop {
            tokio::time::sleep(self.interval).await;
            if tx.is_closed() {
                return;
            }
            let bearer = self.bearer.clone();
            let headers: Vec<(&str, &str)> = bearer
                .as_deref()
                .map(|b| vec![("authorization", b)])
                .unwrap_or_default();
            let timestamp = match fetch_first(
                &self.mirrors,
                "metadata/timestamp.json",
                MAX_TIMESTAMP_BYTES,
                &headers,
            )
            .await
            {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(e) => {
                    let _ = tx.send(Followed::Note(format!("following the drop: {e}")));
                    continue;
                }
            };
            // Unchanged bytes are an unchanged release: nothing to walk.
            if last_timestamp.as_ref() == Some(&timestamp) {
                continue;
            }
            match self.poll(&headers).await {
                Ok(Some(followed)) => {
                    last_timestamp = Some(timestamp);
                    if tx.send(followed).is_err() {
                        return;
                    }
                }
                Ok(None) => last_timestamp = Some(timestamp),
                Err(why) => {
                    let _ = tx.send(Followed::Note(format!("following the drop: {why}")));
                }
            }
        }
    }

    /// Walks the chain again; returns the new assets, if any.
    async fn poll(&mut self, headers: &[(&str, &str)]) -> Result<Option<Followed>, String> {
        let trusted = refresh(&self.options, &self.mirrors, &self.mirrors, headers, &Quiet)
            .await
            .map_err(|e| e.to_string())?;
        let versions = Versions::of(&trusted);
        if let Some((role, old, new)) = self.versions.rollback_from(&versions) {
            return Err(format!(
                "refused {role} version {new}: version {old} is already trusted (a rollback)"
            ));
        }
        self.versions = versions;
        let targets = trusted
            .targets()
            .map(|t| t.targets.clone())
            .unwrap_or_default();
        if let Some(interval) = poll_interval(&targets) {
            self.interval = interval;
        }
        let mut fresh = Vec::new();
        for (name, target) in &targets {
            let wanted = self.options.assets.is_empty() || self.options.assets.contains(name);
            if wanted && !self.known.contains(&key(name, target)) {
                fresh.push(
                    Asset::new(name, target, &self.options.out_dir).map_err(|e| e.to_string())?,
                );
            }
        }
        if fresh.is_empty() {
            return Ok(None);
        }
        load_torrents(&mut fresh, &targets, &self.mirrors, headers)
            .await
            .map_err(|e| e.to_string())?;
        for asset in &fresh {
            if let Some(target) = targets.get(&asset.path) {
                self.known.insert(key(&asset.path, target));
            }
        }
        Ok(Some(Followed::Assets(versions.targets, fresh)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_version_of_any_role_is_a_rollback() {
        let trusted = Versions {
            timestamp: 5,
            snapshot: 5,
            targets: 3,
        };
        let same = trusted;
        assert_eq!(trusted.rollback_from(&same), None);
        let newer = Versions {
            timestamp: 6,
            snapshot: 6,
            targets: 4,
        };
        assert_eq!(trusted.rollback_from(&newer), None);
        let stale_targets = Versions {
            targets: 2,
            ..newer
        };
        assert_eq!(
            trusted.rollback_from(&stale_targets),
            Some(("targets", 3, 2))
        );
        let stale_timestamp = Versions {
            timestamp: 4,
            ..newer
        };
        assert_eq!(
            trusted.rollback_from(&stale_timestamp),
            Some(("timestamp", 5, 4))
        );
    }

    #[test]
    fn the_interval_is_the_shortest_live_class() {
        let target = |poll: Option<u64>| -> TargetFile {
            let mut custom = serde_json::json!({"class": "k", "budget_ms": 800, "paths": ["edge"]});
            if let Some(ms) = poll {
                custom["poll_ms"] = ms.into();
            }
            serde_json::from_value(serde_json::json!({
                "length": 1,
                "hashes": {"sha256": "00".repeat(32)},
                "custom": custom,
            }))
            .unwrap()
        };
        let mut targets = BTreeMap::new();
        targets.insert("a".to_owned(), target(None));
        assert_eq!(poll_interval(&targets), None);
        targets.insert("b".to_owned(), target(Some(900)));
        targets.insert("c".to_owned(), target(Some(250)));
        assert_eq!(poll_interval(&targets), Some(Duration::from_millis(250)));
    }
}
