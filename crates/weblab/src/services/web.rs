//! The web server role.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use weblab_edge::proxy::Upstream;
use weblab_edge::{WebServer, serve_http};

use super::{Needs, Service, Starting};
use crate::config::World;
use crate::world::{Boot, listen, sock};

pub struct Web;

impl Service for Web {
    fn name(&self) -> &'static str {
        "web"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        world.web.iter().map(|w| w.host.clone()).collect()
    }

    fn needs(&self) -> Needs {
        Needs::DOCUMENT_ROOT
    }

    fn drain_tier(&self) -> u8 {
        1
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let (world, ports) = (&*boot.world, boot.ports);
            let ip = world.addr(host);
            let cfg = world
                .web
                .iter()
                .find(|w| w.host == host)
                .with_context(|| format!("host {host} runs no web server"))?;
            let apps = cfg
                .apps
                .iter()
                .map(|a| Upstream::new(a, sock(world.addr(a), ports.http), IpAddr::V4(ip)))
                .collect();
            let trusted = vec![IpAddr::V4(world.addr(&world.lb.host))];
            let rec = boot.recorder(host, "web");
            let svc = Arc::new(WebServer::new(boot.document_root()?, apps, trusted, rec));
            let listener = listen(sock(ip, ports.http), host).await?;
            Ok(vec![serve_http(listener, None, world.limits.http, svc)?].into())
        })
    }
}
