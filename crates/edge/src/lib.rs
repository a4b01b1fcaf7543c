//! The edge of the world: the load balancer with TLS termination and the
//! web servers with static files and reverse proxying.
//!
//! Map (start with `balance.rs`):
//! - [`balance`] — load-balancing algorithms behind the [`Balancer`] trait;
//! - [`tls`] — the world's CA and TLS server settings;
//! - [`http`] — body reading and response helpers (the accept loop is
//!   `weblab_server::serve_http`);
//! - [`proxy`] — upstream connection pool, forwarding headers, `forward`;
//! - [`lb`] — the load balancer and its HTTP→HTTPS redirect;
//! - [`web`] — the web server.

pub mod balance;
mod error;
pub mod http;
pub mod lb;
pub mod proxy;
pub mod tls;
pub mod web;

pub use balance::{Balancer, Selection};
pub use error::EdgeError;
pub use lb::{LoadBalancer, RedirectToHttps};
pub use proxy::Upstream;
pub use tls::LocalCa;
pub use web::WebServer;
pub use weblab_server::{Limits, ServerHandle, serve_http};
