//! The web server role.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use weblab_edge::{Action, Files, Location, Pool, Site, Sites, WebServer, serve_http_on};

use super::{Needs, Service, Starting};
use crate::config::{LocationServe, World};
use crate::world::{Boot, listen_all};

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
            let rec = boot.recorder(host, "web");
            // One pool per distinct list of apps.
            let mut pools: Vec<(Vec<String>, Arc<Pool>)> = Vec::new();
            let mut pool_for = |names: &[String]| -> Arc<Pool> {
                if let Some((_, p)) = pools.iter().find(|(n, _)| n == names) {
                    return p.clone();
                }
                let p = super::passive_pool(boot, ip, names, rec.clone());
                pools.push((names.to_vec(), p.clone()));
                p
            };
            let root = boot.document_root()?;
            let files_at = |dir: &std::path::Path| -> anyhow::Result<Arc<Files>> {
                let dir = root.join(dir);
                Ok(Arc::new(Files::new(&dir).with_context(|| {
                    format!("web server {host}: document root {}", dir.display())
                })?))
            };
            let sites = if cfg.sites.is_empty() {
                vec![Site {
                    names: Vec::new(),
                    locations: vec![
                        Location {
                            exact: false,
                            path: weblab_edge::web::STATIC_PREFIX.into(),
                            action: Action::Files(files_at(std::path::Path::new("."))?),
                        },
                        Location {
                            exact: false,
                            path: "/".into(),
                            action: Action::Proxy(pool_for(&cfg.apps)),
                        },
                    ],
                }]
            } else {
                let mut sites = Vec::new();
                for s in &cfg.sites {
                    let mut locations = Vec::new();
                    for l in &s.locations {
                        let action = match &l.serve {
                            LocationServe::Root(dir) => Action::Files(files_at(dir)?),
                            LocationServe::Proxy(apps) => Action::Proxy(pool_for(apps)),
                        };
                        locations.push(Location {
                            exact: l.exact,
                            path: l.path.clone(),
                            action,
                        });
                    }
                    sites.push(Site {
                        names: s.server_names.clone(),
                        locations,
                    });
                }
                sites
            };
            let sites = Sites(sites);
            // The load balancer, and the caches that may stand between.
            let trusted = std::iter::once(&world.lb.host)
                .chain(world.caches.iter().map(|c| &c.host))
                .map(|h| IpAddr::V4(world.addr(h)))
                .collect();
            let pools = sites.pools();
            let svc = Arc::new(WebServer::new(sites, trusted, rec));
            let limits = world.limits.http;
            // The world's web servers also speak HTTP/0.9 (C23).
            let page_limits = weblab_edge::Limits {
                http09: true,
                ..limits
            };
            let listeners = listen_all(world, host, ports.http).await?;
            let front = serve_http_on(listeners, None, page_limits, svc)?;
            let status = super::status_page(boot, host, "web server", pools, &[&front]).await?;
            Ok(vec![front, status].into())
        })
    }
}
