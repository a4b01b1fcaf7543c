//! The weblab binary's library: the world file, booting a world, and the
//! commands (`tour`, `up`, `serve`, `init`).
//!
//! Map: [`config`] (the TOML world) → [`world`] (servers on sockets) →
//! [`tour`] (one page load, rendered) and [`commands`] (up, serve, init);
//! [`tcp`] drives the TCP lab.

pub mod commands;
pub mod config;
pub mod observe;
pub mod services;
pub mod supervise;
pub mod tcp;
pub mod tour;
pub mod units;
pub mod world;
