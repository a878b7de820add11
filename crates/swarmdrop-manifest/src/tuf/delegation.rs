//! Which delegated roles may speak for a target path, in the order the search asks them.
//!
//! The rules are the specification's, as python-tuf reads them: a path pattern matches
//! when the path has as many `/`-separated segments as the pattern and each segment
//! matches by `fnmatch` (`*`, `?`, `[set]`, `[!set]`; a `*` never crosses a `/`); a hash
//! prefix matches the lowercase hex SHA-256 of the path's UTF-8 bytes; succinct hash bins
//! (TAP 15) send a path to exactly one bin, named from the leading bits of that hash.

use sha2::{Digest as _, Sha256};

use super::metadata::{DelegatedRole, Delegations, SuccinctRoles};

/// A role to ask about a target, and whether asking it ends the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    /// The delegated role's name.
    pub name: String,
    /// A terminating role is the last one consulted on this branch and its siblings.
    pub terminating: bool,
}

/// The roles of `delegations` that may list `target`, in delegation order.
pub fn delegates_for(delegations: &Delegations, target: &str) -> Vec<Delegate> {
    if let Some(bins) = &delegations.succinct_roles {
        return vec![Delegate {
            name: bins.bin_for(target),
            terminating: true,
        }];
    }
    delegations
        .roles
        .iter()
        .flatten()
        .filter(|role| role.delegates(target))
        .map(|role| Delegate {
            name: role.name.clone(),
            terminating: role.terminating,
        })
        .collect()
}

impl DelegatedRole {
    /// Whether this role is trusted for `target` (a role with neither patterns nor
    /// prefixes is trusted for nothing).
    pub fn delegates(&self, target: &str) -> bool {
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| path_matches(p, target));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(Sha256::digest(target.as_bytes()));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        false
    }
}

impl SuccinctRoles {
    /// Hex digits in a bin's suffix: enough for the largest bin number.
    fn suffix_len(&self) -> usize {
        let largest = (1u64 << self.bit_length.clamp(1, 32)) - 1;
        format!("{largest:x}").len()
    }

    /// The bin `target` belongs to.
    pub fn bin_for(&self, target: &str) -> String {
        let digest = Sha256::digest(target.as_bytes());
        let leading = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let bits = self.bit_length.clamp(1, 32);
        let bin = u64::from(leading) >> (32 - bits);
        format!(
            "{}-{bin:0width$x}",
            self.name_prefix,
            width = self.suffix_len()
        )
    }

    /// Whether `name` is one of the bins.
    pub fn is_bin(&self, name: &str) -> bool {
        let Some(suffix) = name
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            return false;
        };
        suffix.len() == self.suffix_len()
            && suffix.bytes().all(|b| b.is_ascii_hexdigit())
            && u64::from_str_radix(suffix, 16)
                .is_ok_and(|n| n < 1u64 << self.bit_length.clamp(1, 32))
    }
}

/// Whether `target` matches `pattern` segment by segment.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let target: Vec<&str> = target.split('/').collect();
    pattern.len() == target.len()
        && pattern.iter().zip(&target).all(|(p, t)| {
            let p: Vec<char> = p.chars().collect();
            let t: Vec<char> = t.chars().collect();
            fnmatch(&p, &t)
        })
}

/// Python's `fnmatch.fnmatchcase` on one segment.
fn fnmatch(pattern: &[char], text: &[char]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear in practice, and never
    // exponential whatever the pattern (patterns come from metadata, so from strangers).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some('?') => Some(p + 1),
            Some('[') => match class(pattern, p + 1) {
                Some((matches, end)) => matches(text[t]).then_some(end),
                None => (text[t] == '[').then_some(p + 1),
            },
            Some(&c) => (c == text[t]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((star_p, star_t))) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

type ClassMatch = Box<dyn Fn(char) -> bool>;

/// The set starting after a `[` at `start`: a matcher and the index after its `]`, or
/// `None` when there is no closing `]` (then `[` is an ordinary character).
fn class(pattern: &[char], start: usize) -> Option<(ClassMatch, usize)> {
    let mut i = start;
    let negated = matches!(pattern.get(i), Some('!'));
    if negated {
        i += 1;
    }
    // A `]` right after `[` or `[!` is a member, not the end.
    let first = i;
    let mut end = None;
    let mut j = first;
    while j < pattern.len() {
        if pattern[j] == ']' && j > first {
            end = Some(j);
            break;
        }
        j += 1;
    }
    let end = end?;
    let body: Vec<char> = pattern[first..end].to_vec();
    let mut ranges: Vec<(char, char)> = Vec::new();
    let mut k = 0;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            ranges.push((body[k], body[k + 2]));
            k += 3;
        } else {
            ranges.push((body[k], body[k]));
            k += 1;
        }
    }
    let matcher = move |c: char| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != negated;
    Some((Box::new(matcher), end + 1))
}

#[cfg(test)]
mod tests;
