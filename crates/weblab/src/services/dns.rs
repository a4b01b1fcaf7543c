//! The DNS roles: authoritative servers for their zones, and the
//! recursive resolver.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use weblab_dns::policy::{Loads, Policies, Policy};
use weblab_dns::{AuthoritativeServer, Authority, Resolver, ResolverConfig};

use super::{Service, Starting};
use crate::config::{PolicyConfig, World};
use crate::world::Boot;

pub struct Authoritative;
pub struct Recursive;

/// `dig`'s port flag, empty on the standard port.
fn dig_port(port: u16) -> String {
    if port == 53 {
        String::new()
    } else {
        format!(" -p {port}")
    }
}

fn bind_failed(host: &str, addr: std::net::SocketAddr) -> String {
    format!("host {host}: cannot serve DNS on {addr} (another world there? try --block N)")
}

impl Service for Authoritative {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        world.dns.iter().map(|d| d.host.clone()).collect()
    }

    fn drain_tier(&self) -> u8 {
        3
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let world = &*boot.world;
            let d = world
                .dns
                .iter()
                .find(|d| d.host == host)
                .with_context(|| format!("host {host} runs no DNS server"))?;
            let policies = d.policies.iter().filter_map(|(name, policy)| {
                let name = hickory_proto::rr::Name::from_ascii(name).ok()?;
                Some((
                    name,
                    match policy {
                        PolicyConfig::Weighted(weights) => Policy::Weighted(
                            weights
                                .iter()
                                .map(|(ip, w)| (IpAddr::V4(*ip), *w))
                                .collect(),
                        ),
                        PolicyConfig::LeastConnections(addrs) => Policy::LeastConnections(
                            addrs.iter().map(|ip| IpAddr::V4(*ip)).collect(),
                        ),
                    },
                ))
            });
            let policies = Policies::new(policies);
            let counted = policies.counted_addresses();
            let loads = policies.loads();
            let server = AuthoritativeServer::new(
                Authority::new(d.zones.clone()).with_policies(policies),
                &d.role,
                boot.recorder(host, "dns"),
            );
            let mut servers = serve_everywhere(boot, host, Arc::new(server)).await?;
            if !counted.is_empty()
                && let Some(s) = servers.first_mut()
            {
                let pages = counted
                    .into_iter()
                    .map(|ip| (ip, std::net::SocketAddr::new(ip, boot.ports.admin)))
                    .collect();
                let (first_read, done) = tokio::sync::oneshot::channel();
                boot.starting(done);
                s.watch_task(tokio::spawn(read_loads(
                    pages,
                    loads,
                    IpAddr::V4(world.addr(host)),
                    first_read,
                )));
            }
            Ok(servers.into())
        })
    }

    fn instructions(&self, boot: &Boot, host: &str) -> Vec<String> {
        let role = boot
            .world
            .dns
            .iter()
            .find(|d| d.host == host)
            .map_or("", |d| d.role.as_str());
        vec![format!(
            "  dig @{}{} myapp.test +norecurse      # {role}",
            boot.world.addr(host),
            dig_port(boot.ports.dns)
        )]
    }
}

impl Service for Recursive {
    fn name(&self) -> &'static str {
        "resolver"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        vec![world.resolver_host.clone()]
    }

    fn drain_tier(&self) -> u8 {
        3
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let world = &*boot.world;
            let ip = world.addr(host);
            let cfg = ResolverConfig {
                root_hints: world
                    .root_hints
                    .iter()
                    .map(|r| IpAddr::V4(world.addr(r)))
                    .collect(),
                upstream_port: boot.ports.dns,
                bind: IpAddr::V4(ip),
                timeout: Duration::from_secs(2),
                qname_minimisation: world.qname_minimisation,
                allow: world.recursion_allow.clone(),
            };
            let resolver = Resolver::new(cfg, boot.recorder(host, "resolver"));
            Ok(serve_everywhere(boot, host, Arc::new(resolver))
                .await?
                .into())
        })
    }

    fn instructions(&self, boot: &Boot, host: &str) -> Vec<String> {
        vec![
            "DNS (C08-C11):".into(),
            format!(
                "  dig @{}{} myapp.test                 # the recursive resolver",
                boot.world.addr(host),
                dig_port(boot.ports.dns)
            ),
        ]
    }
}

/// DNS `handler` on port 53 (or its offset) of every address of `host`:
/// its IPv4 one, and its IPv6 one when it has `addr6`.
async fn serve_everywhere<H: weblab_dns::net::Handler>(
    boot: &Boot,
    host: &str,
    handler: Arc<H>,
) -> anyhow::Result<Vec<weblab_dns::DnsServer>> {
    let mut servers = Vec::new();
    for ip in boot.world.addrs(host) {
        let addr = std::net::SocketAddr::new(ip, boot.ports.dns);
        let s = weblab_dns::serve(addr, handler.clone(), boot.world.limits.dns)
            .await
            .with_context(|| bind_failed(host, addr))?;
        servers.push(s);
    }
    Ok(servers)
}

/// How often a least-connection name's counts are read.
const LOAD_EVERY: Duration = Duration::from_millis(250);

/// Reads `GET /_weblab/status` of each counted server, forever (the task
/// ends with the DNS server), into `loads`. A server that does not answer
/// in time keeps its old count until it goes stale.
async fn read_loads(
    pages: Vec<(IpAddr, std::net::SocketAddr)>,
    loads: Arc<Loads>,
    bind: IpAddr,
    first_read: tokio::sync::oneshot::Sender<()>,
) {
    let mut first_read = Some(first_read);
    loop {
        for (ip, page) in &pages {
            let read = tokio::time::timeout(LOAD_EVERY, open_connections(*page, bind)).await;
            if let Ok(Ok(open)) = read {
                loads.set(*ip, open, std::time::Instant::now());
            }
        }
        if let Some(tell) = first_read.take() {
            let _ = tell.send(());
        }
        tokio::time::sleep(LOAD_EVERY).await;
    }
}

/// The `connections` a status page reports.
async fn open_connections(page: std::net::SocketAddr, bind: IpAddr) -> anyhow::Result<u32> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(std::net::SocketAddr::new(bind, 0))?;
    let tcp = sock.connect(page).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(weblab_edge::status::STATUS_PATH)
        .header(http::header::HOST, page.to_string())
        .body(Empty::<bytes::Bytes>::new())?;
    let body = send.send_request(req).await?.into_body().collect().await?;
    let json: serde_json::Value = serde_json::from_slice(&body.to_bytes())?;
    json["connections"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .context("the status page has no connections count")
}
