//! `weblab tour`: boot the world, load one page through it, print the trace
//! as a story, a stage table and a waterfall (or JSON).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use weblab_browser::Page;
use weblab_trace::explain::Lang;
use weblab_trace::render::{stage_table, stages, story, waterfall};
use weblab_trace::{Detail, Span, TraceId};

use crate::config::World;
use crate::world::RunningWorld;

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
    let browser = world.browser(http1_only)?;
    let (trace, page) = browser.navigate(url).await;
    Ok(TourResult {
        trace,
        spans: world.collector.assemble(trace),
        page,
    })
}

fn page_summary(page: &Page) -> String {
    let mut out = String::new();
    let m = &page.main;
    let ctype =
        weblab_browser::browser::header_value(&m.headers, "content-type").unwrap_or_default();
    out.push_str(&format!(
        "{} {} {:?}, {} bytes after decoding, content-type {ctype}\n",
        m.url,
        m.status,
        m.version,
        m.body.len()
    ));
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
        match s {
            Ok(f) => out.push_str(&format!(
                "  subresource {} {} {:?}, {} bytes\n",
                f.url.path(),
                f.status,
                f.version,
                f.body.len()
            )),
            Err(e) => out.push_str(&format!("  subresource failed: {e}\n")),
        }
    }
    out
}

/// Runs the tour and prints it; returns the process exit code.
pub async fn run(world: World, opts: TourOptions) -> Result<i32> {
    let running = RunningWorld::start(world, opts.data_dir.clone(), opts.detail).await?;
    let result = visit(&running, &opts.url, opts.http1_only).await?;
    let timings = stages(&result.spans);
    if let Some(path) = &opts.har {
        std::fs::write(path, serde_json::to_string_pretty(&result.har())?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if opts.json {
        let doc = json!({
            "url": opts.url,
            "ok": result.page.is_ok(),
            "error": result.page.as_ref().err().map(|e| e.to_string()),
            "status": result.page.as_ref().ok().map(|p| p.main.status),
            "spans": result.spans,
            "timings": timings,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        let w = &running.world;
        let p = running.ports;
        writeln!(
            out,
            "weblab tour {}\nworld {:?}: {} hosts, ports dns {} http {} https {}, data in {}\n",
            opts.url,
            w.name,
            w.hosts.len(),
            p.dns,
            p.http,
            p.https,
            running.data_dir.display()
        )?;
        writeln!(out, "== The story ==\n{}", story(&result.spans, opts.lang))?;
        writeln!(out, "== Stages ==\n{}", stage_table(&timings))?;
        writeln!(out, "== Waterfall ==\n{}", waterfall(&result.spans, 60))?;
        if let Ok(page) = &result.page {
            writeln!(out, "== Result ==\n{}", page_summary(page))?;
        }
    }
    out.flush()?;
    match &result.page {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}
