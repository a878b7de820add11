//! The schema and its versions. `PRAGMA user_version` holds the version a file is at;
//! opening a file applies each later step in one transaction, so a file is always at
//! exactly one version, and a file from a newer build is refused instead of misread.

use std::path::Path;

use rusqlite::Connection;

use crate::StateError;

/// Each step takes the file from version N to N + 1 (the first from an empty file).
const STEPS: &[&str] = &[
    // 1: the gateway's identity store.
    "CREATE TABLE single_use (
         kind    TEXT    NOT NULL,
         value   TEXT    NOT NULL,
         data    TEXT    NOT NULL,
         owner   TEXT    NOT NULL,
         expires INTEGER NOT NULL,
         used    INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (kind, value)
     ) WITHOUT ROWID;
     CREATE INDEX single_use_owner ON single_use (owner, expires);
     CREATE INDEX single_use_expires ON single_use (expires);
     CREATE TABLE revocations (
         jti     TEXT    PRIMARY KEY,
         expires INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE counters (
         name  TEXT    PRIMARY KEY,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;
     INSERT INTO counters (name, value) VALUES ('revocation_version', 0);",
    // 2: clients' quality-of-experience reports (serve's POST /qoe).
    "CREATE TABLE qoe_reports (
         id           INTEGER PRIMARY KEY,
         received     INTEGER NOT NULL,
         expires      INTEGER NOT NULL,
         subject      TEXT    NOT NULL,
         tier         TEXT    NOT NULL,
         client_id    TEXT    NOT NULL,
         wall_ms      INTEGER NOT NULL,
         p2p_bytes    INTEGER NOT NULL,
         edge_bytes   INTEGER NOT NULL,
         origin_bytes INTEGER NOT NULL
     );
     CREATE INDEX qoe_reports_expires ON qoe_reports (expires);
     CREATE TABLE qoe_assets (
         report        INTEGER NOT NULL REFERENCES qoe_reports (id),
         path          TEXT    NOT NULL,
         class         TEXT    NOT NULL,
         bytes         INTEGER NOT NULL,
         budget_ms     INTEGER NOT NULL,
         arrival_ms    INTEGER NOT NULL,
         within_budget INTEGER NOT NULL
     );
     CREATE INDEX qoe_assets_report ON qoe_assets (report);",
];

/// The version this build writes.
pub const VERSION: i64 = STEPS.len() as i64;

/// Brings `conn` up to [`VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let error = |source| StateError::Sqlite {
        path: path.display().to_string(),
        source,
    };
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(error)?;
    if found > VERSION {
        return Err(StateError::NewerSchema {
            path: path.display().to_string(),
            found,
            known: VERSION,
        });
    }
    for (index, step) in STEPS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .map_err(error)?;
        tx.execute_batch(step).map_err(error)?;
        // PRAGMA takes no parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))
            .map_err(error)?;
        tx.commit().map_err(error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_the_current_version_and_reopening_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        migrate(&mut conn, &path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
    }

    #[test]
    fn a_version_1_file_steps_up_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(STEPS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1; INSERT INTO revocations VALUES ('j1', 99);")
            .unwrap();
        migrate(&mut conn, &path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM revocations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
        let reports: i64 = conn
            .query_row("SELECT count(*) FROM qoe_reports", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reports, 0);
    }

    #[test]
    fn a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = migrate(&mut conn, &path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = crate::StateFile::open(
            &path,
            crate::Limits {
                max_pending: 1,
                max_per_owner: 1,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("state.sqlite"), "{err}");
    }
}
