//! Lower bounds on the bulk asset's completion time (Kumar and Ross, "Peer-assisted file
//! distribution: the minimum distribution time", 2006), from the emulated rates.

/// The bound: max(F/u_s, N·F/(u_s + Σu_i)), seconds. (Viewers' downloads are not
/// capped, so the F/d_min term is zero.)
pub(crate) fn kumar_ross(file: f64, viewers: f64, server_upload: f64, viewers_upload: f64) -> f64 {
    (file / server_upload).max(viewers * file / (server_upload + viewers_upload))
}

/// The same bound when the servers must also send a scheduled load on the same uploads:
/// `load` bytes a second that only they may carry (the keyframes, whose class does not
/// allow peers), for the first `load_secs` seconds. In time T the servers must send one
/// copy of the file and the load, and everyone together the N copies and the load:
/// u_s·T ≥ F + L(T) and (u_s + Σu_i)·T ≥ N·F + L(T), with L(T) = load·min(T, load_secs).
pub(crate) fn with_server_load(
    file: f64,
    viewers: f64,
    server_upload: f64,
    viewers_upload: f64,
    load: f64,
    load_secs: f64,
) -> f64 {
    let least_time = |need: f64, rate: f64| {
        // While the load lasts it takes `load` of `rate`; after, nothing.
        let during = if rate > load {
            need / (rate - load)
        } else {
            f64::INFINITY
        };
        if during <= load_secs {
            during
        } else {
            (need + load * load_secs) / rate
        }
    };
    least_time(file, server_upload).max(least_time(viewers * file, server_upload + viewers_upload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: f64 = 1048576.0;

    #[test]
    fn the_demo_defaults() {
        // 50 viewers, 64 MiB; origin 8 + edges 2×64 + seeders 2×8 MiB/s; viewers 2 MiB/s.
        let plain = kumar_ross(64.0 * MIB, 50.0, 152.0 * MIB, 100.0 * MIB);
        assert!((plain - 12.698).abs() < 0.01, "{plain}");
        // Keyframes: 50 viewers × 200 KiB every 250 ms = 39.06 MiB/s for 30 s.
        let load = 50.0 * 200.0 * 1024.0 / 0.25;
        let loaded = with_server_load(64.0 * MIB, 50.0, 152.0 * MIB, 100.0 * MIB, load, 30.0);
        assert!(
            (loaded - 3200.0 / (252.0 - 39.0625)).abs() < 0.01,
            "{loaded}"
        );
    }

    #[test]
    fn a_load_that_ends_first_counts_only_while_it_lasts() {
        // 100 B/s in all, a load of 50 B/s for 1 s, 1000 bytes to send: 10.5 s.
        let t = with_server_load(1000.0, 1.0, 100.0, 0.0, 50.0, 1.0);
        assert!((t - 10.5).abs() < 1e-9, "{t}");
    }

    proptest! {
        #[test]
        fn a_load_only_ever_lengthens_the_bound(
            file in 1.0f64..1e9, viewers in 1.0f64..1000.0, server in 1.0f64..1e9,
            peers in 0.0f64..1e9, load in 0.0f64..1e9, secs in 0.0f64..1000.0,
        ) {
            let plain = kumar_ross(file, viewers, server, peers);
            let loaded = with_server_load(file, viewers, server, peers, load, secs);
            prop_assert!(loaded >= plain * (1.0 - 1e-9), "{} < {}", loaded, plain);
            prop_assert!(loaded.is_finite());
            let none = with_server_load(file, viewers, server, peers, 0.0, secs);
            prop_assert!((none - plain).abs() <= plain * 1e-9);
        }
    }
}
