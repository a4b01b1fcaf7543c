//! The recursive, caching resolver ("ISP DNS"): it answers clients by asking
//! the hierarchy itself, root → TLD → authoritative, following referrals and
//! glue (RFC 1034 §5.3.3), and caches answers by TTL (C08, C09).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use weblab_trace::{CacheLevel, Correlation, Ctx, DnsOutcome, Event, Layer, Recorder};

use crate::cache::{Cached, name_key};
use crate::error::DnsError;
pub use crate::iterate::Resolved;
use crate::iterate::{
    Ask, Ede, Followed, Heard, Iteration, Knowledge, MAX_CNAMES, Settings, Step, follow,
};
use crate::kept::{Found, Kept, Slot, ttl_fields};
use crate::message::{Transport, check_query, encode, outcome_of, record_text, response_to};
use crate::net::{Handler, Peer, build_query, exchange_tcp, exchange_udp};
use crate::rotation::Turns;

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
    /// Cache hits' replies, kept for a role whose spans go nowhere: a copy
    /// with the query's id and the TTL left is sent while the cache entry
    /// it was made from is still the one there.
    kept: Kept<FromCache>,
}

/// The cache entry a kept reply was made from.
struct FromCache {
    /// The question's name, lowercase wire form.
    name: Vec<u8>,
    qtype: RecordType,
    generation: u64,
}

/// What a kept reply gave.
enum Use {
    Reply(Vec<u8>),
    /// The turn of the RRset has no reply yet.
    Missing(usize),
    /// The cache entry is gone or another one: the kept reply is too.
    Stale,
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
            kept: Kept::default(),
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
                why: None,
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
        let f = self.follow(name, qtype, Instant::now());
        if f.found.is_none() && !record_miss {
            return None;
        }
        // The CNAMEs followed, then what their end holds.
        let mut answer: Vec<String> = Vec::new();
        if let Some((cached, _)) = &f.found {
            answer.extend(f.chain.iter().map(record_text));
            match cached {
                Cached::Records(rs) => answer.extend(rs.iter().map(record_text)),
                Cached::NxDomain(_) => answer.push("NXDOMAIN".into()),
                Cached::NoData(_) => answer.push("NODATA".into()),
            }
        }
        self.rec.end(
            span,
            Event::CacheLookup {
                level: CacheLevel::Resolver,
                name: name.to_string(),
                hit: f.found.is_some(),
                answer,
            },
        );
        self.cached_answer(f, None).map(|(r, _)| r)
    }

    /// What the cache holds for a question, the CNAMEs it holds followed.
    fn follow(&self, name: &Name, qtype: RecordType, now: Instant) -> Followed {
        follow(&mut self.knowledge().cache, name, qtype, now, MAX_CNAMES)
    }

    /// The answer `f` found, its RRset taking its turn (C11: from the cache
    /// too; at turn `at`, or the next), the CNAMEs first; and the turn.
    fn cached_answer(
        &self,
        f: Followed,
        at: Option<usize>,
    ) -> Option<(Resolved, Option<(Turns, usize)>)> {
        let (cached, _) = f.found?;
        let mut r = Resolved::from_cache(cached);
        let turn = self.rotation.rotate(&mut r.answers, at);
        if !f.chain.is_empty() {
            let mut answers = f.chain;
            answers.append(&mut r.answers);
            r.answers = answers;
        }
        Some((r, turn))
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
                            false => Resolved::servfail(
                                Ede::OTHER,
                                format!(
                                    "name server addresses nested more than {MAX_DEPTH} lookups deep"
                                ),
                            ),
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
    // Only to a client that sent EDNS (an OPT of ours answers its OPT).
    if let (Some(why), Some(edns)) = (resolved.why, r.edns.as_mut()) {
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDE_OPTION, why.option_data()));
    }
    r
}

/// The EDNS option code of an Extended DNS Error (RFC 8914 §2).
const EDE_OPTION: u16 = 15;

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

impl Resolver {
    /// The kept reply to `bytes`, if its cache entry is still the one
    /// there, with `bytes`' id and the TTL left.
    fn kept_reply(&self, bytes: &[u8], transport: Transport) -> Option<Use> {
        self.kept.find(bytes, transport, |found| {
            let meta = match &found {
                Found::Ready(_, m) | Found::Missing(_, m) => m,
            };
            let probe = self
                .knowledge()
                .cache
                .probe(&meta.name, meta.qtype, Instant::now());
            let Some(p) = probe.filter(|p| p.generation == meta.generation) else {
                return Use::Stale;
            };
            match found {
                Found::Ready(slot, _) => Use::Reply(slot.copy_for(bytes, Some(p.left))),
                Found::Missing(turn, _) => Use::Missing(turn),
            }
        })
    }

    /// A cache hit's reply (at turn `at` of a rotating RRset, or its next
    /// turn), kept when it was made from one cache entry whose TTL every
    /// record carries.
    fn cache_reply(
        &self,
        bytes: &[u8],
        query: &Message,
        transport: Transport,
        at: Option<usize>,
    ) -> Option<Vec<u8>> {
        let q = &query.queries[0];
        let f = self.follow(q.name(), q.query_type(), Instant::now());
        // A reply made from one entry alone is kept (a chain of CNAMEs
        // spans several).
        let probe = f
            .found
            .as_ref()
            .filter(|_| f.chain.is_empty())
            .map(|(_, p)| *p);
        let (resolved, turn) = self.cached_answer(f, at)?;
        let reply = encode(&response(query, resolved), query, transport).0;
        if let (Some(p), Some(fields)) = (probe, ttl_fields(&reply))
            && fields.iter().all(|(_, ttl)| *ttl == p.left)
        {
            let slot = Slot {
                bytes: reply.as_slice().into(),
                ttls: fields.iter().map(|(at, _)| *at).collect(),
            };
            self.kept.keep(bytes, transport, turn, slot, || FromCache {
                name: name_key(q.name()),
                qtype: q.query_type(),
                generation: p.generation,
            });
        }
        Some(reply)
    }
}

impl Handler for Resolver {
    // In every reply, refusals included (as Unbound does), or dig warns
    // "recursion requested but not available".
    const RECURSIVE: bool = true;

    /// A cache hit from an allowed client is answered on the spot.
    fn answer_now(&self, bytes: &[u8], peer: Peer) -> Option<Option<Vec<u8>>> {
        let untraced = !self.rec.keeps_server_spans();
        let allowed = self.cfg.allows(peer.remote.ip());
        let mut at = None;
        if untraced && allowed {
            match self.kept_reply(bytes, peer.transport) {
                Some(Use::Reply(reply)) => return Some(Some(reply)),
                Some(Use::Missing(turn)) => at = Some(turn),
                Some(Use::Stale) => self.kept.forget(bytes, peer.transport),
                None => {}
            }
        }
        let query = check_query(bytes, Self::RECURSIVE).ok()?;
        if !allowed {
            return None;
        }
        let q = &query.queries[0];
        if untraced {
            // Nobody keeps the spans: answer without building them.
            return self
                .cache_reply(bytes, &query, peer.transport, at)
                .map(Some);
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
        let query = match check_query(&bytes, Self::RECURSIVE) {
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
            Resolved::refused(
                Ede::PROHIBITED,
                format!("{} may not ask this resolver", peer.remote.ip()),
            )
        };
        Some(self.reply(&query, peer, span, resolved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{RData, Record, rdata::A};
    use weblab_trace::{Collector, Detail};

    /// A resolver whose spans go nowhere (a `serve`d role without --otlp),
    /// with `name` cached as `addrs` (TTL 300).
    fn resolver(name: &str, addrs: &[[u8; 4]]) -> Resolver {
        let rec = Recorder::new(
            Collector::with_sinks(Detail::Full, None, Vec::new()),
            "resolver",
            "127.0.1.1",
            "resolver",
        );
        let r = Resolver::new(
            ResolverConfig {
                root_hints: vec![],
                upstream_port: 53,
                bind: "127.0.1.1".parse().unwrap(),
                timeout: Duration::from_secs(1),
                qname_minimisation: false,
                allow: ResolverConfig::loopback_only(),
            },
            rec,
        );
        cache(&r, name, addrs);
        r
    }

    fn cache(r: &Resolver, name: &str, addrs: &[[u8; 4]]) {
        let name = Name::from_ascii(name).unwrap();
        let records: Vec<Record> = addrs
            .iter()
            .map(|a| {
                Record::from_rdata(
                    name.clone(),
                    300,
                    RData::A(A::from(std::net::Ipv4Addr::from(*a))),
                )
            })
            .collect();
        r.knowledge().cache.insert_records(&records, Instant::now());
    }

    #[test]
    fn a_failure_says_why_in_an_extended_error_to_a_client_with_edns() {
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_ascii("x.test.").unwrap(),
            RecordType::A,
        ));
        let why = || {
            Resolved::servfail(
                Ede::NO_REACHABLE_AUTHORITY,
                "no server of test. gave an answer".into(),
            )
        };
        // Without EDNS there is nowhere to put it.
        let plain = Message::from_vec(&response(&q, why()).to_vec().unwrap()).unwrap();
        assert_eq!(plain.metadata.response_code, ResponseCode::ServFail);
        assert!(plain.edns.is_none());
        q.set_edns(hickory_proto::op::Edns::new());
        let m = Message::from_vec(&response(&q, why()).to_vec().unwrap()).unwrap();
        let opt = m.edns.expect("an OPT in the reply");
        let found = opt.options().as_ref().iter().find_map(|(code, o)| match o {
            EdnsOption::Unknown(15, data) => Some((*code, data.clone())),
            _ => None,
        });
        let (_, data) = found.expect("an EDE option");
        assert_eq!(&data[..2], &22u16.to_be_bytes());
        assert_eq!(&data[2..], b"no server of test. gave an answer");
    }

    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut q = Message::query();
        q.metadata.id = id;
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        q.to_vec().unwrap()
    }

    fn peer(from: &str) -> Peer {
        Peer {
            remote: format!("{from}:5353").parse().unwrap(),
            local: "127.0.1.1:53".parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    fn ask(r: &Resolver, id: u16, name: &str) -> Message {
        let reply = r.answer_now(&query(id, name), peer("127.0.0.2")).unwrap();
        Message::from_vec(&reply.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn refusals_say_that_recursion_is_available() {
        let r = Arc::new(resolver("www.k.test.", &[[127, 0, 0, 7]]));
        let mut q = Message::from_vec(&query(7, "version.bind.")).unwrap();
        let mut asked = q.queries[0].clone();
        asked.set_query_class(hickory_proto::rr::DNSClass::CH);
        q.queries = vec![asked];
        let reply = r
            .clone()
            .handle(q.to_vec().unwrap(), peer("127.0.0.2"))
            .await;
        let reply = Message::from_vec(&reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(reply.metadata.recursion_available);
        assert_eq!(reply.queries, q.queries);
        // NOTIMP too.
        let mut bytes = query(8, "www.k.test.");
        bytes[2] = (bytes[2] & 0x87) | (4 << 3); // NOTIFY
        let reply = r.handle(bytes, peer("127.0.0.2")).await;
        let reply = Message::from_vec(&reply.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
        assert!(reply.metadata.recursion_available);
    }

    #[test]
    fn a_kept_cache_hit_is_the_reply_made_afresh_with_its_id_and_time_left() {
        let r = resolver("www.k.test.", &[[127, 0, 0, 7]]);
        let first = ask(&r, 1, "www.k.test.");
        assert_eq!(r.kept.held().0, 1, "the reply was kept");
        let name = name_key(&Name::from_ascii("www.k.test.").unwrap());
        let left = || {
            r.knowledge()
                .cache
                .probe(&name, RecordType::A, Instant::now())
                .unwrap()
                .left
        };
        let before = left();
        let again = ask(&r, 0xBEEF, "www.k.test.");
        let after = left();
        assert_eq!(again.metadata.id, 0xBEEF);
        assert_eq!(again.answers.len(), 1);
        assert_eq!(again.answers[0].data, first.answers[0].data);
        let ttl = again.answers[0].ttl;
        assert!(
            (after..=before).contains(&ttl),
            "{after} <= {ttl} <= {before}"
        );
        // Everything but the id and the TTL is what a fresh resolver says.
        let fresh = resolver("www.k.test.", &[[127, 0, 0, 7]]);
        let mut a = again.clone();
        let mut b = ask(&fresh, 0xBEEF, "www.k.test.");
        a.answers[0].ttl = 0;
        b.answers[0].ttl = 0;
        assert_eq!(a.to_vec().unwrap(), b.to_vec().unwrap());
    }

    #[test]
    fn a_kept_reply_goes_when_its_cache_entry_changes() {
        let r = resolver("www.k.test.", &[[127, 0, 0, 7]]);
        ask(&r, 1, "www.k.test.");
        ask(&r, 2, "www.k.test.");
        // The name is cached again with another address.
        cache(&r, "www.k.test.", &[[127, 0, 0, 8]]);
        let m = ask(&r, 3, "www.k.test.");
        assert_eq!(m.answers[0].data, RData::A(A::new(127, 0, 0, 8)));
        assert_eq!(
            ask(&r, 4, "www.k.test.").answers[0].data,
            RData::A(A::new(127, 0, 0, 8))
        );
    }

    #[test]
    fn a_cached_cname_chain_is_answered_from_the_cache_and_not_kept() {
        let r = resolver("host.k.test.", &[[127, 0, 0, 9]]);
        let www = Name::from_ascii("www.k.test.").unwrap();
        r.knowledge().cache.insert_records(
            &[Record::from_rdata(
                www,
                300,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(
                    Name::from_ascii("host.k.test.").unwrap(),
                )),
            )],
            Instant::now(),
        );
        let m = ask(&r, 1, "www.k.test.");
        let types: Vec<RecordType> = m.answers.iter().map(Record::record_type).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::A]);
        // Made from two cache entries: nothing kept that one could outlive.
        assert_eq!(r.kept.held().0, 0);
        cache(&r, "host.k.test.", &[[127, 0, 0, 10]]);
        assert_eq!(
            ask(&r, 2, "www.k.test.").answers[1].data,
            RData::A(A::new(127, 0, 0, 10))
        );
    }

    #[test]
    fn kept_cache_hits_take_the_rrsets_turns_and_keep_the_allow_list() {
        let r = resolver(
            "rr.k.test.",
            &[[127, 0, 0, 1], [127, 0, 0, 2], [127, 0, 0, 3]],
        );
        let firsts: Vec<RData> = (0..6)
            .map(|i| ask(&r, i, "rr.k.test.").answers[0].data.clone())
            .collect();
        for i in 0..3 {
            assert_eq!(firsts[i], firsts[i + 3]);
            assert_ne!(firsts[i], firsts[(i + 1) % 3]);
        }
        assert_eq!(r.kept.held().0, 1);
        // A client outside the allow list is not answered from what was
        // kept (it goes on to be refused).
        assert!(
            r.answer_now(&query(9, "rr.k.test."), peer("192.0.2.1"))
                .is_none()
        );
    }
}
