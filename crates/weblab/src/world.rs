//! Booting a world: every host's servers on its own loopback address, on
//! real sockets, all recording into one collector.
//!
//! A world is a list of [`Role`]s (one service on one host); [`Boot`]
//! starts any of them from what they share (ports, CA, document root,
//! database, collector). `RunningWorld` starts them all for a tour or a
//! test; `weblab up` and `weblab serve` start them under
//! [`crate::supervise`], which restarts a role that dies.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use tokio::net::TcpListener;
use weblab_app::{AppState, Db};
use weblab_browser::{Browser, BrowserConfig};
use weblab_dns::{LookupChain, OsCache};
use weblab_edge::LocalCa;
use weblab_edge::tls::CA_NAME;
use weblab_server::ServerHandle;
use weblab_trace::{Collector, Detail, Recorder};

use crate::config::{PortMode, World};
use crate::services::{Needs, REGISTRY, Service};

/// The ports every host of the world uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub dns: u16,
    pub http: u16,
    pub https: u16,
    /// The proxies' status pages (`/_weblab/status`); unprivileged, so
    /// the same in every mode (HAProxy's customary stats port).
    pub admin: u16,
}

impl Ports {
    pub const STANDARD: Ports = Ports {
        dns: 53,
        http: 80,
        https: 443,
        admin: 8404,
    };

    pub fn is_standard(&self) -> bool {
        *self == Ports::STANDARD
    }
}

/// Standard ports when this process may bind them (root or
/// CAP_NET_BIND_SERVICE), else each plus the configured offset.
pub fn choose_ports(world: &World) -> Ports {
    let offset = |o: u16| Ports {
        dns: 53 + o,
        http: 80 + o,
        https: 443 + o,
        admin: 8404,
    };
    match world.ports.mode {
        PortMode::Standard => Ports::STANDARD,
        PortMode::Offset => offset(world.ports.offset),
        PortMode::Auto => {
            // Probe on the client's address, where no server listens.
            let probe = SocketAddr::new(IpAddr::V4(world.addr(&world.client.host)), 53);
            match std::net::UdpSocket::bind(probe) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    offset(world.ports.offset)
                }
                _ => Ports::STANDARD,
            }
        }
    }
}

/// The default data directory: `$WEBLAB_DATA`, else the XDG data home.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WEBLAB_DATA") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("weblab");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/weblab"),
        None => PathBuf::from(".weblab"),
    }
}

/// The static files the web servers serve, embedded.
const ASSETS: [(&str, &[u8]); 4] = [
    ("static/app.css", include_bytes!("../assets/static/app.css")),
    ("static/app.js", include_bytes!("../assets/static/app.js")),
    (
        "static/logo.png",
        include_bytes!("../assets/static/logo.png"),
    ),
    // A page of twenty pictures (HTTP/2 vs HTTP/1.1 page loads, C26).
    (
        "static/gallery.html",
        include_bytes!("../assets/static/gallery.html"),
    ),
];

/// The gallery's pictures: the logo under twenty names, each its own
/// request.
const GALLERY_PICTURES: usize = 20;

/// Writes the document root into `data_dir/www` (only files that differ).
pub fn write_document_root(data_dir: &Path) -> Result<PathBuf> {
    let root = data_dir.join("www");
    let logo: &[u8] = ASSETS[2].1;
    let pictures: Vec<(String, &[u8])> = (1..=GALLERY_PICTURES)
        .map(|i| (format!("static/gallery/{i}.png"), logo))
        .collect();
    let all = ASSETS
        .iter()
        .map(|(rel, bytes)| (rel.to_string(), *bytes))
        .chain(pictures);
    for (rel, bytes) in all {
        let path = root.join(&rel);
        if std::fs::read(&path).ok().as_deref() == Some(bytes) {
            continue;
        }
        std::fs::create_dir_all(path.parent().unwrap_or(&root))
            .with_context(|| format!("create {}", root.display()))?;
        std::fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(root)
}

/// One service on one host of the world.
#[derive(Clone)]
pub struct Role {
    pub service: &'static dyn Service,
    pub host: String,
}

impl PartialEq for Role {
    fn eq(&self, other: &Role) -> bool {
        self.service.name() == other.service.name() && self.host == other.host
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.host, self.service.name())
    }
}

/// Every role of `world`, in the order they start: the registry's order,
/// back to front, so a proxy never starts before what it proxies to.
pub fn roles(world: &World) -> Vec<Role> {
    REGISTRY
        .iter()
        .flat_map(|service| {
            service.hosts(world).into_iter().map(|host| Role {
                service: *service,
                host,
            })
        })
        .collect()
}

/// One role, up: its listeners, and the application's state when it is
/// an application server.
pub struct Started {
    pub servers: Vec<ServerHandle>,
    pub app: Option<Arc<AppState>>,
}

impl From<Vec<ServerHandle>> for Started {
    fn from(servers: Vec<ServerHandle>) -> Started {
        Started { servers, app: None }
    }
}

/// What the roles of one process share, prepared once.
#[derive(Clone)]
pub struct Boot {
    pub world: Arc<World>,
    pub ports: Ports,
    pub data_dir: PathBuf,
    pub collector: Collector,
    ca: Option<Arc<LocalCa>>,
    root: Option<PathBuf>,
    db: Option<Db>,
    /// Start-up work roles run on their own (the first round of health
    /// checks, the first read of the web servers' load), each telling
    /// when it is over.
    starting: Arc<Mutex<Vec<tokio::sync::oneshot::Receiver<()>>>>,
}

/// The longest a booted world is waited for to finish its start-up work.
const SETTLE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(2);

impl Boot {
    /// Prepares what `roles` need (see [`Needs`]): the CA, the document
    /// root, the database.
    pub async fn new(
        world: World,
        data_dir: PathBuf,
        collector: Collector,
        roles: &[Role],
    ) -> Result<Boot> {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create data directory {}", data_dir.display()))?;
        let needs = roles
            .iter()
            .fold(Needs::default(), |n, r| n.and(r.service.needs()));
        let ca = match needs.ca {
            true => Some(Arc::new(LocalCa::load_or_create(&data_dir)?)),
            false => None,
        };
        let root = match needs.document_root {
            true => Some(write_document_root(&data_dir)?),
            false => None,
        };
        let db = match needs.database {
            true => {
                let db = Db::connect(&database_url(&world, &data_dir)).await?;
                db.migrate().await?;
                Some(db)
            }
            false => None,
        };
        Ok(Boot {
            ports: choose_ports(&world),
            world: Arc::new(world),
            data_dir,
            collector,
            ca,
            root,
            db,
            starting: Arc::default(),
        })
    }

    /// Notes start-up work a role began, which tells `done` when over.
    pub fn starting(&self, done: tokio::sync::oneshot::Receiver<()>) {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(done);
    }

    /// Waits until the start-up work noted so far is over (or has gone
    /// away), for at most [`SETTLE_AT_MOST`].
    pub async fn settled(&self) {
        let all = std::mem::take(&mut *self.starting.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = tokio::time::timeout(SETTLE_AT_MOST, futures::future::join_all(all)).await;
    }

    /// Starts `role` on its host's address.
    pub async fn start(&self, role: &Role) -> Result<Started> {
        role.service.start(self, &role.host).await
    }

    /// The world's CA (for a service whose [`Needs`] asked for it).
    pub fn ca(&self) -> Result<&LocalCa> {
        self.ca.as_deref().context("no CA prepared")
    }

    /// The document root (for a service whose [`Needs`] asked for it).
    pub fn document_root(&self) -> Result<PathBuf> {
        self.root.clone().context("no document root prepared")
    }

    /// The database (for a service whose [`Needs`] asked for it).
    pub fn database(&self) -> Result<Db> {
        self.db.clone().context("no database prepared")
    }

    /// A recorder for `component` on `host`.
    pub fn recorder(&self, host: &str, component: &str) -> Recorder {
        let ip = self.world.addr(host);
        Recorder::new(self.collector.clone(), host, &ip.to_string(), component)
    }
}

pub(crate) fn sock(ip: std::net::Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// Listeners on every address of `host`: its IPv4 one, and its IPv6 one
/// when it has `addr6`.
pub(crate) async fn listen_all(world: &World, host: &str, port: u16) -> Result<Vec<TcpListener>> {
    let mut all = Vec::new();
    for ip in world.addrs(host) {
        all.push(listen(SocketAddr::new(ip, port), host).await?);
    }
    Ok(all)
}

pub(crate) async fn listen(addr: SocketAddr, host: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("host {host}: cannot listen on {addr} (is another weblab world using these addresses? try --block N)")
    })
}

/// The database URL with `{data}` filled in.
pub fn database_url(world: &World, data_dir: &Path) -> String {
    world
        .database
        .url
        .replace("{data}", &data_dir.display().to_string())
}

/// A world that is up; everything stops when it is dropped.
pub struct RunningWorld {
    pub world: World,
    pub ports: Ports,
    pub data_dir: PathBuf,
    pub collector: Collector,
    /// The client host's OS resolver cache, shared by its programs.
    pub os_cache: OsCache,
    /// The application servers' state (access logs), by host.
    pub apps: Vec<(String, Arc<AppState>)>,
    /// Every role's listeners, in start order.
    pub servers: Vec<(Role, Vec<ServerHandle>)>,
}

impl RunningWorld {
    /// Boots every host of `world`.
    pub async fn start(world: World, data_dir: PathBuf, detail: Detail) -> Result<RunningWorld> {
        Self::start_with(world, data_dir, Collector::new(detail)).await
    }

    /// Boots every host of `world`, recording into `collector`.
    pub async fn start_with(
        world: World,
        data_dir: PathBuf,
        collector: Collector,
    ) -> Result<RunningWorld> {
        if world.web.is_empty() || world.apps.is_empty() {
            bail!("the world needs at least one web server and one application server");
        }
        let all = roles(&world);
        let boot = Boot::new(world.clone(), data_dir.clone(), collector, &all).await?;
        let mut servers = Vec::new();
        let mut apps = Vec::new();
        for role in all {
            let started = boot.start(&role).await?;
            if let Some(app) = started.app {
                apps.push((role.host.clone(), app));
            }
            servers.push((role, started.servers));
        }
        // Roles start work of their own at boot: the first round of health
        // checks, the DNS policies' first read of the web servers' load.
        // It runs before anyone is handed the world, so the first
        // request's timings are its own: on one CPU the tour's first DNS
        // lookup took 1.1-2.2 ms straight after boot, sharing the CPU with
        // that work, and 0.46-0.59 ms once it was over.
        boot.settled().await;
        Ok(RunningWorld {
            world,
            ports: boot.ports,
            data_dir,
            collector: boot.collector,
            os_cache: Arc::new(Mutex::new(Default::default())),
            apps,
            servers,
        })
    }

    /// Closes every role's listeners; connections finish what they
    /// started (the end of an experiment's world).
    pub fn stop_accepting(&self) {
        for (_, handles) in &self.servers {
            for h in handles {
                h.stop_accepting();
            }
        }
    }

    /// The CA certificate clients should trust.
    pub fn ca_path(&self) -> PathBuf {
        LocalCa::cert_path(&self.data_dir)
    }

    /// The address of a host.
    pub fn addr(&self, host: &str) -> IpAddr {
        IpAddr::V4(self.world.addr(host))
    }

    /// A fresh browser on the default client host (its own browser cache
    /// and connections; the OS cache is the host's).
    pub fn browser(&self, http1_only: bool) -> Result<Browser> {
        self.browser_on(&self.world.client, http1_only)
    }

    /// A fresh browser on `client`'s host.
    pub fn browser_on(
        &self,
        client: &crate::config::ClientConfig,
        http1_only: bool,
    ) -> Result<Browser> {
        client_browser(
            &self.world,
            client,
            self.ports,
            &self.data_dir,
            &self.collector,
            self.os_cache.clone(),
            http1_only,
        )
    }
}

/// A browser on `client`'s host, trusting the CA in `data_dir` and
/// recording into `collector`.
pub fn client_browser(
    world: &World,
    client: &crate::config::ClientConfig,
    ports: Ports,
    data_dir: &Path,
    collector: &Collector,
    os_cache: OsCache,
    http1_only: bool,
) -> Result<Browser> {
    let ip = IpAddr::V4(world.addr(&client.host));
    let ip_text = ip.to_string();
    let resolver = SocketAddr::new(IpAddr::V4(world.addr(&client.resolver)), ports.dns);
    let stub = Recorder::new(collector.clone(), &client.host, &ip_text, "stub resolver");
    let ip6 = world.addr6(&client.host);
    let lookup = LookupChain::new(client.hosts_file.clone(), os_cache, resolver, ip, stub)
        .asking_aaaa(ip6.is_some());
    let port_map = if ports.is_standard() {
        vec![]
    } else {
        vec![(443, ports.https), (80, ports.http)]
    };
    let ca_path = LocalCa::cert_path(data_dir);
    let ca_pem = std::fs::read(&ca_path).with_context(|| format!("read {}", ca_path.display()))?;
    let cfg = BrowserConfig {
        bind: ip,
        bind6: ip6,
        ca_pem,
        ca_label: CA_NAME.into(),
        port_map,
        http1_only,
        user_agent: format!("weblab/{} (like Chrome)", env!("CARGO_PKG_VERSION")),
        // Per client host: HSTS is what this browser learnt (C33).
        hsts_file: Some(data_dir.join(format!("hsts-{}.json", client.host))),
    };
    let rec = Recorder::new(collector.clone(), &client.host, &ip_text, "browser");
    Ok(Browser::new(cfg, lookup, rec)?)
}
