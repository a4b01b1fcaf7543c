//! `weblab tour`: boot the world, load one page through it, print the trace
//! as a story, a stage table and a waterfall (or JSON).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::json;
use weblab_browser::Page;
use weblab_otlp::OtlpExporter;
use weblab_trace::explain::Lang;
use weblab_trace::render::{path, stage_table, stages, story, waterfall, wrap};
use weblab_trace::{Collector, Detail, Span, TraceId};

use crate::config::World;
use crate::observe;
use crate::world::{RunningWorld, choose_ports, client_browser};

/// What `weblab tour` was asked to do.
pub struct TourOptions {
    pub url: String,
    pub lang: Lang,
    pub json: bool,
    pub http1_only: bool,
    pub detail: Detail,
    pub data_dir: PathBuf,
    /// Also write the requests as a HAR 1.2 file.
    pub har: Option<PathBuf>,
    /// Visit the world that `weblab up` (or `weblab collect` with roles
    /// exporting to it) is running, instead of booting one.
    pub attach: bool,
    /// Also send every span to this OTLP/HTTP endpoint (Jaeger, a
    /// `weblab collect`, any OpenTelemetry collector).
    pub otlp: Option<String>,
    /// Browse from this client host (default: the world's first client).
    pub client: Option<String>,
    /// Keep the browser's HTTP cache in the data directory between runs.
    pub disk_cache: bool,
    /// Keep cookies and the HTTP cache there (`--profile`).
    pub profile: bool,
    /// Also print the full story: every step, explained.
    pub full_story: bool,
    /// What the browser does: load a page, sign in, or one request.
    pub action: Action,
    /// How many times (`--runs`).
    pub runs: u32,
    /// Limits per stage (`--slo`).
    pub slo: Option<Slo>,
    /// Visit twice with one browser; show the second (`--reload`).
    pub reload: bool,
    /// Speak HTTP/1.0 (`--http1.0`, C24).
    pub http10: bool,
    /// Speak HTTP/0.9.
    pub http09: bool,
    /// Pipeline HTTP/1.1 requests (`--pipeline`, C25).
    pub pipeline: bool,
    /// Leave the HTTP cache out (`--no-cache`).
    pub no_cache: bool,
    /// Forget the client's HSTS store and disk cache first (`--clean`).
    pub clean: bool,
}

/// `--slo`: a limit in nanoseconds per stage name (`total`, `ttfb` or a
/// phase).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Slo(pub Vec<(String, u64)>);

/// The stage names `--slo` and `--runs` know, in order.
const STAGE_NAMES: [&str; 10] = [
    "blocked",
    "dns",
    "connect",
    "ssl",
    "send",
    "wait",
    "receive",
    "processing",
    "ttfb",
    "total",
];

/// Parses `total=300ms,ttfb=100ms`.
pub fn parse_slo(text: &str) -> Result<Slo, String> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, limit) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected STAGE=TIME, e.g. total=300ms"))?;
        let name = name.trim().to_ascii_lowercase();
        if !STAGE_NAMES.contains(&name.as_str()) {
            return Err(format!(
                "{name:?} is not a stage; one of {}",
                STAGE_NAMES.join(" ")
            ));
        }
        let ns = crate::units::duration(limit.trim())?;
        out.push((name, ns));
    }
    if out.is_empty() {
        return Err("give at least one STAGE=TIME".into());
    }
    Ok(Slo(out))
}

/// One run's value of each stage name for its first request (ns; a stage
/// that did not happen is 0 here, as nothing was spent on it).
fn stage_values(spans: &[Span]) -> Option<Vec<(&'static str, u64)>> {
    let t = weblab_trace::render::stages(spans).into_iter().next()?;
    let mut out: Vec<(&'static str, u64)> = weblab_trace::Phase::ALL
        .iter()
        .zip(STAGE_NAMES)
        .map(|(p, name)| (name, t.phases.get(p).copied().flatten().unwrap_or(0)))
        .collect();
    // Time to the first byte: from the request's start to the end of its
    // wait for the response head, as recorded (0 when none was waited for).
    let ttfb = spans
        .iter()
        .filter(|s| s.request == Some(t.request))
        .filter(|s| matches!(s.event, weblab_trace::Event::Waiting { .. }))
        .map(|s| s.end_ns.saturating_sub(t.start_ns))
        .max()
        .unwrap_or(0);
    out.push(("ttfb", ttfb));
    out.push(("total", t.total_ns()));
    Some(out)
}

/// The `p`-th percentile (nearest rank) of sorted `v`.
fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Per stage: (name, min, median, p95) over the runs.
fn summarize(runs: &[Vec<(&'static str, u64)>]) -> Vec<(&'static str, u64, u64, u64)> {
    STAGE_NAMES
        .iter()
        .map(|name| {
            let mut v: Vec<u64> = runs
                .iter()
                .filter_map(|r| r.iter().find(|(n, _)| n == name).map(|(_, x)| *x))
                .collect();
            v.sort_unstable();
            (
                *name,
                v.first().copied().unwrap_or(0),
                percentile(&v, 50.0),
                percentile(&v, 95.0),
            )
        })
        .collect()
}

fn runs_table(summary: &[(&'static str, u64, u64, u64)], n: usize, lang: Lang) -> String {
    let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
    // The stage names stay: they are the names --slo takes.
    let mut out = match lang {
        Lang::En => format!(
            "== {n} runs (first request of each; ms) ==\n{:<11} {:>9} {:>9} {:>9}\n",
            "stage", "min", "median", "p95"
        ),
        // (Korean letters are two columns wide: the header is spaced by hand.)
        Lang::Ko => format!(
            "== {n}번 실행 (각 실행의 첫 요청; ms) ==\n단계             최소    중앙값       p95\n"
        ),
    };
    for (name, min, med, p95) in summary {
        out.push_str(&format!(
            "{name:<11} {:>9} {:>9} {:>9}\n",
            ms(*min),
            ms(*med),
            ms(*p95)
        ));
    }
    out.push_str(match lang {
        Lang::En => {
            "(ttfb: from the start to the first byte of the answer; a stage a run skipped counts 0)\n"
        }
        Lang::Ko => "(ttfb: 시작부터 응답의 첫 바이트까지; 어떤 실행에서 일어나지 않은 단계는 0으로 셈)\n",
    });
    out
}

/// The limits broken: the p95 over the runs (the one value for one run).
fn slo_broken(slo: &Slo, summary: &[(&'static str, u64, u64, u64)]) -> Vec<String> {
    slo.0
        .iter()
        .filter_map(|(name, limit)| {
            let (_, _, _, p95) = summary.iter().find(|(n, ..)| n == name)?;
            (p95 > limit).then(|| {
                format!(
                    "{name} {:.3} ms is over its limit of {:.3} ms",
                    *p95 as f64 / 1e6,
                    *limit as f64 / 1e6
                )
            })
        })
        .collect()
}

/// What a tour's browser does in the world.
#[derive(Clone, Debug, Default)]
pub enum Action {
    /// Load `url` and its subresources.
    #[default]
    Page,
    /// Sign in through the identity provider (`tour --oauth`).
    SignIn,
    /// One request, curl-like (`weblab fetch`).
    Fetch(Box<FetchSpec>),
}

/// `weblab fetch`: the request, and what to do with the answer.
#[derive(Clone, Debug, Default)]
pub struct FetchSpec {
    pub out: weblab_browser::Outgoing,
    /// Follow redirects (`-L`).
    pub follow: bool,
    /// Write the body here (`-o`).
    pub output: Option<PathBuf>,
    /// Make the request as a page of this origin would (CORS, C40).
    pub origin: Option<String>,
    /// …sending its cookies cross-origin (`credentials: "include"`).
    pub with_credentials: bool,
    /// Cookies to start with, from a Netscape cookie file (`-b`).
    pub cookies_in: Option<PathBuf>,
    /// Where to write the jar afterwards (`-c`).
    pub cookies_out: Option<PathBuf>,
    /// Servers outside the world: `--resolve`, `--cacert`, `-k`.
    pub reach: weblab_browser::Reach,
}

/// The browser for `opts`: a fetch reaches servers outside the world as
/// its flags say.
fn for_action(
    browser: weblab_browser::Browser,
    opts: &TourOptions,
) -> Result<weblab_browser::Browser> {
    let browser = match (opts.http10, opts.http09) {
        (true, _) => browser.speaking_http10(),
        (_, true) => browser.speaking_http09(),
        _ => browser,
    };
    let browser = if opts.pipeline {
        browser.pipelining()?
    } else {
        browser
    };
    let browser = if opts.no_cache {
        browser.without_cache()
    } else {
        browser
    };
    Ok(match &opts.action {
        Action::Fetch(spec) => browser.reaching(spec.reach.clone())?,
        _ => browser,
    })
}

/// `--clean`: the client's HSTS store, disk cache and cookies are removed, so the
/// browser starts as a new one (each removal said on stderr).
fn forget(data_dir: &std::path::Path, host: &str) -> Result<()> {
    for name in [
        format!("hsts-{host}.json"),
        format!("http-cache-{host}.json"),
        format!("cookies-{host}.txt"),
    ] {
        let path = data_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => eprintln!("--clean: removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("--clean: cannot remove {}: {e}", path.display()),
        }
    }
    Ok(())
}

/// The browser with what `--disk-cache` or `--profile` keeps in the data
/// directory for `host`'s browser: its HTTP cache and (with `--profile`)
/// its cookie jar. A file that cannot be read is said, and the browser
/// starts without it.
fn with_profile(
    browser: weblab_browser::Browser,
    opts: &TourOptions,
    host: &str,
) -> weblab_browser::Browser {
    let browser = if opts.disk_cache || opts.profile {
        let path = opts.data_dir.join(format!("http-cache-{host}.json"));
        let (browser, trouble) = browser.with_disk_cache(path);
        if let Some(t) = trouble {
            eprintln!("disk cache not used ({t}); starting with an empty one");
        }
        browser
    } else {
        browser
    };
    if opts.profile {
        let path = cookie_path(&opts.data_dir, host);
        // A jar holds at most 3000 cookies: 16 MiB is plenty.
        match weblab_browser::browser::read_bounded(&path, 16 << 20) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("cookies not loaded ({}: {e})", path.display()),
            Ok(bytes) => {
                let loaded = String::from_utf8(bytes)
                    .map_err(|_| "not UTF-8 text".to_string())
                    .and_then(|t| browser.load_cookies(&t));
                if let Err(e) = loaded {
                    eprintln!("cookies not loaded ({}: {e})", path.display());
                }
            }
        }
    }
    browser
}

/// Where `--profile` keeps `host`'s cookies (Netscape format, as curl's
/// `-c` writes it).
fn cookie_path(data_dir: &std::path::Path, host: &str) -> PathBuf {
    data_dir.join(format!("cookies-{host}.txt"))
}

/// Writes what the profile keeps back, saying so when it cannot.
fn save_profile(browser: &weblab_browser::Browser, opts: &TourOptions, host: &str) {
    if let Err(e) = browser.save_cache() {
        eprintln!("disk cache not written: {e}");
    }
    if opts.profile {
        let path = cookie_path(&opts.data_dir, host);
        let tmp = path.with_extension("tmp");
        let written =
            std::fs::write(&tmp, browser.cookie_file()).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            eprintln!("cookies not written ({}: {e})", path.display());
        }
    }
}

/// Redirects `fetch -L` follows at most (curl's default is 50; a browser
/// stops near 20).
const MAX_REDIRECTS: u32 = 20;

/// Colour only for a person at a terminal, and never with `NO_COLOR` set
/// (no-color.org).
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The width to print for: `$COLUMNS`, else the terminal's, else 100.
pub fn term_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
    {
        return usize::max(n, 40);
    }
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize; a non-terminal stdout fails.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col >= 40 {
        usize::from(ws.ws_col)
    } else {
        100
    }
}

/// The client the options name, or a clear error listing the clients.
fn pick_client<'a>(
    world: &'a World,
    opts: &TourOptions,
) -> Result<&'a crate::config::ClientConfig> {
    world.client_on(opts.client.as_deref()).ok_or_else(|| {
        let names: Vec<&str> = world.clients.iter().map(|c| c.host.as_str()).collect();
        anyhow::anyhow!(
            "no client on host {:?}; the world's clients: {}",
            opts.client.as_deref().unwrap_or(""),
            names.join(", ")
        )
    })
}

/// The outcome of one tour: the assembled trace and the page (or the error).
pub struct TourResult {
    pub trace: TraceId,
    pub spans: Vec<Span>,
    pub page: Result<Page, weblab_browser::BrowserError>,
}

/// An RFC 3339 date for a span time (Unix nanoseconds).
pub fn date(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl TourResult {
    /// The trace's requests as a HAR 1.2 document.
    pub fn har(&self) -> serde_json::Value {
        weblab_trace::har::har(&self.spans, env!("CARGO_PKG_VERSION"), &date)
    }
}

/// Loads `url` through a running world with a fresh browser.
pub async fn visit(world: &RunningWorld, url: &str, http1_only: bool) -> Result<TourResult> {
    visit_from(world, &world.world.client, url, http1_only).await
}

/// Loads `url` with a fresh browser on `client`'s host.
pub async fn visit_from(
    world: &RunningWorld,
    client: &crate::config::ClientConfig,
    url: &str,
    http1_only: bool,
) -> Result<TourResult> {
    let browser = world.browser_on(client, http1_only)?;
    let (trace, page) = browser.navigate(url).await;
    Ok(TourResult {
        trace,
        spans: world.collector.assemble(trace),
        page,
    })
}

fn page_summary(page: &Page, lang: Lang) -> String {
    let mut out = String::new();
    let m = &page.main;
    let ctype =
        weblab_browser::browser::header_value(&m.headers, "content-type").unwrap_or_default();
    let (url, status, n) = (&m.url, m.status, m.body.len());
    let version = weblab_trace::event::version_name(m.version);
    out.push_str(&match lang {
        Lang::En => {
            format!("{url} {status} {version}, {n} bytes after decoding, content-type {ctype}\n")
        }
        Lang::Ko => {
            format!("{url} {status} {version}, 압축을 푼 뒤 {n}바이트, content-type {ctype}\n")
        }
    });
    if ctype.starts_with("application/json") {
        // C06: the API's answer as data.
        match serde_json::from_slice::<serde_json::Value>(&m.body) {
            Ok(v) => out.push_str(&format!(
                "JSON data:\n{}\n",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            )),
            Err(e) => out.push_str(&format!("body claims JSON but does not parse: {e}\n")),
        }
    }
    for s in &page.subresources {
        let line = match (s, lang) {
            (Ok(f), Lang::En) => format!(
                "  subresource {} {} {}, {} bytes\n",
                f.url.path(),
                f.status,
                weblab_trace::event::version_name(f.version),
                f.body.len()
            ),
            (Ok(f), Lang::Ko) => format!(
                "  하위 리소스 {} {} {}, {}바이트\n",
                f.url.path(),
                f.status,
                weblab_trace::event::version_name(f.version),
                f.body.len()
            ),
            (Err(e), Lang::En) => format!("  subresource failed: {e}\n"),
            (Err(e), Lang::Ko) => format!("  하위 리소스 실패: {e}\n"),
        };
        out.push_str(&line);
    }
    out
}

/// What the tour does with its browser: load the page, or walk the
/// sign-in through the identity provider.
async fn browse(
    browser: &weblab_browser::Browser,
    opts: &TourOptions,
    world: &World,
) -> Result<(TraceId, Result<Page, weblab_browser::BrowserError>)> {
    match &opts.action {
        Action::SignIn => {
            let plan = crate::signin::plan(world)?;
            Ok(crate::signin::walk(browser, &plan).await)
        }
        Action::Page => Ok(browser.navigate(&opts.url).await),
        Action::Fetch(spec) => {
            let url = url::Url::parse(&opts.url)?;
            let ctx = weblab_trace::Ctx::new_root();
            let dest = weblab_browser::Destination::Document;
            if let Some(path) = &spec.cookies_in {
                // A cookie file holds at most 3000 cookies: 16 MiB is plenty.
                let bytes =
                    weblab_browser::browser::read_bounded(path, 16 << 20).with_context(|| {
                        format!("-b {}: cannot read the cookie file", path.display())
                    })?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("-b {}: not UTF-8 text", path.display()))?;
                browser
                    .load_cookies(&text)
                    .map_err(|e| anyhow::anyhow!("-b {}: {e}", path.display()))?;
            }
            let got = if let Some(origin) = &spec.origin {
                browser
                    .cors_send(ctx, &url, origin, &spec.out, spec.with_credentials)
                    .await
            } else if spec.follow {
                let first = (&url, spec.out.clone());
                browser.walk(ctx, first, MAX_REDIRECTS, |_| None).await
            } else {
                browser.send(ctx, 0, &url, dest, &spec.out).await
            };
            browser.report_connections(ctx);
            if let Some(path) = &spec.cookies_out {
                std::fs::write(path, browser.cookie_file()).with_context(|| {
                    format!("-c {}: cannot write the cookie jar", path.display())
                })?;
            }
            let page = got.map(|main| Page {
                main,
                subresources: Vec::new(),
            });
            Ok((ctx.trace, page))
        }
    }
}

/// The answer of `weblab fetch`: the status line and every header as
/// received, then the body: JSON as data, short text as it is, anything
/// else only counted (or written to `-o FILE`).
fn response(page: &Page, output: Option<&PathBuf>) -> Result<String> {
    use std::fmt::Write as _;
    let m = &page.main;
    let mut out = String::new();
    let reason = http::StatusCode::from_u16(m.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let version = weblab_trace::event::version_name(m.version);
    match m.version {
        http::Version::HTTP_09 => {
            let _ = writeln!(
                out,
                "(HTTP/0.9: no status line and no headers; the body follows)"
            );
        }
        _ => {
            let _ = writeln!(out, "{version} {} {reason}", m.status);
        }
    }
    for (k, v) in &m.headers {
        let _ = writeln!(out, "{k}: {}", String::from_utf8_lossy(v.as_bytes()));
    }
    out.push('\n');
    if let Some(path) = output {
        std::fs::write(path, &m.body)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        let _ = writeln!(
            out,
            "body: {} bytes written to {}",
            m.body.len(),
            path.display()
        );
        return Ok(out);
    }
    let ctype =
        weblab_browser::browser::header_value(&m.headers, "content-type").unwrap_or_default();
    let json = ctype
        .starts_with("application/json")
        .then(|| serde_json::from_slice::<serde_json::Value>(&m.body).ok())
        .flatten();
    match (json, std::str::from_utf8(&m.body)) {
        (Some(v), _) => {
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v)?);
        }
        (None, Ok(text)) if text.len() <= 2048 => out.push_str(text),
        _ => {
            let _ = writeln!(
                out,
                "body: {} bytes (after decoding); -o FILE to keep it",
                m.body.len()
            );
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Runs the browser against the world that is already running for
/// `world` (same world file and block): its spans are sent to that world's
/// collector, and the trace is read back from there, server spans included.
pub async fn attach(world: &World, opts: &TourOptions) -> Result<TourResult> {
    observe::find_running(world).await?;
    let exporter =
        OtlpExporter::start(&format!("http://{}", world.collector)).map_err(anyhow::Error::msg)?;
    let collector = Collector::with_sinks(opts.detail, None, vec![exporter.clone()]);
    let client = pick_client(world, opts)?;
    let browser = client_browser(
        world,
        client,
        choose_ports(world),
        &opts.data_dir,
        &collector,
        Arc::new(Mutex::new(Default::default())),
        opts.http1_only,
    )?;
    let browser = with_profile(for_action(browser, opts)?, opts, &client.host);
    let (trace, page) = browse(&browser, opts, world).await?;
    save_profile(&browser, opts, &client.host);
    exporter.flush().await;
    let spans = observe::fetch_settled(world, trace, Duration::from_secs(3)).await?;
    Ok(TourResult { trace, spans, page })
}

/// Prints a trace as story, stages and waterfall (or JSON), with `header`
/// on top and the page's summary below when there is a page.
pub fn print(
    header: &str,
    trace: TraceId,
    spans: &[Span],
    page: Option<&Result<Page, weblab_browser::BrowserError>>,
    json_out: bool,
    lang: Lang,
    detail: bool,
) -> Result<()> {
    let timings = stages(spans);
    let mut out = std::io::stdout().lock();
    if json_out {
        let mut doc = json!({
            "trace": trace,
            "spans": spans,
            "timings": timings,
        });
        if let Some(page) = page {
            doc["ok"] = json!(page.is_ok());
            doc["error"] = json!(page.as_ref().err().map(|e| e.to_string()));
            doc["status"] = json!(page.as_ref().ok().map(|p| p.main.status));
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        let width = term_width();
        let mut text = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(text, "{header}");
        let _ = writeln!(
            text,
            "== The path, a line per hop ==\n{}",
            path(spans, width, colour(), lang)
        );
        if detail {
            let _ = writeln!(
                text,
                "== The story ==\n{}",
                wrap(&story(spans, lang, colour()), width)
            );
        }
        let _ = writeln!(text, "== Stages ==\n{}", stage_table(&timings, lang));
        let _ = writeln!(text, "== Waterfall ==\n{}", waterfall(spans, 60, lang));
        if let Some(t) = weblab_trace::render::web_vs_app(spans, lang) {
            let _ = writeln!(text, "== Web server vs application server (C51) ==\n{t}");
        }
        if let Some(Ok(page)) = page {
            let mut result = page_summary(page, lang);
            if let Some(h) = weblab_trace::render::hpack_total(spans, lang) {
                result.truncate(result.trim_end().len());
                result.push('\n');
                result.push_str(&h);
            }
            let _ = writeln!(text, "== Result ==\n{}", wrap(&result, width));
        }
        if !detail {
            let _ = writeln!(text, "(every step, explained: --detail)");
        }
        let text = match lang {
            Lang::Ko => korean(&text),
            Lang::En => text,
        };
        write!(out, "{text}")?;
    }
    out.flush()?;
    Ok(())
}

/// The view's own words in Korean (`--lang ko`): the headings. The world
/// line, the hop lines, the story, the tables, the legend and the result
/// are written in Korean where they are made.
fn korean(text: &str) -> String {
    const WORDS: [(&str, &str); 8] = [
        ("== The path, a line per hop ==", "== 경로: 홉마다 한 줄 =="),
        ("== The story ==", "== 모든 단계와 설명 =="),
        ("== Stages ==", "== 단계별 시간 =="),
        ("== Waterfall ==", "== 워터폴 =="),
        (
            "== Web server vs application server (C51) ==",
            "== 웹 서버와 애플리케이션 서버 (C51) ==",
        ),
        ("== Result ==", "== 결과 =="),
        ("== Response ==", "== 응답 =="),
        (
            "(every step, explained: --detail)",
            "(모든 단계와 설명은 --detail)",
        ),
    ];
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut l = line.to_string();
        for (en, ko) in WORDS {
            l = l.replace(en, ko);
        }
        out.push_str(&l);
    }
    out
}

/// Writes the HAR file of `spans` when one was asked for.
fn write_har(spans: &[Span], path: Option<&PathBuf>) -> Result<()> {
    if let Some(path) = path {
        let doc = weblab_trace::har::har(spans, env!("CARGO_PKG_VERSION"), &date);
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// An origin as `--origin` takes it (`https://other.test`), checked and
/// written as browsers write it (scheme, host, port when not the
/// default's).
pub fn origin_of(input: &str) -> Result<String> {
    let u = url::Url::parse(input)
        .map_err(|e| anyhow::anyhow!("--origin {input:?}: {e} (e.g. https://other.test)"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        anyhow::bail!("--origin {input:?}: an http(s) origin, e.g. https://other.test");
    }
    Ok(u.origin().ascii_serialization())
}

/// The URL as an address bar takes it: `myapp.test/login` means
/// `https://myapp.test/login`; anything that still does not parse is an
/// error before any server starts.
pub fn address_bar(input: &str) -> Result<String> {
    let text = input.trim();
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("https://{text}")
    };
    let parsed = url::Url::parse(&full)
        .map_err(|e| anyhow::anyhow!("bad URL {input:?}: {e} (try https://myapp.test/login)"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        anyhow::bail!("bad URL {input:?}: weblab fetches http:// and https:// URLs with a host");
    }
    Ok(full)
}

/// Runs the tour and prints it; returns the process exit code.
pub async fn run(world: World, mut opts: TourOptions) -> Result<i32> {
    // Mistakes are named before the world boots.
    opts.url = address_bar(&opts.url)?;
    let sign_in = match opts.action {
        Action::SignIn => Some(crate::signin::plan(&world)?),
        _ => None,
    };
    let verb = match opts.action {
        Action::Fetch(_) => "weblab fetch",
        _ => "weblab tour",
    };
    if let Some(p) = &sign_in {
        opts.url = p.start.to_string();
    }
    if let Some(path) = &opts.har {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let again = if opts.reload {
        " (second visit, same browser)"
    } else {
        ""
    };
    let what = match &sign_in {
        Some(p) => format!(
            "--oauth: sign in at {} through {} as {} (password {})",
            p.start, p.provider, p.email, p.password
        ),
        None => format!("{}{again}", opts.url),
    };
    let mut runs: Vec<Vec<(&'static str, u64)>> = Vec::new();
    if opts.clean {
        forget(&opts.data_dir, &pick_client(&world, &opts)?.host)?;
    }
    if opts.attach && (opts.runs > 1 || opts.reload) {
        anyhow::bail!("--runs and --reload work on a world of their own, not with --attach");
    }
    let (result, header) = if opts.attach {
        let result = attach(&world, &opts).await?;
        runs.extend(stage_values(&result.spans));
        let header = format!(
            "{verb} --attach {what}\nworld {:?} (running; collector http://{}), trace {}\n",
            world.name, world.collector, result.trace
        );
        (result, header)
    } else {
        let exporter = match &opts.otlp {
            Some(url) => Some(OtlpExporter::start(url).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let sinks: Vec<Arc<dyn weblab_trace::SpanSink>> = exporter
            .iter()
            .map(|e| e.clone() as Arc<dyn weblab_trace::SpanSink>)
            .collect();
        let collector = Collector::with_sinks(
            opts.detail,
            Some(weblab_trace::TraceStore::new(Default::default())),
            sinks,
        );
        let client = pick_client(&world, &opts)?.clone();
        let running =
            RunningWorld::start_with(world.clone(), opts.data_dir.clone(), collector).await?;
        let browser = for_action(running.browser_on(&client, opts.http1_only)?, &opts)?;
        let browser = with_profile(browser, &opts, &client.host);
        let (mut trace, mut page) = browse(&browser, &opts, &world).await?;
        if opts.reload {
            // The same browser again: its cache and open connections.
            (trace, page) = browse(&browser, &opts, &world).await?;
        }
        save_profile(&browser, &opts, &client.host);
        let result = TourResult {
            trace,
            spans: running.collector.assemble(trace),
            page,
        };
        // More runs, each with a fresh browser (no browser cache, no open
        // connections); the host's OS cache and the resolver stay warm.
        runs.extend(stage_values(&result.spans));
        for _ in 1..opts.runs {
            let browser = for_action(running.browser_on(&client, opts.http1_only)?, &opts)?;
            let (t, _) = browse(&browser, &opts, &world).await?;
            runs.extend(stage_values(&running.collector.assemble(t)));
        }
        if let Some(e) = &exporter {
            e.flush().await;
        }
        let (w, p) = (&running.world, running.ports);
        let (name, n, dir) = (&w.name, w.hosts.len(), running.data_dir.display());
        let ports = format!("dns {} http {} https {}", p.dns, p.http, p.https);
        let header = match opts.lang {
            Lang::En => {
                format!("{verb} {what}\nworld {name:?}: {n} hosts, ports {ports}, data in {dir}\n")
            }
            Lang::Ko => {
                format!(
                    "{verb} {what}\n월드 {name:?}: 호스트 {n}개, 포트 {ports}, 데이터 위치 {dir}\n"
                )
            }
        };
        (result, header)
    };
    write_har(&result.spans, opts.har.as_ref())?;
    let mut header = header;
    let mut page = Some(&result.page);
    if let (Action::Fetch(spec), Ok(p)) = (&opts.action, &result.page) {
        // (-o writes the body in either form.)
        let shown = response(p, spec.output.as_ref())?;
        if !opts.json {
            // The answer first, as curl -i shows it; the page summary
            // would only repeat it.
            header = format!("{header}== Response ==\n{shown}");
            page = None;
        }
    }
    print(
        &header,
        result.trace,
        &result.spans,
        page,
        opts.json,
        opts.lang,
        opts.full_story,
    )?;
    let summary = summarize(&runs);
    if opts.runs > 1 && !opts.json {
        print!("\n{}", runs_table(&summary, runs.len(), opts.lang));
    }
    let code = match &result.page {
        Ok(p) if sign_in.is_some() && !crate::signin::signed_in(p) => {
            eprintln!(
                "error: the sign-in ended at {} with {}, not signed in",
                p.main.url, p.main.status
            );
            1
        }
        Ok(_) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    };
    if code != 0 {
        return Ok(code);
    }
    if let Some(slo) = &opts.slo {
        let broken = slo_broken(slo, &summary);
        let which = match (runs.len() > 1, opts.lang) {
            (true, Lang::En) => "p95 over the runs",
            (false, Lang::En) => "this run",
            (true, Lang::Ko) => "여러 실행의 p95",
            (false, Lang::Ko) => "이번 실행",
        };
        if !broken.is_empty() {
            for b in &broken {
                match opts.lang {
                    Lang::En => eprintln!("slo broken ({which}): {b}"),
                    Lang::Ko => eprintln!("SLO 위반 ({which}): {b}"),
                }
            }
            return Ok(4);
        }
        if !opts.json {
            let limits: Vec<String> = slo
                .0
                .iter()
                .map(|(n, l)| format!("{n} <= {:.3} ms", *l as f64 / 1e6))
                .collect();
            match opts.lang {
                Lang::En => println!("slo met ({which}): {}", limits.join(", ")),
                Lang::Ko => println!("SLO 충족 ({which}): {}", limits.join(", ")),
            }
        }
    }
    Ok(0)
}

/// `weblab trace show ID`: one trace of the running world.
pub async fn show(
    world: &World,
    id: &str,
    json_out: bool,
    har: Option<PathBuf>,
    lang: Lang,
) -> Result<i32> {
    let trace = TraceId::try_from(id.to_string())
        .map_err(|e| anyhow::anyhow!("{id:?} is not a trace id: {e}"))?;
    observe::find_running(world).await?;
    let Some(spans) = observe::fetch(world, trace).await? else {
        anyhow::bail!(
            "no trace {trace} in world {:?} (it may have been dropped; see `weblab trace list`)",
            world.name
        );
    };
    write_har(&spans, har.as_ref())?;
    let header = format!("trace {trace} of world {:?}\n", world.name);
    print(&header, trace, &spans, None, json_out, lang, true)?;
    Ok(0)
}
