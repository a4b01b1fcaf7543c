//! HTTP helpers shared by the load balancer and the web server: bounded
//! body reading, small responses, trace context. The accept loop itself is
//! `weblab_server::serve_http`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use weblab_trace::Ctx;

/// Every response body here is buffered.
pub type Body = Full<Bytes>;

pub use weblab_server::{ConnInfo, Handler, RequestBody};

/// Reads a request body whole. Its size and time are bounded by the
/// listener (`Limits::max_body`, `body_timeout`): too large gets 413
/// (RFC 9110 §15.5.14), too slow 408 (§15.5.9), both closing the connection.
pub async fn read_body(body: RequestBody) -> Result<Bytes, Response<Body>> {
    use weblab_server::http::BodyError;
    let err = match body.collect().await {
        Ok(b) => return Ok(b.to_bytes()),
        Err(e) => e,
    };
    let status = match &err {
        BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        BodyError::Read(_) => return Err(text(StatusCode::BAD_REQUEST, &format!("{err}\n"))),
    };
    let mut r = text(status, &format!("{err}\n"));
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    Err(r)
}

/// A plain-text response.
pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
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

/// The span event of a request a server answered; the path carries the
/// query string as it arrived (a learner sees `?x=1` reach every hop).
pub fn served(
    parts: &http::request::Parts,
    conn: &ConnInfo,
    status: StatusCode,
) -> weblab_trace::Event {
    weblab_trace::Event::HttpServe {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        version: version_name(parts.version).into(),
        peer: conn.peer.to_string(),
        status: status.as_u16(),
    }
}

/// `HTTP/1.1`, `HTTP/2` …
pub fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}
