//! Load-balancing algorithms (C43). Each is a function of (its own small
//! state, the backends that are up right now, the request's key): no
//! sockets, no clock, so each can be tested pick by pick. The pool around
//! them (`pool.rs`) supplies the candidates and holds the guards.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A backend that is up, as an algorithm sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Index in the configured backend list.
    pub index: usize,
    pub weight: u32,
    pub in_flight: u32,
}

/// The algorithm's choice and why, in words a learner can check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    /// Index in the configured backend list.
    pub index: usize,
    pub reason: String,
}

/// A load-balancing algorithm.
pub trait Balancer: Send + Sync {
    /// The name shown in traces and on the status page.
    fn algorithm(&self) -> &'static str;
    /// Chooses among `up` (never empty, in configuration order) for the
    /// request whose client key is `key` (its address).
    fn pick(&self, up: &[Candidate], key: &[u8]) -> Pick;
}

/// The names [`by_name`] knows.
pub const ALGORITHMS: &[&str] = &[
    "round-robin",
    "weighted-round-robin",
    "least-connections",
    "ip-hash",
    "power-of-two",
    "ratio",
];

/// Builds an algorithm by its configuration name for backends with
/// these `names` and `weights`.
pub fn by_name(name: &str, names: &[String], weights: &[u32]) -> Result<Box<dyn Balancer>, String> {
    Ok(match name {
        "round-robin" => Box::new(RoundRobin::default()),
        "weighted-round-robin" | "weighted" => Box::new(WeightedRoundRobin::new(weights.len())),
        "least-connections" | "least-conn" => Box::new(LeastConnections::default()),
        "ip-hash" | "consistent-hash" => Box::new(ConsistentHash::new(names, weights)),
        "power-of-two" | "p2c" => Box::new(PowerOfTwo),
        "ratio" => Box::new(Ratio::default()),
        other => {
            return Err(format!(
                "unknown algorithm {other:?} (known: {})",
                ALGORITHMS.join(", ")
            ));
        }
    })
}

/// Every backend that is up, in turn.
#[derive(Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Balancer for RoundRobin {
    fn algorithm(&self) -> &'static str {
        "round-robin"
    }
    fn pick(&self, up: &[Candidate], _key: &[u8]) -> Pick {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = turn % up.len();
        Pick {
            index: up[slot].index,
            reason: format!("turn {} of {} backends up", slot + 1, up.len()),
        }
    }
}

/// Smooth weighted round robin (nginx's): each pick adds every candidate's
/// weight to its score, takes the highest score and subtracts the total
/// from it, which interleaves picks instead of bunching them.
pub struct WeightedRoundRobin {
    score: Mutex<Vec<i64>>,
}

impl WeightedRoundRobin {
    pub fn new(n: usize) -> Self {
        WeightedRoundRobin {
            score: Mutex::new(vec![0; n]),
        }
    }
}

impl Balancer for WeightedRoundRobin {
    fn algorithm(&self) -> &'static str {
        "weighted-round-robin"
    }
    fn pick(&self, up: &[Candidate], _key: &[u8]) -> Pick {
        let mut score = self.score.lock().unwrap_or_else(|p| p.into_inner());
        let max_index = up.iter().map(|c| c.index).max().unwrap_or(0);
        if score.len() <= max_index {
            score.resize(max_index + 1, 0);
        }
        let total: i64 = up.iter().map(|c| i64::from(c.weight)).sum();
        for c in up {
            score[c.index] += i64::from(c.weight);
        }
        let best = up
            .iter()
            .max_by_key(|c| (score[c.index], std::cmp::Reverse(c.index)))
            .unwrap_or(&up[0]);
        score[best.index] -= total;
        Pick {
            index: best.index,
            reason: format!("weight {} of {total} (smooth weighted)", best.weight),
        }
    }
}

/// The backend with the fewest requests in flight per unit of weight;
/// ties go round robin so idle backends share the load.
#[derive(Default)]
pub struct LeastConnections {
    tie: AtomicUsize,
}

impl Balancer for LeastConnections {
    fn algorithm(&self) -> &'static str {
        "least-connections"
    }
    fn pick(&self, up: &[Candidate], _key: &[u8]) -> Pick {
        let start = self.tie.fetch_add(1, Ordering::Relaxed) % up.len();
        let mut best = &up[start];
        for i in 1..up.len() {
            let c = &up[(start + i) % up.len()];
            // c.in_flight / c.weight < best.in_flight / best.weight
            if u64::from(c.in_flight) * u64::from(best.weight)
                < u64::from(best.in_flight) * u64::from(c.weight)
            {
                best = c;
            }
        }
        let others: Vec<String> = up
            .iter()
            .filter(|c| c.index != best.index)
            .map(|c| c.in_flight.to_string())
            .collect();
        Pick {
            index: best.index,
            reason: format!(
                "{} in flight there (others: {})",
                best.in_flight,
                if others.is_empty() {
                    "none up".to_string()
                } else {
                    others.join(", ")
                }
            ),
        }
    }
}

/// Two backends drawn at random; the one with fewer requests in flight
/// wins (Mitzenmacher's power of two choices: nearly as good as
/// least-connections without looking at every backend).
pub struct PowerOfTwo;

impl Balancer for PowerOfTwo {
    fn algorithm(&self) -> &'static str {
        "power-of-two"
    }
    fn pick(&self, up: &[Candidate], _key: &[u8]) -> Pick {
        if up.len() == 1 {
            return Pick {
                index: up[0].index,
                reason: "the only backend up".into(),
            };
        }
        let a = rand::random_range(0..up.len());
        let mut b = rand::random_range(0..up.len() - 1);
        if b >= a {
            b += 1;
        }
        let (a, b) = (&up[a], &up[b]);
        let (win, lose) = if u64::from(b.in_flight) * u64::from(a.weight)
            < u64::from(a.in_flight) * u64::from(b.weight)
        {
            (b, a)
        } else {
            (a, b)
        };
        Pick {
            index: win.index,
            reason: format!(
                "drew it and backend #{}: {} vs {} in flight",
                lose.index + 1,
                win.in_flight,
                lose.in_flight
            ),
        }
    }
}

/// Fixed ratios served in blocks (F5's "ratio"): with weights 3:1 the
/// first backend takes three requests in a row, then the second one. The
/// same shares as weighted round robin, without the interleaving.
#[derive(Default)]
pub struct Ratio {
    turn: AtomicUsize,
}

impl Balancer for Ratio {
    fn algorithm(&self) -> &'static str {
        "ratio"
    }
    fn pick(&self, up: &[Candidate], _key: &[u8]) -> Pick {
        let total: usize = up.iter().map(|c| c.weight as usize).sum();
        let mut slot = self.turn.fetch_add(1, Ordering::Relaxed) % total.max(1);
        let mut chosen = &up[0];
        for c in up {
            if slot < c.weight as usize {
                chosen = c;
                break;
            }
            slot -= c.weight as usize;
        }
        Pick {
            index: chosen.index,
            reason: format!("its block of {} in every {total}", chosen.weight),
        }
    }
}

/// Points each unit of weight puts on the ring.
const POINTS_PER_WEIGHT: u32 = 100;

/// IP hash on a consistent-hash ring (Karger et al.; ketama-style
/// points): each backend owns many points, a client goes to the first
/// point at or after its hash that belongs to a backend that is up. The
/// same client keeps its backend, and adding or removing a backend moves
/// only about 1/N of the clients.
pub struct ConsistentHash {
    /// (point, backend index), sorted by point.
    ring: Vec<(u64, usize)>,
}

impl ConsistentHash {
    /// Points come from the backends' names, so a backend keeps its points
    /// when others are added.
    pub fn new(names: &[String], weights: &[u32]) -> Self {
        let mut ring = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let w = weights.get(i).copied().unwrap_or(1).max(1);
            for p in 0..w * POINTS_PER_WEIGHT {
                ring.push((hash(format!("{name}#{p}").as_bytes()), i));
            }
        }
        ring.sort_unstable();
        ConsistentHash { ring }
    }
}

impl Balancer for ConsistentHash {
    fn algorithm(&self) -> &'static str {
        "ip-hash"
    }
    fn pick(&self, up: &[Candidate], key: &[u8]) -> Pick {
        let h = hash(key);
        let start = self.ring.partition_point(|(p, _)| *p < h);
        let n = self.ring.len();
        for i in 0..n {
            let (_, idx) = self.ring[(start + i) % n];
            if up.iter().any(|c| c.index == idx) {
                let owner = self.ring[start % n].1;
                let reason = if owner == idx {
                    format!("hash of the client address {h:016x} falls on its arc")
                } else {
                    format!(
                        "hash of the client address {h:016x}; its arc's owner is down, next on the ring"
                    )
                };
                return Pick { index: idx, reason };
            }
        }
        Pick {
            index: up[0].index,
            reason: "no ring point is up; first backend".into(),
        }
    }
}

/// FNV-1a with a final avalanche (splitmix64's), so nearby keys spread
/// over the whole ring. A dozen lines; no crate needed for it.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d049bb133111eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Candidate {
                index,
                weight,
                in_flight: 0,
            })
            .collect()
    }

    fn picks(b: &dyn Balancer, c: &[Candidate], n: usize) -> Vec<usize> {
        (0..n).map(|_| b.pick(c, b"").index).collect()
    }

    #[test]
    fn round_robin_takes_turns_among_backends_that_are_up() {
        let rr = RoundRobin::default();
        assert_eq!(picks(&rr, &up(&[1, 1, 1]), 6), [0, 1, 2, 0, 1, 2]);
        let mut two = up(&[1, 1, 1]);
        two.remove(1);
        assert!(picks(&rr, &two, 4).iter().all(|i| *i != 1));
    }

    #[test]
    fn smooth_weighted_interleaves_in_proportion() {
        let w = WeightedRoundRobin::new(3);
        // nginx's documented sequence for weights 5,1,1: a a b a c a a
        assert_eq!(picks(&w, &up(&[5, 1, 1]), 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn ratio_serves_blocks_in_proportion() {
        let r = Ratio::default();
        assert_eq!(picks(&r, &up(&[3, 1]), 8), [0, 0, 0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn least_connections_goes_where_fewest_are_in_flight() {
        let lc = LeastConnections::default();
        let mut c = up(&[1, 1, 1]);
        c[0].in_flight = 5;
        c[1].in_flight = 2;
        c[2].in_flight = 7;
        for _ in 0..5 {
            assert_eq!(lc.pick(&c, b"").index, 1);
        }
        // Weight 2 with 3 in flight (1.5 each) beats weight 1 with 2.
        c[0].weight = 2;
        c[0].in_flight = 3;
        assert_eq!(lc.pick(&c, b"").index, 0);
        // All idle: ties rotate.
        let idle = up(&[1, 1, 1]);
        let mut seen = picks(&lc, &idle, 3);
        seen.sort();
        assert_eq!(seen, [0, 1, 2]);
    }

    #[test]
    fn power_of_two_never_picks_the_busiest_of_two() {
        let p = PowerOfTwo;
        let mut c = up(&[1, 1]);
        c[0].in_flight = 10;
        for _ in 0..50 {
            assert_eq!(p.pick(&c, b"").index, 1);
        }
        // With three, the busiest one can never win a draw.
        let mut three = up(&[1, 1, 1]);
        three[2].in_flight = 9;
        three[1].in_flight = 1;
        assert!(picks(&p, &three, 100).iter().all(|i| *i != 2));
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("web{i}")).collect()
    }

    #[test]
    fn ip_hash_is_sticky_and_skips_a_backend_that_is_down() {
        let h = ConsistentHash::new(&names(4), &[1, 1, 1, 1]);
        let c = up(&[1, 1, 1, 1]);
        let first = h.pick(&c, b"\x7f\x00\x00\x02").index;
        for _ in 0..5 {
            assert_eq!(h.pick(&c, b"\x7f\x00\x00\x02").index, first);
        }
        let without: Vec<Candidate> = c.iter().copied().filter(|x| x.index != first).collect();
        let moved = h.pick(&without, b"\x7f\x00\x00\x02");
        assert_ne!(moved.index, first);
        assert!(moved.reason.contains("down"));
    }

    #[test]
    fn adding_a_backend_moves_about_one_client_in_n() {
        let clients: Vec<[u8; 4]> = (0..10_000u32)
            .map(|i| [10, (i >> 16) as u8, (i >> 8) as u8, i as u8])
            .collect();
        let four = ConsistentHash::new(&names(4), &[1; 4]);
        let five = ConsistentHash::new(&names(5), &[1; 5]);
        let (c4, c5) = (up(&[1; 4]), up(&[1; 5]));
        let moved = clients
            .iter()
            .filter(|k| four.pick(&c4, &k[..]).index != five.pick(&c5, &k[..]).index)
            .count();
        let share = moved as f64 / clients.len() as f64;
        // Ideal: 1/5 of clients move (all to the new backend); modulo
        // hashing would move about 4/5.
        assert!((0.13..0.27).contains(&share), "{share}");
        let to_new = clients
            .iter()
            .filter(|k| four.pick(&c4, &k[..]).index != five.pick(&c5, &k[..]).index)
            .all(|k| five.pick(&c5, &k[..]).index == 4);
        assert!(to_new, "clients that moved all moved to the new backend");
        // And the load is spread: no backend gets more than 1.5x its share.
        let mut load = [0usize; 5];
        for k in &clients {
            load[five.pick(&c5, &k[..]).index] += 1;
        }
        assert!(load.iter().all(|&l| l < 3000 && l > 1000), "{load:?}");
    }

    #[test]
    fn unknown_algorithms_are_named_in_the_error() {
        let err = by_name("fastest", &names(2), &[1, 1]).err().unwrap();
        assert!(err.contains("fastest") && err.contains("least-connections"));
    }
}
