//! The DNS roles: authoritative servers for their zones, and the
//! recursive resolver.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use weblab_dns::{AuthoritativeServer, Authority, Resolver, ResolverConfig};

use super::{Service, Starting};
use crate::config::World;
use crate::world::{Boot, sock};

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
            let addr = sock(world.addr(host), boot.ports.dns);
            let d = world
                .dns
                .iter()
                .find(|d| d.host == host)
                .with_context(|| format!("host {host} runs no DNS server"))?;
            let policies = d.policies.iter().filter_map(|(name, weights)| {
                let name = hickory_proto::rr::Name::from_ascii(name).ok()?;
                let weights = weights
                    .iter()
                    .map(|(ip, w)| (std::net::IpAddr::V4(*ip), *w))
                    .collect();
                Some((name, weblab_dns::policy::Policy::Weighted(weights)))
            });
            let server = AuthoritativeServer::new(
                Authority::new(d.zones.clone())
                    .with_policies(weblab_dns::policy::Policies::new(policies)),
                &d.role,
                boot.recorder(host, "dns"),
            );
            let s = weblab_dns::serve(addr, Arc::new(server), world.limits.dns)
                .await
                .with_context(|| bind_failed(host, addr))?;
            Ok(vec![s].into())
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
            let addr = sock(ip, boot.ports.dns);
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
            let s = weblab_dns::serve(addr, Arc::new(resolver), world.limits.dns)
                .await
                .with_context(|| bind_failed(host, addr))?;
            Ok(vec![s].into())
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
