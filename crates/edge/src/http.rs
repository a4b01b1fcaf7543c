//! HTTP helpers shared by the load balancer and the web server: bounded
//! body reading, small responses, trace context. The accept loop itself is
//! `weblab_server::serve_http`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use weblab_trace::Ctx;

/// Every response body here is buffered.
pub type Body = Full<Bytes>;

pub use weblab_server::{ConnInfo, Handler, RequestBody};

/// Reads a request body of at most `limit` bytes; a larger one is refused
/// with 413 (RFC 9110 §15.5.14).
pub async fn read_body(body: RequestBody, limit: usize) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {limit} bytes\n"),
        )),
        // RFC 9110 §15.5.9: the client did not send its body in time.
        Err(e)
            if e.downcast_ref::<weblab_server::http::BodyError>()
                .is_some_and(|b| b.is_timeout()) =>
        {
            let mut r = text(StatusCode::REQUEST_TIMEOUT, &format!("{e}\n"));
            r.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
        Err(e) => Err(text(
            StatusCode::BAD_REQUEST,
            &format!("cannot read body: {e}\n"),
        )),
    }
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
