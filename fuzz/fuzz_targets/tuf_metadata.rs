//! TUF metadata: any bytes as a trusted root, and as each role after a real root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_manifest::tuf::metadata::{Root, Snapshot, Targets, Timestamp};
use swarmdrop_manifest::tuf::{parse_unverified, TrustedSet};
use swarmdrop_manifest::UtcTime;

fuzz_target!(|data: &[u8]| {
    let now = UtcTime::saturating_from_unix(1_800_000_000);
    if let Ok(mut set) = TrustedSet::new(data, now) {
        let _ = set.update_root(data);
        let _ = set.update_timestamp(data);
        let _ = set.update_snapshot(data, false);
        let _ = set.update_targets(data);
        let _ = set.verify_target("a", data);
    }
    let _ = parse_unverified::<Root>(data);
    let _ = parse_unverified::<Timestamp>(data);
    let _ = parse_unverified::<Snapshot>(data);
    let _ = parse_unverified::<Targets>(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = swarmdrop_manifest::canonical::to_canonical_json(&value);
    }
});
