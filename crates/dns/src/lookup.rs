//! The client side of name lookup (C03): browser cache → hosts file → OS
//! cache → recursive resolver, each level recorded as hit or miss.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use weblab_trace::{CacheLevel, Correlation, Ctx, DnsOutcome, Event, Layer, Recorder};

use crate::error::DnsError;
use crate::message::{Transport, outcome_of};
use crate::net::{build_query, exchange_tcp, exchange_udp};

/// A hosts file (`/etc/hosts` format: an address, then names).
#[derive(Clone, Debug, Default)]
pub struct HostsFile {
    entries: HashMap<String, Vec<IpAddr>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl HostsFile {
    /// Parses hosts-file text; an error names the line.
    pub fn parse(text: &str) -> Result<Self, DnsError> {
        let mut entries: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let addr = words.next().unwrap_or_default();
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| DnsError::hosts(i + 1, format!("{addr:?} is not an IP address")))?;
            let mut any = false;
            for name in words {
                any = true;
                let list = entries.entry(key(name)).or_default();
                if !list.contains(&ip) {
                    list.push(ip);
                }
            }
            if !any {
                return Err(DnsError::hosts(i + 1, format!("{addr} has no host name")));
            }
        }
        Ok(HostsFile { entries })
    }

    pub fn get(&self, name: &str) -> Option<&[IpAddr]> {
        self.entries.get(&key(name)).map(Vec::as_slice)
    }

    /// Rewrites every IPv4 address with `f`.
    pub fn map_ipv4(&mut self, f: &dyn Fn(std::net::Ipv4Addr) -> std::net::Ipv4Addr) {
        for list in self.entries.values_mut() {
            for ip in list.iter_mut() {
                if let IpAddr::V4(v4) = ip {
                    *ip = IpAddr::V4(f(*v4));
                }
            }
        }
    }
}

/// A name → addresses cache with expiry (the browser's and the OS's).
#[derive(Debug, Default)]
pub struct HostCache {
    entries: HashMap<String, (Vec<IpAddr>, Instant)>,
}

impl HostCache {
    pub fn get(&mut self, name: &str, now: Instant) -> Option<Vec<IpAddr>> {
        let k = key(name);
        match self.entries.get(&k) {
            Some((addrs, expires)) if *expires > now => Some(addrs.clone()),
            Some(_) => {
                self.entries.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn put(&mut self, name: &str, addrs: Vec<IpAddr>, ttl: Duration, now: Instant) {
        if !ttl.is_zero() {
            self.entries.insert(key(name), (addrs, now + ttl));
        }
    }
}

/// The OS cache is one per client host, shared by every program on it.
pub type OsCache = Arc<Mutex<HostCache>>;

/// Chrome keeps host entries for a minute whatever the TTL says.
const BROWSER_CACHE_TTL: Duration = Duration::from_secs(60);

/// Where a lookup's answer came from.
#[derive(Clone, Debug)]
pub struct LookupAnswer {
    pub addrs: Vec<IpAddr>,
    pub answered_by: CacheLevel,
}

/// One program's lookup chain.
pub struct LookupChain {
    browser: Mutex<HostCache>,
    hosts: HostsFile,
    os: OsCache,
    resolver: SocketAddr,
    bind: IpAddr,
    timeout: Duration,
    /// Ask for AAAA records too (the client host has an IPv6 address, as
    /// getaddrinfo's AI_ADDRCONFIG decides).
    aaaa: bool,
    rec: Recorder,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LookupChain {
    pub fn new(
        hosts: HostsFile,
        os: OsCache,
        resolver: SocketAddr,
        bind: IpAddr,
        rec: Recorder,
    ) -> Self {
        LookupChain {
            browser: Mutex::new(HostCache::default()),
            hosts,
            os,
            resolver,
            bind,
            timeout: Duration::from_secs(3),
            aaaa: false,
            rec,
        }
    }

    /// Also asks for IPv6 addresses (AAAA), first: a client that has an
    /// IPv6 address prefers it (RFC 6724 ranks ::1 above IPv4).
    pub fn asking_aaaa(mut self, yes: bool) -> Self {
        self.aaaa = yes;
        self
    }

    /// Records one level's answer; `span` began before that level was
    /// asked, so its time is the lookup's own.
    fn level(
        &self,
        span: weblab_trace::collector::Pending,
        level: CacheLevel,
        name: &str,
        found: Option<&[IpAddr]>,
    ) {
        self.rec.end(
            span,
            Event::CacheLookup {
                level,
                name: name.into(),
                hit: found.is_some(),
                answer: found
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
        );
    }

    /// Resolves `host` through the chain, recording a `Lookup` span (the
    /// request's `dns` stage) for client request `request`.
    pub async fn lookup(
        &self,
        ctx: Ctx,
        request: Option<u32>,
        host: &str,
    ) -> Result<LookupAnswer, DnsError> {
        let span = self.rec.begin(ctx, Layer::Application).request(request);
        let inner = span.ctx();
        let result = self.walk(inner, host).await;
        let event = match &result {
            Ok(a) => Event::Lookup {
                name: host.into(),
                addrs: a.addrs.iter().map(ToString::to_string).collect(),
                answered_by: Some(a.answered_by),
                error: None,
            },
            Err(e) => Event::Lookup {
                name: host.into(),
                addrs: vec![],
                answered_by: None,
                error: Some(e.to_string()),
            },
        };
        self.rec.end(span, event);
        result
    }

    async fn walk(&self, ctx: Ctx, host: &str) -> Result<LookupAnswer, DnsError> {
        let now = Instant::now();
        let span = self.rec.begin(ctx, Layer::Application);
        let found = lock(&self.browser).get(host, now);
        self.level(span, CacheLevel::Browser, host, found.as_deref());
        if let Some(addrs) = found {
            return Ok(LookupAnswer {
                addrs,
                answered_by: CacheLevel::Browser,
            });
        }
        let span = self.rec.begin(ctx, Layer::Application);
        let found = self.hosts.get(host).map(<[IpAddr]>::to_vec);
        self.level(span, CacheLevel::Hosts, host, found.as_deref());
        if let Some(addrs) = found {
            lock(&self.browser).put(host, addrs.clone(), BROWSER_CACHE_TTL, now);
            return Ok(LookupAnswer {
                addrs,
                answered_by: CacheLevel::Hosts,
            });
        }
        let span = self.rec.begin(ctx, Layer::Application);
        let found = lock(&self.os).get(host, now);
        self.level(span, CacheLevel::Os, host, found.as_deref());
        if let Some(addrs) = found {
            lock(&self.browser).put(host, addrs.clone(), BROWSER_CACHE_TTL, now);
            return Ok(LookupAnswer {
                addrs,
                answered_by: CacheLevel::Os,
            });
        }
        let (addrs, ttl) = self.ask_resolver(ctx, host).await?;
        let now = Instant::now();
        lock(&self.os).put(host, addrs.clone(), ttl, now);
        lock(&self.browser).put(host, addrs.clone(), ttl.min(BROWSER_CACHE_TTL), now);
        Ok(LookupAnswer {
            addrs,
            answered_by: CacheLevel::Resolver,
        })
    }

    /// The stub resolver's queries (RD=1) to the recursive resolver: AAAA
    /// then A when the client has IPv6, else A; IPv6 addresses first.
    async fn ask_resolver(
        &self,
        ctx: Ctx,
        host: &str,
    ) -> Result<(Vec<IpAddr>, Duration), DnsError> {
        let name = Name::from_ascii(host)
            .map_err(|e| DnsError::malformed(format!("{host:?} is not a host name: {e}")))?;
        let mut name = name;
        name.set_fqdn(true);
        let types: &[RecordType] = if self.aaaa {
            &[RecordType::AAAA, RecordType::A]
        } else {
            &[RecordType::A]
        };
        let (mut addrs, mut ttl) = (Vec::new(), Duration::MAX);
        for qtype in types {
            let (found, t) = self.ask_one(ctx, host, &name, *qtype).await?;
            if !found.is_empty() {
                ttl = ttl.min(t);
            }
            addrs.extend(found);
        }
        if addrs.is_empty() {
            Err(DnsError::nodata(host))
        } else {
            Ok((addrs, ttl))
        }
    }

    /// One question (`qtype` of `name`) to the resolver, over UDP and then
    /// TCP if truncated: the addresses (none for NODATA) and their TTL.
    async fn ask_one(
        &self,
        ctx: Ctx,
        host: &str,
        name: &Name,
        qtype: RecordType,
    ) -> Result<(Vec<IpAddr>, Duration), DnsError> {
        let query = build_query(name, qtype, true);
        for transport in [Transport::Udp, Transport::Tcp] {
            let span = self.rec.begin(ctx, Layer::Application);
            let result = match transport {
                Transport::Udp => {
                    exchange_udp(self.bind, self.resolver, &query, self.timeout).await
                }
                Transport::Tcp => {
                    exchange_tcp(self.bind, self.resolver, &query, self.timeout).await
                }
            };
            let event = |outcome| Event::DnsExchange {
                server: self.resolver.to_string(),
                name: name.to_string(),
                qtype: qtype.to_string(),
                id: query.metadata.id,
                transport: transport.to_string(),
                outcome,
            };
            let ex = match result {
                Ok(ex) => ex,
                Err(e) => {
                    let outcome = if e.is_timeout() {
                        DnsOutcome::Timeout
                    } else {
                        DnsOutcome::Failed {
                            error: e.to_string(),
                        }
                    };
                    self.rec.end(span, event(outcome));
                    return Err(e);
                }
            };
            let key = Correlation::Dns {
                from: ex.local,
                to: self.resolver,
                id: query.metadata.id,
            };
            self.rec
                .end_correlated(span, key, event(outcome_of(&ex.response)));
            let m = ex.response;
            if m.metadata.truncation {
                continue;
            }
            return match m.metadata.response_code {
                ResponseCode::NoError => {
                    let mut ttl = u32::MAX;
                    let addrs: Vec<IpAddr> = m
                        .answers
                        .iter()
                        .filter_map(|r| {
                            let ip = match &r.data {
                                RData::A(a) if qtype == RecordType::A => IpAddr::V4(a.0),
                                RData::AAAA(a) if qtype == RecordType::AAAA => IpAddr::V6(a.0),
                                _ => return None,
                            };
                            ttl = ttl.min(r.ttl);
                            Some(ip)
                        })
                        .collect();
                    Ok((addrs, Duration::from_secs(u64::from(ttl))))
                }
                ResponseCode::NXDomain => Err(DnsError::nxdomain(host)),
                ResponseCode::Refused | ResponseCode::NotImp => Err(DnsError::refused(host)),
                other => Err(DnsError::servfail(host, other.to_string())),
            };
        }
        Err(DnsError::servfail(host, "truncated over TCP"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_names_are_case_insensitive_and_errors_name_the_line() {
        let h =
            HostsFile::parse("# comment\n127.0.0.1 localhost\n\n127.1.2.3 Static.Test  alias\n")
                .unwrap();
        assert_eq!(
            h.get("static.test."),
            Some(&["127.1.2.3".parse().unwrap()][..])
        );
        assert_eq!(h.get("ALIAS"), Some(&["127.1.2.3".parse().unwrap()][..]));
        let err = HostsFile::parse("127.0.0.1 ok\nnot-an-ip name\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(HostsFile::parse("127.0.0.1\n").is_err());
    }

    #[test]
    fn host_cache_expires() {
        let mut c = HostCache::default();
        let t0 = Instant::now();
        c.put(
            "a.test",
            vec!["127.0.0.1".parse().unwrap()],
            Duration::from_secs(5),
            t0,
        );
        assert!(c.get("A.test.", t0 + Duration::from_secs(4)).is_some());
        assert!(c.get("a.test", t0 + Duration::from_secs(5)).is_none());
    }
}
