//! The application as an OAuth 2.0 client (C37) of the identity provider
//! on its own host: where to send the browser, and the back-channel calls
//! (token, user info) made over HTTPS from this server, each recorded as
//! an [`Event::HttpCall`] span whose `traceparent` lets the provider's
//! spans join the same trace.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, Request, header};
use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use weblab_trace::{Ctx, Event, Layer, Recorder};

use crate::error::AppError;

/// Connect, TLS and the whole exchange must fit in this.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A provider's answer larger than this is refused.
const MAX_ANSWER: usize = 64 * 1024;

/// The registration of this application at one provider, and how to
/// reach it.
pub struct OAuthClient {
    /// The provider's public URL, e.g. `https://id.test` (with a port when
    /// it is not 443); browsers are sent here.
    pub issuer: String,
    /// Its host name, as the sign-in button names it.
    pub provider: String,
    /// Where the provider listens (the world knows its address, as a
    /// hosts-file entry would).
    addr: SocketAddr,
    /// This server's own address, the source of its connections.
    local: Option<IpAddr>,
    pub client_id: String,
    client_secret: String,
    pub redirect_uri: String,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
}

/// An answer from the provider.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl OAuthClient {
    /// A client of the provider at `issuer`, reached at `addr`, trusting
    /// the certificate authorities `roots` for its certificate.
    pub fn new(
        issuer: &str,
        addr: SocketAddr,
        local: Option<IpAddr>,
        (client_id, client_secret): (&str, &str),
        redirect_uri: &str,
        roots: &[rustls_pki_types::CertificateDer<'static>],
    ) -> Result<Self, AppError> {
        let bad = |why: String| AppError::config(format!("identity provider {issuer:?}: {why}"));
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).map_err(|e| bad(e.to_string()))?;
        }
        let url = url::Url::parse(issuer).map_err(|e| bad(e.to_string()))?;
        let provider = url
            .host_str()
            .ok_or_else(|| bad("no host".into()))?
            .to_string();
        let server_name = ServerName::try_from(provider.clone()).map_err(|e| bad(e.to_string()))?;
        let provider_crypto = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider_crypto)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(OAuthClient {
            issuer: issuer.trim_end_matches('/').into(),
            provider,
            addr,
            local,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            server_name,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Where the browser goes to sign in (RFC 6749 §4.1.1, RFC 7636 §4.3).
    pub fn authorize_url(&self, state: &str, challenge: &str) -> String {
        let mut u = url::Url::parse(&format!("{}/authorize", self.issuer))
            .unwrap_or_else(|_| url::Url::parse("https://invalid./authorize").expect("a URL"));
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", "profile email")
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        u.into()
    }

    /// The JSON of a 200 answer; any other status is the provider saying
    /// no (`refused`, in words), with its OAuth error (RFC 6749 §5.2): 502.
    pub fn json(&self, answer: Answer, refused: &str) -> Result<serde_json::Value, AppError> {
        let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if answer.status == 200 {
            return Ok(v);
        }
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let why = match (text("error"), text("error_description")) {
            ("", d) => format!("an answer without an OAuth error ({d})"),
            (e, "") => e.to_string(),
            (e, d) => format!("{e}: {d}"),
        };
        Err(AppError::bad_gateway(format!(
            "{} {refused} ({}): {why}",
            self.provider, answer.status
        )))
    }

    /// POST /token: the code and its PKCE verifier, with this client's
    /// credentials (HTTP Basic, RFC 6749 §2.3.1).
    pub async fn redeem(
        &self,
        rec: &Recorder,
        ctx: Ctx,
        code: &str,
        verifier: &str,
    ) -> Result<Answer, AppError> {
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("code_verifier", verifier)
            .finish();
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&self.client_id),
            enc(&self.client_secret)
        ));
        self.call(
            rec,
            ctx,
            Method::POST,
            "/token",
            &format!("Basic {basic}"),
            Some(form),
        )
        .await
    }

    /// GET /userinfo with the access token.
    pub async fn user_info(
        &self,
        rec: &Recorder,
        ctx: Ctx,
        token: &str,
    ) -> Result<Answer, AppError> {
        self.call(
            rec,
            ctx,
            Method::GET,
            "/userinfo",
            &format!("Bearer {token}"),
            None,
        )
        .await
    }

    /// One request to the provider on a new connection, inside an
    /// `HttpCall` span.
    async fn call(
        &self,
        rec: &Recorder,
        ctx: Ctx,
        method: Method,
        path: &str,
        authorization: &str,
        form: Option<String>,
    ) -> Result<Answer, AppError> {
        let span = rec.begin(ctx, Layer::Application);
        let traceparent = span.ctx().traceparent(span.id);
        let url = format!("{}{path}", self.issuer);
        let exchange = self.exchange(method.clone(), path, authorization, form, &traceparent);
        let out = match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(AppError::gateway_timeout(format!(
                "{url} did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
        };
        let (status, error) = match &out {
            Ok(a) => (a.status, String::new()),
            Err(e) => (0, e.message().to_string()),
        };
        let event = Event::HttpCall {
            method: method.to_string(),
            url,
            peer: self.addr.to_string(),
            status,
            error,
        };
        rec.end(span, event);
        out
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        form: Option<String>,
        traceparent: &str,
    ) -> Result<Answer, AppError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            AppError::bad_gateway(format!("{what} {} ({}): {e}", self.provider, self.addr))
        };
        let socket = if self.addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|e| failed("socket for", &e))?;
        if let Some(ip) = self.local {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| failed("binding a socket for", &e))?;
        }
        let tcp = socket
            .connect(self.addr)
            .await
            .map_err(|e| failed("connecting to", &e))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| failed("TLS with", &e))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| failed("HTTP with", &e))?;
        // The connection ends with this exchange (one request on it).
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let host = match self.addr.port() {
            443 => self.provider.clone(),
            p => format!("{}:{p}", self.provider),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host)
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, authorization)
            .header("traceparent", traceparent);
        if form.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let req = req
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(|e| failed("building a request to", &e))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| failed("request to", &e))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| failed("reading the answer of", &*e))?
            .to_bytes();
        Ok(Answer { status, body })
    }
}
