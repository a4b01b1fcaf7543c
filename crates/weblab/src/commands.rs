//! `weblab up`, `weblab serve` and `weblab init`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use weblab_edge::LocalCa;
use weblab_trace::{Collector, Detail, StoreLimits, TraceStore};

use crate::config::{DEFAULT_WORLD, World};
use crate::world::{Boot, roles};
use crate::{observe, supervise};

/// A server role that can run alone.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Role {
    Dns,
    Lb,
    Cache,
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
pub fn instructions(boot: &Boot) -> String {
    let world = &*boot.world;
    let mut s = format!(
        "world {:?} is up; CA certificate: {}\n\nhosts:\n",
        world.name,
        LocalCa::cert_path(&boot.data_dir).display()
    );
    for (name, ip) in &world.hosts {
        s.push_str(&format!("  {name:<9} {ip}\n"));
    }
    // Each service says how to reach it: DNS first (the resolver, then
    // the servers it asks), then the front door.
    let all = roles(world);
    let mut lines: Vec<String> = Vec::new();
    for name in ["resolver", "dns", "lb", "web", "app"] {
        for r in all.iter().filter(|r| r.service.name() == name) {
            lines.extend(r.service.instructions(boot, &r.host));
        }
    }
    for r in all
        .iter()
        .filter(|r| !["resolver", "dns", "lb", "web", "app"].contains(&r.service.name()))
    {
        lines.extend(r.service.instructions(boot, &r.host));
    }
    for l in lines {
        if !l.starts_with(' ') {
            s.push('\n');
        }
        s.push_str(&l);
        s.push('\n');
    }
    s
}

/// Boots the whole world and keeps it up until SIGTERM or Ctrl-C; its
/// traces (and those sent over OTLP by roles and programs elsewhere) are
/// collected, printed a line each, and kept for `weblab trace`.
pub async fn up(world: World, data_dir: std::path::PathBuf, grace: Option<Duration>) -> Result<()> {
    let grace = grace.unwrap_or(world.limits.grace);
    let all = roles(&world);
    let store = TraceStore::new(StoreLimits::default());
    let receiver = observe::start_receiver(&world, store.clone()).await?;
    let collector = Collector::with_sinks(Detail::Full, Some(store.clone()), Vec::new());
    let boot = Boot::new(world, data_dir, collector, &all).await?;
    let text = instructions(&boot);
    let endpoint = receiver.addr;
    supervise::run(boot, all, grace, |_| {
        observe::say(&text);
        observe::say(&format!("Traces: OTLP/HTTP endpoint http://{endpoint} (roles elsewhere: weblab serve ROLE --otlp http://{endpoint});"));
        observe::say(&format!("  weblab tour --attach, weblab trace list, weblab trace show ID; kept up to {} MiB, oldest dropped first.", StoreLimits::default().max_bytes >> 20));
        observe::say(&format!("Ctrl-C or SIGTERM stops the world (in-flight requests get {grace:?}).\n"));
        observe::print_finished_traces(store);
    })
    .await?;
    receiver.drain(Duration::from_millis(200)).await;
    Ok(())
}

/// Receives OTLP for `world` (from roles run with `serve --otlp`, or any
/// OpenTelemetry SDK) and serves the trace API, until SIGTERM or Ctrl-C.
pub async fn collect(world: World, max_bytes: Option<usize>) -> Result<()> {
    let mut limits = StoreLimits::default();
    if let Some(b) = max_bytes {
        limits.max_bytes = b;
    }
    let store = TraceStore::new(limits);
    let receiver = observe::start_receiver(&world, store.clone()).await?;
    let mut signals = supervise::Signals::new()?;
    observe::say(&format!(
        "collecting traces of world {:?}: OTLP/HTTP endpoint http://{} (keeps up to {} KiB, oldest dropped first)",
        world.name,
        receiver.addr,
        limits.max_bytes >> 10
    ));
    observe::print_finished_traces(store);
    let which = signals.next().await;
    eprintln!("{which}: stopping");
    receiver.drain(world.limits.grace).await;
    Ok(())
}

/// Runs one role of the world alone, until SIGTERM or Ctrl-C.
pub async fn serve(
    world: World,
    data_dir: std::path::PathBuf,
    role: Role,
    only: Option<&str>,
    grace: Option<Duration>,
    otlp: Option<&str>,
) -> Result<()> {
    let grace = grace.unwrap_or(world.limits.grace);
    // A role that exports keeps no store of its own: its spans live in
    // the collector.
    let collector = match otlp {
        Some(url) => {
            let exporter = weblab_otlp::OtlpExporter::start(url).map_err(anyhow::Error::msg)?;
            observe::say(&format!("spans go to {}", exporter.url));
            Collector::with_sinks(Detail::Full, None, vec![exporter])
        }
        // Nothing could read a store of its own (a served role has no
        // trace API), so none is kept: spans are made and dropped.
        None => {
            // On stderr: the first line on stdout says where the role listens.
            eprintln!(
                "spans are not kept: give --otlp URL to send them to `weblab collect` or `weblab up`"
            );
            Collector::with_sinks(Detail::Full, None, Vec::new())
        }
    };
    // `dns` runs every DNS service: the authoritative servers and the resolver.
    let wanted = |name: &str| match role {
        Role::Dns => name == "dns" || name == "resolver",
        Role::Lb => name == "lb",
        Role::Cache => name == "cache",
        Role::Web => name == "web",
        Role::App => name == "app",
    };
    let mine: Vec<_> = roles(&world)
        .into_iter()
        .filter(|r| wanted(r.service.name()) && only.is_none_or(|o| o == r.host))
        .collect();
    if mine.is_empty() {
        bail!("no host of role {role:?} matches {:?}", only.unwrap_or("*"));
    }
    let boot = Boot::new(world, data_dir, collector, &mine).await?;
    supervise::run(boot, mine, grace, |up| {
        for (r, addrs) in up {
            for a in addrs {
                let proto = if matches!(r.service.name(), "dns" | "resolver") {
                    " (udp+tcp)"
                } else {
                    ""
                };
                observe::say(&format!("{} {} on {a}{proto}", r.service.name(), r.host));
            }
        }
    })
    .await
}

/// `weblab lint-routes [FILE]`: prints the findings as a table; the exit
/// code is 1 when there are any.
pub fn lint_routes(file: Option<&std::path::Path>) -> Result<i32> {
    use weblab_app::routes::lint;
    let (routes, source) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let routes =
                lint::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (routes, path.display().to_string())
        }
        None => {
            let routes: Vec<(String, String)> = weblab_app::routes::table()
                .iter()
                .filter(|r| r.pattern.starts_with("/api/"))
                .map(|r| (r.method.to_string(), r.pattern.to_string()))
                .collect();
            (
                routes,
                "the application's /api routes (its HTML pages are not resources)".into(),
            )
        }
    };
    let findings: Vec<lint::Finding> = routes.iter().flat_map(|(m, p)| lint::check(m, p)).collect();
    println!("{} routes from {source}", routes.len());
    if findings.is_empty() {
        println!("no REST naming rule broken");
        return Ok(0);
    }
    let w = findings
        .iter()
        .map(|f| f.route.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let r = findings
        .iter()
        .map(|f| f.rule.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<w$}  {:<r$}  WHY", "ROUTE", "RULE");
    for f in &findings {
        println!("{:<w$}  {:<r$}  {}", f.route, f.rule, f.detail);
    }
    println!("{} finding(s)", findings.len());
    Ok(1)
}
