//! The application server: state, router with its middleware chain, and
//! the listener.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
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
    access_log: Mutex<VecDeque<String>>,
}

/// Access-log lines kept in memory.
const LOG_LINES: usize = 1000;

impl AppState {
    pub fn new(db: Db, rec: Recorder, host: &str) -> Self {
        AppState {
            db,
            rec,
            host: host.into(),
            access_log: Mutex::new(VecDeque::new()),
        }
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

/// The router with the whole middleware chain (see [`crate::middleware`]).
pub fn router(state: Arc<AppState>, allowed_origins: &[String]) -> Router {
    let origins: Vec<HeaderValue> = allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(origins)
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
        ]);
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
            (state.clone(), "cors", 4),
            middleware::mark,
        ))
        .layer(cors)
        .layer(from_fn_with_state(
            (state.clone(), "compression (gzip, br)", 5),
            middleware::mark,
        ))
        .layer(CompressionLayer::new());
    Router::new()
        .route(routes::ROUTES[0].0, get(routes::login_page))
        .route(routes::ROUTES[1].0, get(routes::show_user))
        .route_layer(from_fn_with_state(state.clone(), middleware::route))
        .fallback(routes::not_found)
        .layer(chain)
        .with_state(state)
}

/// A running application server; it stops when dropped.
pub struct AppServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl Drop for AppServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the application on `listener`.
pub fn start(
    listener: TcpListener,
    state: Arc<AppState>,
    allowed_origins: &[String],
) -> std::io::Result<AppServer> {
    let addr = listener.local_addr()?;
    let app = router(state.clone(), allowed_origins);
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(AppServer { addr, state, task })
}
