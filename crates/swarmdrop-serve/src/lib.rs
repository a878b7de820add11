//! `swarmdrop serve`: a publisher's one process. The origin HTTP server for a published
//! drop ([`origin`]), the BitTorrent tracker and the identity gateway, on one tokio
//! runtime with one config file ([`config`]), the gateway's state in the embedded
//! state file (`swarmdrop-state`), clients' quality reports beside the gateway
//! ([`qoe`]), and one graceful shutdown ([`run`]).
//! See docs/design/0007-serve.md.
#![warn(missing_docs)]

pub mod config;
pub mod origin;
pub mod qoe;
pub mod run;

pub use config::{default_config, ServeConfig};
pub use run::{run, signalled, ServeError};
