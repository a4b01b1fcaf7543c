//! The load balancer role: HTTPS with the world's certificate, and a
//! plain-HTTP port that redirects.

use std::net::IpAddr;
use std::sync::Arc;

use weblab_edge::tls::server_config;
use weblab_edge::{Backend, LoadBalancer, LocalCa, Pool, RedirectToHttps, serve_http_on};

use super::{Needs, Service, Starting};
use crate::config::World;
use crate::world::{Boot, listen_all, sock};

pub struct Lb;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Service for Lb {
    fn name(&self) -> &'static str {
        "lb"
    }

    fn hosts(&self, world: &World) -> Vec<String> {
        vec![world.lb.host.clone()]
    }

    fn needs(&self) -> Needs {
        Needs::CA
    }

    fn drain_tier(&self) -> u8 {
        0
    }

    fn start<'a>(&'a self, boot: &'a Boot, host: &'a str) -> Starting<'a> {
        Box::pin(async move {
            let (world, ports) = (&*boot.world, boot.ports);
            let ip = world.addr(host);
            let backends = world
                .lb
                .backends
                .iter()
                .zip(&world.lb.weights)
                .map(|(b, w)| Backend::new(b, sock(world.addr(b), ports.http), *w))
                .collect();
            let balancer = weblab_edge::balance::by_name(
                &world.lb.algorithm,
                &world.lb.backends,
                &world.lb.weights,
            )
            .map_err(anyhow::Error::msg)?;
            let pool = Pool::with_timeouts(
                backends,
                balancer,
                IpAddr::V4(ip),
                world.lb.health.clone(),
                super::upstream_timeouts(world),
                boot.recorder(host, "lb"),
            );
            boot.starting(pool.start_checks());
            let mut names = world.lb.server_names.clone();
            names.extend(world.addrs(host).iter().map(ToString::to_string));
            let (chain, key) = boot.ca()?.issue(&names)?;
            let tls = server_config(chain, key, &[b"h2", b"http/1.1"])?;
            let pools = vec![("backends".into(), pool.clone())];
            let mut lb = LoadBalancer::new(pool, boot.recorder(host, "lb"));
            if let Some(rules) = &world.lb.firewall {
                let fw = weblab_edge::Firewall::new(rules.clone(), boot.recorder(host, "firewall"));
                lb = lb.with_firewall(fw);
            }
            let lb = Arc::new(lb);
            let limits = world.limits.http;
            let https = serve_http_on(
                listen_all(world, host, ports.https).await?,
                Some(tls),
                limits,
                lb,
            )?;
            let redirect = Arc::new(RedirectToHttps {
                server_names: names,
                https_port: ports.https,
                rec: boot.recorder(host, "lb (http)"),
            });
            let http = serve_http_on(
                listen_all(world, host, ports.http).await?,
                None,
                limits,
                redirect,
            )?;
            let status =
                super::status_page(boot, host, "load balancer", pools, &[&https, &http]).await?;
            Ok(vec![https, http, status].into())
        })
    }

    fn instructions(&self, boot: &Boot, host: &str) -> Vec<String> {
        let p = boot.ports;
        let lb = boot.world.addr(host);
        let ca = LocalCa::cert_path(&boot.data_dir);
        let https = if p.https == 443 {
            String::new()
        } else {
            format!(":{}", p.https)
        };
        let http = if p.http == 80 {
            String::new()
        } else {
            format!(":{}", p.http)
        };
        let over_ipv6 = boot.world.addr6(host).map(|v6| {
            format!(
                "  curl -6 --cacert {} --resolve myapp.test:{}:[{v6}] https://myapp.test{https}/login   # over IPv6",
                ca.display(),
                p.https
            )
        });
        let mut lines = vec![
            format!(
                "The load balancer's backends, health and load: curl http://{lb}:{}/_weblab/status",
                p.admin
            ),
            "HTTPS through the load balancer (C32, C43, C44):".into(),
            format!(
                "  curl --cacert {} --resolve myapp.test:{}:{lb} https://myapp.test{https}/login",
                ca.display(),
                p.https
            ),
        ];
        lines.extend(over_ipv6);
        lines.extend([

            format!(
                "  curl -i --resolve myapp.test:{}:{lb} http://myapp.test{http}/login   # 301 to https",
                p.http
            ),
            "A real browser, trusting the world's CA (certutil is in libnss3-tools):".into(),
            format!(
                "  mkdir -p ~/.pki/nssdb && certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n weblab -i {}",
                ca.display()
            ),
            format!(
                "  chromium{} --host-resolver-rules=\"MAP myapp.test {lb}{idp}\" https://myapp.test{https}/login",
                // Chromium refuses to run its sandbox as root.
                if is_root() { " --no-sandbox" } else { "" },
                // The identity provider's name too, for its sign-in page.
                idp = boot.world.idp.as_ref().map_or(String::new(), |i| format!(
                    ", MAP {} {}",
                    i.server_name,
                    boot.world.addr(&i.host)
                )),
            ),
        ]);
        lines
    }
}
