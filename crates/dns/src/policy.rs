//! Answer policies per RRset (C12): which address an authoritative server
//! puts first, for the names the world file gives a policy. Plain round
//! robin ([`crate::rotation`]) is the default; a weighted name hands out
//! its addresses first in proportion to their weights, in the smooth
//! order nginx uses for weighted upstreams (each address's turn spread
//! out, not bunched: weights 3,1 give a a b a, a a b a, …). Clients take
//! the first address, so the weights become the share of clients each
//! address gets — before any cache in between skews it (C13).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hickory_proto::rr::{Name, RData, Record};

/// A policy for one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Addresses first in proportion to their weights; an address with
    /// no weight comes after the weighted ones.
    Weighted(Vec<(IpAddr, u32)>),
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
}

impl Policies {
    pub fn new(policies: impl IntoIterator<Item = (Name, Policy)>) -> Self {
        Policies {
            by_name: policies
                .into_iter()
                .map(|(n, p)| (n.to_lowercase(), p))
                .collect(),
            state: Mutex::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Orders the address records of `name` by its policy; what was
    /// decided, in words, or `None` when the name has no policy.
    pub fn order(&self, name: &Name, records: &mut [Record]) -> Option<String> {
        let key = name.to_lowercase();
        let Policy::Weighted(weights) = self.by_name.get(&key)?;
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
}
