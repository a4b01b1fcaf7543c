//! The load balancer: terminates TLS, picks a backend from its pool and
//! streams the request there, falling through to the next backend when
//! one cannot be reached (C43). Its plain-HTTP port only redirects to
//! HTTPS.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use weblab_trace::{Event, Layer, Recorder};

use crate::firewall::Firewall;
use crate::http::{Body, ConnInfo, Handler, Line, RequestBody, served, text, trace_ctx};
use crate::pool::Pool;
use crate::proxy::{Forward, forward};

/// The load balancer's request handler.
pub struct LoadBalancer {
    pool: Arc<Pool>,
    firewall: Option<Arc<Firewall>>,
    rec: Recorder,
    /// Sent on HTTPS responses (C33: the browser then refuses plain HTTP).
    hsts: HeaderValue,
}

impl LoadBalancer {
    pub fn new(pool: Arc<Pool>, rec: Recorder) -> Self {
        LoadBalancer {
            pool,
            firewall: None,
            rec,
            hsts: HeaderValue::from_static("max-age=31536000"),
        }
    }

    /// Puts `firewall` in front: its accept phase and its request rate.
    pub fn with_firewall(mut self, firewall: Arc<Firewall>) -> Self {
        self.firewall = Some(firewall);
        self
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

fn client_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

impl Handler for LoadBalancer {
    type Body = Body;

    fn admit(&self, peer: std::net::SocketAddr) -> weblab_server::Admission {
        use weblab_server::Admission;
        match &self.firewall {
            None => Admission::Yes(None),
            Some(fw) => match fw.admit(peer.ip()) {
                Some(ticket) => Admission::Yes(Some(Box::new(ticket))),
                None => Admission::No,
            },
        }
    }

    fn tls_failed(&self, peer: std::net::SocketAddr, why: &str) {
        let span = self
            .rec
            .begin(weblab_trace::Ctx::new_root(), Layer::Session);
        self.rec.end(
            span,
            Event::Note {
                text: format!("TLS handshake from {peer} failed: {why}"),
            },
        );
    }

    async fn call(self: Arc<Self>, req: Request<RequestBody>, conn: ConnInfo) -> Response<Body> {
        let ctx = trace_ctx(req.headers());
        let span = self.rec.begin(ctx, Layer::Application);
        let line = Line::of(&req);
        if let Some(fw) = &self.firewall
            && let Err(wait) = fw.request(conn.peer.ip(), span.ctx())
        {
            // RFC 6585 §4: 429, and when to come back (whole seconds).
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut resp = text(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many requests from {}; retry in {secs}s\n",
                    conn.peer.ip()
                ),
            );
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
            self.rec
                .end_with(span, || served(&line, &conn, resp.status()));
            return resp;
        }
        let pick = self.rec.begin(span.ctx(), Layer::Application);
        let f = Forward {
            ctx: span.ctx(),
            rec: &self.rec,
            peer: conn.peer.ip(),
            trusted: &[],
            proto: if conn.tls { "https" } else { "http" },
        };
        // Boxed: over HTTP/2 each request is a task of its own, and the
        // proxy path's state (2.9 KB) inline made that task large and was
        // copied with it (memmove 7.2 -> 4.8 % of the samples under h2load).
        let done = Box::pin(forward(
            &self.pool,
            req,
            &client_key(conn.peer.ip()),
            f,
            |_| {},
        ))
        .await;
        // The pick names the backend that answered; backends that failed
        // before it are named with their error. Built only when kept.
        if self.rec.keeps_spans() {
            let mut reason = done.reason;
            for a in &done.attempts {
                if let Some(e) = &a.failed {
                    reason.push_str(&format!("; {} failed first: {e}", a.backend.name));
                }
            }
            let backend = match done.attempts.iter().find(|a| a.failed.is_none()) {
                Some(a) => a.backend.label(),
                None if done.attempts.is_empty() => "none (no backend is up)".to_string(),
                None => "none answered".to_string(),
            };
            let at = pick.start_ns;
            self.rec.end_at(
                pick,
                at,
                Event::LbPick {
                    algorithm: self.pool.algorithm().into(),
                    backend,
                    reason,
                },
            );
        }
        let mut resp = done.response;
        if conn.tls {
            resp.headers_mut()
                .insert(http::header::STRICT_TRANSPORT_SECURITY, self.hsts.clone());
        }
        crate::http::on_held(&mut resp, line.version, &self.rec, span.ctx());
        self.rec
            .end_with(span, || served(&line, &conn, resp.status()));
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

    fn redirect(&self, req: &Request<RequestBody>) -> Response<Body> {
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
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
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
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
        let resp = self.redirect(&req);
        self.rec
            .end_with(span, || served(&Line::of(&req), &conn, resp.status()));
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
