//! Quality-of-experience reports (`POST /qoe` on `swarmdrop serve`): one row per report
//! and one per asset in it, kept for a bounded time and count, read back newest first
//! for `GET /qoe/summary`.
//!
//! Reports come from any token holder, so the tables are bounded three ways: each row
//! expires (the background purge drops it, as it drops expired nonces), at most
//! [`QoeRetention::max_reports`] reports and [`QoeRetention::max_asset_rows`] asset rows
//! are kept (the oldest reports go first, whole), and readers ask for the newest N rows
//! only.

use rusqlite::{params, OptionalExtension as _, TransactionBehavior};
use swarmdrop_gateway::store::{StoreError, StoreFuture};
use swarmdrop_manifest::qoe::{PathBytes, QoeReport};
use swarmdrop_manifest::UtcTime;

use crate::{Db, StateFile};

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A report as received, with who sent it.
#[derive(Debug, Clone)]
pub struct NewQoe {
    /// The checked report.
    pub report: QoeReport,
    /// The token's subject (`0x…` address, `anon:…`), or empty without a token.
    pub subject: String,
    /// The token's tier, or empty.
    pub tier: String,
    /// When it arrived.
    pub received: UtcTime,
    /// When it may be purged.
    pub expires: UtcTime,
}

/// How much is kept.
#[derive(Debug, Clone, Copy)]
pub struct QoeRetention {
    /// Most reports.
    pub max_reports: usize,
    /// Most asset rows, all reports together.
    pub max_asset_rows: usize,
}

/// One stored asset row, as the summary reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAsset {
    /// The report it came in.
    pub report: i64,
    /// Its class.
    pub class: String,
    /// Its arrival, from when it was needed.
    pub arrival_ms: u64,
    /// Whether that was within its budget.
    pub within_budget: bool,
}

/// The newest rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentQoe {
    /// Reports stored (all of them, not only the newest).
    pub reports: u64,
    /// Bytes by path kind over the newest reports read.
    pub bytes_by_path: PathBytes,
    /// The newest asset rows, newest first.
    pub assets: Vec<StoredAsset>,
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Db {
    fn record_qoe(&mut self, new: &NewQoe, keep: QoeRetention) -> rusqlite::Result<i64> {
        self.saw(new.received.unix());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let r = &new.report;
        tx.execute(
            "INSERT INTO qoe_reports (received, expires, subject, tier, client_id, wall_ms,
                                      p2p_bytes, edge_bytes, origin_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                new.received.unix(),
                new.expires.unix(),
                new.subject,
                new.tier,
                r.client_id,
                int(r.wall_ms),
                int(r.bytes_by_path.p2p),
                int(r.bytes_by_path.edge),
                int(r.bytes_by_path.origin),
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut insert = tx.prepare(
                "INSERT INTO qoe_assets (report, path, class, bytes, budget_ms, arrival_ms,
                                         within_budget)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for a in &r.assets {
                insert.execute(params![
                    id,
                    a.path.as_str(),
                    a.class.as_str(),
                    int(a.bytes),
                    int(a.budget_ms),
                    int(a.arrival_ms),
                    a.within_budget,
                ])?;
            }
        }
        // The oldest reports go, whole, until both caps hold.
        let beyond_reports: Option<i64> = tx
            .query_row(
                "SELECT id FROM qoe_reports ORDER BY id DESC LIMIT 1 OFFSET ?1",
                [int(keep.max_reports as u64)],
                |row| row.get(0),
            )
            .optional()?;
        let beyond_rows: Option<i64> = tx
            .query_row(
                "SELECT report FROM qoe_assets ORDER BY rowid DESC LIMIT 1 OFFSET ?1",
                [int(keep.max_asset_rows as u64)],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(last) = beyond_reports.max(beyond_rows) {
            tx.execute("DELETE FROM qoe_assets WHERE report <= ?1", [last])?;
            tx.execute("DELETE FROM qoe_reports WHERE id <= ?1", [last])?;
        }
        tx.commit()?;
        Ok(id)
    }

    fn recent_qoe(&mut self, max_reports: usize, max_assets: usize) -> rusqlite::Result<RecentQoe> {
        let reports: i64 = self
            .conn
            .query_row("SELECT count(*) FROM qoe_reports", [], |row| row.get(0))?;
        let (p2p, edge, origin): (i64, i64, i64) = self.conn.query_row(
            "SELECT coalesce(sum(p2p_bytes), 0), coalesce(sum(edge_bytes), 0),
                    coalesce(sum(origin_bytes), 0)
             FROM (SELECT p2p_bytes, edge_bytes, origin_bytes FROM qoe_reports
                   ORDER BY id DESC LIMIT ?1)",
            [int(max_reports as u64)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let mut select = self.conn.prepare(
            "SELECT report, class, arrival_ms, within_budget FROM qoe_assets
             ORDER BY rowid DESC LIMIT ?1",
        )?;
        let assets = select
            .query_map([int(max_assets as u64)], |row| {
                Ok(StoredAsset {
                    report: row.get(0)?,
                    class: row.get(1)?,
                    arrival_ms: uint(row.get(2)?),
                    within_budget: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(RecentQoe {
            reports: uint(reports),
            bytes_by_path: PathBytes {
                p2p: uint(p2p),
                edge: uint(edge),
                origin: uint(origin),
            },
            assets,
        })
    }

    /// Drops reports that expired before `now` (with their assets).
    pub(crate) fn purge_qoe(tx: &rusqlite::Transaction<'_>, now: i64) -> rusqlite::Result<()> {
        tx.execute(
            "DELETE FROM qoe_assets WHERE report IN
                 (SELECT id FROM qoe_reports WHERE expires <= ?1)",
            [now],
        )?;
        tx.execute("DELETE FROM qoe_reports WHERE expires <= ?1", [now])?;
        Ok(())
    }
}

impl StateFile {
    /// Stores a report; returns its row id. The oldest reports are dropped beyond `keep`.
    pub fn record_qoe(&self, new: NewQoe, keep: QoeRetention) -> StoreFuture<'_, i64> {
        self.call(move |db| db.record_qoe(&new, keep).map_err(backend))
    }

    /// The newest `max_assets` asset rows and the bytes of the newest `max_reports`
    /// reports.
    pub fn recent_qoe(&self, max_reports: usize, max_assets: usize) -> StoreFuture<'_, RecentQoe> {
        self.call(move |db| db.recent_qoe(max_reports, max_assets).map_err(backend))
    }
}

#[cfg(test)]
mod tests {
    use swarmdrop_manifest::qoe::{QoeAsset, VERSION};
    use swarmdrop_manifest::{ClassName, DropPath};

    use super::*;
    use crate::Limits;

    fn report(classes: &[(&str, u64)]) -> QoeReport {
        QoeReport {
            version: VERSION,
            client_id: "c0ffee".into(),
            wall_ms: 900,
            bytes_by_path: PathBytes {
                p2p: 1,
                edge: 2,
                origin: 3,
            },
            assets: classes
                .iter()
                .enumerate()
                .map(|(i, (class, arrival_ms))| QoeAsset {
                    path: DropPath::new(&format!("a/{i}.bin")).unwrap(),
                    class: ClassName::new(class).unwrap(),
                    bytes: 10,
                    budget_ms: 500,
                    arrival_ms: *arrival_ms,
                    within_budget: *arrival_ms <= 500,
                })
                .collect(),
            decisions: Default::default(),
        }
    }

    fn new(report: QoeReport, at: i64) -> NewQoe {
        NewQoe {
            report,
            subject: "anon:1234".into(),
            tier: "anonymous".into(),
            received: UtcTime::from_unix(at).unwrap(),
            expires: UtcTime::from_unix(at + 100).unwrap(),
        }
    }

    fn open(path: &std::path::Path) -> StateFile {
        StateFile::open(
            path,
            Limits {
                max_pending: 10,
                max_per_owner: 10,
            },
        )
        .unwrap()
    }

    const KEEP: QoeRetention = QoeRetention {
        max_reports: 1000,
        max_asset_rows: 1000,
    };

    #[tokio::test]
    async fn reports_are_stored_read_newest_first_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let state = open(&path);
        let first = state
            .record_qoe(
                new(report(&[("keyframe", 100), ("bulk", 900)]), 1_000),
                KEEP,
            )
            .await
            .unwrap();
        let second = state
            .record_qoe(new(report(&[("keyframe", 700)]), 1_001), KEEP)
            .await
            .unwrap();
        assert!(second > first);
        let recent = state.recent_qoe(10, 10).await.unwrap();
        assert_eq!(recent.reports, 2);
        assert_eq!(
            recent.bytes_by_path,
            PathBytes {
                p2p: 2,
                edge: 4,
                origin: 6
            }
        );
        let got: Vec<(i64, &str, u64, bool)> = recent
            .assets
            .iter()
            .map(|a| (a.report, a.class.as_str(), a.arrival_ms, a.within_budget))
            .collect();
        assert_eq!(
            got,
            vec![
                (second, "keyframe", 700, false),
                (first, "bulk", 900, false),
                (first, "keyframe", 100, true)
            ]
        );
        // Bounded reads.
        assert_eq!(state.recent_qoe(1, 1).await.unwrap().assets.len(), 1);
        assert_eq!(
            state.recent_qoe(1, 1).await.unwrap().bytes_by_path,
            PathBytes {
                p2p: 1,
                edge: 2,
                origin: 3
            }
        );
        state.close().unwrap();
        let state = open(&path);
        assert_eq!(state.recent_qoe(10, 10).await.unwrap().reports, 2);
    }

    #[tokio::test]
    async fn the_oldest_reports_go_beyond_the_caps_and_expired_ones_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let state = open(&dir.path().join("state.sqlite"));
        let keep = QoeRetention {
            max_reports: 3,
            max_asset_rows: 5,
        };
        for at in 0..5 {
            state
                .record_qoe(new(report(&[("keyframe", 1)]), 1_000 + at), keep)
                .await
                .unwrap();
        }
        assert_eq!(state.recent_qoe(100, 100).await.unwrap().reports, 3);
        // Two assets each: the row cap (5) keeps the newest two reports.
        for at in 5..8 {
            state
                .record_qoe(new(report(&[("a", 1), ("b", 2)]), 1_000 + at), keep)
                .await
                .unwrap();
        }
        let recent = state.recent_qoe(100, 100).await.unwrap();
        assert!(recent.assets.len() <= 5, "{}", recent.assets.len());
        assert_eq!(recent.reports, 2);
        // Everything expires 100 s after it arrived; a later caller's time purges it.
        state
            .call(|db| {
                db.saw(10_000);
                db.purge().map_err(backend)
            })
            .await
            .unwrap();
        let recent = state.recent_qoe(100, 100).await.unwrap();
        assert_eq!((recent.reports, recent.assets.len()), (0, 0));
    }
}
