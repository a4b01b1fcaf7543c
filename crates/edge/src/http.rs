//! HTTP server plumbing shared by the load balancer and the web server:
//! accept loop (TLS optional, HTTP/1.1 and HTTP/2 on one port), bounded
//! body reading and small response helpers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use weblab_trace::Ctx;

/// Every response body here is buffered.
pub type Body = Full<Bytes>;

/// The connection a request came in on.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
}

/// A request handler.
pub trait HttpService: Send + Sync + 'static {
    fn call(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// A running HTTP server; it stops accepting when dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long a client has to send its whole request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `svc` on `listener`, over TLS when `tls` is given (ALPN decides
/// between HTTP/2 and HTTP/1.1; plain connections may speak either).
pub fn serve_http<S: HttpService>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    svc: Arc<S>,
) -> std::io::Result<HttpServer> {
    let addr = listener.local_addr()?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                // Out of descriptors or a transient error: back off
                // briefly rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (svc, acceptor) = (svc.clone(), acceptor.clone());
            tokio::spawn(async move {
                let conn = ConnInfo {
                    peer,
                    local: addr,
                    tls: acceptor.is_some(),
                };
                let service = hyper::service::service_fn(move |req| {
                    let svc = svc.clone();
                    async move { Ok::<_, Infallible>(svc.call(req, conn).await) }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                // A client that trickles its request head (slowloris) is cut
                // off, and the head may not exceed 64 KiB.
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(64 * 1024);
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_header_list_size(64 * 1024);
                match acceptor {
                    Some(acceptor) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                        else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    Ok(HttpServer { addr, task })
}

/// Reads a request body of at most `limit` bytes; a larger one is refused
/// with 413 (RFC 9110 §15.5.14).
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {limit} bytes\n"),
        )),
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

/// The span event of a request a server answered.
pub fn served(
    parts: &http::request::Parts,
    path: String,
    conn: &ConnInfo,
    status: StatusCode,
) -> weblab_trace::Event {
    weblab_trace::Event::HttpServe {
        method: parts.method.to_string(),
        path,
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
