//! The workflow on scripted repositories: what is asked for, in which order, what is
//! kept, and which attacks each check stops (named after TUF's attack classes).

use proptest::prelude::*;

use super::*;
use crate::tuf::testrepo::{key, now, Client, Repo};

fn config() -> UpdaterConfig {
    UpdaterConfig::default()
}

fn refresh(client: &mut Client, repo: &Repo) -> Result<(), TufError> {
    client.run(repo, None, config()).map(|_| ())
}

#[test]
fn a_first_refresh_asks_for_each_file_and_keeps_what_it_trusts() {
    let mut repo = Repo::new(true);
    repo.add_target("targets", "a/b.txt", b"bytes");
    repo.publish();
    let mut client = Client::new(repo.trusted_root());
    let found = client.run(&repo, Some("a/b.txt"), config()).unwrap();
    assert_eq!(found.unwrap().length, 5);
    assert_eq!(
        client.requests,
        [
            "2.root.json",
            "timestamp.json",
            "1.snapshot.json",
            "1.targets.json"
        ]
    );
    let kept: Vec<&str> = client.local.keys().map(String::as_str).collect();
    assert_eq!(
        kept,
        [
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ]
    );
    // The second refresh finds nothing new: the kept snapshot and targets are used.
    refresh(&mut client, &repo).unwrap();
    assert_eq!(client.requests, ["2.root.json", "timestamp.json"]);
}

#[test]
fn without_consistent_snapshots_files_are_asked_for_by_plain_name() {
    let mut repo = Repo::new(false);
    repo.add_target("targets", "f", b"x");
    repo.publish();
    let mut client = Client::new(repo.trusted_root());
    client.run(&repo, Some("f"), config()).unwrap().unwrap();
    assert_eq!(
        client.requests,
        [
            "2.root.json",
            "timestamp.json",
            "snapshot.json",
            "targets.json"
        ]
    );
}

#[test]
fn root_rotation_needs_both_thresholds_and_is_kept() {
    let mut repo = Repo::new(true);
    let mut client = Client::new(repo.trusted_root());
    refresh(&mut client, &repo).unwrap();
    repo.rotate(Role::Root, vec![key(20), key(21)], 2);
    repo.rotate(Role::Timestamp, vec![key(22)], 1);
    repo.publish();
    refresh(&mut client, &repo).unwrap();
    assert_eq!(client.local["root.json"], repo.roots[&3]);
    assert_eq!(
        client.requests[..3],
        ["2.root.json", "3.root.json", "4.root.json"]
    );

    // Key compromise below threshold: v4 signed by the old keys and one of two new keys.
    let mut bad = Repo::new(true);
    let trusted = bad.trusted_root();
    bad.root.version = 2;
    bad.set_top_level_keys(Role::Root, vec![key(20), key(21)], 2);
    bad.publish_root_signed_by(&[&key(1), &key(20)]);
    let err = refresh(&mut Client::new(trusted), &bad).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Unsigned {
                threshold: 2,
                valid: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_root_that_skips_a_version_is_refused() {
    let mut repo = Repo::new(true);
    let trusted = repo.trusted_root();
    repo.root.version = 3;
    repo.publish_root_signed_by(&[&key(1)]);
    repo.files
        .insert("2.root.json".into(), repo.roots[&3].clone());
    let err = refresh(&mut Client::new(trusted), &repo).unwrap_err();
    assert!(matches!(err, TufError::BadVersion { got: 3, .. }), "{err}");
}

#[test]
fn fast_forward_recovery_after_a_timestamp_key_rotation() {
    // An attacker who held the timestamp key pushed version 1000; the repository
    // rotated the key and starts again at 1. The kept copy no longer verifies, so it
    // no longer pins the floor.
    let mut repo = Repo::new(true);
    let mut client = Client::new(repo.trusted_root());
    repo.timestamp.version = 1000;
    repo.publish();
    refresh(&mut client, &repo).unwrap();
    repo.timestamp.version = 1;
    repo.publish();
    assert!(matches!(
        refresh(&mut client, &repo),
        Err(TufError::BadVersion { .. })
    ));
    repo.rotate(Role::Timestamp, vec![key(40)], 1);
    repo.publish();
    refresh(&mut client, &repo).unwrap();
    assert!(client.local["timestamp.json"] == repo.files["timestamp.json"]);
}

/// A client that trusted snapshot v99 (pushed with a stolen snapshot key), and a
/// repository that has since rotated the snapshot key and started again at v1.
fn snapshot_key_rotated_after_a_fast_forward() -> (Repo, Client) {
    let mut repo = Repo::new(true);
    let mut client = Client::new(repo.trusted_root());
    repo.snapshot.version = 99;
    repo.timestamp.version = 2;
    repo.publish();
    refresh(&mut client, &repo).unwrap();
    repo.rotate(Role::Snapshot, vec![key(41)], 1);
    repo.snapshot.version = 1;
    repo.timestamp.version = 3;
    repo.publish();
    (repo, client)
}

#[test]
fn kept_timestamp_and_snapshot_are_forgotten_when_the_snapshot_key_rotates() {
    // The timestamp key was never compromised, so the kept timestamp still verifies, but
    // it pins a snapshot version pushed with the stolen snapshot key (spec 5.3.11).
    let (repo, mut client) = snapshot_key_rotated_after_a_fast_forward();
    refresh(&mut client, &repo).unwrap();
    assert_eq!(client.local["snapshot.json"], repo.files["1.snapshot.json"]);
}

#[test]
fn forgetting_survives_a_refresh_that_fails_after_the_rotation() {
    // The root that rotated the snapshot key is kept at once; if the refresh then
    // fails, the next one starts from that root and must not find the old floors.
    let (mut repo, mut client) = snapshot_key_rotated_after_a_fast_forward();
    repo.files.insert("3.root.json".into(), b"garbage".to_vec());
    assert!(refresh(&mut client, &repo).is_err());
    assert_eq!(client.local["root.json"], repo.roots[&2]);
    assert!(!client.local.contains_key("timestamp.json"));
    repo.files.remove("3.root.json");
    refresh(&mut client, &repo).unwrap();
    assert_eq!(client.local["snapshot.json"], repo.files["1.snapshot.json"]);
}

#[test]
fn adding_a_timestamp_key_keeps_the_rollback_floor() {
    let mut repo = Repo::new(true);
    let mut client = Client::new(repo.trusted_root());
    repo.timestamp.version = 5;
    repo.publish();
    refresh(&mut client, &repo).unwrap();
    // A second timestamp key joins; nothing was rotated away.
    repo.rotate(Role::Timestamp, vec![key(4), key(42)], 1);
    repo.timestamp.version = 4;
    repo.publish();
    let err = refresh(&mut client, &repo).unwrap_err();
    assert!(matches!(err, TufError::BadVersion { got: 4, .. }), "{err}");
}

#[test]
fn a_delegated_role_missing_from_the_snapshot_is_not_fetched() {
    let mut repo = Repo::new(true);
    repo.delegate("targets", "A", &["*"], false, vec![key(31)]);
    repo.publish();
    // Published, but dropped from the snapshot.
    repo.snapshot.meta.remove("A.json");
    let snapshot = repo.sign("snapshot", &repo.snapshot.clone());
    repo.files
        .insert("1.snapshot.json".into(), snapshot.clone());
    let pin = repo.timestamp.meta.get_mut("snapshot.json").unwrap();
    pin.length = Some(snapshot.len() as u64);
    pin.hashes = None;
    let timestamp = repo.sign("timestamp", &repo.timestamp.clone());
    repo.files.insert("timestamp.json".into(), timestamp);
    let mut client = Client::new(repo.trusted_root());
    let err = client.run(&repo, Some("f"), config()).unwrap_err();
    assert!(
        matches!(err, TufError::MissingMeta { ref name, .. } if name == "A.json"),
        "{err}"
    );
    assert!(!client.requests.iter().any(|r| r.contains(".A.")));
}

#[test]
fn a_verified_role_is_kept_even_when_the_search_fails_after_it() {
    // targets → A (verified, kept) → B, which the snapshot does not list.
    let mut repo = Repo::new(true);
    repo.delegate("targets", "A", &["*"], false, vec![key(31)]);
    repo.delegate("A", "B", &["*"], false, vec![key(32)]);
    repo.publish();
    repo.targets.remove("B");
    repo.publish();
    let mut client = Client::new(repo.trusted_root());
    assert!(client.run(&repo, Some("f"), config()).is_err());
    assert!(client.local.contains_key("A.json"));
}

#[test]
fn rollback_is_refused_for_every_role() {
    for role in ["timestamp", "snapshot", "targets", "delegated"] {
        let mut repo = Repo::new(true);
        repo.delegate("targets", "delegated", &["*"], false, vec![key(30)]);
        repo.add_target("delegated", "f", b"1");
        for doc in repo.targets.values_mut() {
            doc.version = 2;
        }
        repo.snapshot.version = 2;
        repo.timestamp.version = 2;
        repo.publish();
        let mut client = Client::new(repo.trusted_root());
        client.run(&repo, Some("f"), config()).unwrap().unwrap();
        match role {
            "timestamp" => repo.timestamp.version = 1,
            "snapshot" => {
                repo.snapshot.version = 1;
                repo.timestamp.version = 3;
            }
            _ => {
                repo.targets.get_mut(role).unwrap().version = 1;
                repo.snapshot.version = 3;
                repo.timestamp.version = 3;
            }
        }
        repo.publish();
        let err = client.run(&repo, Some("f"), config()).unwrap_err();
        assert!(matches!(err, TufError::BadVersion { .. }), "{role}: {err}");
    }
}

#[test]
fn a_kept_snapshot_longer_than_the_new_pin_still_guards_against_rollback() {
    // The kept snapshot pins targets v10, the new one v9: one byte shorter, so a cap
    // taken from the new pin would skip the kept copy and miss the rollback.
    let mut repo = Repo::new(true);
    repo.targets.get_mut("targets").unwrap().version = 10;
    repo.publish();
    let mut client = Client::new(repo.trusted_root());
    refresh(&mut client, &repo).unwrap();
    repo.targets.get_mut("targets").unwrap().version = 9;
    repo.snapshot.version = 2;
    repo.timestamp.version = 2;
    repo.publish();
    let err = refresh(&mut client, &repo).unwrap_err();
    assert!(matches!(err, TufError::BadVersion { got: 9, .. }), "{err}");
}

#[test]
fn mix_and_match_a_targets_file_of_another_version_is_refused() {
    let mut repo = Repo::new(true);
    repo.add_target("targets", "f", b"1");
    repo.publish();
    let old = repo.files["1.targets.json"].clone();
    repo.targets.get_mut("targets").unwrap().version = 2;
    repo.snapshot.version = 2;
    repo.timestamp.version = 2;
    repo.publish();
    repo.files.insert("2.targets.json".into(), old);
    let err = refresh(&mut Client::new(repo.trusted_root()), &repo).unwrap_err();
    assert!(
        matches!(err, TufError::BadVersion { ref role, .. } if role == "targets"),
        "{err}"
    );
}

#[test]
fn endless_data_is_refused_remotely_and_ignored_locally() {
    let mut repo = Repo::new(true);
    let mut client = Client::new(repo.trusted_root());
    refresh(&mut client, &repo).unwrap();
    client
        .local
        .insert("snapshot.json".into(), vec![b' '; 3_000_000]);
    refresh(&mut client, &repo).unwrap();
    assert!(client.requests.contains(&"1.snapshot.json".to_owned()));
    repo.files
        .insert("timestamp.json".into(), vec![b' '; 20_000]);
    let err = refresh(&mut client, &repo).unwrap_err();
    assert!(
        matches!(err, TufError::TooLarge { limit: 16_384, .. }),
        "{err}"
    );
}

#[test]
fn the_delegation_search_is_preorder_and_stops_at_a_terminating_role() {
    let mut repo = Repo::new(true);
    // targets → A (terminating for a/*) → C; targets → B (a/*).
    repo.delegate("targets", "A", &["a/*"], true, vec![key(31)]);
    repo.delegate("targets", "B", &["a/*"], false, vec![key(32)]);
    repo.delegate("A", "C", &["a/*"], false, vec![key(33)]);
    repo.add_target("B", "a/in-b", b"b");
    repo.add_target("C", "a/in-c", b"c");
    repo.add_target("targets", "top", b"t");
    repo.publish();
    let mut client = Client::new(repo.trusted_root());
    assert!(client
        .run(&repo, Some("a/in-c"), config())
        .unwrap()
        .is_some());
    assert_eq!(client.requests[4..], ["1.A.json", "1.C.json"]);
    // B is never asked: A is terminating.
    assert!(client
        .run(&repo, Some("a/in-b"), config())
        .unwrap()
        .is_none());
    assert!(!client.requests.iter().any(|r| r.contains(".B.")));
    // Patterns decide who is asked at all.
    assert!(client.run(&repo, Some("top"), config()).unwrap().is_some());
    assert!(client.run(&repo, Some("b/x"), config()).unwrap().is_none());
}

#[test]
fn a_delegated_role_must_be_signed_by_its_delegators_keys() {
    let mut repo = Repo::new(true);
    repo.delegate("targets", "A", &["*"], false, vec![key(31)]);
    repo.add_target("A", "f", b"1");
    repo.signers.insert("A".into(), vec![key(99)]);
    repo.publish();
    let err = Client::new(repo.trusted_root())
        .run(&repo, Some("f"), config())
        .unwrap_err();
    assert!(
        matches!(err, TufError::Unsigned { ref role, .. } if role == "A"),
        "{err}"
    );
}

#[test]
fn a_role_reached_through_another_delegator_must_meet_that_delegators_keys() {
    // A and B both delegate C, with different keys; C is signed with A's choice only.
    let mut repo = Repo::new(true);
    repo.delegate("targets", "A", &["*"], false, vec![key(31)]);
    repo.delegate("targets", "B", &["*"], false, vec![key(32)]);
    repo.delegate("A", "C", &["y"], false, vec![key(33)]);
    repo.delegate("B", "C", &["x"], false, vec![key(34)]);
    repo.signers.insert("C".into(), vec![key(33)]);
    repo.add_target("C", "x", b"x");
    repo.add_target("C", "y", b"y");
    repo.publish();
    let mut client = Client::new(repo.trusted_root());
    let mut updater = client.refreshed(&repo).unwrap();
    assert!(client.search(&mut updater, &repo, "y").unwrap().is_some());
    // "x" reaches the C already trusted (through A) through B: B's key never signed it.
    let err = client.search(&mut updater, &repo, "x").unwrap_err();
    assert!(
        matches!(err, TufError::Unsigned { ref role, .. } if role == "C"),
        "{err}"
    );
    // A fresh client gets the same answer: the cached copy changes nothing.
    let err = Client::new(repo.trusted_root())
        .run(&repo, Some("x"), config())
        .unwrap_err();
    assert!(
        matches!(err, TufError::Unsigned { ref role, .. } if role == "C"),
        "{err}"
    );
}

#[test]
fn delegation_cycles_and_the_visit_cap_end_the_search() {
    let mut repo = Repo::new(true);
    repo.delegate("targets", "A", &["*"], false, vec![key(31)]);
    repo.delegate("A", "B", &["*"], false, vec![key(32)]);
    // B delegates back to A: a cycle.
    let a_keys = vec![key(31)];
    repo.delegate("B", "A", &["*"], false, a_keys);
    repo.add_target("A", "x", b"");
    repo.targets.get_mut("A").unwrap().targets.clear();
    repo.publish();
    let mut client = Client::new(repo.trusted_root());
    assert!(client.run(&repo, Some("f"), config()).unwrap().is_none());
    let small = UpdaterConfig {
        max_delegations: 1,
        ..config()
    };
    let mut chain = Repo::new(true);
    chain.delegate("targets", "A", &["*"], false, vec![key(31)]);
    chain.delegate("A", "B", &["*"], false, vec![key(32)]);
    chain.add_target("B", "f", b"1");
    chain.publish();
    let mut client = Client::new(chain.trusted_root());
    assert!(client.run(&chain, Some("f"), small).unwrap().is_none());
    assert!(client.run(&chain, Some("f"), config()).unwrap().is_some());
}

#[test]
fn target_urls_carry_the_hash_prefix_only_with_consistent_snapshots() {
    for consistent in [true, false] {
        let mut repo = Repo::new(consistent);
        repo.add_target("targets", "dir/a b.txt", b"x");
        repo.publish();
        let mut client = Client::new(repo.trusted_root());
        let found = client
            .run(&repo, Some("dir/a b.txt"), config())
            .unwrap()
            .unwrap();
        let updater = client.refreshed(&repo).unwrap();
        let path = updater.target_url_path("dir/a b.txt", &found);
        if consistent {
            assert_eq!(path, format!("dir/{}.a%20b.txt", found.hashes["sha256"]));
        } else {
            assert_eq!(path, "dir/a%20b.txt");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_answers_never_panic(answers in proptest::collection::vec(
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)), 0..12)) {
        let repo = Repo::new(true);
        let mut updater = Updater::new(&repo.trusted_root(), now(), config()).unwrap();
        for answer in answers {
            if updater.next().is_none() {
                break;
            }
            if updater.supply(answer.as_deref()).is_err() {
                break;
            }
        }
    }
}
