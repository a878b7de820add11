//! Upload pacing by urgency. An edge with `limits.upload` set sends no faster than that,
//! and when responses wait for the link, the most urgent goes first: each request's
//! urgency comes from its `Priority` header (RFC 9218: `u=0` most urgent, `u=7`
//! background, 3 when absent). A checkout page asked for while a hundred bulk ranges
//! stream then waits for one chunk, not for all of them. The queue forms here, where
//! urgencies are known, rather than in the network, where they are not; so `upload` is
//! set a little under the link's rate, as a router's shaper is.
//!
//! [`Pacer`] is the sans-IO core (a token bucket and eight FIFO queues); [`Paced`] is
//! the shell that wakes waiting responses.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

/// Urgencies, RFC 9218: 0 (most urgent) to 7 (background).
pub const URGENCIES: usize = 8;
/// The urgency of a request that sends none.
pub const DEFAULT_URGENCY: u8 = 3;

/// The urgency a `Priority` header asks for (RFC 9218 §4.1: a Structured Field
/// dictionary whose `u` member is an integer 0–7). Members it does not know, parameters
/// and an `i` (incremental) member are ignored; a header that cannot be read, or a `u`
/// out of range or not an integer, gives the default, as the RFC says.
pub fn urgency(header: Option<&[u8]>) -> u8 {
    let Some(text) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
        return DEFAULT_URGENCY;
    };
    // The last `u` wins (Structured Fields: a repeated key overrides).
    let mut found = DEFAULT_URGENCY;
    for member in text.split(',') {
        let member = member.trim_matches([' ', '\t']);
        let head = member.split(';').next().unwrap_or("");
        let (key, value) = match head.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (head, None),
        };
        if key != "u" {
            continue;
        }
        found = match value {
            Some(v) if v.len() == 1 && v.as_bytes()[0].is_ascii_digit() => {
                let u = v.as_bytes()[0] - b'0';
                if usize::from(u) < URGENCIES {
                    u
                } else {
                    DEFAULT_URGENCY
                }
            }
            _ => DEFAULT_URGENCY,
        };
    }
    found
}

/// A token bucket whose waiters are served most urgent first, in arrival order within
/// an urgency. Chunks are granted while the bucket is not in debt, so a chunk larger
/// than the burst still goes (and the next waits for the debt to clear).
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    queues: [VecDeque<(u64, u64)>; URGENCIES],
}

impl Pacer {
    /// `bytes_per_second` (at least 1), with a burst of a hundredth of a second (at least
    /// 16 KiB): a short burst keeps the queue here, where urgencies are known.
    pub fn new(bytes_per_second: u64, now: Instant) -> Self {
        let rate = bytes_per_second.max(1) as f64;
        let burst = (rate / 100.0).max(16_384.0);
        Pacer {
            rate,
            burst,
            tokens: burst,
            last: now,
            queues: Default::default(),
        }
    }

    /// Waiter `id` wants to send `bytes` at `urgency` (clamped to 7).
    pub fn enqueue(&mut self, id: u64, urgency: u8, bytes: u64) {
        let at = usize::from(urgency).min(URGENCIES - 1);
        self.queues[at].push_back((id, bytes));
    }

    /// Waiter `id` gave up (its client went away).
    pub fn remove(&mut self, id: u64) {
        for queue in &mut self.queues {
            queue.retain(|(waiter, _)| *waiter != id);
        }
    }

    /// Waiters, all urgencies.
    pub fn waiting(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// The waiters that may send at `now`, in order; and, if some still wait, how long
    /// until the next may.
    pub fn poll(&mut self, now: Instant) -> (Vec<u64>, Option<Duration>) {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        let mut granted = Vec::new();
        while self.tokens >= 0.0 {
            let Some(queue) = self.queues.iter_mut().find(|q| !q.is_empty()) else {
                break;
            };
            let Some((id, bytes)) = queue.pop_front() else {
                break;
            };
            self.tokens -= bytes as f64;
            granted.push(id);
        }
        let next = (self.waiting() > 0).then(|| {
            // Tokens below zero only: the wait until the debt is paid.
            Duration::from_secs_f64((-self.tokens).max(0.0) / self.rate)
                .max(Duration::from_micros(50))
        });
        (granted, next)
    }
}

#[derive(Debug)]
struct State {
    pacer: Pacer,
    waiting: HashMap<u64, oneshot::Sender<()>>,
    next_id: u64,
    /// Bytes granted and time waited, by urgency.
    sent: [u64; URGENCIES],
    waited: [Duration; URGENCIES],
}

/// A shared pacer and the task that wakes its waiters.
#[derive(Debug)]
pub struct Paced {
    state: Mutex<State>,
    wake: Arc<Notify>,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes a waiter out of the queue if its response is dropped before its turn.
struct Waiting<'a> {
    paced: &'a Paced,
    id: u64,
    granted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.granted {
            let mut state = lock(&self.paced.state);
            state.pacer.remove(self.id);
            state.waiting.remove(&self.id);
        }
    }
}

impl Paced {
    /// A pacer at `bytes_per_second`, with its waking task on the current runtime.
    pub fn start(bytes_per_second: u64) -> Arc<Self> {
        let paced = Arc::new(Paced {
            state: Mutex::new(State {
                pacer: Pacer::new(bytes_per_second, Instant::now()),
                waiting: HashMap::new(),
                next_id: 0,
                sent: [0; URGENCIES],
                waited: [Duration::ZERO; URGENCIES],
            }),
            wake: Arc::new(Notify::new()),
        });
        let weak = Arc::downgrade(&paced);
        let wake = paced.wake.clone();
        tokio::spawn(async move {
            loop {
                let Some(paced) = weak.upgrade() else {
                    return;
                };
                let next = {
                    let mut state = lock(&paced.state);
                    let (granted, next) = state.pacer.poll(Instant::now());
                    for id in granted {
                        if let Some(tx) = state.waiting.remove(&id) {
                            let _ = tx.send(());
                        }
                    }
                    next
                };
                // Holding no strong reference while asleep: the edge going away ends this.
                let notified = wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                drop(paced);
                match next {
                    Some(wait) => {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = &mut notified => {}
                        }
                    }
                    None => {
                        // Nobody waits: sleep until someone does, but look again now and
                        // then in case the pacer itself was dropped.
                        tokio::select! {
                            () = &mut notified => {}
                            () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        }
                    }
                }
            }
        });
        paced
    }

    /// Waits until `bytes` may be sent at `urgency`.
    pub async fn acquire(&self, urgency: u8, bytes: u64) {
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = lock(&self.state);
            let id = state.next_id;
            state.next_id += 1;
            state.pacer.enqueue(id, urgency, bytes);
            state.waiting.insert(id, tx);
            id
        };
        let mut guard = Waiting {
            paced: self,
            id,
            granted: false,
        };
        self.wake.notify_one();
        let _ = rx.await;
        guard.granted = true;
        let at = usize::from(urgency).min(URGENCIES - 1);
        let mut state = lock(&self.state);
        state.sent[at] += bytes;
        state.waited[at] += started.elapsed();
    }

    /// Bytes sent and seconds waited, by urgency (for `/metrics`).
    pub fn totals(&self) -> [(u64, f64); URGENCIES] {
        let state = lock(&self.state);
        std::array::from_fn(|u| (state.sent[u], state.waited[u].as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_priority_header_gives_the_urgency() {
        assert_eq!(urgency(None), 3);
        assert_eq!(urgency(Some(b"u=0")), 0);
        assert_eq!(urgency(Some(b"u=7, i")), 7);
        assert_eq!(urgency(Some(b"i, u=1")), 1);
        assert_eq!(urgency(Some(b"u=2;x=1")), 2);
        assert_eq!(urgency(Some(b"u=1, u=5")), 5);
        // Out of range, not an integer, or unreadable: the default.
        assert_eq!(urgency(Some(b"u=8")), 3);
        assert_eq!(urgency(Some(b"u=-1")), 3);
        assert_eq!(urgency(Some(b"u=1.0")), 3);
        assert_eq!(urgency(Some(b"u")), 3);
        assert_eq!(urgency(Some(b"\xff")), 3);
        assert_eq!(urgency(Some(b"urgency=1")), 3);
    }

    #[test]
    fn the_most_urgent_waiter_goes_first_and_the_rate_holds() {
        let t = Instant::now();
        let mut pacer = Pacer::new(1_000_000, t);
        // The burst (16 KiB) lets the first chunk go at once.
        pacer.enqueue(1, 7, 65_536);
        let (granted, next) = pacer.poll(t);
        assert_eq!(granted, vec![1]);
        assert_eq!(next, None);
        // Now in debt: a background chunk and then an urgent one wait, and the urgent
        // one goes first when the debt is paid.
        pacer.enqueue(2, 7, 65_536);
        pacer.enqueue(3, 0, 1_000);
        let (granted, next) = pacer.poll(t);
        assert!(granted.is_empty());
        let wait = next.unwrap();
        assert!((wait.as_secs_f64() - 0.049_152).abs() < 1e-3, "{wait:?}");
        let (granted, _) = pacer.poll(t + wait);
        assert_eq!(granted, vec![3]);
        let (granted, _) = pacer.poll(t + wait + Duration::from_millis(2));
        assert_eq!(granted, vec![2]);
        assert_eq!(pacer.waiting(), 0);
    }

    #[test]
    fn a_waiter_that_gives_up_is_never_granted() {
        let t = Instant::now();
        let mut pacer = Pacer::new(1_000, t);
        pacer.enqueue(1, 3, 100_000);
        pacer.enqueue(2, 3, 10);
        pacer.enqueue(3, 3, 10);
        assert_eq!(pacer.poll(t).0, vec![1]);
        pacer.remove(2);
        let later = t + Duration::from_secs(200);
        assert_eq!(pacer.poll(later).0, vec![3]);
    }

    proptest! {
        /// Whatever arrives, over a long run the pacer sends at its rate (within one
        /// chunk and the burst), never grants a waiter twice or one that never came,
        /// and never grants a less urgent waiter while a more urgent one waits.
        #[test]
        fn rate_order_and_bookkeeping(
            arrivals in proptest::collection::vec((0u8..8, 1u64..100_000, 0u64..20), 1..200)
        ) {
            let t = Instant::now();
            let rate = 1_000_000u64;
            let mut pacer = Pacer::new(rate, t);
            let mut now = t;
            let mut pending: HashMap<u64, u8> = HashMap::new();
            let mut sent = 0u64;
            let mut biggest = 0u64;
            let sizes: HashMap<u64, u64> =
                arrivals.iter().enumerate().map(|(i, a)| (i as u64, a.1)).collect();
            let mut check = |granted: Vec<u64>, pending: &mut HashMap<u64, u8>| {
                for id in granted {
                    let u = pending.remove(&id).expect("granted once, and only if waiting");
                    // Nobody more urgent was left waiting behind it.
                    prop_assert!(pending.values().all(|w| *w >= u));
                    sent += sizes[&id];
                    biggest = biggest.max(sizes[&id]);
                }
                Ok(())
            };
            for (i, (u, bytes, gap_ms)) in arrivals.iter().enumerate() {
                now += Duration::from_millis(*gap_ms);
                pacer.enqueue(i as u64, *u, *bytes);
                pending.insert(i as u64, *u);
                let (granted, _) = pacer.poll(now);
                check(granted, &mut pending)?;
            }
            while pacer.waiting() > 0 {
                let (granted, next) = pacer.poll(now);
                check(granted, &mut pending)?;
                if let Some(wait) = next {
                    now += wait;
                }
            }
            prop_assert!(pending.is_empty());
            let seconds = now.duration_since(t).as_secs_f64();
            let allowed = rate as f64 * seconds + 16_384.0 + biggest as f64;
            prop_assert!((sent as f64) <= allowed + 1.0, "{sent} in {seconds} s");
        }

        /// Any header bytes give an urgency in range, never a panic.
        #[test]
        fn any_header_gives_an_urgency(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(usize::from(urgency(Some(&bytes))) < URGENCIES);
        }
    }

    #[tokio::test]
    async fn an_urgent_response_overtakes_background_ones() {
        // 1 MB/s; ten background chunks of 64 KiB queue for about 0.65 s.
        let paced = Paced::start(1_000_000);
        let started = Instant::now();
        let mut background = Vec::new();
        for _ in 0..10 {
            let paced = paced.clone();
            background.push(tokio::spawn(async move {
                paced.acquire(7, 65_536).await;
                Instant::now()
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        paced.acquire(0, 1_000).await;
        let urgent_at = started.elapsed();
        let mut last = started;
        for task in background {
            last = last.max(task.await.unwrap());
        }
        assert!(
            urgent_at < last.duration_since(started) / 2,
            "urgent at {urgent_at:?}, background done at {:?}",
            last.duration_since(started)
        );
        let totals = paced.totals();
        assert_eq!(totals[0].0, 1_000);
        assert_eq!(totals[7].0, 655_360);
    }
}
