//! Reverse proxying through phases: the upstream peer (the pool's plan,
//! failover), the upstream request (hop-by-hop headers out, forwarding
//! headers in, trace context), the response streamed back, and an
//! upgraded connection (WebSocket) relayed as a tunnel.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use weblab_trace::{Ctx, Event, Layer, Recorder};

use crate::backend::{Backend, Outcome};
use crate::body::{Body, Outgoing};
use crate::http::{RequestBody, text};
use crate::pool::{ConnTag, Pool, SendError};

/// Headers that describe one connection and must not be forwarded
/// (RFC 9110 §7.6.1), Transfer-Encoding with them (the next hop frames
/// the body its own way). Built names, not strings: a lookup by `&str`
/// parses the name again on every request.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
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
    }
    for h in &HOP_BY_HOP {
        headers.remove(h);
    }
}

/// Sets X-Forwarded-For (appending `peer`), X-Real-IP and
/// X-Forwarded-Proto. X-Real-IP is the first address of the chain only when
/// `peer` is a proxy we trust; otherwise `peer` itself, so a client cannot
/// forge it.
pub fn set_forwarding(
    headers: &mut HeaderMap,
    peer: IpAddr,
    trusted: &[IpAddr],
    proto: &'static str,
) {
    if !trusted.contains(&peer) {
        // The client's own chain, if it sent one, is dropped whole.
        if let Ok(v) = HeaderValue::try_from(peer.to_string()) {
            headers.insert(X_FORWARDED_FOR, v.clone());
            headers.insert(X_REAL_IP, v);
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        return;
    }
    let mut chain: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let real = chain
        .first()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .unwrap_or(peer);
    chain.push(peer.to_string());
    if let Ok(v) = HeaderValue::try_from(chain.join(", ")) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if let Ok(v) = HeaderValue::try_from(real.to_string()) {
        headers.insert(X_REAL_IP, v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
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

/// How this hop passes requests on.
#[derive(Clone, Copy)]
pub struct Forward<'a> {
    /// Trace context of the span doing the forwarding.
    pub ctx: Ctx,
    pub rec: &'a Recorder,
    /// The address the request came from.
    pub peer: IpAddr,
    /// Proxies whose X-Forwarded-For we believe.
    pub trusted: &'a [IpAddr],
    /// `http` or `https`, as the client spoke to us.
    pub proto: &'static str,
}

/// One backend tried, and why it failed if it did.
pub struct Attempt {
    pub backend: Arc<Backend>,
    pub failed: Option<String>,
}

/// What forwarding one request came to.
pub struct Forwarded {
    pub response: Response<Body>,
    /// Why the pool's algorithm chose the first backend.
    pub reason: String,
    /// Backends tried, in order; the last one answered unless it failed.
    pub attempts: Vec<Attempt>,
}

/// The upgrade a client asked for (`Upgrade: websocket` on HTTP/1.1).
fn upgrade_asked(parts: &http::request::Parts) -> Option<HeaderValue> {
    let conn_says = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if parts.version != http::Version::HTTP_11 || !conn_says {
        return None;
    }
    parts.headers.get(header::UPGRADE).cloned()
}

/// GET, HEAD, PUT, DELETE, OPTIONS and TRACE may be sent twice with the
/// effect of once (RFC 9110 §9.2.2).
fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Passes `req` on to a backend of `pool` chosen for `key`, streaming the
/// body both ways. A backend that cannot be connected to is skipped for
/// the next (nothing was sent, so even a POST is safe); a backend that
/// fails after the request may have been sent is skipped only for an
/// idempotent request without a body; a timeout is never retried. Each
/// attempt is a `ProxyForward` span; `on_attempt` hears of each first.
pub async fn forward(
    pool: &Pool,
    req: Request<RequestBody>,
    key: &[u8],
    f: Forward<'_>,
    mut on_attempt: impl FnMut(&Backend),
) -> Forwarded {
    let plan = pool.plan(key);
    let (mut parts, body) = req.into_parts();
    let keep = parts.extensions.get::<weblab_server::Keep>().cloned();
    let mut attempts: Vec<Attempt> = Vec::new();
    if plan.order.is_empty() {
        return Forwarded {
            response: text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("no backend is up ({})\n", plan.reason),
            ),
            reason: plan.reason,
            attempts,
        };
    }
    let upgrade =
        upgrade_asked(&parts).filter(|_| pool.tunnels.load(Ordering::Relaxed) < pool.max_tunnels);
    let client_upgrade = upgrade
        .as_ref()
        .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers);
    if let Some(u) = &upgrade {
        headers.insert(header::UPGRADE, u.clone());
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    // HTTP/2 carries the host in :authority; HTTP/1.1 needs a Host header
    // (RFC 9112 §3.2).
    if !headers.contains_key(header::HOST)
        && let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(header::HOST, v);
    }
    set_forwarding(&mut headers, f.peer, f.trusted, f.proto);
    let bodiless = hyper::body::Body::is_end_stream(&body);
    let (mut outgoing, mut lender) = Outgoing::lend(body);
    let retry_after_send = bodiless && idempotent(&parts.method);
    let n = plan.order.len();
    for (i, backend) in plan.order.iter().enumerate() {
        on_attempt(backend);
        let span = f.rec.begin(f.ctx, Layer::Application);
        let mut h = headers.clone();
        if let Ok(v) = HeaderValue::from_str(&span.ctx().traceparent(span.id)) {
            h.insert("traceparent", v);
        }
        if !h.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(&backend.addr.to_string())
        {
            h.insert(header::HOST, v);
        }
        // Only a span that goes somewhere shows them.
        let shown = f.rec.keeps_spans().then(|| shown_headers(&h));
        let mut up = Request::new(outgoing);
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = parts.uri.clone();
        *up.headers_mut() = h;
        let guard = backend.enter();
        let result = match (pool.send(backend, up).await, lender.fault()) {
            // The backend answered a request whose body the client never
            // finished: the client gets the body's failure (408/413/400).
            (Ok(_), Some(f)) => Err(SendError::ClientBody {
                too_large: f.too_large,
                timed_out: f.timed_out,
                message: f.message,
            }),
            (r, _) => r,
        };
        let last = i + 1 == n;
        // What the backend did: the span and its passive health say it
        // once for both outcomes.
        let (status, connection, outcome) = match &result {
            Ok(resp) => (
                resp.status(),
                resp.extensions().get::<ConnTag>().cloned(),
                if resp.status().is_server_error() {
                    Some(Outcome::Failed(format!("answered {}", resp.status())))
                } else {
                    Some(Outcome::Ok)
                },
            ),
            // The client's own body failing is not the backend's fault.
            Err(e @ SendError::ClientBody { .. }) => (e.status(), None, None),
            Err(e) => (e.status(), None, Some(Outcome::Failed(e.to_string()))),
        };
        if let Some(o) = outcome {
            pool.report(backend, o);
        }
        let ctx = span.ctx();
        f.rec.end_with(span, || Event::ProxyForward {
            upstream: backend.label(),
            headers: shown.unwrap_or_default(),
            status: status.as_u16(),
            connection: connection
                .as_ref()
                .map(ConnTag::describe_use)
                .unwrap_or_default(),
        });
        match result {
            Ok(mut resp) => {
                attempts.push(Attempt {
                    backend: backend.clone(),
                    failed: None,
                });
                let response = if status == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_side) = client_upgrade
                {
                    let upstream_side = hyper::upgrade::on(&mut resp);
                    crate::tunnel::spawn(crate::tunnel::Tunnel {
                        tunnels: pool.tunnels.clone(),
                        idle: pool.timeouts.tunnel_idle,
                        backend: backend.clone(),
                        in_flight: guard,
                        client: client_side,
                        upstream: upstream_side,
                        rec: f.rec.clone(),
                        ctx,
                        protocol: upgrade
                            .as_ref()
                            .and_then(|u| u.to_str().ok())
                            .unwrap_or("upgraded")
                            .to_ascii_lowercase(),
                        keep: keep.clone(),
                    });
                    let (parts, _) = resp.into_parts();
                    Response::from_parts(parts, Body::empty())
                } else {
                    let (mut parts, incoming) = resp.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Response::from_parts(parts, Body::upstream(incoming, Some(guard)))
                };
                return Forwarded {
                    response,
                    reason: plan.reason,
                    attempts,
                };
            }
            Err(e) => {
                drop(guard);
                let client_fault = matches!(e, SendError::ClientBody { .. });
                attempts.push(Attempt {
                    backend: backend.clone(),
                    failed: Some(e.to_string()),
                });
                // The body goes to the next backend only if it is whole.
                let next = match &e {
                    SendError::Connect(_) => lender.reclaim().map(Outgoing::lend),
                    SendError::Other(_) if retry_after_send => Some(Outgoing::lend_empty()),
                    _ => None,
                };
                match next {
                    Some((o, l)) if !last => {
                        outgoing = o;
                        lender = l;
                    }
                    _ => {
                        let why = if client_fault {
                            e.to_string()
                        } else {
                            format!("{} failed: {e}", backend.name)
                        };
                        let mut response = text(status, &format!("{why}\n"));
                        if client_fault {
                            // What is left of the body is not worth reading.
                            response
                                .headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        return Forwarded {
                            response,
                            reason: plan.reason,
                            attempts,
                        };
                    }
                }
            }
        }
    }
    unreachable!("the loop returns on its last backend")
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
