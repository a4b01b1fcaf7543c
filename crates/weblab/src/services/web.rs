//! The web server role.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use weblab_edge::{Admin, Backend, Checks, Files, Pool, WebServer, serve_http};

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
                .map(|a| Backend::new(a, sock(world.addr(a), ports.http), 1))
                .collect();
            // Like nginx: no active checks toward the apps; failed
            // requests take an app out for a while.
            let checks = Checks {
                interval: None,
                ..Checks::default()
            };
            let rec = boot.recorder(host, "web");
            let pool = Pool::new(
                apps,
                Box::new(weblab_edge::balance::RoundRobin::default()),
                IpAddr::V4(ip),
                checks,
                rec.clone(),
            );
            let trusted = vec![IpAddr::V4(world.addr(&world.lb.host))];
            let root = boot.document_root()?;
            let files =
                Files::new(&root).with_context(|| format!("document root {}", root.display()))?;
            let admin = Arc::new(Admin {
                role: format!("{host} (web server)"),
                pools: vec![("apps".into(), pool.clone())],
            });
            let svc = Arc::new(WebServer::new(files, pool, trusted, rec));
            let limits = world.limits.http;
            let listener = listen(sock(ip, ports.http), host).await?;
            let status = listen(sock(ip, ports.admin), host).await?;
            Ok(vec![
                serve_http(listener, None, limits, svc)?,
                serve_http(status, None, limits, admin)?,
            ]
            .into())
        })
    }
}
