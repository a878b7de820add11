//! BEP 15 datagrams: any bytes parse or fail without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmdrop_tracker::proto::udp::{parse_request, UdpRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(UdpRequest::Scrape { info_hashes, .. }) = parse_request(data) {
        assert!(
            !info_hashes.is_empty()
                && info_hashes.len() <= swarmdrop_tracker::proto::udp::MAX_SCRAPE_HASHES
        );
    }
});
