//! The application server (axum on hyper): a middleware chain of tower
//! layers, a route table, controllers, services and repositories over a
//! traced sqlx executor.
//!
//! Map (start with `server.rs`):
//! - [`server`] — state, the router with its chain, the listener;
//! - [`middleware`] — the chain in order, each step recording a span;
//! - [`routes`] — the route table and the controllers (pages, users,
//!   posts, tokens, admin), and `lint` for REST path rules;
//! - [`rest`] — what controllers share: JSON bodies, negotiation, paging;
//! - [`auth`] — passwords, sessions' cookie, JWTs, the sign-in limit;
//! - [`repo`] — every SQL statement; [`db`] — pool, migrations, the
//!   executor that records each statement;
//! - [`oauth`] — the app as an OAuth client; [`idp`] — the identity
//!   provider, a server of its own on its own host (C37).

pub mod auth;
pub mod db;
mod error;
pub mod idp;
pub mod middleware;
pub mod oauth;
pub mod repo;
pub mod rest;
pub mod routes;
pub mod server;
mod sqlite_read;
pub mod stomp;

pub use db::{Db, Engine};
pub use error::AppError;
pub use repo::{DEMO_PASSWORD, DEMO_USERS, User};
pub use server::{AppServer, AppState, router, start};
pub use sqlite_read::WriteLock;
