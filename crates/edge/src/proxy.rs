//! Reverse proxying: a small pool of HTTP/1.1 connections to each upstream,
//! opened from this host's own address, and the forwarding headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::error::EdgeError;
use crate::http::Body;

/// One upstream server and its idle connections.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    bind: IpAddr,
    idle: Mutex<Vec<SendRequest<Body>>>,
    timeout: Duration,
}

/// Idle connections kept per upstream.
const MAX_IDLE: usize = 32;

impl Upstream {
    /// `bind` is the proxy host's address: the upstream sees it as the peer.
    pub fn new(name: &str, addr: SocketAddr, bind: IpAddr) -> Self {
        Upstream {
            name: name.into(),
            addr,
            bind,
            idle: Mutex::new(Vec::new()),
            timeout: Duration::from_secs(30),
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, s: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !s.is_closed() {
            idle.push(s);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, EdgeError> {
        let sock = if self.bind.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(EdgeError::upstream_connect)?;
        sock.bind(SocketAddr::new(self.bind, 0))
            .map_err(EdgeError::upstream_connect)?;
        let tcp = tokio::time::timeout(Duration::from_secs(3), sock.connect(self.addr))
            .await
            .map_err(|_| EdgeError::upstream_connect(format!("{}: connect timed out", self.addr)))?
            .map_err(|e| EdgeError::upstream_connect(format!("{}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(EdgeError::upstream_connect)?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends `req` and reads the whole response.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Bytes>, EdgeError> {
        // Only a pooled connection can fail before the upstream saw the
        // request, so only then is a copy kept for one retry.
        let (retry_copy, mut sender) = match self.take_idle() {
            Some(s) => (Some(clone_request(&req)), s),
            None => (None, self.connect().await?),
        };
        let first = tokio::time::timeout(self.timeout, sender.send_request(req))
            .await
            .map_err(|_| EdgeError::upstream_timeout(&self.name))?;
        let resp = match (first, retry_copy) {
            (Ok(r), _) => r,
            // A pooled connection the upstream closed while idle: nothing was
            // processed, so one retry on a fresh connection is safe.
            (Err(e), Some(copy))
                if e.is_canceled() || e.is_closed() || e.is_incomplete_message() =>
            {
                sender = self.connect().await?;
                tokio::time::timeout(self.timeout, sender.send_request(copy))
                    .await
                    .map_err(|_| EdgeError::upstream_timeout(&self.name))?
                    .map_err(EdgeError::upstream_protocol)?
            }
            (Err(e), _) => return Err(EdgeError::upstream_protocol(e)),
        };
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(self.timeout, body.collect())
            .await
            .map_err(|_| EdgeError::upstream_timeout(&self.name))?
            .map_err(EdgeError::upstream_protocol)?
            .to_bytes();
        self.put_idle(sender);
        Ok(Response::from_parts(parts, body))
    }
}

fn clone_request(req: &Request<Body>) -> Request<Body> {
    let mut r = Request::new(req.body().clone());
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.headers_mut() = req.headers().clone();
    r
}

/// Headers that describe one connection and must not be forwarded
/// (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Sets X-Forwarded-For (appending `peer`), X-Real-IP and
/// X-Forwarded-Proto. X-Real-IP is the first address of the chain only when
/// `peer` is a proxy we trust; otherwise `peer` itself, so a client cannot
/// forge it.
pub fn set_forwarding(headers: &mut HeaderMap, peer: IpAddr, trusted: &[IpAddr], proto: &str) {
    let prior: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let real = if trusted.contains(&peer) {
        prior
            .first()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .unwrap_or(peer)
    } else {
        peer
    };
    let mut chain = if trusted.contains(&peer) {
        prior
    } else {
        Vec::new()
    };
    chain.push(peer.to_string());
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(headers, "x-forwarded-for", chain.join(", "));
    set(headers, "x-real-ip", real.to_string());
    if !(trusted.contains(&peer) && headers.contains_key("x-forwarded-proto")) {
        set(headers, "x-forwarded-proto", proto.to_string());
    }
}

/// The headers worth showing in a trace of a forwarded request.
pub fn shown_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    [
        "host",
        "x-forwarded-for",
        "x-real-ip",
        "x-forwarded-proto",
        "traceparent",
    ]
    .iter()
    .filter_map(|k| {
        headers
            .get(*k)
            .and_then(|v| v.to_str().ok())
            .map(|v| (k.to_string(), v.to_string()))
    })
    .collect()
}

/// How this hop passes requests on (the same for every upstream it tries).
#[derive(Clone, Copy)]
pub struct Forward<'a> {
    /// Trace context of the span doing the forwarding.
    pub ctx: weblab_trace::Ctx,
    pub rec: &'a weblab_trace::Recorder,
    /// The address the request came from.
    pub peer: IpAddr,
    /// Proxies whose X-Forwarded-For we believe.
    pub trusted: &'a [IpAddr],
    /// `http` or `https`, as the client spoke to us.
    pub proto: &'a str,
}

/// Passes one request on to `upstream` over HTTP/1.1 and returns its
/// response, recording a `ProxyForward` span.
pub async fn forward(
    parts: &http::request::Parts,
    body: Bytes,
    upstream: &Upstream,
    f: Forward<'_>,
) -> Result<Response<Body>, EdgeError> {
    use weblab_trace::{Event, Layer};
    let span = f.rec.begin(f.ctx, Layer::Application);
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    // HTTP/2 carries the host in :authority; HTTP/1.1 needs a Host header
    // (RFC 9112 §3.2), so an HTTP/1.0 request without one gets the
    // upstream's address.
    if !headers.contains_key(header::HOST) {
        let host = match parts.uri.authority() {
            Some(auth) => HeaderValue::from_str(auth.as_str()),
            None => HeaderValue::from_str(&upstream.addr.to_string()),
        };
        if let Ok(v) = host {
            headers.insert(header::HOST, v);
        }
    }
    set_forwarding(&mut headers, f.peer, f.trusted, f.proto);
    if let Ok(v) = HeaderValue::from_str(&span.ctx().traceparent(span.id)) {
        headers.insert("traceparent", v);
    }
    let mut req = Request::new(Body::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .unwrap_or_default();
    let shown = shown_headers(&headers);
    *req.headers_mut() = headers;
    let result = upstream.send(req).await;
    let status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.status(),
    };
    f.rec.end(
        span,
        Event::ProxyForward {
            upstream: format!("{} ({})", upstream.name, upstream.addr),
            headers: shown,
            status,
        },
    );
    let (mut parts, body) = result?.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// One upstream tried by [`forward_first`], and why it failed if it did.
pub struct Attempt<'a> {
    pub upstream: &'a Upstream,
    pub failed: Option<String>,
}

/// Tries `order`'s upstreams in turn until one answers, moving on only
/// when nothing reached the last one (so a non-idempotent request is never
/// sent twice). `tried` is told of each upstream before it is tried.
/// Answers 502/504 for an upstream failure, `none_status` when none could
/// be reached; also returns every attempt, so the trace can name the
/// upstream that really answered and those that failed before it.
pub async fn forward_first<'a>(
    parts: &http::request::Parts,
    body: Bytes,
    order: impl IntoIterator<Item = &'a Upstream>,
    f: Forward<'a>,
    mut tried: impl FnMut(&Upstream),
    none_status: http::StatusCode,
) -> (Response<Body>, Vec<Attempt<'a>>) {
    let mut attempts = Vec::new();
    for upstream in order {
        tried(upstream);
        match forward(parts, body.clone(), upstream, f).await {
            Ok(r) => {
                attempts.push(Attempt {
                    upstream,
                    failed: None,
                });
                return (r, attempts);
            }
            Err(e) if e.retry_is_safe() => attempts.push(Attempt {
                upstream,
                failed: Some(e.to_string()),
            }),
            Err(e) => {
                let status =
                    http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_GATEWAY);
                attempts.push(Attempt {
                    upstream,
                    failed: Some(e.to_string()),
                });
                return (crate::http::text(status, &format!("{e}\n")), attempts);
            }
        }
    }
    let resp = crate::http::text(none_status, "no upstream could be reached\n");
    (resp, attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_including_named_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn forwarding_appends_behind_a_trusted_proxy_and_resets_otherwise() {
        let lb: IpAddr = "127.10.3.1".parse().unwrap();
        let client: IpAddr = "127.10.0.2".parse().unwrap();
        let mut h = HeaderMap::new();
        set_forwarding(&mut h, client, &[], "https");
        assert_eq!(h["x-forwarded-for"], "127.10.0.2");
        assert_eq!(h["x-real-ip"], "127.10.0.2");
        set_forwarding(&mut h, lb, &[lb], "http");
        assert_eq!(h["x-forwarded-for"], "127.10.0.2, 127.10.3.1");
        assert_eq!(h["x-real-ip"], "127.10.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        // A client forging the header directly gets it replaced.
        let mut forged = HeaderMap::new();
        forged.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        set_forwarding(&mut forged, client, &[lb], "http");
        assert_eq!(forged["x-forwarded-for"], "127.10.0.2");
        assert_eq!(forged["x-real-ip"], "127.10.0.2");
    }
}
