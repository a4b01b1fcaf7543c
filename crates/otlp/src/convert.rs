//! weblab spans to OTLP and back (pure).
//!
//! A span's typed event becomes attributes: `weblab.event` names the
//! variant, and each field is one attribute, named by the OpenTelemetry
//! semantic conventions where one exists (`http.request.method`,
//! `url.full`, `dns.question.name`, `db.query.text`, …) and
//! `weblab.<kind>.<field>` otherwise. Nested values become OTLP arrays and
//! key-value lists, so every event comes back out unchanged. Spans from
//! other programs (any OpenTelemetry SDK) become [`Event::Foreign`].

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value as Json;
use weblab_trace::{Encoded, Event, Head, Layer, Span, SpanId, TraceId};

use crate::read::{from_any, from_fields};
pub use crate::wire::ExportRequest;
use crate::wire::{self, AnyValue, InstrumentationScope, KeyValue, Resource, Value, as_str};

const EVENT_KEY: &str = "weblab.event";

/// A protobuf string as owned text (invalid UTF-8 replaced).
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// OTLP value → JSON.
fn to_json(v: &AnyValue) -> Json {
    match &v.value {
        None | Some(Value::StringValueStrindex(_)) => Json::Null,
        Some(Value::StringValue(s)) => Json::String(lossy(s)),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => Json::from(*d),
        Some(Value::BytesValue(b)) => Json::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        Some(Value::ArrayValue(a)) => Json::Array(a.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(l)) => Json::Object(
            l.values
                .iter()
                .map(|kv| {
                    (
                        lossy(&kv.key),
                        kv.value.as_ref().map_or(Json::Null, to_json),
                    )
                })
                .collect(),
        ),
    }
}

/// A value as one line of text (for attributes of foreign spans).
fn to_text(v: &AnyValue) -> String {
    match to_json(v) {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

/// weblab spans as one OTLP export request, a resource (service) per
/// host: [`encode_protobuf`]'s bytes, decoded.
pub fn encode(spans: &[Span]) -> ExportRequest {
    ExportRequest::decode(&encode_protobuf(spans)[..]).unwrap_or_default()
}

/// The bounds a receiver puts on what it accepts.
#[derive(Clone, Copy, Debug)]
pub struct Accept {
    /// Span times may lie at most this far behind the receiver's clock…
    pub max_age_ns: u64,
    /// …and this far ahead of it.
    pub max_ahead_ns: u64,
}

impl Default for Accept {
    fn default() -> Self {
        Accept {
            max_age_ns: 24 * 3600 * 1_000_000_000,
            max_ahead_ns: 3600 * 1_000_000_000,
        }
    }
}

/// What came out of an export request: its spans (typed, or kept
/// encoded: [`Received`]) and what was refused.
#[derive(Debug)]
pub struct Decoded<S = Span> {
    pub spans: Vec<S>,
    pub rejected: u64,
    /// One line per kind of rejection, with a count.
    pub reasons: BTreeMap<String, u64>,
}

impl<S> Default for Decoded<S> {
    fn default() -> Self {
        Decoded {
            spans: Vec::new(),
            rejected: 0,
            reasons: BTreeMap::new(),
        }
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key.as_bytes())
        .and_then(|kv| kv.value.as_ref())
}

fn attr_text(attrs: &[KeyValue], key: &str) -> Option<String> {
    attr(attrs, key).map(to_text)
}

/// A text attribute, borrowed.
fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match &attr(attrs, key)?.value {
        Some(Value::StringValue(s)) => as_str(s),
        _ => None,
    }
}

fn id_of<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let arr: [u8; N] = bytes.try_into().ok()?;
    (arr != [0; N]).then_some(arr)
}

/// Where spans came from: their resource and scope, read once for all
/// the spans of a scope.
pub(crate) struct Origin {
    service: String,
    // weblab's own labels, shared by every span of the resource (a
    // pointer each, not a copy of the text).
    host: weblab_trace::Label,
    addr: weblab_trace::Label,
    component: weblab_trace::Label,
    /// The resource's `host.ip`, the address of a foreign span.
    host_ip: Option<String>,
    /// The scope's name, the component of a foreign span.
    scope: Option<String>,
}

impl Origin {
    fn of(resource: Option<&Resource>, scope: Option<&InstrumentationScope>) -> Origin {
        let resource = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let service =
            attr_text(resource, "service.name").unwrap_or_else(|| "unknown_service".into());
        Origin {
            host: attr_text(resource, "host.name")
                .unwrap_or_else(|| service.clone())
                .into(),
            addr: attr_text(resource, "weblab.addr")
                .unwrap_or_default()
                .into(),
            component: attr_text(resource, "weblab.component")
                .unwrap_or_else(|| service.clone())
                .into(),
            host_ip: attr_text(resource, "host.ip"),
            scope: scope.map(|sc| lossy(&sc.name)).filter(|n| !n.is_empty()),
            service,
        }
    }
}

/// A span's ids: trace, span, parent. Zero or malformed ids are refused.
type Ids = (TraceId, SpanId, Option<SpanId>);

fn ids(trace: &[u8], span: &[u8], parent: &[u8]) -> Result<Ids, &'static str> {
    let trace = id_of::<16>(trace).ok_or("invalid or zero trace id")?;
    let id = id_of::<8>(span).ok_or("invalid or zero span id")?;
    let parent = match parent.len() {
        0 => None,
        _ => Some(SpanId(u64::from_be_bytes(
            id_of::<8>(parent).ok_or("invalid parent span id")?,
        ))),
    };
    Ok((
        TraceId(u128::from_be_bytes(trace)),
        SpanId(u64::from_be_bytes(id)),
        parent,
    ))
}

/// A span's ids, and its times against the receiver's clock.
fn check(
    (trace, span, parent): (&[u8], &[u8], &[u8]),
    (start, end): (u64, u64),
    now_ns: u64,
    accept: Accept,
) -> Result<Ids, &'static str> {
    let ids = ids(trace, span, parent)?;
    let earliest = now_ns.saturating_sub(accept.max_age_ns);
    let latest = now_ns.saturating_add(accept.max_ahead_ns);
    if end < start || start < earliest || end > latest {
        return Err("span times out of range (end before start, too old, or in the future)");
    }
    Ok(ids)
}

/// The typed span of a checked one.
fn typed(s: &wire::Span, o: &Origin, (trace, id, parent): Ids) -> Span {
    let attrs = s.attributes.as_slice();
    let ours = attr_str(attrs, EVENT_KEY).and_then(|kind| weblab_event(kind, attrs));
    let (event, host, addr, component, layer) = match ours {
        Some(event) => (
            event,
            o.host.clone(),
            o.addr.clone(),
            o.component.clone(),
            attr(attrs, "weblab.layer")
                .and_then(|v| from_any(v).ok())
                .unwrap_or(Layer::Application),
        ),
        None => (
            Event::Foreign {
                service: o.service.clone(),
                name: lossy(&s.name),
                attributes: attrs
                    .iter()
                    .map(|kv| {
                        (
                            lossy(&kv.key),
                            kv.value.as_ref().map(to_text).unwrap_or_default(),
                        )
                    })
                    .collect(),
            },
            o.service.as_str().into(),
            o.host_ip
                .clone()
                .or_else(|| attr_text(attrs, "server.address"))
                .unwrap_or_default()
                .into(),
            o.scope.as_deref().unwrap_or(&o.service).into(),
            Layer::Application,
        ),
    };
    Span {
        trace,
        id,
        parent,
        host,
        addr,
        layer,
        component,
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano,
        request: attr(attrs, "weblab.request").and_then(|v| from_any(v).ok()),
        link: attr(attrs, "weblab.link").and_then(|v| from_any(v).ok()),
        correlates: correlates(attrs),
        event,
    }
}

fn correlates(attrs: &[KeyValue]) -> Vec<weblab_trace::Correlation> {
    attr(attrs, "weblab.correlates")
        .and_then(|v| from_any(v).ok())
        .unwrap_or_default()
}

fn rejected<S>(out: &mut Decoded<S>, why: &str) {
    out.rejected += 1;
    *out.reasons.entry(why.to_string()).or_default() += 1;
}

/// Checks and converts every span of `req`; `now_ns` is the receiver's
/// wall clock (Unix ns).
pub fn decode(req: &ExportRequest, now_ns: u64, accept: Accept) -> Decoded {
    let mut out = Decoded::default();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            let origin = Origin::of(rs.resource.as_ref(), ss.scope.as_ref());
            for s in &ss.spans {
                let id_bytes = (&s.trace_id[..], &s.span_id[..], &s.parent_span_id[..]);
                let times = (s.start_time_unix_nano, s.end_time_unix_nano);
                match check(id_bytes, times, now_ns, accept) {
                    Ok(ids) => out.spans.push(typed(s, &origin, ids)),
                    Err(why) => rejected(&mut out, why),
                }
            }
        }
    }
    out
}

/// An export request's spans, checked and kept in their protobuf bytes
/// for the store to decode when their trace is read ([`Encoded`]).
pub type Received = Decoded<(Head, Box<dyn Encoded>)>;

/// One span's protobuf bytes and where it came from.
struct Unread {
    bytes: Bytes,
    origin: Arc<Origin>,
}

impl Encoded for Unread {
    fn decode(&self) -> Option<Span> {
        let s = wire::Span::decode(self.bytes.clone()).ok()?;
        let ids = ids(&s.trace_id, &s.span_id, &s.parent_span_id).ok()?;
        Some(typed(&s, &self.origin, ids))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Unread>() + self.bytes.len()
    }
}

/// Reads a protobuf export body as [`decode`] does, with the same checks
/// and a malformed body refused as well, but keeps each span's bytes
/// instead of its typed form: each span is walked ([`crate::head`],
/// which accepts what prost accepts, so it decodes again later), and only
/// its ids, times and DNS correlation keys are read now.
pub fn receive_protobuf(body: Bytes, now_ns: u64, accept: Accept) -> Result<Received, String> {
    let malformed = |e: prost::DecodeError| format!("malformed protobuf: {e}");
    let req = wire::Shallow::decode(body).map_err(malformed)?;
    let mut out = Received::default();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            let origin = Arc::new(Origin::of(rs.resource.as_ref(), ss.scope.as_ref()));
            for raw in &ss.spans {
                let Ok(h) = crate::head::span_head(raw) else {
                    // prost refuses it too; its words say why.
                    return Err(match wire::Span::decode(raw.clone()) {
                        Err(e) => malformed(e),
                        Ok(_) => "malformed protobuf: a span does not decode".to_string(),
                    });
                };
                let id_bytes = (h.trace_id, h.span_id, h.parent_span_id);
                let times = (h.start_time_unix_nano, h.end_time_unix_nano);
                match check(id_bytes, times, now_ns, accept) {
                    Ok((trace, _, parent)) => {
                        let head = Head::new(
                            trace,
                            parent.is_none(),
                            h.link.as_ref().and_then(|v| from_any(v).ok()),
                            h.correlates
                                .as_ref()
                                .and_then(|v| from_any(v).ok())
                                .unwrap_or_default(),
                        );
                        // A copy of its own, so that a span kept long
                        // does not keep the whole request body alive.
                        let bytes = Bytes::copy_from_slice(raw);
                        let origin = origin.clone();
                        out.spans.push((head, Box::new(Unread { bytes, origin })));
                    }
                    Err(why) => rejected(&mut out, why),
                }
            }
        }
    }
    Ok(out)
}

/// Rebuilds a weblab event of `kind` from its attributes, read straight
/// into the typed event (a collector does this for every span of every
/// role).
fn weblab_event<'a>(kind: &'a str, attrs: &'a [KeyValue]) -> Option<Event> {
    // The semantic-convention names of this kind, looked up once per span.
    let semconv = crate::write::semconv_of(kind);
    let fields = attrs.iter().filter_map(|a| {
        let key = as_str(&a.key)?;
        let field = match key
            .strip_prefix("weblab.")
            .and_then(|r| r.strip_prefix(kind))
            .and_then(|r| r.strip_prefix('.'))
        {
            Some(field) => field,
            None => semconv.iter().find(|(_, _, name)| *name == key)?.1,
        };
        Some((field, a.value.as_ref()?))
    });
    from_fields(Some(kind), fields).ok()
}

/// How an export request's body is encoded (OTLP/HTTP §"Binary Protobuf
/// Encoding" and §"JSON Protobuf Encoding").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/x-protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Parses an export request body. Protobuf is read in place (every
/// string a slice of `body`); JSON through opentelemetry-proto's types.
pub fn parse(encoding: Encoding, body: Bytes) -> Result<ExportRequest, String> {
    match encoding {
        Encoding::Protobuf => {
            ExportRequest::decode(body).map_err(|e| format!("malformed protobuf: {e}"))
        }
        Encoding::Json => {
            let req: ExportTraceServiceRequest =
                serde_json::from_slice(&body).map_err(|e| format!("malformed JSON: {e}"))?;
            ExportRequest::decode(Bytes::from(req.encode_to_vec()))
                .map_err(|e| format!("malformed JSON: {e}"))
        }
    }
}

/// The protobuf bytes of an export request.
pub fn to_protobuf(req: &ExportRequest) -> Vec<u8> {
    req.encode_to_vec()
}

/// weblab spans as the protobuf body of one export request, written
/// straight from the spans ([`crate::write`]).
pub fn encode_protobuf(spans: &[Span]) -> Vec<u8> {
    crate::write::request(spans)
}

/// The same request in OTLP's JSON encoding.
pub fn to_json_body(req: &ExportRequest) -> Vec<u8> {
    ExportTraceServiceRequest::decode(&req.encode_to_vec()[..])
        .ok()
        .and_then(|r| serde_json::to_vec(&r).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weblab_trace::event::WebAction;
    use weblab_trace::{CacheLevel, Correlation, DnsOutcome};

    fn s(v: &str) -> String {
        v.to_string()
    }

    /// One of every event, with every optional field filled in.
    fn every_event() -> Vec<Event> {
        vec![
            Event::Navigate {
                url: s("https://myapp.test/login"),
                initiator: s("user"),
            },
            Event::UrlParsed {
                scheme: s("https"),
                host: s("myapp.test"),
                port: 443,
                default_port: true,
                path: s("/login"),
                query: Some(s("x=1")),
                fragment: Some(s("top")),
            },
            Event::RequestPrepared {
                method: s("GET"),
                target: s("/login"),
                version: s("HTTP/1.1"),
                headers: vec![(s("Host"), s("myapp.test")), (s("Accept"), s("*/*"))],
                header_block: Some(42),
            },
            Event::Lookup {
                name: s("myapp.test"),
                addrs: vec![s("127.10.3.1")],
                answered_by: Some(CacheLevel::Resolver),
                error: Some(s("none really")),
            },
            Event::CacheLookup {
                level: CacheLevel::Os,
                name: s("myapp.test"),
                hit: true,
                answer: vec![s("127.10.3.1")],
            },
            Event::DnsExchange {
                server: s("127.10.1.1:53"),
                name: s("myapp.test"),
                qtype: s("A"),
                id: 4242,
                transport: s("udp"),
                outcome: DnsOutcome::Referral {
                    zone: s("test."),
                    ns: vec![s("ns1.test.=127.10.2.2")],
                },
            },
            Event::DnsServe {
                role: s("root server"),
                name: s("myapp.test"),
                qtype: s("A"),
                id: 7,
                transport: s("tcp"),
                outcome: DnsOutcome::NxDomain,
            },
            Event::TcpConnect {
                local: s("127.10.0.2:5000"),
                remote: s("127.10.3.1:443"),
                rtt_us: 40,
                rttvar_us: 20,
                cwnd: 10,
                ssthresh: None,
                mss: 65483,
                retransmits: 0,
                delivery_rate_bps: Some(12_000_000_000),
            },
            Event::TcpInfo {
                remote: s("127.10.3.1:443"),
                after_response: true,
                rtt_us: 41,
                rttvar_us: 7,
                cwnd: 10,
                ssthresh: Some(7),
                total_retrans: 1,
                delivery_rate_bps: None,
                bytes_sent: 1 << 40,
                bytes_received: 3,
            },
            Event::ConnectionReused {
                remote: s("127.10.3.1:443"),
                version: s("HTTP/2"),
            },
            Event::TlsHandshake {
                sni: s("myapp.test"),
                version: s("TLSv1.3"),
                cipher: s("TLS13_AES_256_GCM_SHA384"),
                group: s("X25519"),
                alpn: Some(s("h2")),
                chain: vec![s("CN=myapp.test"), s("CN=weblab local CA")],
                verified_by: s("weblab local CA"),
            },
            Event::RequestSent {
                method: s("POST"),
                url: s("https://myapp.test/login"),
                version: s("HTTP/2"),
            },
            Event::Waiting {
                status: 200,
                headers: vec![],
            },
            Event::BodyReceived {
                status: 404,
                content_type: Some(s("text/html")),
                content_encoding: Some(s("br")),
                wire_bytes: 1234,
            },
            Event::Decoded {
                encoding: s("gzip"),
                wire_bytes: 100,
                decoded_bytes: 300,
            },
            Event::HtmlParsed {
                subresources: vec![s("/static/app.css")],
            },
            Event::HttpServe {
                method: s("GET"),
                path: s("/login?x=1"),
                version: s("HTTP/1.1"),
                peer: s("127.10.0.2:5000"),
                status: 503,
            },
            Event::LbPick {
                algorithm: s("round-robin"),
                backend: s("web1 (127.10.4.1:80)"),
                reason: s("next in turn"),
            },
            Event::WebDecision {
                path: s("/static/app.css"),
                action: WebAction::Static {
                    file: s("/www/static/app.css"),
                    bytes: 99,
                },
            },
            Event::WebDecision {
                path: s("/x"),
                action: WebAction::Reject {
                    status: 405,
                    reason: s("no"),
                },
            },
            Event::ProxyForward {
                upstream: s("app1"),
                headers: vec![(s("x-real-ip"), s("127.10.0.2"))],
                status: 200,
                connection: s("reused 127.10.4.1:40312 (request 3 on it)"),
            },
            Event::HttpCache {
                key: s("myapp.test/static/app.css"),
                outcome: s("REVALIDATED"),
                reason: s("stale; the origin answered 304 Not Modified"),
            },
            Event::Firewall {
                client: s("127.10.0.2"),
                allowed: false,
                reason: s("over 10/s (burst 20): 429, retry in 0.1s"),
            },
            Event::BackendHealth {
                backend: s("web2 (127.10.4.2:80)"),
                up: false,
                reason: s("3 failures in a row, last: connection refused"),
            },
            Event::Tunnel {
                upstream: s("web1 (127.10.4.1:80)"),
                protocol: s("websocket"),
                client_to_upstream: 20,
                upstream_to_client: 18,
                ended: s("client closed"),
            },
            Event::Middleware {
                name: s("access log"),
                order: 2,
            },
            Event::Route {
                pattern: s("/api/users/{id}"),
                controller: s("UsersController"),
            },
            Event::Service {
                name: s("UserService::find"),
            },
            Event::Sql {
                statement: s("SELECT 1"),
                params: 0,
                rows: 1,
            },
            Event::HttpCall {
                method: s("POST"),
                url: s("https://id.test/token"),
                peer: s("127.10.7.1:443"),
                status: 200,
                error: s(""),
            },
            Event::Note { text: s("hello") },
            Event::Foreign {
                service: s("shop"),
                name: s("GET /cart"),
                attributes: vec![(s("k"), s("v"))],
            },
        ]
    }

    fn span_with(event: Event, i: u64) -> Span {
        Span {
            trace: TraceId(0x0af7651916cd43dd8448eb211c80319c),
            id: SpanId(0x1000 + i),
            parent: (i > 0).then_some(SpanId(0x1000)),
            host: s("resolver").into(),
            addr: s("127.10.1.1").into(),
            layer: Layer::Transport,
            component: s("resolver").into(),
            start_ns: 1_700_000_000_000_000_000 + i,
            end_ns: 1_700_000_000_000_000_500 + i,
            request: Some(3),
            link: Some(Correlation::Dns {
                from: "127.10.0.2:5000".parse().unwrap(),
                to: "127.10.1.1:53".parse().unwrap(),
                id: 9,
            }),
            correlates: vec![Correlation::Dns {
                from: "127.10.1.1:6000".parse().unwrap(),
                to: "127.10.2.1:53".parse().unwrap(),
                id: 10,
            }],
            event,
        }
    }

    /// A span of every event, numbered.
    fn every_span() -> Vec<Span> {
        every_event()
            .into_iter()
            .enumerate()
            .map(|(i, e)| span_with(e, i as u64))
            .collect()
    }

    fn same(a: &Span, b: &Span) -> bool {
        serde_json::to_value(a).unwrap() == serde_json::to_value(b).unwrap()
    }

    #[test]
    fn every_event_survives_the_round_trip_through_protobuf_and_json() {
        let spans: Vec<Span> = every_span();
        let req = encode(&spans);
        let now = 1_700_000_000_000_000_000;
        for (encoding, bytes) in [
            (Encoding::Protobuf, to_protobuf(&req)),
            (Encoding::Json, to_json_body(&req)),
        ] {
            let back = decode(
                &parse(encoding, Bytes::from(bytes)).unwrap(),
                now,
                Accept::default(),
            );
            assert_eq!(back.rejected, 0, "{:?}", back.reasons);
            assert_eq!(back.spans.len(), spans.len());
            for a in &spans {
                let b = back.spans.iter().find(|b| b.id == a.id).unwrap();
                assert!(same(a, b), "{encoding:?}\n{a:?}\n{b:?}");
            }
        }
    }

    #[test]
    fn the_bytes_written_are_the_ones_prost_writes() {
        let mut spans: Vec<Span> = every_span();
        // Two resources (hosts), so the grouping is covered too.
        spans[1].host = "other".into();
        // Long text, so that lengths take more than one byte at every level.
        spans[0].event = Event::Note {
            text: "x".repeat(20_000),
        };
        let body = encode_protobuf(&spans);
        // opentelemetry-proto's own types read every span and, writing
        // them again, give the same bytes: lengths canonical, fields in
        // order, defaults left out.
        let otel = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        let n: usize = otel
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(n, spans.len());
        assert_eq!(otel.resource_spans.len(), 2);
        assert_eq!(otel.encode_to_vec(), body);
        assert_eq!(to_protobuf(&encode(&spans)), body);
        assert!(encode_protobuf(&[]).is_empty());
    }

    /// The attribute names a span is sent with.
    fn attribute_keys(span: &Span) -> Vec<String> {
        let req = encode(std::slice::from_ref(span));
        req.resource_spans[0].scope_spans[0].spans[0]
            .attributes
            .iter()
            .map(|kv| lossy(&kv.key))
            .collect()
    }

    fn kv(key: &'static str, value: Value) -> KeyValue {
        KeyValue {
            key: Bytes::from_static(key.as_bytes()),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    #[test]
    fn semantic_convention_names_are_used_where_they_exist() {
        let span = span_with(
            Event::Sql {
                statement: s("SELECT 1"),
                params: 0,
                rows: 1,
            },
            1,
        );
        let keys = attribute_keys(&span);
        assert!(keys.contains(&s("db.query.text")), "{keys:?}");
        assert!(keys.contains(&s("weblab.sql.rows")), "{keys:?}");
        let span = span_with(every_event().remove(16), 1);
        let keys = attribute_keys(&span);
        for k in [
            "http.request.method",
            "url.path",
            "http.response.status_code",
            "network.peer.address",
        ] {
            assert!(keys.contains(&s(k)), "{k} in {keys:?}");
        }
    }

    #[test]
    fn bad_ids_and_times_are_rejected_and_counted() {
        let now = 1_700_000_000_000_000_000;
        let mut req = encode(&[span_with(
            Event::Waiting {
                status: 200,
                headers: vec![],
            },
            1,
        )]);
        let good = req.resource_spans[0].scope_spans[0].spans[0].clone();
        let mut bad = Vec::new();
        let mut zero_trace = good.clone();
        zero_trace.trace_id = Bytes::from(vec![0; 16]);
        bad.push(zero_trace);
        let mut short_span = good.clone();
        short_span.span_id = Bytes::from(vec![1, 2, 3]);
        bad.push(short_span);
        let mut future = good.clone();
        future.start_time_unix_nano = now + 10 * 3600 * 1_000_000_000;
        future.end_time_unix_nano = future.start_time_unix_nano;
        bad.push(future);
        let mut backwards = good.clone();
        backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
        bad.push(backwards);
        req.resource_spans[0].scope_spans[0].spans.extend(bad);
        let out = decode(&req, now, Accept::default());
        assert_eq!(out.spans.len(), 1);
        assert_eq!(out.rejected, 4);
        assert_eq!(out.reasons.values().sum::<u64>(), 4);
    }

    #[test]
    fn a_span_from_another_sdk_becomes_a_foreign_event() {
        use crate::wire::{Resource, ResourceSpans, ScopeSpans, Span as Otlp};
        let req = ExportRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        Value::StringValue(Bytes::from_static(b"shop")),
                    )],
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Otlp {
                        trace_id: Bytes::from(vec![1; 16]),
                        span_id: Bytes::from(vec![2; 8]),
                        parent_span_id: Bytes::from(vec![3; 8]),
                        name: Bytes::from_static(b"GET /cart"),
                        start_time_unix_nano: 10,
                        end_time_unix_nano: 20,
                        attributes: vec![kv("http.response.status_code", Value::IntValue(200))],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }],
        };
        let out = decode(&req, 15, Accept::default());
        let span = &out.spans[0];
        assert_eq!(span.host, "shop");
        assert_eq!(span.parent, Some(SpanId(0x0303030303030303)));
        assert_eq!(
            span.event,
            Event::Foreign {
                service: s("shop"),
                name: s("GET /cart"),
                attributes: vec![(s("http.response.status_code"), s("200"))]
            }
        );
    }

    #[test]
    fn spans_kept_encoded_decode_to_what_decode_gives() {
        let now = 1_700_000_000_000_000_000;
        let mut spans: Vec<Span> = every_span();
        spans[1].host = "other".into();
        spans[2].link = None;
        spans[2].correlates.clear();
        let mut req = encode(&spans);
        // A foreign span under a scope with a name, and spans to refuse.
        let scope = &mut req.resource_spans[0].scope_spans[0];
        scope.scope = Some(crate::wire::InstrumentationScope {
            name: Bytes::from_static(b"shop.http"),
            version: Bytes::new(),
        });
        let mut foreign = scope.spans[0].clone();
        foreign.attributes = vec![kv("server.address", Value::StringValue("10.0.0.1".into()))];
        foreign.span_id = Bytes::from(vec![7; 8]);
        let mut zero = foreign.clone();
        zero.trace_id = Bytes::from(vec![0; 16]);
        let mut old = foreign.clone();
        old.start_time_unix_nano = 5;
        scope.spans.extend([foreign, zero, old]);
        let body = Bytes::from(to_protobuf(&req));

        let eager = decode(
            &parse(Encoding::Protobuf, body.clone()).unwrap(),
            now,
            Accept::default(),
        );
        let kept = receive_protobuf(body.clone(), now, Accept::default()).unwrap();
        assert_eq!(
            (kept.rejected, &kept.reasons),
            (eager.rejected, &eager.reasons)
        );
        assert_eq!(kept.rejected, 2);
        assert_eq!(kept.spans.len(), eager.spans.len());
        for ((head, enc), want) in kept.spans.iter().zip(&eager.spans) {
            assert_eq!(head.trace, want.trace);
            assert_eq!(head.root, want.parent.is_none());
            assert_eq!(head.link(), want.link);
            assert_eq!(head.correlates(), want.correlates);
            let got = enc.decode().expect("a kept span decodes");
            assert!(same(&got, want), "{got:?}\n{want:?}");
            assert!(enc.size() > 100);
        }
        // The foreign span's component is its scope's name.
        let f = eager
            .spans
            .iter()
            .find(|s| s.id == SpanId(0x0707070707070707))
            .unwrap();
        assert_eq!(&*f.component, "shop.http");
        assert_eq!(&*f.addr, "10.0.0.1");

        // A malformed body is refused the same way by both.
        let cut = body.slice(..body.len() - 3);
        let a = parse(Encoding::Protobuf, cut.clone()).err().unwrap();
        let b = receive_protobuf(cut, now, Accept::default()).err().unwrap();
        assert!(a.starts_with("malformed protobuf") && b.starts_with("malformed protobuf"));
        // A span broken inside (its first attribute's length made too
        // long) is named by prost's own words.
        let mut s0 = req.resource_spans[0].scope_spans[0].spans[0].clone();
        s0.attributes.truncate(1);
        s0.flags = 0;
        let mut bytes = s0.encode_to_vec();
        // The attribute is the last field: its key byte, then its length.
        let kv = s0.attributes[0].encoded_len();
        assert!(kv < 0x7f);
        let at = bytes.len() - kv - 2;
        assert_eq!(bytes[at], 0x4a);
        bytes[at + 1] = 0x7f;
        let whole = crate::wire::Shallow {
            resource_spans: vec![crate::wire::ShallowResourceSpans {
                resource: None,
                scope_spans: vec![crate::wire::ShallowScopeSpans {
                    scope: None,
                    spans: vec![Bytes::from(bytes)],
                }],
            }],
        };
        let b = receive_protobuf(Bytes::from(whole.encode_to_vec()), now, Accept::default())
            .err()
            .unwrap();
        assert!(b.starts_with("malformed protobuf: failed to decode"), "{b}");
    }
}
