//! The OTLP/HTTP receiver and the trace API of a running world.
//!
//! - `POST /v1/traces` — an OTLP export (protobuf or JSON, optionally
//!   gzip): every valid span goes into the store; invalid ones are
//!   counted in a partial-success answer, as OTLP/HTTP defines it.
//! - `GET /v1/weblab/health` — the world's name and the store's size;
//! - `GET /v1/weblab/traces[?limit=N]` — the newest traces, summarised;
//! - `GET /v1/weblab/traces/ID` — one trace, assembled, as JSON.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use weblab_server::{ConnInfo, Handler, RequestBody};
use weblab_trace::{Event, Span, TraceId, TraceStore, now_ns};

use crate::convert::{self, Accept, Encoding};

/// The receiver of one world.
pub struct Receiver {
    pub store: TraceStore,
    /// The world's name, so a client can tell it found the right world.
    pub world: String,
    pub accept: Accept,
    /// Largest export body, before and after gzip.
    pub max_body: usize,
}

/// One trace in a line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace: TraceId,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// Who started it: the client's address (or host).
    pub client: String,
    pub method: String,
    pub url: String,
    pub status: String,
    pub hosts: Vec<String>,
    pub spans: usize,
}

/// The root span of an assembled trace: the earliest one without a parent.
fn root(spans: &[Span]) -> Option<&Span> {
    spans
        .iter()
        .filter(|s| s.parent.is_none())
        .min_by_key(|s| s.start_ns)
        .or_else(|| spans.first())
}

/// Summarises an assembled trace (`None` when it is empty).
pub fn summarize(trace: TraceId, spans: &[Span]) -> Option<TraceSummary> {
    let root = root(spans)?;
    let start_ns = spans.iter().map(|s| s.start_ns).min()?;
    let end_ns = spans.iter().map(|s| s.end_ns).max()?;
    let mut hosts: Vec<String> = Vec::new();
    for s in spans {
        if !hosts.iter().any(|h| s.host == *h) {
            hosts.push(s.host.to_string());
        }
    }
    let first = |f: &dyn Fn(&Event) -> Option<String>| spans.iter().find_map(|s| f(&s.event));
    let (client, method, url, status) = match &root.event {
        Event::Navigate { url, .. } => (
            root.addr.to_string(),
            first(&|e| match e {
                Event::RequestSent { method, .. } => Some(method.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "GET".into()),
            url.clone(),
            first(&|e| match e {
                Event::Waiting { status, .. } => Some(status.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "failed".into()),
        ),
        Event::HttpServe {
            method,
            path,
            peer,
            status,
            ..
        } => (
            peer.clone(),
            method.clone(),
            path.clone(),
            status.to_string(),
        ),
        Event::DnsServe {
            name,
            qtype,
            outcome,
            ..
        } => (
            // The asker's socket, from the key that ties its query here.
            match root.link {
                Some(weblab_trace::Correlation::Dns { from, .. }) => from.to_string(),
                None => root.host.to_string(),
            },
            format!("DNS {qtype}"),
            name.clone(),
            outcome.to_string(),
        ),
        Event::Foreign { service, name, .. } => {
            (service.clone(), String::new(), name.clone(), String::new())
        }
        other => (
            root.host.to_string(),
            String::new(),
            other.kind().to_string(),
            String::new(),
        ),
    };
    Some(TraceSummary {
        trace,
        start_ns,
        duration_ns: end_ns - start_ns,
        client,
        method,
        url,
        status,
        hosts,
        spans: spans.len(),
    })
}

impl TraceSummary {
    /// `HH:MM:SS.mmm client METHOD URL status total hosts`.
    pub fn line(&self) -> String {
        let secs = self.start_ns / 1_000_000_000;
        let ms = (self.start_ns / 1_000_000) % 1000;
        format!(
            "{:02}:{:02}:{:02}.{ms:03} {} {:<15} {} {} {} {:.1} ms  {}",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            self.trace,
            self.client,
            self.method,
            self.url,
            self.status,
            self.duration_ns as f64 / 1e6,
            self.hosts.join(" > ")
        )
    }
}

fn json(status: StatusCode, v: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

impl Receiver {
    /// Handles one OTLP export body.
    pub fn export(&self, encoding: Encoding, gzip: bool, body: Bytes) -> Response<Full<Bytes>> {
        let body = if gzip {
            let mut out = Vec::new();
            let limit = self.max_body as u64 + 1;
            if let Err(e) = flate2::read::GzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out)
            {
                return error(StatusCode::BAD_REQUEST, &format!("bad gzip body: {e}"));
            }
            if out.len() > self.max_body {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body larger than {} bytes once inflated", self.max_body),
                );
            }
            Bytes::from(out)
        } else {
            body
        };
        let mut full = 0;
        let (mut rejected, reasons) = match encoding {
            // Protobuf (what SDKs and weblab's roles send): kept encoded,
            // decoded when its trace is read.
            Encoding::Protobuf => {
                let got = match convert::receive_protobuf(body, now_ns(), self.accept) {
                    Ok(r) => r,
                    Err(e) => return error(StatusCode::BAD_REQUEST, &e),
                };
                for (head, span) in got.spans {
                    if !self.store.record_encoded(head, span) {
                        full += 1;
                    }
                }
                (got.rejected, got.reasons)
            }
            Encoding::Json => {
                let req = match convert::parse(encoding, body) {
                    Ok(r) => r,
                    Err(e) => return error(StatusCode::BAD_REQUEST, &e),
                };
                let decoded = convert::decode(&req, now_ns(), self.accept);
                for s in decoded.spans {
                    if !self.store.record(s) {
                        full += 1;
                    }
                }
                (decoded.rejected, decoded.reasons)
            }
        };
        let mut reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        if full > 0 {
            rejected += full;
            reasons.push(format!("{full} over the per-trace span cap"));
        }
        let resp = ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: reasons.join("; "),
            }),
        };
        let body = match encoding {
            Encoding::Protobuf => resp.encode_to_vec(),
            Encoding::Json => serde_json::to_vec(&resp).unwrap_or_default(),
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        );
        r
    }

    /// The newest `limit` traces, summarised.
    pub fn list(&self, limit: usize) -> Vec<TraceSummary> {
        self.store
            .recent(limit)
            .into_iter()
            .filter_map(|t| summarize(t, &self.store.assemble(t)))
            .collect()
    }
}

impl Handler for Receiver {
    type Body = Full<Bytes>;

    async fn call(
        self: Arc<Self>,
        req: Request<RequestBody>,
        _conn: ConnInfo,
    ) -> Response<Self::Body> {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/v1/traces") => {
                let ct = req
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let Some(encoding) = Encoding::from_content_type(ct) else {
                    return error(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "use application/x-protobuf or application/json",
                    );
                };
                let gzip = match req
                    .headers()
                    .get(header::CONTENT_ENCODING)
                    .map(|v| v.as_bytes())
                {
                    None | Some(b"identity") => false,
                    Some(b"gzip") => true,
                    Some(_) => {
                        return error(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "only gzip is understood as Content-Encoding",
                        );
                    }
                };
                let body = match Limited::new(req.into_body(), self.max_body).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                        return error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &format!("body larger than {} bytes", self.max_body),
                        );
                    }
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("cannot read the body: {e}"),
                        );
                    }
                };
                self.export(encoding, gzip, body)
            }
            (&Method::GET, "/v1/weblab/health") => json(
                StatusCode::OK,
                &serde_json::json!({ "world": self.world, "store": self.store.stats() }),
            ),
            (&Method::GET, "/v1/weblab/traces") => {
                let limit = req
                    .uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("limit=")))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(50usize)
                    .min(10_000);
                json(StatusCode::OK, &self.list(limit))
            }
            (&Method::GET, p) if p.starts_with("/v1/weblab/traces/") => {
                let id = &p["/v1/weblab/traces/".len()..];
                let Ok(trace) = TraceId::try_from(id.to_string()) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("{id:?} is not a trace id (32 hex digits)"),
                    );
                };
                let spans = self.store.assemble(trace);
                if spans.is_empty() {
                    return error(StatusCode::NOT_FOUND, &format!("no trace {trace} here"));
                }
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "trace": trace, "spans": spans }),
                )
            }
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {} {path}", req.method()),
            ),
        }
    }
}
