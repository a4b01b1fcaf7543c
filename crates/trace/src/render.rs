//! Renderers: they draw what was recorded and never measure anything.
//!
//! - [`story`]: numbered steps across hosts with an explanation each;
//! - [`stages`] + [`stage_table`]: the HAR-style timing of every request;
//! - [`waterfall`]: the requests of a page on one time axis.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::Serialize;

use crate::event::{Event, Phase};
use crate::explain::{Lang, explain};
use crate::span::{Span, SpanId};

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Depth of every span in the parent tree (roots are 0).
fn depths(spans: &[Span]) -> HashMap<SpanId, usize> {
    let parent: HashMap<SpanId, Option<SpanId>> = spans.iter().map(|s| (s.id, s.parent)).collect();
    let mut out = HashMap::new();
    for s in spans {
        let mut d = 0;
        let mut cur = s.parent;
        while let Some(p) = cur {
            if d > 64 {
                break;
            }
            d += 1;
            cur = parent.get(&p).copied().flatten();
        }
        out.insert(s.id, d);
    }
    out
}

/// The numbered story of a trace: one line per span, in start order,
/// indented by nesting. The first step of each kind is followed by its
/// explanation; later steps of the same kind point back to it.
pub fn story(spans: &[Span], lang: Lang) -> String {
    let mut out = String::new();
    let mut explained: HashMap<&'static str, usize> = HashMap::new();
    let Some(t0) = spans.iter().map(|s| s.start_ns).min() else {
        return "(no spans recorded)\n".into();
    };
    let depth = depths(spans);
    for (i, s) in spans.iter().enumerate() {
        let indent = "  ".repeat(depth.get(&s.id).copied().unwrap_or(0).min(8));
        let _ = writeln!(
            out,
            "{:>3}. {:>9.3}ms {:>8.3}ms  {:<9} {:<11} {} {:<16} {indent}{}",
            i + 1,
            ms(s.start_ns - t0),
            ms(s.duration_ns()),
            s.host,
            s.addr,
            s.layer,
            s.component,
            s.event
        );
        if let Some(why) = explain(&s.event, lang)
            && !explained.contains_key(why)
        {
            explained.insert(why, i + 1);
            let _ = writeln!(out, "{:>58}{indent}  -> {why}", "");
        }
    }
    out
}

/// The recorded stages of one client request.
#[derive(Clone, Debug, Serialize)]
pub struct RequestTimings {
    pub request: u32,
    pub url: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Duration of each stage; `None` when the stage did not happen
    /// (e.g. no DNS and no connect on a reused connection).
    pub phases: BTreeMap<Phase, Option<u64>>,
    /// The rest of the total: the browser's own work between stages, so
    /// that the stages plus this add up to the total.
    pub between_ns: i64,
}

impl RequestTimings {
    pub fn total_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The request's time not in any measured stage: the browser's own
    /// work between stages (choosing a connection, building the request,
    /// handing the body over). Negative only if stages overlapped.
    fn remainder(&self) -> i64 {
        let staged: u64 = self.phases.values().flatten().sum();
        self.total_ns() as i64 - staged as i64
    }
}

/// Collects the stage durations of every client request in a trace.
pub fn stages(spans: &[Span]) -> Vec<RequestTimings> {
    let mut out: BTreeMap<u32, RequestTimings> = BTreeMap::new();
    for s in spans {
        if let (Some(r), Event::Navigate { url, .. }) = (s.request, &s.event) {
            out.insert(
                r,
                RequestTimings {
                    request: r,
                    url: url.clone(),
                    start_ns: s.start_ns,
                    end_ns: s.end_ns,
                    phases: Phase::ALL.iter().map(|p| (*p, None)).collect(),
                    between_ns: 0,
                },
            );
        }
    }
    let mut first_stage: HashMap<u32, u64> = HashMap::new();
    for s in spans {
        let (Some(r), Some(phase)) = (s.request, s.event.phase()) else {
            continue;
        };
        let Some(t) = out.get_mut(&r) else { continue };
        let slot = t.phases.entry(phase).or_insert(None);
        *slot = Some(slot.unwrap_or(0) + s.duration_ns());
        let first = first_stage.entry(r).or_insert(s.start_ns);
        *first = (*first).min(s.start_ns);
    }
    for t in out.values_mut() {
        if let Some(first) = first_stage.get(&t.request) {
            let queued = first.saturating_sub(t.start_ns);
            if queued > 0 {
                t.phases.insert(Phase::Blocked, Some(queued));
            }
        }
        t.between_ns = t.remainder();
    }
    out.into_values().collect()
}

/// The stage table: one row per request, one column per stage, `-` for a
/// stage that did not happen (never a fake 0).
pub fn stage_table(timings: &[RequestTimings]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<4} {:<34}", "#", "request");
    for p in Phase::ALL {
        let _ = write!(out, " {:>10}", p.to_string());
    }
    let _ = writeln!(out, " {:>10} {:>10}", "between", "total");
    for t in timings {
        let mut url = t.url.clone();
        if url.len() > 34 {
            url = format!("...{}", &url[url.len() - 31..]);
        }
        let _ = write!(out, "{:<4} {:<34}", t.request, url);
        for p in Phase::ALL {
            match t.phases.get(&p).copied().flatten() {
                Some(ns) => {
                    let _ = write!(out, " {:>8.3}ms", ms(ns));
                }
                None => {
                    let _ = write!(out, " {:>10}", "-");
                }
            }
        }
        let between = t.between_ns as f64 / 1e6;
        let _ = writeln!(out, " {between:>8.3}ms {:>8.3}ms", ms(t.total_ns()));
    }
    if let (Some(start), Some(end)) = (
        timings.iter().map(|t| t.start_ns).min(),
        timings.iter().map(|t| t.end_ns).max(),
    ) {
        let _ = writeln!(
            out,
            "page: {} requests, {:.3} ms from the first request to the last byte\n\
             (each row adds up: its stages + between = total; between is the browser's own work between stages)",
            timings.len(),
            ms(end - start)
        );
    }
    out
}

fn phase_char(p: Phase) -> char {
    match p {
        Phase::Blocked => '.',
        Phase::Dns => 'D',
        Phase::Connect => 'C',
        Phase::Ssl => 'S',
        Phase::Send => '>',
        Phase::Wait => 'w',
        Phase::Receive => 'R',
        Phase::Processing => 'p',
    }
}

/// A DevTools-style waterfall of the client requests in `spans`, `width`
/// columns wide: every stage drawn where it was recorded on the time axis.
pub fn waterfall(spans: &[Span], width: usize) -> String {
    let timings = stages(spans);
    let (Some(start), Some(end)) = (
        timings.iter().map(|t| t.start_ns).min(),
        timings.iter().map(|t| t.end_ns).max(),
    ) else {
        return "(no requests)\n".into();
    };
    let width = width.max(10);
    let span_ns = (end - start).max(1) as f64;
    let col = |t: u64| (((t - start) as f64 / span_ns) * width as f64).floor() as usize;
    let mut out = String::new();
    for t in &timings {
        let mut row = vec![' '; width + 1];
        for s in spans.iter().filter(|s| s.request == Some(t.request)) {
            let Some(p) = s.event.phase() else { continue };
            let (a, b) = (col(s.start_ns), col(s.end_ns).max(col(s.start_ns)));
            for c in row.iter_mut().take(b.min(width) + 1).skip(a) {
                *c = phase_char(p);
            }
        }
        let name = t.url.rsplit('/').next().unwrap_or(&t.url);
        let name = if name.is_empty() { "/" } else { name };
        let _ = writeln!(
            out,
            "{:<14} |{}| {:>8.3}ms",
            name.chars().take(14).collect::<String>(),
            row.iter().collect::<String>(),
            ms(t.total_ns())
        );
    }
    let _ = writeln!(
        out,
        "{:<14}  0ms{:>w$.3}ms   legend: D dns  C connect  S tls  > send  w wait  R receive  p processing",
        "",
        ms(end - start),
        w = width.saturating_sub(5)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::{Collector, Detail, Recorder};
    use crate::event::CacheLevel;
    use crate::span::{Ctx, Layer};

    fn demo() -> Vec<Span> {
        let c = Collector::new(Detail::Full);
        let r = Recorder::new(c.clone(), "client", "127.0.0.2", "browser");
        let ctx = Ctx::new_root();
        let nav = |n: u32, url: &str, a: u64, b: u64| {
            r.span(
                ctx,
                Layer::Application,
                (a, b),
                Some(n),
                Event::Navigate {
                    url: url.into(),
                    initiator: "test".into(),
                },
            )
        };
        nav(0, "https://x.test/", 1_000_000, 9_000_000);
        r.span(
            ctx,
            Layer::Application,
            (1_500_000, 3_000_000),
            Some(0),
            Event::Lookup {
                name: "x.test".into(),
                addrs: vec!["127.0.0.9".into()],
                answered_by: Some(CacheLevel::Resolver),
                error: None,
            },
        );
        r.span(
            ctx,
            Layer::Application,
            (3_000_000, 8_000_000),
            Some(0),
            Event::Waiting { status: 200 },
        );
        nav(1, "https://x.test/a.css", 9_000_000, 11_000_000);
        r.span(
            ctx,
            Layer::Application,
            (9_000_000, 11_000_000),
            Some(1),
            Event::Waiting { status: 200 },
        );
        c.assemble(ctx.trace)
    }

    #[test]
    fn stages_sum_recorded_spans_and_leave_missing_ones_empty() {
        let t = stages(&demo());
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].phases[&Phase::Dns], Some(1_500_000));
        assert_eq!(t[0].phases[&Phase::Wait], Some(5_000_000));
        assert_eq!(t[0].phases[&Phase::Blocked], Some(500_000));
        assert_eq!(t[0].phases[&Phase::Connect], None);
        assert_eq!(t[1].phases[&Phase::Dns], None);
        assert_eq!(t[1].phases[&Phase::Blocked], None);
        let table = stage_table(&t);
        assert!(table.contains("1.500ms"), "{table}");
        assert!(table.lines().nth(2).unwrap().contains(" - "), "{table}");
    }

    #[test]
    fn waterfall_places_stages_on_one_axis() {
        let w = waterfall(&demo(), 50);
        let lines: Vec<&str> = w.lines().collect();
        // The page starts at column 0 and the subresource starts after it.
        let first_d = lines[0].find('D').unwrap();
        let sub_w = lines[1].find('w').unwrap();
        assert!(first_d < sub_w, "{w}");
        assert!(lines[1].starts_with("a.css"), "{w}");
    }

    #[test]
    fn story_numbers_every_span_and_explains_it() {
        let s = story(&demo(), Lang::Ko);
        assert!(s.contains("  1. "));
        assert!(s.contains("C03"));
    }
}
