//! DNS for weblab: zones, an authoritative server, an iterative caching
//! resolver and the client's lookup chain, all on the real wire format
//! (hickory-proto) over real UDP and TCP.
//!
//! Map (pure logic first, then I/O):
//! - [`zone`] — master-file zones and the authoritative lookup (start here);
//! - [`message`] — query checks (FORMERR/NOTIMP), UDP truncation, outcomes for traces;
//! - [`authority`] — an authoritative server's answers, bytes in, bytes out;
//! - [`cache`] — the resolver's TTL and negative cache;
//! - [`rotation`] — round robin, a turn per RRset (C11);
//! - [`policy`] — weighted answers per name (C12);
//! - [`scrub`] — what of an upstream answer the resolver believes;
//! - [`rtt`] — what the resolver measured of each name server;
//! - [`iterate`] — the resolver's algorithm as a pure step (read this one);
//! - [`net`] — the UDP/TCP server loop and client exchanges;
//! - [`server`] — the authoritative server on sockets;
//! - [`resolver`] — the recursive resolver (root → TLD → authoritative);
//! - [`lookup`] — browser cache → hosts file → OS cache → resolver.

pub mod authority;
mod batch;
pub mod cache;
pub mod cookie;
mod error;
pub mod iterate;
mod kept;
pub mod lookup;
pub mod message;
pub mod net;
pub mod policy;
pub mod resolver;
pub mod rotation;
pub mod rtt;
pub mod scrub;
pub mod server;
pub mod zone;

pub use authority::Authority;
pub use error::DnsError;
pub use lookup::{HostCache, HostsFile, LookupAnswer, LookupChain, OsCache};
pub use net::{DnsLimits, DnsServer, serve};
pub use resolver::{Resolver, ResolverConfig};
pub use server::AuthoritativeServer;
pub use zone::Zone;
