//! `demo --liar`: a lying edge and a lying peer, to show what verification is for.
//!
//! The lying edge answers like any edge (HTTP, ranges, honest signed metadata, so it looks
//! healthy and fast) but flips a byte in every 4 KiB of every asset it sends. The lying
//! peer is a real `swarmdrop seed` of a copy of the published drop whose asset files are
//! damaged on disk after it has verified them and started listening: it announces to
//! the tracker and serves pieces that fail their hash, as a peer with a bad disk or bad
//! intent would. Nothing in the viewers knows which is which.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use swarmdrop_edge::proto::range::{self, RangeAnswer};

/// One byte in this many is flipped.
const EVERY: u64 = 4096;

/// Flips the bytes of `data` (which starts at `offset` in its file) that fall on
/// multiples of [`EVERY`], so every range of a file lies the same way.
fn corrupt(data: &mut [u8], offset: u64) {
    let first = offset.next_multiple_of(EVERY) - offset;
    for k in (first..data.len() as u64).step_by(EVERY as usize) {
        data[k as usize] ^= 0x5a;
    }
}

fn status(code: StatusCode, why: &str) -> Response {
    (code, why.to_owned()).into_response()
}

async fn serve(State(root): State<Arc<PathBuf>>, uri: Uri, headers: HeaderMap) -> Response {
    let relative = uri.path().trim_start_matches('/').to_owned();
    if relative
        .split('/')
        .any(|part| part.is_empty() || part.starts_with('.'))
    {
        return status(StatusCode::NOT_FOUND, "no such file");
    }
    let path = root.join(&relative);
    let lies = relative.starts_with("targets/");
    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Response>> {
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let length = file.metadata()?.len();
        // The edge's own parser: the liar answers ranges exactly as an edge would.
        let wanted = match range::answer(headers.get(header::RANGE).map(|v| v.as_bytes()), length) {
            RangeAnswer::Full => None,
            RangeAnswer::Partial { start, end } => Some((start, end - start + 1)),
            RangeAnswer::Unsatisfiable => {
                return Ok(Some(status(StatusCode::RANGE_NOT_SATISFIABLE, "bad range")))
            }
        };
        let (offset, count) = wanted.unwrap_or((0, length));
        file.seek(SeekFrom::Start(offset))?;
        let mut data = vec![0u8; usize::try_from(count).unwrap_or(0)];
        file.read_exact(&mut data)?;
        if lies {
            corrupt(&mut data, offset);
        }
        let mut response = Response::new(Body::from(data));
        if wanted.is_some() {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(value) = format!("bytes {}-{}/{length}", offset, offset + count - 1).parse() {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
        }
        Ok(Some(response))
    })
    .await;
    match answer {
        Ok(Ok(Some(response))) => response,
        Ok(Ok(None)) => status(StatusCode::NOT_FOUND, "no such file"),
        Ok(Err(e)) => status(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => status(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Starts the lying edge on `ip`, serving `published`.
pub(crate) async fn start_edge(ip: &str, published: PathBuf) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .with_context(|| format!("binding the lying edge on {ip}"))?;
    let addr = listener.local_addr().context("the lying edge's address")?;
    let app = axum::Router::new()
        .fallback(serve)
        .with_state(Arc::new(published));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Copies the published drop (real copies, never links: the damage must not reach the
/// honest seeders' files) for the lying peer.
pub(crate) fn copy_published(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| to.display().to_string())?;
    for entry in std::fs::read_dir(from).with_context(|| from.display().to_string())? {
        let entry = entry.with_context(|| from.display().to_string())?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_published(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Damages every asset file under `published/targets` in place, the way
/// [`corrupt`] damages what the lying edge sends.
pub(crate) fn damage_targets(published: &Path) -> anyhow::Result<u64> {
    let mut damaged = 0;
    for path in files_under(&published.join("targets"))? {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| path.display().to_string())?;
        let length = file.metadata()?.len();
        let mut byte = [0u8; 1];
        for offset in (0..length).step_by(EVERY as usize) {
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut byte)?;
            byte[0] ^= 0x5a;
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(&byte)?;
            damaged += 1;
        }
    }
    Ok(damaged)
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let entry = entry.with_context(|| dir.display().to_string())?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// Bytes of each viewer's files that differ from the drop's own (a missing or short file
/// counts every byte it lacks): what verification let through, which must be zero.
pub(crate) fn corrupted_bytes(drop_dir: &Path, viewer_dir: &Path) -> anyhow::Result<u64> {
    let mut differing = 0u64;
    for path in files_under(drop_dir)? {
        let relative = path.strip_prefix(drop_dir).unwrap_or(&path);
        let expected = std::fs::read(&path).with_context(|| path.display().to_string())?;
        let got = std::fs::read(viewer_dir.join(relative)).unwrap_or_default();
        differing += expected.iter().zip(&got).filter(|(a, b)| a != b).count() as u64;
        differing += expected.len().abs_diff(got.len()) as u64;
    }
    Ok(differing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_lies_the_same_way() {
        let clean: Vec<u8> = (0..20_000u32).map(|k| (k % 251) as u8).collect();
        let mut whole = clean.clone();
        corrupt(&mut whole, 0);
        for (offset, length) in [(0, 10), (4095, 3), (5000, 9000), (8192, 1)] {
            let mut part = clean[offset..offset + length].to_vec();
            corrupt(&mut part, offset as u64);
            assert_eq!(part, whole[offset..offset + length]);
        }
        let flipped = clean.iter().zip(&whole).filter(|(a, b)| a != b).count();
        assert_eq!(flipped, 20_000usize.div_ceil(4096));
    }
}
