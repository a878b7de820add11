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
use swarmdrop_manifest::tuf::updater::{Request, Updater, UpdaterConfig};

pub use download::{download, Downloaded};
pub use store::MetadataDir;

use crate::ClientError;

/// Runs the updater until it needs nothing more: kept copies from `store` (none without
/// one), remote files through `fetch(path, max_bytes)` (`Ok(None)`: the server says it
/// does not exist), and every newly trusted file written back to `store`.
pub async fn drive<F, Fut>(
    updater: &mut Updater,
    store: Option<&MetadataDir>,
    mut fetch: F,
) -> Result<(), ClientError>
where
    F: FnMut(String, usize) -> Fut,
    Fut: Future<Output = Result<Option<Bytes>, ClientError>>,
{
    while let Some(request) = updater.next() {
        let (what, bytes) = match &request {
            Request::Local {
                file, max_bytes, ..
            } => (
                file.clone(),
                store
                    .and_then(|s| s.read(file, *max_bytes))
                    .map(Bytes::from),
            ),
            Request::Forget { files } => {
                if let Some(store) = store {
                    store.forget(files)?;
                }
                (String::new(), None)
            }
            Request::Remote {
                path, max_bytes, ..
            } => (path.clone(), fetch(path.clone(), *max_bytes).await?),
        };
        let keep = updater
            .supply(bytes.as_deref())
            .map_err(|e| ClientError::Metadata(format!("{what}: {e}")))?;
        if let (Some(file), Some(store), Some(bytes)) = (keep, store, &bytes) {
            store.write(&file, bytes)?;
        }
    }
    Ok(())
}

/// `GET base/path`, at most `max_bytes`: the body, `None` for 403/404 (TUF's "not
/// there"), an error for anything else.
pub async fn fetch_metadata(
    base: &HttpUrl,
    path: &str,
    max_bytes: usize,
) -> Result<Option<Bytes>, ClientError> {
    let url = base.join(path);
    match get_bytes(
        &url,
        &[],
        max_bytes,
        Timeouts::default(),
        Duration::from_secs(30),
    )
    .await
    {
        Ok((status, body)) if status.is_success() => Ok(Some(body)),
        Ok((status, _)) if matches!(status.as_u16(), 403 | 404) => Ok(None),
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
                "{} has no root.json: run `tuf-client init` first",
                dir.path().display()
            ))
        })?;
    let mut updater = Updater::new(&root, crate::system_time()?, UpdaterConfig::default())
        .map_err(|e| ClientError::Metadata(format!("the trusted root.json: {e}")))?;
    let fetch = |path: String, max: usize| {
        let base = base.clone();
        async move { fetch_metadata(&base, &path, max).await }
    };
    drive(&mut updater, Some(dir), fetch).await?;
    Ok(updater)
}
