//! The application server (axum on hyper): a middleware chain of tower
//! layers, a router, controllers, services and a repository over sqlx.
//!
//! Map (start with `server.rs`):
//! - [`server`] — state, the router with its chain, the listener;
//! - [`middleware`] — the chain in order, each step recording a span;
//! - [`routes`] — route table, controllers and services;
//! - [`db`] — the database (SQLite default, PostgreSQL by URL) and its SQL.

pub mod db;
mod error;
pub mod middleware;
pub mod routes;
pub mod server;

pub use db::{Db, Engine, User};
pub use error::AppError;
pub use server::{AppServer, AppState, router, start};
