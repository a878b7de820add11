//! HTTP announce and scrape queries: any bytes parse or fail without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_tracker::proto::http::{parse_announce, parse_scrape};

fuzz_target!(|data: &[u8]| {
    if let Ok(announce) = parse_announce(data) {
        assert_ne!(announce.port, 0);
    }
    let _ = parse_scrape(data);
});
