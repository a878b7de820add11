//! Identity at the edge, without IO.
//!
//! - [`siwe`] and [`eth`]: Sign-In with Ethereum (EIP-4361) parsing and checking,
//!   EIP-191 hashing, EIP-55 addresses, secp256k1 signer recovery.
//! - [`paseto`] and [`token`]: PASETO v4.public tokens, their claims, the issuer and the
//!   offline [`token::TokenVerifier`] that edges and the tracker run.
//! - [`gcra`], [`pow`] and [`trust`]: rate limits, proof-of-work challenges, and the
//!   per-request decision (allow, throttle, challenge, deny) with its reason.
//!
//! Every function takes the time (and randomness) from its caller; the gateway crate
//! owns sockets, clocks and state.
#![warn(missing_docs)]

pub mod eth;
pub mod gcra;
pub mod paseto;
pub mod pow;
pub mod siwe;
pub mod token;
pub mod trust;
