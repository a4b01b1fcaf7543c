//! The web server: static files straight from disk, everything else passed
//! to an application server (C44, C51).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use weblab_trace::event::WebAction;
use weblab_trace::{Event, Layer, Recorder};

use crate::balance::{Balancer, RoundRobin};
use crate::http::{Body, ConnInfo, Handler, RequestBody, read_body, served, text, trace_ctx};
use crate::proxy::{Forward, Upstream, forward_first};

/// URL prefix served from disk.
pub const STATIC_PREFIX: &str = "/static/";

/// The web server's request handler.
pub struct WebServer {
    root: PathBuf,
    apps: Vec<Upstream>,
    balancer: RoundRobin,
    /// Proxies in front of us whose X-Forwarded-For we trust (the LB).
    trusted: Vec<IpAddr>,
    rec: Recorder,
}

impl WebServer {
    pub fn new(root: PathBuf, apps: Vec<Upstream>, trusted: Vec<IpAddr>, rec: Recorder) -> Self {
        let n = apps.len();
        WebServer {
            root,
            apps,
            balancer: RoundRobin::new(n),
            trusted,
            rec,
        }
    }
}

/// Maps a URL path under the static prefix to a file under `root`, refusing
/// anything that could leave it (`..`, absolute parts, NUL, backslashes).
pub fn static_file(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = url_path.strip_prefix('/')?;
    if rel.contains('\0') || rel.contains('\\') || rel.contains('%') {
        return None;
    }
    let rel = Path::new(rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(rel))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|c| {
            let mut it = c.trim().split(';');
            let name = it.next().unwrap_or("").trim();
            let q0 = it.any(|p| p.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q0
        })
}

/// Serves one static file: ETag revalidation (304), gzip for text when the
/// client accepts it, and a cache lifetime (C30, C31, C44).
async fn serve_file(
    path: &Path,
    req_headers: &HeaderMap,
    method: &Method,
) -> (Response<Body>, u64) {
    let Ok(meta) = tokio::fs::metadata(path).await else {
        return (text(StatusCode::NOT_FOUND, "no such file\n"), 0);
    };
    if !meta.is_file() {
        return (text(StatusCode::NOT_FOUND, "no such file\n"), 0);
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let ctype = content_type(path);
    let compressible =
        ctype.starts_with("text/") || ctype.contains("json") || ctype.contains("svg");
    // The representation this client gets; each has its own validator
    // (RFC 9110 §8.8.3: a strong ETag names one representation, so the
    // gzip one differs from the identity one).
    let gzip = compressible && meta.len() > 256 && accepts_gzip(req_headers);
    let etag_of = |gz: bool| {
        let suffix = if gz { "-gz" } else { "" };
        format!("\"{:x}-{:x}{suffix}\"", meta.len(), mtime)
    };
    let etag = etag_of(gzip);
    let builder = Response::builder()
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .header(header::VARY, "Accept-Encoding");
    // RFC 9110 §13.1.2: If-None-Match with a matching tag gives 304.
    let matches = req_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*")
        });
    if matches {
        let r = builder
            .header(header::ETAG, &etag)
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::new(Bytes::new()))
            .unwrap_or_default();
        return (r, 0);
    }
    let Ok(data) = tokio::fs::read(path).await else {
        return (
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n"),
            0,
        );
    };
    let size = data.len() as u64;
    let compressed = gzip
        .then(|| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&data).and_then(|_| enc.finish()).ok()
        })
        .flatten();
    let (body, builder) = match compressed {
        Some(gz) => (
            gz,
            builder
                .header(header::CONTENT_ENCODING, "gzip")
                .header(header::ETAG, etag_of(true)),
        ),
        None => (data, builder.header(header::ETAG, etag_of(false))),
    };
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        body
    };
    let r = builder
        .header(header::CONTENT_TYPE, ctype)
        .body(Body::new(Bytes::from(body)))
        .unwrap_or_default();
    (r, size)
}

impl Handler for WebServer {
    type Body = Body;

    async fn call(self: Arc<Self>, req: Request<RequestBody>, conn: ConnInfo) -> Response<Body> {
        let ctx = trace_ctx(req.headers());
        let span = self.rec.begin(ctx, Layer::Application);
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let decide = |action: WebAction| {
            let d = self.rec.begin(span.ctx(), Layer::Application);
            self.rec.end(
                d,
                Event::WebDecision {
                    path: path.clone(),
                    action,
                },
            );
        };
        let resp = if path.starts_with(STATIC_PREFIX) {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                let mut r = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "static files are read-only\n",
                );
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                decide(WebAction::Reject {
                    status: 405,
                    reason: "method not allowed on a static file".into(),
                });
                r
            } else if let Some(file) = static_file(&self.root, &path) {
                // The decision's span covers reading the file.
                let d = self.rec.begin(span.ctx(), Layer::Application);
                let (r, bytes) = serve_file(&file, &parts.headers, &parts.method).await;
                let action = if r.status() == StatusCode::NOT_FOUND {
                    WebAction::Reject {
                        status: 404,
                        reason: format!("{} does not exist", file.display()),
                    }
                } else {
                    WebAction::Static {
                        file: file.display().to_string(),
                        bytes,
                    }
                };
                self.rec.end(
                    d,
                    Event::WebDecision {
                        path: path.clone(),
                        action,
                    },
                );
                r
            } else {
                decide(WebAction::Reject {
                    status: 400,
                    reason: "path escapes the document root".into(),
                });
                text(StatusCode::BAD_REQUEST, "bad path\n")
            }
        } else {
            match read_body(body).await {
                Err(r) => r,
                Ok(body) => {
                    let selection = self.balancer.select(&[]);
                    let order: Vec<&Upstream> = selection
                        .order
                        .iter()
                        .filter_map(|i| self.apps.get(*i))
                        .collect();
                    let f = Forward {
                        ctx: span.ctx(),
                        rec: &self.rec,
                        peer: conn.peer.ip(),
                        trusted: &self.trusted,
                        proto: "http",
                    };
                    let tried = |u: &Upstream| {
                        decide(WebAction::Proxy {
                            upstream: format!("{} ({})", u.name, u.addr),
                        })
                    };
                    forward_first(&parts, body, order, f, tried, StatusCode::BAD_GATEWAY)
                        .await
                        .0
                }
            }
        };
        self.rec.end(span, served(&parts, &conn, resp.status()));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_cannot_escape_the_root() {
        let root = Path::new("/srv/www");
        assert_eq!(
            static_file(root, "/static/app.css"),
            Some(PathBuf::from("/srv/www/static/app.css"))
        );
        for bad in [
            "/static/../secret",
            "/static/./x",
            "/static/a\\b",
            "/static/%2e%2e/x",
            "static/x",
            "/static//etc/passwd",
        ] {
            let got = static_file(root, bad);
            assert!(got.is_none() || got.as_ref().is_some_and(|p| p.starts_with(root) && !p.to_string_lossy().contains("..")), "{bad} -> {got:?}");
        }
        assert!(static_file(root, "/static/../secret").is_none());
    }

    #[test]
    fn gzip_acceptance_honours_q_zero() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));
    }
}
