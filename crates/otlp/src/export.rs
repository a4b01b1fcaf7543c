//! A span sink that sends spans to an OTLP/HTTP collector in batches.
//!
//! Recording never waits: spans go into a bounded queue (dropped and
//! counted when it is full), and one task posts them, up to
//! [`BATCH`] at a time, as `application/x-protobuf` to `/v1/traces`. A
//! collector that is down costs only the spans: the role keeps serving and
//! says so once, and again once the collector answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use weblab_trace::{Span, SpanSink};

use crate::convert;

/// Spans per export request.
pub const BATCH: usize = 512;
/// Spans waiting to be sent; more are dropped.
const QUEUE: usize = 16_384;
/// How long a batch may wait to fill up.
const LINGER: Duration = Duration::from_millis(100);

// Spans dominate the queue, so they are not boxed.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Span(Span),
    Flush(oneshot::Sender<()>),
}

/// Sends spans to an OTLP/HTTP endpoint.
pub struct OtlpExporter {
    tx: mpsc::Sender<Msg>,
    dropped: AtomicU64,
    pub url: String,
}

/// `http://host:port` or a full `/v1/traces` URL → the URL to post to.
pub fn traces_url(endpoint: &str) -> Result<Uri, String> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!(
            "{endpoint:?}: give an http://HOST:PORT OTLP endpoint (TLS is not supported)"
        ));
    }
    let path = match uri.path() {
        "" | "/" => "/v1/traces",
        p => p,
    };
    format!(
        "http://{}{path}",
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    )
    .parse()
    .map_err(|e| format!("{endpoint:?}: {e}"))
}

impl OtlpExporter {
    /// Starts the sending task (inside a tokio runtime).
    pub fn start(endpoint: &str) -> Result<Arc<OtlpExporter>, String> {
        let url = traces_url(endpoint)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let exporter = Arc::new(OtlpExporter {
            tx,
            dropped: AtomicU64::new(0),
            url: url.to_string(),
        });
        tokio::spawn(send_loop(url, rx));
        Ok(exporter)
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every span recorded so far has been sent (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

impl SpanSink for OtlpExporter {
    fn record(&self, span: Span) {
        if self.tx.try_send(Msg::Span(span)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn send_loop(url: Uri, mut rx: mpsc::Receiver<Msg>) {
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    let mut failing = false;
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        match first {
            Msg::Span(s) => batch.push(s),
            Msg::Flush(w) => waiters.push(w),
        }
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH && waiters.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Msg::Span(s))) => batch.push(s),
                Ok(Some(Msg::Flush(w))) => waiters.push(w),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let body = convert::to_protobuf(&convert::encode(&batch));
            batch.clear();
            match post(&url, &mut conn, body).await {
                Ok(()) if failing => {
                    failing = false;
                    eprintln!("otlp: {url} answers again; spans flow");
                }
                Ok(()) => {}
                Err(e) => {
                    conn = None;
                    if !failing {
                        failing = true;
                        eprintln!(
                            "otlp: cannot send spans to {url}: {e}; still serving, spans are dropped until it answers"
                        );
                    }
                }
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

async fn post(
    url: &Uri,
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    body: Vec<u8>,
) -> Result<(), String> {
    let authority = url
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        let tcp = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&authority),
        )
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(driver);
        *conn = Some(sender);
    }
    let Some(sender) = conn.as_mut() else {
        return Err("no connection".into());
    };
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = Request::post(url.path())
        .header(http::header::HOST, &authority)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .map_err(|_| "the collector did not answer in 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered {status}"))
    }
}
