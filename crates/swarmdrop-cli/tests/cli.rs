//! The `swarmdrop` binary on bad input: every case exits non-zero with a message naming
//! what is wrong, and nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn swarmdrop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarmdrop"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run swarmdrop")
}

fn fails_with(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/genesis-drop")
}

#[test]
fn every_command_has_help() {
    for command in [
        &["--help"][..],
        &["keygen", "--help"],
        &["pack", "--help"],
        &["verify", "--help"],
        &["inspect", "--help"],
        &["bench", "pack", "--help"],
    ] {
        let output = swarmdrop(command);
        assert!(output.status.success(), "{command:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage:"),
            "{command:?}"
        );
    }
}

#[test]
fn inspect_refuses_malformed_torrents() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let truncated = write(
        "truncated.torrent",
        b"d8:announce22:http://127.0.0.1:6969/4:infod6:lengthi5e4:name",
    );
    fails_with(
        &swarmdrop(&["inspect", &truncated]),
        &["truncated.torrent", "input ends inside a value"],
    );

    let mut deep = vec![b'l'; 100_000];
    deep.extend(std::iter::repeat_n(b'e', 100_000));
    let mut nested = b"d4:info".to_vec();
    nested.extend_from_slice(&deep);
    nested.push(b'e');
    let deep = write("deep.torrent", &nested);
    fails_with(
        &swarmdrop(&["inspect", &deep]),
        &["deep.torrent", "nesting deeper than 64"],
    );

    let huge = write("huge.torrent", b"d4:infod4:name10000000000:abcee");
    fails_with(
        &swarmdrop(&["inspect", &huge]),
        &["huge.torrent", "string length 10000000000 exceeds"],
    );

    let not_anything = write("notes.txt", b"hello");
    fails_with(
        &swarmdrop(&["inspect", &not_anything]),
        &["notes.txt", "not a .torrent"],
    );
    fails_with(
        &swarmdrop(&["inspect", "/nonexistent/x.torrent"]),
        &["/nonexistent/x.torrent"],
    );
}

/// Packs the example drop with one policy edit and checks the error names the place.
fn pack_with_policy(policy: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("drop.toml");
    fs::write(&policy_path, policy).unwrap();
    let keys = dir.path().join("keys");
    assert!(swarmdrop(&["keygen", "--out", keys.to_str().unwrap()])
        .status
        .success());
    let output = swarmdrop(&[
        "pack",
        example().join("assets").to_str().unwrap(),
        "--policy",
        policy_path.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    fails_with(&output, needles);
}

#[test]
fn policy_errors_name_file_line_and_field() {
    let good = fs::read_to_string(example().join("drop.toml")).unwrap();
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "class = \"keyframe\"",
            "class = \"keyframes\"",
            &[
                "drop.toml:27:9",
                "assets[0].class",
                "unknown class \"keyframes\"",
            ],
        ),
        (
            "paths = [\"edge\", \"origin\"]",
            "paths = []",
            &["drop.toml:11:9", "class[0].paths", "at least one path"],
        ),
        (
            "paths = [\"edge\", \"origin\"]",
            "paths = [\"edge\", \"cdn\"]",
            &["drop.toml:11:18", "unknown path \"cdn\""],
        ),
        (
            "budget_ms = 300",
            "budget_ms = 0",
            &["drop.toml:10:13", "class[0].budget_ms", "at least 1"],
        ),
        (
            "closes_at = \"2026-12-01T18:30:00Z\"",
            "closes_at = \"2026-12-01T17:00:00Z\"",
            &["drop.toml:5:13", "drop.closes_at", "not after opens_at"],
        ),
        (
            "name = \"keyframe\"",
            "name = \"checkout\"",
            &[
                "drop.toml:15:8",
                "class[1].name",
                "already defined on line 8",
            ],
        ),
        (
            "glob = \"checkout/**\"",
            "glob = \"checkout/*.html\"",
            &[
                "drop.toml",
                "checkout/mint.js",
                "matches no [[assets]] glob",
            ],
        ),
    ];
    for (from, to, needles) in cases {
        assert!(good.contains(from), "{from}");
        pack_with_policy(&good.replacen(from, to, 1), needles);
    }
}

#[test]
fn keygen_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let keys = keys.to_str().unwrap();
    assert!(swarmdrop(&["keygen", "--out", keys]).status.success());
    fails_with(
        &swarmdrop(&["keygen", "--out", keys]),
        &["refusing to overwrite", "--force"],
    );
    assert!(swarmdrop(&[
        "keygen",
        "--out",
        keys,
        "--force",
        "--root-threshold",
        "2",
        "--root-keys",
        "3"
    ])
    .status
    .success());
    fails_with(
        &swarmdrop(&[
            "keygen",
            "--out",
            keys,
            "--force",
            "--root-threshold",
            "3",
            "--root-keys",
            "2",
        ]),
        &["--root-threshold 3"],
    );
}

#[test]
fn bad_environment_and_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_swarmdrop"))
        .args([
            "pack",
            "x",
            "--policy",
            "p",
            "--keys",
            "k",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    fails_with(&output, &["SOURCE_DATE_EPOCH"]);
    let output = swarmdrop(&[
        "pack",
        "x",
        "--policy",
        "p",
        "--keys",
        "k",
        "--out",
        "o",
        "--expires-timestamp",
        "soon",
    ]);
    fails_with(&output, &["--expires-timestamp", "\"soon\""]);
    fails_with(
        &swarmdrop(&["verify", "/nonexistent/published"]),
        &["/nonexistent/published"],
    );
    fails_with(
        &swarmdrop(&["verify", "/nonexistent/published", "--at", "noon"]),
        &["--at"],
    );
}
