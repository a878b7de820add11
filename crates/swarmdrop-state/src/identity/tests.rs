use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use swarmdrop_gateway::store::MemoryStore;

use super::*;
use crate::Limits;

fn t(s: i64) -> UtcTime {
    UtcTime::from_unix(1_800_000_000 + s).unwrap()
}

fn open(path: &Path, max_pending: usize, max_per_owner: usize) -> StateFile {
    StateFile::open(
        path,
        Limits {
            max_pending,
            max_per_owner,
        },
    )
    .unwrap()
}

fn single(kind: &'static str, value: &str, owner: &str, expires: i64) -> NewSingleUse {
    NewSingleUse {
        kind,
        value: value.into(),
        data: format!("data of {value}"),
        owner: owner.into(),
        expires: t(expires),
    }
}

#[tokio::test]
async fn revocations_and_used_nonces_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    {
        let store = open(&path, 10, 10);
        store
            .issue(single("nonce", "n1", "10.0.0.1", 60), t(0))
            .await
            .unwrap();
        store
            .issue(single("nonce", "n2", "10.0.0.1", 60), t(0))
            .await
            .unwrap();
        assert!(store.consume("nonce", "n1", t(1)).await.unwrap());
        assert_eq!(store.revoke("j1".into(), t(100)).await.unwrap(), 1);
        assert_eq!(store.revoke("j2".into(), t(100)).await.unwrap(), 2);
        store.close().unwrap();
        // Closed: answers are errors, not hangs.
        assert!(matches!(store.pending().await, Err(StoreError::Backend(_))));
    }
    // The WAL was folded into the main file on close.
    assert!(
        !dir.path().join("state.sqlite-wal").exists()
            || std::fs::metadata(dir.path().join("state.sqlite-wal"))
                .unwrap()
                .len()
                == 0
    );
    let store = open(&path, 10, 10);
    assert_eq!(
        store.revocations(t(2)).await.unwrap(),
        (2, vec!["j1".to_owned(), "j2".to_owned()])
    );
    assert_eq!(
        store.peek("nonce", "n1", t(2)).await.unwrap(),
        Pending::Used
    );
    assert!(!store.consume("nonce", "n1", t(2)).await.unwrap());
    assert_eq!(
        store.peek("nonce", "n2", t(2)).await.unwrap(),
        Pending::Ready("data of n2".into())
    );
    // The version keeps counting from where it was.
    assert_eq!(store.revoke("j3".into(), t(100)).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_racing_consumers_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    // Two handles on one file, as two gateway processes would have.
    let a = Arc::new(open(&path, 100, 100));
    let b = Arc::new(open(&path, 100, 100));
    for round in 0..20 {
        let value = format!("c{round}");
        a.issue(single("challenge", &value, "x", 60), t(0))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for n in 0..8 {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                store.consume("challenge", &value, t(1)).await.unwrap()
            }));
        }
        let mut wins = 0;
        for task in tasks {
            wins += usize::from(task.await.unwrap());
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

#[tokio::test]
async fn expired_rows_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("state.sqlite"), 10, 10);
    store
        .issue(single("nonce", "a", "x", 10), t(0))
        .await
        .unwrap();
    store
        .issue(single("nonce", "b", "x", 50), t(0))
        .await
        .unwrap();
    store.revoke("old".into(), t(10)).await.unwrap();
    store.revoke("new".into(), t(50)).await.unwrap();
    assert_eq!(store.revocations(t(20)).await.unwrap().1, vec!["new"]);
    assert_eq!(store.pending().await.unwrap(), 2);
    store.call(|db| db.purge().map_err(backend)).await.unwrap();
    assert_eq!(store.pending().await.unwrap(), 1);
    let left = store
        .call(|db| count(db, "SELECT count(*) FROM revocations", []).map_err(backend))
        .await
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn limits_hold_per_owner_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("state.sqlite"), 3, 2);
    store
        .issue(single("nonce", "a", "x", 10), t(0))
        .await
        .unwrap();
    store
        .issue(single("challenge", "b", "x", 20), t(0))
        .await
        .unwrap();
    assert_eq!(
        store.issue(single("nonce", "c", "x", 10), t(0)).await,
        Err(StoreError::ClientFull("nonce"))
    );
    store
        .issue(single("nonce", "d", "y", 10), t(0))
        .await
        .unwrap();
    assert_eq!(
        store.issue(single("nonce", "e", "z", 10), t(0)).await,
        Err(StoreError::Full("nonce"))
    );
    // Expiry frees both the owner's quota and the pool.
    store
        .issue(single("nonce", "f", "x", 30), t(10))
        .await
        .unwrap();
    store
        .issue(single("nonce", "g", "z", 30), t(10))
        .await
        .unwrap();
}

/// One step of a scripted session against a store.
#[derive(Debug, Clone)]
enum Op {
    Issue {
        challenge: bool,
        value: u8,
        owner: u8,
        ttl: i64,
    },
    Peek {
        challenge: bool,
        value: u8,
    },
    Consume {
        challenge: bool,
        value: u8,
    },
    Revoke {
        jti: u8,
        ttl: i64,
    },
    Revocations,
    Advance(i64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..12, 0u8..3, 1i64..30).prop_map(|(challenge, value, owner, ttl)| Op::Issue { challenge, value, owner, ttl }),
        3 => (any::<bool>(), 0u8..12).prop_map(|(challenge, value)| Op::Peek { challenge, value }),
        3 => (any::<bool>(), 0u8..12).prop_map(|(challenge, value)| Op::Consume { challenge, value }),
        2 => (0u8..5, 0i64..30).prop_map(|(jti, ttl)| Op::Revoke { jti, ttl }),
        2 => Just(Op::Revocations),
        2 => (0i64..12).prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

fn kind(challenge: bool) -> &'static str {
    if challenge {
        "challenge"
    } else {
        "nonce"
    }
}

/// Runs `ops` on both stores and compares every answer.
async fn same_answers(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = dir.path().join("state.sqlite");
    let (max_pending, max_per_owner) = (5, 3);
    let memory = MemoryStore::new(max_pending, max_per_owner);
    let mut file = open(&path, max_pending, max_per_owner);
    let mut now = 0;
    let mut issued = HashSet::new();
    for op in ops {
        match op {
            Op::Issue {
                challenge,
                value,
                owner,
                ttl,
            } => {
                // Real values are random and never repeat; a repeat is not a case.
                if !issued.insert((challenge, value)) {
                    continue;
                }
                let new = single(
                    kind(challenge),
                    &format!("v{value}"),
                    &format!("owner{owner}"),
                    now + ttl,
                );
                prop_assert_eq!(
                    memory.issue(new.clone(), t(now)).await,
                    file.issue(new, t(now)).await,
                    "{:?}",
                    op
                );
            }
            Op::Peek { challenge, value } => {
                let value = format!("v{value}");
                prop_assert_eq!(
                    memory.peek(kind(challenge), &value, t(now)).await,
                    file.peek(kind(challenge), &value, t(now)).await
                );
            }
            Op::Consume { challenge, value } => {
                let value = format!("v{value}");
                prop_assert_eq!(
                    memory.consume(kind(challenge), &value, t(now)).await,
                    file.consume(kind(challenge), &value, t(now)).await
                );
            }
            Op::Revoke { jti, ttl } => {
                let jti = format!("jti-{jti}");
                prop_assert_eq!(
                    memory.revoke(jti.clone(), t(now + ttl)).await,
                    file.revoke(jti, t(now + ttl)).await
                );
            }
            Op::Revocations => prop_assert_eq!(
                memory.revocations(t(now)).await,
                file.revocations(t(now)).await
            ),
            Op::Advance(seconds) => now += seconds,
            Op::Restart => {
                file.close()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                file = open(&path, max_pending, max_per_owner);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the sequence (restarts included), the state file answers as the
    /// in-memory store does.
    #[test]
    fn answers_as_the_memory_store_does(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(same_answers(ops))?;
    }
}
