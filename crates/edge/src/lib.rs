//! The edge of the world: the load balancer with TLS termination and the
//! web servers with static files and reverse proxying.
//!
//! Map (start with `proxy.rs`):
//! - [`proxy`] — forwarding through phases: peer, request, response, tunnel;
//! - [`pool`] — backends, algorithm, health checks, the upstream client;
//! - [`backend`] — one backend's state and the health state machine;
//! - [`balance`] — load-balancing algorithms (pure);
//! - [`body`] — streamed bodies both ways;
//! - [`tunnel`] — upgraded (WebSocket) connections relayed;
//! - [`files`] — static files with an open-file cache;
//! - [`cache`] — a shared HTTP cache (RFC 9111) in front of web servers;
//! - [`firewall`] — CIDR rules, connections per client, request rate;
//! - [`sites`] — virtual hosts and locations (nginx's matching rules);
//! - [`lb`], [`web`] — the two roles built from these;
//! - [`status`] — the admin status page;
//! - [`tls`] — the world's CA and TLS server settings;
//! - [`http`] — small response helpers (the accept loop is
//!   `weblab_server::serve_http`).

pub mod backend;
pub mod balance;
pub mod body;
pub mod cache;
mod error;
pub mod files;
pub mod firewall;
pub mod http;
pub mod lb;
pub mod pool;
pub mod proxy;
pub mod sites;
pub mod status;
pub mod tls;
mod tunnel;
pub mod web;

pub use backend::Backend;
pub use balance::Balancer;
pub use cache::CacheServer;
pub use error::EdgeError;
pub use files::Files;
pub use firewall::Firewall;
pub use lb::{LoadBalancer, RedirectToHttps};
pub use pool::{Checks, Pool, Timeouts};
pub use sites::{Action, Location, Site, Sites};
pub use status::Admin;
pub use tls::LocalCa;
pub use web::WebServer;
pub use weblab_server::{Limits, ServerHandle, serve_http, serve_http_on};
