//! The weblab binary's library: the world file, booting a world, and the
//! commands (`tour`, `up`, `serve`, `collect`, `trace`, `init`).
//!
//! Map: [`config`] (the TOML world: hosts, services, limits) → [`world`]
//! (what roles share, `Boot`, `RunningWorld`) and [`services`] (one module
//! per role, the registry) → [`supervise`] (keeping roles up, draining on
//! signals) → [`commands`] (up, serve, collect, init) and [`tour`] (one
//! page load, rendered; [`signin`] the OAuth walk of `tour --oauth`);
//! [`observe`] receives OTLP and reads a running
//! world's traces; [`dig`] asks the world's DNS servers; [`tcp`] drives
//! the TCP lab; [`experiment`] runs
//! measured comparisons (realtime feeds), [`mitm`] a man in the middle
//! and [`codes`] the status codes; [`units`] parses `10mbit`.

pub mod codes;
pub mod commands;
pub mod config;
pub mod dig;
pub mod dnslb;
pub mod experiment;
pub mod hol;
pub mod layers;
pub mod mitm;
pub mod observe;
pub mod priorities;
pub mod services;
pub mod signin;
pub mod sockets;
pub mod supervise;
pub mod tcp;
pub mod tour;
pub mod units;
pub mod world;
