//! The cache server role (C50): a shared HTTP cache on its own host, in
//! front of web servers. It joins the request path when the load
//! balancer's backends name it.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use weblab_edge::{CacheServer, serve_http_on};

use super::{Service, Starting};
use crate::config::World;
use crate::world::{Boot, listen_all};

pub struct Cache;

impl Service for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        world.caches.iter().map(|c| c.host.clone()).collect()
    }

    /// Between the load balancer (0) and the web servers (1): its
    /// in-flight requests still need the web servers.
    fn drain_tier(&self) -> u8 {
        0
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let (world, ports) = (&*boot.world, boot.ports);
            let ip = world.addr(host);
            let cfg = world
                .caches
                .iter()
                .find(|c| c.host == host)
                .with_context(|| format!("host {host} runs no cache"))?;
            let rec = boot.recorder(host, "cache");
            let pool = super::passive_pool(boot, ip, &cfg.upstreams, rec.clone());
            let trusted = vec![IpAddr::V4(world.addr(&world.lb.host))];
            let cache = Arc::new(CacheServer::new(pool.clone(), cfg.max_bytes, trusted, rec));
            let limits = world.limits.http;
            let listeners = listen_all(world, host, ports.http).await?;
            let front = serve_http_on(listeners, None, limits, cache)?;
            let status = super::status_page(
                boot,
                host,
                "cache server",
                vec![("web servers".into(), pool)],
                &[&front],
            )
            .await?;
            Ok(vec![front, status].into())
        })
    }

    fn instructions(&self, boot: &Boot, host: &str) -> Vec<String> {
        let p = boot.ports;
        let ip = boot.world.addr(host);
        let port = if p.http == 80 {
            String::new()
        } else {
            format!(":{}", p.http)
        };
        vec![
            "The cache server (C50): twice, and see x-cache: MISS then HIT, and age:".into(),
            format!(
                "  curl -s -D - -o /dev/null -H 'Host: myapp.test' http://{ip}{port}/static/app.css"
            ),
            format!("  (to put it in the path: [lb] backends = [\"{host}\"] and weights = [1])"),
        ]
    }
}
