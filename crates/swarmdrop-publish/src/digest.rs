//! Reads a file once and hashes it for TUF (SHA-256) and BitTorrent (SHA-1 per piece)
//! at the same time, optionally copying it as it goes.
//!
//! SHA-256 and SHA-1 each run near a gigabyte a second with the CPU's SHA
//! instructions, and each is serial within a file. So the reader thread fills 1 MiB
//! chunks and hands each (shared, not copied) to one thread per hash over bounded
//! channels: the two hashes overlap, the read overlaps both, and memory stays at a
//! few chunks whatever the file size. Small files are hashed inline; threads would
//! cost more than they save.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::Arc;

use swarmdrop_manifest::hashing::PieceHasher;
use swarmdrop_manifest::midstates::MidstateHasher;

use crate::PublishError;

/// Bytes read per chunk.
pub const CHUNK: usize = 1024 * 1024;
/// Chunks in flight per hasher: bounds memory at about 2 × this × [`CHUNK`].
const IN_FLIGHT: usize = 8;

/// The digests of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Bytes read.
    pub length: u64,
    /// SHA-256 of the whole file.
    pub sha256: [u8; 32],
    /// SHA-1 of each piece, when a piece length was given.
    pub pieces: Option<Vec<[u8; 20]>>,
    /// The SHA-256's state at each boundary between pieces, hex, when a piece length
    /// was given ([`swarmdrop_manifest::midstates`]): recorded in the same pass.
    pub midstates: Option<String>,
}

impl Digests {
    /// Hex SHA-256.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A hash thread's loop: `update` with each chunk in order, then the chunk's buffer
/// back to the reader once its last user is done with it, so the reader reuses a few
/// buffers instead of zeroing a fresh megabyte per chunk.
fn hash_each(
    chunks: Receiver<Arc<Vec<u8>>>,
    pool: &Sender<Vec<u8>>,
    mut update: impl FnMut(&[u8]),
) {
    for chunk in chunks {
        update(chunk.as_slice());
        if let Ok(buffer) = Arc::try_unwrap(chunk) {
            let _ = pool.send(buffer);
        }
    }
}

/// Hashes `source`, writing a copy to `copy_to` if given (not synced: the caller
/// decides when the copy must be durable), and reports each chunk's length to
/// `progress`.
pub fn digest_file(
    source: &Path,
    piece_length: Option<u32>,
    copy_to: Option<&Path>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Digests, PublishError> {
    let mut file = fs::File::open(source).map_err(|e| PublishError::io(source, e))?;
    let size = file
        .metadata()
        .map_err(|e| PublishError::io(source, e))?
        .len();
    let mut copy = match copy_to {
        Some(path) => Some((
            fs::File::create(path).map_err(|e| PublishError::io(path, e))?,
            path,
        )),
        None => None,
    };
    let mut write_copy = |chunk: &[u8]| -> Result<(), PublishError> {
        if let Some((out, path)) = copy.as_mut() {
            out.write_all(chunk)
                .map_err(|e| PublishError::io(*path, e))?;
        }
        Ok(())
    };

    let digests = if size <= CHUNK as u64 {
        let mut buf = vec![0u8; CHUNK];
        let mut sha256 = MidstateHasher::new(piece_length);
        let mut pieces = piece_length.map(PieceHasher::new);
        let mut length = 0u64;
        loop {
            let n = read_full(&mut file, &mut buf).map_err(|e| PublishError::io(source, e))?;
            if n == 0 {
                break;
            }
            sha256.update(&buf[..n]);
            if let Some(p) = pieces.as_mut() {
                p.update(&buf[..n]);
            }
            write_copy(&buf[..n])?;
            length += n as u64;
            progress(n as u64);
        }
        let (sha256, midstates) = sha256.finish();
        Digests {
            length,
            sha256,
            pieces: pieces.map(PieceHasher::finish),
            midstates: piece_length.map(|_| midstates),
        }
    } else {
        std::thread::scope(|scope| -> Result<Digests, PublishError> {
            let (pool_tx, pool) = channel::<Vec<u8>>();
            let (to_sha256, sha256_chunks) = sync_channel::<Arc<Vec<u8>>>(IN_FLIGHT);
            let sha256_pool = pool_tx.clone();
            let sha256_worker = scope.spawn(move || {
                let mut hasher = MidstateHasher::new(piece_length);
                hash_each(sha256_chunks, &sha256_pool, |chunk| hasher.update(chunk));
                hasher.finish()
            });
            let (to_pieces, piece_worker) = match piece_length {
                Some(piece_length) => {
                    let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(IN_FLIGHT);
                    let piece_pool = pool_tx.clone();
                    let worker = scope.spawn(move || {
                        let mut hasher = PieceHasher::new(piece_length);
                        hash_each(rx, &piece_pool, |chunk| hasher.update(chunk));
                        hasher.finish()
                    });
                    (Some(tx), Some(worker))
                }
                None => (None, None),
            };
            drop(pool_tx);
            let mut length = 0u64;
            let read_result = (|| -> Result<(), PublishError> {
                loop {
                    let mut buf = pool.try_recv().unwrap_or_default();
                    buf.resize(CHUNK, 0);
                    let n =
                        read_full(&mut file, &mut buf).map_err(|e| PublishError::io(source, e))?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.truncate(n);
                    write_copy(&buf)?;
                    let chunk = Arc::new(buf);
                    // A send fails only if a worker died; its join below reports that.
                    if let Some(tx) = &to_pieces {
                        let _ = tx.send(Arc::clone(&chunk));
                    }
                    let _ = to_sha256.send(chunk);
                    length += n as u64;
                    progress(n as u64);
                }
            })();
            drop(to_sha256);
            drop(to_pieces);
            let (sha256, midstates) = sha256_worker.join().map_err(|_| PublishError::Asset {
                path: source.to_owned(),
                problem: "the SHA-256 thread panicked".into(),
            })?;
            let pieces =
                piece_worker
                    .map(|w| w.join())
                    .transpose()
                    .map_err(|_| PublishError::Asset {
                        path: source.to_owned(),
                        problem: "the SHA-1 thread panicked".into(),
                    })?;
            read_result?;
            Ok(Digests {
                length,
                sha256,
                pieces,
                midstates: piece_length.map(|_| midstates),
            })
        })?
    };
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::Sha1;
    use sha2::{Digest as _, Sha256};
    use swarmdrop_manifest::midstates::Midstates;

    fn check(len: usize, piece: u32) {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let src = dir.path().join("in");
        fs::write(&src, &data).unwrap();
        let copy = dir.path().join("out");
        let seen = std::sync::atomic::AtomicU64::new(0);
        let d = digest_file(&src, Some(piece), Some(&copy), &|n| {
            seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(d.length, len as u64);
        assert_eq!(seen.into_inner(), len as u64);
        assert_eq!(d.sha256.to_vec(), Sha256::digest(&data).to_vec());
        let expected: Vec<[u8; 20]> = data
            .chunks(piece as usize)
            .map(|c| Sha1::digest(c).into())
            .collect();
        assert_eq!(d.pieces.unwrap(), expected);
        let midstates =
            Midstates::from_hex(d.midstates.as_deref().unwrap(), piece, len as u64, d.sha256)
                .unwrap();
        for (index, bytes) in data.chunks(piece as usize).enumerate() {
            assert!(
                midstates.check(index as u64, bytes),
                "piece {index} of {len}"
            );
        }
        assert_eq!(fs::read(&copy).unwrap(), data);
    }

    #[test]
    fn small_and_threaded_paths_agree_with_direct_hashes() {
        check(0, 16384);
        check(1000, 16384);
        check(CHUNK, 16384);
        check(CHUNK * 3 + 12345, 65536);
        check(CHUNK * 2 + 1, 1 << 20);
    }

    #[test]
    fn missing_file_is_named() {
        let err =
            digest_file(Path::new("/nonexistent/asset.bin"), None, None, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/asset.bin"), "{err}");
    }
}
