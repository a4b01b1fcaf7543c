//! The identity provider (C37): an OAuth 2.0 authorization server on its
//! own host, with the authorization-code grant and PKCE (RFC 6749 §4.1,
//! RFC 7636), a sign-in and consent page, scopes, a token endpoint, a
//! user-info endpoint (RFC 6750 bearer tokens) and its metadata (RFC
//! 8414). The application server is its client.
//!
//! Its accounts are its own (it is another organisation than myapp), kept
//! in memory with argon2id hashes; codes, tokens and its sign-in sessions
//! are in bounded in-memory stores ([`flow`]), so one provider host holds
//! them all.
//!
//! ```text
//! browser  GET  /authorize?response_type=code&client_id&redirect_uri&scope&state&code_challenge
//!          POST /authorize   (sign in if needed, Allow or Deny) -> 303 redirect_uri?code&state
//! app      POST /token       (Basic client auth, code, redirect_uri, code_verifier) -> access token
//! app      GET  /userinfo    (Authorization: Bearer) -> sub, name, email by scope
//! ```

pub mod flow;
mod pages;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::{get, post};
use weblab_trace::{Event, Layer, Recorder};

use crate::auth::{LoginLimiter, digest};
use crate::error::AppError;
use flow::{Client, Expiring, Grants};

/// The demo accounts of the provider (all with [`crate::DEMO_PASSWORD`]):
/// subject, name, email local part.
pub const IDP_USERS: [(&str, &str, &str); 2] = [
    ("u-katherine", "Katherine Johnson", "katherine"),
    ("u-edsger", "Edsger Dijkstra", "edsger"),
];

/// The provider's sign-in cookie.
const SESSION_COOKIE: &str = "idp_sid";
/// A provider sign-in lasts this long (seconds).
const SESSION_SECS: i64 = 8 * 60 * 60;
/// Form bodies larger than this are refused (413).
const MAX_FORM: usize = 16 * 1024;

/// An account at the provider.
pub struct IdpUser {
    pub sub: String,
    pub name: String,
    pub email: String,
    hash: String,
}

/// The provider: who it is, its clients, accounts and live grants.
pub struct IdpState {
    /// Its public URL, `https://id.test` (with a port when not 443).
    pub issuer: String,
    /// The issuer's host name (`id.test`): its accounts' email domain and
    /// the name its pages carry.
    pub domain: String,
    pub clients: Vec<Client>,
    pub users: Vec<IdpUser>,
    pub rec: Recorder,
    grants: Mutex<Grants>,
    /// Sign-in sessions: digest of the cookie value -> subject.
    sessions: Mutex<Expiring<String>>,
    logins: LoginLimiter,
    /// The Content-Security-Policy of every answer, made once.
    csp: HeaderValue,
}

impl IdpState {
    /// A provider at `issuer` (its email domain is the issuer's host) with
    /// `clients`; the demo accounts' hashes are made here (argon2id, tens
    /// of milliseconds each).
    pub async fn new(issuer: &str, clients: Vec<Client>, rec: Recorder) -> Result<Self, AppError> {
        let domain = url::Url::parse(issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .ok_or_else(|| AppError::config(format!("issuer {issuer:?} is not a URL")))?;
        let hash = crate::auth::hash_password(crate::DEMO_PASSWORD).await?;
        let users = IDP_USERS
            .iter()
            .map(|(sub, name, local)| IdpUser {
                sub: (*sub).into(),
                name: (*name).into(),
                email: format!("{local}@{domain}"),
                hash: hash.clone(),
            })
            .collect();
        let csp = HeaderValue::from_str(&format!(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self' {}",
            form_targets(&clients)
        ))
        .map_err(|e| AppError::config(format!("the clients' redirect URIs in a CSP: {e}")))?;
        Ok(IdpState {
            issuer: issuer.trim_end_matches('/').into(),
            domain,
            csp,
            clients,
            users,
            rec,
            grants: Mutex::new(Grants::default()),
            sessions: Mutex::new(Expiring::new(flow::MAX_ENTRIES)),
            logins: LoginLimiter::default(),
        })
    }

    fn grants(&self) -> std::sync::MutexGuard<'_, Grants> {
        self.grants.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn user(&self, sub: &str) -> Option<&IdpUser> {
        self.users.iter().find(|u| u.sub == sub)
    }

    /// The subject signed in with the cookie value `sid`, if any.
    fn session(&self, sid: &str) -> Option<String> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.get(&digest(sid), crate::auth::now()).cloned()
    }

    /// Starts a sign-in session for `sub`; the cookie value.
    fn sign_in(&self, sub: &str) -> String {
        let sid = crate::auth::random_secret();
        let now = crate::auth::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.insert(digest(&sid), sub.to_string(), now + SESSION_SECS, now);
        sid
    }
}

/// Origins the consent form may send the browser on to (the clients'
/// redirect URIs), for the CSP's form-action: browsers apply it to the
/// redirect that follows a form.
fn form_targets(clients: &[Client]) -> String {
    let mut origins: Vec<String> = clients
        .iter()
        .flat_map(|c| &c.redirect_uris)
        .filter_map(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.sort();
    origins.dedup();
    origins.join(" ")
}

/// Records one request as a span of the caller's trace, and adds the
/// headers every answer of the provider carries: nothing it says may be
/// cached, framed or leak its URL (codes travel in URLs).
async fn observe(State(s): State<Arc<IdpState>>, mut req: Request, next: Next) -> Response {
    let span = s
        .rec
        .begin(crate::middleware::caller(req.headers()), Layer::Application);
    req.extensions_mut()
        .insert(crate::middleware::TraceCtx(span.ctx()));
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let version = weblab_trace::event::version_name(req.version()).to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".into(), |c| c.0.to_string());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    crate::middleware::protect(h, "no-referrer", s.csp.clone());
    s.rec.end(
        span,
        Event::HttpServe {
            method,
            path,
            version,
            peer,
            status: resp.status().as_u16(),
        },
    );
    resp
}

/// The provider's routes behind [`observe`].
pub fn router(state: Arc<IdpState>) -> Router {
    Router::new()
        .route(
            "/authorize",
            get(pages::authorize_form).post(pages::authorize),
        )
        .route("/token", post(pages::token))
        .route("/userinfo", get(pages::userinfo))
        .route(
            "/.well-known/oauth-authorization-server",
            get(pages::metadata),
        )
        .fallback(crate::routes::not_found)
        .layer(from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
        .with_state(state)
}

/// Serves the provider on `listener` (over TLS when `tls` is given), on
/// weblab's accept loop with its bounds.
pub fn start(
    listeners: Vec<tokio::net::TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<IdpState>,
    limits: weblab_server::Limits,
) -> std::io::Result<weblab_server::ServerHandle> {
    let handler = crate::server::AxumHandler(router(state));
    weblab_server::serve_http_on(listeners, tls, limits, Arc::new(handler))
}
