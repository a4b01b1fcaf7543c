//! The services a host of the world can run. A new kind of role is one
//! module here implementing [`Service`], and one line in [`REGISTRY`].
//!
//! - [`app`] — the application server (axum, the database);
//! - [`web`] — a web server (static files, proxy to the applications);
//! - [`cache`] — a shared HTTP cache in front of the web servers;
//! - [`lb`] — the load balancer (TLS termination, HTTP→HTTPS redirect);
//! - [`dns`] — authoritative DNS servers and the recursive resolver;
//! - [`idp`] — the identity provider (OAuth 2.0) the applications use.

pub mod app;
pub mod cache;
pub mod dns;
pub mod idp;
pub mod lb;
pub mod web;

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;

use crate::config::World;
use crate::world::{Boot, Started};

/// What a service needs prepared before any of its hosts starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    /// The world's certificate authority (to issue server certificates).
    pub ca: bool,
    /// The static files written to the data directory.
    pub document_root: bool,
    /// The database, connected and migrated.
    pub database: bool,
}

impl Needs {
    pub const CA: Needs = Needs {
        ca: true,
        document_root: false,
        database: false,
    };
    pub const DOCUMENT_ROOT: Needs = Needs {
        ca: false,
        document_root: true,
        database: false,
    };
    pub const DATABASE: Needs = Needs {
        ca: false,
        document_root: false,
        database: true,
    };

    pub fn and(self, other: Needs) -> Needs {
        Needs {
            ca: self.ca || other.ca,
            document_root: self.document_root || other.document_root,
            database: self.database || other.database,
        }
    }
}

/// A pool of `names`' HTTP servers for a proxy on `ip`, round robin, with
/// passive health only (like nginx: failed requests take one out for a
/// while). The web servers' pools of apps and the cache's of web servers.
pub(crate) fn passive_pool(
    boot: &Boot,
    ip: std::net::Ipv4Addr,
    names: &[String],
    rec: weblab_trace::Recorder,
) -> std::sync::Arc<weblab_edge::Pool> {
    let backends = names
        .iter()
        .map(|n| {
            weblab_edge::Backend::new(
                n,
                crate::world::sock(boot.world.addr(n), boot.ports.http),
                1,
            )
        })
        .collect();
    weblab_edge::Pool::with_timeouts(
        backends,
        Box::new(weblab_edge::balance::RoundRobin::default()),
        std::net::IpAddr::V4(ip),
        weblab_edge::Checks {
            interval: None,
            ..weblab_edge::Checks::default()
        },
        upstream_timeouts(&boot.world),
        rec,
    )
}

/// The proxies' time limits from the world's `[limits]`.
pub(crate) fn upstream_timeouts(world: &crate::config::World) -> weblab_edge::pool::Timeouts {
    weblab_edge::pool::Timeouts {
        response: world.limits.upstream,
        ..Default::default()
    }
}

/// The status page (`/_weblab/status`) of a proxy role on `host`: its
/// pools, on the host's admin port.
pub(crate) async fn status_page(
    boot: &Boot,
    host: &str,
    what: &str,
    pools: Vec<(String, std::sync::Arc<weblab_edge::Pool>)>,
    fronts: &[&weblab_edge::ServerHandle],
) -> Result<weblab_edge::ServerHandle> {
    let admin = std::sync::Arc::new(weblab_edge::Admin {
        role: format!("{host} ({what})"),
        pools,
        fronts: fronts.iter().map(|f| f.in_flight_reader()).collect(),
    });
    let listeners = crate::world::listen_all(&boot.world, host, boot.ports.admin).await?;
    Ok(weblab_edge::serve_http_on(
        listeners,
        None,
        boot.world.limits.http,
        admin,
    )?)
}

/// A future a service returns from [`Service::start`].
pub type Starting<'a> = Pin<Box<dyn Future<Output = Result<Started>> + Send + 'a>>;

/// One kind of service.
pub trait Service: Send + Sync + 'static {
    /// Its name (in messages, and `weblab serve NAME`).
    fn name(&self) -> &'static str;

    /// The hosts of `world` that run it.
    fn hosts(&self, world: &World) -> Vec<String>;

    /// What must be prepared before it starts.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// Starts it on `host`, on the host's own address.
    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a>;

    /// When a world stops, lower tiers drain first: requests drain from
    /// the front to the back (the load balancer's in-flight requests still
    /// need the web and application servers).
    fn drain_tier(&self) -> u8;

    /// Lines `weblab up` prints to reach it with ordinary tools.
    fn instructions(&self, _boot: &Boot, _host: &str) -> Vec<String> {
        Vec::new()
    }
}

/// Every service, in the order a world starts them (back to front).
pub static REGISTRY: &[&dyn Service] = &[
    &idp::Idp,
    &app::App,
    &web::Web,
    &cache::Cache,
    &lb::Lb,
    &dns::Authoritative,
    &dns::Recursive,
];

/// The service called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Service> {
    REGISTRY.iter().copied().find(|s| s.name() == name)
}
