//! HTTP helpers shared by the load balancer and the web server: small
//! responses, trace context. The accept loop itself is
//! `weblab_server::serve_http`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use weblab_trace::Ctx;

pub use crate::body::Body;

pub use weblab_server::{ConnInfo, Handler, RequestBody};

/// A plain-text response.
pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The trace context a request carries, or a new trace.
pub fn trace_ctx(headers: &HeaderMap) -> Ctx {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(Ctx::from_traceparent)
        .unwrap_or_else(Ctx::new_root)
}

/// What a server saw of a request, kept for its span after the request
/// itself moved on.
pub struct Line {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: Version,
}

impl Line {
    pub fn of<B>(req: &http::Request<B>) -> Line {
        Line {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
        }
    }
}

/// The span event of a request a server answered; the path carries the
/// query string as it arrived (a learner sees `?x=1` reach every hop).
pub fn served(line: &Line, conn: &ConnInfo, status: StatusCode) -> weblab_trace::Event {
    weblab_trace::Event::HttpServe {
        method: line.method.to_string(),
        path: line
            .uri
            .path_and_query()
            .map_or_else(|| line.uri.path().to_string(), |p| p.as_str().to_string()),
        version: version_name(line.version).into(),
        peer: conn.peer.to_string(),
        status: status.as_u16(),
    }
}

pub use weblab_trace::event::version_name;

/// For an HTTP/2 response whose spans are kept: a report, called when its
/// body ends, that records how long the connection's priorities held the
/// body back (C26), as a span under `ctx` from now to then. Nothing is
/// recorded for a response that never waited.
pub fn on_held(
    resp: &mut http::Response<Body>,
    version: Version,
    rec: &weblab_trace::Recorder,
    ctx: Ctx,
) {
    if version != Version::HTTP_2 || !ctx.sampled || !rec.keeps_spans() {
        return;
    }
    let pending = rec.begin(ctx, weblab_trace::Layer::Application);
    let rec = rec.clone();
    let report = weblab_server::http::priority::HeldReport::new(move |held| {
        if held.times == 0 {
            return;
        }
        let asked = if held.priority.explicit {
            format!("priority {} (asked by the client)", held.priority.label())
        } else {
            format!("no priority header (the default {})", held.priority.label())
        };
        rec.end(
            pending,
            weblab_trace::Event::Note {
                text: format!(
                    "HTTP/2 {asked}: the body waited {:.3} ms in {} turn(s) while responses ahead of it on the connection were sent",
                    held.total.as_secs_f64() * 1e3,
                    held.times
                ),
            },
        );
    });
    resp.extensions_mut().insert(report);
}
