//! The recursive, caching resolver ("ISP DNS"): it answers clients by asking
//! the hierarchy itself, root → TLD → authoritative, following referrals and
//! glue (RFC 1034 §5.3.3), and caches answers by TTL (C08, C09).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use weblab_trace::{CacheLevel, Correlation, Ctx, DnsOutcome, Event, Layer, Recorder};

use crate::cache::{Cache, Cached};
use crate::error::DnsError;
use crate::message::{Transport, check_query, encode, outcome_of, record_text, response_to};
use crate::net::{Handler, Peer, build_query, exchange_tcp, exchange_udp};
use crate::scrub;

/// Settings of a resolver.
#[derive(Clone, Debug)]
pub struct ResolverConfig {
    /// Addresses of the root servers (the "root hints").
    pub root_hints: Vec<IpAddr>,
    /// The port every name server of the world listens on.
    pub upstream_port: u16,
    /// Source address of the resolver's own queries.
    pub bind: IpAddr,
    /// How long to wait for one server.
    pub timeout: Duration,
}

/// The outcome of resolving one question.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    /// The SOA for negative answers.
    pub soa: Option<Record>,
}

impl Resolved {
    fn servfail() -> Self {
        Resolved {
            rcode: ResponseCode::ServFail,
            answers: vec![],
            soa: None,
        }
    }
}

/// Referral hops allowed for one question (a loop guard).
const MAX_REFERRALS: usize = 12;
/// Nested resolutions (CNAME targets, glueless NS names) allowed.
const MAX_DEPTH: u8 = 4;
/// Negative-cache time when a server sends no SOA (RFC 2308 §5 says not to
/// cache at all; a few seconds protects the hierarchy from retries).
const NEGATIVE_WITHOUT_SOA: u32 = 5;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A recursive resolver.
pub struct Resolver {
    cfg: ResolverConfig,
    cache: Mutex<Cache>,
    rotation: crate::rotation::Rotation,
    rec: Recorder,
}

impl Resolver {
    pub fn new(cfg: ResolverConfig, rec: Recorder) -> Self {
        Resolver {
            cfg,
            cache: Mutex::new(Cache::default()),
            rotation: Default::default(),
            rec,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves one question, recording the cache check and every upstream
    /// exchange under `ctx`. Without `recurse` (a query with RD=0) only the
    /// cache answers, and a miss is REFUSED (RFC 1034 §4.3.1: recursion
    /// only when asked for).
    pub async fn resolve(
        &self,
        ctx: Ctx,
        name: &Name,
        qtype: RecordType,
        recurse: bool,
    ) -> Resolved {
        let span = self.rec.begin(ctx, Layer::Application);
        let cached = self.cache().get(name, qtype, Instant::now());
        let hit = cached.is_some();
        let answer: Vec<String> = match &cached {
            Some(Cached::Records(rs)) => rs.iter().map(record_text).collect(),
            Some(Cached::NxDomain) => vec!["NXDOMAIN".into()],
            Some(Cached::NoData) => vec!["NODATA".into()],
            None => vec![],
        };
        self.rec.end(
            span,
            Event::CacheLookup {
                level: CacheLevel::Resolver,
                name: name.to_string(),
                hit,
                answer,
            },
        );
        match cached {
            Some(Cached::Records(mut answers)) => {
                // From the cache too, each RRset takes its turns (C11).
                self.rotation.rotate(&mut answers);
                Resolved {
                    rcode: ResponseCode::NoError,
                    answers,
                    soa: None,
                }
            }
            Some(Cached::NxDomain) => Resolved {
                rcode: ResponseCode::NXDomain,
                answers: vec![],
                soa: None,
            },
            Some(Cached::NoData) => Resolved {
                rcode: ResponseCode::NoError,
                answers: vec![],
                soa: None,
            },
            None if !recurse => Resolved {
                rcode: ResponseCode::Refused,
                answers: vec![],
                soa: None,
            },
            None => self.iterate(ctx, name.clone(), qtype, 0).await,
        }
    }

    /// Name-server sockets from the A records in `records`.
    fn server_addrs<'a>(&'a self, records: &'a [Record]) -> impl Iterator<Item = SocketAddr> + 'a {
        records.iter().filter_map(|r| match &r.data {
            RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), self.cfg.upstream_port)),
            _ => None,
        })
    }

    /// The deepest zone whose servers we know an address for, from the
    /// cache, else the root hints.
    fn closest_servers(&self, name: &Name) -> (Name, Vec<SocketAddr>) {
        let now = Instant::now();
        let mut cache = self.cache();
        for labels in (1..=name.num_labels()).rev() {
            let zone = name.trim_to(labels as usize);
            let Some(Cached::Records(ns)) = cache.get(&zone, RecordType::NS, now) else {
                continue;
            };
            let mut addrs = Vec::new();
            for r in &ns {
                if let RData::NS(target) = &r.data
                    && let Some(Cached::Records(a)) = cache.get(&target.0, RecordType::A, now)
                {
                    addrs.extend(self.server_addrs(&a));
                }
            }
            if !addrs.is_empty() {
                return (zone, addrs);
            }
        }
        let roots = self
            .cfg
            .root_hints
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.cfg.upstream_port))
            .collect();
        (Name::root(), roots)
    }

    /// Sends one non-recursive query, over UDP and again over TCP when the
    /// answer comes back truncated (C10).
    async fn ask(
        &self,
        ctx: Ctx,
        server: SocketAddr,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Message, DnsError> {
        let query = build_query(name, qtype, false);
        for transport in [Transport::Udp, Transport::Tcp] {
            let span = self.rec.begin(ctx, Layer::Application);
            let result = match transport {
                Transport::Udp => {
                    exchange_udp(self.cfg.bind, server, &query, self.cfg.timeout).await
                }
                Transport::Tcp => {
                    exchange_tcp(self.cfg.bind, server, &query, self.cfg.timeout).await
                }
            };
            let event = |outcome| Event::DnsExchange {
                server: server.to_string(),
                name: name.to_string(),
                qtype: qtype.to_string(),
                id: query.metadata.id,
                transport: transport.to_string(),
                outcome,
            };
            match result {
                Ok(ex) => {
                    let key = Correlation::Dns {
                        from: ex.local,
                        to: server,
                        id: query.metadata.id,
                    };
                    let truncated = ex.response.metadata.truncation;
                    self.rec
                        .end_correlated(span, key, event(outcome_of(&ex.response)));
                    if !truncated {
                        return Ok(ex.response);
                    }
                }
                Err(e) => {
                    let outcome = if e.is_timeout() {
                        DnsOutcome::Timeout
                    } else {
                        DnsOutcome::ServFail
                    };
                    self.rec.end(span, event(outcome));
                    return Err(e);
                }
            }
        }
        Err(DnsError::malformed("truncated over TCP too"))
    }

    /// The iterative algorithm, boxed because it recurses for CNAME targets
    /// and for name servers given without glue.
    fn iterate(
        &self,
        ctx: Ctx,
        name: Name,
        qtype: RecordType,
        depth: u8,
    ) -> BoxFuture<'_, Resolved> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Resolved::servfail();
            }
            let (mut zone, mut servers) = self.closest_servers(&name);
            for _ in 0..MAX_REFERRALS {
                let mut reply = None;
                for server in &servers {
                    match self.ask(ctx, *server, &name, qtype).await {
                        Ok(m)
                            if matches!(
                                m.metadata.response_code,
                                ResponseCode::NoError | ResponseCode::NXDomain
                            ) =>
                        {
                            reply = Some(m);
                            break;
                        }
                        _ => continue, // try the next server of the set
                    }
                }
                let Some(m) = reply else {
                    return Resolved::servfail();
                };
                let now = Instant::now();
                let soa = m
                    .authorities
                    .iter()
                    .find(|r| r.record_type() == RecordType::SOA)
                    .cloned();
                let negative_ttl = soa
                    .as_ref()
                    .map_or(NEGATIVE_WITHOUT_SOA, |s| match &s.data {
                        RData::SOA(d) => s.ttl.min(d.minimum),
                        _ => s.ttl,
                    });
                if m.metadata.response_code == ResponseCode::NXDomain {
                    self.cache()
                        .insert_negative(&name, qtype, true, negative_ttl, now);
                    return Resolved {
                        rcode: ResponseCode::NXDomain,
                        answers: vec![],
                        soa,
                    };
                }
                // Bailiwick: a server may only tell us about its own zone;
                // and only the records about the question are believed.
                let in_zone: Vec<Record> = m
                    .answers
                    .iter()
                    .filter(|r| zone.zone_of(&r.name))
                    .cloned()
                    .collect();
                let answers = scrub::answer_chain(&in_zone, &name, qtype);
                if !answers.is_empty() {
                    self.cache().insert_records(&answers, now);
                    let target = cname_target(&answers, &name, qtype);
                    return match target {
                        Some(next) if depth < MAX_DEPTH => {
                            let mut more = self.iterate(ctx, next, qtype, depth + 1).await;
                            let mut all = answers;
                            all.append(&mut more.answers);
                            more.answers = all;
                            more
                        }
                        _ => Resolved {
                            rcode: ResponseCode::NoError,
                            answers,
                            soa: None,
                        },
                    };
                }
                let found = match m.metadata.authoritative {
                    true => None,
                    false => scrub::referral(&m.authorities, &m.additionals, &name, &zone),
                };
                match found {
                    Some(scrub::Referral { child, ns, glue }) => {
                        {
                            let mut cache = self.cache();
                            cache.insert_records(&ns, now);
                            cache.insert_records(&glue, now);
                        }
                        let mut next: Vec<SocketAddr> = self.server_addrs(&glue).collect();
                        if next.is_empty() {
                            // Glueless delegation: find a server's address first.
                            for r in &ns {
                                let RData::NS(target) = &r.data else { continue };
                                let found = self
                                    .iterate(ctx, target.0.clone(), RecordType::A, depth + 1)
                                    .await;
                                next.extend(self.server_addrs(&found.answers));
                                if !next.is_empty() {
                                    break;
                                }
                            }
                        }
                        if next.is_empty() {
                            return Resolved::servfail();
                        }
                        zone = child;
                        servers = next;
                    }
                    _ => {
                        // NODATA: the name exists without this type.
                        self.cache()
                            .insert_negative(&name, qtype, false, negative_ttl, now);
                        return Resolved {
                            rcode: ResponseCode::NoError,
                            answers: vec![],
                            soa,
                        };
                    }
                }
            }
            Resolved::servfail()
        })
    }
}

/// When `answers` is a CNAME chain from `name` that does not end in a record
/// of `qtype`, the name to resolve next.
fn cname_target(answers: &[Record], name: &Name, qtype: RecordType) -> Option<Name> {
    if qtype == RecordType::CNAME {
        return None;
    }
    let mut current = name.to_lowercase();
    for _ in 0..answers.len() {
        if answers
            .iter()
            .any(|r| r.name.to_lowercase() == current && r.record_type() == qtype)
        {
            return None;
        }
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(t) if r.name.to_lowercase() == current => Some(t.0.to_lowercase()),
            _ => None,
        })?;
        current = next;
    }
    Some(current)
}

impl Handler for Resolver {
    async fn handle(self: Arc<Self>, bytes: Vec<u8>, peer: Peer) -> Option<Vec<u8>> {
        let mut span = self.rec.begin(Ctx::new_root(), Layer::Application);
        let serve = |outcome, id, name: String, qtype: String| Event::DnsServe {
            role: "recursive resolver".into(),
            name,
            qtype,
            id,
            transport: peer.transport.to_string(),
            outcome,
        };
        let query = match check_query(&bytes) {
            Ok(q) => q,
            Err(rejected) => {
                self.rec.end(
                    span,
                    serve(rejected.outcome, rejected.id, "?".into(), "?".into()),
                );
                return rejected.reply;
            }
        };
        span = span.linked_to(Correlation::Dns {
            from: peer.remote,
            to: peer.local,
            id: query.metadata.id,
        });
        let q = query.queries[0].clone();
        let recurse = query.metadata.recursion_desired;
        let resolved = self
            .resolve(span.ctx(), q.name(), q.query_type(), recurse)
            .await;
        let mut r = response_to(&query);
        r.metadata.recursion_available = true;
        r.metadata.response_code = resolved.rcode;
        r.add_answers(resolved.answers);
        if let Some(soa) = resolved.soa {
            r.add_authority(soa);
        }
        let outcome = outcome_of(&r);
        let (reply, truncated) = encode(&r, &query, peer.transport);
        let outcome = if truncated {
            DnsOutcome::Truncated
        } else {
            outcome
        };
        self.rec.end(
            span,
            serve(
                outcome,
                query.metadata.id,
                q.name().to_string(),
                q.query_type().to_string(),
            ),
        );
        Some(reply)
    }
}
