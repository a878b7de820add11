//! Steering torrents from outside: the hybrid client's scheduler decides which pieces the
//! peers are asked for (and by when), hands over pieces it fetched over HTTP and checked,
//! and hears which pieces verified and which pieces the connected peers hold.

use std::sync::mpsc as std_mpsc;

use bytes::Bytes;

use super::connection::Inbox;
use super::{DriverError, RunSummary};

/// Orders for one torrent's controller.
#[derive(Debug)]
pub(crate) enum Steer {
    Want(u32, Option<u64>),
    Unwant(u32),
    Elsewhere(u32),
    Verified(u32, Bytes),
    Stop,
}

/// What a steered torrent reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SwarmEvent {
    /// Piece `index` is verified and written (from peers, or handed over).
    Verified {
        /// The torrent.
        info_hash: [u8; 20],
        /// The piece.
        index: u32,
    },
    /// The pieces some connected peer holds changed.
    Available {
        /// The torrent.
        info_hash: [u8; 20],
        /// One flag per piece.
        pieces: Vec<bool>,
    },
    /// How far the connected peers still downloading have got. Sent when their number
    /// changes or their mean moves by a tenth of a percent.
    LeechersProgress {
        /// The torrent.
        info_hash: [u8; 20],
        /// The mean share of the pieces each holds, from 0 to 1 (`None`: no such peer).
        mean: Option<f64>,
        /// How many they are.
        leechers: u32,
    },
    /// A piece failed its hash (it is asked for again; its senders are suspects until a
    /// good copy shows who lied).
    HashFailed {
        /// The torrent.
        info_hash: [u8; 20],
        /// The piece.
        index: u32,
    },
    /// A peer was banned for corrupt data.
    Banned {
        /// The torrent.
        info_hash: [u8; 20],
    },
}

/// Steers one running torrent. Orders to a torrent that has stopped are dropped.
#[derive(Debug, Clone)]
pub struct TorrentHandle {
    /// The torrent.
    pub info_hash: [u8; 20],
    pub(crate) inbox: std_mpsc::Sender<Inbox>,
}

impl TorrentHandle {
    fn send(&self, order: Steer) {
        let _ = self.inbox.send(Inbox::Steer(order));
    }

    /// Ask peers for piece `index`, by `deadline` (the caller's milliseconds).
    pub fn want(&self, index: u32, deadline: Option<u64>) {
        self.send(Steer::Want(index, deadline));
    }

    /// Stop asking peers for piece `index`.
    pub fn unwant(&self, index: u32) {
        self.send(Steer::Unwant(index));
    }

    /// Another path is fetching piece `index` as well: peers are not asked for it unless
    /// they have already started it (see `Torrent::fetching_elsewhere`). A later
    /// [`TorrentHandle::want`] asks them again.
    pub fn fetching_elsewhere(&self, index: u32) {
        self.send(Steer::Elsewhere(index));
    }

    /// Piece `index` arrived by another path and was checked against its hash: write it,
    /// announce it, serve it.
    pub fn verified_elsewhere(&self, index: u32, bytes: Bytes) {
        self.send(Steer::Verified(index, bytes));
    }

    /// Stop this torrent (its connections close; the run's summary follows).
    pub fn stop(&self) {
        self.send(Steer::Stop);
    }
}

/// Torrents started by [`super::start_all`].
#[derive(Debug)]
pub struct Swarm {
    /// One per job, in order.
    pub handles: Vec<TorrentHandle>,
    pub(crate) controllers: Vec<tokio::task::JoinHandle<RunSummary>>,
}

impl Swarm {
    /// Waits for every torrent to finish; summaries in job order.
    pub async fn wait(self) -> Result<Vec<RunSummary>, DriverError> {
        let mut summaries = Vec::new();
        for controller in self.controllers {
            summaries.push(
                controller
                    .await
                    .map_err(|e| DriverError(format!("the controller stopped: {e}")))?,
            );
        }
        Ok(summaries)
    }
}
