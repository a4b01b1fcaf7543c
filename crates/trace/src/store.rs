//! The in-memory trace store: spans indexed by trace id, bounded by bytes,
//! with the latest root spans noted for a live view that polls
//! ([`TraceStore::roots_after`]): a reader woken for every span cost the
//! collector about a tenth of its CPU under load.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::span::{Correlation, Span, TraceId};

/// How much a store keeps.
#[derive(Clone, Copy, Debug)]
pub struct StoreLimits {
    /// Approximate bytes of spans kept; the oldest traces go first.
    pub max_bytes: usize,
    /// Spans kept per trace; more are counted and dropped.
    pub max_spans_per_trace: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_bytes: 64 << 20,
            max_spans_per_trace: 20_000,
        }
    }
}

struct Entry {
    spans: Vec<Stored>,
    bytes: usize,
}

/// A span kept in the encoding it arrived in (a collector's OTLP
/// protobuf), turned into a [`Span`] only when someone reads its trace.
/// Under load most stored spans are never read: decoding every one into
/// its typed event on arrival was about half of a collector's CPU.
pub trait Encoded: Send + Sync {
    /// The span; `None` if it no longer decodes (it did when it came in).
    fn decode(&self) -> Option<Span>;
    /// Bytes this encoded span holds.
    fn size(&self) -> usize;
}

/// What the store must know of an encoded span without decoding it.
#[derive(Clone, Debug)]
pub struct Head {
    pub trace: TraceId,
    /// Whether it has no parent (a root).
    pub root: bool,
    /// Its DNS correlation keys, which few spans have: apart, so that a
    /// head stays small in a store of millions.
    keys: Option<Box<(Option<Correlation>, Vec<Correlation>)>>,
}

impl Head {
    pub fn new(
        trace: TraceId,
        root: bool,
        link: Option<Correlation>,
        correlates: Vec<Correlation>,
    ) -> Head {
        let keys = (link.is_some() || !correlates.is_empty()).then(|| Box::new((link, correlates)));
        Head { trace, root, keys }
    }

    pub fn link(&self) -> Option<Correlation> {
        self.keys.as_ref().and_then(|k| k.0)
    }

    pub fn correlates(&self) -> &[Correlation] {
        self.keys.as_ref().map_or(&[], |k| &k.1)
    }
}

enum Stored {
    Typed(Arc<Span>),
    Encoded(Head, Box<dyn Encoded>),
}

impl Stored {
    fn root(&self) -> bool {
        match self {
            Stored::Typed(s) => s.parent.is_none(),
            Stored::Encoded(h, _) => h.root,
        }
    }

    fn link(&self) -> Option<Correlation> {
        match self {
            Stored::Typed(s) => s.link,
            Stored::Encoded(h, _) => h.link(),
        }
    }

    fn correlates(&self) -> &[Correlation] {
        match self {
            Stored::Typed(s) => &s.correlates,
            Stored::Encoded(h, _) => h.correlates(),
        }
    }

    fn span(&self) -> Option<Span> {
        match self {
            Stored::Typed(s) => Some(Span::clone(s)),
            Stored::Encoded(_, e) => e.decode(),
        }
    }
}

/// Trace ids are random already: their low bits are a good hash, and
/// SipHash over them showed in the web server's profile (about 0.3 %
/// of its time under wrk).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by TraceId (it writes one u128); kept correct anyway.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64);
    }
}

type ById = std::hash::BuildHasherDefault<IdHasher>;

/// Correlation keys hold addresses a client chose: a seeded hash (foldhash
/// is several times cheaper than SipHash on these 40-byte keys, which a
/// DNS server's profile showed once per query).
type Seeded = foldhash::fast::RandomState;

#[derive(Default)]
struct Inner {
    traces: HashMap<TraceId, Entry, ById>,
    /// Traces in the order their first span arrived.
    order: VecDeque<TraceId>,
    /// Which traces hold a span linked by each key (the answering side).
    links: HashMap<Correlation, Vec<TraceId>, Seeded>,
    /// Keys some span correlates (the asking side).
    asked: HashSet<Correlation, Seeded>,
    bytes: usize,
    dropped_spans: u64,
    evicted_traces: u64,
    /// The latest traces that got a span without a parent (a root), for a
    /// reader that polls ([`TraceStore::roots_after`]) instead of waking
    /// for every span.
    roots: VecDeque<TraceId>,
    /// Roots ever noted.
    roots_total: u64,
}

/// Roots a store remembers for pollers.
const ROOTS_KEPT: usize = 4096;

/// What a store holds now.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StoreStats {
    pub traces: usize,
    pub bytes: usize,
    pub max_bytes: usize,
    pub dropped_spans: u64,
    pub evicted_traces: u64,
}

/// A shared, bounded store of spans.
#[derive(Clone)]
pub struct TraceStore {
    inner: Arc<Mutex<Inner>>,
    limits: StoreLimits,
}

/// The memory a span takes, near enough to bound a store by: the struct
/// plus its strings and the event's fields.
pub fn approx_bytes(span: &Span) -> usize {
    std::mem::size_of::<Span>()
        + span.host.len()
        + span.addr.len()
        + span.component.len()
        + span.correlates.len() * std::mem::size_of::<Correlation>()
        + crate::size::approx_size(&span.event)
}

impl TraceStore {
    pub fn new(limits: StoreLimits) -> TraceStore {
        TraceStore {
            inner: Arc::new(Mutex::new(Inner::default())),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores one span; false when its trace is full and it was dropped.
    pub fn record(&self, span: Span) -> bool {
        let size = approx_bytes(&span);
        let trace = span.trace;
        self.keep(trace, size, Stored::Typed(Arc::new(span)))
    }

    /// Stores one span still in its encoding ([`Encoded`]); false when
    /// its trace is full and it was dropped.
    pub fn record_encoded(&self, head: Head, span: Box<dyn Encoded>) -> bool {
        let size =
            std::mem::size_of::<Stored>() + std::mem::size_of_val(head.correlates()) + span.size();
        let trace = head.trace;
        self.keep(trace, size, Stored::Encoded(head, span))
    }

    fn keep(&self, trace: TraceId, size: usize, span: Stored) -> bool {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let entry = inner.traces.entry(trace).or_insert_with(|| {
            inner.order.push_back(trace);
            Entry {
                spans: Vec::new(),
                bytes: 0,
            }
        });
        if entry.spans.len() >= self.limits.max_spans_per_trace {
            inner.dropped_spans += 1;
            return false;
        }
        let (root, link) = (span.root(), span.link());
        inner.asked.extend(span.correlates().iter().copied());
        entry.spans.push(span);
        if root {
            if inner.roots.len() == ROOTS_KEPT {
                inner.roots.pop_front();
            }
            inner.roots.push_back(trace);
            inner.roots_total += 1;
        }
        entry.bytes += size;
        inner.bytes += size;
        if let Some(link) = link {
            let at = inner.links.entry(link).or_default();
            if !at.contains(&trace) {
                at.push(trace);
            }
        }
        while inner.bytes > self.limits.max_bytes && inner.order.len() > 1 {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            inner.evict(old);
        }
        true
    }

    /// Traces that got a root span after the first `seen` roots ever
    /// noted, oldest first: `(roots noted so far, the traces, how many
    /// were no longer remembered)`. A trace shows once per root span.
    pub fn roots_after(&self, seen: u64) -> (u64, Vec<TraceId>, u64) {
        let inner = self.lock();
        let new = inner.roots_total.saturating_sub(seen);
        let kept = (new as usize).min(inner.roots.len());
        let traces = inner
            .roots
            .iter()
            .skip(inner.roots.len() - kept)
            .copied()
            .collect();
        (inner.roots_total, traces, new - kept as u64)
    }

    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        StoreStats {
            traces: inner.traces.len(),
            bytes: inner.bytes,
            max_bytes: self.limits.max_bytes,
            dropped_spans: inner.dropped_spans,
            evicted_traces: inner.evicted_traces,
        }
    }

    /// The spans of `trace` and of every trace tied to it by a
    /// [`Correlation`], assembled (see [`crate::collector::assemble`]).
    pub fn assemble(&self, trace: TraceId) -> Vec<Span> {
        let inner = self.lock();
        let mut wanted = vec![trace];
        let mut seen = HashSet::from([trace]);
        let mut spans = Vec::new();
        while let Some(t) = wanted.pop() {
            let Some(entry) = inner.traces.get(&t) else {
                continue;
            };
            for s in &entry.spans {
                for key in s.correlates() {
                    for other in inner.links.get(key).into_iter().flatten() {
                        if seen.insert(*other) {
                            wanted.push(*other);
                        }
                    }
                }
                spans.extend(s.span());
            }
        }
        drop(inner);
        crate::collector::assemble(&spans, trace)
    }

    /// Every span stored, oldest trace first.
    pub fn snapshot(&self) -> Vec<Span> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .filter_map(|t| inner.traces.get(t))
            .flat_map(|e| e.spans.iter().filter_map(Stored::span))
            .collect()
    }

    /// The newest `n` traces that stand on their own (not the far side of
    /// another trace's DNS query), newest first.
    pub fn recent(&self, n: usize) -> Vec<TraceId> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter(|t| inner.stands_alone(t))
            .take(n)
            .copied()
            .collect()
    }

    /// Whether `trace` is a request of its own, not a DNS server's side of
    /// a query that another stored trace sent.
    pub fn stands_alone(&self, trace: TraceId) -> bool {
        self.lock().stands_alone(&trace)
    }
}

impl Inner {
    fn stands_alone(&self, trace: &TraceId) -> bool {
        self.traces.get(trace).is_some_and(|e| {
            !e.spans
                .iter()
                .any(|s| s.root() && s.link().is_some_and(|l| self.asked.contains(&l)))
        })
    }

    fn evict(&mut self, trace: TraceId) {
        let Some(entry) = self.traces.remove(&trace) else {
            return;
        };
        self.bytes -= entry.bytes;
        self.evicted_traces += 1;
        for s in &entry.spans {
            if let Some(link) = s.link()
                && let Some(v) = self.links.get_mut(&link)
            {
                v.retain(|t| *t != trace);
                if v.is_empty() {
                    self.links.remove(&link);
                }
            }
            for key in s.correlates() {
                self.asked.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::{Ctx, Event, Layer, SpanId};

    /// A span "encoded" as itself, counting how often it is decoded.
    struct Counted(Span, Arc<AtomicUsize>);

    impl Encoded for Counted {
        fn decode(&self) -> Option<Span> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Some(self.0.clone())
        }
        fn size(&self) -> usize {
            1000
        }
    }

    fn span(trace: TraceId, parent: Option<SpanId>, text: &str) -> Span {
        Span {
            trace,
            id: SpanId::random(),
            parent,
            host: "h".to_string().into(),
            addr: "a".to_string().into(),
            layer: Layer::Application,
            component: "c".to_string().into(),
            start_ns: 1,
            end_ns: 2,
            request: None,
            link: None,
            correlates: Vec::new(),
            event: Event::Note { text: text.into() },
        }
    }

    fn head(s: &Span) -> Head {
        Head::new(s.trace, s.parent.is_none(), s.link, s.correlates.clone())
    }

    #[test]
    fn encoded_spans_are_decoded_only_when_read_and_join_by_their_heads() {
        let store = TraceStore::new(StoreLimits::default());
        let decodes = Arc::new(AtomicUsize::new(0));
        let key = Correlation::Dns {
            from: "127.0.0.2:5000".parse().unwrap(),
            to: "127.0.1.1:53".parse().unwrap(),
            id: 7,
        };
        // A client's trace (typed) asks; the server's trace (encoded, from
        // another process) answers with the same key as its link.
        let client = Ctx::new_root().trace;
        let mut ask = span(client, None, "client asks");
        ask.correlates.push(key);
        let server = Ctx::new_root().trace;
        let mut answer = span(server, None, "server answers");
        answer.link = Some(key);
        let child = span(server, Some(answer.id), "server looks up");
        for s in [&answer, &child] {
            let enc = Box::new(Counted(s.clone(), decodes.clone()));
            assert!(store.record_encoded(head(s), enc));
        }
        store.record(ask);
        assert_eq!(decodes.load(Ordering::Relaxed), 0, "nothing read yet");
        // Roots are known from the heads, and the server's trace does not
        // stand alone: the client's trace asked its question.
        let (_, roots, _) = store.roots_after(0);
        assert_eq!(roots, vec![server, client]);
        assert!(!store.stands_alone(server) && store.stands_alone(client));
        let texts: Vec<String> = store
            .assemble(client)
            .iter()
            .map(|s| s.event.to_string())
            .collect();
        assert_eq!(texts, ["client asks", "server answers", "server looks up"]);
        assert_eq!(decodes.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn encoded_spans_count_their_size_and_are_evicted_like_the_rest() {
        let store = TraceStore::new(StoreLimits {
            max_bytes: 10_000,
            max_spans_per_trace: 100,
        });
        let decodes = Arc::new(AtomicUsize::new(0));
        let traces: Vec<TraceId> = (0..20).map(|_| Ctx::new_root().trace).collect();
        for t in &traces {
            let s = span(*t, None, "x");
            store.record_encoded(head(&s), Box::new(Counted(s, decodes.clone())));
        }
        let stats = store.stats();
        assert!(stats.bytes <= 10_000 && stats.traces < 10, "{stats:?}");
        assert_eq!(stats.evicted_traces as usize + stats.traces, 20);
        assert!(
            store.assemble(traces[0]).is_empty(),
            "the oldest went first"
        );
        assert_eq!(store.assemble(traces[19]).len(), 1);
    }
}
