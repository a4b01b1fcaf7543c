//! The firewall in front of the load balancer (C50), at the HTTP edge:
//! CIDR deny/allow rules and a cap on connections per client at accept
//! time, and a token bucket per client for requests (429 with
//! Retry-After when it is empty). Every refusal is a span; so is the
//! verdict on each request, with the tokens left. Packet-level filtering
//! belongs to the network lab, not here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use weblab_trace::{Ctx, Event, Layer, Recorder};

/// The rules, as configured.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Checked first: a match is refused.
    pub deny: Vec<IpNet>,
    /// When not empty, only a match is let in.
    pub allow: Vec<IpNet>,
    /// Requests per second each client may make on average…
    pub rate: Option<f64>,
    /// …and at once.
    pub burst: u32,
    /// Connections open at once from one client.
    pub max_connections_per_client: Option<u32>,
}

/// Clients tracked at most (their buckets and connection counts); past
/// this the oldest idle ones are forgotten, so a flood of addresses
/// cannot grow memory without bound.
const MAX_CLIENTS: usize = 65_536;

pub use weblab_server::Bucket;

#[derive(Default)]
struct Client {
    bucket: Option<Bucket>,
    connections: u32,
    seen: Option<Instant>,
}

/// The firewall of one listener.
pub struct Firewall {
    rules: Rules,
    clients: Mutex<HashMap<IpAddr, Client>>,
    rec: Recorder,
}

/// A connection counted against its client until dropped.
pub struct Admitted {
    fw: Arc<Firewall>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut clients = self.fw.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get_mut(&self.ip) {
            c.connections = c.connections.saturating_sub(1);
        }
    }
}

impl Firewall {
    pub fn new(rules: Rules, rec: Recorder) -> Arc<Firewall> {
        Arc::new(Firewall {
            rules,
            clients: Mutex::new(HashMap::new()),
            rec,
        })
    }

    /// The rule that decides `ip` at accept time, if one refuses it.
    pub fn rule_against(&self, ip: IpAddr) -> Option<String> {
        if let Some(net) = self.rules.deny.iter().find(|n| n.contains(&ip)) {
            return Some(format!("matches deny {net}"));
        }
        if !self.rules.allow.is_empty() && !self.rules.allow.iter().any(|n| n.contains(&ip)) {
            return Some("matches no allow rule".into());
        }
        None
    }

    fn refusal_span(&self, ip: IpAddr, reason: String) {
        let span = self.rec.begin(Ctx::new_root(), Layer::Transport);
        self.rec.end(
            span,
            Event::Firewall {
                client: ip.to_string(),
                allowed: false,
                reason,
            },
        );
    }

    /// The accept phase: rules, then the per-client connection cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        if let Some(why) = self.rule_against(ip) {
            self.refusal_span(ip, format!("connection refused: {why}"));
            return None;
        }
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
            forget_idle(&mut clients);
        }
        let c = clients.entry(ip).or_default();
        c.seen = Some(Instant::now());
        if let Some(max) = self.rules.max_connections_per_client
            && c.connections >= max
        {
            drop(clients);
            self.refusal_span(
                ip,
                format!("connection refused: already {max} connections from this client"),
            );
            return None;
        }
        c.connections += 1;
        Some(Admitted {
            fw: self.clone(),
            ip,
        })
    }

    /// The request phase: one token from the client's bucket. `Err` is
    /// how long until it may try again. Records the verdict under `ctx`.
    pub fn request(&self, ip: IpAddr, ctx: Ctx) -> Result<(), Duration> {
        let Some(rate) = self.rules.rate else {
            return Ok(());
        };
        let span = self.rec.begin(ctx, Layer::Application);
        let now = Instant::now();
        let verdict = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
                forget_idle(&mut clients);
            }
            let c = clients.entry(ip).or_default();
            c.seen = Some(now);
            let burst = self.rules.burst;
            c.bucket
                .get_or_insert_with(|| Bucket::full(burst, now))
                .take(rate, burst, now)
        };
        let (allowed, reason) = match verdict {
            Ok(left) => (
                true,
                format!(
                    "within {rate}/s (burst {}): {} more at once",
                    self.rules.burst,
                    // Whole requests: a fraction of a token is not one.
                    left.floor()
                ),
            ),
            Err(wait) => (
                false,
                format!(
                    "over {rate}/s (burst {}): 429, retry in {:.1}s",
                    self.rules.burst,
                    wait.as_secs_f64()
                ),
            ),
        };
        self.rec.end(
            span,
            Event::Firewall {
                client: ip.to_string(),
                allowed,
                reason,
            },
        );
        verdict.map(|_| ())
    }
}

/// Forgets clients with no open connection, oldest first, until there is
/// room for a tenth of the table.
fn forget_idle(clients: &mut HashMap<IpAddr, Client>) {
    let mut idle: Vec<(Instant, IpAddr)> = clients
        .iter()
        .filter(|(_, c)| c.connections == 0)
        .map(|(ip, c)| (c.seen.unwrap_or_else(Instant::now), *ip))
        .collect();
    idle.sort();
    for (_, ip) in idle.into_iter().take(MAX_CLIENTS / 10) {
        clients.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(rules: Rules) -> Arc<Firewall> {
        let c = weblab_trace::Collector::new(weblab_trace::Detail::Full);
        Firewall::new(rules, Recorder::new(c, "lb", "127.0.3.1", "firewall"))
    }

    #[test]
    fn deny_comes_first_allow_narrows_and_connections_are_counted() {
        let f = fw(Rules {
            deny: vec!["127.66.0.0/16".parse().unwrap()],
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            max_connections_per_client: Some(2),
            ..Rules::default()
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(f.admit(ip("127.66.1.1")).is_none());
        assert!(f.admit(ip("10.0.0.1")).is_none());
        let a = f.admit(ip("127.0.0.2")).unwrap();
        let _b = f.admit(ip("127.0.0.2")).unwrap();
        assert!(f.admit(ip("127.0.0.2")).is_none(), "third connection");
        assert!(f.admit(ip("127.0.0.3")).is_some(), "another client");
        drop(a);
        assert!(f.admit(ip("127.0.0.2")).is_some(), "room again");
    }
}
