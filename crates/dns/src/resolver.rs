//! The recursive, caching resolver ("ISP DNS"): it answers clients by asking
//! the hierarchy itself, root → TLD → authoritative, following referrals and
//! glue (RFC 1034 §5.3.3), and caches answers by TTL (C08, C09).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use weblab_trace::{CacheLevel, Correlation, Ctx, DnsOutcome, Event, Layer, Recorder};

use crate::cache::Cached;
use crate::error::DnsError;
pub use crate::iterate::Resolved;
use crate::iterate::{Ask, Heard, Iteration, Knowledge, Settings, Step};
use crate::message::{Transport, check_query, encode, outcome_of, record_text, response_to};
use crate::net::{Handler, Peer, build_query, exchange_tcp, exchange_udp};

/// Settings of a resolver.
#[derive(Clone, Debug)]
pub struct ResolverConfig {
    /// Addresses of the root servers (the "root hints").
    pub root_hints: Vec<IpAddr>,
    /// The port every name server of the world listens on.
    pub upstream_port: u16,
    /// Source address of the resolver's own queries.
    pub bind: IpAddr,
    /// The longest wait for one server (a measured server gets less).
    pub timeout: Duration,
    /// QNAME minimisation (RFC 9156): each server is told only as much of
    /// the name as it needs.
    pub qname_minimisation: bool,
    /// Who may ask for recursion; others are REFUSED (an open resolver
    /// is an amplifier for anyone's attack).
    pub allow: Vec<IpNet>,
}

impl ResolverConfig {
    /// Loopback only: the default of a world on 127.0.0.0/8.
    pub fn loopback_only() -> Vec<IpNet> {
        ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }

    fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// Nested resolutions (glueless name servers inside glueless ones)
/// allowed for one question.
const MAX_DEPTH: u8 = 4;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A recursive resolver: [`crate::iterate`]'s algorithm with sockets and
/// the clock around it.
pub struct Resolver {
    cfg: ResolverConfig,
    settings: Settings,
    knowledge: Mutex<Knowledge>,
    rotation: crate::rotation::Rotation,
    rec: Recorder,
}

impl Resolver {
    pub fn new(cfg: ResolverConfig, rec: Recorder) -> Self {
        let settings = Settings {
            root_hints: cfg.root_hints.clone(),
            port: cfg.upstream_port,
            max_wait: cfg.timeout,
            minimise: cfg.qname_minimisation,
        };
        Resolver {
            cfg,
            settings,
            knowledge: Mutex::new(Knowledge::default()),
            rotation: Default::default(),
            rec,
        }
    }

    fn knowledge(&self) -> std::sync::MutexGuard<'_, Knowledge> {
        self.knowledge.lock().unwrap_or_else(|p| p.into_inner())
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
        if let Some(r) = self.cache_answer(ctx, name, qtype, true) {
            return r;
        }
        match recurse {
            true => self.iterate(ctx, name.clone(), qtype, 0).await,
            false => Resolved {
                rcode: ResponseCode::Refused,
                answers: vec![],
                soa: None,
            },
        }
    }

    /// The cache's answer, its check recorded under `ctx` (a miss only
    /// when `record_miss`).
    fn cache_answer(
        &self,
        ctx: Ctx,
        name: &Name,
        qtype: RecordType,
        record_miss: bool,
    ) -> Option<Resolved> {
        let span = self.rec.begin(ctx, Layer::Application);
        let cached = self.knowledge().cache.get(name, qtype, Instant::now());
        if cached.is_none() && !record_miss {
            return None;
        }
        let answer: Vec<String> = match &cached {
            Some(Cached::Records(rs)) => rs.iter().map(record_text).collect(),
            Some(Cached::NxDomain(_)) => vec!["NXDOMAIN".into()],
            Some(Cached::NoData(_)) => vec!["NODATA".into()],
            None => vec![],
        };
        self.rec.end(
            span,
            Event::CacheLookup {
                level: CacheLevel::Resolver,
                name: name.to_string(),
                hit: cached.is_some(),
                answer,
            },
        );
        let mut r = Resolved::from_cache(cached?);
        // From the cache too, each RRset takes its turns (C11).
        self.rotation.rotate(&mut r.answers, None);
        Some(r)
    }

    /// One step of the algorithm, with the cache and RTTs locked only
    /// for the step (never across a query).
    fn step(&self, it: &mut Iteration, heard: Option<Heard<'_>>) -> Step {
        let mut k = self.knowledge();
        let now = Instant::now();
        match heard {
            None => it.start(&mut k, &self.settings, now),
            Some(h) => it.on(h, &mut k, &self.settings, now),
        }
    }

    /// Sends one non-recursive query, over UDP and again over TCP when the
    /// answer comes back truncated (C10).
    async fn ask(&self, ctx: Ctx, ask: &Ask) -> Result<Message, DnsError> {
        for why in &ask.why {
            let note = self.rec.begin(ctx, Layer::Application);
            self.rec.end(note, Event::Note { text: why.clone() });
        }
        let (server, name, qtype) = (ask.server, &ask.name, ask.qtype);
        let query = build_query(name, qtype, false);
        for transport in [Transport::Udp, Transport::Tcp] {
            let span = self.rec.begin(ctx, Layer::Application);
            let result = match transport {
                Transport::Udp => exchange_udp(self.cfg.bind, server, &query, ask.wait).await,
                Transport::Tcp => exchange_tcp(self.cfg.bind, server, &query, ask.wait).await,
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

    /// Drives one question's [`Iteration`] to its answer; boxed because a
    /// glueless name server's address is itself resolved first.
    fn iterate(
        &self,
        ctx: Ctx,
        name: Name,
        qtype: RecordType,
        depth: u8,
    ) -> BoxFuture<'_, Resolved> {
        Box::pin(async move {
            let mut it = Iteration::new(&name, qtype, &self.settings);
            let mut step = self.step(&mut it, None);
            loop {
                step = match step {
                    Step::Done(r) => return r,
                    Step::FindAddress(server) => {
                        let found = match depth < MAX_DEPTH {
                            true => self.iterate(ctx, server, RecordType::A, depth + 1).await,
                            false => Resolved::servfail(),
                        };
                        self.step(&mut it, Some(Heard::Address(&found)))
                    }
                    Step::Ask(ask) => {
                        let sent = Instant::now();
                        let heard = self.ask(ctx, &ask).await;
                        let heard = match &heard {
                            Ok(m) => Heard::Reply(m, sent.elapsed()),
                            Err(e) if e.is_timeout() => Heard::Timeout,
                            Err(_) => Heard::Failed,
                        };
                        self.step(&mut it, Some(heard))
                    }
                };
            }
        })
    }
}

impl Resolver {
    /// The reply to `query` carrying `resolved`, and the serving span ended.
    fn reply(
        &self,
        query: &Message,
        peer: Peer,
        span: weblab_trace::collector::Pending,
        resolved: Resolved,
    ) -> Vec<u8> {
        let r = response(query, resolved);
        let outcome = outcome_of(&r);
        let (reply, truncated) = encode(&r, query, peer.transport);
        let outcome = if truncated {
            DnsOutcome::Truncated
        } else {
            outcome
        };
        let q = &query.queries[0];
        self.rec.end(
            span,
            serve_event(
                peer,
                outcome,
                query.metadata.id,
                q.name().to_string(),
                q.query_type().to_string(),
            ),
        );
        reply
    }
}

/// The response to `query` carrying `resolved`.
fn response(query: &Message, resolved: Resolved) -> Message {
    let mut r = response_to(query);
    r.metadata.recursion_available = true;
    r.metadata.response_code = resolved.rcode;
    r.add_answers(resolved.answers);
    if let Some(soa) = resolved.soa {
        r.add_authority(soa);
    }
    r
}

fn serve_event(peer: Peer, outcome: DnsOutcome, id: u16, name: String, qtype: String) -> Event {
    Event::DnsServe {
        role: "recursive resolver".into(),
        name,
        qtype,
        id,
        transport: peer.transport.to_string(),
        outcome,
    }
}

impl Handler for Resolver {
    /// A cache hit from an allowed client is answered on the spot.
    fn answer_now(&self, bytes: &[u8], peer: Peer) -> Option<Option<Vec<u8>>> {
        let query = check_query(bytes).ok()?;
        if !self.cfg.allows(peer.remote.ip()) {
            return None;
        }
        let q = &query.queries[0];
        if !self.rec.keeps_server_spans() {
            // Nobody keeps the spans: answer without building them.
            let cached = self
                .knowledge()
                .cache
                .get(q.name(), q.query_type(), Instant::now())?;
            let mut resolved = Resolved::from_cache(cached);
            self.rotation.rotate(&mut resolved.answers, None);
            return Some(Some(
                encode(&response(&query, resolved), &query, peer.transport).0,
            ));
        }
        let span = self
            .rec
            .begin(Ctx::new_root(), Layer::Application)
            .linked_to(Correlation::Dns {
                from: peer.remote,
                to: peer.local,
                id: query.metadata.id,
            });
        let resolved = self.cache_answer(span.ctx(), q.name(), q.query_type(), false)?;
        Some(Some(self.reply(&query, peer, span, resolved)))
    }

    async fn handle(self: Arc<Self>, bytes: Vec<u8>, peer: Peer) -> Option<Vec<u8>> {
        let mut span = self.rec.begin(Ctx::new_root(), Layer::Application);
        let query = match check_query(&bytes) {
            Ok(q) => q,
            Err(rejected) => {
                let event =
                    serve_event(peer, rejected.outcome, rejected.id, "?".into(), "?".into());
                self.rec.end(span, event);
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
        let resolved = if self.cfg.allows(peer.remote.ip()) {
            self.resolve(span.ctx(), q.name(), q.query_type(), recurse)
                .await
        } else {
            let note = self.rec.begin(span.ctx(), Layer::Application);
            let text = format!(
                "{} is not in the resolver's allow list: REFUSED, nothing looked up",
                peer.remote.ip()
            );
            self.rec.end(note, Event::Note { text });
            Resolved {
                rcode: ResponseCode::Refused,
                answers: vec![],
                soa: None,
            }
        };
        Some(self.reply(&query, peer, span, resolved))
    }
}
