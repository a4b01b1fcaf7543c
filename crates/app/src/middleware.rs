//! The middleware chain, outermost first (C45):
//!
//! ```text
//! 1 request context  traceparent in, x-request-id out
//! 2 access log       time, client IP, method, path, status, duration
//! 3 security headers nosniff, frame-deny, referrer policy
//! 4 cors             tower-http CorsLayer (preflight, allow-origin)
//! 5 compression      tower-http CompressionLayer (gzip, br)
//!   router           -> route span -> controller -> service -> SQL
//! ```
//! Each step records a span that covers itself and everything inside it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use weblab_trace::{Ctx, Event, Layer};

use crate::routes::controller_for;
use crate::server::AppState;

/// The trace context of the current request, as set by the step before.
#[derive(Clone, Copy, Debug)]
pub struct TraceCtx(pub Ctx);

fn ctx_of(req: &Request) -> Ctx {
    req.extensions()
        .get::<TraceCtx>()
        .map(|t| t.0)
        .unwrap_or_else(Ctx::new_root)
}

/// 1: joins the caller's trace (W3C traceparent) and tags the response with
/// a request id.
pub async fn request_context(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let ctx = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(Ctx::from_traceparent)
        .unwrap_or_else(Ctx::new_root);
    let span = s.rec.begin(ctx, Layer::Application);
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| span.id.to_string());
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    s.rec.end(
        span,
        Event::Middleware {
            name: format!(
                "request context (trace {}, x-request-id {request_id})",
                ctx.trace
            ),
            order: 1,
        },
    );
    resp
}

/// 2: one access-log line per request, like nginx's combined log.
pub async fn access_log(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let parent = ctx_of(&req);
    let span = s.rec.begin(parent, Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let started = Instant::now();
    let ip = client_ip(&req, &s.trusted_proxies).map_or_else(|| "-".into(), |ip| ip.to_string());
    // The query string too: the log shows what arrived.
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let resp = next.run(req).await;
    let line = format!(
        "{ip} {method} {path} {} {:.3}ms",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    s.log(&line);
    s.rec.end(
        span,
        Event::Middleware {
            name: format!("access log: {line}"),
            order: 2,
        },
    );
    resp
}

/// The client's address: X-Real-IP as a trusted proxy (a web server)
/// reported it, else the connection's peer. A client talking to the app
/// directly cannot choose what the log records.
pub fn client_ip(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
}

/// 3: headers every response should carry (C48).
pub async fn security_headers(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    s.rec.end(
        span,
        Event::Middleware {
            name: "security headers".into(),
            order: 3,
        },
    );
    resp
}

/// What a marking step notes of a request before passing it on (a few
/// fields, not a copy of the headers).
pub struct Seen {
    origin: Option<String>,
    preflight: bool,
    accepts_encoding: bool,
}

impl Seen {
    fn of(req: &Request) -> Seen {
        let h = req.headers();
        Seen {
            origin: h
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            preflight: req.method() == axum::http::Method::OPTIONS
                && h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD),
            // The codings the compression layer offers (gzip, br).
            accepts_encoding: h
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter(|c| !c.contains("q=0") || c.contains("q=0."))
                .filter_map(|c| c.split(';').next())
                .any(|c| matches!(c.trim(), "gzip" | "br" | "*")),
        }
    }
}

/// What a tower-http layer did to one exchange, in words.
pub type Describe = fn(&Seen, &Response) -> String;

/// 4: what the CORS layer did: nothing on a request without Origin, or the
/// origin it allowed, or that it did not allow it.
pub fn describe_cors(seen: &Seen, resp: &Response) -> String {
    let Some(origin) = &seen.origin else {
        return "cors: no Origin header (same-origin or not a browser), nothing to do".into();
    };
    let allowed = resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .and_then(|v| v.to_str().ok());
    match (seen.preflight, allowed) {
        (true, Some(a)) => format!("cors: preflight from {origin} answered, allow-origin {a}"),
        (true, None) => format!("cors: preflight from {origin} refused (origin not allowed)"),
        (false, Some(a)) => format!("cors: cross-origin request from {origin}, allow-origin {a}"),
        (false, None) => format!(
            "cors: origin {origin} not allowed, no Access-Control-Allow-Origin (the browser will block the answer)"
        ),
    }
}

/// 5: whether the compression layer compressed the response.
pub fn describe_compression(seen: &Seen, resp: &Response) -> String {
    match resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        Some(enc) => format!("compression: body encoded as {enc}"),
        None if !seen.accepts_encoding => {
            "compression: not compressed (the client accepts neither gzip nor br)".into()
        }
        None => "compression: not compressed (too small, or a type not worth it)".into(),
    }
}

/// A step that records what the tower-http layer directly inside it did.
pub async fn mark(
    State((s, order, describe)): State<(Arc<AppState>, u32, Describe)>,
    mut req: Request,
    next: Next,
) -> Response {
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let seen = Seen::of(&req);
    let resp = next.run(req).await;
    s.rec.end(
        span,
        Event::Middleware {
            name: describe(&seen, &resp),
            order,
        },
    );
    resp
}

/// After routing: records which pattern matched and which controller runs.
pub async fn route(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let pattern = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "?".into());
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let resp = next.run(req).await;
    s.rec.end(
        span,
        Event::Route {
            controller: controller_for(&pattern).into(),
            pattern,
        },
    );
    resp
}
