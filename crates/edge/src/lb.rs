//! The load balancer: terminates TLS, picks a backend with a [`Balancer`]
//! and forwards the request, falling through to the next backend when one
//! cannot be reached (C43). Its plain-HTTP port only redirects to HTTPS.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use weblab_trace::{Event, Layer, Recorder};

use crate::balance::Balancer;
use crate::http::{Body, ConnInfo, Handler, RequestBody, read_body, served, text, trace_ctx};
use crate::proxy::{Forward, Upstream, forward_first};

/// The load balancer's request handler.
pub struct LoadBalancer {
    backends: Vec<Upstream>,
    balancer: Box<dyn Balancer>,
    rec: Recorder,
    /// Sent on HTTPS responses (C33: the browser then refuses plain HTTP).
    hsts: HeaderValue,
}

impl LoadBalancer {
    pub fn new(backends: Vec<Upstream>, balancer: Box<dyn Balancer>, rec: Recorder) -> Self {
        LoadBalancer {
            backends,
            balancer,
            rec,
            hsts: HeaderValue::from_static("max-age=31536000"),
        }
    }
}

fn client_key(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

impl Handler for LoadBalancer {
    type Body = Body;

    async fn call(self: Arc<Self>, req: Request<RequestBody>, conn: ConnInfo) -> Response<Body> {
        let ctx = trace_ctx(req.headers());
        let span = self.rec.begin(ctx, Layer::Application);
        let (parts, body) = req.into_parts();
        let mut resp = match read_body(body).await {
            Err(r) => r,
            Ok(body) => {
                let selection = self.balancer.select(&client_key(conn.peer.ip()));
                let order: Vec<&Upstream> = selection
                    .order
                    .iter()
                    .filter_map(|i| self.backends.get(*i))
                    .collect();
                let pick = self.rec.begin(span.ctx(), Layer::Application);
                let f = Forward {
                    ctx: span.ctx(),
                    rec: &self.rec,
                    peer: conn.peer.ip(),
                    trusted: &[],
                    proto: if conn.tls { "https" } else { "http" },
                };
                let (resp, attempts) = forward_first(
                    &parts,
                    body,
                    order,
                    f,
                    |_| {},
                    StatusCode::SERVICE_UNAVAILABLE,
                )
                .await;
                // The pick names the backend that answered; backends that
                // failed before it are named with their error.
                let failed: Vec<String> = attempts
                    .iter()
                    .filter_map(|a| {
                        a.failed
                            .as_ref()
                            .map(|e| format!("{} failed first: {e}", a.upstream.name))
                    })
                    .collect();
                let answered = attempts.iter().find(|a| a.failed.is_none());
                let mut reason = selection.reason.clone();
                for f in &failed {
                    reason.push_str("; ");
                    reason.push_str(f);
                }
                let backend = match answered {
                    Some(a) => format!("{} ({})", a.upstream.name, a.upstream.addr),
                    None => "none answered".to_string(),
                };
                let at = pick.start_ns;
                self.rec.end_at(
                    pick,
                    at,
                    Event::LbPick {
                        algorithm: self.balancer.algorithm().into(),
                        backend,
                        reason,
                    },
                );
                resp
            }
        };
        if conn.tls {
            resp.headers_mut()
                .insert(http::header::STRICT_TRANSPORT_SECURITY, self.hsts.clone());
        }
        self.rec.end(span, served(&parts, &conn, resp.status()));
        resp
    }
}

/// The plain-HTTP side of the load balancer: every request gets a 301 to
/// the same path over HTTPS, on one of the configured server names (the
/// request's Host when it is one of them, else the first). The client's
/// Host is never echoed into Location, so a forged Host cannot turn the
/// redirect into an open redirect.
pub struct RedirectToHttps {
    pub server_names: Vec<String>,
    pub https_port: u16,
    pub rec: Recorder,
}

impl RedirectToHttps {
    /// The name to redirect to for a request that said `host`.
    pub fn target_name(&self, host: Option<&str>) -> Option<&str> {
        let asked = host.map(|h| {
            // Strip a port, but not the colons of a bracketed IPv6 literal.
            match h.rsplit_once(':') {
                Some((name, port))
                    if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    name
                }
                _ => h,
            }
        });
        self.server_names
            .iter()
            .find(|n| asked.is_some_and(|a| a.eq_ignore_ascii_case(n)))
            .or_else(|| self.server_names.first())
            .map(String::as_str)
    }

    fn redirect(&self, req: &http::request::Parts) -> Response<Body> {
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        let Some(name) = self.target_name(host) else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no server name configured\n",
            );
        };
        let port = if self.https_port == 443 {
            String::new()
        } else {
            format!(":{}", self.https_port)
        };
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{name}{port}{pq}");
        let mut r = text(
            StatusCode::MOVED_PERMANENTLY,
            &format!("moved to {location}\n"),
        );
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        r
    }
}

impl Handler for RedirectToHttps {
    type Body = Body;

    async fn call(self: Arc<Self>, req: Request<RequestBody>, conn: ConnInfo) -> Response<Body> {
        let span = self.rec.begin(trace_ctx(req.headers()), Layer::Application);
        let (parts, _body) = req.into_parts();
        let resp = self.redirect(&parts);
        self.rec.end(span, served(&parts, &conn, resp.status()));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_names_a_configured_server_never_the_clients_host() {
        let c = weblab_trace::Collector::new(weblab_trace::Detail::Full);
        let r = RedirectToHttps {
            server_names: vec!["myapp.test".into(), "www.myapp.test".into()],
            https_port: 443,
            rec: Recorder::new(c, "lb", "127.0.3.1", "lb"),
        };
        assert_eq!(
            r.target_name(Some("www.myapp.test:80")),
            Some("www.myapp.test")
        );
        assert_eq!(r.target_name(Some("MYAPP.test")), Some("myapp.test"));
        assert_eq!(r.target_name(Some("evil.example")), Some("myapp.test"));
        assert_eq!(r.target_name(Some("[::1]:80")), Some("myapp.test"));
        assert_eq!(r.target_name(None), Some("myapp.test"));
    }
}
