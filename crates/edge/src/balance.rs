//! Load-balancing algorithms behind one trait (C43): given a key, the
//! backends to try in order, so the caller can fall through a dead one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A selection: backends to try, best first, and why the first was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub order: Vec<usize>,
    pub reason: String,
}

/// A load-balancing algorithm over `n` backends.
pub trait Balancer: Send + Sync {
    /// The name shown in traces (`round-robin`, …).
    fn algorithm(&self) -> &'static str;
    /// Orders the backends for the request identified by `key` (the client
    /// address for hashing algorithms).
    fn select(&self, key: &[u8]) -> Selection;
}

/// Every backend in turn.
pub struct RoundRobin {
    n: usize,
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(n: usize) -> Self {
        RoundRobin {
            n: n.max(1),
            next: AtomicUsize::new(0),
        }
    }
}

impl Balancer for RoundRobin {
    fn algorithm(&self) -> &'static str {
        "round-robin"
    }
    fn select(&self, _key: &[u8]) -> Selection {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let first = turn % self.n;
        Selection {
            order: (0..self.n).map(|i| (first + i) % self.n).collect(),
            reason: format!(
                "request #{} of the rotation over {} backends",
                turn + 1,
                self.n
            ),
        }
    }
}

/// Smooth weighted round robin (the algorithm nginx uses): each pick adds
/// every backend's weight to its score, takes the highest score and
/// subtracts the total from it, which interleaves picks instead of
/// bunching them.
pub struct WeightedRoundRobin {
    weights: Vec<i64>,
    current: Mutex<Vec<i64>>,
}

impl WeightedRoundRobin {
    pub fn new(weights: Vec<u32>) -> Self {
        let weights: Vec<i64> = weights.into_iter().map(|w| i64::from(w.max(1))).collect();
        WeightedRoundRobin {
            current: Mutex::new(vec![0; weights.len()]),
            weights,
        }
    }
}

impl Balancer for WeightedRoundRobin {
    fn algorithm(&self) -> &'static str {
        "weighted-round-robin"
    }
    fn select(&self, _key: &[u8]) -> Selection {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let total: i64 = self.weights.iter().sum();
        for (c, w) in cur.iter_mut().zip(&self.weights) {
            *c += w;
        }
        let best = (0..cur.len())
            .max_by_key(|&i| (cur[i], std::cmp::Reverse(i)))
            .unwrap_or(0);
        cur[best] -= total;
        let mut order: Vec<usize> = (0..self.weights.len()).collect();
        order.sort_by_key(|&i| (i != best, std::cmp::Reverse(cur[i])));
        Selection {
            order,
            reason: format!("weight {} of {total}", self.weights[best]),
        }
    }
}

/// The same client always lands on the same backend (FNV-1a of the key).
pub struct IpHash {
    n: usize,
}

impl IpHash {
    pub fn new(n: usize) -> Self {
        IpHash { n: n.max(1) }
    }
}

impl Balancer for IpHash {
    fn algorithm(&self) -> &'static str {
        "ip-hash"
    }
    fn select(&self, key: &[u8]) -> Selection {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in key {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        let first = (h % self.n as u64) as usize;
        Selection {
            order: (0..self.n).map(|i| (first + i) % self.n).collect(),
            reason: format!("hash of the client address -> slot {first}"),
        }
    }
}

/// Builds an algorithm by its configuration name.
pub fn by_name(name: &str, weights: &[u32]) -> Result<Box<dyn Balancer>, String> {
    let n = weights.len();
    Ok(match name {
        "round-robin" => Box::new(RoundRobin::new(n)),
        "weighted-round-robin" | "weighted" => Box::new(WeightedRoundRobin::new(weights.to_vec())),
        "ip-hash" => Box::new(IpHash::new(n)),
        other => {
            return Err(format!(
                "unknown algorithm {other:?} (round-robin, weighted-round-robin, ip-hash)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(b: &dyn Balancer, n: usize, key: &[u8]) -> Vec<usize> {
        (0..n).map(|_| b.select(key).order[0]).collect()
    }

    #[test]
    fn round_robin_takes_turns_and_lists_every_backend() {
        let rr = RoundRobin::new(3);
        assert_eq!(firsts(&rr, 6, b""), [0, 1, 2, 0, 1, 2]);
        assert_eq!(rr.select(b"").order, [0, 1, 2]);
    }

    #[test]
    fn smooth_weighted_interleaves_in_proportion() {
        let w = WeightedRoundRobin::new(vec![5, 1, 1]);
        let picks = firsts(&w, 7, b"");
        // nginx's documented sequence for weights 5,1,1: a a b a c a a
        assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn ip_hash_is_sticky() {
        let h = IpHash::new(4);
        let a = firsts(&h, 5, b"127.0.0.2");
        assert!(a.iter().all(|x| *x == a[0]));
        let spread: std::collections::HashSet<usize> = (0..64u8)
            .map(|i| h.select(&[127, 0, 0, i]).order[0])
            .collect();
        assert!(spread.len() > 1);
    }

    #[test]
    fn unknown_algorithms_are_named_in_the_error() {
        let err = by_name("fastest", &[1, 1]).err().unwrap();
        assert!(err.contains("fastest"));
    }
}
