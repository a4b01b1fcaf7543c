//! End-to-end tests: whole worlds on real loopback sockets. Each test takes
//! its own 127.N.0.0/16 block so that tests can run in parallel.

mod app;
mod bad_input;
mod caches;
mod docs;
mod edge;
mod interop;
mod ipv6;
mod observe;
mod roles;
mod serve;
mod support;
mod survive;
mod tcp;
mod tour;
