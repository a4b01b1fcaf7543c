//! The admin status page of a proxy (`GET /_weblab/status`): its pools,
//! each backend's health, requests in flight and totals. JSON by default,
//! a small HTML table for a browser (`Accept: text/html` or
//! `/_weblab/status.html`).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde::Serialize;

use crate::http::{Body, ConnInfo, Handler, RequestBody, text};
use crate::pool::{Pool, PoolStatus};

/// The status path.
pub const STATUS_PATH: &str = "/_weblab/status";

/// Serves the status of named pools.
pub struct Admin {
    pub role: String,
    pub pools: Vec<(String, Arc<Pool>)>,
    /// The server's client-facing listeners: their open connections are
    /// what a least-connection DNS policy reads (C12).
    pub fronts: Vec<weblab_server::InFlight>,
}

#[derive(Serialize)]
struct Status {
    role: String,
    /// Client connections open now, over every client-facing listener.
    connections: u32,
    pools: Vec<Named>,
}

#[derive(Serialize)]
struct Named {
    name: String,
    #[serde(flatten)]
    status: PoolStatus,
}

impl Admin {
    fn status(&self) -> Status {
        Status {
            role: self.role.clone(),
            connections: self.fronts.iter().map(weblab_server::InFlight::get).sum(),
            pools: self
                .pools
                .iter()
                .map(|(name, p)| Named {
                    name: name.clone(),
                    status: p.status(),
                })
                .collect(),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(s: &Status) -> String {
    let mut out = format!(
        "<!doctype html><meta charset=utf-8><title>{0} status</title>\
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}\
.up{{color:#070}}.down{{color:#b00}}</style><h1>{0}</h1><p>client connections open: {1}</p>",
        escape(&s.role),
        s.connections
    );
    for p in &s.pools {
        out.push_str(&format!(
            "<h2>{}</h2><p>algorithm: {} · checks: {} · tunnels open: {}</p>\
<table><tr><th>backend</th><th>address</th><th>weight</th><th>health</th>\
<th>for</th><th>in flight</th><th>served</th><th>failed</th><th>last change</th></tr>",
            escape(&p.name),
            p.status.algorithm,
            escape(&p.status.checks),
            p.status.tunnels
        ));
        for b in &p.status.backends {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class={h}>{h}</td><td>{}s</td>\
<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&b.name),
                escape(&b.addr),
                b.weight,
                b.for_secs,
                b.in_flight,
                b.served,
                b.failed,
                escape(&b.last_reason),
                h = b.health,
            ));
        }
        out.push_str("</table>");
    }
    out
}

impl Handler for Admin {
    type Body = Body;

    async fn call(self: Arc<Self>, req: Request<RequestBody>, _conn: ConnInfo) -> Response<Body> {
        let path = req.uri().path();
        if path != STATUS_PATH && path != "/_weblab/status.html" {
            return text(
                StatusCode::NOT_FOUND,
                &format!("the admin address serves {STATUS_PATH} only\n"),
            );
        }
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        }
        let wants_html = path.ends_with(".html")
            || req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
        let s = self.status();
        let (ctype, body) = if wants_html {
            ("text/html; charset=utf-8", html(&s))
        } else {
            (
                "application/json",
                serde_json::to_string_pretty(&s).unwrap_or_default() + "\n",
            )
        };
        let mut r = Response::new(Body::new(Bytes::from(body)));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}
