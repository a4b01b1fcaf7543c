//! The web server: its sites pick a location for each request, which
//! serves a static file or proxies to an application server (C44, C51).

use std::net::IpAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode, header};
use weblab_trace::event::WebAction;
use weblab_trace::{Event, Layer, Recorder};

use crate::http::{Body, ConnInfo, Handler, Line, RequestBody, served, text, trace_ctx};
use crate::proxy::{Forward, forward};
use crate::sites::{Action, Sites};

/// URL prefix of the static files in the default site.
pub const STATIC_PREFIX: &str = "/static/";

/// The web server's request handler.
pub struct WebServer {
    sites: Sites,
    /// Proxies in front of us whose X-Forwarded-For we trust (the LB).
    trusted: Vec<IpAddr>,
    rec: Recorder,
}

impl WebServer {
    pub fn new(sites: Sites, trusted: Vec<IpAddr>, rec: Recorder) -> Self {
        WebServer {
            sites,
            trusted,
            rec,
        }
    }

    pub fn sites(&self) -> &Sites {
        &self.sites
    }
}

impl Handler for WebServer {
    type Body = Body;

    async fn call(self: Arc<Self>, req: Request<RequestBody>, conn: ConnInfo) -> Response<Body> {
        let ctx = trace_ctx(req.headers());
        let span = self.rec.begin(ctx, Layer::Application);
        let line = Line::of(&req);
        let path = line.uri.path();
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| line.uri.authority().map(|a| a.as_str()));
        let site = self.sites.for_host(host);
        let location = site.and_then(|s| s.location(path));
        let decide = |action: &dyn Fn() -> WebAction| {
            let d = self.rec.begin(span.ctx(), Layer::Application);
            self.rec.end_with(d, || Event::WebDecision {
                path: path.to_string(),
                action: action(),
            });
        };
        let resp = match location.map(|l| &l.action) {
            None => {
                let why = format!(
                    "no location of site {} matches",
                    site.map_or_else(|| "-".into(), |s| s.label())
                );
                decide(&|| WebAction::Reject {
                    status: 404,
                    reason: why.clone(),
                });
                text(StatusCode::NOT_FOUND, &format!("{why}\n"))
            }
            Some(Action::Files(files)) => {
                // The decision's span covers finding and reading the file.
                let d = self.rec.begin(span.ctx(), Layer::Application);
                let s = files.serve(path, req.method(), req.headers()).await;
                self.rec.end_with(d, || Event::WebDecision {
                    path: path.to_string(),
                    action: match (&s.refused, &s.file) {
                        (Some(reason), _) => WebAction::Reject {
                            status: s.response.status().as_u16(),
                            reason: reason.clone(),
                        },
                        (None, file) => WebAction::Static {
                            file: file
                                .as_ref()
                                .map_or_else(|| path.to_string(), |f| f.display().to_string()),
                            bytes: s.bytes,
                        },
                    },
                });
                s.response
            }
            Some(Action::Proxy(pool)) => {
                let f = Forward {
                    ctx: span.ctx(),
                    rec: &self.rec,
                    peer: conn.peer.ip(),
                    trusted: &self.trusted,
                    proto: "http",
                };
                let tried = |b: &crate::backend::Backend| {
                    decide(&|| WebAction::Proxy {
                        upstream: b.label(),
                    })
                };
                forward(pool, req, &[], f, tried).await.response
            }
        };
        let mut resp = resp;
        crate::http::on_held(&mut resp, line.version, &self.rec, span.ctx());
        self.rec
            .end_with(span, || served(&line, &conn, resp.status()));
        resp
    }
}
