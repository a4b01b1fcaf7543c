//! `weblab experiment dns-lb` (C11–C13): what DNS load balancing does and
//! does not do, measured with real servers on loopback. Three web
//! servers share one name; clients ask caching resolvers for it and go to
//! the first address. The same clients, with the same request schedule,
//! run three times:
//!
//! 1. through caching resolvers, each client keeping its answer for the
//!    TTL (as an OS or browser cache does);
//! 2. asking the authoritative server for every request (no cache);
//! 3. through the load balancer, which health-checks the servers.
//!
//! Halfway through each run one web server dies, and half a second later
//! its record is taken out of the zone (as a health-checked DNS service
//! would). Every number printed is counted: requests each server answered
//! (counted by the server), requests that failed (counted by the client),
//! and when the last one failed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use weblab_dns::{AuthoritativeServer, Authority, DnsLimits, Resolver, ResolverConfig, Zone};
use weblab_edge::{Backend, Checks, LoadBalancer, Pool, ServerHandle};
use weblab_server::{ConnInfo, Handler, Limits, RequestBody, serve_http};
use weblab_trace::{Collector, Detail, Recorder};

use crate::world::Ports;

/// What to run.
#[derive(Clone, Debug)]
pub struct Setup {
    pub clients: usize,
    pub resolvers: usize,
    pub duration: Duration,
    /// The record's TTL, in seconds.
    pub ttl: u32,
    /// The 127.`block`.0.0/16 the experiment's hosts live in.
    pub block: u8,
    pub svg: Option<PathBuf>,
}

impl Setup {
    /// Bounds every load loop: at most 200 clients, 16 resolvers, 60 s.
    pub fn check(&self) -> Result<()> {
        if !(3..=200).contains(&self.clients) {
            bail!("--clients: from 3 to 200");
        }
        if !(1..=16).contains(&self.resolvers) {
            bail!("--resolvers: from 1 to 16");
        }
        if self.duration < Duration::from_secs(2) || self.duration > Duration::from_secs(60) {
            bail!("--duration: from 2s to 60s");
        }
        if !(1..=30).contains(&self.ttl) {
            bail!("--ttl: from 1 to 30 seconds");
        }
        Ok(())
    }
}

const SERVERS: usize = 3;
/// Which server dies (web2).
const VICTIM: usize = 1;
/// The delay between the death and the record's removal.
const NOTICED_AFTER: Duration = Duration::from_millis(500);
/// Width of one chart column.
const BUCKET: Duration = Duration::from_millis(250);
/// A client's pause between requests: the first quarter of the clients
/// are busy (an office behind one address), the rest light.
const BUSY_GAP: Duration = Duration::from_millis(40);
const LIGHT_GAP: Duration = Duration::from_millis(200);

fn host(block: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, block, c, d))
}

/// A web server that counts the experiment's requests (a health check,
/// without the client header, is answered but not counted).
struct Web {
    index: usize,
    start: Instant,
    served: Arc<Mutex<Vec<(usize, Duration)>>>,
}

impl Handler for Web {
    type Body = Full<Bytes>;

    async fn call(
        self: Arc<Self>,
        req: http::Request<RequestBody>,
        _conn: ConnInfo,
    ) -> http::Response<Full<Bytes>> {
        if req.headers().contains_key("x-weblab-client") {
            let mut s = self.served.lock().unwrap_or_else(|p| p.into_inner());
            s.push((self.index, self.start.elapsed()));
        }
        http::Response::new(Full::new(Bytes::from(format!("web{}\n", self.index + 1))))
    }
}

/// How the clients find a server.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Cached,
    Uncached,
    Balancer,
}

impl Mode {
    fn title(self, s: &Setup) -> String {
        match self {
            Mode::Cached => format!(
                "DNS round robin through {} caching resolver{}, clients keep answers for the TTL ({} s)",
                s.resolvers,
                if s.resolvers == 1 { "" } else { "s" },
                s.ttl
            ),
            Mode::Uncached => {
                "DNS round robin, every request asks the authoritative server (no cache)".into()
            }
            Mode::Balancer => "one address: the load balancer, health checks every 200 ms".into(),
        }
    }
}

/// What one run counted.
struct Run {
    mode: Mode,
    /// Requests each server answered, with when.
    served: Vec<(usize, Duration)>,
    /// Requests that failed, with when (client side).
    failed: Vec<Duration>,
    died_at: Duration,
    /// What the load balancer's trace and status say about web2.
    lb_said: Option<String>,
}

struct World {
    setup: Setup,
    ports: Ports,
    webs: Vec<SocketAddr>,
    auth: SocketAddr,
    resolvers: Vec<SocketAddr>,
    lb: SocketAddr,
    name: hickory_proto::rr::Name,
}

fn zone(w: &World, with: &[usize]) -> Result<Zone> {
    let ttl = w.setup.ttl;
    let mut text = format!(
        "$TTL {ttl}\n@ IN SOA ns hostmaster 1 1800 900 604800 {ttl}\n@ IN NS ns\nns IN A {}\n",
        w.auth.ip()
    );
    for i in with {
        text.push_str(&format!("shop IN A {}\n", w.webs[*i].ip()));
    }
    Ok(Zone::parse(&text, "test.")?)
}

/// The authoritative server of the experiment, whose zone can be
/// replaced while it serves (a reload: no query goes unanswered).
struct Reloadable(std::sync::RwLock<Arc<AuthoritativeServer>>);

impl Reloadable {
    fn current(&self) -> Arc<AuthoritativeServer> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn reload(&self, next: AuthoritativeServer) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }
}

impl weblab_dns::net::Handler for Reloadable {
    async fn handle(
        self: Arc<Self>,
        query: Vec<u8>,
        peer: weblab_dns::net::Peer,
    ) -> Option<Vec<u8>> {
        self.current().handle(query, peer).await
    }

    fn answer_now(&self, query: &[u8], peer: weblab_dns::net::Peer) -> Option<Option<Vec<u8>>> {
        self.current().answer_now(query, peer)
    }
}

fn authority(w: &World, with: &[usize], rec: &Recorder) -> Result<AuthoritativeServer> {
    Ok(AuthoritativeServer::new(
        Authority::new(vec![zone(w, with)?]),
        "authoritative",
        rec.clone(),
    ))
}

async fn serve_zone(
    w: &World,
    with: &[usize],
    rec: &Recorder,
) -> Result<(ServerHandle, Arc<Reloadable>)> {
    let auth = Arc::new(Reloadable(std::sync::RwLock::new(Arc::new(authority(
        w, with, rec,
    )?))));
    // The address was just given up by the previous run's server.
    for _ in 0..50 {
        if let Ok(s) = weblab_dns::serve(w.auth, auth.clone(), DnsLimits::default()).await {
            return Ok((s, auth));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!(
        "cannot serve DNS on {} (another experiment running? try --block N)",
        w.auth
    )
}

/// Binds `addr`, waiting briefly for the previous run's listener there to
/// be gone (a stopped server closes its socket on its own task).
async fn listen(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    for _ in 0..50 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return Ok(l);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = tokio::net::TcpListener::bind(addr).await.err();
    bail!("cannot serve HTTP on {addr} (try --block N): {e:?}")
}

/// The first address the DNS gives for the name, and its TTL.
async fn lookup(
    from: IpAddr,
    server: SocketAddr,
    name: &hickory_proto::rr::Name,
    recurse: bool,
) -> Option<(IpAddr, u32)> {
    let q = weblab_dns::net::build_query(name, hickory_proto::rr::RecordType::A, recurse);
    let ex = weblab_dns::net::exchange_udp(from, server, &q, Duration::from_secs(1))
        .await
        .ok()?;
    ex.response.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::A(a) => Some((IpAddr::V4(a.0), r.ttl)),
        _ => None,
    })
}

/// One GET over a new connection from `from`; true when a 200 came back.
async fn fetch(from: IpAddr, to: SocketAddr, client: usize) -> bool {
    let work = async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(from, 0))?;
        let tcp = sock.connect(to).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let req = http::Request::get("/")
            .header(http::header::HOST, "shop.test")
            .header("x-weblab-client", client.to_string())
            .header(http::header::CONNECTION, "close")
            .body(Full::new(Bytes::new()))?;
        let resp = send.send_request(req).await?;
        let ok = resp.status() == http::StatusCode::OK;
        resp.into_body().collect().await?;
        anyhow::Ok(ok)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), work).await,
        Ok(Ok(true))
    )
}

async fn client(
    w: Arc<World>,
    mode: Mode,
    i: usize,
    start: Instant,
    failed: Arc<Mutex<Vec<Duration>>>,
) {
    let from = host(w.setup.block, 0, 10 + i as u8);
    let gap = if i < w.setup.clients.div_ceil(4) {
        BUSY_GAP
    } else {
        LIGHT_GAP
    };
    let resolver = w.resolvers[i % w.resolvers.len()];
    let mut kept: Option<(IpAddr, Instant)> = None;
    // Start spread over one gap so the clients do not move in step.
    tokio::time::sleep(gap * (i as u32 % 8) / 8).await;
    while start.elapsed() < w.setup.duration {
        let target = match mode {
            Mode::Balancer => Some(w.lb),
            Mode::Uncached => lookup(from, w.auth, &w.name, false)
                .await
                .map(|(ip, _)| SocketAddr::new(ip, w.ports.http)),
            Mode::Cached => {
                let now = Instant::now();
                let fresh = kept.filter(|(_, until)| *until > now).map(|(ip, _)| ip);
                let ip = match fresh {
                    Some(ip) => Some(ip),
                    None => {
                        let found = lookup(from, resolver, &w.name, true).await;
                        kept =
                            found.map(|(ip, ttl)| (ip, now + Duration::from_secs(u64::from(ttl))));
                        found.map(|(ip, _)| ip)
                    }
                };
                ip.map(|ip| SocketAddr::new(ip, w.ports.http))
            }
        };
        let ok = match target {
            Some(t) => fetch(from, t, i).await,
            None => false,
        };
        if !ok {
            failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(start.elapsed());
        }
        tokio::time::sleep(gap).await;
    }
}

async fn run_once(w: Arc<World>, mode: Mode) -> Result<Run> {
    // Only the load balancer's spans are read back (its attempts).
    let detail = match mode {
        Mode::Balancer => Detail::Full,
        _ => Detail::Minimal,
    };
    let collector = Collector::new(detail);
    let rec = Recorder::new(collector.clone(), "experiment", "127.0.0.1", "dns-lb");
    let start = Instant::now();
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut webs: Vec<Option<ServerHandle>> = Vec::new();
    for (i, addr) in w.webs.iter().enumerate() {
        let l = listen(*addr).await?;
        let web = Arc::new(Web {
            index: i,
            start,
            served: served.clone(),
        });
        webs.push(Some(serve_http(l, None, Limits::default(), web)?));
    }
    let (auth, zone_now) = serve_zone(&w, &[0, 1, 2], &rec).await?;
    let mut resolvers = Vec::new();
    for addr in &w.resolvers {
        let cfg = ResolverConfig {
            root_hints: vec![w.auth.ip()],
            upstream_port: w.ports.dns,
            bind: addr.ip(),
            timeout: Duration::from_secs(1),
            qname_minimisation: false,
            allow: ResolverConfig::loopback_only(),
        };
        let r = Arc::new(Resolver::new(cfg, rec.clone()));
        resolvers.push(
            weblab_dns::serve(*addr, r, DnsLimits::default())
                .await
                .with_context(|| format!("cannot serve DNS on {addr}"))?,
        );
    }
    let mut lb = None;
    let mut pool = None;
    if mode == Mode::Balancer {
        let names: Vec<String> = (1..=SERVERS).map(|i| format!("web{i}")).collect();
        let backends = w
            .webs
            .iter()
            .zip(&names)
            .map(|(a, n)| Backend::new(n, *a, 1))
            .collect();
        let checks = Checks {
            interval: Some(Duration::from_millis(200)),
            timeout: Duration::from_millis(200),
            rise: 2,
            fall: 2,
            ..Checks::default()
        };
        let alg = weblab_edge::balance::by_name("round-robin", &names, &[1; SERVERS])
            .map_err(anyhow::Error::msg)?;
        let p = Pool::new(backends, alg, w.lb.ip(), checks, rec.clone());
        p.start_checks();
        let l = listen(w.lb).await?;
        lb = Some(serve_http(
            l,
            None,
            Limits::default(),
            Arc::new(LoadBalancer::new(p.clone(), rec.clone())),
        )?);
        pool = Some(p);
    }
    let failed = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..w.setup.clients)
        .map(|i| tokio::spawn(client(w.clone(), mode, i, start, failed.clone())))
        .collect();
    // Halfway, web2 dies; its record goes a little later.
    let died_at = w.setup.duration / 2;
    tokio::time::sleep_until((start + died_at).into()).await;
    webs[VICTIM] = None;
    let died_at = start.elapsed();
    tokio::time::sleep(NOTICED_AFTER).await;
    zone_now.reload(authority(&w, &[0, 2], &rec)?);
    for t in tasks {
        let _ = t.await;
    }
    drop((auth, resolvers, lb, webs));
    let lb_said = pool.map(|p| {
        let victim = w.webs[VICTIM].to_string();
        // Attempts the balancer sent to the dead server that failed.
        let failed = collector
            .snapshot()
            .iter()
            .filter(|s| matches!(&s.event, weblab_trace::Event::ProxyForward { upstream, status, .. } if upstream.contains(&victim) && status >= &500))
            .count();
        let status = p.status();
        let web2 = &status.backends[VICTIM];
        let mut said = format!("the balancer saw {failed} attempt(s) to web2 fail");
        if web2.health == "down" {
            said.push_str(&format!(" and marked it down ({})", web2.last_reason));
        }
        said
    });
    let served = std::mem::take(&mut *served.lock().unwrap_or_else(|p| p.into_inner()));
    let failed = std::mem::take(&mut *failed.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Run {
        mode,
        served,
        failed,
        died_at,
        lb_said,
    })
}

/// What the three runs counted, in the order cached DNS, uncached DNS,
/// load balancer; and the report for a person.
pub struct Outcome {
    pub report: String,
    /// Requests the clients saw fail, per run.
    pub failed: Vec<usize>,
    /// How long after web2's death the last request failed, per run.
    pub last_failure: Vec<Option<Duration>>,
}

/// Runs the three modes one after another.
pub async fn run(setup: Setup, ports: Ports) -> Result<Outcome> {
    setup.check()?;
    let b = setup.block;
    let w = Arc::new(World {
        webs: (1..=SERVERS as u8)
            .map(|i| SocketAddr::new(host(b, 4, i), ports.http))
            .collect(),
        auth: SocketAddr::new(host(b, 2, 1), ports.dns),
        resolvers: (1..=setup.resolvers as u8)
            .map(|i| SocketAddr::new(host(b, 1, i), ports.dns))
            .collect(),
        lb: SocketAddr::new(host(b, 3, 1), ports.http),
        name: hickory_proto::rr::Name::from_ascii("shop.test.")?,
        setup,
        ports,
    });
    let mut runs = Vec::new();
    for mode in [Mode::Cached, Mode::Uncached, Mode::Balancer] {
        runs.push(run_once(w.clone(), mode).await?);
    }
    if let Some(path) = &w.setup.svg {
        svg(path, &w.setup, &runs)?;
    }
    Ok(Outcome {
        report: report(&w, &runs),
        failed: runs.iter().map(|r| r.failed.len()).collect(),
        last_failure: runs
            .iter()
            .map(|r| {
                r.failed
                    .iter()
                    .filter(|t| **t >= r.died_at)
                    .max()
                    .map(|t| *t - r.died_at)
            })
            .collect(),
    })
}

fn sparkline(counts: &[usize], max: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    counts
        .iter()
        .map(|&c| match c {
            0 => ' ',
            c => BARS[((c * 8).div_ceil(max.max(1))).clamp(1, 8) - 1],
        })
        .collect()
}

fn buckets(times: impl Iterator<Item = Duration>, n: usize) -> Vec<usize> {
    let mut out = vec![0; n];
    for t in times {
        let i = (t.as_nanos() / BUCKET.as_nanos()) as usize;
        if let Some(c) = out.get_mut(i) {
            *c += 1;
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn report(w: &World, runs: &[Run]) -> String {
    let s = &w.setup;
    let n = s.duration.as_nanos().div_ceil(BUCKET.as_nanos()) as usize;
    let busy = s.clients.div_ceil(4);
    let mut out = format!(
        "DNS load balancing vs a load balancer (C11-C13), {} s per run.\n\
         {} clients ({busy} busy: a request every {} ms; the rest every {} ms), 3 web servers\n\
         named shop.test: {}, {}, {}.\n\
         web2 dies at half time; its record leaves the zone {} ms later.\n",
        s.duration.as_secs(),
        s.clients,
        BUSY_GAP.as_millis(),
        LIGHT_GAP.as_millis(),
        w.webs[0].ip(),
        w.webs[1].ip(),
        w.webs[2].ip(),
        NOTICED_AFTER.as_millis(),
    );
    out.push_str(&format!(
        "\n{:<20} {:>9} {:>9} {:>9} {:>7} {:>13}\n",
        "run", "web1", "web2", "web3", "failed", "last failure"
    ));
    for r in runs {
        let before: Vec<&(usize, Duration)> =
            r.served.iter().filter(|(_, t)| *t < r.died_at).collect();
        let share = |i: usize| {
            let c = before.iter().filter(|(s, _)| *s == i).count();
            format!(
                "{c} {:>3.0}%",
                100.0 * c as f64 / before.len().max(1) as f64
            )
        };
        let last = r
            .failed
            .iter()
            .filter(|t| **t >= r.died_at)
            .max()
            .map_or("none".into(), |t| format!("+{}", secs(*t - r.died_at)));
        let label = match r.mode {
            Mode::Cached => "DNS, cached answers",
            Mode::Uncached => "DNS, no cache",
            Mode::Balancer => "load balancer",
        };
        out.push_str(&format!(
            "{label:<20} {:>9} {:>9} {:>9} {:>7} {:>13}\n",
            share(0),
            share(1),
            share(2),
            r.failed.len(),
            last
        ));
    }
    out.push_str(
        "(web columns: requests each server answered before web2 died, and their share;\n last failure: how long after web2's death the last request failed)\n",
    );
    for r in runs {
        out.push_str(&format!("\n{}\n", r.mode.title(s)));
        let per: Vec<Vec<usize>> = (0..SERVERS)
            .map(|i| buckets(r.served.iter().filter(|(s, _)| *s == i).map(|(_, t)| *t), n))
            .collect();
        let fails = buckets(r.failed.iter().copied(), n);
        let max = per
            .iter()
            .flatten()
            .chain(&fails)
            .copied()
            .max()
            .unwrap_or(1);
        let died = (r.died_at.as_nanos() / BUCKET.as_nanos()) as usize;
        out.push_str(&format!(
            "  {:<7}|{}\n",
            "",
            (0..n)
                .map(|i| if i == died { '↓' } else { ' ' })
                .collect::<String>()
        ));
        for (i, counts) in per.iter().enumerate() {
            out.push_str(&format!(
                "  web{:<4}|{}| {}\n",
                i + 1,
                sparkline(counts, max),
                counts.iter().sum::<usize>()
            ));
        }
        out.push_str(&format!(
            "  {:<7}|{}| {}\n",
            "failed",
            sparkline(&fails, max),
            r.failed.len()
        ));
    }
    out.push_str(&format!(
        "\n(each column is {} ms; ↓ marks web2's death; bar height: requests in that column)\n\nWhat this run showed:\n",
        BUCKET.as_millis()
    ));
    let ttl = s.ttl;
    for r in runs {
        let after: Vec<Duration> = r
            .failed
            .iter()
            .filter(|t| **t >= r.died_at)
            .map(|t| *t - r.died_at)
            .collect();
        let last = after.iter().max().copied();
        let line = match (r.mode, last) {
            (Mode::Cached, Some(l)) => format!(
                "- cached DNS: {} requests failed after web2 died, the last {} after its death, {} after its record left the zone: copies of the old answer lived on in resolvers and clients (each keeps it at most {ttl} s)",
                after.len(),
                secs(l),
                secs(l.saturating_sub(NOTICED_AFTER))
            ),
            (Mode::Uncached, Some(l)) => format!(
                "- DNS without caches: {} requests failed, the last {} after the death: every request asked again, so the record's removal ({} ms) ended it",
                after.len(),
                secs(l),
                NOTICED_AFTER.as_millis()
            ),
            (Mode::Balancer, Some(l)) => format!(
                "- load balancer: {} requests failed, the last {} after the death; {}",
                after.len(),
                secs(l),
                r.lb_said.clone().unwrap_or_default()
            ),
            (Mode::Balancer, None) => format!(
                "- load balancer: no request failed; {}",
                r.lb_said.clone().unwrap_or_default()
            ),
            (_, None) => format!("- {}: no request failed", r.mode.title(s)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let shares: Vec<String> = runs
        .iter()
        .map(|r| {
            let before: Vec<usize> = r
                .served
                .iter()
                .filter(|(_, t)| *t < r.died_at)
                .map(|(i, _)| *i)
                .collect();
            let most = (0..SERVERS)
                .map(|i| before.iter().filter(|s| **s == i).count())
                .max()
                .unwrap_or(0);
            format!("{:.0}%", 100.0 * most as f64 / before.len().max(1) as f64)
        })
        .collect();
    out.push_str(&format!(
        "- the busiest server's share before the death: {} cached, {} without caches, {} behind the balancer (even is 33%):\n  \
         a DNS answer names servers, not load, and a cached answer keeps a busy client on one server for the TTL\n",
        shares[0], shares[1], shares[2]
    ));
    out
}

fn svg(path: &PathBuf, s: &Setup, runs: &[Run]) -> Result<()> {
    use plotters::prelude::*;
    let e = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    let n = s.duration.as_nanos().div_ceil(BUCKET.as_nanos()) as usize;
    let root = SVGBackend::new(path, (900, 260 * runs.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let panels = root.split_evenly((runs.len(), 1));
    let colors = [&BLUE, &RED, &GREEN];
    for (panel, r) in panels.iter().zip(runs) {
        let mut series: HashMap<String, Vec<usize>> = HashMap::new();
        for i in 0..SERVERS {
            series.insert(
                format!("web{}", i + 1),
                buckets(r.served.iter().filter(|(x, _)| *x == i).map(|(_, t)| *t), n),
            );
        }
        series.insert("failed".into(), buckets(r.failed.iter().copied(), n));
        let max = series.values().flatten().copied().max().unwrap_or(1) as f64 * 1.1;
        let t_max = s.duration.as_secs_f64();
        let mut chart = ChartBuilder::on(panel)
            .caption(r.mode.title(s), ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..t_max, 0.0..max)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc(format!("requests / {} ms", BUCKET.as_millis()))
            .draw()
            .map_err(|x| e(&x))?;
        let mut names: Vec<&String> = series.keys().collect();
        names.sort();
        for (k, name) in names.into_iter().enumerate() {
            let color = if name == "failed" {
                &BLACK
            } else {
                colors[k % colors.len()]
            };
            let points = series[name]
                .iter()
                .enumerate()
                .map(|(i, c)| ((i as f64 + 0.5) * BUCKET.as_secs_f64(), *c as f64));
            chart
                .draw_series(LineSeries::new(points, color))
                .map_err(|x| e(&x))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        let died = r.died_at.as_secs_f64();
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(died, 0.0), (died, max)],
                MAGENTA,
            )))
            .map_err(|x| e(&x))?;
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
