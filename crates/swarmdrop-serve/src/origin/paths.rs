//! Which request paths the origin answers, and how long each answer may be cached.
//! Sans-IO: a path goes in, a file relative to the published root and its kind come
//! out; whether the file exists is the caller's question.
//!
//! Only the four directories `swarmdrop pack` writes are served, and only at the depth
//! it writes them (one level under `metadata/`, `torrents/` and `provenance/`; any depth
//! under `targets/`). Each segment is percent-decoded once by the edge's
//! [`decode_segment`] (nothing empty, `.`, `..`, or holding `/`, `\`, NUL or another
//! control character), so no path that reaches the file system can climb out of the
//! published root. Names starting with `.` are never served: pack writes its partial
//! files (`.name.partial-PID`) and its lock there, and half-written bytes must not
//! leave the origin.

use swarmdrop_edge::proto::paths::{
    decode_segment, split, PathError, MAX_SEGMENTS, MAX_SEGMENT_BYTES,
};

/// What kind of file a path names; it decides the `Cache-Control` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `metadata/timestamp.json`, `metadata/root.json` and any other unversioned
    /// metadata: replaced by every release, so cached briefly.
    MutableMetadata,
    /// `metadata/N.<role>.json`: written once per version, never changed.
    VersionedMetadata,
    /// `targets/<dir>/<sha256>.<name>`: named by its content.
    HashedTarget,
    /// A file under `targets/` without a content hash in its name (not pack's layout,
    /// but a publisher may add one): cached briefly.
    OtherTarget,
    /// `torrents/<infohash>.<16 hex>.torrent`: named by its content.
    HashedTorrent,
    /// Another `.torrent` name: cached briefly.
    OtherTorrent,
    /// `provenance/N.dsse.json`: written once per version.
    VersionedProvenance,
    /// Another file under `provenance/`: cached briefly.
    OtherProvenance,
}

impl Kind {
    /// True for files that never change once written.
    pub fn immutable(self) -> bool {
        matches!(
            self,
            Kind::VersionedMetadata
                | Kind::HashedTarget
                | Kind::HashedTorrent
                | Kind::VersionedProvenance
        )
    }

    /// The `Cache-Control` value: a year and `immutable` for files that never change;
    /// `mutable_max_age` seconds otherwise (0: `no-cache`, every use revalidates, which
    /// the ETag makes cheap).
    pub fn cache_control(self, mutable_max_age: u64) -> String {
        if self.immutable() {
            "public, max-age=31536000, immutable".to_owned()
        } else if mutable_max_age == 0 {
            "public, no-cache".to_owned()
        } else {
            format!("public, max-age={mutable_max_age}")
        }
    }

    /// The strong ETag a file's name already proves, if any: the SHA-256 of a
    /// hash-named target (the edge uses the same one, so a client may revalidate an
    /// object from either).
    pub fn name_etag(self, relative: &str) -> Option<String> {
        if self != Kind::HashedTarget {
            return None;
        }
        let hash = relative.rsplit('/').next()?.get(..64)?;
        Some(format!("\"{hash}\""))
    }
}

/// A file the origin may serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its path relative to the published root, `/`-separated, decoded.
    pub relative: String,
    /// What it is.
    pub kind: Kind,
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<64 hex>.<name>`, TUF's consistent-snapshot target name.
fn hash_named(name: &str) -> bool {
    name.split_once('.')
        .is_some_and(|(hash, rest)| is_hex(hash, 64) && !rest.is_empty())
}

/// `N.<anything>`: a version number first.
fn versioned(name: &str) -> bool {
    name.split_once('.').is_some_and(|(version, rest)| {
        !version.is_empty()
            && version.len() <= 19
            && version.bytes().all(|b| b.is_ascii_digit())
            && !rest.is_empty()
    })
}

/// `<40 hex>.<16 hex>.torrent`, as pack names torrents.
fn torrent_named(name: &str) -> bool {
    let mut parts = name.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(infohash), Some(digest), Some("torrent"), None)
            if is_hex(infohash, 40) && is_hex(digest, 16)
    )
}

/// Checks `path` (the request target's path, still percent-encoded, without the query).
/// `Bad` is a 400 (nothing we would ever serve could look like it), `NotServed` a 404.
pub fn map(path: &str) -> Result<Resource, PathError> {
    let raw = split(path, MAX_SEGMENTS)?;
    let segments = raw
        .iter()
        .map(|s| decode_segment(s, MAX_SEGMENT_BYTES))
        .collect::<Result<Vec<_>, _>>()?;
    if segments.iter().any(|s| s.starts_with('.')) {
        return Err(PathError::NotServed("hidden files are not served"));
    }
    let (top, below) = segments
        .split_first()
        .ok_or(PathError::NotServed("no directory listings"))?;
    let kind = match (top.as_ref(), below) {
        ("metadata", [name]) if name.ends_with(".json") => {
            if versioned(name) {
                Kind::VersionedMetadata
            } else {
                Kind::MutableMetadata
            }
        }
        ("torrents", [name]) if name.ends_with(".torrent") => {
            if torrent_named(name) {
                Kind::HashedTorrent
            } else {
                Kind::OtherTorrent
            }
        }
        ("provenance", [name]) => {
            if versioned(name) {
                Kind::VersionedProvenance
            } else {
                Kind::OtherProvenance
            }
        }
        ("targets", [.., name]) => {
            if hash_named(name) {
                Kind::HashedTarget
            } else {
                Kind::OtherTarget
            }
        }
        ("metadata" | "torrents" | "provenance" | "targets", _) => {
            return Err(PathError::NotServed("no such file in a published drop"))
        }
        _ => {
            return Err(PathError::NotServed(
                "only metadata/, targets/, torrents/ and provenance/ are served",
            ))
        }
    };
    Ok(Resource {
        relative: segments.join("/"),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn kind(path: &str) -> Kind {
        map(path).unwrap().kind
    }

    #[test]
    fn published_files_map_to_their_kind() {
        assert_eq!(kind("/metadata/timestamp.json"), Kind::MutableMetadata);
        assert_eq!(kind("/metadata/root.json"), Kind::MutableMetadata);
        assert_eq!(kind("/metadata/1.root.json"), Kind::VersionedMetadata);
        assert_eq!(kind("/metadata/12.targets.json"), Kind::VersionedMetadata);
        assert_eq!(kind("/metadata/3.snapshot.json"), Kind::VersionedMetadata);
        let target = format!("/targets/frames/{SHA}.f001.png");
        assert_eq!(kind(&target), Kind::HashedTarget);
        assert_eq!(kind(&format!("/targets/{SHA}.top.bin")), Kind::HashedTarget);
        assert_eq!(kind("/targets/frames/f001.png"), Kind::OtherTarget);
        assert_eq!(
            kind(&format!("/torrents/{}.{}.torrent", &SHA[..40], &SHA[..16])),
            Kind::HashedTorrent
        );
        assert_eq!(kind("/torrents/patch.torrent"), Kind::OtherTorrent);
        assert_eq!(kind("/provenance/2.dsse.json"), Kind::VersionedProvenance);
        assert_eq!(kind("/provenance/latest.json"), Kind::OtherProvenance);
        assert_eq!(
            map("/targets/a%20b/c").unwrap().relative,
            "targets/a b/c".to_owned()
        );
        assert_eq!(
            map(&target).unwrap().kind.name_etag(&target[1..]),
            Some(format!("\"{SHA}\""))
        );
        assert_eq!(Kind::MutableMetadata.name_etag("metadata/root.json"), None);
    }

    #[test]
    fn cache_control_follows_mutability() {
        let year = "public, max-age=31536000, immutable";
        for immutable in [
            Kind::VersionedMetadata,
            Kind::HashedTarget,
            Kind::HashedTorrent,
            Kind::VersionedProvenance,
        ] {
            assert_eq!(immutable.cache_control(5), year);
        }
        for mutable in [
            Kind::MutableMetadata,
            Kind::OtherTarget,
            Kind::OtherTorrent,
            Kind::OtherProvenance,
        ] {
            assert_eq!(mutable.cache_control(5), "public, max-age=5");
            assert_eq!(mutable.cache_control(0), "public, no-cache");
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        // Segment decoding is the edge's (tested there); these are the origin's own
        // cases, and a property below holds the two to the same refusals. `true`: a
        // 400 (could never be a file of ours); `false`: a 404.
        let long_name = format!("/targets/{}", "a".repeat(5000));
        let deep = format!("/targets/{}", "a/".repeat(40));
        let cases = [
            ("", true),
            ("metadata/root.json", true),
            ("/targets/%2e%2e/%2e%2e/etc/passwd", true),
            ("/provenance/..", true),
            ("/targets/a%00b", true),
            ("/metadata/", true),
            (long_name.as_str(), true),
            (deep.as_str(), true),
            ("/", false),
            ("/etc/passwd", false),
            ("/targets", false),
            ("/metadata/a/b.json", false),
            ("/metadata/keys.pem", false),
            ("/provenance/a/b", false),
            ("/.swarmdrop-pack.lock", false),
            ("/targets/frames/.f001.png.partial-77", false),
            ("/targets/.hidden/x", false),
            ("/metrics/x", false),
        ];
        for (path, bad) in cases {
            let got = map(path);
            let ok = match got {
                Err(PathError::Bad(_)) => bad,
                Err(PathError::NotServed(_)) => !bad,
                Ok(_) => false,
            };
            assert!(ok, "{path:?} -> {got:?}");
        }
    }

    proptest! {
        /// Whatever comes in, an accepted path stays under one of the four directories
        /// and has no segment that could climb or hide.
        #[test]
        fn accepted_paths_never_climb(path in "/[a-z%./\\\\0-9A-F]{0,60}") {
            if let Ok(resource) = map(&path) {
                let mut segments = resource.relative.split('/');
                let top = segments.next().unwrap_or_default();
                prop_assert!(["metadata", "targets", "torrents", "provenance"].contains(&top));
                for segment in resource.relative.split('/') {
                    prop_assert!(!segment.is_empty() && !segment.starts_with('.'));
                    prop_assert!(!segment.contains('\\') && !segment.contains('\0'));
                }
            }
        }

        /// A target path the edge refuses as hostile, the origin refuses too.
        #[test]
        fn the_edge_s_refusals_hold_here(path in "/targets/[a-z%./\\\\0-9A-F]{0,40}") {
            if let Err(PathError::Bad(_)) = swarmdrop_edge::proto::paths::parse(&path) {
                prop_assert!(matches!(map(&path), Err(PathError::Bad(_))), "{path:?}");
            }
        }

        /// Every drop path pack could write maps back to itself.
        #[test]
        fn pack_paths_round_trip(dir in "[a-z0-9_-]{1,12}", name in "[a-z0-9_-]{1,12}\\.[a-z0-9]{1,4}") {
            let relative = format!("targets/{dir}/{SHA}.{name}");
            let resource = map(&format!("/{relative}")).unwrap();
            prop_assert_eq!(resource.relative, relative);
            prop_assert_eq!(resource.kind, Kind::HashedTarget);
        }
    }
}
