//! Percent-quoting of role names and target paths for file names and URLs.
//!
//! Role names and target paths come from signed metadata but are still shaped by whoever
//! holds a delegated key, so they never reach a file system or a URL raw: `../x`, `a/b`
//! or `%2e%2e` must not leave the metadata or target directory. The quoting is
//! python-tuf's (`urllib.parse.quote`), so both clients keep the same file names.

use crate::model::percent_encode;

/// Quotes every byte outside `A-Za-z0-9_.-~`, as `quote(name, safe="")` does: the result
/// is one path segment, safe as a file name (`.` and `..` aside, which callers avoid by
/// adding an extension or a prefix).
pub fn quote_segment(name: &str) -> String {
    percent_encode(name, b"")
}

/// A file name for `name` inside a directory: [`quote_segment`], with `.` and `..`
/// quoted too, so no name can mean the directory itself or its parent.
pub fn file_name(name: &str) -> String {
    match quote_segment(name).as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        quoted => quoted.to_owned(),
    }
}

/// Quotes like [`quote_segment`] but keeps `/`, for a target path inside a URL.
pub fn quote_path(path: &str) -> String {
    percent_encode(path, b"/")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn quoting_matches_python() {
        // urllib.parse.quote("../a b/ü%", safe="") == "..%2Fa%20b%2F%C3%BC%25"
        assert_eq!(quote_segment("../a b/ü%"), "..%2Fa%20b%2F%C3%BC%25");
        assert_eq!(quote_path("dir/a b.txt"), "dir/a%20b.txt");
        assert_eq!(quote_segment("role-1_x.y~z"), "role-1_x.y~z");
        assert_eq!(file_name(".."), "%2E%2E");
        assert_eq!(file_name("."), "%2E");
        assert_eq!(file_name("a/../b"), "a%2F..%2Fb");
    }

    proptest! {
        #[test]
        fn a_quoted_segment_is_one_plain_segment(name in "\\PC{0,30}") {
            let quoted = file_name(&name);
            prop_assert!(quoted != "." && quoted != "..");
            prop_assert!(!quoted.contains('/'));
            prop_assert!(quoted.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-~%".contains(&b)));
        }

        #[test]
        fn quoting_is_injective(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            prop_assume!(a != b);
            prop_assert_ne!(quote_segment(&a), quote_segment(&b));
        }
    }
}
