//! The gateway's [`IdentityStore`] over the state file: the same answers as
//! [`MemoryStore`](swarmdrop_gateway::store::MemoryStore) (a property test holds them
//! to it), but revocations and used nonces survive a restart, and several gateway
//! processes may share one file.
//!
//! Every operation is one transaction: `consume` in particular checks and marks a value
//! in one `UPDATE … WHERE used = 0`, so of two racing sign-ins with one nonce exactly
//! one wins, whichever process they reach.

use rusqlite::{params, OptionalExtension as _, TransactionBehavior};
use swarmdrop_gateway::store::{IdentityStore, NewSingleUse, Pending, StoreError, StoreFuture};
use swarmdrop_manifest::UtcTime;

use crate::{Db, StateFile};

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn count(db: &Db, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<usize> {
    let n: i64 = db.conn.query_row(sql, args, |row| row.get(0))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

impl Db {
    fn issue(&mut self, new: NewSingleUse, now: i64) -> Result<(), StoreError> {
        self.saw(now);
        let limits = self.limits;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        // Counted as the memory store counts: values issued to this owner and not yet
        // expired, used or not (a used nonce still took its turn).
        let owned: i64 = tx
            .query_row(
                "SELECT count(*) FROM single_use WHERE owner = ?1 AND expires > ?2",
                params![new.owner, now],
                |row| row.get(0),
            )
            .map_err(backend)?;
        if usize::try_from(owned).unwrap_or(usize::MAX) >= limits.max_per_owner {
            return Err(StoreError::ClientFull(new.kind));
        }
        let total = |tx: &rusqlite::Transaction<'_>| -> rusqlite::Result<usize> {
            let n: i64 = tx.query_row("SELECT count(*) FROM single_use", [], |row| row.get(0))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        };
        if total(&tx).map_err(backend)? >= limits.max_pending {
            tx.execute("DELETE FROM single_use WHERE expires <= ?1", [now])
                .map_err(backend)?;
            if total(&tx).map_err(backend)? >= limits.max_pending {
                return Err(StoreError::Full(new.kind));
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO single_use (kind, value, data, owner, expires, used)
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            params![new.kind, new.value, new.data, new.owner, new.expires.unix()],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn peek(&mut self, kind: &str, value: &str, now: i64) -> Result<Pending, StoreError> {
        self.saw(now);
        let row: Option<(String, i64, bool)> = self
            .conn
            .query_row(
                "SELECT data, expires, used FROM single_use WHERE kind = ?1 AND value = ?2",
                params![kind, value],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(backend)?;
        Ok(match row {
            Some((_, expires, _)) if expires <= now => Pending::Unknown,
            Some((_, _, true)) => Pending::Used,
            Some((data, _, false)) => Pending::Ready(data),
            None => Pending::Unknown,
        })
    }

    fn consume(&mut self, kind: &str, value: &str, now: i64) -> Result<bool, StoreError> {
        self.saw(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let changed = tx
            .execute(
                "UPDATE single_use SET used = 1
                 WHERE kind = ?1 AND value = ?2 AND used = 0 AND expires > ?3",
                params![kind, value, now],
            )
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(changed == 1)
    }

    fn revoke(&mut self, jti: &str, expires: i64) -> Result<u64, StoreError> {
        // A revocation is acknowledged only once it is on disk: a power cut must not
        // bring a revoked session back. (Nonces need not pay for that: losing one only
        // makes a sign-in start over.)
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        let result = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO revocations (jti, expires) VALUES (?1, ?2)",
                params![jti, expires],
            )?;
            tx.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'revocation_version'",
                [],
            )?;
            let version: i64 = tx.query_row(
                "SELECT value FROM counters WHERE name = 'revocation_version'",
                [],
                |row| row.get(0),
            )?;
            tx.commit()?;
            Ok(u64::try_from(version).unwrap_or(0))
        })()
        .map_err(backend);
        let restored = self
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend);
        let version = result?;
        restored?;
        Ok(version)
    }

    fn revocations(&mut self, now: i64) -> Result<(u64, Vec<String>), StoreError> {
        self.saw(now);
        // Read-only (polled by every tracker and edge): expired rows are filtered here
        // and deleted by the purge, not on every read.
        let tx = self.conn.transaction().map_err(backend)?;
        let version: i64 = tx
            .query_row(
                "SELECT value FROM counters WHERE name = 'revocation_version'",
                [],
                |row| row.get(0),
            )
            .map_err(backend)?;
        let mut statement = tx
            .prepare("SELECT jti FROM revocations WHERE expires > ?1 ORDER BY jti")
            .map_err(backend)?;
        let revoked = statement
            .query_map([now], |row| row.get(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(backend)?;
        drop(statement);
        tx.commit().map_err(backend)?;
        Ok((u64::try_from(version).unwrap_or(0), revoked))
    }

    fn pending(&mut self) -> Result<usize, StoreError> {
        count(self, "SELECT count(*) FROM single_use", []).map_err(backend)
    }
}

impl IdentityStore for StateFile {
    fn issue(&self, new: NewSingleUse, now: UtcTime) -> StoreFuture<'_, ()> {
        self.call(move |db| db.issue(new, now.unix()))
    }

    fn peek(&self, kind: &'static str, value: &str, now: UtcTime) -> StoreFuture<'_, Pending> {
        let value = value.to_owned();
        self.call(move |db| db.peek(kind, &value, now.unix()))
    }

    fn consume(&self, kind: &'static str, value: &str, now: UtcTime) -> StoreFuture<'_, bool> {
        let value = value.to_owned();
        self.call(move |db| db.consume(kind, &value, now.unix()))
    }

    fn revoke(&self, jti: String, expires: UtcTime) -> StoreFuture<'_, u64> {
        self.call(move |db| db.revoke(&jti, expires.unix()))
    }

    fn revocations(&self, now: UtcTime) -> StoreFuture<'_, (u64, Vec<String>)> {
        self.call(move |db| db.revocations(now.unix()))
    }

    fn pending(&self) -> StoreFuture<'_, usize> {
        self.call(Db::pending)
    }
}

#[cfg(test)]
mod tests;
