//! `weblab`: the web's request path on one machine, every step shown.

use std::path::PathBuf;

/// Servers here allocate many small, short-lived buffers (request heads,
/// spans, OTLP messages). With glibc's allocator, malloc and free were
/// about 30 % of the OTLP collector's perf samples under wrk load; no bench
/// here compares allocators side by side yet.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc gives a freed page back to the system only after a delay, and
/// only when it is next called: a server that goes quiet (its keep-alive
/// connections parked, their buffers freed) would keep that memory in its
/// RSS for good. Giving pages back at once costs a madvise per emptied
/// page (about 800 a second in the proxy under wrk, against 100 000 other
/// system calls).
fn return_freed_memory_at_once() {
    /// `mi_option_purge_delay` in mimalloc 3's `mi_option_e`; the Rust
    /// binding leaves the experimental options unnamed.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: called once from main before any other thread exists (the
    // option setters are not thread safe); 0 is a valid delay ("purge at
    // once").
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use weblab::commands::{self, Role};
use weblab::config::World;
use weblab::tour::{self, TourOptions};
use weblab::world::default_data_dir;
use weblab_trace::Detail;
use weblab_trace::explain::Lang;

/// Threads for blocking file-system work, at most.
const BLOCKING_THREADS: usize = 32;

#[derive(Parser)]
#[command(
    name = "weblab",
    version,
    about = "The web's request path, built for real on one machine, every step shown"
)]
struct Cli {
    /// World file (default: the embedded world; `weblab init` writes it out).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (CA, static files, database).
    #[arg(long, global = true, value_name = "DIR", env = "WEBLAB_DATA")]
    data: Option<PathBuf>,
    /// Move the world to 127.N.0.0/16 (to run two worlds side by side).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=254))]
    block: Option<u8>,
    #[command(subcommand)]
    command: Command,
}

/// How a tour or a fetch is run and shown.
#[derive(clap::Args)]
struct ViewArgs {
    /// Language of the explanations.
    #[arg(long, value_enum, default_value = "en")]
    lang: LangArg,
    /// Print the whole trace as JSON instead.
    #[arg(long)]
    json: bool,
    /// Offer only HTTP/1.1 (no HTTP/2) in TLS ALPN.
    #[arg(long = "http1.1")]
    http1_only: bool,
    /// Offer HTTP/2 first in TLS ALPN, HTTP/1.1 as the fallback (the
    /// default; accepted as curl's flag).
    #[arg(long = "http2", conflicts_with_all = ["http1_only", "http10", "http09", "pipeline"])]
    _http2: bool,
    /// Speak HTTP/1.0 (C24): a connection per request, closed after it.
    #[arg(long = "http1.0", conflicts_with = "http1_only")]
    http10: bool,
    /// Speak HTTP/0.9 (C23): `GET /path` only, the answer a body with no
    /// status or headers (plain http:// to a web server, e.g. web1).
    #[arg(long = "http0.9", conflicts_with_all = ["http1_only", "http10"])]
    http09: bool,
    /// How much the servers record (minimal: only the client's stages).
    #[arg(long, value_enum, default_value = "full")]
    trace: DetailArg,
    /// Also write the requests as a HAR 1.2 file (for devtools and HAR viewers).
    #[arg(long, value_name = "FILE")]
    har: Option<PathBuf>,
    /// Visit the world that `weblab up` (or `weblab collect`) is running
    /// for this world file and block, and show the trace it recorded,
    /// server spans included.
    #[arg(long)]
    attach: bool,
    /// Also send every span to this OTLP/HTTP endpoint (Jaeger, an
    /// OpenTelemetry collector, `weblab collect`).
    #[arg(long, value_name = "URL")]
    otlp: Option<String>,
    /// Browse from this client host (a world may have several `[[client]]`).
    #[arg(long, value_name = "HOST")]
    client: Option<String>,
    /// Visit twice with the same browser and show the second visit: its
    /// HTTP cache (fresh copies used with no request, stale ones asked
    /// for again, C30) and the connections the first left open.
    #[arg(long)]
    reload: bool,
    /// Do it N times (a fresh browser each time; the OS and resolver
    /// caches stay warm) and print min / median / p95 per stage.
    #[arg(long, value_name = "N", default_value = "1", value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Exit with code 4 when a stage is over its limit, e.g.
    /// total=300ms,ttfb=100ms (stages: total ttfb blocked dns connect ssl
    /// send wait receive processing); with --runs, the p95 is checked.
    #[arg(long, value_name = "STAGE=TIME,...", value_parser = tour::parse_slo)]
    slo: Option<tour::Slo>,
    /// Also print the full story: every step on every host, explained.
    #[arg(long)]
    detail: bool,
    /// Keep the browser's HTTP cache in the data directory between runs,
    /// as a browser's disk cache (fresh answers are then used with no
    /// request, C30).
    #[arg(long, conflicts_with = "no_cache")]
    disk_cache: bool,
    /// Pipeline HTTP/1.1 requests (C25): one connection per origin, each
    /// request written without waiting for the answers before it; the
    /// answers come back in order, so a slow one holds up the rest.
    #[arg(long, conflicts_with_all = ["http10", "http09"])]
    pipeline: bool,
    /// Leave the HTTP cache out: nothing used or kept, and stores asked
    /// for a fresh copy (Cache-Control: no-cache), as DevTools' "Disable
    /// cache".
    #[arg(long)]
    no_cache: bool,
    /// Start as a new browser: forget this client's HSTS store, disk
    /// cache and kept cookies in the data directory first.
    #[arg(long)]
    clean: bool,
    /// Browse with a profile kept in the data directory, as a browser
    /// does: its cookies and HTTP cache stay between runs (the HSTS store
    /// always does); `--clean` forgets them.
    #[arg(long, conflicts_with = "no_cache")]
    profile: bool,
}

impl ViewArgs {
    fn options(&self, url: &str, data_dir: PathBuf, action: tour::Action) -> TourOptions {
        TourOptions {
            url: url.to_string(),
            lang: match self.lang {
                LangArg::En => Lang::En,
                LangArg::Ko => Lang::Ko,
            },
            json: self.json,
            http1_only: self.http1_only || self.http10 || self.pipeline,
            http10: self.http10,
            http09: self.http09,
            pipeline: self.pipeline,
            no_cache: self.no_cache,
            clean: self.clean,
            disk_cache: self.disk_cache,
            profile: self.profile,
            detail: match self.trace {
                DetailArg::Full => Detail::Full,
                DetailArg::Minimal => Detail::Minimal,
            },
            data_dir,
            har: self.har.clone(),
            attach: self.attach,
            otlp: self.otlp.clone(),
            client: self.client.clone(),
            full_story: self.detail,
            action,
            runs: self.runs,
            slo: self.slo.clone(),
            reload: self.reload,
        }
    }
}

/// The request `weblab fetch` sends, from its curl-like flags; a bad
/// header or an unreadable `@FILE` is named.
fn outgoing(
    method: Option<&str>,
    headers: &[String],
    data: Option<&str>,
) -> Result<weblab_browser::Outgoing> {
    let mut out = weblab_browser::Outgoing::default();
    for h in headers {
        let (k, v) = h
            .split_once(':')
            .filter(|(k, _)| !k.trim().is_empty())
            .with_context(|| format!("-H {h:?}: a header is \"Name: value\""))?;
        out.headers
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    if let Some(d) = data {
        out.body = match d.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("-d @{path}: cannot read the file"))?
                .into(),
            None => d.as_bytes().to_vec().into(),
        };
        out.method = http::Method::POST;
        // As curl does: a body without a stated type is a form.
        if !out
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            out.headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
    }
    if let Some(m) = method {
        out.method = http::Method::from_bytes(m.as_bytes())
            .with_context(|| format!("-X {m:?} is not a method"))?;
    }
    Ok(out)
}

#[derive(Clone, Copy, ValueEnum)]
enum LangArg {
    En,
    Ko,
}

#[derive(Clone, Copy, ValueEnum)]
enum DetailArg {
    Full,
    Minimal,
}

#[derive(Subcommand)]
enum Command {
    /// Boot the world, load a page through it and show every step
    /// (`weblab open URL` is the same: a page, its subresources, the waterfall).
    #[command(alias = "open")]
    Tour {
        /// The URL to open.
        #[arg(default_value = "https://myapp.test/login")]
        url: String,
        /// Instead of loading the URL, sign in through the identity
        /// provider (C37): redirect, consent, code, the app's back-channel
        /// calls, the signed-in page, all in one trace.
        #[arg(long)]
        oauth: bool,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// One request through the world, curl-like: the response's status
    /// line and headers, its body, then where the time went (every hop).
    Fetch {
        /// The URL (`myapp.test/api/users/1` works as in an address bar).
        url: String,
        /// The method (default GET, or POST with a body).
        #[arg(short = 'X', long = "request", value_name = "METHOD")]
        method: Option<String>,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// A body to send (form-encoded unless a Content-Type is given);
        /// `@FILE` reads it from a file.
        #[arg(short = 'd', long = "data-binary", value_name = "DATA")]
        body: Option<String>,
        /// Follow redirects (each leg its own request of the trace).
        #[arg(short = 'L', long = "location")]
        follow: bool,
        /// Write the body to FILE instead of showing it.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Send it as a page of this origin would, with CORS enforced as a
        /// browser does (C40): a preflight when needed, the answer blocked
        /// unless it names the origin.
        #[arg(long, value_name = "ORIGIN", conflicts_with = "follow")]
        origin: Option<String>,
        /// With --origin: send the cookies cross-origin too, as fetch()
        /// with credentials "include" does; the answer must then name the
        /// origin exactly and carry Access-Control-Allow-Credentials: true.
        #[arg(long, requires = "origin")]
        with_credentials: bool,
        /// Start with the cookies of this Netscape cookie file, as curl's
        /// -b FILE (curl -c writes one).
        #[arg(short = 'b', long = "cookie", value_name = "FILE")]
        cookie: Option<PathBuf>,
        /// Write the cookie jar to this file afterwards, as curl's -c FILE.
        #[arg(short = 'c', long = "cookie-jar", value_name = "FILE")]
        cookie_jar: Option<PathBuf>,
        /// Reach HOST:PORT at ADDR without a lookup, as curl does
        /// (e.g. nginx.test:443:127.0.0.1; repeatable).
        #[arg(long, value_name = "HOST:PORT:ADDR", value_parser = parse_resolve)]
        resolve: Vec<(String, u16, std::net::IpAddr)>,
        /// Trust the CA certificates in this PEM file too.
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
        /// Do not check the server's certificate chain (only that it holds
        /// the key of the certificate it sends).
        #[arg(short = 'k', long)]
        insecure: bool,
        /// Accepted for curl habits: the status line and every header are
        /// always printed before the body.
        #[arg(short = 'i', long = "include")]
        _include: bool,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Ask a DNS server of the world (the resolver by default), like dig:
    /// `weblab dig myapp.test`, `weblab dig myapp.test MX @auth +norec`,
    /// `weblab dig www.myapp.test +trace` (every referral from the root).
    Dig {
        /// NAME [TYPE] [@SERVER] [+trace] [+norec] [+tcp], in any order.
        #[arg(required = true, allow_hyphen_values = true, num_args = 1..)]
        args: Vec<String>,
    },
    /// Receive spans over OTLP/HTTP for this world (from `serve --otlp` roles
    /// or any OpenTelemetry SDK) and keep traces for `weblab trace`.
    Collect {
        /// Keep at most this much (e.g. 64m); the oldest traces go first.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_bytes: Option<usize>,
    },
    /// Read the traces of a running world (`weblab up` or `weblab collect`).
    Trace {
        #[command(subcommand)]
        cmd: TraceCmd,
    },
    /// Keep the world running and print how to reach it with dig, curl and a browser.
    Up {
        /// On SIGTERM/Ctrl-C, how long in-flight requests may take to finish
        /// (default: `[limits] grace` of the world file, 5s).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        grace: Option<Duration>,
    },
    /// Run one role of the world alone (on this machine's part of the world).
    Serve {
        #[arg(value_enum)]
        role: Role,
        /// Only this host of the role (default: every host that has it).
        #[arg(long)]
        host: Option<String>,
        /// On SIGTERM/Ctrl-C, how long in-flight requests may take to finish.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        grace: Option<Duration>,
        /// Send this role's spans to an OTLP/HTTP collector
        /// (e.g. http://127.10.0.1:4318, what `weblab collect` prints).
        #[arg(long, value_name = "URL")]
        otlp: Option<String>,
    },
    /// The TCP lab: a deterministic simulator of TCP's mechanisms.
    Tcp {
        #[command(subcommand)]
        cmd: weblab::tcp::TcpCommand,
    },
    /// Experiments that measure one idea with real clients and servers.
    Experiment {
        #[command(subcommand)]
        which: ExperimentCmd,
    },
    /// Check routes against REST URI rules (lowercase, hyphens, plural
    /// collections, hierarchy, no trailing slash, no extensions, no verbs).
    /// Without FILE: the application's own API. FILE: one route a line,
    /// `METHOD /path` or `/path`, `#` comments. Exit code 1 when a rule is broken.
    LintRoutes { file: Option<PathBuf> },
    /// Write the default world file out for editing.
    Init {
        #[arg(default_value = "world.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum ExperimentCmd {
    /// Polling vs long polling vs server-sent events on the same feed:
    /// requests, bytes and delay of each over a fixed time (C41).
    Realtime {
        /// How long to run.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// How often the writer posts.
        #[arg(long, default_value = "500ms", value_parser = parse_duration)]
        every: Duration,
        /// How often the polling client asks.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        poll: Duration,
    },
    /// Head-of-line blocking: one slow resource, then fast ones, to one
    /// server pipelined on an HTTP/1.1 connection, one by one, over six
    /// connections and as HTTP/2 streams: when each answer came (C25, C26).
    Hol {
        /// How long /slow takes (10ms-5s).
        #[arg(long, default_value = "300ms", value_parser = parse_duration)]
        delay: Duration,
        /// How many fast requests follow it (1-50).
        #[arg(long, default_value = "5")]
        fast: usize,
    },
    /// HTTP/2 priorities (RFC 9218): two large responses at once on one
    /// connection, with no priority header, the later one more urgent,
    /// both of one urgency and both incremental; when each ended and how
    /// much of the other had come by then (C26).
    Priorities {
        /// Size of each response (64k-64m).
        #[arg(long, default_value = "4m", value_parser = parse_size)]
        size: usize,
        /// The client's flow-control window per stream (16k-16m; twice
        /// that for the connection).
        #[arg(long, default_value = "64k", value_parser = parse_size)]
        window: usize,
    },
    /// DNS round robin (cached and not) against a load balancer with
    /// health checks, over three web servers, one of which dies halfway:
    /// each server's share, failed requests, and how long clients keep
    /// going to the dead one (C11-C13). Hosts in 127.60.0.0/16 unless
    /// --block is given.
    DnsLb {
        /// Clients (3-200); a quarter of them are busy.
        #[arg(long, default_value = "12")]
        clients: usize,
        /// Caching resolvers the clients share (1-16).
        #[arg(long, default_value = "2")]
        resolvers: usize,
        /// Length of each of the three runs (2s-60s).
        #[arg(long, default_value = "6s", value_parser = parse_duration)]
        duration: Duration,
        /// TTL of the name's records, in seconds (1-30).
        #[arg(long, default_value = "2")]
        ttl: u32,
        /// Also draw the three runs as an SVG chart into FILE.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// A man in the middle (C33): Mallory relays the browser's bytes to
    /// the load balancer and reads them. A password posted over plain
    /// HTTP, SSL stripping, the same over HTTPS, one bit flipped under
    /// TLS, her own certificate, and HSTS, each with what she saw. A world of its own
    /// in 127.61.0.0/16 unless --block is given, data in a fresh
    /// directory.
    Mitm,
    /// HTTP status codes, each made by a real request in a real situation
    /// (C29): 101 to 503, with what the server said. A world of its own
    /// in 127.62.0.0/16 unless --block is given, data in a fresh
    /// directory.
    Status,
    /// One request's bytes, layer by layer (C52): every frame between
    /// the client and a web server captured on lo while the browser
    /// fetches one file, split into Ethernet, IPv4, TCP and HTTP. Needs
    /// root (a packet socket). A world of its own in 127.63.0.0/16 unless
    /// --block is given.
    Layers {
        /// Fetch over HTTPS through the load balancer instead: TLS records
        /// between TCP and HTTP, the HTTP inside them encrypted.
        #[arg(long)]
        tls: bool,
        /// Capture a whole page load instead, through every hop: the frames
        /// between each pair of the world's hosts (DNS over UDP, TLS, HTTP).
        #[arg(long, conflicts_with = "tls")]
        page: bool,
    },
    /// The socket API one call at a time (C21): socket, bind, listen,
    /// connect, accept, write, read and close between a server and a
    /// client on loopback, each with the TCP states the kernel reports
    /// after it; the listening and the accepted socket apart. Addresses
    /// 127.64.4.1:8080 and 127.64.0.2 unless --block is given.
    Sockets,
}

#[derive(Subcommand)]
enum TraceCmd {
    /// The newest traces, a line each.
    List {
        /// How many.
        #[arg(long, default_value = "20")]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One trace: story, stages and waterfall.
    Show {
        /// The trace id (32 hex digits, as `trace list` prints it).
        id: String,
        #[arg(long)]
        json: bool,
        /// Also write it as a HAR 1.2 file.
        #[arg(long, value_name = "FILE")]
        har: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "en")]
        lang: LangArg,
    },
}

fn parse_size(s: &str) -> Result<usize, String> {
    match weblab::units::bytes(s)? {
        0 => Err("must be more than 0".into()),
        n => Ok(n as usize),
    }
}

/// `HOST:PORT:ADDR`, ADDR an IPv4 or a bracketed IPv6 address (curl's form).
fn parse_resolve(s: &str) -> Result<(String, u16, std::net::IpAddr), String> {
    let bad = || format!("{s:?}: expected HOST:PORT:ADDR, e.g. nginx.test:443:127.0.0.1");
    let (host, rest) = s.split_once(':').ok_or_else(bad)?;
    let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port, addr))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match weblab::units::duration(s)? {
        0 => Err("must be more than 0".into()),
        ns => Ok(Duration::from_nanos(ns)),
    }
}

/// The command line. The world options are global (before or after any
/// world command), but `weblab tcp` runs no world: its help does not list
/// them (they are hidden there after clap has handed them down).
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    cmd.build();
    fn hide_world_options(c: clap::Command) -> clap::Command {
        let c = c.mut_args(|a| match a.get_id().as_str() {
            "config" | "data" | "block" => a.hide(true),
            _ => a,
        });
        c.mut_subcommands(hide_world_options)
    }
    let cmd = cmd.mut_subcommand("tcp", hide_world_options);
    let matches = cmd.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Runs an experiment on a world of its own: the world file moved to
/// `block` unless --block is given, with a fresh data directory (removed
/// afterwards); prints the report it returns.
async fn own_world(
    cli: &Cli,
    block: u8,
    tag: &str,
    run: impl AsyncFnOnce(World, PathBuf) -> Result<String>,
) -> Result<i32> {
    let mut world = load_world(cli)?;
    if cli.block.is_none() {
        world.relocate(block);
    }
    let dir = std::env::temp_dir().join(format!("weblab-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let done = run(world, dir.clone()).await;
    let _ = std::fs::remove_dir_all(&dir);
    print!(
        "{}",
        weblab_trace::render::wrap(&done?, weblab::tour::term_width())
    );
    Ok(0)
}

fn load_world(cli: &Cli) -> Result<World> {
    let mut world = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            World::parse(&path.display().to_string(), &text)?
        }
        None => World::default_world(),
    };
    if let Some(block) = cli.block {
        world.relocate(block);
    }
    Ok(world)
}

async fn run(cli: Cli) -> Result<i32> {
    let data_dir = cli.data.clone().unwrap_or_else(default_data_dir);
    match &cli.command {
        Command::Experiment {
            which:
                ExperimentCmd::Realtime {
                    duration,
                    every,
                    poll,
                },
        } => {
            weblab::experiment::realtime(duration.as_secs().max(1), *every, *poll).await?;
            Ok(0)
        }
        Command::Experiment {
            which: ExperimentCmd::Hol { delay, fast },
        } => {
            if !(Duration::from_millis(10)..=Duration::from_secs(5)).contains(delay) {
                anyhow::bail!("--delay must be between 10ms and 5s");
            }
            if !(1..=50).contains(fast) {
                anyhow::bail!("--fast must be between 1 and 50");
            }
            let report = weblab::hol::hol(*delay, *fast).await?;
            print!(
                "{}",
                weblab_trace::render::wrap(&report, weblab::tour::term_width())
            );
            Ok(0)
        }
        Command::Experiment {
            which: ExperimentCmd::Priorities { size, window },
        } => {
            if !((64 << 10)..=(64 << 20)).contains(size) {
                anyhow::bail!("--size must be between 64k and 64m");
            }
            if !((16 << 10)..=(16 << 20)).contains(window) {
                anyhow::bail!("--window must be between 16k and 16m");
            }
            let runs = weblab::priorities::runs(*size, *window as u32).await?;
            let report = weblab::priorities::report(&runs, *size, *window as u32);
            print!(
                "{}",
                weblab_trace::render::wrap(&report, weblab::tour::term_width())
            );
            Ok(0)
        }
        Command::Experiment {
            which: ExperimentCmd::Sockets,
        } => {
            let b = cli.block.unwrap_or(64);
            let steps = weblab::sockets::run(
                std::net::Ipv4Addr::new(127, b, 4, 1),
                std::net::Ipv4Addr::new(127, b, 0, 2),
                8080,
            )?;
            print!(
                "{}",
                weblab_trace::render::wrap(
                    &weblab::sockets::render(&steps),
                    weblab::tour::term_width()
                )
            );
            Ok(0)
        }
        Command::Experiment {
            which: ExperimentCmd::Layers { tls, page },
        } => {
            own_world(
                &cli,
                weblab::layers::DEFAULT_BLOCK,
                "layers",
                async |world, dir| {
                    if *page {
                        return Ok(weblab::layers::page(world, dir).await?.1);
                    }
                    Ok(weblab::layers::run(world, dir, *tls).await?.report)
                },
            )
            .await
        }
        Command::Experiment {
            which: ExperimentCmd::Status,
        } => {
            eprintln!(
                "making each status code happen for real; the 408, 500 and 504 rows wait out their timeouts (about 15 s in all)"
            );
            own_world(
                &cli,
                weblab::codes::DEFAULT_BLOCK,
                "status",
                async |world, dir| Ok(weblab::codes::run(world, dir).await?.report),
            )
            .await
        }
        Command::Experiment {
            which: ExperimentCmd::Mitm,
        } => {
            own_world(
                &cli,
                weblab::mitm::DEFAULT_BLOCK,
                "mitm",
                async |world, dir| {
                    weblab::mitm::check(&world)?;
                    Ok(weblab::mitm::run(world, dir).await?.report)
                },
            )
            .await
        }
        Command::Experiment {
            which:
                ExperimentCmd::DnsLb {
                    clients,
                    resolvers,
                    duration,
                    ttl,
                    svg,
                },
        } => {
            let world = load_world(&cli)?;
            let setup = weblab::dnslb::Setup {
                clients: *clients,
                resolvers: *resolvers,
                duration: *duration,
                ttl: *ttl,
                block: cli.block.unwrap_or(60),
                svg: svg.clone(),
            };
            let done = weblab::dnslb::run(setup, weblab::world::choose_ports(&world)).await?;
            print!(
                "{}",
                weblab_trace::render::wrap(&done.report, weblab::tour::term_width())
            );
            Ok(0)
        }
        Command::LintRoutes { file } => commands::lint_routes(file.as_deref()),
        Command::Init { path, force } => {
            commands::init(path, *force)?;
            Ok(0)
        }
        Command::Tour { url, oauth, view } => {
            let world = load_world(&cli)?;
            let action = match oauth {
                true => tour::Action::SignIn,
                false => tour::Action::Page,
            };
            tour::run(world, view.options(url, data_dir, action)).await
        }
        Command::Fetch {
            url,
            method,
            headers,
            body,
            follow,
            output,
            origin,
            with_credentials,
            cookie,
            cookie_jar,
            resolve,
            cacert,
            insecure,
            view,
            ..
        } => {
            let world = load_world(&cli)?;
            let extra_ca_pem = match cacert {
                Some(path) => std::fs::read(path)
                    .with_context(|| format!("--cacert: cannot read {}", path.display()))?,
                None => Vec::new(),
            };
            let reach = weblab_browser::Reach {
                resolve: resolve.clone(),
                extra_ca_pem,
                insecure: *insecure,
            };
            let spec = tour::FetchSpec {
                out: outgoing(method.as_deref(), headers, body.as_deref())?,
                follow: *follow,
                output: output.clone(),
                origin: match origin {
                    Some(o) => Some(tour::origin_of(o)?),
                    None => None,
                },
                with_credentials: *with_credentials,
                cookies_in: cookie.clone(),
                cookies_out: cookie_jar.clone(),
                reach,
            };
            tour::run(
                world,
                view.options(url, data_dir, tour::Action::Fetch(Box::new(spec))),
            )
            .await
        }
        Command::Dig { args } => {
            let world = load_world(&cli)?;
            print!("{}", weblab::dig::run(&world, args).await?);
            Ok(0)
        }
        Command::Tcp { .. } => unreachable!("handled before the runtime starts"),
        Command::Up { grace } => {
            commands::up(load_world(&cli)?, data_dir, *grace).await?;
            Ok(0)
        }
        Command::Serve {
            role,
            host,
            grace,
            otlp,
        } => {
            let world = load_world(&cli)?;
            commands::serve(
                world,
                data_dir,
                *role,
                host.as_deref(),
                *grace,
                otlp.as_deref(),
            )
            .await?;
            Ok(0)
        }
        Command::Collect { max_bytes } => {
            commands::collect(load_world(&cli)?, *max_bytes).await?;
            Ok(0)
        }
        Command::Trace {
            cmd: TraceCmd::List { limit, json },
        } => {
            let traces = weblab::observe::list(&load_world(&cli)?, *limit).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&traces)?);
            } else if traces.is_empty() {
                println!("no traces yet");
            } else {
                for t in traces {
                    println!("{}", t.line());
                }
            }
            Ok(0)
        }
        Command::Trace {
            cmd:
                TraceCmd::Show {
                    id,
                    json,
                    har,
                    lang,
                },
        } => {
            let lang = match lang {
                LangArg::En => Lang::En,
                LangArg::Ko => Lang::Ko,
            };
            tour::show(&load_world(&cli)?, id, *json, har.clone(), lang).await
        }
    }
}

/// Whether `e` comes from writing to a reader that went away.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default) wherever servers run: a client
    // that hangs up must cost its connection an EPIPE, never the process.
    let cli = parse_cli();
    // The TCP lab is pure computation: no runtime, no world.
    if let Command::Tcp { cmd } = cli.command {
        // Only here, with no socket in the process, does a closed reader of
        // our output end us quietly like other Unix tools
        // (`weblab tcp run | head`).
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        return match weblab::tcp::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    return_freed_memory_at_once();
    // On one CPU (a pinned server, a small container) a single-threaded
    // runtime does the same work without the work-stealing machinery:
    // one event loop per process, as nginx runs one per worker.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    // `weblab collect` is one store behind one lock, fed in batches: a
    // second worker only wakes and hands work over, on CPUs the servers it
    // watches (or their load) need (bench/otlp.sh's collector CPU per
    // request: bench/results/otlp-2026-12-07f.txt, runs 1-2 against 3).
    let one_thread = one_cpu || matches!(cli.command, Command::Collect { .. });
    let mut builder = if one_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    // tokio's blocking pool (files, canonicalize) would grow to 512
    // threads under a burst of cold requests, each with its own stack and
    // malloc arena; a server bounds it like its other queues.
    builder.max_blocking_threads(BLOCKING_THREADS);
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        // `weblab tour | head`: the reader has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
