use std::collections::BTreeMap;

use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::keys::SigningKey;
use crate::tuf::release::{build_release, new_root, Expiries, ReleaseKeys, RolePublicKeys};
use crate::tuf::sign::sign_metadata;

const NOW: i64 = 1_800_000_000;

struct Repo {
    root_keys: Vec<SigningKey>,
    targets: SigningKey,
    snapshot: SigningKey,
    timestamp: SigningKey,
}

fn now() -> UtcTime {
    UtcTime::from_unix(NOW).unwrap()
}

impl Repo {
    fn new(root_count: u8) -> Self {
        Self {
            root_keys: (0..root_count)
                .map(|i| SigningKey::from_seed([10 + i; 32]))
                .collect(),
            targets: SigningKey::from_seed([1; 32]),
            snapshot: SigningKey::from_seed([2; 32]),
            timestamp: SigningKey::from_seed([3; 32]),
        }
    }

    fn root_doc(&self, threshold: u32, version: u64) -> Root {
        let keys = RolePublicKeys {
            root: self.root_keys.iter().map(SigningKey::public).collect(),
            root_threshold: threshold,
            targets: self.targets.public(),
            snapshot: self.snapshot.public(),
            timestamp: self.timestamp.public(),
        };
        new_root(&keys, version, now(), &Expiries::default())
    }

    fn root(&self, threshold: u32) -> Vec<u8> {
        let signers: Vec<&SigningKey> = self.root_keys.iter().collect();
        sign_metadata(&self.root_doc(threshold, 1), &signers).unwrap()
    }

    fn release(
        &self,
        version: u64,
        files: &[(&str, &[u8])],
        expiries: &Expiries,
        at: UtcTime,
    ) -> crate::tuf::release::Release {
        let targets = files
            .iter()
            .map(|(path, bytes)| {
                let file = TargetFile {
                    length: bytes.len() as u64,
                    hashes: BTreeMap::from([(
                        "sha256".to_owned(),
                        hex::encode(Sha256::digest(bytes)),
                    )]),
                    custom: None,
                };
                ((*path).to_owned(), file)
            })
            .collect();
        let keys = ReleaseKeys {
            targets: &self.targets,
            snapshot: &self.snapshot,
            timestamp: &self.timestamp,
        };
        build_release(version, targets, keys, at, expiries).unwrap()
    }
}

fn load(root: &[u8], release: &crate::tuf::release::Release) -> Result<TrustedSet, TufError> {
    let mut set = TrustedSet::new(root, now())?;
    set.update_timestamp(&release.timestamp)?;
    set.update_snapshot(&release.snapshot, false)?;
    set.update_targets(&release.targets)?;
    Ok(set)
}

#[test]
fn walks_a_good_release_and_checks_targets() {
    let repo = Repo::new(1);
    let release = repo.release(
        1,
        &[("frames/a.png", b"frame")],
        &Expiries::default(),
        now(),
    );
    let set = load(&repo.root(1), &release).unwrap();
    assert!(set.verify_target("frames/a.png", b"frame").is_ok());
    let err = set.verify_target("frames/a.png", b"frama").unwrap_err();
    assert!(
        matches!(err, TufError::LengthOrHashMismatch { .. }),
        "{err}"
    );
    assert!(matches!(
        set.verify_target("nope", b""),
        Err(TufError::UnknownTarget(_))
    ));
}

#[test]
fn timestamp_rollback_is_refused() {
    let repo = Repo::new(1);
    let v1 = repo.release(1, &[("a", b"1")], &Expiries::default(), now());
    let v2 = repo.release(2, &[("a", b"2")], &Expiries::default(), now());
    let mut set = TrustedSet::new(&repo.root(1), now()).unwrap();
    set.update_timestamp(&v2.timestamp).unwrap();
    let err = set.update_timestamp(&v1.timestamp).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::BadVersion {
                ref role,
                got: 1,
                why: "rollback",
                ..
            } if role == "timestamp"
        ),
        "{err}"
    );
}

#[test]
fn mix_and_match_is_refused() {
    let repo = Repo::new(1);
    let v1 = repo.release(1, &[("a", b"1")], &Expiries::default(), now());
    let v2 = repo.release(2, &[("a", b"2")], &Expiries::default(), now());
    // v2 timestamp with v1 snapshot: the pinned hash and length differ.
    let mut set = TrustedSet::new(&repo.root(1), now()).unwrap();
    set.update_timestamp(&v2.timestamp).unwrap();
    let err = set.update_snapshot(&v1.snapshot, false).unwrap_err();
    assert!(
        matches!(err, TufError::LengthOrHashMismatch { .. }),
        "{err}"
    );
    // v2 snapshot with v1 targets.
    set.update_snapshot(&v2.snapshot, false).unwrap();
    let err = set.update_targets(&v1.targets).unwrap_err();
    assert!(
        matches!(err, TufError::LengthOrHashMismatch { .. }),
        "{err}"
    );
}

#[test]
fn expired_metadata_is_refused_by_role() {
    let repo = Repo::new(1);
    let short = Expiries {
        timestamp: 60,
        ..Expiries::default()
    };
    let past = UtcTime::from_unix(NOW - 3600).unwrap();
    let release = repo.release(1, &[("a", b"1")], &short, past);
    let err = load(&repo.root(1), &release).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Expired {
                ref role,
                ..
            } if role == "timestamp"
        ),
        "{err}"
    );
    let short = Expiries {
        targets: 60,
        ..Expiries::default()
    };
    let release = repo.release(1, &[("a", b"1")], &short, past);
    let err = load(&repo.root(1), &release).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Expired {
                ref role,
                ..
            } if role == "targets"
        ),
        "{err}"
    );
}

#[test]
fn metadata_signed_by_an_unknown_key_is_refused() {
    let repo = Repo::new(1);
    let mut rogue = Repo::new(1);
    rogue.timestamp = SigningKey::from_seed([99; 32]);
    let release = rogue.release(1, &[("a", b"1")], &Expiries::default(), now());
    let err = load(&repo.root(1), &release).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Unsigned {
                ref role,
                valid: 0,
                threshold: 1,
                ..
            } if role == "timestamp"
        ),
        "{err}"
    );
}

#[test]
fn threshold_counts_distinct_keys_only() {
    let repo = Repo::new(3);
    let doc = repo.root_doc(2, 1);
    // Two signatures, both by the first key: one distinct key, below threshold 2.
    let once = sign_metadata(&doc, &[&repo.root_keys[0]]).unwrap();
    let mut file: serde_json::Value = serde_json::from_slice(&once).unwrap();
    let sig = file["signatures"][0].clone();
    file["signatures"].as_array_mut().unwrap().push(sig);
    let doubled = serde_json::to_vec(&file).unwrap();
    let err = TrustedSet::new(&doubled, now()).unwrap_err();
    assert!(matches!(err, TufError::Malformed { .. }), "{err}");
    let err = TrustedSet::new(&once, now()).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Unsigned {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
    let twice = sign_metadata(&doc, &[&repo.root_keys[0], &repo.root_keys[2]]).unwrap();
    assert!(TrustedSet::new(&twice, now()).is_ok());
}

#[test]
fn one_key_listed_under_two_ids_counts_once() {
    let repo = Repo::new(2);
    let mut doc = repo.root_doc(2, 1);
    // List root key 0 a second time under a made-up id, and drop key 1 from the role.
    let key = repo.root_keys[0].public();
    let alias = crate::keys::KeyId("00".repeat(32));
    doc.keys.insert(alias.clone(), key.to_tuf_key());
    doc.roles.get_mut("root").unwrap().keyids = vec![key.key_id(), alias.clone()];
    let signed = sign_metadata(&doc, &[&repo.root_keys[0]]).unwrap();
    // Duplicate the one signature under the alias id.
    let mut file: serde_json::Value = serde_json::from_slice(&signed).unwrap();
    let mut sig = file["signatures"][0].clone();
    sig["keyid"] = serde_json::Value::String(alias.0);
    file["signatures"].as_array_mut().unwrap().push(sig);
    let err = TrustedSet::new(&serde_json::to_vec(&file).unwrap(), now()).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Unsigned {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn other_spec_major_versions_and_version_overflow_are_refused() {
    let repo = Repo::new(1);
    let mut doc = repo.root_doc(1, 1);
    doc.spec_version = "2.0.0".into();
    let signed = sign_metadata(&doc, &[&repo.root_keys[0]]).unwrap();
    assert!(matches!(
        TrustedSet::new(&signed, now()),
        Err(TufError::Malformed { .. })
    ));
    let mut doc = repo.root_doc(1, u64::MAX);
    let max = sign_metadata(&doc, &[&repo.root_keys[0]]).unwrap();
    let mut set = TrustedSet::new(&max, now()).unwrap();
    doc.version = 1;
    let next = sign_metadata(&doc, &[&repo.root_keys[0]]).unwrap();
    assert!(matches!(
        set.update_root(&next),
        Err(TufError::BadVersion { .. })
    ));
}

#[test]
fn streamed_targets_are_checked_by_digest() {
    let repo = Repo::new(1);
    let release = repo.release(1, &[("a", b"abc")], &Expiries::default(), now());
    let set = load(&repo.root(1), &release).unwrap();
    let sha = hex::encode(Sha256::digest(b"abc"));
    assert!(set.verify_target_digest("a", 3, &sha).is_ok());
    assert!(set.verify_target_digest("a", 4, &sha).is_err());
    assert!(set.verify_target_digest("a", 3, &"00".repeat(32)).is_err());
}

#[test]
fn root_rotation_needs_old_and_new_thresholds() {
    let old = Repo::new(1);
    let mut new = Repo::new(0);
    new.root_keys = vec![SigningKey::from_seed([50; 32])];
    let mut set = TrustedSet::new(&old.root(1), now()).unwrap();
    let v2 = new.root_doc(1, 2);
    let only_new = sign_metadata(&v2, &[&new.root_keys[0]]).unwrap();
    assert!(matches!(
        set.update_root(&only_new),
        Err(TufError::Unsigned { .. })
    ));
    let only_old = sign_metadata(&v2, &[&old.root_keys[0]]).unwrap();
    assert!(matches!(
        set.update_root(&only_old),
        Err(TufError::Unsigned { .. })
    ));
    let skip = sign_metadata(&new.root_doc(1, 3), &[&old.root_keys[0], &new.root_keys[0]]).unwrap();
    assert!(matches!(
        set.update_root(&skip),
        Err(TufError::BadVersion { .. })
    ));
    let both = sign_metadata(&v2, &[&old.root_keys[0], &new.root_keys[0]]).unwrap();
    set.update_root(&both).unwrap();
    assert_eq!(set.root().version, 2);
}

#[test]
fn calls_out_of_order_are_refused() {
    let repo = Repo::new(1);
    let release = repo.release(1, &[("a", b"1")], &Expiries::default(), now());
    let mut set = TrustedSet::new(&repo.root(1), now()).unwrap();
    assert!(matches!(
        set.update_targets(&release.targets),
        Err(TufError::OutOfOrder { .. })
    ));
    assert!(matches!(
        set.update_snapshot(&release.snapshot, false),
        Err(TufError::OutOfOrder { .. })
    ));
    set.update_timestamp(&release.timestamp).unwrap();
    assert!(matches!(
        set.update_root(&repo.root(1)),
        Err(TufError::OutOfOrder { .. })
    ));
}

#[test]
fn wrong_type_is_refused() {
    let repo = Repo::new(1);
    let release = repo.release(1, &[("a", b"1")], &Expiries::default(), now());
    let mut set = TrustedSet::new(&repo.root(1), now()).unwrap();
    let err = set.update_timestamp(&release.snapshot).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::Malformed {
                ref role,
                ..
            } if role == "timestamp"
        ),
        "{err}"
    );
}

fn normalised(bytes: &[u8]) -> Option<serde_json::Value> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    for sig in value.get_mut("signatures")?.as_array_mut()? {
        if let Some(text) = sig
            .get("sig")
            .and_then(|s| s.as_str())
            .map(str::to_ascii_lowercase)
        {
            sig["sig"] = serde_json::Value::String(text);
        }
    }
    Some(value)
}

proptest! {
    /// Any single flipped byte in any file of a release is caught somewhere in the walk.
    #[test]
    fn one_flipped_byte_anywhere_is_caught(which in 0usize..3, index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let repo = Repo::new(1);
        let mut release = repo.release(1, &[("frames/a.png", b"frame")], &Expiries::default(), now());
        let file = match which {
            0 => &mut release.timestamp,
            1 => &mut release.snapshot,
            _ => &mut release.targets,
        };
        let i = index.index(file.len());
        let before = file.clone();
        file[i] ^= 1 << bit;
        // Flips that keep the JSON equal (whitespace) or the signature bytes equal (hex
        // letter case) are not tampering with what was signed.
        let same = normalised(file) == normalised(&before);
        let result = load(&repo.root(1), &release);
        if which == 0 && same {
            prop_assert!(result.is_ok());
        } else {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let repo = Repo::new(1);
        let _ = TrustedSet::new(&bytes, now());
        let mut set = TrustedSet::new(&repo.root(1), now()).unwrap();
        let _ = set.update_timestamp(&bytes);
    }
}
