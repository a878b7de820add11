//! Starting the three services on one runtime, and stopping them together. Clients'
//! quality reports ([`crate::qoe`]) are served on the gateway's listener.
//!
//! Everything that can fail does so before anything listens: the published directory
//! is checked, the state file opened, the gateway built (keys read), then every
//! listener bound. Only then is each address reported, so a script that waits for the
//! `listening …` lines knows every service accepts. On shutdown each listener stops
//! accepting at once, requests in flight get `drain_timeout` to finish, and the state
//! file is closed last (its WAL checkpointed into the main file), after the gateway, its
//! only writer, has stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use swarmdrop_gateway::store::IdentityStore;
use swarmdrop_gateway::Gateway;
use swarmdrop_state::{Limits, StateFile};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::ServeConfig;
use crate::origin::{self, Origin};
use crate::qoe::{self, metrics::QoeMetrics, QoeService};

/// Why serve stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The published directory cannot be served.
    #[error("origin: {0}")]
    Origin(#[from] origin::OriginError),
    /// The state file cannot be opened or closed.
    #[error(transparent)]
    State(#[from] swarmdrop_state::StateError),
    /// The gateway cannot start (a key file, say).
    #[error("gateway: {0}")]
    Gateway(#[from] swarmdrop_gateway::GatewayError),
    /// A listener cannot be bound.
    #[error("{service}: binding {addr}: {source}")]
    Bind {
        /// Which service.
        service: &'static str,
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A service failed while running.
    #[error("{service}: {detail}")]
    Service {
        /// Which service.
        service: &'static str,
        /// What happened.
        detail: String,
    },
}

/// The info hashes of the torrents pack wrote (`torrents/<40 hex>.<16 hex>.torrent`):
/// the name carries it, so nothing needs parsing. Anything else there is skipped.
pub fn published_infohashes(published: &std::path::Path) -> std::io::Result<Vec<String>> {
    let dir = published.join("torrents");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut hashes = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let resource = crate::origin::paths::map(&format!("/torrents/{name}"));
        if matches!(resource, Ok(r) if r.kind == crate::origin::paths::Kind::HashedTorrent) {
            if let Some(hash) = name.get(..40) {
                hashes.push(hash.to_ascii_lowercase());
            }
        }
    }
    hashes.sort();
    hashes.dedup();
    Ok(hashes)
}

/// The in-process gateway's revocation list, as the tracker reaches it: over loopback
/// when the gateway listens on every address.
fn revocations_url(gateway: SocketAddr) -> String {
    let mut reach = gateway;
    if reach.ip().is_unspecified() {
        reach.set_ip(match reach {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{reach}/auth/revocations")
}

async fn bind_tcp(
    service: &'static str,
    addr: &str,
) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            service,
            addr: addr.to_owned(),
            source,
        })
}

fn local(
    service: &'static str,
    addr: std::io::Result<SocketAddr>,
) -> Result<SocketAddr, ServeError> {
    addr.map_err(|e| ServeError::Service {
        service,
        detail: format!("reading the bound address: {e}"),
    })
}

/// Runs origin, tracker and gateway until `shutdown` completes (or one of them fails),
/// then drains and closes. `listening(service, addr)` is called once per listener when
/// all are bound: `origin`, `tracker-http`, `tracker-udp`, `gateway`.
pub async fn run(
    mut config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
    mut listening: impl FnMut(&'static str, SocketAddr),
) -> Result<(), ServeError> {
    config.validate()?;
    let origin = Arc::new(Origin::new(&config.published, &config.origin)?);
    if config.track_published {
        let hashes = published_infohashes(origin.root()).map_err(|e| ServeError::Service {
            service: "tracker",
            detail: format!("listing {}/torrents: {e}", origin.root().display()),
        })?;
        config.tracker.known_infohashes.extend(hashes);
    }
    let limits = Limits {
        max_pending: config.gateway.max_pending,
        max_per_owner: config.gateway.max_pending_per_client,
    };
    let state_path = config.state.clone();
    let state = tokio::task::spawn_blocking(move || StateFile::open(&state_path, limits))
        .await
        .map_err(|e| ServeError::Service {
            service: "state",
            detail: e.to_string(),
        })??;
    let state = Arc::new(state);
    let gateway = if config.gateway.listen.is_empty() {
        None
    } else {
        let store: Arc<dyn IdentityStore> = state.clone();
        let mut gateway = Gateway::with_store(config.gateway.clone(), store)?;
        let metrics = config
            .qoe
            .enabled
            .then(|| Arc::new(QoeMetrics::new(config.qoe.max_classes)));
        if let Some(metrics) = metrics.clone() {
            gateway = gateway.with_metrics_hook(Arc::new(move |out| metrics.render(out)));
        }
        let gateway = Arc::new(gateway);
        let extra = match metrics {
            Some(metrics) => qoe::router(Arc::new(QoeService::new(
                gateway.clone(),
                state.clone(),
                metrics,
                config.qoe.clone(),
            ))),
            None => axum::Router::new(),
        };
        Some((
            gateway,
            extra,
            bind_tcp("gateway", &config.gateway.listen).await?,
        ))
    };
    if let Some((_, _, listener)) = &gateway {
        // A private drop's tracker polls the revocation list; when it names none, it
        // polls the gateway beside it (whose port may have been picked only now).
        let private = &mut config.tracker.private;
        if !private.drop.is_empty() && private.revocations_url.is_empty() {
            private.revocations_url = revocations_url(local("gateway", listener.local_addr())?);
        }
    }
    let origin_listener = bind_tcp("origin", &config.origin.listen).await?;
    let tracker_listeners = swarmdrop_tracker::server::bind(&config.tracker)
        .await
        .map_err(|source| ServeError::Bind {
            service: "tracker",
            addr: format!(
                "http {:?}, udp {:?}",
                config.tracker.http, config.tracker.udp
            ),
            source,
        })?;

    listening("origin", local("origin", origin_listener.local_addr())?);
    if let Some(http) = &tracker_listeners.http {
        listening("tracker-http", local("tracker", http.local_addr())?);
    }
    if let Some(udp) = &tracker_listeners.udp {
        listening("tracker-udp", local("tracker", udp.local_addr())?);
    }
    if let Some((_, _, listener)) = &gateway {
        listening("gateway", local("gateway", listener.local_addr())?);
    }

    // One signal for every service: true once shutdown begins.
    let (stop, stopped) = watch::channel(false);
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut services: JoinSet<(&'static str, Result<(), String>)> = JoinSet::new();
    services.spawn({
        let (origin, stopping) = (origin.clone(), stopping());
        async move {
            let result = origin::serve(origin, origin_listener, stopping).await;
            ("origin", result.map_err(|e| e.to_string()))
        }
    });
    if tracker_listeners.http.is_some() || tracker_listeners.udp.is_some() {
        let (tracker, stopping) = (config.tracker.clone(), stopping());
        services.spawn(async move {
            let result =
                swarmdrop_tracker::server::run_until(tracker, tracker_listeners, stopping).await;
            ("tracker", result.map_err(|e| e.to_string()))
        });
    }
    if let Some((gateway, extra, listener)) = gateway {
        let stopping = stopping();
        services.spawn(async move {
            let result = swarmdrop_gateway::serve_with(gateway, extra, listener, stopping).await;
            ("gateway", result.map_err(|e| e.to_string()))
        });
    }

    // Until the signal, or until a service stops by itself (which is a failure).
    let mut failure = None;
    tokio::select! {
        () = shutdown => {}
        Some(ended) = services.join_next() => {
            failure = Some(match ended {
                Ok((service, Err(detail))) => ServeError::Service { service, detail },
                Ok((service, Ok(()))) => ServeError::Service { service, detail: "stopped unexpectedly".into() },
                Err(e) => ServeError::Service { service: "serve", detail: e.to_string() },
            });
        }
    }
    let _ = stop.send(true);
    let drained = tokio::time::timeout(config.drain_timeout, async {
        while let Some(ended) = services.join_next().await {
            if let Ok((service, Err(detail))) = ended {
                eprintln!("warning: {service} while stopping: {detail}");
            }
        }
    })
    .await;
    if drained.is_err() {
        eprintln!(
            "warning: requests still in flight after {:?}; stopping anyway",
            config.drain_timeout
        );
        services.shutdown().await;
    }
    let closing = state.clone();
    tokio::task::spawn_blocking(move || closing.close())
        .await
        .map_err(|e| ServeError::Service {
            service: "state",
            detail: e.to_string(),
        })??;
    failure.map_or(Ok(()), Err)
}

/// Completes on SIGINT or SIGTERM (SIGINT alone where SIGTERM cannot be watched).
pub async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_reaches_the_gateway_beside_it() {
        let url = |addr: &str| revocations_url(addr.parse().unwrap());
        assert_eq!(
            url("127.0.0.5:8780"),
            "http://127.0.0.5:8780/auth/revocations"
        );
        assert_eq!(
            url("0.0.0.0:8780"),
            "http://127.0.0.1:8780/auth/revocations"
        );
        assert_eq!(url("[::]:80"), "http://[::1]:80/auth/revocations");
    }

    #[test]
    fn torrent_names_give_their_info_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let torrents = dir.path().join("torrents");
        std::fs::create_dir(&torrents).unwrap();
        let hash = "12ffb61a6860ea72fe47be2e220736ad731a7b80";
        for name in [
            format!("{hash}.a440a20327a0d4bf.torrent"),
            format!("{}.a440a20327a0d4bf.torrent", hash.to_uppercase()),
            ".partial.torrent".into(),
            "notes.txt".into(),
            "x.torrent".into(),
        ] {
            std::fs::write(torrents.join(name), b"").unwrap();
        }
        assert_eq!(published_infohashes(dir.path()).unwrap(), vec![hash]);
        assert!(published_infohashes(&dir.path().join("none"))
            .unwrap()
            .is_empty());
    }
}
