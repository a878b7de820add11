//! The embedded state file: durable state in one SQLite file, so a publisher runs
//! `swarmdrop serve` with nothing else to install (SQLite is compiled in).
//!
//! One connection lives on a thread of its own ([`StateFile`]); async callers send it
//! closures and await the answers, so no SQLite call (which may block on the disk or on
//! another process's lock) ever runs on a tokio worker. Writes that must be atomic are
//! one transaction each (`BEGIN IMMEDIATE`, so two processes sharing the file serialise
//! instead of failing half-way).
//!
//! The file is in WAL mode (readers never wait for the writer; a crash leaves the last
//! committed transaction), its schema is versioned with `PRAGMA user_version` (see
//! [`schema`]), and expired rows are purged in the background. Today it holds the
//! gateway's nonces, proof-of-work challenges and revocations ([`identity`]) and the
//! clients' quality reports ([`qoe`]); the
//! control plane's tables (drops, receipts, audit log, webhook outbox) belong here too.
#![warn(missing_docs)]

pub mod identity;
pub mod qoe;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use swarmdrop_gateway::store::{StoreError, StoreFuture};

/// How often expired rows are purged when the file is idle or busy alike.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A state file that cannot be opened or closed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite refused the file (not a database, unreadable, locked, …).
    #[error("state file {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file's schema is newer than this program knows.
    #[error("state file {path}: schema version {found} is newer than this swarmdrop knows ({known}); use a newer swarmdrop or another --state file")]
    NewerSchema {
        /// The file.
        path: String,
        /// Its `user_version`.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The state thread could not be started or stopped.
    #[error("state file {path}: {detail}")]
    Thread {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
}

/// Bounds on the identity tables (the gateway's `max_pending` settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most pending nonces and challenges.
    pub max_pending: usize,
    /// Of those, most held by one client.
    pub max_per_owner: usize,
}

/// The connection and what the state thread keeps beside it.
pub(crate) struct Db {
    pub(crate) conn: Connection,
    pub(crate) limits: Limits,
    /// The latest time a caller passed in: the purge uses it, so expiry follows the
    /// gateway's clock (and a test's fake one), never a second clock of its own.
    pub(crate) latest_now: i64,
}

type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// The open state file. Cheap to share behind an `Arc`; [`StateFile::close`] ends it.
pub struct StateFile {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<Result<(), StateError>>>>,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> StateError + '_ {
    move |source| StateError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

impl StateFile {
    /// Opens (creating if needed) the state file at `path`, brings its schema up to
    /// date, and starts its thread. Blocking: call it before the runtime starts or
    /// through `spawn_blocking`.
    pub fn open(path: &Path, limits: Limits) -> Result<Self, StateError> {
        let conn = Connection::open(path).map_err(sqlite_error(path))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sqlite_error(path))?;
        // WAL: readers and the writer do not block each other, and a killed process
        // leaves every committed transaction. NORMAL syncs at checkpoints only; the
        // writes that must survive a power cut (revocations) sync on their own.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite_error(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_error(path))?;
        let mut conn = conn;
        schema::migrate(&mut conn, path)?;
        let mut db = Db {
            conn,
            limits: Limits {
                max_pending: limits.max_pending.max(1),
                max_per_owner: limits.max_per_owner.max(1),
            },
            latest_now: i64::MIN,
        };
        let (jobs, receiver) = mpsc::channel::<Job>();
        let thread_path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("state-file".into())
            .spawn(move || {
                let mut last_purge = Instant::now();
                loop {
                    match receiver.recv_timeout(PURGE_EVERY) {
                        Ok(job) => job(&mut db),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    if last_purge.elapsed() >= PURGE_EVERY {
                        last_purge = Instant::now();
                        // A failed purge is retried next time; the rows it would remove
                        // are already invisible (every query filters on expiry).
                        let _ = db.purge();
                    }
                }
                db.close(&thread_path)
            })
            .map_err(|e| StateError::Thread {
                path: path.display().to_string(),
                detail: format!("starting its thread: {e}"),
            })?;
        Ok(Self {
            path: path.to_owned(),
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finishes the queued work, checkpoints the WAL into the main file and closes it.
    /// Later calls fail with "closed". Blocking (it joins the state thread).
    pub fn close(&self) -> Result<(), StateError> {
        let thread_error = |detail: &str| StateError::Thread {
            path: self.path.display().to_string(),
            detail: detail.to_owned(),
        };
        drop(
            self.jobs
                .lock()
                .map_err(|_| thread_error("a thread panicked holding the job queue"))?
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .map_err(|_| thread_error("a thread panicked holding the state thread"))?
            .take();
        match thread {
            Some(thread) => thread
                .join()
                .map_err(|_| thread_error("the state thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Runs `f` on the state thread; the future resolves with its answer.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |db| {
            // The caller may have gone away (a cancelled request); nothing to do then.
            let _ = reply.send(f(db));
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok()),
            Err(_) => false,
        };
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Backend("the state file is closed".into()));
            }
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Backend("the state thread stopped".into())))
        })
    }
}

impl Drop for StateFile {
    fn drop(&mut self) {
        // Closing twice is harmless; an error here has no one left to hear it.
        let _ = self.close();
    }
}

impl Db {
    /// Deletes rows that expired before the latest time seen.
    pub(crate) fn purge(&mut self) -> rusqlite::Result<()> {
        if self.latest_now == i64::MIN {
            return Ok(());
        }
        let now = self.latest_now;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM single_use WHERE expires <= ?1", [now])?;
        tx.execute("DELETE FROM revocations WHERE expires <= ?1", [now])?;
        Db::purge_qoe(&tx, now)?;
        tx.commit()
    }

    fn close(self, path: &Path) -> Result<(), StateError> {
        // Fold the WAL into the main file so the file stands alone once we are gone.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sqlite_error(path))?;
        self.conn
            .close()
            .map_err(|(_, source)| sqlite_error(path)(source))
    }

    pub(crate) fn saw(&mut self, now: i64) {
        self.latest_now = self.latest_now.max(now);
    }
}
