//! A single-file torrent's data on disk, read and written with positioned IO (no shared
//! file offset, nothing read whole), re-checked piece by piece to resume.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use bytes::Bytes;
use sha1::{Digest as _, Sha1};
use swarmdrop_wire::codec::BlockRef;
use swarmdrop_wire::torrent::Store;
use swarmdrop_wire::Bitfield;

/// The file behind a single-file torrent.
#[derive(Debug)]
pub struct FileStore {
    file: File,
    piece_length: u32,
    length: u64,
    /// The last piece read whole, to serve its blocks without a read each (peers ask for
    /// a piece's blocks in a row).
    cached: Option<(u32, Bytes)>,
    /// Created empty by this open: nothing to re-check.
    fresh: bool,
    buffer: bytes::BytesMut,
}

impl FileStore {
    /// Opens (or creates, sized to `length`) the file at `path`.
    pub fn open(
        path: &Path,
        length: u64,
        piece_length: u32,
        create: bool,
    ) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .truncate(false)
            .open(path)?;
        let existing = file.metadata()?.len();
        if create && existing != length {
            file.set_len(length)?;
        }
        Ok(Self {
            file,
            piece_length,
            length,
            cached: None,
            fresh: existing == 0,
            buffer: bytes::BytesMut::new(),
        })
    }

    fn offset(&self, index: u32, begin: u32) -> u64 {
        u64::from(index) * u64::from(self.piece_length) + u64::from(begin)
    }

    /// Hashes every piece on disk against `hashes`: what is already there and good.
    pub fn recheck(&mut self, hashes: &[[u8; 20]]) -> Bitfield {
        let mut have = Bitfield::empty(hashes.len() as u32);
        // A file this open created holds only zeros: reading it back would only hash them.
        if self.fresh && self.length > 0 {
            return have;
        }
        for (index, want) in hashes.iter().enumerate() {
            let index = index as u32;
            let start = self.offset(index, 0);
            let length =
                (self.length.saturating_sub(start)).min(u64::from(self.piece_length)) as u32;
            if let Some(bytes) = self.piece(index, length) {
                if <[u8; 20]>::from(Sha1::digest(&bytes)) == *want {
                    have.set(index);
                }
            }
        }
        have
    }
}

impl Store for FileStore {
    fn read(&mut self, block: BlockRef) -> Option<Bytes> {
        if self.cached.as_ref().map(|(index, _)| *index) != Some(block.index) {
            let start = self.offset(block.index, 0);
            let size = (self.length.saturating_sub(start)).min(u64::from(self.piece_length));
            // Reuse one buffer: blocks handed out are copied into the send buffer at once,
            // so by the next piece the old one is unshared and `reserve` takes it back
            // (fresh pages for every piece made the kernel zero a page per 4 KiB served).
            self.cached = None;
            self.buffer.clear();
            self.buffer.resize(usize::try_from(size).ok()?, 0);
            self.file.read_exact_at(&mut self.buffer, start).ok()?;
            self.cached = Some((block.index, self.buffer.split().freeze()));
        }
        let (_, piece) = self.cached.as_ref()?;
        let start = block.begin as usize;
        let end = start.checked_add(block.length as usize)?;
        (end <= piece.len()).then(|| piece.slice(start..end))
    }

    fn write(&mut self, block: BlockRef, data: &[u8]) {
        self.fresh = false;
        if self
            .cached
            .as_ref()
            .is_some_and(|(index, _)| *index == block.index)
        {
            self.cached = None;
        }
        // A failed write shows up as a failed piece hash, and the piece is fetched again.
        let _ = self
            .file
            .write_all_at(data, self.offset(block.index, block.begin));
    }

    fn piece(&mut self, index: u32, length: u32) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; length as usize];
        self.file
            .read_exact_at(&mut buf, self.offset(index, 0))
            .ok()?;
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_recheck_finds_good_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asset");
        let piece = 32 * 1024u32;
        let content: Vec<u8> = (0..(piece * 2 + 100)).map(|i| (i % 251) as u8).collect();
        let hashes: Vec<[u8; 20]> = content
            .chunks(piece as usize)
            .map(|c| <[u8; 20]>::from(Sha1::digest(c)))
            .collect();
        let mut store = FileStore::open(&path, content.len() as u64, piece, true).unwrap();
        assert_eq!(store.recheck(&hashes).count(), 0);
        // Write piece 0 and the short last piece, block by block.
        for (index, range) in [
            (0u32, 0..piece as usize),
            (2, (2 * piece) as usize..content.len()),
        ] {
            for (n, chunk) in content[range].chunks(16 * 1024).enumerate() {
                let block = BlockRef {
                    index,
                    begin: n as u32 * 16 * 1024,
                    length: chunk.len() as u32,
                };
                store.write(block, chunk);
            }
        }
        let have = store.recheck(&hashes);
        assert!(have.has(0) && !have.has(1) && have.has(2));
        let block = BlockRef {
            index: 2,
            begin: 0,
            length: 100,
        };
        assert_eq!(
            &store.read(block).unwrap()[..],
            &content[(2 * piece) as usize..]
        );
        // Reopening resumes from what is on disk.
        let mut again = FileStore::open(&path, content.len() as u64, piece, true).unwrap();
        assert_eq!(again.recheck(&hashes), have);
    }
}
