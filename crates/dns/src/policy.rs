//! Answer policies per RRset (C12): which address an authoritative server
//! puts first, for the names the world file gives a policy. Plain round
//! robin ([`crate::rotation`]) is the default; a weighted name hands out
//! its addresses first in proportion to their weights, in the smooth
//! order nginx uses for weighted upstreams (each address's turn spread
//! out, not bunched: weights 3,1 give a a b a, a a b a, …). Clients take
//! the first address, so the weights become the share of clients each
//! address gets — before any cache in between skews it (C13). A
//! least-connection name puts first the address whose server last
//! reported the fewest open client connections ([`Loads`], filled by
//! whoever reads the servers' status pages).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, Record};

/// A policy for one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Addresses first in proportion to their weights; an address with
    /// no weight comes after the weighted ones.
    Weighted(Vec<(IpAddr, u32)>),
    /// The address with the fewest open connections first, among these.
    LeastConnections(Vec<IpAddr>),
}

/// A count older than this is not believed: its server may be gone.
const STALE: Duration = Duration::from_secs(5);

/// Open client connections by server address, as last published by each
/// server, and when they were read.
#[derive(Debug, Default)]
pub struct Loads {
    by_addr: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Loads {
    pub fn set(&self, addr: IpAddr, open: u32, now: Instant) {
        let mut m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(addr, (open, now));
    }

    /// The count for `addr` and its age, when fresh.
    pub fn get(&self, addr: IpAddr, now: Instant) -> Option<(u32, Duration)> {
        let m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        let (open, at) = *m.get(&addr)?;
        let age = now.saturating_duration_since(at);
        (age < STALE).then_some((open, age))
    }
}

/// One step of smooth weighted round robin: every candidate gains its
/// weight, the largest goes first and pays back the total. `current`
/// holds each candidate's running score between calls.
pub fn smooth_pick(current: &mut [i64], weights: &[u32]) -> Option<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    if total == 0 || current.len() != weights.len() {
        return None;
    }
    for (c, w) in current.iter_mut().zip(weights) {
        *c += i64::from(*w);
    }
    let best = (0..current.len()).max_by_key(|&i| (current[i], std::cmp::Reverse(i)))?;
    current[best] -= total;
    Some(best)
}

fn address(r: &Record) -> Option<IpAddr> {
    match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// The policies of one server, and their running state.
#[derive(Default)]
pub struct Policies {
    by_name: HashMap<Name, Policy>,
    state: Mutex<HashMap<Name, Vec<i64>>>,
    loads: Arc<Loads>,
}

impl Policies {
    pub fn new(policies: impl IntoIterator<Item = (Name, Policy)>) -> Self {
        Policies {
            by_name: policies
                .into_iter()
                .map(|(n, p)| (n.to_lowercase(), p))
                .collect(),
            state: Mutex::default(),
            loads: Arc::default(),
        }
    }

    /// Where the connection counts of least-connection names go.
    pub fn loads(&self) -> Arc<Loads> {
        self.loads.clone()
    }

    /// Every address some least-connection name needs counts for.
    pub fn counted_addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for p in self.by_name.values() {
            if let Policy::LeastConnections(addrs) = p {
                for a in addrs {
                    if !out.contains(a) {
                        out.push(*a);
                    }
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether `name` is answered by a policy (Name compares without
    /// regard to case).
    pub fn covers(&self, name: &Name) -> bool {
        self.by_name.contains_key(name)
    }

    /// Orders the address records of `name` by its policy; what was
    /// decided, in words, or `None` when the name has no policy.
    pub fn order(&self, name: &Name, records: &mut [Record]) -> Option<String> {
        self.order_at(name, records, Instant::now())
    }

    /// [`Self::order`] at time `now` (the age of the counts matters).
    pub fn order_at(&self, name: &Name, records: &mut [Record], now: Instant) -> Option<String> {
        let key = name.to_lowercase();
        match self.by_name.get(&key)? {
            Policy::Weighted(weights) => self.weighted(key, weights, records),
            Policy::LeastConnections(addrs) => self.least(key, addrs, records, now),
        }
    }

    /// The fewest open connections first; ties take turns.
    fn least(
        &self,
        key: Name,
        addrs: &[IpAddr],
        records: &mut [Record],
        now: Instant,
    ) -> Option<String> {
        let counts: Vec<Option<(u32, Duration)>> = records
            .iter()
            .map(|r| {
                address(r)
                    .filter(|a| addrs.contains(a))
                    .and_then(|a| self.loads.get(a, now))
            })
            .collect();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let turn = state.entry(key).or_insert_with(|| vec![0]);
        let n = records.len().max(1);
        let start = (turn.first().copied().unwrap_or(0) as usize) % n;
        if let Some(t) = turn.first_mut() {
            *t = t.wrapping_add(1);
        }
        // Scan from a rotating start so equal counts share the first place.
        let first = (0..n)
            .map(|i| (start + i) % n)
            .filter(|&i| counts.get(i).is_some_and(Option::is_some))
            .min_by_key(|&i| counts[i].map(|(c, _)| c))
            .or(Some(start))?;
        let chosen = address(&records[first]).map_or_else(String::new, |a| a.to_string());
        let said: Vec<String> = records
            .iter()
            .zip(&counts)
            .filter_map(|(r, c)| {
                let a = address(r)?;
                Some(match c {
                    Some((open, _)) => format!("{a} {open}"),
                    None => format!("{a} unknown"),
                })
            })
            .collect();
        records[..=first].rotate_right(1);
        let age = counts
            .iter()
            .flatten()
            .map(|(_, age)| *age)
            .max()
            .map_or_else(String::new, |a| {
                format!(", counts read {:.1} s ago", a.as_secs_f64())
            });
        Some(if counts.iter().all(Option::is_none) {
            format!(
                "least connections (C12): no fresh counts, {chosen} first by turns ({})",
                said.join(", ")
            )
        } else {
            format!(
                "least connections (C12): {chosen} first, open connections {}{age}",
                said.join(", ")
            )
        })
    }

    fn weighted(
        &self,
        key: Name,
        weights: &[(IpAddr, u32)],
        records: &mut [Record],
    ) -> Option<String> {
        let weight_of = |r: &Record| {
            address(r).and_then(|ip| weights.iter().find(|(a, _)| *a == ip).map(|(_, w)| *w))
        };
        let ws: Vec<u32> = records.iter().map(|r| weight_of(r).unwrap_or(0)).collect();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let current = state.entry(key).or_insert_with(|| vec![0; ws.len()]);
        if current.len() != ws.len() {
            *current = vec![0; ws.len()];
        }
        let first = smooth_pick(current, &ws)?;
        let chosen = address(&records[first]).map_or_else(String::new, |a| a.to_string());
        records[..=first].rotate_right(1);
        let shares: Vec<String> = weights.iter().map(|(a, w)| format!("{a}={w}")).collect();
        Some(format!(
            "weighted answer (C12): {chosen} first, by weights {}",
            shares.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;

    fn a(ip: [u8; 4]) -> Record {
        Record::from_rdata(
            Name::from_ascii("w.test.").unwrap(),
            60,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    }

    #[test]
    fn smooth_weighted_round_robin_spreads_the_turns() {
        let mut cur = vec![0; 3];
        let picks: String = (0..7)
            .map(|_| ["a", "b", "c"][smooth_pick(&mut cur, &[5, 1, 1]).unwrap()])
            .collect();
        // nginx's own example for weights 5, 1, 1.
        assert_eq!(picks, "aabacaa");
        assert_eq!(smooth_pick(&mut [0, 0], &[0, 0]), None);
    }

    #[test]
    fn first_addresses_follow_the_weights_exactly_over_whole_rounds() {
        let p = Policies::new([(
            Name::from_ascii("W.test.").unwrap(),
            Policy::Weighted(vec![
                ("127.0.0.1".parse().unwrap(), 3),
                ("127.0.0.2".parse().unwrap(), 1),
            ]),
        )]);
        let mut firsts = HashMap::new();
        for _ in 0..400 {
            let mut rs = vec![a([127, 0, 0, 1]), a([127, 0, 0, 2]), a([127, 0, 0, 3])];
            let said = p
                .order(&Name::from_ascii("w.test.").unwrap(), &mut rs)
                .unwrap();
            assert!(said.contains("first"), "{said}");
            assert_eq!(rs.len(), 3, "every address is still answered");
            *firsts
                .entry(address(&rs[0]).unwrap().to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(firsts["127.0.0.1"], 300);
        assert_eq!(firsts["127.0.0.2"], 100);
        assert!(!firsts.contains_key("127.0.0.3"), "no weight, never first");
        assert!(
            p.order(
                &Name::from_ascii("other.test.").unwrap(),
                &mut [a([1, 2, 3, 4])]
            )
            .is_none()
        );
    }

    #[test]
    fn the_fewest_open_connections_go_first_and_ties_or_no_counts_take_turns() {
        let ips: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let name = Name::from_ascii("least.test.").unwrap();
        let p = Policies::new([(name.clone(), Policy::LeastConnections(ips.clone()))]);
        assert_eq!(p.counted_addresses(), ips);
        let t0 = Instant::now();
        let first = |now: Instant| {
            let mut rs = vec![a([127, 0, 0, 1]), a([127, 0, 0, 2]), a([127, 0, 0, 3])];
            let said = p.order_at(&name, &mut rs, now).unwrap();
            (address(&rs[0]).unwrap().to_string(), said)
        };
        // No counts yet: every address gets a turn.
        let turns: std::collections::HashSet<String> = (0..3).map(|_| first(t0).0).collect();
        assert_eq!(turns.len(), 3);
        assert!(first(t0).1.contains("no fresh counts"));
        let loads = p.loads();
        loads.set(ips[0], 7, t0);
        loads.set(ips[1], 2, t0);
        loads.set(ips[2], 5, t0);
        for _ in 0..4 {
            let (who, said) = first(t0 + Duration::from_secs(1));
            assert_eq!(who, "127.0.0.2");
            assert!(
                said.contains("127.0.0.1 7, 127.0.0.2 2, 127.0.0.3 5"),
                "{said}"
            );
            assert!(said.contains("read 1.0 s ago"), "{said}");
        }
        // Two equally idle servers share the first place.
        loads.set(ips[0], 2, t0);
        let firsts: std::collections::HashSet<String> = (0..4)
            .map(|_| first(t0 + Duration::from_secs(1)).0)
            .collect();
        assert_eq!(firsts.len(), 2, "{firsts:?}");
        // Stale counts are not believed.
        assert!(first(t0 + STALE).1.contains("no fresh counts"));
    }
}
