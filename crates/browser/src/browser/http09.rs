//! HTTP/0.9 (C23) as its own transport.

use super::exchange::MAX_BODY;
use super::*;

impl Browser {
    /// HTTP/0.9 (C23): the request is `GET /path` and nothing more; the
    /// answer is the body alone, no status and no headers, ended by the
    /// server closing the connection. Written by hand: hyper has no
    /// HTTP/0.9 client.
    pub(super) async fn fetch_http09(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        host: &str,
        port: u16,
        out: &Outgoing,
    ) -> Result<Fetched, BrowserError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if url.scheme() != "http" {
            return Err(BrowserError::url(
                "HTTP/0.9 has no TLS: give an http:// URL (e.g. a web server's own address)",
            ));
        }
        if out.method != Method::GET || !out.body.is_empty() {
            return Err(BrowserError::http(
                "HTTP/0.9 knows only GET, without a body",
            ));
        }
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let (mut tcp, remote, fd) = self.reach_tcp(ctx, n, host, port).await?;
        let t_send = now_ns();
        tcp.write_all(format!("GET {target}\r\n").as_bytes())
            .await
            .map_err(|e| BrowserError::http(format!("sending the request: {e}")))?;
        let t_written = now_ns();
        self.rec.span(
            ctx,
            Layer::Application,
            (t_send, t_send),
            Some(n),
            Event::RequestPrepared {
                method: "GET".into(),
                target,
                version: "HTTP/0.9".into(),
                headers: vec![],
                header_block: None,
            },
        );
        self.rec.span(
            ctx,
            Layer::Application,
            (t_send, t_written),
            Some(n),
            Event::RequestSent {
                method: "GET".into(),
                url: url.to_string(),
                version: "HTTP/0.9".into(),
            },
        );
        let mut body = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let mut first = None;
        loop {
            let got = tokio::time::timeout(HTTP09_READ_TIMEOUT, tcp.read(&mut chunk))
                .await
                .map_err(|_| BrowserError::http("HTTP/0.9: no byte from the server in 30 s"))?
                .map_err(|e| BrowserError::http(format!("reading the answer: {e}")))?;
            if got == 0 {
                break;
            }
            first.get_or_insert_with(now_ns);
            if body.len() + got > MAX_BODY {
                return Err(BrowserError::http(format!(
                    "HTTP/0.9 answer over {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk[..got]);
        }
        let t_end = now_ns();
        let t_first = first.unwrap_or(t_end);
        self.rec.span(
            ctx,
            Layer::Application,
            (t_written, t_first),
            Some(n),
            Event::Waiting {
                status: 0,
                headers: vec![],
            },
        );
        self.rec.span(
            ctx,
            Layer::Application,
            (t_first, t_end),
            Some(n),
            Event::BodyReceived {
                status: 0,
                content_type: None,
                content_encoding: None,
                wire_bytes: body.len() as u64,
            },
        );
        if let Some(info) = tcp_info(fd) {
            self.instant(
                ctx,
                n,
                Layer::Transport,
                tcp_info_event(remote, &info, true),
            );
        }
        Ok(Fetched {
            request: n,
            url: url.clone(),
            status: 0,
            version: Version::HTTP_09,
            headers: HeaderMap::new(),
            body: Bytes::from(body),
            subresources: Vec::new(),
        })
    }
}

/// How long an HTTP/0.9 answer may go without a byte.
const HTTP09_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
