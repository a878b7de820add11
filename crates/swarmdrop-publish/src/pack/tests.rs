use std::fs;
use std::path::Path;

use super::*;
use crate::layout::Layout;
use crate::verify::{verify, VerifyOptions};
use swarmdrop_manifest::torrent::Metainfo;

const POLICY: &str = r#"
[drop]
name = "test-drop"
opens_at = "2026-12-01T18:00:00Z"
closes_at = "2026-12-01T18:30:00Z"

[[class]]
name = "checkout"
budget_ms = 300
paths = ["edge", "origin"]

[[class]]
name = "bulk"
budget_ms = 60000
paths = ["p2p", "edge", "origin"]

[[assets]]
glob = "checkout/**"
class = "checkout"

[[assets]]
glob = "bulk/**"
class = "bulk"
"#;

const T0: i64 = 1_800_000_000;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let assets = dir.path().join("assets");
        fs::create_dir_all(assets.join("checkout")).unwrap();
        fs::create_dir_all(assets.join("bulk")).unwrap();
        fs::write(assets.join("checkout/index.html"), "<h1>mint</h1>").unwrap();
        let bulk: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        fs::write(assets.join("bulk/patch.bin"), bulk).unwrap();
        fs::write(dir.path().join("drop.toml"), POLICY).unwrap();
        keyset::generate(&dir.path().join("keys"), 1, 1, false).unwrap();
        Self { dir }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    fn options(&self, out: &str) -> PackOptions {
        PackOptions {
            assets_dir: self.path("assets"),
            policy_file: self.path("drop.toml"),
            keys_dir: self.path("keys"),
            out_dir: self.path(out),
            trackers: vec!["http://127.0.0.1:6969/announce".into()],
            webseeds: vec!["http://127.0.0.1:8080/".into()],
            expiries: Expiries::default(),
            link: LinkMode::Copy,
        }
    }

    fn verify(&self, out: &str, at: i64) -> Result<crate::verify::VerifyReport, PublishError> {
        verify(
            &VerifyOptions {
                published: self.path(out),
                trusted_root: None,
                assets: vec![],
                now: UtcTime::from_unix(at).unwrap(),
            },
            &|_| {},
        )
    }
}

fn at(seconds: i64) -> Clock {
    Clock::Fixed(UtcTime::from_unix(seconds).unwrap())
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn pack_then_verify() {
    let f = Fixture::new();
    let report = pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
    assert_eq!(
        (report.version, report.root_version, report.new_version),
        (1, 1, true)
    );
    let bulk = report
        .assets
        .iter()
        .find(|a| a.path == "bulk/patch.bin")
        .unwrap();
    let p2p = bulk.p2p.as_ref().unwrap();
    assert!(f.path("pub").join(&p2p.torrent).exists());
    assert!(report
        .assets
        .iter()
        .find(|a| a.path == "checkout/index.html")
        .unwrap()
        .p2p
        .is_none());
    let torrent = Metainfo::parse(&fs::read(f.path("pub").join(&p2p.torrent)).unwrap()).unwrap();
    assert_eq!(
        torrent.url_list,
        vec![format!(
            "http://127.0.0.1:8080/targets/bulk/{}.patch.bin",
            bulk.sha256
        )]
    );
    let verified = f.verify("pub", T0 + 60).unwrap();
    assert_eq!(verified.assets.len(), 2);
    assert_eq!(verified.provenance_subjects, 2);
    assert!(verified.assets.iter().any(|a| a.torrent_checked));
}

#[test]
fn same_inputs_give_identical_output() {
    let f = Fixture::new();
    pack(&f.options("a"), at(T0), &NoProgress).unwrap();
    pack(&f.options("b"), at(T0), &NoProgress).unwrap();
    assert_eq!(tree(&f.path("a")), tree(&f.path("b")));
}

#[test]
fn repack_adds_a_version_only_when_assets_change() {
    let f = Fixture::new();
    pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
    let again = pack(&f.options("pub"), at(T0 + 10), &NoProgress).unwrap();
    assert_eq!((again.version, again.new_version), (1, false));
    fs::write(f.path("assets/bulk/segment-2.bin"), vec![7u8; 40_000]).unwrap();
    let v2 = pack(&f.options("pub"), at(T0 + 20), &NoProgress).unwrap();
    assert_eq!((v2.version, v2.root_version, v2.new_version), (2, 1, true));
    for file in [
        "1.targets.json",
        "2.targets.json",
        "1.snapshot.json",
        "2.snapshot.json",
        "1.root.json",
    ] {
        assert!(f.path("pub/metadata").join(file).exists(), "{file}");
    }
    assert!(!f.path("pub/metadata/2.root.json").exists());
    let verified = f.verify("pub", T0 + 30).unwrap();
    assert_eq!((verified.targets_version, verified.assets.len()), (2, 3));
    // A changed asset gets a new hash-named file; the old one stays for version 1.
    fs::write(f.path("assets/checkout/index.html"), "<h1>mint v2</h1>").unwrap();
    let v3 = pack(&f.options("pub"), at(T0 + 40), &NoProgress).unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(
        fs::read_dir(f.path("pub/targets/checkout"))
            .unwrap()
            .count(),
        2
    );
    f.verify("pub", T0 + 50).unwrap();
}

#[test]
fn verify_names_what_is_wrong() {
    let f = Fixture::new();
    let report = pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
    let html = report
        .assets
        .iter()
        .find(|a| a.path == "checkout/index.html")
        .unwrap();
    let file = f.path("pub").join(&html.target);
    let mut bytes = fs::read(&file).unwrap();
    bytes[0] ^= 1;
    fs::write(&file, &bytes).unwrap();
    let err = f.verify("pub", T0 + 60).unwrap_err().to_string();
    assert!(
        err.contains("checkout/index.html") && err.contains("sha256"),
        "{err}"
    );
    bytes[0] ^= 1;
    fs::write(&file, &bytes).unwrap();

    let err = f.verify("pub", T0 + 2 * 86_400).unwrap_err().to_string();
    assert!(
        err.contains("timestamp") && err.contains("expired"),
        "{err}"
    );

    // A torrent whose pieces do not match its asset.
    let bulk = report
        .assets
        .iter()
        .find(|a| a.path == "bulk/patch.bin")
        .unwrap();
    let torrent_path = f.path("pub").join(&bulk.p2p.as_ref().unwrap().torrent);
    let original = fs::read(&torrent_path).unwrap();
    fs::write(&torrent_path, &original[..original.len() - 5]).unwrap();
    let err = f.verify("pub", T0 + 60).unwrap_err().to_string();
    assert!(err.contains(".torrent"), "{err}");
    fs::write(&torrent_path, &original).unwrap();

    // Tampered provenance.
    let prov = f.path("pub/provenance/1.dsse.json");
    let mut envelope: serde_json::Value =
        serde_json::from_slice(&fs::read(&prov).unwrap()).unwrap();
    envelope["payloadType"] = "text/plain".into();
    fs::write(&prov, serde_json::to_vec(&envelope).unwrap()).unwrap();
    let err = f.verify("pub", T0 + 60).unwrap_err().to_string();
    assert!(err.contains("1.dsse.json"), "{err}");
}

#[test]
fn refuses_other_keys_symlinks_and_unmatched_assets() {
    let f = Fixture::new();
    pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
    keyset::generate(&f.path("keys"), 1, 1, true).unwrap();
    let err = pack(&f.options("pub"), at(T0), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("other keys"), "{err}");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", f.path("assets/checkout/link")).unwrap();
        let err = pack(&f.options("pub2"), at(T0), &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
        fs::remove_file(f.path("assets/checkout/link")).unwrap();
    }

    fs::write(f.path("assets/readme.txt"), "hi").unwrap();
    let err = pack(&f.options("pub3"), at(T0), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("readme.txt") && err.contains("default_class"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_named() {
    let f = Fixture::new();
    let mut options = f.options("pub");
    options.webseeds = vec!["ftp://x".into()];
    let err = pack(&options, at(T0), &NoProgress).unwrap_err().to_string();
    assert!(err.contains("--webseed"), "{err}");
}

#[test]
fn webseed_urls_encode_segments() {
    let path = DropPath::new("frames/a b#1.png").unwrap();
    assert_eq!(
        webseed_url("http://h/base/", &path, "ff"),
        "http://h/base/targets/frames/ff.a%20b%231.png"
    );
}

#[test]
fn a_second_pack_at_the_same_time_is_refused() {
    let f = Fixture::new();
    fs::create_dir_all(f.path("pub")).unwrap();
    let held = fs::File::create(f.path("pub/.swarmdrop-pack.lock")).unwrap();
    held.lock().unwrap();
    let err = pack(&f.options("pub"), at(T0), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another swarmdrop pack"), "{err}");
    held.unlock().unwrap();
    pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
}

#[test]
fn output_inside_the_drop_is_refused() {
    let f = Fixture::new();
    let err = pack(&f.options("assets/published"), at(T0), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inside the drop directory"), "{err}");
}

#[cfg(unix)]
#[test]
fn hardlink_mode_links_and_copy_mode_unlinks() {
    use std::os::unix::fs::MetadataExt as _;
    let f = Fixture::new();
    let mut options = f.options("pub");
    options.link = LinkMode::Hardlink;
    let report = pack(&options, at(T0), &NoProgress).unwrap();
    let bulk = report
        .assets
        .iter()
        .find(|a| a.path == "bulk/patch.bin")
        .unwrap();
    let source = fs::metadata(f.path("assets/bulk/patch.bin")).unwrap();
    let published = f.path("pub").join(&bulk.target);
    assert_eq!(fs::metadata(&published).unwrap().ino(), source.ino());
    f.verify("pub", T0 + 60).unwrap();
    // Copy mode over the same directory: nothing changed, but the links become copies.
    let again = pack(&f.options("pub"), at(T0 + 10), &NoProgress).unwrap();
    assert_eq!(again.outcome, PackOutcome::Unchanged);
    assert_ne!(fs::metadata(&published).unwrap().ino(), source.ino());
    f.verify("pub", T0 + 60).unwrap();
}

#[test]
fn a_first_pack_that_stopped_before_the_timestamp_can_be_redone() {
    let f = Fixture::new();
    pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
    fs::remove_file(f.path("pub/metadata/timestamp.json")).unwrap();
    let report = pack(&f.options("pub"), at(T0 + 5), &NoProgress).unwrap();
    assert_eq!(
        (report.version, report.outcome),
        (1, PackOutcome::NewVersion)
    );
    f.verify("pub", T0 + 60).unwrap();
}

#[test]
fn an_unchanged_release_gets_a_fresh_timestamp_past_half_its_life() {
    let f = Fixture::new();
    pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
    let early = pack(&f.options("pub"), at(T0 + 3600), &NoProgress).unwrap();
    assert_eq!(early.outcome, PackOutcome::Unchanged);
    let late = pack(&f.options("pub"), at(T0 + 13 * 3600), &NoProgress).unwrap();
    assert_eq!(late.outcome, PackOutcome::TimestampRefreshed);
    assert_eq!(late.timestamp_expires.unix(), T0 + 13 * 3600 + 86_400);
    // Past the first timestamp's expiry, the release still verifies.
    let verified = f.verify("pub", T0 + 86_400 + 3600).unwrap();
    assert_eq!(
        (verified.timestamp_version, verified.targets_version),
        (2, 1)
    );
    // The next real release goes past every version seen.
    fs::write(f.path("assets/checkout/new.html"), "new").unwrap();
    let next = pack(&f.options("pub"), at(T0 + 14 * 3600), &NoProgress).unwrap();
    assert_eq!(next.version, 3);
    f.verify("pub", T0 + 15 * 3600).unwrap();
}

#[test]
fn torrent_files_are_content_named_and_never_rewritten() {
    let f = Fixture::new();
    let v1 = pack(&f.options("pub"), at(T0), &NoProgress).unwrap();
    let mut options = f.options("pub");
    options.trackers = vec!["udp://127.0.0.1:6969".into()];
    let v2 = pack(&options, at(T0 + 10), &NoProgress).unwrap();
    let torrent = |r: &PackReport| r.assets.iter().find_map(|a| a.p2p.clone()).unwrap();
    let (t1, t2) = (torrent(&v1), torrent(&v2));
    assert_eq!(t1.infohash, t2.infohash);
    assert_ne!(t1.torrent, t2.torrent);
    assert!(f.path("pub").join(&t1.torrent).exists() && f.path("pub").join(&t2.torrent).exists());
    assert!(Layout::is_torrent_relative(&t1.infohash, &t1.torrent));
}

mod determinism {
    use proptest::prelude::*;

    use super::*;

    fn drop_files() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
        let name = prop_oneof![
            "checkout/[a-z]{1,8}\\.html",
            "bulk/[a-z]{1,8}\\.bin",
            "bulk/[a-z]{1,4}/[a-z ]{1,8}\\.bin",
        ];
        let content = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (any::<u8>(), 1usize..70_000).prop_map(|(byte, len)| vec![byte; len]),
        ];
        proptest::collection::btree_map(name, content, 1..5).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// Any drop, packed twice with the same keys and clock, gives identical trees.
        #[test]
        fn pack_is_deterministic(files in drop_files(), seconds in 1_700_000_000i64..1_900_000_000) {
            let f = Fixture::new();
            fs::remove_dir_all(f.path("assets")).unwrap();
            for (name, bytes) in &files {
                let path = f.path("assets").join(name);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, bytes).unwrap();
            }
            pack(&f.options("a"), at(seconds), &NoProgress).unwrap();
            pack(&f.options("b"), at(seconds), &NoProgress).unwrap();
            prop_assert_eq!(tree(&f.path("a")), tree(&f.path("b")));
        }
    }
}
