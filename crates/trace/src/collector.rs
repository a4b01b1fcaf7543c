//! Where spans go: one [`Collector`] per world, one [`Recorder`] per host and
//! component, and the assembly of one request's spans across hosts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::event::Event;
use crate::span::{Correlation, Ctx, Label, Layer, Span, SpanId, TraceId, now_ns};
use crate::store::{StoreLimits, TraceStore};

/// How much a world records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every span of every host.
    Full,
    /// Only the client's request stages (for measuring the cost of observing).
    Minimal,
}

/// Where finished spans go. The in-memory [`TraceStore`] is one sink; an
/// OTLP exporter (crate `weblab-otlp`) is another.
pub trait SpanSink: Send + Sync + 'static {
    fn record(&self, span: Span);
}

impl SpanSink for TraceStore {
    fn record(&self, span: Span) {
        TraceStore::record(self, span);
    }
}

/// What the recorders of one process write to: an optional local store and
/// any number of other sinks, behind one detail filter.
#[derive(Clone)]
pub struct Collector {
    store: Option<TraceStore>,
    sinks: Arc<[Arc<dyn SpanSink>]>,
    detail: Detail,
}

impl Collector {
    /// A collector with a local store of the default size and no other sink.
    pub fn new(detail: Detail) -> Self {
        Collector::with_sinks(
            detail,
            Some(TraceStore::new(StoreLimits::default())),
            Vec::new(),
        )
    }

    /// A collector writing to `store` (if any) and to `sinks`.
    pub fn with_sinks(
        detail: Detail,
        store: Option<TraceStore>,
        sinks: Vec<Arc<dyn SpanSink>>,
    ) -> Self {
        Collector {
            store,
            sinks: sinks.into(),
            detail,
        }
    }

    /// Whether a server's spans go anywhere (a store or a sink, and full
    /// detail): when not, a busy server may skip building them.
    pub fn keeps_server_spans(&self) -> bool {
        self.detail == Detail::Full && self.keeps_spans()
    }

    /// Whether spans go anywhere at all (a store or a sink).
    pub fn keeps_spans(&self) -> bool {
        self.store.is_some() || !self.sinks.is_empty()
    }

    /// The local store, when this collector keeps one.
    pub fn store(&self) -> Option<&TraceStore> {
        self.store.as_ref()
    }

    /// True when spans of this event kind are kept.
    fn keeps(&self, event: &Event) -> bool {
        self.detail == Detail::Full
            || event.phase().is_some()
            || matches!(event, Event::Navigate { .. })
    }

    /// Passes one finished span to every sink.
    pub fn record(&self, span: Span) {
        if !self.keeps(&span.event) {
            return;
        }
        // Every consumer but the last gets a copy; the last takes the span.
        match (&self.store, self.sinks.split_last()) {
            (Some(store), _) => {
                for sink in self.sinks.iter() {
                    sink.record(span.clone());
                }
                store.record(span);
            }
            (None, Some((last, rest))) => {
                for sink in rest {
                    sink.record(span.clone());
                }
                last.record(span);
            }
            (None, None) => {}
        }
    }

    /// Every span in the local store, oldest trace first.
    pub fn snapshot(&self) -> Vec<Span> {
        self.store
            .as_ref()
            .map(TraceStore::snapshot)
            .unwrap_or_default()
    }

    /// The spans of one trace, plus the spans of other hosts that were tied
    /// to it by a [`Correlation`] (a DNS server answering the client's or
    /// the resolver's query), re-parented under the span that caused them.
    /// Sorted by start time. Empty without a local store.
    pub fn assemble(&self, trace: TraceId) -> Vec<Span> {
        self.store
            .as_ref()
            .map(|s| s.assemble(trace))
            .unwrap_or_default()
    }
}

/// See [`Collector::assemble`]; pure, on a slice of spans.
pub fn assemble(all: &[Span], trace: TraceId) -> Vec<Span> {
    let mut by_link: HashMap<Correlation, Vec<usize>> = HashMap::new();
    for (i, s) in all.iter().enumerate() {
        if let Some(link) = s.link {
            by_link.entry(link).or_default().push(i);
        }
    }
    let mut traces: HashSet<TraceId> = HashSet::from([trace]);
    let mut adopted: HashMap<TraceId, SpanId> = HashMap::new(); // group root -> new parent
    let mut reparent: HashMap<SpanId, SpanId> = HashMap::new();
    let mut pending: Vec<TraceId> = vec![trace];
    while let Some(t) = pending.pop() {
        for s in all.iter().filter(|s| s.trace == t) {
            for key in &s.correlates {
                for &i in by_link.get(key).into_iter().flatten() {
                    let linked = &all[i];
                    if traces.insert(linked.trace) {
                        adopted.insert(linked.trace, s.id);
                        pending.push(linked.trace);
                    }
                    if linked.parent.is_none() {
                        reparent.insert(linked.id, s.id);
                    }
                }
            }
        }
    }
    let mut out: Vec<Span> = all
        .iter()
        .filter(|s| traces.contains(&s.trace))
        .cloned()
        .map(|mut s| {
            if let Some(p) = reparent.get(&s.id) {
                s.parent = Some(*p);
            }
            s.trace = trace;
            s
        })
        .collect();
    out.sort_by_key(|s| (s.start_ns, s.end_ns));
    out
}

/// A span that has started and not yet been recorded.
#[derive(Clone, Debug)]
pub struct Pending {
    pub trace: TraceId,
    pub id: SpanId,
    pub parent: Option<SpanId>,
    pub start_ns: u64,
    pub layer: Layer,
    pub request: Option<u32>,
    pub link: Option<Correlation>,
    pub correlates: Vec<Correlation>,
    /// False for a trace no hop records (see [`Ctx::sampled`]).
    pub sampled: bool,
}

impl Pending {
    /// Context for spans nested inside this one.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            trace: self.trace,
            parent: Some(self.id),
            sampled: self.sampled,
        }
    }

    /// Marks this span as belonging to client request `n`.
    pub fn request(mut self, n: Option<u32>) -> Self {
        self.request = n;
        self
    }

    /// Ties this span to the peer span that sent `key`.
    pub fn linked_to(mut self, key: Correlation) -> Self {
        self.link = Some(key);
        self
    }
}

/// Records spans for one component on one host.
#[derive(Clone)]
pub struct Recorder {
    collector: Collector,
    host: Label,
    addr: Label,
    component: Label,
}

impl Recorder {
    /// Whether this recorder's server spans are kept anywhere; a busy
    /// server skips building the ones nobody would see.
    pub fn keeps_server_spans(&self) -> bool {
        self.collector.keeps_server_spans()
    }

    pub fn new(collector: Collector, host: &str, addr: &str, component: &str) -> Self {
        Recorder {
            collector,
            host: host.into(),
            addr: addr.into(),
            component: component.into(),
        }
    }

    /// A recorder for another component on the same host.
    pub fn component(&self, component: &str) -> Self {
        Recorder {
            component: component.into(),
            ..self.clone()
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Starts a span at the current time.
    pub fn begin(&self, ctx: Ctx, layer: Layer) -> Pending {
        Pending {
            trace: ctx.trace,
            id: SpanId::random(),
            parent: ctx.parent,
            start_ns: now_ns(),
            layer,
            request: None,
            link: None,
            correlates: Vec::new(),
            sampled: ctx.sampled,
        }
    }

    /// Records `pending` as ending now.
    pub fn end(&self, pending: Pending, event: Event) {
        self.end_at(pending, now_ns(), event);
    }

    /// Whether spans recorded here go anywhere (a store or a sink).
    pub fn keeps_spans(&self) -> bool {
        self.collector.keeps_spans()
    }

    /// [`Self::end`], building the event only when the span goes somewhere:
    /// a busy server formats no text that nobody keeps.
    pub fn end_with(&self, pending: Pending, event: impl FnOnce() -> Event) {
        if pending.sampled && self.keeps_spans() {
            self.end(pending, event());
        }
    }

    /// Records `pending` as ending at `end_ns`.
    pub fn end_at(&self, pending: Pending, end_ns: u64, event: Event) {
        if !pending.sampled {
            return;
        }
        self.collector.record(Span {
            trace: pending.trace,
            id: pending.id,
            parent: pending.parent,
            host: self.host.clone(),
            addr: self.addr.clone(),
            layer: pending.layer,
            component: self.component.clone(),
            start_ns: pending.start_ns,
            end_ns: end_ns.max(pending.start_ns),
            request: pending.request,
            link: pending.link,
            correlates: pending.correlates,
            event,
        });
    }

    /// Records a span whose times were measured elsewhere (e.g. by an I/O
    /// wrapper); returns its id.
    pub fn span(
        &self,
        ctx: Ctx,
        layer: Layer,
        (start_ns, end_ns): (u64, u64),
        request: Option<u32>,
        event: Event,
    ) -> SpanId {
        let mut p = self.begin(ctx, layer).request(request);
        p.start_ns = start_ns;
        let id = p.id;
        self.end_at(p, end_ns, event);
        id
    }

    /// Records a span for an exchange with a peer that will record its own
    /// side with `key` as its link.
    pub fn end_correlated(&self, mut pending: Pending, key: Correlation, event: Event) {
        pending.correlates.push(key);
        self.end(pending, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(t: &str) -> Event {
        Event::Note { text: t.into() }
    }

    #[test]
    fn spans_of_an_unsampled_trace_are_not_recorded() {
        let c = Collector::new(Detail::Full);
        let r = Recorder::new(c.clone(), "web1", "127.0.4.1", "web");
        let quiet = r.begin(Ctx::unsampled_root(), Layer::Application);
        let child = r.begin(quiet.ctx(), Layer::Application);
        r.end(child, note("check"));
        r.end(quiet, note("check"));
        assert!(c.snapshot().is_empty());
        let loud = r.begin(Ctx::new_root(), Layer::Application);
        r.end(loud, note("request"));
        assert_eq!(c.snapshot().len(), 1);
    }

    #[test]
    fn an_event_nobody_keeps_is_never_built() {
        let built = std::cell::Cell::new(0);
        let event = || {
            built.set(built.get() + 1);
            note("built")
        };
        let nowhere = Recorder::new(
            Collector::with_sinks(Detail::Full, None, Vec::new()),
            "web1",
            "127.0.4.1",
            "web",
        );
        nowhere.end_with(nowhere.begin(Ctx::new_root(), Layer::Application), event);
        assert_eq!(built.get(), 0);
        let c = Collector::new(Detail::Full);
        let kept = Recorder::new(c.clone(), "web1", "127.0.4.1", "web");
        kept.end_with(kept.begin(Ctx::unsampled_root(), Layer::Application), event);
        assert_eq!(built.get(), 0, "an unsampled span builds nothing either");
        kept.end_with(kept.begin(Ctx::new_root(), Layer::Application), event);
        assert_eq!(built.get(), 1);
        assert_eq!(c.snapshot().len(), 1);
    }

    #[test]
    fn assembly_adopts_correlated_spans_of_other_hosts() {
        let c = Collector::new(Detail::Full);
        let client = Recorder::new(c.clone(), "client", "127.0.0.2", "browser");
        let server = Recorder::new(c.clone(), "resolver", "127.0.1.1", "resolver");
        let upstream = Recorder::new(c.clone(), "root", "127.0.2.1", "dns");
        let key1 = Correlation::Dns {
            from: "127.0.0.2:5000".parse().unwrap(),
            to: "127.0.1.1:53".parse().unwrap(),
            id: 7,
        };
        let key2 = Correlation::Dns {
            from: "127.0.1.1:6000".parse().unwrap(),
            to: "127.0.2.1:53".parse().unwrap(),
            id: 9,
        };
        let root = Ctx::new_root();
        let q = client.begin(root, Layer::Application);
        // The resolver knows nothing of the client's trace: it starts its own.
        let s = server
            .begin(Ctx::new_root(), Layer::Application)
            .linked_to(key1);
        let up = server.begin(s.ctx(), Layer::Application);
        let r = upstream
            .begin(Ctx::new_root(), Layer::Application)
            .linked_to(key2);
        upstream.end(r, note("root answers"));
        server.end_correlated(up, key2, note("resolver asks root"));
        let server_id = s.id;
        server.end(s, note("resolver answers"));
        let q_id = q.id;
        client.end_correlated(q, key1, note("client asks"));
        // Noise from another trace.
        client.end(
            client.begin(Ctx::new_root(), Layer::Application),
            note("other"),
        );

        let spans = c.assemble(root.trace);
        let texts: Vec<String> = spans.iter().map(|s| s.event.to_string()).collect();
        assert_eq!(
            texts,
            [
                "client asks",
                "resolver answers",
                "resolver asks root",
                "root answers"
            ]
        );
        assert!(spans.iter().all(|s| s.trace == root.trace));
        assert_eq!(spans[1].parent, Some(q_id));
        assert_eq!(spans[2].parent, Some(server_id));
        assert_eq!(spans[3].parent, Some(spans[2].id));
    }

    #[test]
    fn minimal_detail_keeps_only_request_stages() {
        let c = Collector::new(Detail::Minimal);
        let r = Recorder::new(c.clone(), "h", "a", "x");
        r.end(
            r.begin(Ctx::new_root(), Layer::Application),
            note("dropped"),
        );
        r.end(
            r.begin(Ctx::new_root(), Layer::Application),
            Event::Waiting {
                status: 200,
                headers: vec![],
            },
        );
        let kinds: Vec<_> = c.snapshot().iter().map(|s| s.event.kind()).collect();
        assert_eq!(kinds, ["waiting"]);
    }

    #[test]
    fn the_store_is_bounded_by_bytes_and_drops_the_oldest_traces() {
        let store = TraceStore::new(StoreLimits {
            max_bytes: 3000,
            max_spans_per_trace: 4,
        });
        let c = Collector::with_sinks(Detail::Full, Some(store.clone()), Vec::new());
        let r = Recorder::new(c.clone(), "h", "a", "x");
        for i in 0..100 {
            r.end(
                r.begin(Ctx::new_root(), Layer::Application),
                note(&i.to_string()),
            );
        }
        let stats = store.stats();
        assert!(stats.bytes <= 3000, "{stats:?}");
        assert_eq!(stats.traces as u64 + stats.evicted_traces, 100);
        let texts: Vec<_> = c.snapshot().iter().map(|s| s.event.to_string()).collect();
        assert_eq!(
            texts.last().map(String::as_str),
            Some("99"),
            "the newest stays"
        );
        // One trace cannot hold more than its cap.
        let ctx = Ctx::new_root();
        for _ in 0..10 {
            r.end(r.begin(ctx, Layer::Application), note("x"));
        }
        assert_eq!(c.assemble(ctx.trace).len(), 4);
        assert_eq!(store.stats().dropped_spans, 6);
    }

    #[test]
    fn roots_are_polled_once_each_and_a_slow_poller_is_told_what_it_missed() {
        let store = TraceStore::new(StoreLimits::default());
        let c = Collector::with_sinks(Detail::Full, Some(store.clone()), Vec::new());
        let r = Recorder::new(c, "h", "a", "x");
        let first = Ctx::new_root();
        let root = r.begin(first, Layer::Application);
        // A child is not a root.
        r.end(r.begin(root.ctx(), Layer::Application), note("child"));
        r.end(root, note("root"));
        let (seen, traces, missed) = store.roots_after(0);
        assert_eq!((seen, traces, missed), (1, vec![first.trace], 0));
        assert_eq!(store.roots_after(seen), (1, vec![], 0));
        for _ in 0..5000 {
            r.end(r.begin(Ctx::new_root(), Layer::Application), note("r"));
        }
        let (total, traces, missed) = store.roots_after(seen);
        assert_eq!(total, 5001);
        assert_eq!(traces.len() as u64 + missed, 5000);
        assert!(missed > 0, "only the latest roots are remembered");
    }
}
