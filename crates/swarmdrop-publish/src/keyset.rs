//! The publisher's key directory, written by `swarmdrop keygen`.
//!
//! ```text
//! KEYS/keyset.json            which key file signs for which role, and the root threshold
//! KEYS/root-1.key … root-N    PKCS#8 PEM, mode 0600 (openssl pkey reads them)
//! KEYS/targets.key, snapshot.key, timestamp.key, receipts.key
//! KEYS/*.pub                  SPKI PEM public keys
//! ```
//! Root keys belong offline after the first pack; `pack` needs them only to make the
//! first root. Losing `timestamp.key` is an inconvenience; losing root keys is not.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use swarmdrop_manifest::keys::{PublicKey, SigningKey};
use swarmdrop_manifest::tuf::release::RolePublicKeys;

use crate::fsutil::{read_capped, write_atomic, write_private};
use crate::PublishError;

/// The index file's name.
pub const KEYSET_FILE: &str = "keyset.json";
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// `keyset.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysetIndex {
    /// Root key file stems (`root-1`, …).
    pub root: Vec<String>,
    /// Distinct root signatures a root needs.
    pub root_threshold: u32,
    /// Targets key file stem.
    pub targets: String,
    /// Snapshot key file stem.
    pub snapshot: String,
    /// Timestamp key file stem.
    pub timestamp: String,
    /// Receipts key file stem.
    pub receipts: String,
}

/// Loaded keys. Root keys that are absent (kept offline) are simply not here.
#[derive(Debug)]
pub struct Keyset {
    /// The index.
    pub index: KeysetIndex,
    /// Root public keys, in index order.
    pub root_public: Vec<PublicKey>,
    /// Root private keys present on disk.
    pub root: Vec<SigningKey>,
    /// Targets key.
    pub targets: SigningKey,
    /// Snapshot key.
    pub snapshot: SigningKey,
    /// Timestamp key.
    pub timestamp: SigningKey,
    /// Receipts key.
    pub receipts: SigningKey,
}

/// What `keygen` made.
#[derive(Debug, Clone, Serialize)]
pub struct KeygenReport {
    /// The key directory.
    pub dir: PathBuf,
    /// Every file written.
    pub files: Vec<PathBuf>,
    /// Key ids by file stem.
    pub key_ids: Vec<(String, String)>,
    /// Root threshold.
    pub root_threshold: u32,
}

fn random_seed() -> Result<[u8; 32], PublishError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| PublishError::Keyset(format!("the OS random number generator failed: {e}")))?;
    Ok(seed)
}

/// Writes a fresh keyset into `dir`: `root_keys` root keys with threshold
/// `root_threshold`, and one key each for targets, snapshot, timestamp and receipts.
/// Refuses to touch existing key files unless `force`.
pub fn generate(
    dir: &Path,
    root_keys: u32,
    root_threshold: u32,
    force: bool,
) -> Result<KeygenReport, PublishError> {
    if root_threshold == 0 || root_keys == 0 {
        return Err(PublishError::Keyset(
            "--root-threshold and the number of root keys must be at least 1".into(),
        ));
    }
    if root_threshold > root_keys {
        return Err(PublishError::Keyset(format!(
            "--root-threshold {root_threshold} is more than the {root_keys} root keys to generate"
        )));
    }
    if root_keys > 64 {
        return Err(PublishError::Keyset(format!(
            "{root_keys} root keys is more than the 64 supported"
        )));
    }
    let index = KeysetIndex {
        root: (1..=root_keys).map(|i| format!("root-{i}")).collect(),
        root_threshold,
        targets: "targets".into(),
        snapshot: "snapshot".into(),
        timestamp: "timestamp".into(),
        receipts: "receipts".into(),
    };
    let stems: Vec<&str> = index
        .root
        .iter()
        .map(String::as_str)
        .chain([
            index.targets.as_str(),
            index.snapshot.as_str(),
            index.timestamp.as_str(),
            index.receipts.as_str(),
        ])
        .collect();

    fs::create_dir_all(dir).map_err(|e| PublishError::io(dir, e))?;
    let mut existing: Vec<PathBuf> = std::iter::once(dir.join(KEYSET_FILE))
        .chain(
            stems
                .iter()
                .flat_map(|s| [dir.join(format!("{s}.key")), dir.join(format!("{s}.pub"))]),
        )
        .filter(|p| p.exists())
        .collect();
    // Root keys from an earlier, larger keyset would linger and confuse; count them too.
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("root-")
                && (name.ends_with(".key") || name.ends_with(".pub"))
                && !existing.contains(&entry.path())
            {
                existing.push(entry.path());
            }
        }
    }
    if !existing.is_empty() {
        if !force {
            let names: Vec<String> = existing.iter().map(|p| p.display().to_string()).collect();
            return Err(PublishError::Keyset(format!(
                "refusing to overwrite existing keys ({}); pass --force to replace them",
                names.join(", ")
            )));
        }
        for path in &existing {
            fs::remove_file(path).map_err(|e| PublishError::io(path, e))?;
        }
    }

    let mut files = Vec::new();
    let mut key_ids = Vec::new();
    for stem in stems {
        let key = SigningKey::from_seed(random_seed()?);
        let private = dir.join(format!("{stem}.key"));
        write_private(&private, key.to_pkcs8_pem().as_bytes())?;
        let public = dir.join(format!("{stem}.pub"));
        write_atomic(&public, key.public().to_spki_pem().as_bytes())?;
        key_ids.push((stem.to_owned(), key.public().key_id().0));
        files.push(private);
        files.push(public);
    }
    let index_path = dir.join(KEYSET_FILE);
    let mut json =
        serde_json::to_vec_pretty(&index).map_err(|e| PublishError::Keyset(e.to_string()))?;
    json.push(b'\n');
    write_atomic(&index_path, &json)?;
    files.push(index_path);
    Ok(KeygenReport {
        dir: dir.to_owned(),
        files,
        key_ids,
        root_threshold,
    })
}

fn read_private(dir: &Path, stem: &str) -> Result<SigningKey, PublishError> {
    let path = dir.join(format!("{stem}.key"));
    let pem = read_capped(&path, MAX_KEY_FILE_BYTES)?;
    SigningKey::from_pkcs8_pem(&String::from_utf8_lossy(&pem))
        .map_err(|source| PublishError::Key { path, source })
}

fn read_public(dir: &Path, stem: &str) -> Result<PublicKey, PublishError> {
    let path = dir.join(format!("{stem}.pub"));
    let pem = read_capped(&path, MAX_KEY_FILE_BYTES)?;
    PublicKey::from_spki_pem(&String::from_utf8_lossy(&pem))
        .map_err(|source| PublishError::Key { path, source })
}

/// Loads the keyset in `dir`. Root private keys may be missing (offline); their
/// public halves must be there, and present private keys must match them.
pub fn load(dir: &Path) -> Result<Keyset, PublishError> {
    let index_path = dir.join(KEYSET_FILE);
    let bytes = read_capped(&index_path, MAX_KEY_FILE_BYTES).map_err(|e| match e {
        PublishError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PublishError::Keyset(format!(
                "{} not found: is {} a key directory made by `swarmdrop keygen`?",
                index_path.display(),
                dir.display()
            ))
        }
        other => other,
    })?;
    let index: KeysetIndex = serde_json::from_slice(&bytes)
        .map_err(|e| PublishError::Keyset(format!("{}: {e}", index_path.display())))?;
    if index.root.is_empty()
        || index.root_threshold == 0
        || index.root_threshold as usize > index.root.len()
    {
        return Err(PublishError::Keyset(format!(
            "{}: root_threshold {} does not fit {} root keys",
            index_path.display(),
            index.root_threshold,
            index.root.len()
        )));
    }
    let mut root_public = Vec::new();
    let mut root = Vec::new();
    for stem in &index.root {
        let public = read_public(dir, stem)?;
        if dir.join(format!("{stem}.key")).exists() {
            let private = read_private(dir, stem)?;
            if private.public() != public {
                return Err(PublishError::Keyset(format!(
                    "{stem}.key does not match {stem}.pub in {}",
                    dir.display()
                )));
            }
            root.push(private);
        }
        root_public.push(public);
    }
    Ok(Keyset {
        root_public,
        root,
        targets: read_private(dir, &index.targets)?,
        snapshot: read_private(dir, &index.snapshot)?,
        timestamp: read_private(dir, &index.timestamp)?,
        receipts: read_private(dir, &index.receipts)?,
        index,
    })
}

impl Keyset {
    /// The public keys a root made from this keyset lists.
    pub fn role_public_keys(&self) -> RolePublicKeys {
        RolePublicKeys {
            root: self.root_public.clone(),
            root_threshold: self.index.root_threshold,
            targets: self.targets.public(),
            snapshot: self.snapshot.public(),
            timestamp: self.timestamp.public(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let report = generate(dir.path(), 3, 2, false).unwrap();
        assert_eq!(report.key_ids.len(), 7);
        let keys = load(dir.path()).unwrap();
        assert_eq!((keys.root.len(), keys.index.root_threshold), (3, 2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join("targets.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = generate(dir.path(), 1, 1, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        // Forcing a smaller keyset removes the extra root keys of the old one.
        generate(dir.path(), 1, 1, true).unwrap();
        assert!(!dir.path().join("root-3.key").exists());
        assert_eq!(load(dir.path()).unwrap().root.len(), 1);
    }

    #[test]
    fn offline_root_keys_and_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 2, 1, false).unwrap();
        fs::remove_file(dir.path().join("root-2.key")).unwrap();
        let keys = load(dir.path()).unwrap();
        assert_eq!((keys.root.len(), keys.root_public.len()), (1, 2));
        fs::copy(
            dir.path().join("targets.pub"),
            dir.path().join("root-1.pub"),
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn bad_thresholds_and_missing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(generate(dir.path(), 1, 2, false).is_err());
        assert!(generate(dir.path(), 0, 0, false).is_err());
        let err = load(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("keygen"), "{err}");
    }
}
