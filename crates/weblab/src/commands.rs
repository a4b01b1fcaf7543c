//! `weblab up`, `weblab serve` and `weblab init`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use weblab_app::Db;
use weblab_edge::LocalCa;
use weblab_trace::{Collector, Detail};

use crate::config::{DEFAULT_WORLD, World};
use crate::world::{
    RunningWorld, choose_ports, database_url, start_app, start_dns, start_lb, start_web,
    write_document_root,
};

/// A server role that can run alone.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Role {
    Dns,
    Lb,
    Web,
    App,
}

/// Writes the default world file.
pub fn init(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(path, DEFAULT_WORLD)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} (use it with: weblab --config {} tour)",
        path.display(),
        path.display()
    );
    Ok(())
}

/// The commands a person can paste to reach a running world.
pub fn instructions(w: &RunningWorld) -> String {
    let p = w.ports;
    let world = &w.world;
    let port = |n: u16| {
        if n == 53 {
            String::new()
        } else {
            format!(" -p {n}")
        }
    };
    let mut s = String::new();
    s.push_str(&format!(
        "world {:?} is up; CA certificate: {}\n\nhosts:\n",
        world.name,
        w.ca_path().display()
    ));
    for (name, ip) in &world.hosts {
        s.push_str(&format!("  {name:<9} {ip}\n"));
    }
    s.push_str("\nDNS (C08-C11):\n");
    s.push_str(&format!(
        "  dig @{}{} myapp.test                 # the recursive resolver\n",
        w.addr(&world.resolver_host),
        port(p.dns)
    ));
    for d in &world.dns {
        s.push_str(&format!(
            "  dig @{}{} myapp.test +norecurse      # {}\n",
            w.addr(&d.host),
            port(p.dns),
            d.role
        ));
    }
    let lb = w.addr(&world.lb.host);
    s.push_str("\nHTTPS through the load balancer (C32, C43, C44):\n");
    s.push_str(&format!(
        "  curl --cacert {} --resolve myapp.test:{https}:{lb} https://myapp.test{}/login\n",
        w.ca_path().display(),
        if p.https == 443 {
            String::new()
        } else {
            format!(":{}", p.https)
        },
        https = p.https
    ));
    s.push_str(&format!(
        "  curl -i --resolve myapp.test:{http}:{lb} http://myapp.test{}/login   # 301 to https\n",
        if p.http == 80 {
            String::new()
        } else {
            format!(":{}", p.http)
        },
        http = p.http
    ));
    s.push_str(&format!(
        "\nA real browser:\n  chromium --host-resolver-rules=\"MAP myapp.test {lb}\" --ignore-certificate-errors https://myapp.test{}/login\n",
        if p.https == 443 { String::new() } else { format!(":{}", p.https) }
    ));
    s
}

/// Boots the world and waits for Ctrl-C.
pub async fn up(world: World, data_dir: PathBuf) -> Result<()> {
    let running = RunningWorld::start(world, data_dir, Detail::Full).await?;
    println!("{}", instructions(&running));
    println!("Ctrl-C stops the world.");
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    Ok(())
}

/// Runs one role of the world alone, until Ctrl-C.
pub async fn serve(world: World, data_dir: PathBuf, role: Role, only: Option<&str>) -> Result<()> {
    std::fs::create_dir_all(&data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let ports = choose_ports(&world);
    let collector = Collector::new(Detail::Full);
    let wanted = |h: &str| only.is_none_or(|o| o == h);
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    match role {
        Role::Dns => {
            let mut hosts: Vec<String> = world.dns.iter().map(|d| d.host.clone()).collect();
            hosts.push(world.resolver_host.clone());
            for h in hosts.into_iter().filter(|h| wanted(h)) {
                let s = start_dns(&world, &h, ports, &collector).await?;
                println!("dns {h} on {} (udp+tcp)", s.addr);
                keep.push(Box::new(s));
            }
        }
        Role::Lb => {
            let ca = LocalCa::load_or_create(&data_dir)?;
            for s in start_lb(&world, ports, &ca, &collector).await? {
                println!("lb {} on {}", world.lb.host, s.addr);
                keep.push(Box::new(s));
            }
        }
        Role::Web => {
            let root = write_document_root(&data_dir)?;
            for w in world.web.iter().filter(|w| wanted(&w.host)) {
                let s = start_web(&world, &w.host, ports, root.clone(), &collector).await?;
                println!("web {} on {}", w.host, s.addr);
                keep.push(Box::new(s));
            }
        }
        Role::App => {
            let db = Db::connect(&database_url(&world, &data_dir)).await?;
            db.migrate().await?;
            for a in world.apps.iter().filter(|a| wanted(a)) {
                let s = start_app(&world, a, ports, db.clone(), &collector).await?;
                println!("app {a} on {}", s.addr);
                keep.push(Box::new(s));
            }
        }
    }
    if keep.is_empty() {
        bail!("no host of role {role:?} matches {:?}", only.unwrap_or("*"));
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
