//! Renderers: they draw what was recorded and never measure anything.
//!
//! - [`path`]: the short view, one line per hop (a span whose parent ran
//!   on another host, or a root);
//! - [`story`]: numbered steps across hosts with an explanation each;
//! - [`stages`] + [`stage_table`]: the HAR-style timing of every request;
//! - [`waterfall`]: the requests of a page on one time axis.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::Serialize;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::event::{Event, Phase};
use crate::explain::{Lang, explain};
use crate::korean::said;
use crate::span::{Span, SpanId};

/// `text` padded with spaces to `width` terminal columns (Korean letters
/// take two), on the right (`left`) or on the left.
fn pad(text: &str, width: usize, left: bool) -> String {
    let room = " ".repeat(width.saturating_sub(text.width()));
    if left {
        format!("{text}{room}")
    } else {
        format!("{room}{text}")
    }
}

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

/// `text` cut to `width` terminal columns, with `…` where it was cut.
pub fn fit(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width.saturating_sub(1) {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Wraps every line of `text` longer than `width` at spaces; the
/// continuation lines are indented under the line's first words.
pub fn wrap(text: &str, width: usize) -> String {
    let width = width.max(40);
    let mut out = String::new();
    for line in text.lines() {
        let lead = line.len() - line.trim_start().len();
        let indent = " ".repeat((lead + 6).min(width / 2));
        let mut rest: Vec<char> = line.chars().collect();
        let mut first = true;
        loop {
            let room = if first { width } else { width - indent.len() };
            if !first {
                out.push_str(&indent);
            }
            // How many characters fit in `room` columns (colour escapes
            // take none).
            let mut used = 0;
            let mut in_escape = false;
            let fits = rest
                .iter()
                .take_while(|c| {
                    match (in_escape, **c) {
                        (false, '\x1b') => in_escape = true,
                        (true, 'm') => in_escape = false,
                        (true, _) => {}
                        (false, c) => used += c.width().unwrap_or(0),
                    }
                    used <= room
                })
                .count();
            if fits == rest.len() {
                out.extend(rest.iter());
                out.push('\n');
                break;
            }
            // Break at the last space that fits (past the indent), or hard.
            let cut = rest[..=fits]
                .iter()
                .rposition(|c| *c == ' ')
                .filter(|&i| i > lead)
                .unwrap_or(fits.max(1));
            out.extend(rest[..cut].iter());
            out.push('\n');
            let skip = rest[cut..].iter().take_while(|c| **c == ' ').count();
            rest.drain(..cut + skip);
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }
    out
}

/// The short view of a trace: one line per hop, in start order. A hop is
/// a span that began the trace or whose parent ran on another host: the
/// moment the request reached a host (client → resolver → root → … → LB →
/// web → app and back).
pub fn path(spans: &[Span], width: usize, colour: bool, lang: Lang) -> String {
    let Some(t0) = spans.iter().map(|s| s.start_ns).min() else {
        return "(no spans recorded)\n".into();
    };
    let host_of: HashMap<SpanId, &str> = spans.iter().map(|s| (s.id, &*s.host)).collect();
    let mut out = String::new();
    let [host, address, start, took, what] = match lang {
        Lang::En => ["host", "address", "start", "took", "what happened there"],
        Lang::Ko => ["호스트", "주소", "시작", "소요", "거기서 일어난 일"],
    };
    let _ = writeln!(
        out,
        "{}",
        fit(
            &format!(
                "{:>3}  {} {} {} {}  {what}",
                "#",
                pad(host, 9, true),
                pad(address, 11, true),
                pad(start, 9, false),
                pad(took, 9, false),
            ),
            width
        )
    );
    // Requests the browser answered from its HTTP cache (its note says so).
    let cached: std::collections::HashSet<u32> = spans
        .iter()
        .filter(|s| {
            matches!(&s.event, Event::Note { text }
                if text.starts_with("HTTP cache (C30)") && text.contains(" is fresh "))
        })
        .filter_map(|s| s.request)
        .collect();
    let mut n = 0;
    for s in spans {
        // A statement is the application's trip to its database: a hop
        // too, though the database has no spans of its own.
        let crossed = matches!(s.event, Event::Sql { .. })
            || match s.parent {
                None => true,
                Some(p) => host_of.get(&p).is_none_or(|h| *h != &*s.host),
            };
        if !crossed {
            continue;
        }
        n += 1;
        let what = match (&s.event, s.request) {
            (Event::Navigate { url, .. }, Some(r)) if cached.contains(&r) => {
                let path = url
                    .split_once("://")
                    .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                    .unwrap_or(url);
                match lang {
                    Lang::En => format!("from the HTTP cache (no request): {path}"),
                    Lang::Ko => format!("HTTP 캐시에서 꺼냄 (요청 없음): {path}"),
                }
            }
            (Event::Sql { .. }, _) => match lang {
                Lang::En => format!("to its database: {}", said(&s.event, lang)),
                Lang::Ko => format!("데이터베이스로: {}", said(&s.event, lang)),
            },
            _ => said(&s.event, lang),
        };
        let line = format!(
            "{n:>3}  {:<9} {:<11} {:>7.3}ms {:>7.3}ms  {what}",
            s.host,
            s.addr,
            ms(s.start_ns - t0),
            ms(s.duration_ns()),
        );
        let line = fit(&line, width);
        // Colour goes on after fitting, so escape codes never count as width.
        let line = match colour {
            true => line.replacen(
                &format!("{:<9}", s.host),
                &format!("\x1b[{}m{:<9}\x1b[0m", host_colour(&s.host), s.host),
                1,
            ),
            false => line,
        };
        let _ = writeln!(out, "{line}");
    }
    out
}

/// An ANSI colour per layer: application, session, transport, network.
fn layer_colour(layer: crate::span::Layer) -> u8 {
    use crate::span::Layer;
    match layer {
        Layer::Application => 32,
        Layer::Session => 35,
        Layer::Transport => 33,
        Layer::Network => 36,
    }
}

/// An ANSI colour for a host, the same for every line of that host.
fn host_colour(host: &str) -> u8 {
    let sum: u32 = host
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .bytes()
        .map(u32::from)
        .sum();
    // The six bright colours, 91..96.
    91 + (sum % 6) as u8
}

/// The numbered story of a trace: one line per span, in start order,
/// indented by nesting. The first step of each kind is followed by its
/// explanation; later steps of the same kind point back to it.
pub fn story(spans: &[Span], lang: Lang, colour: bool) -> String {
    let mut out = String::new();
    let mut explained: HashMap<&'static str, usize> = HashMap::new();
    let Some(t0) = spans.iter().map(|s| s.start_ns).min() else {
        return "(no spans recorded)\n".into();
    };
    let depth = depths(spans);
    for (i, s) in spans.iter().enumerate() {
        let indent = "  ".repeat(depth.get(&s.id).copied().unwrap_or(0).min(8));
        // Which of the page's requests a client step belongs to.
        let req = s.request.map(|r| format!("[req {r}] ")).unwrap_or_default();
        let (host, layer) = (format!("{:<9}", s.host), s.layer.to_string());
        let (host, layer) = match colour {
            true => (
                format!("\x1b[{}m{host}\x1b[0m", host_colour(&s.host)),
                format!("\x1b[{}m{layer}\x1b[0m", layer_colour(s.layer)),
            ),
            false => (host, layer),
        };
        let _ = writeln!(
            out,
            "{:>3}. {:>9.3}ms {:>8.3}ms  {host} {:<11} {layer} {:<16} {indent}{req}{}",
            i + 1,
            ms(s.start_ns - t0),
            ms(s.duration_ns()),
            s.addr,
            s.component,
            said(&s.event, lang)
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

/// The stage table: one row per request, one column per stage (in
/// milliseconds), `-` for a stage that did not happen (never a fake 0);
/// 100 columns wide.
/// C51 in numbers: for each request a web server answered, how long it
/// took there, and for a proxied one how much of that was the trip to
/// the application server (the forwarding span, which contains the app's
/// work). `None` when no web server span is in the trace.
/// HTTP/2 header compression over a page load (C26): the browser's
/// request header blocks as HPACK encoded them on the wire, against the
/// same fields as text, in the order the requests were prepared. `None`
/// when no request went over HTTP/2.
pub fn hpack_total(spans: &[Span], lang: Lang) -> Option<String> {
    let mut blocks: Vec<(u64, u64, u64)> = spans
        .iter()
        .filter_map(|s| match &s.event {
            Event::RequestPrepared {
                headers,
                header_block: Some(n),
                ..
            } => {
                let text: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
                Some((s.start_ns, *n, text as u64))
            }
            _ => None,
        })
        .collect();
    if blocks.is_empty() {
        return None;
    }
    blocks.sort_by_key(|b| b.0);
    let wire: u64 = blocks.iter().map(|b| b.1).sum();
    let text: u64 = blocks.iter().map(|b| b.2).sum();
    let less = (wire * 100)
        .checked_div(text)
        .map_or(0, |pct| 100 - pct.min(100));
    let first = blocks[0].1;
    let later = blocks[1..].iter().map(|b| b.1);
    let range = match (later.clone().min(), later.max()) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo}"),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => String::new(),
    };
    let n = blocks.len();
    Some(match (lang, range.is_empty()) {
        (Lang::En, true) => format!(
            "HTTP/2 header compression (C26): 1 request's header block was {wire} bytes on the wire for {text} bytes of fields as text ({less} % less)"
        ),
        (Lang::En, false) => format!(
            "HTTP/2 header compression (C26): {n} requests' header blocks were {wire} bytes on the wire for {text} bytes of fields as text ({less} % less); the first {first} bytes, the later ones {range} bytes each"
        ),
        (Lang::Ko, true) => format!(
            "HTTP/2 헤더 압축 (C26): 요청 1개의 헤더 블록이 텍스트로 {text}바이트인 필드를 전송 중 {wire}바이트로 보냈습니다 ({less}% 감소)"
        ),
        (Lang::Ko, false) => format!(
            "HTTP/2 헤더 압축 (C26): 요청 {n}개의 헤더 블록이 텍스트로 {text}바이트인 필드를 전송 중 {wire}바이트로 보냈습니다 ({less}% 감소). 첫 블록은 {first}바이트, 이후는 각각 {range}바이트"
        ),
    })
}

pub fn web_vs_app(spans: &[Span], lang: Lang) -> Option<String> {
    use crate::event::WebAction;
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut rows = Vec::new();
    for s in spans.iter().filter(|s| s.component.as_str() == "web") {
        let Event::HttpServe { path, .. } = &s.event else {
            continue;
        };
        // The column holds 24 characters; a longer path (a query with a
        // code in it) is cut with an ellipsis.
        let path: String = if path.chars().count() > 24 {
            path.chars().take(23).chain(std::iter::once('…')).collect()
        } else {
            path.clone()
        };
        let children = || spans.iter().filter(|c| c.parent == Some(s.id));
        let forward = children().find(|c| matches!(c.event, Event::ProxyForward { .. }));
        let is_static = children().any(|c| {
            matches!(
                &c.event,
                Event::WebDecision {
                    action: WebAction::Static { .. },
                    ..
                }
            )
        });
        let row = match (forward, is_static) {
            (Some(f), _) => {
                let Event::ProxyForward { upstream, .. } = &f.event else {
                    continue;
                };
                let app = upstream.split(' ').next().unwrap_or(upstream);
                let (total, waited) = (ms(s.duration_ns()), ms(f.duration_ns()));
                let said = match lang {
                    Lang::En => {
                        format!("{total:>8.3} ms, of which {waited:.3} ms waiting for {app}")
                    }
                    Lang::Ko => {
                        format!("{total:>8.3} ms, 그중 {waited:.3} ms는 {app}을(를) 기다림")
                    }
                };
                format!("  {path:<24} {:<6} {said}", s.host.as_str())
            }
            (None, true) => {
                let total = ms(s.duration_ns());
                let said = match lang {
                    Lang::En => format!("{total:>8.3} ms, the web server alone"),
                    Lang::Ko => format!("{total:>8.3} ms, 웹 서버 혼자 응답"),
                };
                format!("  {path:<24} {:<6} {said}", s.host.as_str())
            }
            (None, false) => continue,
        };
        rows.push((s.start_ns, row));
    }
    if rows.is_empty() {
        return None;
    }
    rows.sort();
    let mut out = match lang {
        Lang::En => String::from("  path                     server       time\n"),
        Lang::Ko => format!(
            "  {} {} {}\n",
            pad("경로", 24, true),
            pad("서버", 6, true),
            pad("시간", 11, false)
        ),
    };
    for (_, r) in rows {
        out.push_str(&r);
        out.push('\n');
    }
    Some(out)
}

pub fn stage_table(timings: &[RequestTimings], lang: Lang) -> String {
    let mut out = String::new();
    let request = match lang {
        Lang::En => "request (ms)",
        Lang::Ko => "요청 (ms)",
    };
    let _ = write!(out, "{:<3} {}", "#", pad(request, 16, true));
    for p in Phase::ALL {
        let name = match (lang, p) {
            (Lang::En, Phase::Processing) => "process".to_string(),
            (Lang::En, other) => other.to_string(),
            (Lang::Ko, other) => phase_ko(other).to_string(),
        };
        let _ = write!(out, " {}", pad(&name, 7, false));
    }
    let (between, total) = match lang {
        Lang::En => ("between", "total"),
        Lang::Ko => ("그 사이", "합계"),
    };
    let _ = writeln!(out, " {} {}", pad(between, 7, false), pad(total, 7, false));
    for t in timings {
        let path = t
            .url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(&t.url);
        let _ = write!(out, "{:<3} {:<16}", t.request, fit(path, 16));
        for p in Phase::ALL {
            match t.phases.get(&p).copied().flatten() {
                Some(ns) => {
                    let _ = write!(out, " {:>7.3}", ms(ns));
                }
                None => {
                    let _ = write!(out, " {:>7}", "-");
                }
            }
        }
        let between = t.between_ns as f64 / 1e6;
        let _ = writeln!(out, " {between:>7.3} {:>7.3}", ms(t.total_ns()));
    }
    if let (Some(start), Some(end)) = (
        timings.iter().map(|t| t.start_ns).min(),
        timings.iter().map(|t| t.end_ns).max(),
    ) {
        let (n, page) = (timings.len(), ms(end - start));
        let _ = match lang {
            Lang::En => writeln!(
                out,
                "page: {n} requests, {page:.3} ms from the first request to the last byte;\n\
                 each row adds up: its stages + between = total (between: the browser's own work)"
            ),
            Lang::Ko => writeln!(
                out,
                "페이지: 요청 {n}개, 첫 요청부터 마지막 바이트까지 {page:.3} ms;\n\
                 각 행은 단계들 + 그 사이 = 합계 로 맞아떨어집니다 (그 사이: 브라우저 자체의 작업 시간)"
            ),
        };
    }
    out
}

/// A stage's name in Korean, short enough for a 7-column cell.
fn phase_ko(p: Phase) -> &'static str {
    match p {
        Phase::Blocked => "대기",
        Phase::Dns => "DNS",
        Phase::Connect => "연결",
        Phase::Ssl => "TLS",
        Phase::Send => "전송",
        Phase::Wait => "응답",
        Phase::Receive => "수신",
        Phase::Processing => "처리",
    }
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
pub fn waterfall(spans: &[Span], width: usize, lang: Lang) -> String {
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
        // The last path segment, and the query after it (a `/` inside the
        // query is not a segment).
        let (path, query) = t.url.split_once('?').unwrap_or((&t.url, ""));
        let seg = path.rsplit('/').next().unwrap_or(path);
        let seg = if seg.is_empty() { "/" } else { seg };
        let name = match query {
            "" => seg.to_string(),
            q => format!("{seg}?{q}"),
        };
        let _ = writeln!(
            out,
            "{:<14} |{}| {:>8.3}ms",
            name.chars().take(14).collect::<String>(),
            row.iter().collect::<String>(),
            ms(t.total_ns())
        );
    }
    let legend = match lang {
        Lang::En => {
            "legend: . blocked  D dns  C connect  S tls  > send  w wait  R receive  p processing"
        }
        Lang::Ko => {
            "범례: . 대기  D DNS 조회  C TCP 연결  S TLS 핸드셰이크  > 요청 전송  w 응답 대기  R 수신  p 처리"
        }
    };
    let _ = writeln!(
        out,
        "{:<14}  0ms{:>w$.3}ms\n{:<16}{legend}",
        "",
        ms(end - start),
        "",
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

    #[test]
    fn web_vs_app_splits_a_proxied_request_and_names_a_static_one() {
        use crate::event::WebAction;
        let c = Collector::new(Detail::Full);
        let web = Recorder::new(c.clone(), "web1", "127.0.4.1", "web");
        let ctx = Ctx::new_root();
        let serve = |path: &str| Event::HttpServe {
            method: "GET".into(),
            path: path.into(),
            version: "HTTP/1.1".into(),
            peer: "127.0.3.1:5000".into(),
            status: 200,
        };
        let dynamic = web.span(
            ctx,
            Layer::Application,
            (0, 2_000_000),
            None,
            serve("/login"),
        );
        web.span(
            ctx.child_of(dynamic),
            Layer::Application,
            (100_000, 1_600_000),
            None,
            Event::ProxyForward {
                upstream: "app2 (127.0.5.2:80)".into(),
                headers: vec![],
                status: 200,
                connection: String::new(),
            },
        );
        let stat = web.span(
            ctx,
            Layer::Application,
            (3_000_000, 3_500_000),
            None,
            serve("/static/a.css"),
        );
        web.span(
            ctx.child_of(stat),
            Layer::Application,
            (3_100_000, 3_400_000),
            None,
            Event::WebDecision {
                path: "/static/a.css".into(),
                action: WebAction::Static {
                    file: "/www/static/a.css".into(),
                    bytes: 10,
                },
            },
        );
        let t = web_vs_app(&c.snapshot(), Lang::En).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].contains("/login")
                && lines[1].contains("2.000 ms, of which 1.500 ms waiting for app2"),
            "{t}"
        );
        assert!(
            lines[2].contains("/static/a.css")
                && lines[2].contains("0.500 ms, the web server alone"),
            "{t}"
        );
        assert!(web_vs_app(&[], Lang::En).is_none());
    }

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
            Event::Waiting {
                status: 200,
                headers: vec![],
            },
        );
        nav(1, "https://x.test/a.css", 9_000_000, 11_000_000);
        r.span(
            ctx,
            Layer::Application,
            (9_000_000, 11_000_000),
            Some(1),
            Event::Waiting {
                status: 200,
                headers: vec![],
            },
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
        let table = stage_table(&t, Lang::En);
        assert!(table.contains("  1.500 "), "{table}");
        assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
        assert!(table.lines().nth(2).unwrap().contains(" - "), "{table}");
    }

    #[test]
    fn the_path_has_a_line_per_hop_and_colour_only_when_asked() {
        let spans = demo();
        let plain = path(&spans, 80, false, Lang::En);
        assert!(!plain.contains('\x1b'));
        assert!(plain.lines().all(|l| l.chars().count() <= 80), "{plain}");
        let coloured = path(&spans, 80, true, Lang::En);
        assert!(coloured.contains("\x1b["));
        let stripped: String = coloured
            .split("\x1b[")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.split_once('m').map_or(part, |(_, r)| r)
                }
            })
            .collect();
        assert_eq!(stripped, plain, "colour adds escapes and nothing else");
    }

    #[test]
    fn an_sql_statement_is_the_apps_hop_to_its_database() {
        let c = Collector::new(Detail::Full);
        let app = Recorder::new(c.clone(), "app1", "127.0.5.1", "app");
        let ctx = Ctx::new_root();
        let mw = app.span(
            ctx,
            Layer::Application,
            (0, 2_000_000),
            None,
            Event::Middleware {
                name: "request context".into(),
                order: 1,
            },
        );
        app.span(
            ctx.child_of(mw),
            Layer::Application,
            (500_000, 900_000),
            None,
            Event::Sql {
                statement: "SELECT name FROM users WHERE id = $1".into(),
                params: 1,
                rows: 1,
            },
        );
        let p = path(&c.assemble(ctx.trace), 120, false, Lang::En);
        let lines: Vec<&str> = p.lines().skip(1).collect();
        assert_eq!(lines.len(), 2, "{p}");
        assert!(lines[1].contains("to its database: SQL SELECT name"), "{p}");
    }

    #[test]
    fn long_lines_wrap_within_the_width_and_short_ones_stay() {
        let line = format!("  1.  {}", "word ".repeat(40));
        let wrapped = wrap(&format!("short\n{line}\n"), 60);
        let lines: Vec<&str> = wrapped.lines().collect();
        assert_eq!(lines[0], "short");
        assert!(lines.len() > 3);
        assert!(lines.iter().all(|l| l.chars().count() <= 60), "{wrapped}");
        assert!(lines[2].starts_with("        word"), "{wrapped}");
        let words: usize = lines.iter().map(|l| l.matches("word").count()).sum();
        assert_eq!(words, 40, "nothing lost");
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn waterfall_places_stages_on_one_axis() {
        let w = waterfall(&demo(), 50, Lang::En);
        let lines: Vec<&str> = w.lines().collect();
        // The page starts at column 0 and the subresource starts after it.
        let first_d = lines[0].find('D').unwrap();
        let sub_w = lines[1].find('w').unwrap();
        assert!(first_d < sub_w, "{w}");
        assert!(lines[1].starts_with("a.css"), "{w}");
    }

    #[test]
    fn story_numbers_every_span_and_explains_it() {
        let spans = demo();
        let s = story(&spans, Lang::Ko, false);
        assert!(s.contains("  1. "));
        assert!(s.contains("C03"));
        assert!(!s.contains('\x1b'), "colour without a terminal");
        // On a terminal, hosts and layers are coloured, and wrapping a
        // coloured line counts only what shows.
        let c = story(&spans, Lang::En, true);
        assert!(c.contains("\x1b[32mL7\x1b[0m"), "{c}");
        let plain = story(&spans, Lang::En, false);
        let strip = |t: &str| {
            let mut out = String::new();
            let mut esc = false;
            for ch in t.chars() {
                match (esc, ch) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, ch) => out.push(ch),
                }
            }
            out
        };
        assert_eq!(strip(&wrap(&c, 60)), wrap(&plain, 60));
        // A client step names the request it belongs to.
        let r = spans
            .iter()
            .find_map(|x| x.request)
            .expect("demo has client requests");
        assert!(s.contains(&format!("[req {r}] ")), "{s}");
    }
}
