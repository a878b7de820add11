use proptest::prelude::*;

use super::*;

#[test]
fn patterns_match_segment_by_segment() {
    assert!(path_matches("*", "file.txt"));
    assert!(!path_matches("*", "dir/file.txt"), "a * never crosses a /");
    assert!(path_matches("*/*", "dir/file.txt"));
    assert!(path_matches("dir/*.txt", "dir/file.txt"));
    assert!(!path_matches("dir/*.txt", "dir/sub/file.txt"));
    assert!(path_matches("targets/*.tgz", "targets/foo.tgz"));
    assert!(path_matches("file?.txt", "file1.txt"));
    assert!(!path_matches("file?.txt", "file10.txt"));
    assert!(path_matches("file[0-9].txt", "file7.txt"));
    assert!(!path_matches("file[!0-9].txt", "file7.txt"));
    assert!(path_matches("file[!0-9].txt", "fileX.txt"));
    assert!(path_matches("[]]", "]"));
    assert!(
        path_matches("a[", "a["),
        "an unclosed [ is a plain character"
    );
    assert!(path_matches("", ""));
    assert!(!path_matches("", "a"));
    assert!(path_matches("**", ""));
    assert!(path_matches("*a*b*c", "xxaxxbxxc"));
    assert!(!path_matches("*a*b*c", "xxaxxbxx"));
}

#[test]
fn hostile_patterns_stay_fast() {
    let pattern = "*a".repeat(100) + "b";
    let text = "a".repeat(5000);
    assert!(!path_matches(&pattern, &text));
}

#[test]
fn hash_prefixes_match_the_paths_sha256() {
    // sha256("file.txt") starts with 4c4...
    let digest = hex::encode(Sha256::digest(b"file.txt"));
    let role = DelegatedRole {
        name: "bins".into(),
        keyids: vec![],
        threshold: 1,
        terminating: false,
        paths: None,
        path_hash_prefixes: Some(vec![digest[..2].to_owned(), "zz".into()]),
    };
    assert!(role.delegates("file.txt"));
    let other = DelegatedRole {
        path_hash_prefixes: Some(vec!["zz".into()]),
        ..role.clone()
    };
    assert!(!other.delegates("file.txt"));
    let neither = DelegatedRole {
        path_hash_prefixes: None,
        ..role
    };
    assert!(
        !neither.delegates("file.txt"),
        "no patterns: trusted for nothing"
    );
}

#[test]
fn succinct_bins_are_named_from_the_leading_bits() {
    let bins = SuccinctRoles {
        keyids: vec![],
        threshold: 1,
        bit_length: 8,
        name_prefix: "bin".into(),
    };
    let digest = Sha256::digest(b"file.txt");
    assert_eq!(bins.bin_for("file.txt"), format!("bin-{:02x}", digest[0]));
    assert!(bins.is_bin("bin-00") && bins.is_bin("bin-ff"));
    assert!(!bins.is_bin("bin-100") && !bins.is_bin("bin-0") && !bins.is_bin("bin-zz"));
    let odd = SuccinctRoles {
        bit_length: 5,
        ..bins.clone()
    };
    // 5 bits: 32 bins, two hex digits, bins 00..=1f.
    assert!(odd.is_bin("bin-1f") && !odd.is_bin("bin-20"));
    assert_eq!(
        odd.bin_for("file.txt"),
        format!("bin-{:02x}", digest[0] >> 3)
    );
    let wide = SuccinctRoles {
        bit_length: 32,
        ..bins
    };
    assert_eq!(
        wide.bin_for("file.txt"),
        format!("bin-{}", hex::encode(&digest[..4]))
    );
}

/// A plainly recursive fnmatch, exponential but obviously right, to check the fast one.
fn reference(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).any(|i| reference(&pattern[1..], &text[i..])),
        Some('?') => !text.is_empty() && reference(&pattern[1..], &text[1..]),
        Some('[') => match class(pattern, 1) {
            Some((matches, end)) => {
                !text.is_empty() && matches(text[0]) && reference(&pattern[end..], &text[1..])
            }
            None => text.first() == Some(&'[') && reference(&pattern[1..], &text[1..]),
        },
        Some(c) => text.first() == Some(c) && reference(&pattern[1..], &text[1..]),
    }
}

proptest! {
    #[test]
    fn fast_fnmatch_agrees_with_the_reference(
        pattern in "[ab*?\\[\\]!-]{0,8}",
        text in "[ab\\[\\]!-]{0,8}",
    ) {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(fnmatch(&p, &t), reference(&p, &t));
    }

    #[test]
    fn every_path_lands_in_a_valid_bin(path in "\\PC{0,40}", bits in 1u32..=32) {
        let bins = SuccinctRoles {
            keyids: vec![],
            threshold: 1,
            bit_length: bits,
            name_prefix: "p".into(),
        };
        prop_assert!(bins.is_bin(&bins.bin_for(&path)));
    }
}
