//! The application server role.

use std::net::IpAddr;
use std::sync::Arc;

use weblab_app::AppState;

use super::{Needs, Service, Starting};
use crate::config::World;
use crate::world::{Boot, Started, listen_all, sock};

pub struct App;

impl Service for App {
    fn name(&self) -> &'static str {
        "app"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        world.apps.clone()
    }

    /// The CA too: the applications call the identity provider over
    /// HTTPS and check its certificate against it.
    fn needs(&self) -> Needs {
        Needs::DATABASE.and(Needs::CA)
    }

    fn drain_tier(&self) -> u8 {
        2
    }

    fn instructions(&self, boot: &Boot, host: &str) -> Vec<String> {
        // One paragraph for all app servers: they share the database.
        if boot.world.apps.first().map(String::as_str) != Some(host) {
            return Vec::new();
        }
        let accounts: Vec<String> = weblab_app::DEMO_USERS
            .iter()
            .map(|(_, email, role)| format!("{email} ({role})"))
            .collect();
        vec![
            "The application (C34-C38, C45), through the load balancer:".into(),
            format!(
                "  sign in at https://myapp.test/login as {}; password {}",
                accounts.join(", "),
                weblab_app::DEMO_PASSWORD
            ),
            "  REST: GET/POST /api/users, /api/users/{id}, /api/posts; POST /api/tokens for a Bearer token".into(),
            "  weblab lint-routes checks the API's paths against REST naming rules".into(),
        ]
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let world = &*boot.world;
            let listeners = listen_all(world, host, boot.ports.http).await?;
            // An application believes forwarded-client headers only from
            // the web servers.
            let proxies: Vec<IpAddr> = world
                .web
                .iter()
                .map(|w| IpAddr::V4(world.addr(&w.host)))
                .collect();
            let mut state = AppState::new(boot.database()?, boot.recorder(host, "app"), host)
                .await?
                .trusting(proxies);
            if let Some(idp) = &world.idp {
                state = state.with_oauth(oauth_client(boot, host, idp)?);
            }
            let state = Arc::new(state);
            let app = weblab_app::start(
                listeners,
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

/// The application's registration at the world's identity provider.
fn oauth_client(
    boot: &Boot,
    host: &str,
    idp: &crate::config::IdpConfig,
) -> anyhow::Result<weblab_app::oauth::OAuthClient> {
    use super::idp::{CLIENT_ID, client_secret, issuer, redirect_uri};
    let (world, https) = (&*boot.world, boot.ports.https);
    let secret = client_secret(&boot.data_dir)?;
    Ok(weblab_app::oauth::OAuthClient::new(
        &issuer(&idp.server_name, https),
        sock(world.addr(&idp.host), https),
        Some(IpAddr::V4(world.addr(host))),
        (CLIENT_ID, &secret),
        &redirect_uri(world, https),
        std::slice::from_ref(boot.ca()?.cert()),
    )?)
}
