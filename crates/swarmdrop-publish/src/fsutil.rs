//! Small file helpers: bounded reads, atomic writes, private key files.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::Path;

use crate::PublishError;

/// Reads a whole file, refusing one larger than `limit` bytes before reading it
/// (and stopping at the limit if it grows while we read).
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, PublishError> {
    let file = fs::File::open(path).map_err(|e| PublishError::io(path, e))?;
    let size = file
        .metadata()
        .map_err(|e| PublishError::io(path, e))?
        .len();
    if size > limit {
        return Err(PublishError::TooLarge {
            path: path.to_owned(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PublishError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(PublishError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through a synced temporary file in the same directory and a
/// rename, then syncs the directory, so readers see the old file or the new one, never
/// half of one, and a crash after return cannot lose it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| PublishError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(PublishError::io(path, e));
    }
    // Not every platform can open a directory to sync it; the file itself is synced.
    let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

/// Creates a file readable only by its owner (0600), failing if it exists.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| PublishError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| PublishError::io(path, e))
}
