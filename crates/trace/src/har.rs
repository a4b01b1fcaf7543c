//! HAR 1.2 export of a trace's client requests, so a page load can be
//! opened in browser devtools or any HAR viewer. Drawn from recorded spans.

use serde_json::{Value, json};

use crate::event::{Event, Phase};
use crate::render::stages;
use crate::span::Span;

/// The reason phrase HTTP/1.1 gives `status` (HTTP/2 sends none).
fn http_reason(status: i64) -> &'static str {
    u16::try_from(status)
        .ok()
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

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
        // The response head as received.
        let (head_status, response_headers) =
            match mine(&|e| matches!(e, Event::Waiting { .. })).map(|s| &s.event) {
                Some(Event::Waiting { status, headers }) => (i64::from(*status), headers.clone()),
                _ => (status, Vec::new()),
            };
        let status = if status == 0 { head_status } else { status };
        let field = |list: &[(String, String)], name: &str| -> Vec<String> {
            list.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect()
        };
        let redirect = if (300..400).contains(&status) {
            field(&response_headers, "location")
                .into_iter()
                .next()
                .unwrap_or_default()
        } else {
            String::new()
        };
        // HAR: -1 for a phase that does not apply; `connect` includes `ssl`.
        let phase = |p: Phase| t.phases.get(&p).copied().flatten().map_or(-1.0, ms);
        let ssl = phase(Phase::Ssl);
        let connect = match (phase(Phase::Connect), ssl) {
            (c, s) if c >= 0.0 && s >= 0.0 => c + s,
            (c, _) => c,
        };
        let timings = [
            phase(Phase::Blocked),
            phase(Phase::Dns),
            connect,
            phase(Phase::Send).max(0.0),
            phase(Phase::Wait).max(0.0),
            phase(Phase::Receive).max(0.0),
        ];
        // HAR 1.2: `time` is the sum of the timings that apply (ssl is
        // inside connect). The browser's own work around them is kept
        // apart, in `_total` (the request's whole time).
        let time = (timings.iter().filter(|v| **v > 0.0).sum::<f64>() * 1e3).round() / 1e3;
        let url = t.url.split('#').next().unwrap_or_default().to_string();
        let query: Vec<Value> = url
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                json!({"name": n, "value": v})
            })
            .collect();
        let request_cookies: Vec<Value> = field(&headers, "cookie")
            .iter()
            .flat_map(|c| {
                c.split(';')
                    .map(str::trim)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|c| {
                let (n, v) = c.split_once('=')?;
                Some(json!({"name": n, "value": v}))
            })
            .collect();
        let response_cookies: Vec<Value> = field(&response_headers, "set-cookie")
            .iter()
            .filter_map(|c| {
                let pair = c.split(';').next()?;
                let (n, v) = pair.split_once('=')?;
                Some(json!({"name": n.trim(), "value": v.trim()}))
            })
            .collect();
        let pairs = |list: &[(String, String)]| -> Vec<Value> {
            list.iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect()
        };
        let status_text = http_reason(status);
        entries.push(json!({
            "pageref": "page_1",
            "startedDateTime": started(t.start_ns),
            "time": time,
            "request": {
                "method": method,
                "url": url,
                "httpVersion": version,
                "headers": pairs(&headers),
                "queryString": query,
                "cookies": request_cookies,
                "headersSize": -1,
                "bodySize": 0,
            },
            "response": {
                "status": status,
                "statusText": status_text,
                "httpVersion": version,
                "headers": pairs(&response_headers),
                "cookies": response_cookies,
                "content": { "size": decoded, "compression": if decoded >= 0 && wire >= 0 { decoded - wire } else { 0 }, "mimeType": mime },
                "redirectURL": redirect,
                "headersSize": -1,
                "bodySize": wire,
            },
            "cache": {},
            "timings": {
                "blocked": timings[0],
                "dns": timings[1],
                "connect": timings[2],
                "ssl": ssl,
                "send": timings[3],
                "wait": timings[4],
                "receive": timings[5],
            },
            "_request": t.request,
            "_total": ms(t.total_ns()),
            "_contentEncoding": encoding,
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
