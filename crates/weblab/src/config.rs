//! The world file: one TOML document describing every host, its address and
//! what it runs. Parsed into [`World`], with every error naming the file,
//! the line and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use weblab_dns::{HostsFile, Zone};

/// The default world, embedded in the binary.
pub const DEFAULT_WORLD: &str = include_str!("../assets/world.toml");

/// A config error: `file:line:column: message`.
#[derive(Debug)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorld {
    name: String,
    #[serde(default)]
    ports: PortsConfig,
    /// The original form: `name = "addr"`, services given by the sections.
    #[serde(default)]
    hosts: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// The current form: one `[[host]]` per host, with its services.
    #[serde(default)]
    host: Vec<RawHost>,
    #[serde(default)]
    network: Option<Spanned<String>>,
    client: RawClients,
    resolver: RawResolver,
    #[serde(default)]
    dns: Vec<RawDns>,
    lb: RawLb,
    #[serde(default)]
    web: Vec<RawWeb>,
    #[serde(default)]
    app: Vec<RawApp>,
    #[serde(default)]
    cache: Vec<RawCache>,
    #[serde(default)]
    idp: Option<RawIdp>,
    database: DatabaseConfig,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    trace: RawTrace,
}

/// `[trace]`: where the world's spans are collected.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    collector: Option<Spanned<String>>,
}

/// `[limits]`: the bounds every server of the world keeps (all optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    grace: Option<Spanned<String>>,
    max_connections: Option<u32>,
    head_timeout: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    max_body: Option<Spanned<String>>,
    upstream_timeout: Option<Spanned<String>>,
    dns_max_in_flight: Option<u32>,
    dns_tcp_timeout: Option<Spanned<String>>,
}

type Name = Spanned<String>;

/// `[[host]]`: a host, its address and the services it runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Name,
    addr: Spanned<String>,
    /// An IPv6 address besides `addr` (only `::1` is loopback in IPv6).
    addr6: Option<Spanned<String>>,
    services: Option<Spanned<Vec<String>>>,
}

/// Services a host may list besides those of the registry.
const CLIENT_SERVICE: &str = "client";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    host: Name,
    resolver: Name,
    #[serde(default)]
    hosts_file: Option<Spanned<String>>,
}

/// `[client]` (one) or `[[client]]` (several, each on its own host).
enum RawClients {
    One(RawClient),
    Many(Vec<RawClient>),
}

// By hand rather than `#[serde(untagged)]`: an untagged enum buffers its
// input and loses the positions that error messages name.
impl<'de> Deserialize<'de> for RawClients {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Clients;
        impl<'de> serde::de::Visitor<'de> for Clients {
            type Value = RawClients;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [client] table or [[client]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawClients, A::Error> {
                RawClient::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawClients::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RawClients, A::Error> {
                Vec::<RawClient>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(RawClients::Many)
            }
        }
        d.deserialize_any(Clients)
    }
}

impl RawClients {
    fn all(&self) -> &[RawClient] {
        match self {
            RawClients::One(c) => std::slice::from_ref(c),
            RawClients::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResolver {
    host: Name,
    root_hints: Vec<Name>,
    /// QNAME minimisation (RFC 9156); off unless asked for.
    #[serde(default)]
    qname_minimisation: bool,
    /// Who may ask for recursion (CIDRs); loopback when not given.
    allow: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    host: Name,
    role: String,
    zones: Vec<RawZone>,
    /// Answer policies for some names (C12); round robin otherwise.
    #[serde(default)]
    policy: Vec<RawPolicy>,
}

/// `[[dns.policy]]`: how one name's addresses are handed out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Spanned<String>,
    /// Host name (of the world) -> weight; the host's address is the
    /// record's.
    weights: Option<Spanned<BTreeMap<String, u32>>>,
    /// Hosts whose status pages report their open connections; the
    /// least loaded host's address goes first.
    least_connections: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    origin: Spanned<String>,
    /// The zone's records in master-file format, inline...
    records: Option<Spanned<String>>,
    /// ...or in a master file (RFC 1035 §5), relative to the world file.
    file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLb {
    host: Name,
    algorithm: Spanned<String>,
    backends: Vec<Name>,
    #[serde(default)]
    weights: Vec<u32>,
    server_names: Vec<String>,
    health: Option<RawHealth>,
    firewall: Option<RawFirewall>,
}

/// `[lb.firewall]`: what the load balancer lets in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFirewall {
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    /// Requests per second per client.
    rate: Option<Spanned<f64>>,
    burst: Option<u32>,
    max_connections_per_client: Option<u32>,
}

/// `[lb.health]`: the load balancer's active checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    /// Time between checks, or "off" (then only failed requests count).
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    rise: Option<u32>,
    fall: Option<u32>,
    path: Option<Spanned<String>>,
    expect: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    host: Name,
    apps: Vec<Name>,
    /// Virtual hosts; without any, one default site: `/static/` from the
    /// document root, everything else to `apps`.
    #[serde(default)]
    site: Vec<RawSite>,
}

/// `[[cache]]`: a shared HTTP cache in front of web servers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    host: Name,
    upstreams: Vec<Name>,
    max_bytes: Option<Spanned<String>>,
}

/// `[idp]`: the identity provider (C37).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdp {
    host: Name,
    /// Its name in URLs and on its certificate (`id.test`).
    server_name: Spanned<String>,
}

/// `[[web.site]]`: a virtual host of a web server.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    /// Host names it answers; none for the default site.
    #[serde(default)]
    server_names: Vec<String>,
    location: Vec<RawLocation>,
}

/// `[[web.site.location]]`: `prefix` or `exact`, then `root` or `proxy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocation {
    prefix: Option<Spanned<String>>,
    exact: Option<Spanned<String>>,
    /// A directory, relative to the document root unless absolute; the
    /// whole URL path is looked up under it (nginx's `root`).
    root: Option<String>,
    /// Application servers to proxy to, round robin.
    proxy: Option<Vec<Name>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    host: Name,
}

/// How ports are chosen.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PortMode {
    Auto,
    Standard,
    Offset,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsConfig {
    pub mode: PortMode,
    pub offset: u16,
}

impl Default for PortsConfig {
    fn default() -> Self {
        PortsConfig {
            mode: PortMode::Auto,
            offset: 10000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `{data}` is replaced by the data directory.
    pub url: String,
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// The client host.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub host: String,
    pub resolver: String,
    pub hosts_file: HostsFile,
}

/// One DNS server host and its zones.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    pub host: String,
    pub role: String,
    pub zones: Vec<Zone>,
    /// Names with an answer policy (C12).
    pub policies: Vec<(String, PolicyConfig)>,
}

/// How one name's addresses are ordered (C12).
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyConfig {
    /// Each address's weight.
    Weighted(Vec<(Ipv4Addr, u32)>),
    /// The addresses of hosts that publish their open connections.
    LeastConnections(Vec<Ipv4Addr>),
}

/// The load balancer.
#[derive(Clone, Debug)]
pub struct LbConfig {
    pub host: String,
    pub algorithm: String,
    pub backends: Vec<String>,
    pub weights: Vec<u32>,
    pub server_names: Vec<String>,
    pub health: weblab_edge::Checks,
    pub firewall: Option<weblab_edge::firewall::Rules>,
}

/// A web server.
#[derive(Clone, Debug)]
pub struct WebConfig {
    pub host: String,
    pub apps: Vec<String>,
    /// Virtual hosts; empty means the default site.
    pub sites: Vec<SiteConfig>,
}

/// A shared HTTP cache.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub host: String,
    pub upstreams: Vec<String>,
    pub max_bytes: usize,
}

/// The identity provider.
#[derive(Clone, Debug)]
pub struct IdpConfig {
    pub host: String,
    pub server_name: String,
}

/// A virtual host of a web server.
#[derive(Clone, Debug)]
pub struct SiteConfig {
    pub server_names: Vec<String>,
    pub locations: Vec<LocationConfig>,
}

/// A location of a site.
#[derive(Clone, Debug)]
pub struct LocationConfig {
    pub exact: bool,
    pub path: String,
    pub serve: LocationServe,
}

/// What a location does.
#[derive(Clone, Debug)]
pub enum LocationServe {
    Root(std::path::PathBuf),
    Proxy(Vec<String>),
}

/// The bounds of the world's servers, from `[limits]`.
#[derive(Clone, Copy, Debug)]
pub struct LimitsConfig {
    /// How long a stopping server lets in-flight requests finish.
    pub grace: Duration,
    /// Every HTTP listener (load balancer, web and application servers).
    pub http: weblab_server::Limits,
    /// Every DNS server.
    pub dns: weblab_dns::DnsLimits,
    /// How long the load balancer and the web servers wait for a
    /// backend's answer head (then 504).
    pub upstream: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            grace: Duration::from_secs(5),
            http: weblab_server::Limits::default(),
            dns: weblab_dns::DnsLimits::default(),
            upstream: weblab_edge::pool::Timeouts::default().response,
        }
    }
}

/// A checked world.
#[derive(Clone, Debug)]
pub struct World {
    pub name: String,
    pub ports: PortsConfig,
    pub hosts: BTreeMap<String, Ipv4Addr>,
    /// Hosts that also have an IPv6 address (`addr6`): their services
    /// listen on it too, and a client with one asks for AAAA records.
    pub hosts6: BTreeMap<String, Ipv6Addr>,
    /// Every client host (`[[client]]`); the first is the default one.
    pub clients: Vec<ClientConfig>,
    /// What each host runs, by service name (`client`, `resolver`, `dns`,
    /// `lb`, `web`, `app`).
    pub services: BTreeMap<String, Vec<String>>,
    pub client: ClientConfig,
    pub resolver_host: String,
    pub root_hints: Vec<String>,
    /// The resolver tells each server only what it needs (RFC 9156).
    pub qname_minimisation: bool,
    /// Who may ask the resolver for recursion.
    pub recursion_allow: Vec<ipnet::IpNet>,
    pub dns: Vec<DnsConfig>,
    pub lb: LbConfig,
    pub web: Vec<WebConfig>,
    /// Shared HTTP caches (`[[cache]]`).
    pub caches: Vec<CacheConfig>,
    /// The identity provider the applications sign people in through.
    pub idp: Option<IdpConfig>,
    pub apps: Vec<String>,
    pub database: DatabaseConfig,
    pub limits: LimitsConfig,
    /// Where `weblab up` / `weblab collect` receive OTLP/HTTP and serve the
    /// trace API (`tour --attach`, `trace list`, `trace show` find it here).
    pub collector: SocketAddr,
}

struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let mut start = span.start.min(self.text.len());
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let upto = &self.text[..start];
        let line = upto.matches('\n').count() + 1;
        let column = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError {
            file: self.file.into(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// What each host runs. With `[[host]]`, its `services` list, checked
/// against the sections that configure them (each side must name the
/// other); with the older `[hosts]`, what the sections say.
fn services(
    src: &Source<'_>,
    raw: &RawWorld,
    world: &World,
) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    use crate::services::REGISTRY;
    let mut configured: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &world.clients {
        configured
            .entry(c.host.clone())
            .or_default()
            .push(CLIENT_SERVICE.to_string());
    }
    for service in REGISTRY {
        for host in service.hosts(world) {
            configured
                .entry(host)
                .or_default()
                .push(service.name().to_string());
        }
    }
    if raw.host.is_empty() {
        return Ok(configured);
    }
    let known: Vec<&str> = std::iter::once(CLIENT_SERVICE)
        .chain(REGISTRY.iter().map(|s| s.name()))
        .collect();
    let mut declared = BTreeMap::new();
    for h in &raw.host {
        let name = h.name.get_ref();
        let list = h.services.as_ref();
        let span = list.map_or(h.name.span(), |l| l.span());
        let list: Vec<String> = list.map(|l| l.get_ref().clone()).unwrap_or_default();
        for s in &list {
            if !known.contains(&s.as_str()) {
                return Err(src.error(
                    span,
                    format!(
                        "host {name}: unknown service {s:?} (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        let want = configured.get(name).cloned().unwrap_or_default();
        for s in &want {
            if !list.contains(s) {
                return Err(src.error(
                    span,
                    format!("host {name}: the world's sections run {s:?} on it, but its services do not list it"),
                ));
            }
        }
        for s in &list {
            if !want.contains(s) {
                return Err(src.error(
                    span,
                    format!(
                        "host {name}: lists {s:?}, but no section configures {s:?} on this host"
                    ),
                ));
            }
        }
        declared.insert(name.clone(), list);
    }
    Ok(declared)
}

/// `[trace] collector`, by default port 4318 (OTLP/HTTP) on 127.X.0.1 of
/// the client's block.
fn collector_addr(
    src: &Source<'_>,
    raw: &RawTrace,
    hosts: &BTreeMap<String, Ipv4Addr>,
    client: &str,
) -> Result<SocketAddr, ConfigError> {
    match &raw.collector {
        Some(v) => {
            let addr: SocketAddr = v.get_ref().parse().map_err(|_| {
                src.error(
                    v.span(),
                    format!("trace.collector: {:?} is not an address:port", v.get_ref()),
                )
            })?;
            if !addr.ip().is_loopback() {
                return Err(src.error(
                    v.span(),
                    "trace.collector: worlds live on loopback; use a 127.x.y.z address",
                ));
            }
            Ok(addr)
        }
        None => {
            let block = hosts.get(client).map_or(10, |ip| ip.octets()[1]);
            Ok(SocketAddr::from((Ipv4Addr::new(127, block, 0, 1), 4318)))
        }
    }
}

/// A `[[dns.zones]]` entry: its inline records or its master file. An
/// error in the records names their line: in the world file for inline
/// records, in the zone file for a file.
fn zone(src: &Source<'_>, z: &RawZone) -> Result<Zone, ConfigError> {
    let origin = z.origin.get_ref();
    match (&z.records, &z.file) {
        (Some(records), None) => Zone::parse(records.get_ref(), origin).map_err(|e| {
            let mut err = src.error(records.span(), format!("dns.zones.records: {e}"));
            if let Some(n) = e.line() {
                // A newline right after the opening quotes is not part of
                // the string: the records start on the next line.
                let opening = &src.text[records.span().start.min(src.text.len())..];
                let skip = usize::from(opening.starts_with("\"\"\"\n") || opening.starts_with("'''\n"));
                err.line += skip + n - 1;
                err.column = 1;
            }
            err
        }),
        (None, Some(file)) => {
            let base = std::path::Path::new(src.file).parent();
            let path = match base {
                Some(dir) if !src.file.starts_with('<') => dir.join(file.get_ref()),
                _ => std::path::PathBuf::from(file.get_ref()),
            };
            // Bounded: a zone file is text, not a device or a stream.
            const MAX_ZONE_FILE: u64 = 64 << 20;
            let read = || -> std::io::Result<String> {
                use std::io::Read as _;
                let mut text = String::new();
                std::fs::File::open(&path)?
                    .take(MAX_ZONE_FILE + 1)
                    .read_to_string(&mut text)?;
                if text.len() as u64 > MAX_ZONE_FILE {
                    return Err(std::io::Error::other("larger than 64 MiB"));
                }
                Ok(text)
            };
            let text = read().map_err(|e| {
                src.error(
                    file.span(),
                    format!("dns.zones.file: cannot read {}: {e}", path.display()),
                )
            })?;
            Zone::parse(&text, origin).map_err(|e| ConfigError {
                file: path.display().to_string(),
                line: e.line().unwrap_or(1),
                column: 1,
                message: e.to_string(),
            })
        }
        _ => Err(src.error(
            z.origin.span(),
            "dns.zones: give the zone's records inline (records = ...) or a master file (file = ...), one of the two",
        )),
    }
}

/// Networks from a list of CIDRs or bare addresses (a network of one);
/// an error names `field` and the entry.
fn nets(
    src: &Source<'_>,
    field: &str,
    list: &[Spanned<String>],
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .map(|n| {
            let text = n.get_ref();
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    src.error(
                        n.span(),
                        format!("{field}: {text:?} is not an address or a CIDR like 127.0.0.0/8"),
                    )
                })
        })
        .collect()
}

/// Checks `[lb.firewall]`.
fn firewall(
    src: &Source<'_>,
    raw: &RawFirewall,
) -> Result<weblab_edge::firewall::Rules, ConfigError> {
    let nets =
        |field: &str, list: &[Spanned<String>]| nets(src, &format!("lb.firewall.{field}"), list);
    let rate = match &raw.rate {
        Some(r) if !(*r.get_ref() > 0.0 && r.get_ref().is_finite()) => {
            return Err(src.error(
                r.span(),
                "lb.firewall.rate: requests per second, more than 0",
            ));
        }
        Some(r) => Some(*r.get_ref()),
        None => None,
    };
    Ok(weblab_edge::firewall::Rules {
        deny: nets("deny", &raw.deny)?,
        allow: nets("allow", &raw.allow)?,
        rate,
        burst: raw
            .burst
            .unwrap_or_else(|| rate.map_or(1, |r| (r * 2.0).ceil() as u32))
            .max(1),
        max_connections_per_client: raw.max_connections_per_client,
    })
}

/// The load balancer's checks when the world file says nothing: a file
/// every web server serves by itself, so a check tests the web tier and
/// not the applications behind it.
fn default_checks() -> weblab_edge::Checks {
    weblab_edge::Checks {
        path: "/static/app.css".into(),
        ..weblab_edge::Checks::default()
    }
}

/// Checks `[lb.health]`, filling in the defaults.
fn health(src: &Source<'_>, raw: &RawHealth) -> Result<weblab_edge::Checks, ConfigError> {
    let mut c = default_checks();
    let duration = |field: &str, v: &Spanned<String>| -> Result<Duration, ConfigError> {
        match crate::units::duration(v.get_ref()) {
            Ok(0) => Err(src.error(v.span(), format!("lb.health.{field}: must be more than 0"))),
            Ok(ns) => Ok(Duration::from_nanos(ns)),
            Err(e) => Err(src.error(v.span(), format!("lb.health.{field}: {e}"))),
        }
    };
    if let Some(v) = &raw.interval {
        c.interval = match v.get_ref().as_str() {
            "off" => None,
            _ => Some(duration("interval", v)?),
        };
    }
    if let Some(v) = &raw.timeout {
        c.timeout = duration("timeout", v)?;
    }
    c.rise = raw.rise.unwrap_or(c.rise).max(1);
    c.fall = raw.fall.unwrap_or(c.fall).max(1);
    if let Some(p) = &raw.path {
        if !p.get_ref().starts_with('/') || p.get_ref().contains(char::is_whitespace) {
            return Err(src.error(p.span(), "lb.health.path: a path starting with /"));
        }
        c.path = p.get_ref().clone();
    }
    if let Some(e) = raw.expect {
        if !(100..600).contains(&e) {
            return Err(src.error(
                raw.path.as_ref().map_or(0..0, |p| p.span()),
                format!("lb.health.expect: {e} is not an HTTP status"),
            ));
        }
        c.expect = Some(e);
    }
    Ok(c)
}

/// Checks `[limits]`, filling in the defaults.
fn limits(src: &Source<'_>, raw: &RawLimits) -> Result<LimitsConfig, ConfigError> {
    let mut l = LimitsConfig::default();
    let duration = |field: &str, v: &Spanned<String>| -> Result<Duration, ConfigError> {
        match crate::units::duration(v.get_ref()) {
            Ok(0) => Err(src.error(v.span(), format!("limits.{field}: must be more than 0"))),
            Ok(ns) => Ok(Duration::from_nanos(ns)),
            Err(e) => Err(src.error(v.span(), format!("limits.{field}: {e}"))),
        }
    };
    if let Some(v) = &raw.grace {
        l.grace = duration("grace", v)?;
    }
    if let Some(v) = &raw.head_timeout {
        l.http.head_timeout = duration("head_timeout", v)?;
    }
    if let Some(v) = &raw.body_timeout {
        l.http.body_timeout = duration("body_timeout", v)?;
    }
    if let Some(v) = &raw.idle_timeout {
        l.http.idle_timeout = duration("idle_timeout", v)?;
    }
    if let Some(v) = &raw.upstream_timeout {
        l.upstream = duration("upstream_timeout", v)?;
    }
    if let Some(v) = &raw.dns_tcp_timeout {
        l.dns.tcp_message = duration("dns_tcp_timeout", v)?;
        l.dns.tcp_idle = l.dns.tcp_idle.max(l.dns.tcp_message);
    }
    if let Some(v) = &raw.max_body {
        l.http.max_body = crate::units::bytes(v.get_ref())
            .map_err(|e| src.error(v.span(), format!("limits.max_body: {e}")))?;
    }
    if let Some(n) = raw.max_connections {
        l.http.max_connections = n.max(1);
    }
    if let Some(n) = raw.dns_max_in_flight {
        l.dns.max_udp_in_flight = n.max(1);
        l.dns.max_tcp_connections = n.max(1);
    }
    // Nothing may stall longer than the stall timeout but a slow upstream.
    l.http.stall_timeout = l.http.stall_timeout.max(l.http.idle_timeout);
    Ok(l)
}

impl World {
    /// The embedded default world.
    pub fn default_world() -> World {
        World::parse("<embedded world.toml>", DEFAULT_WORLD).expect("the embedded world is valid")
    }

    /// Parses and checks a world file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<World, ConfigError> {
        let src = Source { file, text };
        let raw: RawWorld = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            src.error(span, e.message().trim().to_string())
        })?;
        if let Some(n) = &raw.network
            && n.get_ref() != "loopback"
        {
            return Err(src.error(
                n.span(),
                format!(
                    "network: {:?} is not available yet; every host lives on loopback (network = \"loopback\")",
                    n.get_ref()
                ),
            ));
        }
        // Either form of the host list, checked the same way.
        let listed: Vec<(&String, &Spanned<String>)> = match (&raw.hosts, raw.host.is_empty()) {
            (Some(map), true) => map.get_ref().iter().collect(),
            (None, false) => raw
                .host
                .iter()
                .map(|h| (h.name.get_ref(), &h.addr))
                .collect(),
            (Some(map), false) => {
                return Err(src.error(
                    map.span(),
                    "[hosts] and [[host]] both given: list the hosts one way (weblab init writes [[host]])",
                ));
            }
            (None, true) => {
                return Err(src.error(
                    0..0,
                    "no hosts: add a [[host]] entry per host (name, addr, services)",
                ));
            }
        };
        let mut hosts = BTreeMap::new();
        for (name, addr) in listed {
            let ip: Ipv4Addr = addr.get_ref().parse().map_err(|_| {
                src.error(
                    addr.span(),
                    format!("hosts.{name}: {:?} is not an IPv4 address", addr.get_ref()),
                )
            })?;
            if !ip.is_loopback() {
                return Err(src.error(
                    addr.span(),
                    format!("hosts.{name}: {ip} is not in 127.0.0.0/8; worlds live on loopback"),
                ));
            }
            if hosts.insert(name.clone(), ip).is_some() {
                return Err(src.error(addr.span(), format!("host {name:?} is listed twice")));
            }
        }
        let mut hosts6: BTreeMap<String, Ipv6Addr> = BTreeMap::new();
        for h in &raw.host {
            let Some(addr6) = &h.addr6 else { continue };
            let name = h.name.get_ref();
            let ip: Ipv6Addr = addr6.get_ref().parse().map_err(|_| {
                src.error(
                    addr6.span(),
                    format!(
                        "hosts.{name}: addr6 {:?} is not an IPv6 address",
                        addr6.get_ref()
                    ),
                )
            })?;
            if !ip.is_loopback() {
                return Err(src.error(
                    addr6.span(),
                    format!("hosts.{name}: addr6 {ip} is not loopback; IPv6 has one loopback address, ::1"),
                ));
            }
            // A client only opens connections, so it may share ::1 with
            // one host that listens on it.
            let listens = |h: &RawHost| {
                h.services
                    .as_ref()
                    .is_none_or(|s| s.get_ref().iter().any(|x| x != CLIENT_SERVICE))
            };
            if listens(h)
                && let Some(other) = raw.host.iter().find(|o| {
                    o.name.get_ref() != name
                        && listens(o)
                        && hosts6.get(o.name.get_ref()) == Some(&ip)
                })
            {
                return Err(src.error(
                    addr6.span(),
                    format!(
                        "hosts.{name}: addr6 {ip} is already host {:?}'s; IPv6 has one loopback address, so one listening host may have it",
                        other.name.get_ref()
                    ),
                ));
            }
            hosts6.insert(name.clone(), ip);
        }
        let host = |field: &str, n: &Name| -> Result<String, ConfigError> {
            if hosts.contains_key(n.get_ref()) {
                Ok(n.get_ref().clone())
            } else {
                Err(src.error(
                    n.span(),
                    format!(
                        "{field}: no host named {:?} in the world's hosts",
                        n.get_ref()
                    ),
                ))
            }
        };
        let mut clients = Vec::new();
        for c in raw.client.all() {
            let hosts_file = match &c.hosts_file {
                Some(text) => HostsFile::parse(text.get_ref())
                    .map_err(|e| src.error(text.span(), format!("client.hosts_file: {e}")))?,
                None => HostsFile::default(),
            };
            let client = ClientConfig {
                host: host("client.host", &c.host)?,
                resolver: host("client.resolver", &c.resolver)?,
                hosts_file,
            };
            if clients.iter().any(|o: &ClientConfig| o.host == client.host) {
                return Err(src.error(c.host.span(), "client.host: two clients on one host"));
            }
            clients.push(client);
        }
        let Some(client) = clients.first().cloned() else {
            return Err(src.error(0..0, "no client: add a [[client]] with host and resolver"));
        };
        let mut dns = Vec::new();
        let mut counted_hosts = Vec::new();
        for d in &raw.dns {
            let mut zones = Vec::new();
            for z in &d.zones {
                zones.push(zone(&src, z)?);
            }
            let mut policies = Vec::new();
            for p in &d.policy {
                let name = p.name.get_ref();
                if hickory_proto::rr::Name::from_ascii(name).is_err() {
                    return Err(src.error(
                        p.name.span(),
                        format!("dns.policy.name: {name:?} is not a domain name"),
                    ));
                }
                let policy = match (&p.weights, &p.least_connections) {
                    (Some(ws), None) => {
                        let mut weights = Vec::new();
                        for (h, w) in ws.get_ref() {
                            let Some(ip) = hosts.get(h) else {
                                return Err(src.error(
                                    ws.span(),
                                    format!("dns.policy.weights: no host named {h:?} in the world's hosts"),
                                ));
                            };
                            weights.push((*ip, *w));
                        }
                        if weights.iter().all(|(_, w)| *w == 0) {
                            return Err(src.error(
                                ws.span(),
                                "dns.policy.weights: at least one weight above 0",
                            ));
                        }
                        PolicyConfig::Weighted(weights)
                    }
                    (None, Some(list)) => {
                        let mut addrs = Vec::new();
                        for h in list.get_ref() {
                            let Some(ip) = hosts.get(h) else {
                                return Err(src.error(
                                    list.span(),
                                    format!("dns.policy.least_connections: no host named {h:?} in the world's hosts"),
                                ));
                            };
                            // Checked once the services are known.
                            counted_hosts.push((h.clone(), list.span()));
                            addrs.push(*ip);
                        }
                        if addrs.is_empty() {
                            return Err(src.error(
                                list.span(),
                                "dns.policy.least_connections: name at least one host",
                            ));
                        }
                        PolicyConfig::LeastConnections(addrs)
                    }
                    _ => {
                        return Err(src.error(
                            p.name.span(),
                            "dns.policy: give either weights or least_connections",
                        ));
                    }
                };
                policies.push((name.clone(), policy));
            }
            dns.push(DnsConfig {
                host: host("dns.host", &d.host)?,
                role: d.role.clone(),
                zones,
                policies,
            });
        }
        let algorithm = raw.lb.algorithm.get_ref().clone();
        let weights = if raw.lb.weights.is_empty() {
            vec![1; raw.lb.backends.len()]
        } else {
            raw.lb.weights.clone()
        };
        if weights.len() != raw.lb.backends.len() {
            return Err(src.error(
                raw.lb.algorithm.span(),
                format!(
                    "lb.weights: {} weights for {} backends",
                    weights.len(),
                    raw.lb.backends.len()
                ),
            ));
        }
        let names: Vec<String> = raw
            .lb
            .backends
            .iter()
            .map(|b| b.get_ref().clone())
            .collect();
        if let Err(e) = weblab_edge::balance::by_name(&algorithm, &names, &weights) {
            return Err(src.error(raw.lb.algorithm.span(), format!("lb.algorithm: {e}")));
        }
        if raw.lb.backends.is_empty() {
            return Err(src.error(
                raw.lb.host.span(),
                "lb.backends: at least one backend is needed",
            ));
        }
        let lb = LbConfig {
            host: host("lb.host", &raw.lb.host)?,
            algorithm,
            backends: raw
                .lb
                .backends
                .iter()
                .map(|b| host("lb.backends", b))
                .collect::<Result<_, _>>()?,
            weights,
            server_names: raw.lb.server_names.clone(),
            health: match &raw.lb.health {
                Some(h) => health(&src, h)?,
                None => default_checks(),
            },
            firewall: raw
                .lb
                .firewall
                .as_ref()
                .map(|f| firewall(&src, f))
                .transpose()?,
        };
        let web = raw
            .web
            .iter()
            .map(|w| {
                let mut sites = Vec::new();
                for site in &w.site {
                    let mut locations = Vec::new();
                    for l in &site.location {
                        let (exact, path) = match (&l.prefix, &l.exact) {
                            (Some(p), None) => (false, p),
                            (None, Some(e)) => (true, e),
                            _ => {
                                return Err(src.error(
                                    w.host.span(),
                                    "web.site.location: give exactly one of prefix or exact",
                                ));
                            }
                        };
                        if !path.get_ref().starts_with('/') {
                            return Err(src.error(
                                path.span(),
                                "web.site.location: a path starting with /",
                            ));
                        }
                        let serve = match (&l.root, &l.proxy) {
                            (Some(r), None) => LocationServe::Root(r.into()),
                            (None, Some(apps)) if !apps.is_empty() => LocationServe::Proxy(
                                apps.iter()
                                    .map(|a| host("web.site.location.proxy", a))
                                    .collect::<Result<_, _>>()?,
                            ),
                            _ => {
                                return Err(src.error(
                                    path.span(),
                                    "web.site.location: give exactly one of root or proxy (a list of app hosts)",
                                ));
                            }
                        };
                        locations.push(LocationConfig {
                            exact,
                            path: path.get_ref().clone(),
                            serve,
                        });
                    }
                    sites.push(SiteConfig {
                        server_names: site.server_names.clone(),
                        locations,
                    });
                }
                Ok(WebConfig {
                    host: host("web.host", &w.host)?,
                    apps: w
                        .apps
                        .iter()
                        .map(|a| host("web.apps", a))
                        .collect::<Result<_, _>>()?,
                    sites,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let caches = raw
            .cache
            .iter()
            .map(|c| {
                if c.upstreams.is_empty() {
                    return Err(
                        src.error(c.host.span(), "cache.upstreams: at least one web server")
                    );
                }
                let max_bytes = match &c.max_bytes {
                    Some(v) => crate::units::bytes(v.get_ref())
                        .map_err(|e| src.error(v.span(), format!("cache.max_bytes: {e}")))?
                        as usize,
                    None => 64 << 20,
                };
                Ok(CacheConfig {
                    host: host("cache.host", &c.host)?,
                    upstreams: c
                        .upstreams
                        .iter()
                        .map(|u| host("cache.upstreams", u))
                        .collect::<Result<_, _>>()?,
                    max_bytes,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let idp = raw
            .idp
            .as_ref()
            .map(|i| {
                let name = i.server_name.get_ref();
                let valid = !name.is_empty()
                    && name.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !valid {
                    return Err(src.error(
                        i.server_name.span(),
                        format!("idp.server_name: {name:?} is not a host name"),
                    ));
                }
                Ok(IdpConfig {
                    host: host("idp.host", &i.host)?,
                    server_name: name.clone(),
                })
            })
            .transpose()?;
        let mut world = World {
            name: raw.name.clone(),
            ports: raw.ports.clone(),
            client,
            resolver_host: host("resolver.host", &raw.resolver.host)?,
            root_hints: raw
                .resolver
                .root_hints
                .iter()
                .map(|r| host("resolver.root_hints", r))
                .collect::<Result<_, _>>()?,
            qname_minimisation: raw.resolver.qname_minimisation,
            recursion_allow: match &raw.resolver.allow {
                Some(list) => nets(&src, "resolver.allow", list)?,
                None => weblab_dns::ResolverConfig::loopback_only(),
            },
            dns,
            lb,
            web,
            caches,
            idp,
            apps: raw
                .app
                .iter()
                .map(|a| host("app.host", &a.host))
                .collect::<Result<_, _>>()?,
            database: raw.database.clone(),
            limits: limits(&src, &raw.limits)?,
            collector: collector_addr(&src, &raw.trace, &hosts, &clients[0].host)?,
            hosts,
            hosts6,
            services: BTreeMap::new(),
            clients,
        };
        world.services = services(&src, &raw, &world)?;
        for (h, span) in counted_hosts {
            // Only these publish their open connections (/_weblab/status).
            let publishes = world.services.get(&h).is_some_and(|s| {
                s.iter()
                    .any(|s| matches!(s.as_str(), "web" | "lb" | "cache"))
            });
            if !publishes {
                return Err(src.error(
                    span,
                    format!("dns.policy.least_connections: host {h:?} runs no web, lb or cache service, which publish their connection counts"),
                ));
            }
        }
        Ok(world)
    }

    /// The address of host `name` (checked at parse time).
    pub fn addr(&self, name: &str) -> Ipv4Addr {
        self.hosts[name]
    }

    /// Host `name`'s IPv6 address, when it has one.
    pub fn addr6(&self, name: &str) -> Option<Ipv6Addr> {
        self.hosts6.get(name).copied()
    }

    /// Every address of host `name`: IPv4 first, then IPv6 if any.
    pub fn addrs(&self, name: &str) -> Vec<std::net::IpAddr> {
        let mut v = vec![std::net::IpAddr::V4(self.addr(name))];
        v.extend(self.addr6(name).map(std::net::IpAddr::V6));
        v
    }

    /// The client on `host`, or the default client when `None`.
    pub fn client_on(&self, host: Option<&str>) -> Option<&ClientConfig> {
        match host {
            None => Some(&self.client),
            Some(h) => self.clients.iter().find(|c| c.host == h),
        }
    }

    /// Moves the whole world from its 127.X block to 127.`block`, rewriting
    /// host addresses, zone A records and the hosts file, so that several
    /// worlds (parallel tests) never share an address.
    pub fn relocate(&mut self, block: u8) {
        let from = self.addr(&self.client.host).octets()[1];
        let f = move |ip: Ipv4Addr| {
            let o = ip.octets();
            if o[0] == 127 && o[1] == from {
                Ipv4Addr::new(127, block, o[2], o[3])
            } else {
                ip
            }
        };
        for ip in self.hosts.values_mut() {
            *ip = f(*ip);
        }
        for d in &mut self.dns {
            for z in &mut d.zones {
                z.map_ipv4(&f);
            }
            for (_, policy) in &mut d.policies {
                match policy {
                    PolicyConfig::Weighted(weights) => {
                        weights.iter_mut().for_each(|(ip, _)| *ip = f(*ip));
                    }
                    PolicyConfig::LeastConnections(addrs) => {
                        addrs.iter_mut().for_each(|ip| *ip = f(*ip));
                    }
                }
            }
        }
        self.client.hosts_file.map_ipv4(&f);
        for c in &mut self.clients {
            c.hosts_file.map_ipv4(&f);
        }
        if let SocketAddr::V4(c) = &mut self.collector {
            c.set_ip(f(*c.ip()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_file_of_the_first_form_with_a_hosts_table_still_loads() {
        let old = include_str!("../tests/fixtures/world-v1.toml");
        let w = World::parse("world-v1.toml", old).unwrap();
        let mut new = World::default_world();
        // The first form predates the cache server and the identity
        // provider.
        for later in ["cache", "idp"] {
            new.hosts.remove(later);
            new.services.remove(later);
        }
        assert!(w.idp.is_none());
        assert_eq!(w.hosts, new.hosts);
        assert_eq!(w.services, new.services);
        assert_eq!(w.services["resolver"], ["resolver"]);
        assert_eq!(w.services["client"], ["client"]);
    }

    #[test]
    fn a_zone_can_come_from_a_master_file_and_errors_name_its_line() {
        let dir = std::env::temp_dir().join(format!("weblab-zonefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The id.test. zone moved into a file beside the world file.
        let start = DEFAULT_WORLD.find("origin = \"id.test.\"").unwrap();
        let open = start + DEFAULT_WORLD[start..].find("records = \"\"\"").unwrap();
        let close = open + 13 + DEFAULT_WORLD[open + 13..].find("\"\"\"").unwrap();
        let records = &DEFAULT_WORLD[open + 14..close];
        std::fs::write(dir.join("id.zone"), records).unwrap();
        let text = format!(
            "{}file = \"id.zone\"{}",
            &DEFAULT_WORLD[..open],
            &DEFAULT_WORLD[close + 3..]
        );
        let world_file = dir.join("world.toml");
        let w = World::parse(world_file.to_str().unwrap(), &text).unwrap();
        let inline = World::default_world();
        let count = |w: &World| {
            w.dns
                .iter()
                .flat_map(|d| &d.zones)
                .find(|z| z.origin().to_string() == "id.test.")
                .map(|z| z.records().count())
        };
        assert_eq!(count(&w), count(&inline));
        assert!(count(&w).unwrap() > 2);
        // A bad record: the file and its line.
        let broken = records.replacen("IN A ", "IN A 999.", 1);
        std::fs::write(dir.join("id.zone"), &broken).unwrap();
        let e = World::parse(world_file.to_str().unwrap(), &text).unwrap_err();
        let want = broken.lines().position(|l| l.contains("999.")).unwrap() + 1;
        assert!(e.file.ends_with("id.zone"), "{e}");
        assert_eq!(e.line, want, "{e}");
        // Inline, the world file's own line.
        let bad_inline = DEFAULT_WORLD.replacen(
            "ns1        IN A   127.10.2.3",
            "ns1        IN A   999.10.2.3",
            1,
        );
        let e = World::parse("w.toml", &bad_inline).unwrap_err();
        let want = bad_inline
            .lines()
            .position(|l| l.contains("999.10.2.3"))
            .unwrap()
            + 1;
        assert_eq!(e.line, want, "{e}");
        // Missing file, and neither form.
        let e = World::parse(
            world_file.to_str().unwrap(),
            &text.replace("id.zone", "nope.zone"),
        )
        .unwrap_err();
        assert!(e.message.contains("dns.zones.file: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn host_services_and_sections_must_agree() {
        let base = DEFAULT_WORLD;
        let cases = [
            (
                base.replace(
                    "name = \"web2\"\naddr = \"127.10.4.2\"\nservices = [\"web\"]",
                    "name = \"web2\"\naddr = \"127.10.4.2\"\nservices = []",
                ),
                "host web2: the world's sections run \"web\" on it",
            ),
            (
                base.replace("services = [\"lb\"]", "services = [\"lb\", \"app\"]"),
                "host lb: lists \"app\", but no section configures",
            ),
            (
                base.replace("services = [\"lb\"]", "services = [\"lb\", \"cdn\"]"),
                "host lb: unknown service \"cdn\"",
            ),
            (
                base.replace("network = \"loopback\"", "network = \"netns\""),
                "network: \"netns\" is not available yet",
            ),
            (
                base.replace("weights = { web1 = 3, web2 = 1 }", "weights = { web9 = 3 }"),
                "dns.policy.weights: no host named \"web9\"",
            ),
            (
                base.replace("weights = { web1 = 3, web2 = 1 }", "weights = { web1 = 0 }"),
                "dns.policy.weights: at least one weight above 0",
            ),
            (
                base.replace(
                    "least_connections = [\"web1\", \"web2\"]",
                    "least_connections = [\"app1\"]",
                ),
                "dns.policy.least_connections: host \"app1\" runs no web, lb or cache service",
            ),
            (
                base.replace(
                    "least_connections = [\"web1\", \"web2\"]",
                    "weights = { web1 = 1 }\nleast_connections = [\"web1\"]",
                ),
                "dns.policy: give either weights or least_connections",
            ),
            (
                // The resolver's list comes before the firewall's.
                base.replacen(
                    "allow = [\"127.0.0.0/8\", \"::1\"]",
                    "allow = [\"127.0.0.0/33\"]",
                    1,
                ),
                "resolver.allow: \"127.0.0.0/33\" is not an address or a CIDR",
            ),
        ];
        for (text, want) in cases {
            assert_ne!(text, base, "the case changed nothing: {want}");
            let e = World::parse("w.toml", &text).unwrap_err();
            assert!(e.message.contains(want), "{e}");
            assert!(e.line > 1, "{e}");
        }
        let both = format!("{base}\n[hosts]\nx = \"127.0.0.9\"\n");
        let e = World::parse("w.toml", &both).unwrap_err();
        assert!(e.message.contains("both given"), "{e}");
    }

    #[test]
    fn the_default_world_parses_and_names_every_role() {
        let w = World::default_world();
        assert_eq!(w.addr("lb"), Ipv4Addr::new(127, 10, 3, 1));
        assert_eq!(w.dns.len(), 3);
        assert_eq!(w.lb.backends, ["web1", "web2"]);
        assert_eq!(w.apps, ["app1", "app2"]);
    }

    #[test]
    fn relocation_moves_hosts_and_zone_addresses() {
        let mut w = World::default_world();
        w.relocate(42);
        assert_eq!(w.addr("lb"), Ipv4Addr::new(127, 42, 3, 1));
        let auth = w.dns.iter().find(|d| d.host == "auth").unwrap();
        let text: Vec<String> = auth.zones[0]
            .records()
            .map(|r| r.data.to_string())
            .collect();
        assert!(text.contains(&"127.42.3.1".to_string()), "{text:?}");
        assert!(!text.iter().any(|t| t.starts_with("127.10.")), "{text:?}");
    }

    #[test]
    fn sites_and_locations_parse_and_each_location_needs_one_rule_and_one_action() {
        let site = "[[web.site]]\nserver_names = [\"docs.myapp.test\"]\n\
[[web.site.location]]\nprefix = \"/\"\nroot = \"static\"\n\
[[web.site.location]]\nexact = \"/healthz\"\nproxy = [\"app1\"]\n";
        let with = |site: &str| {
            DEFAULT_WORLD.replace(
                "[[web]]\nhost = \"web2\"",
                &format!("{site}\n[[web]]\nhost = \"web2\""),
            )
        };
        let w = World::parse("w.toml", &with(site)).unwrap();
        let web1 = &w.web[0];
        assert_eq!(web1.sites.len(), 1);
        assert_eq!(web1.sites[0].server_names, ["docs.myapp.test"]);
        assert!(
            matches!(&web1.sites[0].locations[1].serve, LocationServe::Proxy(a) if a == &["app1"])
        );
        assert!(web1.sites[0].locations[1].exact);
        assert!(w.web[1].sites.is_empty());
        let both =
            with(&site.replace("root = \"static\"", "root = \"static\"\nproxy = [\"app1\"]"));
        let err = World::parse("w.toml", &both).unwrap_err().to_string();
        assert!(err.contains("one of root or proxy"), "{err}");
        let nowhere = with(&site.replace("proxy = [\"app1\"]", "proxy = [\"app9\"]"));
        let err = World::parse("w.toml", &nowhere).unwrap_err().to_string();
        assert!(err.contains("app9"), "{err}");
    }

    #[test]
    fn the_proxies_upstream_timeout_comes_from_limits_and_is_never_zero() {
        let w = World::parse("w.toml", DEFAULT_WORLD).unwrap();
        assert_eq!(w.limits.upstream, Duration::from_secs(30));
        let two = DEFAULT_WORLD.replace("upstream_timeout = \"30s\"", "upstream_timeout = \"2s\"");
        assert_ne!(two, DEFAULT_WORLD);
        let w = World::parse("w.toml", &two).unwrap();
        assert_eq!(w.limits.upstream, Duration::from_secs(2));
        let zero = DEFAULT_WORLD.replace("upstream_timeout = \"30s\"", "upstream_timeout = \"0s\"");
        let err = World::parse("w.toml", &zero).unwrap_err().to_string();
        assert!(
            err.contains("limits.upstream_timeout: must be more than 0"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let bad = DEFAULT_WORLD.replace(
            "backends = [\"web1\", \"web2\"]",
            "backends = [\"web1\", \"web9\"]",
        );
        let err = World::parse("w.toml", &bad).unwrap_err().to_string();
        let line = DEFAULT_WORLD
            .lines()
            .position(|l| l.starts_with("backends"))
            .unwrap()
            + 1;
        assert!(err.starts_with(&format!("w.toml:{line}:")), "{err}");
        assert!(err.contains("lb.backends") && err.contains("web9"), "{err}");

        let typo =
            DEFAULT_WORLD.replace("algorithm = \"round-robin\"", "algoritm = \"round-robin\"");
        let err = World::parse("w.toml", &typo).unwrap_err().to_string();
        assert!(err.contains("algoritm"), "{err}");

        let err = World::parse("w.toml", "name = [").unwrap_err().to_string();
        assert!(err.starts_with("w.toml:1:"), "{err}");

        let zone = DEFAULT_WORLD.replace(
            "@          IN A   127.10.3.1",
            "@          IN A   not-an-address",
        );
        let err = World::parse("w.toml", &zone).unwrap_err().to_string();
        assert!(err.contains("dns.zones.records"), "{err}");

        let outside = DEFAULT_WORLD.replace(
            "name = \"lb\"\naddr = \"127.10.3.1\"",
            "name = \"lb\"\naddr = \"10.0.0.1\"",
        );
        assert_ne!(outside, DEFAULT_WORLD);
        let err = World::parse("w.toml", &outside).unwrap_err().to_string();
        assert!(err.contains("hosts.lb"), "{err}");
    }
}
