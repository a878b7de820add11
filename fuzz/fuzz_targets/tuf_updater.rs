//! The TUF client workflow fed hostile answers: the updater driven from a real root with
//! fuzzed files (local and remote), delegation path patterns, and key objects of every
//! scheme with fuzzed key material and signatures.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_manifest::keys::{SigningKey, TufKey};
use swarmdrop_manifest::tuf::delegation::path_matches;
use swarmdrop_manifest::tuf::release::{new_root, Expiries, RolePublicKeys};
use swarmdrop_manifest::tuf::sign_metadata;
use swarmdrop_manifest::tuf::signatures::VerifyingKey;
use swarmdrop_manifest::tuf::updater::{Updater, UpdaterConfig};
use swarmdrop_manifest::UtcTime;

fuzz_target!(|data: &[u8]| {
    let now = UtcTime::saturating_from_unix(1_800_000_000);
    let key = SigningKey::from_seed([1; 32]);
    let keys = RolePublicKeys {
        root: vec![key.public()],
        root_threshold: 1,
        targets: key.public(),
        snapshot: key.public(),
        timestamp: key.public(),
    };
    let Ok(root) = sign_metadata(&new_root(&keys, 1, now, &Expiries::default()), &[&key]) else {
        return;
    };
    // Answers are separated by 0xff bytes; an empty one means "not there".
    if let Ok(mut updater) = Updater::new(&root, now, UpdaterConfig::default()) {
        let mut answers = data.split(|b| *b == 0xff);
        while updater.next().is_some() {
            let Some(answer) = answers.next() else { break };
            let answer = (!answer.is_empty()).then_some(answer);
            if updater.supply(answer).is_err() {
                break;
            }
        }
        if updater.is_refreshed() && updater.find_target("a/b").is_ok() {
            while updater.next().is_some() {
                let Some(answer) = answers.next() else { break };
                if updater.supply(Some(answer)).is_err() {
                    break;
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((pattern, path)) = text.split_once('\n') {
            let _ = path_matches(pattern, path);
        }
        if let Ok(key) = serde_json::from_str::<TufKey>(text) {
            if let Ok(verifying) = VerifyingKey::from_tuf(&key) {
                let _ = verifying.verify(data, data);
                let _ = verifying.identity();
            }
        }
    }
});
