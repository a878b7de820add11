//! `Range: bytes=…` as RFC 9110 (§14) has it, for one representation of known length.
//!
//! One satisfiable range gets 206 with that range; a range that starts past the end (or a
//! zero-length suffix) gets 416; anything invalid, a unit other than `bytes`, or several
//! ranges, is ignored and the whole representation sent (§14.2 lets a server ignore
//! `Range`; ignoring many ranges also spares us multipart bodies that a hostile client
//! could use to multiply its answer).

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200, the whole representation.
    Full,
    /// 206, bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// Longest `Range` value looked at; longer ones are ignored.
pub const MAX_RANGE_HEADER: usize = 4096;

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The answer to `header` (the raw `Range` value, if any) for `len` bytes.
pub fn answer(header: Option<&[u8]>, len: u64) -> RangeAnswer {
    let Some(header) = header else {
        return RangeAnswer::Full;
    };
    if header.len() > MAX_RANGE_HEADER {
        return RangeAnswer::Full;
    }
    let Ok(text) = std::str::from_utf8(header) else {
        return RangeAnswer::Full;
    };
    let Some(set) = text.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeAnswer::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last N bytes.
        let Some(suffix) = number(last) else {
            return RangeAnswer::Full;
        };
        if suffix == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: len.saturating_sub(suffix),
            end: len - 1,
        };
    }
    let Some(start) = number(first) else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.map_or(len - 1, |end| end.min(len - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(header: &str, len: u64) -> RangeAnswer {
        answer(Some(header.as_bytes()), len)
    }

    #[test]
    fn the_rfc_cases() {
        use RangeAnswer::*;
        let p = |start, end| Partial { start, end };
        assert_eq!(answer(None, 10), Full);
        assert_eq!(a("bytes=0-99", 1000), p(0, 99));
        assert_eq!(a("bytes=500-", 1000), p(500, 999));
        assert_eq!(a("bytes=-10", 1000), p(990, 999));
        assert_eq!(a("bytes=-5000", 1000), p(0, 999));
        assert_eq!(a("bytes=0-99999", 1000), p(0, 999));
        assert_eq!(a(" bytes=1-2 ", 1000), p(1, 2));
        assert_eq!(a("bytes=1-2,", 1000), p(1, 2));
        assert_eq!(a("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(a("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(a("bytes=0-", 0), Unsatisfiable);
        // Ignored: reversed, overflowing, garbage, other units, several ranges.
        for ignored in [
            "bytes=5-1",
            "bytes=0-99999999999999999999999",
            "bytes=99999999999999999999999-",
            "bytes=a-b",
            "bytes=--1",
            "bytes=+1-2",
            "items=0-1",
            "bytes=0-1,2-3",
            "bytes=",
            "bytes=-",
            "",
        ] {
            assert_eq!(a(ignored, 1000), Full, "{ignored:?}");
        }
        let many = format!("bytes={}", vec!["0-0"; 1000].join(","));
        assert_eq!(a(&many, 1000), Full);
    }

    proptest! {
        /// Whatever the header, a partial answer lies inside the representation.
        #[test]
        fn partial_answers_stay_inside(header in proptest::collection::vec(any::<u8>(), 0..64), len in 0u64..10_000) {
            if let RangeAnswer::Partial { start, end } = answer(Some(&header), len) {
                prop_assert!(start <= end && end < len);
            }
        }

        #[test]
        fn well_formed_ranges_are_honoured(start in 0u64..2000, span in 0u64..2000, len in 1u64..2000) {
            let got = a(&format!("bytes={start}-{}", start + span), len);
            if start >= len {
                prop_assert_eq!(got, RangeAnswer::Unsatisfiable);
            } else {
                prop_assert_eq!(got, RangeAnswer::Partial { start, end: (start + span).min(len - 1) });
            }
        }
    }
}
