//! The identity provider role (C37): an OAuth 2.0 authorization server on
//! its own host, over HTTPS with a certificate from the world's CA. The
//! application servers are its one registered client.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use weblab_app::idp::{IDP_USERS, IdpState, flow::Client};
use weblab_edge::tls::server_config;

use super::{Needs, Service, Starting};
use crate::config::World;
use crate::world::{Boot, listen_all};

pub struct Idp;

/// The application's client id at the provider.
pub const CLIENT_ID: &str = "myapp";

/// `https://NAME` with the port when it is not 443.
pub fn issuer(server_name: &str, https_port: u16) -> String {
    match https_port {
        443 => format!("https://{server_name}"),
        p => format!("https://{server_name}:{p}"),
    }
}

/// Where the provider sends browsers back: the site's callback, through
/// the load balancer's first name.
pub fn redirect_uri(world: &World, https_port: u16) -> String {
    let site = world
        .lb
        .server_names
        .first()
        .map_or("myapp.test", String::as_str);
    format!("{}/oauth/callback", issuer(site, https_port))
}

/// The client secret the provider and the applications share, made once
/// per data directory (0600). Written under a temporary name and linked
/// into place, so two processes starting at once agree on one value.
pub fn client_secret(data_dir: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("oauth-client-secret");
    if let Ok(s) = std::fs::read_to_string(&path)
        && !s.trim().is_empty()
    {
        return Ok(s.trim().to_string());
    }
    let secret = weblab_app::auth::random_secret();
    let tmp = data_dir.join(format!(".oauth-client-secret.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        f.write_all(secret.as_bytes())
            .with_context(|| format!("write {}", tmp.display()))?;
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let s = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            Ok(s.trim().to_string())
        }
        Err(e) => Err(e).with_context(|| format!("create {}", path.display())),
    }
}

impl Service for Idp {
    fn name(&self) -> &'static str {
        "idp"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        world.idp.iter().map(|i| i.host.clone()).collect()
    }

    fn needs(&self) -> Needs {
        Needs::CA
    }

    /// Beside the applications: their in-flight sign-ins still need it.
    fn drain_tier(&self) -> u8 {
        3
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let (world, ports) = (&*boot.world, boot.ports);
            let cfg = world
                .idp
                .as_ref()
                .filter(|i| i.host == host)
                .with_context(|| format!("host {host} runs no identity provider"))?;
            let client = Client {
                id: CLIENT_ID.into(),
                name: world
                    .lb
                    .server_names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| CLIENT_ID.into()),
                secret_digest: weblab_app::auth::digest(&client_secret(&boot.data_dir)?),
                redirect_uris: vec![redirect_uri(world, ports.https)],
            };
            let state = IdpState::new(
                &issuer(&cfg.server_name, ports.https),
                vec![client],
                boot.recorder(host, "idp"),
            )
            .await?;
            let mut names = vec![cfg.server_name.clone()];
            names.extend(world.addrs(host).iter().map(ToString::to_string));
            let (chain, key) = boot.ca()?.issue(&names)?;
            let tls = server_config(chain, key, &[b"h2", b"http/1.1"])?;
            let listeners = listen_all(world, host, ports.https).await?;
            let server =
                weblab_app::idp::start(listeners, Some(tls), Arc::new(state), world.limits.http)?;
            Ok(vec![server].into())
        })
    }

    fn instructions(&self, boot: &Boot, host: &str) -> Vec<String> {
        let Some(cfg) = &boot.world.idp else {
            return Vec::new();
        };
        let iss = issuer(&cfg.server_name, boot.ports.https);
        let accounts: Vec<String> = IDP_USERS
            .iter()
            .map(|(_, _, local)| format!("{local}@{}", cfg.server_name))
            .collect();
        vec![
            format!(
                "The identity provider (C37) on {host} ({}): {iss}",
                boot.world.addr(host)
            ),
            format!(
                "  on https://myapp.test/login choose \"Sign in with {}\"; its accounts: {} (password {})",
                cfg.server_name,
                accounts.join(", "),
                weblab_app::DEMO_PASSWORD
            ),
            format!(
                "  curl --cacert {} --resolve {}:{}:{} {iss}/.well-known/oauth-authorization-server",
                weblab_edge::LocalCa::cert_path(&boot.data_dir).display(),
                cfg.server_name,
                boot.ports.https,
                boot.world.addr(host)
            ),
            "  weblab tour --attach --oauth walks the sign-in through this world, in one trace"
                .into(),
        ]
    }
}
