//! The TUF client workflow over HTTP: the shell around the sans-IO
//! [`Updater`](swarmdrop_manifest::tuf::updater::Updater).
//!
//! [`drive`] answers the updater's requests — kept copies from a [`MetadataDir`] (or
//! none), remote files through a fetch function — and keeps what it says to keep. `get`
//! drives it over its mirrors with no directory; [`refresh`] and [`download`] drive it over
//! one metadata URL with a directory, the way the TUF conformance suite's client
//! contract (and `swarmdrop tuf-client`) asks.

mod download;
mod store;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use swarmdrop_httpc::{get_bytes, FetchError, HttpUrl, Timeouts};
use swarmdrop_manifest::tuf::updater::{Request, Supplied, Updater, UpdaterConfig};

pub use download::{download, Downloaded};
pub use store::MetadataDir;

use crate::ClientError;

/// Where remote metadata comes from: one metadata URL, or several mirrors tried in
/// order.
pub trait MetadataSource {
    /// How many places may answer.
    fn places(&self) -> usize;
    /// A name for place `index`, for errors.
    fn label(&self, index: usize) -> String;
    /// `path` (already quoted, relative to the metadata URL) from place `index`, at most
    /// `max_bytes`; `Ok(None)` when the place says it does not exist.
    fn fetch(
        &self,
        index: usize,
        path: &str,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Option<Bytes>, ClientError>>;
}

/// One metadata URL (`tuf-client`).
#[derive(Debug, Clone)]
pub struct MetadataUrl(pub HttpUrl);

impl MetadataSource for MetadataUrl {
    fn places(&self) -> usize {
        1
    }

    fn label(&self, _: usize) -> String {
        self.0.to_string()
    }

    async fn fetch(
        &self,
        _: usize,
        path: &str,
        max_bytes: usize,
    ) -> Result<Option<Bytes>, ClientError> {
        fetch_metadata(&self.0, path, max_bytes, &[], Timeouts::default()).await
    }
}

/// Runs the updater until it needs nothing more: kept copies from `store` (none without
/// one), remote files from `source`, and what the updater says to forget and keep done
/// to `store`. A remote file is taken from the first place whose copy verifies, so one
/// lying or stale mirror costs a request, not the refresh.
pub async fn drive<S: MetadataSource>(
    updater: &mut Updater,
    store: Option<&MetadataDir>,
    source: &S,
) -> Result<(), ClientError> {
    while let Some(request) = updater.next() {
        match &request {
            Request::Local {
                file, max_bytes, ..
            } => {
                let bytes = store.and_then(|s| s.read(file, *max_bytes));
                let supplied = updater
                    .supply(bytes.as_deref())
                    .map_err(|e| ClientError::Metadata(format!("{file}: {e}")))?;
                apply(store, &supplied, bytes.as_deref().unwrap_or_default())?;
            }
            Request::Remote {
                path,
                max_bytes,
                missing_ok,
                ..
            } => remote(updater, store, source, path, *max_bytes, *missing_ok).await?,
        }
    }
    Ok(())
}

/// One remote file, from the first place whose copy the updater accepts.
async fn remote<S: MetadataSource>(
    updater: &mut Updater,
    store: Option<&MetadataDir>,
    source: &S,
    path: &str,
    max_bytes: usize,
    missing_ok: bool,
) -> Result<(), ClientError> {
    let mut problems = Vec::new();
    let mut missing = 0;
    for place in 0..source.places() {
        match source.fetch(place, path, max_bytes).await {
            Ok(Some(bytes)) => match updater.supply(Some(&bytes)) {
                Ok(supplied) => return apply(store, &supplied, &bytes),
                Err(e) => problems.push(format!("{}: {e}", source.label(place))),
            },
            Ok(None) => missing += 1,
            Err(e) => problems.push(format!("{}: {e}", source.label(place))),
        }
    }
    if missing > 0 && (missing_ok || problems.is_empty()) {
        // Someone says it does not exist and nobody had a copy that verified: for the
        // next root that is the answer; for anything else the updater names it.
        let supplied = updater
            .supply(None)
            .map_err(|e| ClientError::Metadata(e.to_string()))?;
        return apply(store, &supplied, &[]);
    }
    Err(ClientError::Metadata(format!(
        "{path}: {}",
        problems.join("; ")
    )))
}

/// Does what the updater said: forget first, then keep.
fn apply(
    store: Option<&MetadataDir>,
    supplied: &Supplied,
    bytes: &[u8],
) -> Result<(), ClientError> {
    let Some(store) = store else {
        return Ok(());
    };
    store.forget(&supplied.forget)?;
    if let Some(file) = &supplied.keep {
        store.write(file, bytes)?;
    }
    Ok(())
}

/// `GET base/path`, at most `max_bytes`: the body, `None` for 403/404/410 (TUF's "not
/// there"), an error for anything else.
pub async fn fetch_metadata(
    base: &HttpUrl,
    path: &str,
    max_bytes: usize,
    headers: &[(&str, &str)],
    timeouts: Timeouts,
) -> Result<Option<Bytes>, ClientError> {
    let url = base.join(path);
    match get_bytes(&url, headers, max_bytes, timeouts, Duration::from_secs(30)).await {
        Ok((status, body)) if status.is_success() => Ok(Some(body)),
        Ok((status, _)) if matches!(status.as_u16(), 403 | 404 | 410) => Ok(None),
        Ok((status, _)) => Err(ClientError::Unreachable {
            what: url.to_string(),
            problems: format!("HTTP {status}"),
        }),
        Err(FetchError::TooLarge { url, limit }) => Err(ClientError::Metadata(format!(
            "{url} is larger than the {limit} bytes accepted for it"
        ))),
        Err(e) => Err(ClientError::Unreachable {
            what: url.to_string(),
            problems: e.to_string(),
        }),
    }
}

/// A metadata URL with a trailing slash, checked.
pub(crate) fn base_url(text: &str) -> Result<HttpUrl, ClientError> {
    HttpUrl::parse(text).map_err(|e| ClientError::Usage(format!("metadata URL: {e}")))
}

/// Refreshes the trusted metadata in `dir` from `metadata_url`: the client workflow of
/// the TUF specification (5.3–5.6), every newly trusted file kept in `dir` under its
/// unversioned name.
pub async fn refresh(dir: &MetadataDir, metadata_url: &str) -> Result<Updater, ClientError> {
    let base = base_url(metadata_url)?;
    let root = dir
        .read("root.json", UpdaterConfig::default().root_max_bytes)
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "{} has no readable root.json of at most {} bytes: run `tuf-client init` first",
                dir.path().display(),
                UpdaterConfig::default().root_max_bytes
            ))
        })?;
    let mut updater = Updater::new(&root, crate::system_time()?, UpdaterConfig::default())
        .map_err(|e| ClientError::Metadata(format!("the trusted root.json: {e}")))?;
    drive(&mut updater, Some(dir), &MetadataUrl(base)).await?;
    Ok(updater)
}
