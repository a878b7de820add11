//! Proof-of-work for anonymous viewers: find a decimal `solution` such that
//! SHA-256(`challenge` ":" `solution`) starts with `difficulty` zero bits. Each extra
//! bit doubles the expected work; the gateway raises difficulty with load and risk, so
//! a flood pays more per token while a lone viewer pays milliseconds.

use sha2::{Digest as _, Sha256};

/// Most digits a solution may have.
pub const MAX_SOLUTION_DIGITS: usize = 20;
/// The hardest difficulty ever asked for (about 16 million hashes on average).
pub const MAX_DIFFICULTY: u32 = 24;

/// Leading zero bits of a hash.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

fn work(challenge: &str, solution: &str) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(challenge.as_bytes());
    hasher.update(b":");
    hasher.update(solution.as_bytes());
    leading_zero_bits(&hasher.finalize())
}

/// True when `solution` (1–20 decimal digits) solves `challenge` at `difficulty`.
pub fn check(challenge: &str, solution: &str, difficulty: u32) -> bool {
    (1..=MAX_SOLUTION_DIGITS).contains(&solution.len())
        && solution.bytes().all(|b| b.is_ascii_digit())
        && work(challenge, solution) >= difficulty
}

/// Solves a challenge (for clients, tests and benchmarks); `None` after `max_tries`.
pub fn solve(challenge: &str, difficulty: u32, max_tries: u64) -> Option<String> {
    (0..max_tries)
        .map(|n| n.to_string())
        .find(|s| work(challenge, s) >= difficulty)
}

/// The difficulty to ask: `base`, plus one bit per doubling of load over nominal
/// (`load` = current rate ÷ nominal rate), plus one bit per 20 points of risk, capped.
pub fn difficulty(base: u32, load: f64, risk: u32) -> u32 {
    let load_bits = if load.is_finite() && load > 1.0 {
        load.log2().ceil() as u32
    } else {
        0
    };
    (base + load_bits + risk / 20).min(MAX_DIFFICULTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_and_check() {
        let solution = solve("abc", 10, 1 << 20).unwrap();
        assert!(check("abc", &solution, 10));
        assert!(!check("abd", &solution, 10) || work("abd", &solution) >= 10);
        assert!(!check("abc", "", 0));
        assert!(!check("abc", "12a", 0));
        assert!(!check("abc", &"1".repeat(21), 0));
        assert_eq!(leading_zero_bits(&[0, 0, 0x0f]), 20);
    }

    #[test]
    fn difficulty_rises_with_load_and_risk() {
        assert_eq!(difficulty(12, 0.5, 0), 12);
        assert_eq!(difficulty(12, 4.0, 0), 14);
        assert_eq!(difficulty(12, 1.0, 40), 14);
        assert_eq!(difficulty(20, 1e9, 100), MAX_DIFFICULTY);
    }
}
