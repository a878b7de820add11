//! How busy the machine's CPUs were over an interval, from Linux's `/proc/stat` (parsed
//! and compared without I/O; only [`CpuTimes::now`] reads the file): a run
//! that saturates the CPUs measures the machine, not the protocol, and a report should
//! say so next to its ratios.

use std::time::Duration;

/// The machine's cumulative CPU time, all CPUs together, in the kernel's clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Ticks doing anything: user, nice, system, irq, softirq and steal.
    pub busy: u64,
    /// Ticks taken by the hypervisor for other guests while this one had work.
    pub steal: u64,
    /// Every tick, idle and waiting on I/O included.
    pub total: u64,
}

/// Why `/proc/stat` gave no CPU times.
#[derive(Debug, thiserror::Error)]
pub enum ProcStatError {
    /// The file could not be read (not Linux, or no /proc).
    #[error("/proc/stat: {0}")]
    Read(std::io::Error),
    /// No aggregate `cpu` line.
    #[error("/proc/stat: no `cpu` line")]
    NoCpuLine,
    /// A field of the `cpu` line is not a count.
    #[error("/proc/stat: field {field} of the `cpu` line is {text:?}, not a count")]
    BadField {
        /// Which field, from 1 (user).
        field: usize,
        /// What it held (at most 32 characters).
        text: String,
    },
    /// Fewer than the four fields every kernel since 2.5 writes.
    #[error("/proc/stat: the `cpu` line has {0} fields, not at least 4")]
    TooFewFields(usize),
}

/// Shares of the CPUs' time between two [`CpuTimes`] samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuShare {
    /// Busy time over all time, 0 to 1.
    pub busy: f64,
    /// Stolen time over all time, 0 to 1.
    pub steal: f64,
}

impl CpuTimes {
    /// The aggregate `cpu` line of `/proc/stat` (`user nice system idle iowait irq
    /// softirq steal …`; guest time is already inside user).
    pub fn parse(stat: &str) -> Result<CpuTimes, ProcStatError> {
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some("cpu"))
            .ok_or(ProcStatError::NoCpuLine)?;
        let fields = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .enumerate()
            .map(|(k, f)| {
                f.parse::<u64>().map_err(|_| ProcStatError::BadField {
                    field: k + 1,
                    text: f.chars().take(32).collect(),
                })
            })
            .collect::<Result<Vec<u64>, _>>()?;
        // Kernels before 2.6.11 had no steal field; before 2.6 no iowait, irq, softirq.
        if fields.len() < 4 {
            return Err(ProcStatError::TooFewFields(fields.len()));
        }
        let field = |k: usize| fields.get(k).copied().unwrap_or(0);
        let idle = field(3).saturating_add(field(4));
        let steal = field(7);
        let busy = [0, 1, 2, 5, 6, 7]
            .iter()
            .fold(0u64, |sum, &k| sum.saturating_add(field(k)));
        Ok(CpuTimes {
            busy,
            steal,
            total: busy.saturating_add(idle),
        })
    }

    /// This machine's times now, from `/proc/stat` (Linux only: elsewhere a read error).
    pub fn now() -> Result<CpuTimes, ProcStatError> {
        let stat = std::fs::read_to_string("/proc/stat").map_err(ProcStatError::Read)?;
        CpuTimes::parse(&stat)
    }

    /// The shares from `self` (earlier) to `later`; `None` if no tick passed or the
    /// counters went backwards (a different machine, or a reset).
    pub fn share_until(&self, later: &CpuTimes) -> Option<CpuShare> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        let steal = later.steal.checked_sub(self.steal)?;
        if total == 0 || busy > total || steal > total {
            return None;
        }
        Some(CpuShare {
            busy: busy as f64 / total as f64,
            steal: steal as f64 / total as f64,
        })
    }
}

/// Samples of [`CpuTimes`] taken through a run, by time since it started, to read the
/// busy share over any part of it afterwards.
#[derive(Debug, Clone, Default)]
pub struct CpuTrace {
    samples: Vec<(Duration, CpuTimes)>,
}

impl CpuTrace {
    /// Adds a sample taken `at` into the run; samples must come in time order (an
    /// earlier one is ignored, so the trace stays sorted).
    pub fn push(&mut self, at: Duration, times: CpuTimes) {
        if self.samples.last().is_none_or(|(last, _)| *last <= at) {
            self.samples.push((at, times));
        }
    }

    /// The shares over `from..to`, widened to the samples around it: the last taken at
    /// or before `from` (or the first of all) and the first at or after `to` (or the last
    /// of all). `None` with fewer than two samples.
    pub fn share_between(&self, from: Duration, to: Duration) -> Option<CpuShare> {
        let start = self.samples.partition_point(|(at, _)| *at <= from);
        let (_, first) = self.samples.get(start.saturating_sub(1))?;
        let end = self.samples.partition_point(|(at, _)| *at < to);
        let (_, last) = self.samples.get(end).or(self.samples.last())?;
        first.share_until(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STAT: &str = "cpu  100 5 50 800 20 3 2 10 0 0\n\
                        cpu0 50 2 25 400 10 1 1 5 0 0\n\
                        intr 12345\n";

    #[test]
    fn reads_the_aggregate_line_not_a_single_cpu() {
        let times = CpuTimes::parse(STAT).unwrap();
        assert_eq!(
            times,
            (CpuTimes {
                busy: 100 + 5 + 50 + 3 + 2 + 10,
                steal: 10,
                total: 100 + 5 + 50 + 800 + 20 + 3 + 2 + 10,
            })
        );
    }

    #[test]
    fn old_kernels_without_steal_still_parse() {
        let times = CpuTimes::parse("cpu 10 0 10 80\n").unwrap();
        assert_eq!(
            times,
            (CpuTimes {
                busy: 20,
                steal: 0,
                total: 100
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_stat_file() {
        let problem = |text: &str| CpuTimes::parse(text).map_err(|e| e.to_string());
        let no_line = Err("/proc/stat: no `cpu` line".to_owned());
        assert_eq!(problem(""), no_line);
        assert_eq!(problem("cpu0 1 2 3 4\n"), no_line);
        assert_eq!(
            problem("cpu 1 2 x 4\n"),
            Err("/proc/stat: field 3 of the `cpu` line is \"x\", not a count".to_owned())
        );
        assert_eq!(
            problem("cpu 1 2\n"),
            Err("/proc/stat: the `cpu` line has 2 fields, not at least 4".to_owned())
        );
    }

    #[test]
    fn shares_between_two_samples() {
        let before = CpuTimes {
            busy: 100,
            steal: 0,
            total: 1000,
        };
        let after = CpuTimes {
            busy: 190,
            steal: 10,
            total: 1100,
        };
        let share = before.share_until(&after);
        assert_eq!(
            share,
            Some(CpuShare {
                busy: 0.9,
                steal: 0.1
            })
        );
        assert_eq!(after.share_until(&before), None, "counters went backwards");
        assert_eq!(before.share_until(&before), None, "no tick passed");
    }

    #[test]
    fn this_machine_reads_if_it_is_linux() {
        if cfg!(target_os = "linux") {
            let times = CpuTimes::now().unwrap();
            assert!(times.total > 0 && times.busy <= times.total);
        }
    }

    fn at(busy: u64, total: u64) -> CpuTimes {
        CpuTimes {
            busy,
            steal: 0,
            total,
        }
    }

    #[test]
    fn a_trace_reads_the_share_over_part_of_a_run() {
        let mut trace = CpuTrace::default();
        let ms = Duration::from_millis;
        trace.push(ms(5), at(0, 0));
        trace.push(ms(100), at(100, 200));
        trace.push(ms(200), at(300, 400));
        trace.push(ms(300), at(310, 600));
        trace.push(ms(150), at(0, 0)); // out of order: ignored
        let busy = |from, to| trace.share_between(ms(from), ms(to)).map(|s| s.busy);
        assert_eq!(busy(100, 200), Some(1.0));
        assert_eq!(busy(0, 300), Some(310.0 / 600.0));
        // Widened to the samples around the interval.
        assert_eq!(busy(150, 160), Some(1.0));
        // Past the end: up to the last sample.
        assert_eq!(busy(200, 900), Some(10.0 / 200.0));
        assert_eq!(CpuTrace::default().share_between(ms(0), ms(1)), None);
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in ".{0,200}") {
            if let Ok(t) = CpuTimes::parse(&text) {
                prop_assert!(t.busy <= t.total && t.steal <= t.busy);
            }
        }

        #[test]
        fn shares_stay_between_zero_and_one(
            fields in proptest::collection::vec(0u64..1 << 40, 8),
            more in proptest::collection::vec(0u64..1 << 30, 8),
        ) {
            let line = |f: &[u64]| format!("cpu {}\n", f.iter().map(u64::to_string).collect::<Vec<_>>().join(" "));
            let later: Vec<u64> = fields.iter().zip(&more).map(|(a, b)| a + b).collect();
            let (Ok(a), Ok(b)) = (CpuTimes::parse(&line(&fields)), CpuTimes::parse(&line(&later))) else {
                return Err(TestCaseError::fail("well-formed lines must parse"));
            };
            if let Some(share) = a.share_until(&b) {
                prop_assert!((0.0..=1.0).contains(&share.busy));
                prop_assert!((0.0..=share.busy).contains(&share.steal));
            }
        }
    }
}
