//! The application server: state, router with its middleware chain, and
//! the listener.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use weblab_trace::Recorder;

use crate::db::Db;
use crate::middleware;
use crate::routes;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub rec: Recorder,
    /// This server's name (app1, app2), shown in pages.
    pub host: String,
    /// Proxies whose X-Real-IP / X-Forwarded-For we believe (the web
    /// servers); from anyone else those headers are ignored.
    pub trusted_proxies: Vec<IpAddr>,
    access_log: Mutex<VecDeque<String>>,
    /// Failed sign-ins per client address.
    pub logins: crate::auth::LoginLimiter,
    /// Sign-ins started with the identity provider, per client.
    pub oauth_starts: crate::auth::LoginLimiter,
    tokens: crate::auth::Tokens,
    /// The newest post id this server has written (feeds wait on it).
    pub new_posts: tokio::sync::watch::Sender<i64>,
    /// The chat rooms with members on this server.
    pub rooms: crate::routes::chat::Rooms,
    /// Places for open WebSockets (see [`crate::routes::chat`]).
    pub sockets: Arc<tokio::sync::Semaphore>,
    /// Set when the server stops: open WebSockets close with 1001.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The identity provider this app signs people in through, if any.
    pub oauth: Option<crate::oauth::OAuthClient>,
}

/// Access-log lines kept in memory.
const LOG_LINES: usize = 1000;

impl AppState {
    /// The state of one app server on `db` (which [`Db::migrate`] has
    /// prepared); the token key is shared through the database, so every
    /// app server accepts the tokens of the others.
    pub async fn new(db: Db, rec: Recorder, host: &str) -> Result<Self, crate::AppError> {
        let quiet = weblab_trace::Ctx::unsampled_root();
        let secret = crate::repo::shared_secret(&db.sql(&rec, quiet), "jwt-hs256").await?;
        Ok(AppState {
            db,
            rec,
            host: host.into(),
            trusted_proxies: Vec::new(),
            access_log: Mutex::new(VecDeque::new()),
            logins: crate::auth::LoginLimiter::default(),
            oauth_starts: crate::auth::LoginLimiter::new(
                crate::auth::OAUTH_BURST,
                crate::auth::OAUTH_REFILL_SECS,
            ),
            tokens: crate::auth::Tokens::new(&secret),
            new_posts: tokio::sync::watch::Sender::new(0),
            rooms: crate::routes::chat::Rooms::default(),
            sockets: Arc::new(tokio::sync::Semaphore::new(
                crate::routes::chat::MAX_SOCKETS,
            )),
            shutdown: tokio::sync::watch::Sender::new(false),
            oauth: None,
        })
    }

    /// The access-token signer and checker.
    pub fn tokens(&self) -> &crate::auth::Tokens {
        &self.tokens
    }

    /// Offer sign-in through `client`'s identity provider.
    pub fn with_oauth(mut self, client: crate::oauth::OAuthClient) -> Self {
        self.oauth = Some(client);
        self
    }

    /// Believe forwarded-client headers from these proxies only.
    pub fn trusting(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    pub(crate) fn log(&self, line: &str) {
        let mut log = self.access_log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line.to_string());
    }

    /// The most recent access-log lines, oldest first.
    pub fn access_log(&self) -> Vec<String> {
        let log = self.access_log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect()
    }
}

/// tower-http's default rule with a higher floor: below ~256 bytes the gzip
/// header and trailer make a body larger, not smaller (REDbot measured
/// +41 % on a user's JSON with the default 32-byte floor).
fn worth_compressing() -> impl tower_http::compression::Predicate {
    use tower_http::compression::Predicate;
    use tower_http::compression::predicate::{NotForContentType, SizeAbove};
    SizeAbove::new(256)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
}

/// The router with the whole middleware chain (see [`crate::middleware`]).
pub fn router(state: Arc<AppState>, allowed_origins: &[String]) -> Router {
    let origins: Arc<[HeaderValue]> = allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    // A predicate over a shared list: the layer is cloned for every
    // request, and a list of its own would be copied each time.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.contains(origin)
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-request-id"),
        ])
        // Browsers keep a preflight's answer this long (C40).
        .max_age(std::time::Duration::from_secs(600));
    let chain = ServiceBuilder::new()
        .layer(from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .layer(from_fn_with_state(state.clone(), middleware::access_log))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(from_fn_with_state(
            (
                state.clone(),
                4,
                middleware::describe_cors as middleware::Describe,
            ),
            middleware::mark,
        ))
        .layer(middleware::PreflightsOnly(cors))
        .layer(from_fn_with_state(state.clone(), middleware::session))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::authentication,
        ))
        .layer(from_fn_with_state(
            (
                state.clone(),
                7,
                middleware::describe_compression as middleware::Describe,
            ),
            middleware::mark,
        ))
        .layer(CompressionLayer::new().compress_when(worth_compressing()));
    routes::router(&state)
        .fallback(routes::not_found)
        .layer(chain)
        .layer(DefaultBodyLimit::max(crate::rest::MAX_JSON))
        .with_state(state)
}

/// A running application server; it stops when dropped.
pub struct AppServer {
    pub state: Arc<AppState>,
    pub server: weblab_server::ServerHandle,
}

/// A router behind weblab's own accept loop, so the application server
/// (and the identity provider) have the same bounds as the edge
/// (connection cap, head/body/idle timeouts, Host check, 413, graceful
/// drain).
pub(crate) struct AxumHandler(pub(crate) Router);

impl weblab_server::Handler for AxumHandler {
    type Body = axum::body::Body;

    async fn call(
        self: Arc<Self>,
        req: axum::http::Request<weblab_server::RequestBody>,
        conn: weblab_server::ConnInfo,
    ) -> axum::response::Response {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(conn.peer));
        match self.0.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

/// Serves the application on `listener`.
pub fn start(
    listeners: Vec<TcpListener>,
    state: Arc<AppState>,
    allowed_origins: &[String],
    limits: weblab_server::Limits,
) -> std::io::Result<AppServer> {
    let app = router(state.clone(), allowed_origins);
    let server = weblab_server::serve_http_on(listeners, None, limits, Arc::new(AxumHandler(app)))?;
    // Upgraded connections (chat) are not requests the server drains:
    // tell them when it stops.
    tokio::spawn(crate::routes::feed::watch_newest(
        state.clone(),
        server.stop_signal(),
    ));
    let mut stop = server.stop_signal();
    let s = state.clone();
    tokio::spawn(async move {
        stop.stopped().await;
        s.shutdown.send_replace(true);
    });
    Ok(AppServer { state, server })
}
