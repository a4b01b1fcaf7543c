//! A span sink that sends spans to an OTLP/HTTP collector in batches.
//!
//! Recording never waits: spans go into a bounded buffer (dropped and
//! counted when it is full), and one task posts them every [`LINGER`] or
//! when [`BATCH`] are waiting, as `application/x-protobuf` to `/v1/traces`. A
//! collector that is down costs only the spans: the role keeps serving and
//! says so once, and again once the collector answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, mpsc, oneshot};
use weblab_trace::{Span, SpanSink};

use crate::convert;

/// Spans per export request.
pub const BATCH: usize = 512;
/// Spans waiting to be sent; more are dropped.
const QUEUE: usize = 16_384;
/// How long a span may wait for its batch.
pub const LINGER: Duration = Duration::from_millis(100);

/// Sends spans to an OTLP/HTTP endpoint.
pub struct OtlpExporter {
    /// Spans waiting for the next batch. Recording appends under a short
    /// lock and wakes the sender only when a batch is full, so a busy
    /// server does not pay a cross-thread wake-up per span.
    pending: Mutex<Vec<Span>>,
    full: Notify,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
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
        let (flushes, flush_rx) = mpsc::channel(16);
        let exporter = Arc::new(OtlpExporter {
            pending: Mutex::new(Vec::with_capacity(BATCH)),
            full: Notify::new(),
            flushes,
            dropped: AtomicU64::new(0),
            url: url.to_string(),
        });
        tokio::spawn(send_loop(Arc::downgrade(&exporter), url, flush_rx));
        Ok(exporter)
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every span recorded so far has been sent (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.flushes.send(tx).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn take(&self) -> Vec<Span> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *pending, Vec::with_capacity(BATCH))
    }
}

impl SpanSink for OtlpExporter {
    fn record(&self, span: Span) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= QUEUE {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.push(span);
        if pending.len() == BATCH {
            self.full.notify_one();
        }
    }
}

async fn send_loop(
    exporter: Weak<OtlpExporter>,
    url: Uri,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    let mut failing = false;
    loop {
        let mut waiter = None;
        {
            let Some(e) = exporter.upgrade() else {
                return;
            };
            tokio::select! {
                _ = e.full.notified() => {}
                _ = tokio::time::sleep(LINGER) => {}
                w = flushes.recv() => waiter = w,
            }
        }
        loop {
            let Some(e) = exporter.upgrade() else {
                return;
            };
            let batch = e.take();
            drop(e);
            if batch.is_empty() {
                break;
            }
            for chunk in batch.chunks(BATCH) {
                let body = convert::encode_protobuf(chunk);
                match post(&url, &mut conn, body).await {
                    Ok(()) if failing => {
                        failing = false;
                        eprintln!("otlp: {url} answers again; spans flow");
                    }
                    Ok(()) => {}
                    Err(err) => {
                        conn = None;
                        if !failing {
                            failing = true;
                            eprintln!(
                                "otlp: cannot send spans to {url}: {err}; still serving, spans are dropped until it answers"
                            );
                        }
                    }
                }
            }
        }
        if let Some(w) = waiter {
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
