//! The edge shared by every request: config, index, tiers, fills, metrics, events.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use swarmdrop_httpc::HttpUrl;
use swarmdrop_identity::token::{Tier, TokenRejection, TokenVerifier};
use swarmdrop_manifest::keys::PublicKey;
use swarmdrop_manifest::model::percent_encode;
use swarmdrop_manifest::UtcTime;
use tokio::sync::broadcast;

use crate::config::{Durations, EdgeConfig};
use crate::fill::Fill;
use crate::index::Index;
use crate::metrics::{Gauges, Metrics};
use crate::tiers::{Digest, Tiers};

/// A typed record of a decision or failure, for hooks and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeEvent {
    /// `fill`, `verification_failed`, `origin_failed`, `refused`, `stale_served`,
    /// `prewarm`, `purge`, `metadata`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When.
    pub at: UtcTime,
    /// The object (a drop path or a file under `metadata/` or `torrents/`), if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub object: String,
    /// Its class, if known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// Reason code or summary.
    pub detail: String,
}

/// An edge that cannot start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EdgeError(pub String);

/// A refused request: HTTP status, stable code, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable detail.
    pub detail: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }
}

/// The shared edge.
pub struct Edge {
    /// The config.
    pub config: EdgeConfig,
    /// Its durations.
    pub durations: Durations,
    /// The origin's base URL.
    pub origin: HttpUrl,
    /// The tiers.
    pub tiers: Tiers,
    /// The cache directory.
    pub dir: PathBuf,
    pub(crate) index: RwLock<Option<Arc<Index>>>,
    pub(crate) index_checked: Mutex<Option<Instant>>,
    pub(crate) refreshing: tokio::sync::Mutex<()>,
    pub(crate) refresh_pending: std::sync::atomic::AtomicBool,
    pub(crate) last_failure: Mutex<Option<(Instant, Refusal)>>,
    /// Root files trusted so far, oldest first (the first one is the trust anchor).
    pub(crate) roots: Mutex<Vec<Bytes>>,
    pub(crate) fills: Mutex<HashMap<Digest, Arc<Fill>>>,
    pub(crate) torrents: Mutex<HashMap<String, (Bytes, String)>>,
    pub(crate) torrent_fetch: tokio::sync::Mutex<()>,
    pub(crate) connection_slots: Arc<tokio::sync::Semaphore>,
    /// Upload pacing by urgency, started on first use (it needs the runtime).
    pacer: std::sync::OnceLock<Arc<crate::pacing::Paced>>,
    viewer_verifier: Option<TokenVerifier>,
    admin_verifier: TokenVerifier,
    /// Counters.
    pub metrics: Metrics,
    events: broadcast::Sender<EdgeEvent>,
    event_log: Option<Mutex<std::fs::File>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `Authorization: Bearer <token>`, if present.
pub fn bearer(value: Option<&str>) -> Option<&str> {
    value?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl Edge {
    /// An edge for `config`: reads gateway keys, prepares the cache directory and
    /// re-admits what a previous run left there.
    pub fn new(config: EdgeConfig) -> Result<Self, EdgeError> {
        let durations = config.durations().map_err(EdgeError)?;
        if config.origin.is_empty() {
            return Err(EdgeError(
                "no origin: give --origin http://HOST:PORT/ (the published directory's base URL)"
                    .into(),
            ));
        }
        let origin =
            HttpUrl::parse(&config.origin).map_err(|e| EdgeError(format!("origin: {e}")))?;
        if config.cache_dir.as_os_str().is_empty() {
            return Err(EdgeError("no cache directory: give --cache-dir DIR".into()));
        }
        let dir = config.cache_dir.clone();
        for sub in ["objects", "metadata", "torrents"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| EdgeError(format!("{}: {e}", dir.join(sub).display())))?;
        }
        let mut keys = Vec::new();
        for path in &config.gateway_keys {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| EdgeError(format!("{}: {e}", path.display())))?;
            keys.push(
                PublicKey::from_spki_pem(&pem)
                    .map_err(|e| EdgeError(format!("{}: {e}", path.display())))?,
            );
        }
        let with_keys = |mut verifier: TokenVerifier| {
            for key in &keys {
                verifier = verifier.with_key(*key);
            }
            verifier.with_leeway(config.private.leeway)
        };
        let viewer_verifier = (!config.private.drop.is_empty())
            .then(|| with_keys(TokenVerifier::new().for_drop(&config.private.drop)));
        let admin_verifier = with_keys(TokenVerifier::new());
        let lifetime = durations.ttl + durations.stale_if_error;
        let tiers = Tiers::new(
            &dir.join("objects"),
            config.memory_bytes,
            config.disk_bytes,
            config.memory_object_max,
            lifetime,
        );
        tiers
            .readmit(lifetime)
            .map_err(|e| EdgeError(format!("{}: {e}", dir.join("objects").display())))?;
        let event_log = if config.events_log.as_os_str().is_empty() {
            None
        } else {
            Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&config.events_log)
                    .map_err(|e| EdgeError(format!("{}: {e}", config.events_log.display())))?,
            ))
        };
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            durations,
            origin,
            tiers,
            dir,
            index: RwLock::new(None),
            index_checked: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            refresh_pending: std::sync::atomic::AtomicBool::new(false),
            last_failure: Mutex::new(None),
            roots: Mutex::new(Vec::new()),
            fills: Mutex::new(HashMap::new()),
            torrents: Mutex::new(HashMap::new()),
            torrent_fetch: tokio::sync::Mutex::new(()),
            connection_slots: Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_connections.max(1),
            )),
            pacer: std::sync::OnceLock::new(),
            viewer_verifier,
            admin_verifier,
            metrics: Metrics::default(),
            events,
            event_log,
            config,
        })
    }

    /// The upload pacer, when `limits.upload_bytes_per_second` sets one. Call it from the
    /// runtime (the first call starts the pacer's task).
    pub fn pacer(&self) -> Option<&Arc<crate::pacing::Paced>> {
        let rate = self.config.limits.upload_bytes_per_second;
        (rate > 0).then(|| self.pacer.get_or_init(|| crate::pacing::Paced::start(rate)))
    }

    /// Now, as the TUF and token code want it.
    pub fn now(&self) -> UtcTime {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UtcTime::saturating_from_unix(i64::try_from(seconds).unwrap_or(i64::MAX))
    }

    /// The events stream.
    pub fn subscribe(&self) -> broadcast::Receiver<EdgeEvent> {
        self.events.subscribe()
    }

    /// Publishes an event (and appends it to the event log, if any).
    pub fn emit(&self, kind: &'static str, object: &str, class: &str, detail: impl Into<String>) {
        let event = EdgeEvent {
            kind,
            at: self.now(),
            object: object.to_owned(),
            class: class.to_owned(),
            detail: detail.into(),
        };
        // Refusals are counted on /metrics and published, but not logged one by one: a
        // client spraying bad requests must not fill the disk.
        if let Some(log) = self.event_log.as_ref().filter(|_| kind != "refused") {
            if let Ok(mut line) = serde_json::to_vec(&event) {
                line.push(b'\n');
                let _ = lock(log).write_all(&line);
            }
        }
        let _ = self.events.send(event);
    }

    /// Counts and publishes a refusal.
    pub fn refuse(&self, refusal: Refusal, object: &str, class: &str) -> Refusal {
        self.metrics.refusal(refusal.code);
        if refusal.status != 404 {
            self.emit("refused", object, class, refusal.code);
        }
        refusal
    }

    /// The viewer-token gate, before anything is looked up (so that strangers cannot
    /// learn what exists): open drops pass with no grants to check; private ones need a
    /// valid token, and its classes come back for [`Edge::admit_class`].
    pub fn admit_viewer(
        &self,
        token: Option<&str>,
        object: &str,
    ) -> Result<Option<Vec<String>>, Refusal> {
        let Some(verifier) = &self.viewer_verifier else {
            return Ok(None);
        };
        let Some(token) = token else {
            return Err(self.refuse(
                Refusal::new(
                    401,
                    "token_missing",
                    "this drop is private: send a gateway token as Authorization: Bearer, or in the path as /t/<token>/…",
                ),
                object,
                "",
            ));
        };
        verifier
            .verify(token, self.now(), None)
            .map(|claims| Some(claims.classes))
            .map_err(|e| {
                self.refuse(
                    Refusal::new(401, e.code(), format!("token refused: {e}")),
                    object,
                    "",
                )
            })
    }

    /// The class scope: a private drop's token must grant `class`.
    pub fn admit_class(
        &self,
        granted: Option<&[String]>,
        class: &str,
        object: &str,
    ) -> Result<(), Refusal> {
        match granted {
            Some(classes) if !class.is_empty() && !classes.iter().any(|c| c == class) => {
                let rejection = TokenRejection::ClassNotAllowed(class.to_owned());
                Err(self.refuse(
                    Refusal::new(403, rejection.code(), format!("token refused: {rejection}")),
                    object,
                    class,
                ))
            }
            _ => Ok(()),
        }
    }

    /// The admin gate: a service token carrying `admin.cap`.
    pub fn admit_admin(&self, token: Option<&str>) -> Result<String, Refusal> {
        let token = token.ok_or_else(|| {
            self.refuse(
                Refusal::new(
                    401,
                    "token_missing",
                    "send a gateway service token as Authorization: Bearer",
                ),
                "",
                "",
            )
        })?;
        let claims = self
            .admin_verifier
            .verify(token, self.now(), None)
            .map_err(|e| {
                self.refuse(
                    Refusal::new(401, e.code(), format!("token refused: {e}")),
                    "",
                    "",
                )
            })?;
        if claims.tier != Tier::Service || !claims.caps.contains(&self.config.admin.cap) {
            return Err(self.refuse(
                Refusal::new(
                    403,
                    "not_admin",
                    format!(
                        "admin calls need a service token with capability {:?}",
                        self.config.admin.cap
                    ),
                ),
                "",
                "",
            ));
        }
        Ok(claims.sub)
    }

    /// The current index, if any metadata has verified yet.
    pub fn current_index(&self) -> Option<Arc<Index>> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Gauges for /metrics and /admin/status.
    pub fn gauges(&self) -> Gauges {
        self.tiers.memory.run_pending_tasks();
        self.tiers.disk.run_pending_tasks();
        let evictions = &self.tiers.evictions;
        Gauges {
            memory_bytes: self.tiers.memory.weighted_size(),
            memory_entries: self.tiers.memory.entry_count(),
            disk_bytes: self.tiers.disk.weighted_size() * 1024,
            disk_entries: self.tiers.disk.entry_count(),
            memory_evictions: evictions.memory.load(std::sync::atomic::Ordering::Relaxed),
            disk_evictions: evictions.disk.load(std::sync::atomic::Ordering::Relaxed),
            fills: lock(&self.fills).len() as u64,
            targets_version: self.current_index().map_or(0, |i| i.versions[3]),
            paced: self.pacer.get().map(|p| p.totals()),
        }
    }

    pub(crate) fn lock_fills(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<Fill>>> {
        lock(&self.fills)
    }

    pub(crate) fn lock_torrents(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, String)>> {
        lock(&self.torrents)
    }

    pub(crate) fn lock_roots(&self) -> std::sync::MutexGuard<'_, Vec<Bytes>> {
        lock(&self.roots)
    }

    pub(crate) fn lock_last_failure(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<(Instant, Refusal)>> {
        lock(&self.last_failure)
    }

    pub(crate) fn lock_checked(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        lock(&self.index_checked)
    }

    /// The origin URL of `relative` (a path under the published root), each segment
    /// percent-encoded (drop paths may hold spaces, `?`, `#` or non-ASCII).
    pub fn origin_url(&self, relative: &str) -> HttpUrl {
        self.origin.join(&percent_encode(relative, b"/"))
    }
}
