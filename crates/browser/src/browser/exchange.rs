//! The exchange on a connection: the request written, the wait for the
//! answer's head, the body read — each timed for the trace (the `send`,
//! `wait` and `receive` stages).

use http_body_util::combinators::UnsyncBoxBody;

use super::prepare::Prepared;
use super::*;

/// An answer as it came off the connection.
pub(super) struct Answer {
    pub(super) parts: http::response::Parts,
    /// The body as sent (still content-encoded).
    pub(super) body: Bytes,
}

type AnyBody = UnsyncBoxBody<Bytes, BrowserError>;

impl Browser {
    /// Sends `prep` on `conn`, waits for the head, reads the body, and
    /// gives the connection back to the pool of `origin`.
    pub(super) async fn exchange(
        &self,
        ctx: Ctx,
        n: u32,
        (origin, mut conn): (Origin, Conn),
        url: &Url,
        prep: Prepared,
    ) -> Result<Answer, BrowserError> {
        let h2 = prep.h2;
        let method = prep.method.to_string();
        let mut req = Request::builder().method(prep.method.clone());
        // HTTP/2 sends pseudo-headers first and every name in lowercase
        // (RFC 9113 §8.2.1, §8.3); an HTTP/1.1 head is shown as written.
        let mut shown: Vec<(String, String)> = Vec::new();
        req = if h2 {
            shown.extend([
                (":method".to_string(), method.clone()),
                (":scheme".into(), prep.scheme.clone()),
                (":authority".into(), prep.authority.clone()),
                (":path".into(), prep.path.clone()),
            ]);
            req.uri(format!("{}://{}{}", prep.scheme, prep.authority, prep.path))
                .version(Version::HTTP_2)
        } else {
            let req = req
                .uri(prep.path.as_str())
                .header(header::HOST, prep.authority.as_str());
            if self.http10 {
                req.version(Version::HTTP_10)
            } else {
                req
            }
        };
        let mut wait = self.rec.begin(ctx, Layer::Application).request(Some(n));
        let traceparent = ("traceparent".to_string(), ctx.traceparent(wait.id));
        for (k, v) in prep.fields.iter().chain(std::iter::once(&traceparent)) {
            req = req.header(k.as_str(), v.as_str());
            shown.push((k.to_ascii_lowercase(), v.clone()));
        }
        let req = req
            .body(Full::new(prep.body))
            .map_err(|e| BrowserError::http(format!("cannot build the request: {e}")))?;
        // Send, then wait for the head (TTFB), then read the body.
        let t_send = now_ns();
        let sent = self.write(&mut conn, req).await;
        let t_head = now_ns();
        let (resp, prepared, t_written): (Response<AnyBody>, Event, u64) = match sent {
            Ok(Sent::Hyper { resp, h2_send }) => {
                // C02: the head as it went out (HTTP/1.1: the bytes written).
                let captured = conn.times.take_capture();
                let prepared = if h2 {
                    let block = lock(&conn.times.h2)
                        .as_ref()
                        .and_then(|w| w.block(2 * h2_send + 1));
                    Event::RequestPrepared {
                        method: method.clone(),
                        target: prep.path.clone(),
                        version: conn.version().into(),
                        headers: shown,
                        header_block: block,
                    }
                } else {
                    wire_head(&captured).unwrap_or_else(|| Event::RequestPrepared {
                        method: method.clone(),
                        target: prep.path.clone(),
                        version: conn.version().into(),
                        headers: vec![("(head not captured)".into(), String::new())],
                        header_block: None,
                    })
                };
                let t_written = conn
                    .times
                    .last_write_ns
                    .load(Ordering::Relaxed)
                    .clamp(t_send, t_head);
                (resp, prepared, t_written)
            }
            Ok(Sent::Piped { resp, written }) => {
                if written.behind > 0 {
                    let text = format!(
                        "pipelined (C25): written on {} while {} earlier request(s) there were still unanswered; its answer comes after theirs",
                        conn.remote, written.behind
                    );
                    self.rec.span(
                        ctx,
                        Layer::Application,
                        (written.at_ns, written.at_ns),
                        Some(n),
                        Event::Note { text },
                    );
                }
                let prepared = wire_head(&written.head).ok_or_else(|| {
                    BrowserError::http("a pipelined request head that does not parse")
                })?;
                (resp, prepared, written.at_ns.clamp(t_send, t_head))
            }
            Err(e) => {
                conn.times.take_capture();
                return Err(e.because(conn.times.failure()).before_answer());
            }
        };
        self.rec
            .span(ctx, Layer::Application, (t_send, t_send), Some(n), prepared);
        self.rec.span(
            ctx,
            Layer::Application,
            (t_send, t_written),
            Some(n),
            Event::RequestSent {
                method,
                url: url.to_string(),
                version: conn.version().into(),
            },
        );
        wait.start_ns = t_written;
        let head: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let status = resp.status().as_u16();
        self.rec.end_at(
            wait,
            t_head,
            Event::Waiting {
                status,
                headers: head,
            },
        );
        let (parts, body) = resp.into_parts();
        let recv = self.rec.begin(ctx, Layer::Application).request(Some(n));
        let body = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                BrowserError::http(format!("reading the body: {e} (at most {MAX_BODY} bytes)"))
            })?
            .to_bytes();
        let header_str = |h: header::HeaderName| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        self.rec.end(
            recv,
            Event::BodyReceived {
                status,
                content_type: header_str(header::CONTENT_TYPE),
                content_encoding: header_str(header::CONTENT_ENCODING),
                wire_bytes: body.len() as u64,
            },
        );
        // The kernel's view of the connection once this answer is in.
        if let Some(info) = tcp_info(conn.fd) {
            self.instant(
                ctx,
                n,
                Layer::Transport,
                tcp_info_event(conn.remote, &info, true),
            );
        }
        self.put(origin, conn);
        Ok(Answer { parts, body })
    }

    /// Hands `req` to the connection; returns once the answer's head is in.
    async fn write(
        &self,
        conn: &mut Conn,
        req: Request<Full<Bytes>>,
    ) -> Result<Sent, BrowserError> {
        let boxed = |r: Response<hyper::body::Incoming>| {
            r.map(|b| b.map_err(BrowserError::hyper).boxed_unsync())
        };
        match &mut conn.sender {
            Sender::H1(s) => {
                conn.times.start_capture();
                s.ready().await.map_err(BrowserError::hyper)?;
                let resp = s.send_request(req).await.map_err(BrowserError::hyper)?;
                Ok(Sent::Hyper {
                    resp: boxed(resp),
                    h2_send: 0,
                })
            }
            Sender::H2(s) => {
                s.ready().await.map_err(BrowserError::hyper)?;
                // Counted and handed over with no await between, so the
                // count is the order in which streams are opened.
                let h2_send = conn.times.h2_sends.fetch_add(1, Ordering::Relaxed);
                let resp = s.send_request(req).await.map_err(BrowserError::hyper)?;
                Ok(Sent::Hyper {
                    resp: boxed(resp),
                    h2_send,
                })
            }
            Sender::Pipe(p) => {
                let (written, answer) = p.send(req).await?;
                let resp = answer.await.map_err(|_| {
                    BrowserError::http("the pipelined connection ended before the answer")
                })??;
                Ok(Sent::Piped {
                    resp: resp.map(BodyExt::boxed_unsync),
                    written,
                })
            }
        }
    }
}

/// A request handed over and its answer's head.
enum Sent {
    Hyper {
        resp: Response<AnyBody>,
        /// On HTTP/2, the how-manieth stream this was.
        h2_send: u32,
    },
    Piped {
        resp: Response<AnyBody>,
        written: crate::pipe::Written,
    },
}

/// An HTTP/1.x request head as written: request line and header lines,
/// names in the case they were sent.
pub(super) fn wire_head(bytes: &[u8]) -> Option<Event> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.splitn(3, ' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    Some(Event::RequestPrepared {
        method: method.into(),
        target: target.into(),
        version: version.into(),
        headers,
        header_block: None,
    })
}

/// A TCP_INFO reading as an event: after a response, or at the end.
pub(super) fn tcp_info_event(
    remote: SocketAddr,
    info: &crate::conn::TcpInfo,
    after_response: bool,
) -> Event {
    Event::TcpInfo {
        remote: remote.to_string(),
        after_response,
        rtt_us: info.rtt_us,
        rttvar_us: info.rttvar_us,
        cwnd: info.cwnd,
        ssthresh: info.ssthresh,
        total_retrans: info.total_retrans,
        delivery_rate_bps: info.delivery_rate_bps,
        bytes_sent: info.bytes_sent,
        bytes_received: info.bytes_received,
    }
}

/// The most of a response body the browser reads.
pub(super) const MAX_BODY: usize = 64 << 20;
