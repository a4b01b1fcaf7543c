//! HAR 1.2 export of a trace's client requests, so a page load can be
//! opened in browser devtools or any HAR viewer. Drawn from recorded spans.

use serde_json::{Value, json};

use crate::event::{Event, Phase};
use crate::render::stages;
use crate::span::Span;

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

/// Builds a HAR log. `started` turns a span time (ns on the trace clock)
/// into an ISO 8601 date, which HAR requires for `startedDateTime`.
pub fn har(spans: &[Span], creator_version: &str, started: &dyn Fn(u64) -> String) -> Value {
    let timings = stages(spans);
    let page_start = timings.iter().map(|t| t.start_ns).min().unwrap_or(0);
    let page_end = timings.iter().map(|t| t.end_ns).max().unwrap_or(0);
    let first_url = timings.first().map(|t| t.url.clone()).unwrap_or_default();
    let mut entries = Vec::new();
    for t in &timings {
        let mine = |pred: &dyn Fn(&Event) -> bool| {
            spans
                .iter()
                .find(|s| s.request == Some(t.request) && pred(&s.event))
        };
        let (method, version, headers) =
            match mine(&|e| matches!(e, Event::RequestPrepared { .. })).map(|s| &s.event) {
                Some(Event::RequestPrepared {
                    method,
                    version,
                    headers,
                    ..
                }) => (method.clone(), version.clone(), headers.clone()),
                _ => ("GET".to_string(), "HTTP/1.1".to_string(), Vec::new()),
            };
        let (status, mime, encoding, wire) =
            match mine(&|e| matches!(e, Event::BodyReceived { .. })).map(|s| &s.event) {
                Some(Event::BodyReceived {
                    status,
                    content_type,
                    content_encoding,
                    wire_bytes,
                }) => (
                    i64::from(*status),
                    content_type.clone().unwrap_or_default(),
                    content_encoding.clone(),
                    *wire_bytes as i64,
                ),
                _ => (0, String::new(), None, -1),
            };
        let decoded = match mine(&|e| matches!(e, Event::Decoded { .. })).map(|s| &s.event) {
            Some(Event::Decoded { decoded_bytes, .. }) => *decoded_bytes as i64,
            _ => wire,
        };
        // HAR: -1 for a phase that does not apply; `connect` includes `ssl`.
        let phase = |p: Phase| t.phases.get(&p).copied().flatten().map_or(-1.0, ms);
        let ssl = phase(Phase::Ssl);
        let connect = match (phase(Phase::Connect), ssl) {
            (c, s) if c >= 0.0 && s >= 0.0 => c + s,
            (c, _) => c,
        };
        let mut response_headers = vec![json!({"name": "content-type", "value": mime})];
        if let Some(e) = &encoding {
            response_headers.push(json!({"name": "content-encoding", "value": e}));
        }
        entries.push(json!({
            "pageref": "page_1",
            "startedDateTime": started(t.start_ns),
            "time": ms(t.total_ns()),
            "request": {
                "method": method,
                "url": t.url,
                "httpVersion": version,
                "headers": headers.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "queryString": [],
                "cookies": [],
                "headersSize": -1,
                "bodySize": 0,
            },
            "response": {
                "status": status,
                "statusText": "",
                "httpVersion": version,
                "headers": response_headers,
                "cookies": [],
                "content": { "size": decoded, "compression": if decoded >= 0 && wire >= 0 { decoded - wire } else { 0 }, "mimeType": mime },
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": wire,
            },
            "cache": {},
            "timings": {
                "blocked": phase(Phase::Blocked),
                "dns": phase(Phase::Dns),
                "connect": connect,
                "ssl": ssl,
                "send": phase(Phase::Send).max(0.0),
                "wait": phase(Phase::Wait).max(0.0),
                "receive": phase(Phase::Receive).max(0.0),
            },
            "_request": t.request,
        }));
    }
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "weblab", "version": creator_version },
            "pages": [{
                "startedDateTime": started(page_start),
                "id": "page_1",
                "title": first_url,
                "pageTimings": { "onContentLoad": -1, "onLoad": ms(page_end.saturating_sub(page_start)) },
            }],
            "entries": entries,
        }
    })
}
