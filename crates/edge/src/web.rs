//! The web server: static files from its document root, everything else
//! passed to an application server (C44, C51).

use std::net::IpAddr;
use std::sync::Arc;

use http::{Request, Response};
use weblab_trace::event::WebAction;
use weblab_trace::{Event, Layer, Recorder};

use crate::files::Files;
use crate::http::{Body, ConnInfo, Handler, Line, RequestBody, served, trace_ctx};
use crate::pool::Pool;
use crate::proxy::{Forward, forward};

/// URL prefix served from disk.
pub const STATIC_PREFIX: &str = "/static/";

/// The web server's request handler.
pub struct WebServer {
    files: Files,
    apps: Arc<Pool>,
    /// Proxies in front of us whose X-Forwarded-For we trust (the LB).
    trusted: Vec<IpAddr>,
    rec: Recorder,
}

impl WebServer {
    pub fn new(files: Files, apps: Arc<Pool>, trusted: Vec<IpAddr>, rec: Recorder) -> Self {
        WebServer {
            files,
            apps,
            trusted,
            rec,
        }
    }
}

impl Handler for WebServer {
    type Body = Body;

    async fn call(self: Arc<Self>, req: Request<RequestBody>, conn: ConnInfo) -> Response<Body> {
        let ctx = trace_ctx(req.headers());
        let span = self.rec.begin(ctx, Layer::Application);
        let line = Line::of(&req);
        let path = line.uri.path();
        let resp = if path.starts_with(STATIC_PREFIX) {
            // The decision's span covers finding and reading the file.
            let d = self.rec.begin(span.ctx(), Layer::Application);
            let s = self.files.serve(path, req.method(), req.headers()).await;
            let action = match (&s.refused, &s.file) {
                (Some(reason), _) => WebAction::Reject {
                    status: s.response.status().as_u16(),
                    reason: reason.clone(),
                },
                (None, Some(file)) => WebAction::Static {
                    file: file.display().to_string(),
                    bytes: s.bytes,
                },
                (None, None) => WebAction::Static {
                    file: path.to_string(),
                    bytes: s.bytes,
                },
            };
            self.rec.end(
                d,
                Event::WebDecision {
                    path: path.to_string(),
                    action,
                },
            );
            s.response
        } else {
            let f = Forward {
                ctx: span.ctx(),
                rec: &self.rec,
                peer: conn.peer.ip(),
                trusted: &self.trusted,
                proto: "http",
            };
            let (rec, ctx, path) = (&self.rec, span.ctx(), path.to_string());
            let tried = |b: &crate::backend::Backend| {
                let d = rec.begin(ctx, Layer::Application);
                rec.end(
                    d,
                    Event::WebDecision {
                        path: path.clone(),
                        action: WebAction::Proxy {
                            upstream: b.label(),
                        },
                    },
                );
            };
            forward(&self.apps, req, &[], f, tried).await.response
        };
        self.rec.end(span, served(&line, &conn, resp.status()));
        resp
    }
}
