//! A connection for (origin, protocol): lookup, TCP connect, TLS, then
//! HTTP/2, HTTP/1.1 (one request at a time, or pipelined) or HTTP/1.0 on
//! it — the `dns`, `connect` and `ssl` stages.

use super::*;

/// Accepts any certificate chain (`-k`), still checking that the server
/// holds the key of the certificate it sent. rustls has no such verifier
/// of its own: this is the documented "dangerous" hook.
#[derive(Debug)]
struct AnyChain(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS settings of a browser: the world's CA and any extra anchors,
/// or no chain check at all with `-k`.
pub(super) fn tls_config(
    cfg: &BrowserConfig,
    reach: &Reach,
) -> Result<rustls::ClientConfig, BrowserError> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in [&cfg.ca_pem, &reach.extra_ca_pem] {
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| BrowserError::tls(format!("CA file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| BrowserError::tls(format!("CA file: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(BrowserError::tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if reach.insecure {
        tls.dangerous()
            .set_certificate_verifier(Arc::new(AnyChain(provider)));
    }
    tls.alpn_protocols = if cfg.http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(tls)
}

impl Browser {
    /// A connection for `origin`: a pooled one (a step of the trace, and
    /// `true`) or a new one.
    pub(super) async fn connection_for(
        &self,
        ctx: Ctx,
        n: u32,
        origin: &Origin,
    ) -> Result<(Conn, bool), BrowserError> {
        match self.checkout(ctx, n, origin).await {
            Ok(c) => {
                self.instant(
                    ctx,
                    n,
                    Layer::Transport,
                    Event::ConnectionReused {
                        remote: c.remote.to_string(),
                        version: c.version().into(),
                    },
                );
                Ok((c, true))
            }
            Err(slot) => {
                let (scheme, host, port) = origin;
                Ok((self.open(ctx, n, scheme, host, *port, slot).await?, false))
            }
        }
    }

    /// Lookup, TCP connect and (for https) TLS: the `dns`, `connect` and
    /// `ssl` stages.
    pub(super) async fn open(
        &self,
        ctx: Ctx,
        n: u32,
        scheme: &str,
        host: &str,
        port: u16,
        slot: Option<Slot>,
    ) -> Result<Conn, BrowserError> {
        let (tcp, remote, fd) = self.reach_tcp(ctx, n, host, port).await?;
        self.over(ctx, n, scheme, host, (tcp, remote, fd), slot)
            .await
    }

    /// The name looked up (or given) and a TCP connection to it, each a
    /// step of the trace: the stream, where it goes, its descriptor.
    pub(super) async fn reach_tcp(
        &self,
        ctx: Ctx,
        n: u32,
        host: &str,
        port: u16,
    ) -> Result<(tokio::net::TcpStream, SocketAddr, RawFd), BrowserError> {
        let given = self
            .reach
            .resolve
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(host) && *p == port)
            .map(|(_, _, ip)| *ip);
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse();
        let ips: Vec<IpAddr> = match (literal, given) {
            (Ok(ip), _) => vec![ip], // an address literal needs no lookup
            (Err(_), Some(ip)) => {
                let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
                let text = format!("{host}:{port} is at {ip} by --resolve: no lookup");
                self.rec.end(span, Event::Note { text });
                vec![ip]
            }
            (Err(_), None) => {
                self.lookup
                    .lookup(ctx, Some(n), host)
                    .await
                    .map_err(BrowserError::dns)?
                    .addrs
            }
        };
        let real_port = self
            .cfg
            .port_map
            .iter()
            .find(|(from, _)| *from == port)
            .map_or(port, |(_, to)| *to);
        // The addresses in the order the lookup gave them (IPv6 first
        // when there are both); a failed connect moves on to the next.
        let mut t0 = now_ns();
        let mut tried = ips.iter().peekable();
        let (tcp, remote) = loop {
            let Some(ip) = tried.next() else {
                return Err(BrowserError::connect(format!("{host}: no address")));
            };
            let remote = SocketAddr::new(*ip, real_port);
            let bind = match ip {
                IpAddr::V4(_) => self.cfg.bind,
                IpAddr::V6(_) => {
                    IpAddr::V6(self.cfg.bind6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED))
                }
            };
            match connect(bind, remote).await {
                Ok(tcp) => break (tcp, remote),
                Err(e) => {
                    let Some(next) = tried.peek() else {
                        return Err(e);
                    };
                    let span = self.rec.begin(ctx, Layer::Transport).request(Some(n));
                    let text = format!(
                        "connect to {remote} failed ({e}); trying {host}'s next address, {next}"
                    );
                    self.rec.end(span, Event::Note { text });
                    t0 = now_ns();
                }
            }
        };
        let t1 = now_ns();
        let fd = fd_of(&tcp);
        let local = tcp.local_addr().map_err(BrowserError::connect)?;
        let info = tcp_info(fd).unwrap_or_default();
        self.rec.span(
            ctx,
            Layer::Transport,
            (t0, t1),
            Some(n),
            Event::TcpConnect {
                local: local.to_string(),
                remote: remote.to_string(),
                rtt_us: info.rtt_us,
                rttvar_us: info.rttvar_us,
                cwnd: info.cwnd,
                ssthresh: info.ssthresh,
                mss: info.mss,
                retransmits: info.total_retrans,
                delivery_rate_bps: info.delivery_rate_bps,
            },
        );
        Ok((tcp, remote, fd))
    }

    /// TLS when the scheme asks for it, then HTTP/2 or HTTP/1.x on `tcp`.
    pub(super) async fn over(
        &self,
        ctx: Ctx,
        n: u32,
        scheme: &str,
        host: &str,
        (tcp, remote, fd): (tokio::net::TcpStream, SocketAddr, RawFd),
        slot: Option<Slot>,
    ) -> Result<Conn, BrowserError> {
        let times = Arc::new(IoTimes::default());
        if scheme == "https" {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| BrowserError::tls(format!("{host:?}: {e}")))?;
            let t2 = now_ns();
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| BrowserError::tls(format!("{host} ({remote}): {e}")))?;
            let summary = tls_summary(tls.get_ref().1);
            if self.reach.insecure {
                let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
                let text = format!(
                    "{host}'s certificate chain was not checked (-k): only that it holds its key"
                );
                self.rec.end(span, Event::Note { text });
            }
            self.rec.span(
                ctx,
                Layer::Session,
                (t2, now_ns()),
                Some(n),
                Event::TlsHandshake {
                    sni: host.into(),
                    version: summary.version,
                    cipher: summary.cipher,
                    group: summary.group,
                    alpn: summary.alpn.clone(),
                    chain: summary.chain,
                    verified_by: self.cfg.ca_label.clone(),
                },
            );
            let h2 = summary.alpn.as_deref() == Some("h2");
            if h2 {
                *times.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(Default::default());
            }
            let sender = handshake(Timed::new(tls, times.clone()), h2, self.pipeline).await?;
            Ok(Conn {
                sender,
                remote,
                fd,
                times,
                _slot: slot,
            })
        } else {
            let sender = handshake(Timed::new(tcp, times.clone()), false, self.pipeline).await?;
            Ok(Conn {
                sender,
                remote,
                fd,
                times,
                _slot: slot,
            })
        }
    }
}

/// Starts HTTP/2, HTTP/1.1 or a pipelined HTTP/1.1 on an open stream.
async fn handshake<S>(io: S, h2: bool, pipeline: bool) -> Result<Sender, BrowserError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if pipeline && !h2 {
        return Ok(Sender::Pipe(crate::pipe::Pipe::start(Box::new(io))));
    }
    let io = TokioIo::new(io);
    if h2 {
        let (s, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(BrowserError::http)?;
        tokio::spawn(conn);
        Ok(Sender::H2(s))
    } else {
        // Header names go out in the case browsers use on HTTP/1.1.
        let (s, conn) = http1::Builder::new()
            .title_case_headers(true)
            .handshake(io)
            .await
            .map_err(BrowserError::http)?;
        tokio::spawn(conn);
        Ok(Sender::H1(s))
    }
}
