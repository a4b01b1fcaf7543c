//! The application server role.

use std::net::IpAddr;
use std::sync::Arc;

use weblab_app::AppState;

use super::{Needs, Service, Starting};
use crate::config::World;
use crate::world::{Boot, Started, listen, sock};

pub struct App;

impl Service for App {
    fn name(&self) -> &'static str {
        "app"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        world.apps.clone()
    }

    fn needs(&self) -> Needs {
        Needs::DATABASE
    }

    fn drain_tier(&self) -> u8 {
        2
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let world = &*boot.world;
            let listener = listen(sock(world.addr(host), boot.ports.http), host).await?;
            // An application believes forwarded-client headers only from
            // the web servers.
            let proxies: Vec<IpAddr> = world
                .web
                .iter()
                .map(|w| IpAddr::V4(world.addr(&w.host)))
                .collect();
            let state = Arc::new(
                AppState::new(boot.database()?, boot.recorder(host, "app"), host)
                    .await?
                    .trusting(proxies),
            );
            let app = weblab_app::start(
                listener,
                state,
                &world.database.cors_origins,
                world.limits.http,
            )?;
            Ok(Started {
                app: Some(app.state),
                servers: vec![app.server],
            })
        })
    }
}
