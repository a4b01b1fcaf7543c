//! The resolver's algorithm (RFC 1034 §5.3.3) as a pure step: the state
//! of one question goes in with what just happened — a reply, a timeout,
//! an address found for a name server — and the next thing to do comes
//! out: ask this server this question, find that name server's address,
//! or the answer. No sockets and no clock in here: [`crate::resolver`]
//! sends the queries and passes the time, and the tests below drive the
//! whole algorithm with hand-made replies.
//!
//! What it does, in order:
//! 1. start from the deepest zone whose servers the cache knows, else the
//!    root hints;
//! 2. ask that zone's servers, the fastest measured first ([`crate::rtt`]),
//!    each at most twice, waiting about four round trips;
//! 3. with QNAME minimisation on (RFC 9156), tell each server only one
//!    label more than its zone, asking type A, until a referral or the
//!    whole name;
//! 4. follow referrals (glue, or resolve a glueless server's name first),
//!    restart at a CNAME's target, and stop at the answer, NXDOMAIN or
//!    NODATA — caching only what [`crate::scrub`] believes.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::cache::{Cache, Cached, Probe};
use crate::rtt::{Rtt, UNKNOWN};
use crate::scrub;

/// Referrals followed for one name (a loop guard).
const MAX_REFERRALS: u8 = 12;
/// CNAMEs followed across zones for one question.
pub const MAX_CNAMES: u8 = 8;
/// Queries sent for one name, whatever happens (timeouts, minimisation).
const MAX_QUERIES: u16 = 32;
/// Times one server is asked one question before the next is tried.
const TRIES_PER_SERVER: u8 = 2;
/// Minimised queries for one name before the whole name is asked
/// (RFC 9156 §2.3's MAX_MINIMISE_COUNT).
const MAX_MINIMISE: u8 = 10;
/// Negative-cache time when a server sends no SOA (RFC 2308 §5 says not to
/// cache at all; a few seconds protects the hierarchy from retries).
const NEGATIVE_WITHOUT_SOA: u32 = 5;

/// The outcome of resolving one question.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    /// The SOA for negative answers.
    pub soa: Option<Record>,
    /// Why it failed, for a client that speaks EDNS (RFC 8914).
    pub why: Option<Ede>,
}

/// An Extended DNS Error (RFC 8914): an INFO-CODE and words on what
/// happened, which `dig` prints as `EDE: 22 (No Reachable Authority): …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ede {
    pub code: u16,
    pub text: String,
}

impl Ede {
    /// 0: Other.
    pub const OTHER: u16 = 0;
    /// 18: Prohibited (the client may not ask).
    pub const PROHIBITED: u16 = 18;
    /// 22: No Reachable Authority.
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;

    /// The option's bytes: the code, then the text (UTF-8).
    pub fn option_data(&self) -> Vec<u8> {
        let mut data = self.code.to_be_bytes().to_vec();
        data.extend_from_slice(self.text.as_bytes());
        data
    }
}

impl Resolved {
    /// SERVFAIL, saying why.
    pub fn servfail(code: u16, text: String) -> Self {
        Resolved {
            rcode: ResponseCode::ServFail,
            answers: vec![],
            soa: None,
            why: Some(Ede { code, text }),
        }
    }

    /// REFUSED, saying why.
    pub fn refused(code: u16, text: String) -> Self {
        Resolved {
            rcode: ResponseCode::Refused,
            answers: vec![],
            soa: None,
            why: Some(Ede { code, text }),
        }
    }

    /// The answer a cache entry gives.
    pub fn from_cache(cached: Cached) -> Self {
        let (rcode, answers, soa) = match cached {
            Cached::Records(rs) => (ResponseCode::NoError, rs, None),
            Cached::NxDomain(soa) => (ResponseCode::NXDomain, vec![], soa),
            Cached::NoData(soa) => (ResponseCode::NoError, vec![], soa),
        };
        Resolved {
            rcode,
            answers,
            soa,
            why: None,
        }
    }
}

/// What the resolver knows across questions.
#[derive(Default)]
pub struct Knowledge {
    pub cache: Cache,
    pub rtt: Rtt,
}

/// Fixed settings of the iteration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub root_hints: Vec<IpAddr>,
    /// The port every name server listens on.
    pub port: u16,
    /// The longest wait for one server.
    pub max_wait: Duration,
    /// QNAME minimisation (RFC 9156).
    pub minimise: bool,
}

/// One query to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    pub server: SocketAddr,
    pub name: Name,
    pub qtype: RecordType,
    /// The zone whose server this is.
    pub zone: Name,
    /// How long to wait for the reply.
    pub wait: Duration,
    /// Why this server and this question, for the trace (empty when there
    /// was no choice to explain).
    pub why: Vec<String>,
}

/// What the iteration wants next.
#[derive(Debug, PartialEq)]
pub enum Step {
    Ask(Ask),
    /// A name server came without glue: resolve its A record, then pass
    /// the result back as [`Heard::Address`].
    FindAddress(Name),
    Done(Resolved),
}

/// What happened to the last step.
#[derive(Debug)]
pub enum Heard<'a> {
    /// A reply to the last [`Step::Ask`] after `rtt`.
    Reply(&'a Message, Duration),
    /// No reply within the wait.
    Timeout,
    /// The server could not be asked (refused connection, bad reply).
    Failed,
    /// The resolution a [`Step::FindAddress`] asked for.
    Address(&'a Resolved),
}

/// The state of one question.
#[derive(Debug)]
pub struct Iteration {
    qtype: RecordType,
    /// The name resolved now: the question's, or a CNAME's target.
    target: Name,
    /// CNAMEs followed so far, answered before the final records.
    chain: Vec<Record>,
    cnames: u8,
    zone: Name,
    /// The zone's servers and how often each was asked.
    servers: Vec<(IpAddr, u8)>,
    referrals: u8,
    queries: u16,
    minimise: bool,
    /// Labels of the name told to the current zone's servers.
    labels: u8,
    minimised: u8,
    /// Name servers without glue, still to resolve.
    glueless: Vec<Name>,
    /// The last question sent: server index, name, type.
    asked: Option<(usize, Name, RecordType)>,
    /// Said with the next query: why it is about another name.
    noted: Vec<String>,
}

/// What the cache holds for a question, CNAMEs followed.
#[derive(Debug)]
pub struct Followed {
    /// The CNAME records followed, in order.
    pub chain: Vec<Record>,
    /// Where they lead (the question's name when there are none).
    pub target: Name,
    /// The cache's answer for the target, if it has one, and its entry.
    pub found: Option<(Cached, Probe)>,
    /// More CNAMEs than allowed: a loop, or a chain too long to trust
    /// (nothing is `found` then).
    pub too_long: bool,
}

/// Looks `name`/`qtype` up in `cache`, following at most `max` cached
/// CNAMEs (not for a question about CNAMEs themselves, or ANY).
pub fn follow(
    cache: &mut Cache,
    name: &Name,
    qtype: RecordType,
    now: Instant,
    max: u8,
) -> Followed {
    let mut f = Followed {
        chain: Vec::new(),
        target: name.clone(),
        found: None,
        too_long: false,
    };
    loop {
        f.found = cache.get_probed(&f.target, qtype, now);
        if f.found.is_some() || matches!(qtype, RecordType::CNAME | RecordType::ANY) {
            return f;
        }
        let Some(Cached::Records(cname)) = cache.get(&f.target, RecordType::CNAME, now) else {
            return f;
        };
        let Some(next) = cname.iter().find_map(|r| match &r.data {
            RData::CNAME(t) => Some(t.0.to_lowercase()),
            _ => None,
        }) else {
            return f;
        };
        if f.chain.len() >= usize::from(max) {
            f.too_long = true;
            return f;
        }
        f.chain.extend(cname);
        f.target = next;
    }
}

fn addresses(records: &[Record]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for r in records {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            _ => continue,
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

impl Iteration {
    pub fn new(name: &Name, qtype: RecordType, settings: &Settings) -> Self {
        Iteration {
            qtype,
            target: name.to_lowercase(),
            chain: Vec::new(),
            cnames: 0,
            zone: Name::root(),
            servers: Vec::new(),
            referrals: 0,
            queries: 0,
            minimise: settings.minimise,
            labels: 1,
            minimised: 0,
            glueless: Vec::new(),
            asked: None,
            noted: Vec::new(),
        }
    }

    /// The first step: from the cache if it knows, else the first query.
    pub fn start(&mut self, k: &mut Knowledge, s: &Settings, now: Instant) -> Step {
        if let Some(step) = self.answer_from_cache(k, now) {
            return step;
        }
        self.enter_closest(k, s, now);
        self.next_query(k, s, now)
    }

    /// The answer for the current target from the cache, following the
    /// CNAMEs it holds (RFC 1034 §4.3.2, step 3: a CNAME restarts the
    /// lookup at its target); `None`, with the target moved to the end of
    /// what the cache knows, when a query is needed.
    fn answer_from_cache(&mut self, k: &mut Knowledge, now: Instant) -> Option<Step> {
        let f = follow(
            &mut k.cache,
            &self.target,
            self.qtype,
            now,
            MAX_CNAMES - self.cnames,
        );
        if f.found.is_none() && !f.too_long && !f.chain.is_empty() {
            self.noted.push(format!(
                "the cache holds a CNAME chain from {} to {}: only {} is asked for",
                self.target, f.target, f.target
            ));
        }
        self.cnames += f.chain.len() as u8;
        self.chain.extend(f.chain);
        self.target = f.target;
        if f.too_long {
            return Some(Step::Done(Resolved::servfail(
                Ede::OTHER,
                format!("a CNAME chain longer than {MAX_CNAMES}"),
            )));
        }
        f.found.map(|(c, _)| self.done(Resolved::from_cache(c)))
    }

    /// The next step after `heard`.
    pub fn on(&mut self, heard: Heard<'_>, k: &mut Knowledge, s: &Settings, now: Instant) -> Step {
        match heard {
            Heard::Address(found) => {
                let ips = addresses(&found.answers);
                if ips.is_empty() {
                    return self.next_glueless();
                }
                self.glueless.clear();
                self.servers = ips.into_iter().map(|ip| (ip, 0)).collect();
                self.next_query(k, s, now)
            }
            Heard::Timeout => {
                if let Some(ip) = self.asked_server() {
                    let waited = k.rtt.wait_for(ip, s.max_wait, now);
                    k.rtt.timed_out(ip, waited, now);
                }
                self.next_query(k, s, now)
            }
            Heard::Failed => {
                self.give_up_on_asked();
                self.next_query(k, s, now)
            }
            Heard::Reply(m, rtt) => {
                if let Some(ip) = self.asked_server() {
                    k.rtt.sample(ip, rtt, now);
                }
                self.on_reply(m, k, s, now)
            }
        }
    }

    fn asked_server(&self) -> Option<IpAddr> {
        let (i, _, _) = self.asked.as_ref()?;
        self.servers.get(*i).map(|(ip, _)| *ip)
    }

    /// A server that failed or answered uselessly is not asked again for
    /// this name.
    fn give_up_on_asked(&mut self) {
        if let Some((i, _, _)) = &self.asked
            && let Some(s) = self.servers.get_mut(*i)
        {
            s.1 = TRIES_PER_SERVER;
        }
    }

    fn done(&mut self, mut r: Resolved) -> Step {
        let mut answers = std::mem::take(&mut self.chain);
        answers.append(&mut r.answers);
        r.answers = answers;
        Step::Done(r)
    }

    /// Start at the deepest zone whose servers' addresses the cache holds.
    fn enter_closest(&mut self, k: &mut Knowledge, s: &Settings, now: Instant) {
        let name = self.target.clone();
        for labels in (1..=name.num_labels()).rev() {
            let zone = name.trim_to(labels as usize);
            let Some(Cached::Records(ns)) = k.cache.get(&zone, RecordType::NS, now) else {
                continue;
            };
            let mut ips = Vec::new();
            for r in &ns {
                if let RData::NS(target) = &r.data
                    && let Some(Cached::Records(a)) = k.cache.get(&target.0, RecordType::A, now)
                {
                    for ip in addresses(&a) {
                        if !ips.contains(&ip) {
                            ips.push(ip);
                        }
                    }
                }
            }
            if !ips.is_empty() {
                self.enter(zone, ips);
                return;
            }
        }
        self.enter(Name::root(), s.root_hints.clone());
    }

    fn enter(&mut self, zone: Name, ips: Vec<IpAddr>) {
        self.labels = zone.num_labels() + 1;
        self.zone = zone;
        self.servers = ips.into_iter().map(|ip| (ip, 0)).collect();
    }

    /// The name and type to tell the current zone's servers.
    fn question(&self) -> (Name, RecordType, Option<String>) {
        let full = self.target.num_labels();
        if self.minimise && self.labels < full && self.minimised < MAX_MINIMISE {
            let name = self.target.trim_to(self.labels as usize);
            let why = format!(
                "QNAME minimisation (RFC 9156): the {} servers are told only {name} (type A), not {}",
                zone_text(&self.zone),
                self.target
            );
            return (name, RecordType::A, Some(why));
        }
        (self.target.clone(), self.qtype, None)
    }

    fn next_query(&mut self, k: &mut Knowledge, s: &Settings, now: Instant) -> Step {
        if self.queries >= MAX_QUERIES {
            return Step::Done(Resolved::servfail(
                Ede::OTHER,
                format!("gave up after {MAX_QUERIES} queries"),
            ));
        }
        let srtt = |ip: IpAddr| k.rtt.srtt(ip, now);
        // The least-asked server, the fastest measured among equals.
        let Some(i) = (0..self.servers.len())
            .filter(|&i| self.servers[i].1 < TRIES_PER_SERVER)
            .min_by_key(|&i| {
                let (ip, tries) = self.servers[i];
                (tries, srtt(ip).unwrap_or(UNKNOWN))
            })
        else {
            return Step::Done(Resolved::servfail(
                Ede::NO_REACHABLE_AUTHORITY,
                format!(
                    "no server of {} gave an answer or a referral (each asked at most {TRIES_PER_SERVER} times)",
                    zone_text(&self.zone)
                ),
            ));
        };
        let (ip, tries) = self.servers[i];
        self.servers[i].1 += 1;
        self.queries += 1;
        let (name, qtype, minimised) = self.question();
        let mut why = std::mem::take(&mut self.noted);
        if self.servers.len() > 1 {
            let others: Vec<String> = self
                .servers
                .iter()
                .filter(|(o, _)| *o != ip)
                .map(|(o, _)| match srtt(*o) {
                    Some(d) => format!("{o} {}", ms(d)),
                    None => format!("{o} not measured"),
                })
                .collect();
            let own = srtt(ip).map_or_else(|| "not measured".into(), ms);
            let retry = if tries > 0 { ", asked again" } else { "" };
            why.push(format!(
                "{ip} chosen of {} servers for {} by smoothed RTT: {own}{retry} (others: {})",
                self.servers.len(),
                zone_text(&self.zone),
                others.join(", ")
            ));
        }
        why.extend(minimised);
        self.asked = Some((i, name.clone(), qtype));
        Step::Ask(Ask {
            server: SocketAddr::new(ip, s.port),
            name,
            qtype,
            zone: self.zone.clone(),
            wait: k.rtt.wait_for(ip, s.max_wait, now),
            why,
        })
    }

    fn next_glueless(&mut self) -> Step {
        if self.glueless.is_empty() {
            return Step::Done(Resolved::servfail(
                Ede::NO_REACHABLE_AUTHORITY,
                format!(
                    "no address found for any name server of {}",
                    zone_text(&self.zone)
                ),
            ));
        }
        Step::FindAddress(self.glueless.remove(0))
    }

    fn on_reply(&mut self, m: &Message, k: &mut Knowledge, s: &Settings, now: Instant) -> Step {
        let rcode = m.metadata.response_code;
        if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            // SERVFAIL, REFUSED (a lame server): the next server.
            self.give_up_on_asked();
            return self.next_query(k, s, now);
        }
        let Some((_, asked, _)) = self.asked.clone() else {
            return Step::Done(Resolved::servfail(
                Ede::OTHER,
                "a reply to no question asked".into(),
            ));
        };
        let soa = m
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA && self.zone.zone_of(&r.name))
            .cloned();
        let negative_ttl = soa
            .as_ref()
            .map_or(NEGATIVE_WITHOUT_SOA, |r| match &r.data {
                RData::SOA(d) => r.ttl.min(d.minimum),
                _ => r.ttl,
            });
        let minimised = asked.num_labels() < self.target.num_labels();
        if rcode == ResponseCode::NXDomain {
            // A missing name has no names below it (RFC 8020), so an
            // NXDOMAIN for a minimised name answers the whole question.
            k.cache
                .insert_negative(&asked, self.qtype, true, soa.clone(), negative_ttl, now);
            return self.done(Resolved {
                rcode: ResponseCode::NXDomain,
                answers: vec![],
                soa,
                why: None,
            });
        }
        let referral = match m.metadata.authoritative {
            true => None,
            false => scrub::referral(&m.authorities, &m.additionals, &asked, &self.zone),
        };
        if referral.is_none() && m.answers.is_empty() && !m.metadata.authoritative {
            // Neither data, nor a referral closer to the name, nor an
            // authoritative "no such data" (RFC 2308 §2.2): the server does
            // not serve the zone it was named for, or refers back up to
            // it (a lame delegation). The next server; SERVFAIL when none
            // is left, never a NODATA that nobody authoritative said.
            let who = self.asked.as_ref().and_then(|a| self.servers.get(a.0));
            self.noted.push(format!(
                "{} is lame for {}: no answer and no referral below it",
                who.map_or_else(|| "the server".into(), |s| s.0.to_string()),
                zone_text(&self.zone)
            ));
            self.give_up_on_asked();
            return self.next_query(k, s, now);
        }
        if minimised {
            return match referral {
                Some(r) => self.follow(r, k, s, now),
                None => {
                    // No zone cut at this label: one label more, same servers.
                    self.labels += 1;
                    self.minimised += 1;
                    self.servers.iter_mut().for_each(|s| s.1 = 0);
                    self.next_query(k, s, now)
                }
            };
        }
        // Bailiwick: a server may only tell us about its own zone; and
        // only the records about the question are believed.
        let in_zone: Vec<Record> = m
            .answers
            .iter()
            .filter(|r| self.zone.zone_of(&r.name))
            .cloned()
            .collect();
        let answers = scrub::answer_chain(&in_zone, &self.target, self.qtype);
        if !answers.is_empty() {
            k.cache.insert_records(&answers, now);
            return match cname_target(&answers, &self.target, self.qtype) {
                Some(next) => {
                    self.cnames += 1;
                    if self.cnames > MAX_CNAMES {
                        return Step::Done(Resolved::servfail(
                            Ede::OTHER,
                            format!("a CNAME chain longer than {MAX_CNAMES}"),
                        ));
                    }
                    self.chain.extend(answers);
                    self.target = next;
                    self.referrals = 0;
                    if let Some(step) = self.answer_from_cache(k, now) {
                        return step;
                    }
                    self.enter_closest(k, s, now);
                    self.next_query(k, s, now)
                }
                None => self.done(Resolved {
                    rcode: ResponseCode::NoError,
                    answers,
                    soa: None,
                    why: None,
                }),
            };
        }
        if let Some(r) = referral {
            return self.follow(r, k, s, now);
        }
        // NODATA: the name exists without this type.
        k.cache.insert_negative(
            &self.target,
            self.qtype,
            false,
            soa.clone(),
            negative_ttl,
            now,
        );
        self.done(Resolved {
            rcode: ResponseCode::NoError,
            answers: vec![],
            soa,
            why: None,
        })
    }

    fn follow(
        &mut self,
        r: scrub::Referral,
        k: &mut Knowledge,
        s: &Settings,
        now: Instant,
    ) -> Step {
        self.referrals += 1;
        if self.referrals > MAX_REFERRALS {
            return Step::Done(Resolved::servfail(
                Ede::OTHER,
                format!("more than {MAX_REFERRALS} referrals"),
            ));
        }
        k.cache.insert_records(&r.ns, now);
        k.cache.insert_records(&r.glue, now);
        let labels = self.labels;
        self.enter(r.child.clone(), addresses(&r.glue));
        self.labels = self.labels.max(labels);
        if !self.servers.is_empty() {
            return self.next_query(k, s, now);
        }
        // Glueless: the servers' own names must be resolved first; one
        // inside the child zone cannot be (its address is behind itself).
        self.glueless =
            r.ns.iter()
                .filter_map(|rec| match &rec.data {
                    RData::NS(t) if !r.child.zone_of(&t.0) => Some(t.0.to_lowercase()),
                    _ => None,
                })
                .collect();
        self.next_glueless()
    }
}

fn zone_text(zone: &Name) -> String {
    if zone.is_root() {
        "root".into()
    } else {
        zone.to_string()
    }
}

/// When `answers` is a CNAME chain from `name` that does not end in a record
/// of `qtype`, the name to resolve next.
fn cname_target(answers: &[Record], name: &Name, qtype: RecordType) -> Option<Name> {
    if qtype == RecordType::CNAME || qtype == RecordType::ANY {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::response_to;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn a(name: &str, addr: &str) -> Record {
        let IpAddr::V4(v4) = ip(addr) else { panic!() };
        Record::from_rdata(n(name), 300, RData::A(A(v4)))
    }

    fn ns(zone: &str, target: &str) -> Record {
        Record::from_rdata(n(zone), 300, RData::NS(NS(n(target))))
    }

    fn soa(zone: &str) -> Record {
        Record::from_rdata(
            n(zone),
            300,
            RData::SOA(SOA::new(n("ns."), n("h."), 1, 1, 1, 1, 60)),
        )
    }

    fn settings(minimise: bool) -> Settings {
        Settings {
            root_hints: vec![ip("127.0.0.1")],
            port: 53,
            max_wait: Duration::from_secs(2),
            minimise,
        }
    }

    /// The reply a server would give to `ask`.
    fn reply(ask: &Ask, build: impl FnOnce(&mut Message)) -> Message {
        let mut q = Message::query();
        q.add_query(Query::query(ask.name.clone(), ask.qtype));
        let mut m = response_to(&q);
        build(&mut m);
        m
    }

    fn expect_ask(step: Step) -> Ask {
        match step {
            Step::Ask(a) => a,
            other => panic!("expected a query, got {other:?}"),
        }
    }

    const RTT: Duration = Duration::from_millis(1);

    /// A three-level world: root (127.0.0.1) → test. (127.0.0.2) →
    /// myapp.test. (127.0.0.3, and a silent 127.0.0.4).
    fn walk(minimise: bool) -> (Vec<(String, String, String)>, Resolved, Knowledge) {
        let s = settings(minimise);
        let mut k = Knowledge::default();
        let now = Instant::now();
        let mut it = Iteration::new(&n("www.myapp.test."), RecordType::A, &s);
        let mut asked = Vec::new();
        let mut step = it.start(&mut k, &s, now);
        loop {
            let ask = match step {
                Step::Ask(a) => a,
                Step::Done(r) => return (asked, r, k),
                Step::FindAddress(n) => panic!("glueless {n}"),
            };
            asked.push((
                ask.server.ip().to_string(),
                ask.name.to_string(),
                ask.qtype.to_string(),
            ));
            let server = ask.server.ip().to_string();
            if server == "127.0.0.4" {
                step = it.on(Heard::Timeout, &mut k, &s, now);
                continue;
            }
            let m = reply(&ask, |m| match (server.as_str(), ask.name.num_labels()) {
                ("127.0.0.1", _) => {
                    m.add_authority(ns("test.", "ns.test."));
                    m.add_additional(a("ns.test.", "127.0.0.2"));
                }
                ("127.0.0.2", _) => {
                    m.add_authority(ns("myapp.test.", "ns1.myapp.test."));
                    m.add_authority(ns("myapp.test.", "ns2.myapp.test."));
                    m.add_additional(a("ns2.myapp.test.", "127.0.0.4"));
                    m.add_additional(a("ns1.myapp.test.", "127.0.0.3"));
                }
                _ => {
                    m.metadata.authoritative = true;
                    m.add_answer(a("www.myapp.test.", "127.0.9.9"));
                }
            });
            step = it.on(Heard::Reply(&m, RTT), &mut k, &s, now);
        }
    }

    #[test]
    fn it_walks_root_tld_and_zone_and_skips_a_silent_server() {
        let (asked, r, _) = walk(false);
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert_eq!(r.answers, [a("www.myapp.test.", "127.0.9.9")]);
        let servers: Vec<&str> = asked.iter().map(|(s, _, _)| s.as_str()).collect();
        // Both myapp.test. servers are unmeasured: the first listed (the
        // silent one) is asked, times out, and the other answers.
        assert_eq!(
            servers,
            ["127.0.0.1", "127.0.0.2", "127.0.0.4", "127.0.0.3"]
        );
        assert!(asked.iter().all(|(_, name, _)| name == "www.myapp.test."));
    }

    #[test]
    fn the_next_question_goes_to_the_server_that_answered_fast() {
        let (_, _, mut k) = walk(false);
        let s = settings(false);
        let now = Instant::now();
        let mut it = Iteration::new(&n("api.myapp.test."), RecordType::A, &s);
        let ask = expect_ask(it.start(&mut k, &s, now));
        // From the cache's NS set, straight to the zone; the silent server
        // timed out, so the measured one goes first.
        assert_eq!(ask.zone, n("myapp.test."));
        assert_eq!(ask.server.ip(), ip("127.0.0.3"));
        assert!(ask.why[0].contains("chosen of 2 servers"), "{:?}", ask.why);
        assert!(ask.why[0].contains("127.0.0.4 2000.0 ms"), "{:?}", ask.why);
    }

    #[test]
    fn qname_minimisation_tells_each_zone_one_label_more() {
        let (asked, r, _) = walk(true);
        assert_eq!(r.answers, [a("www.myapp.test.", "127.0.9.9")]);
        let told: Vec<(&str, &str, &str)> = asked
            .iter()
            .map(|(s, n, t)| (s.as_str(), n.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            told,
            [
                ("127.0.0.1", "test.", "A"),
                ("127.0.0.2", "myapp.test.", "A"),
                ("127.0.0.4", "www.myapp.test.", "A"),
                ("127.0.0.3", "www.myapp.test.", "A"),
            ]
        );
    }

    #[test]
    fn minimising_past_a_name_without_a_cut_adds_a_label_and_nxdomain_ends_it() {
        let s = settings(true);
        let mut k = Knowledge::default();
        let now = Instant::now();
        let mut it = Iteration::new(&n("a.b.c.test."), RecordType::MX, &s);
        let ask = expect_ask(it.start(&mut k, &s, now));
        assert_eq!(ask.name, n("test."));
        assert!(ask.why[0].contains("RFC 9156"), "{:?}", ask.why);
        let m = reply(&ask, |m| {
            m.metadata.authoritative = true;
            m.add_authority(soa("."));
        });
        // The root answers test. itself (NODATA): no cut, one label more.
        let ask = expect_ask(it.on(Heard::Reply(&m, RTT), &mut k, &s, now));
        assert_eq!(
            (ask.name.to_string().as_str(), ask.qtype),
            ("c.test.", RecordType::A)
        );
        let m = reply(&ask, |m| {
            m.metadata.authoritative = true;
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa("."));
        });
        let Step::Done(r) = it.on(Heard::Reply(&m, RTT), &mut k, &s, now) else {
            panic!()
        };
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        assert_eq!(r.soa, Some(soa(".")));
        // c.test. is gone, and the cache says so with its SOA.
        assert!(matches!(
            k.cache.get(&n("c.test."), RecordType::A, now),
            Some(Cached::NxDomain(Some(_)))
        ));
    }

    fn cname(name: &str, target: &str) -> Record {
        Record::from_rdata(n(name), 300, RData::CNAME(CNAME(n(target))))
    }

    #[test]
    fn cached_cnames_are_followed_before_anything_is_asked() {
        let s = settings(false);
        let mut k = Knowledge::default();
        let now = Instant::now();
        k.cache.insert_records(
            &[
                ns("test.", "ns.test."),
                a("ns.test.", "127.0.0.2"),
                cname("www.test.", "web.test."),
                cname("web.test.", "host.test."),
                a("host.test.", "127.0.0.9"),
            ],
            now,
        );
        // The whole chain is cached: answered at once, CNAMEs first.
        let mut it = Iteration::new(&n("WWW.test."), RecordType::A, &s);
        let Step::Done(r) = it.start(&mut k, &s, now) else {
            panic!("the cache holds the answer")
        };
        let types: Vec<RecordType> = r.answers.iter().map(Record::record_type).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::CNAME, RecordType::A]);
        // A question about the CNAME itself is answered with it alone.
        let mut it = Iteration::new(&n("www.test."), RecordType::CNAME, &s);
        let Step::Done(r) = it.start(&mut k, &s, now) else {
            panic!()
        };
        assert_eq!(r.answers, [cname("www.test.", "web.test.")]);
        // The chain's end unknown: only the end is asked for, and the
        // answer carries the cached part of the chain.
        k.cache
            .insert_records(&[cname("old.test.", "gone.test.")], now);
        let mut it = Iteration::new(&n("old.test."), RecordType::A, &s);
        let ask = expect_ask(it.start(&mut k, &s, now));
        assert_eq!(ask.name, n("gone.test."));
        assert!(
            ask.why[0].contains("CNAME chain from old.test. to gone.test."),
            "{:?}",
            ask.why
        );
        let m = reply(&ask, |m| {
            m.metadata.authoritative = true;
            m.add_answer(a("gone.test.", "127.0.0.3"));
        });
        let Step::Done(r) = it.on(Heard::Reply(&m, RTT), &mut k, &s, now) else {
            panic!()
        };
        assert_eq!(
            r.answers,
            [
                cname("old.test.", "gone.test."),
                a("gone.test.", "127.0.0.3")
            ]
        );
        // A loop of cached CNAMEs ends in SERVFAIL, not a hang.
        k.cache.insert_records(
            &[cname("x.test.", "y.test."), cname("y.test.", "x.test.")],
            now,
        );
        let mut it = Iteration::new(&n("x.test."), RecordType::A, &s);
        assert_eq!(it.start(&mut k, &s, now), servfail_step());
    }

    #[test]
    fn a_cname_restarts_at_its_target_and_glueless_servers_are_found_first() {
        let s = settings(false);
        let mut k = Knowledge::default();
        let now = Instant::now();
        // The test. servers are known from an earlier referral.
        k.cache
            .insert_records(&[ns("test.", "ns.test."), a("ns.test.", "127.0.0.2")], now);
        let mut it = Iteration::new(&n("www.test."), RecordType::A, &s);
        let ask = expect_ask(it.start(&mut k, &s, now));
        assert_eq!(ask.zone, n("test."));
        let m = reply(&ask, |m| {
            m.metadata.authoritative = true;
            m.add_answer(Record::from_rdata(
                n("www.test."),
                60,
                RData::CNAME(CNAME(n("web.other."))),
            ));
            // A record for the target, from a server that cannot speak for it.
            m.add_answer(a("web.other.", "6.6.6.6"));
        });
        let ask = expect_ask(it.on(Heard::Reply(&m, RTT), &mut k, &s, now));
        assert_eq!(ask.name, n("web.other."), "the planted A is not believed");
        let m = reply(&ask, |m| {
            m.add_authority(ns("other.", "ns.elsewhere."));
        });
        let Step::FindAddress(server) = it.on(Heard::Reply(&m, RTT), &mut k, &s, now) else {
            panic!("expected a glueless lookup")
        };
        assert_eq!(server, n("ns.elsewhere."));
        let found = Resolved {
            rcode: ResponseCode::NoError,
            answers: vec![a("ns.elsewhere.", "127.0.0.7")],
            soa: None,
            why: None,
        };
        let ask = expect_ask(it.on(Heard::Address(&found), &mut k, &s, now));
        assert_eq!(ask.server.ip(), ip("127.0.0.7"));
        assert_eq!(ask.zone, n("other."));
        let m = reply(&ask, |m| {
            m.metadata.authoritative = true;
            m.add_answer(a("web.other.", "127.0.5.5"));
        });
        let Step::Done(r) = it.on(Heard::Reply(&m, RTT), &mut k, &s, now) else {
            panic!()
        };
        let types: Vec<RecordType> = r.answers.iter().map(Record::record_type).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::A]);
        assert_eq!(r.answers[1], a("web.other.", "127.0.5.5"));
    }

    /// Compares a step with "done: SERVFAIL", whatever the reason.
    #[derive(Debug)]
    struct ServfailStep;

    fn servfail_step() -> ServfailStep {
        ServfailStep
    }

    impl PartialEq<ServfailStep> for Step {
        fn eq(&self, _: &ServfailStep) -> bool {
            matches!(self, Step::Done(r) if r.rcode == ResponseCode::ServFail && r.why.is_some())
        }
    }

    #[test]
    fn a_referral_loop_and_dead_servers_end_in_servfail() {
        let s = settings(false);
        let mut k = Knowledge::default();
        let now = Instant::now();
        // Every server answers with a referral to a deeper zone that never ends.
        let mut it = Iteration::new(&n("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.test."), RecordType::A, &s);
        let mut step = it.start(&mut k, &s, now);
        let mut sent = 0;
        while let Step::Ask(ask) = step {
            sent += 1;
            let child = ask.name.trim_to(ask.zone.num_labels() as usize + 1);
            let m = reply(&ask, |m| {
                m.add_authority(ns(&child.to_string(), &format!("ns.{child}")));
                m.add_additional(a(&format!("ns.{child}"), "127.0.0.1"));
            });
            step = it.on(Heard::Reply(&m, RTT), &mut k, &s, now);
        }
        assert_eq!(step, servfail_step());
        assert_eq!(sent, usize::from(MAX_REFERRALS) + 1);
        // A zone whose only server never answers: two tries, then SERVFAIL.
        let mut it = Iteration::new(&n("x.test."), RecordType::A, &settings(false));
        let mut k = Knowledge::default();
        let mut step = it.start(&mut k, &s, now);
        let mut tries = 0;
        while let Step::Ask(_) = step {
            tries += 1;
            step = it.on(Heard::Timeout, &mut k, &s, now);
        }
        assert_eq!(tries, TRIES_PER_SERVER);
        assert_eq!(step, servfail_step());
    }

    #[test]
    fn a_lame_server_is_left_and_none_left_is_servfail_not_nodata() {
        let s = settings(false);
        let mut k = Knowledge::default();
        let now = Instant::now();
        let mut it = Iteration::new(&n("x.sub.test."), RecordType::A, &s);
        let mut step = it.start(&mut k, &s, now);
        let mut asked = Vec::new();
        while let Step::Ask(ask) = step {
            asked.push((ask.server.ip().to_string(), ask.why.clone()));
            let server = ask.server.ip().to_string();
            let m = reply(&ask, |m| match server.as_str() {
                // The root refers to test., served by two servers.
                "127.0.0.1" => {
                    m.add_authority(ns("test.", "ns1.test."));
                    m.add_authority(ns("test.", "ns2.test."));
                    m.add_additional(a("ns1.test.", "127.0.0.2"));
                    m.add_additional(a("ns2.test.", "127.0.0.3"));
                }
                // Both answer without AA, without data, and refer back to
                // the zone they were asked for: lame.
                _ => {
                    m.add_authority(ns("test.", "ns1.test."));
                }
            });
            step = it.on(Heard::Reply(&m, RTT), &mut k, &s, now);
        }
        assert_eq!(step, servfail_step());
        let servers: Vec<&str> = asked.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(servers, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
        assert!(
            asked[2]
                .1
                .iter()
                .any(|w| w.contains("127.0.0.2 is lame for test.")),
            "{:?}",
            asked[2].1
        );
    }
}
