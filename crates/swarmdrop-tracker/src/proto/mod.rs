//! The tracker's protocol and swarm logic, without IO.

pub mod connection;
pub mod http;
pub mod swarm;
pub mod udp;
