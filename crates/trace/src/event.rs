//! The typed attributes of a span: one enum for every layer, each variant with
//! a one-line `Display` that the story prints.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One level of the client's name lookup chain (C03).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheLevel {
    /// The browser's own host cache (Chrome keeps one per profile).
    Browser,
    /// The hosts file (`/etc/hosts` of the world's client).
    Hosts,
    /// The operating system's stub-resolver cache (nscd, systemd-resolved).
    Os,
    /// The recursive resolver's cache ("ISP DNS").
    Resolver,
}

impl fmt::Display for CacheLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheLevel::Browser => "browser cache",
            CacheLevel::Hosts => "hosts file",
            CacheLevel::Os => "OS cache",
            CacheLevel::Resolver => "resolver cache",
        })
    }
}

/// What a DNS exchange produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DnsOutcome {
    /// Records answering the question, in presentation format.
    Answer { records: Vec<String> },
    /// A delegation: `zone` is served by `ns` (each `name=addr` when glue came along).
    Referral { zone: String, ns: Vec<String> },
    /// The name does not exist (RCODE 3).
    NxDomain,
    /// The name exists but has no record of the asked type.
    NoData,
    /// The UDP answer did not fit and had the TC bit set (RFC 1035 §4.2.1).
    Truncated,
    /// Malformed query (RCODE 1).
    FormErr,
    /// The server failed (RCODE 2).
    ServFail,
    /// The server refused (RCODE 5) or does not implement the opcode (RCODE 4).
    Refused,
    /// The query's EDNS version is not implemented (extended RCODE 16).
    BadVersion,
    /// No answer in time.
    Timeout,
    /// The exchange failed before any answer (e.g. nothing listens there).
    Failed { error: String },
}

impl fmt::Display for DnsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsOutcome::Answer { records } => write!(f, "answer {}", records.join(", ")),
            DnsOutcome::Referral { zone, ns } => {
                write!(f, "referral: {zone} is served by {}", ns.join(", "))
            }
            DnsOutcome::NxDomain => f.write_str("NXDOMAIN (no such name)"),
            DnsOutcome::NoData => f.write_str("NODATA (name exists, no such record)"),
            DnsOutcome::Truncated => f.write_str("truncated (TC=1), retry over TCP"),
            DnsOutcome::FormErr => f.write_str("FORMERR (malformed query)"),
            DnsOutcome::ServFail => f.write_str("SERVFAIL"),
            DnsOutcome::Refused => f.write_str("REFUSED"),
            DnsOutcome::BadVersion => f.write_str("BADVERS (EDNS version not implemented)"),
            DnsOutcome::Timeout => f.write_str("timed out"),
            DnsOutcome::Failed { error } => write!(f, "failed: {error}"),
        }
    }
}

/// The stages of one request, as HAR 1.2 `timings` names them, plus the
/// client's own processing after the body arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Blocked,
    Dns,
    Connect,
    Ssl,
    Send,
    Wait,
    Receive,
    Processing,
}

impl Phase {
    /// All phases in the order a request goes through them.
    pub const ALL: [Phase; 8] = [
        Phase::Blocked,
        Phase::Dns,
        Phase::Connect,
        Phase::Ssl,
        Phase::Send,
        Phase::Wait,
        Phase::Receive,
        Phase::Processing,
    ];
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Blocked => "blocked",
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Ssl => "ssl",
            Phase::Send => "send",
            Phase::Wait => "wait",
            Phase::Receive => "receive",
            Phase::Processing => "processing",
        })
    }
}

/// What the web server decided to do with a request (C44, C51).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WebAction {
    /// Served from disk without the application.
    Static { file: String, bytes: u64 },
    /// Passed on to an application server.
    Proxy { upstream: String },
    /// Refused with a status.
    Reject { status: u16, reason: String },
}

/// The typed attributes of one span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    // ---- client ----
    /// One top-level request of the browser (the page or a subresource).
    Navigate { url: String, initiator: String },
    /// C01: the URL taken apart.
    UrlParsed {
        scheme: String,
        host: String,
        port: u16,
        default_port: bool,
        path: String,
        query: Option<String>,
        fragment: Option<String>,
    },
    /// C02: the request head as it went on the wire (HTTP/1.x: the bytes
    /// written; HTTP/2: the fields of the HEADERS frame).
    RequestPrepared {
        method: String,
        target: String,
        version: String,
        headers: Vec<(String, String)>,
        /// HTTP/2: the size of the HPACK-encoded header block written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header_block: Option<u64>,
    },
    /// C03: the whole name lookup (the `dns` phase).
    Lookup {
        name: String,
        addrs: Vec<String>,
        answered_by: Option<CacheLevel>,
        error: Option<String>,
    },
    /// C03/C09: one cache level asked.
    CacheLookup {
        level: CacheLevel,
        name: String,
        hit: bool,
        answer: Vec<String>,
    },
    /// A DNS query sent and its answer, seen from the asking side.
    DnsExchange {
        server: String,
        name: String,
        qtype: String,
        id: u16,
        transport: String,
        outcome: DnsOutcome,
    },
    /// A DNS query answered, seen from the server.
    DnsServe {
        role: String,
        name: String,
        qtype: String,
        id: u16,
        transport: String,
        outcome: DnsOutcome,
    },
    /// C14: a TCP connection opened, with the kernel's TCP_INFO right after.
    TcpConnect {
        local: String,
        remote: String,
        rtt_us: u32,
        #[serde(default)]
        rttvar_us: u32,
        cwnd: u32,
        /// None while the kernel's threshold is still "infinite".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ssthresh: Option<u32>,
        mss: u32,
        retransmits: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery_rate_bps: Option<u64>,
    },
    /// TCP_INFO read after a response was read in full
    /// (`after_response`), or when the client is done with a connection.
    TcpInfo {
        remote: String,
        #[serde(default)]
        after_response: bool,
        rtt_us: u32,
        #[serde(default)]
        rttvar_us: u32,
        cwnd: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ssthresh: Option<u32>,
        total_retrans: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivery_rate_bps: Option<u64>,
        bytes_sent: u64,
        bytes_received: u64,
    },
    /// A request went over a connection that was already open.
    ConnectionReused { remote: String, version: String },
    /// C32: the TLS handshake and what it settled.
    TlsHandshake {
        sni: String,
        version: String,
        cipher: String,
        group: String,
        alpn: Option<String>,
        chain: Vec<String>,
        verified_by: String,
    },
    /// The request head (and body) written to the connection.
    RequestSent {
        method: String,
        url: String,
        version: String,
    },
    /// Waiting for the response head (time to first byte); the head's
    /// fields as received (names lowercase), in order.
    Waiting {
        status: u16,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Vec<(String, String)>,
    },
    /// C04: the response body read in full.
    BodyReceived {
        status: u16,
        content_type: Option<String>,
        content_encoding: Option<String>,
        wire_bytes: u64,
    },
    /// C04/C31: a compressed body decoded.
    Decoded {
        encoding: String,
        wire_bytes: u64,
        decoded_bytes: u64,
    },
    /// C05: subresources found in an HTML page.
    HtmlParsed { subresources: Vec<String> },
    // ---- servers ----
    /// An HTTP request handled by a server (LB, web or app).
    HttpServe {
        method: String,
        path: String,
        version: String,
        peer: String,
        status: u16,
    },
    /// C43: the load balancer chose a backend.
    LbPick {
        algorithm: String,
        backend: String,
        reason: String,
    },
    /// C44: what the web server did with the request.
    WebDecision { path: String, action: WebAction },
    /// A request passed on to the next hop, with the forwarding headers set.
    ProxyForward {
        upstream: String,
        headers: Vec<(String, String)>,
        status: u16,
        /// The upstream connection it went over: `new 127.10.4.1:40312`
        /// or `reused 127.10.4.1:40312 (request 7 on it)`.
        #[serde(default)]
        connection: String,
    },
    /// C30/C50: a shared cache's decision: HIT, MISS, REVALIDATED or
    /// BYPASS, and why.
    HttpCache {
        key: String,
        outcome: String,
        reason: String,
    },
    /// C50: the firewall's verdict on a connection or a request.
    Firewall {
        client: String,
        allowed: bool,
        reason: String,
    },
    /// C43: a backend's health changed (checks or real requests).
    BackendHealth {
        backend: String,
        up: bool,
        reason: String,
    },
    /// C29/C44: an upgraded connection (WebSocket) relayed byte for byte
    /// until one side closed.
    Tunnel {
        upstream: String,
        protocol: String,
        client_to_upstream: u64,
        upstream_to_client: u64,
        ended: String,
    },
    /// C45: one middleware of the application server's chain.
    Middleware { name: String, order: u32 },
    /// C46: the route that matched.
    Route { pattern: String, controller: String },
    /// C47: a service method called by a controller.
    Service { name: String },
    /// C47/C49: one SQL statement (its text; values travel separately as
    /// `params` bound parameters) and the rows it returned or changed.
    Sql {
        statement: String,
        params: u32,
        rows: u64,
    },
    /// C47: a service called another HTTP service (an API hosted
    /// elsewhere, an identity provider), as that service's client.
    HttpCall {
        method: String,
        url: String,
        /// The address connected to.
        peer: String,
        /// 0 when no answer came (the reason is in `error`).
        status: u16,
        #[serde(default)]
        error: String,
    },
    /// Anything else worth a line.
    Note { text: String },
    /// A span that another program sent over OTLP (any OpenTelemetry SDK):
    /// its name, its service and its attributes as text.
    Foreign {
        service: String,
        name: String,
        attributes: Vec<(String, String)>,
    },
}

impl Event {
    /// The request stage this event is, when it is one.
    pub fn phase(&self) -> Option<Phase> {
        Some(match self {
            Event::Lookup { .. } => Phase::Dns,
            Event::TcpConnect { .. } => Phase::Connect,
            Event::TlsHandshake { .. } => Phase::Ssl,
            Event::RequestSent { .. } => Phase::Send,
            Event::Waiting { .. } => Phase::Wait,
            Event::BodyReceived { .. } => Phase::Receive,
            Event::Decoded { .. } | Event::HtmlParsed { .. } => Phase::Processing,
            _ => return None,
        })
    }

    /// A short stable name of the variant (as in the JSON `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Navigate { .. } => "navigate",
            Event::UrlParsed { .. } => "url_parsed",
            Event::RequestPrepared { .. } => "request_prepared",
            Event::Lookup { .. } => "lookup",
            Event::CacheLookup { .. } => "cache_lookup",
            Event::DnsExchange { .. } => "dns_exchange",
            Event::DnsServe { .. } => "dns_serve",
            Event::TcpConnect { .. } => "tcp_connect",
            Event::TcpInfo { .. } => "tcp_info",
            Event::ConnectionReused { .. } => "connection_reused",
            Event::TlsHandshake { .. } => "tls_handshake",
            Event::RequestSent { .. } => "request_sent",
            Event::Waiting { .. } => "waiting",
            Event::BodyReceived { .. } => "body_received",
            Event::Decoded { .. } => "decoded",
            Event::HtmlParsed { .. } => "html_parsed",
            Event::HttpServe { .. } => "http_serve",
            Event::LbPick { .. } => "lb_pick",
            Event::WebDecision { .. } => "web_decision",
            Event::ProxyForward { .. } => "proxy_forward",
            Event::BackendHealth { .. } => "backend_health",
            Event::Firewall { .. } => "firewall",
            Event::HttpCache { .. } => "http_cache",
            Event::Tunnel { .. } => "tunnel",
            Event::Middleware { .. } => "middleware",
            Event::Route { .. } => "route",
            Event::Service { .. } => "service",
            Event::Sql { .. } => "sql",
            Event::HttpCall { .. } => "http_call",
            Event::Note { .. } => "note",
            Event::Foreign { .. } => "foreign",
        }
    }
}

/// `HTTP/1.1`, `HTTP/2` … as traces, HAR and the CLI write a version.
/// How much smaller the compressed body was than the decoded one, in
/// whole percent (none for an empty body).
pub fn saved_percent(wire_bytes: u64, decoded_bytes: u64) -> Option<i64> {
    (decoded_bytes > 0).then(|| {
        ((decoded_bytes as f64 - wire_bytes as f64) * 100.0 / decoded_bytes as f64).floor() as i64
    })
}

pub fn version_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// ssthresh as TCP_INFO gave it: "-" while no loss has set it.
pub fn ssthresh_text(s: Option<u32>) -> String {
    s.map_or_else(|| "-".into(), |v| v.to_string())
}

/// A delivery rate in bits per second, as a person reads it.
pub fn rate_text(bps: Option<u64>) -> String {
    match bps {
        None => "-".into(),
        Some(b) if b >= 1_000_000_000 => format!("{:.2}Gbit/s", b as f64 / 1e9),
        Some(b) if b >= 1_000_000 => format!("{:.1}Mbit/s", b as f64 / 1e6),
        Some(b) => format!("{:.0}kbit/s", b as f64 / 1e3),
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Navigate { url, initiator } => {
                write!(f, "request {url} (initiator: {initiator})")
            }
            Event::UrlParsed {
                scheme,
                host,
                port,
                default_port,
                path,
                query,
                fragment,
            } => {
                let dflt = if *default_port {
                    " (default for scheme)"
                } else {
                    ""
                };
                write!(
                    f,
                    "URL parsed: scheme={scheme} host={host} port={port}{dflt} path={path} query={} fragment={}",
                    opt(query),
                    match fragment {
                        Some(fr) => format!("{fr} (kept in the browser, never sent)"),
                        None => "-".into(),
                    }
                )
            }
            Event::RequestPrepared {
                method,
                target,
                version,
                headers,
                header_block,
            } => {
                // HTTP/2 has no request line: the pseudo-headers carry it.
                if version == "HTTP/2" {
                    write!(f, "request HEADERS (HTTP/2):")?;
                } else {
                    write!(f, "request: {method} {target} {version}")?;
                }
                let mut sep = if version == "HTTP/2" { " " } else { " | " };
                for (k, v) in headers {
                    write!(f, "{sep}{k}: {v}")?;
                    sep = " | ";
                }
                if let Some(n) = header_block {
                    let text: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
                    write!(
                        f,
                        " (HPACK: {n} bytes on the wire for {text} bytes of fields as text)"
                    )?;
                }
                Ok(())
            }
            Event::Lookup {
                name,
                addrs,
                answered_by,
                error,
            } => match (error, answered_by) {
                (Some(e), _) => write!(f, "lookup {name} failed: {e}"),
                (None, Some(CacheLevel::Resolver)) => {
                    write!(
                        f,
                        "lookup {name} -> {} (answered by the recursive resolver)",
                        addrs.join(", ")
                    )
                }
                (None, Some(level)) => {
                    write!(
                        f,
                        "lookup {name} -> {} (from the {level})",
                        addrs.join(", ")
                    )
                }
                (None, None) => write!(f, "lookup {name} -> {}", addrs.join(", ")),
            },
            Event::CacheLookup {
                level,
                name,
                hit,
                answer,
            } => {
                if *hit {
                    write!(f, "{level}: HIT {name} -> {}", answer.join(", "))
                } else {
                    write!(f, "{level}: miss {name}")
                }
            }
            Event::DnsExchange {
                server,
                name,
                qtype,
                id,
                transport,
                outcome,
            } => write!(
                f,
                "DNS query {name} {qtype} (id {id}, {transport}) to {server}: {outcome}"
            ),
            Event::DnsServe {
                role,
                name,
                qtype,
                id,
                transport,
                outcome,
            } => write!(
                f,
                "{role} answers {name} {qtype} (id {id}, {transport}): {outcome}"
            ),
            Event::TcpConnect {
                local,
                remote,
                rtt_us,
                rttvar_us,
                cwnd,
                ssthresh,
                mss,
                retransmits,
                delivery_rate_bps,
            } => write!(
                f,
                "TCP connect() {local} -> {remote} completed: ESTABLISHED; TCP_INFO rtt={rtt_us}us rttvar={rttvar_us}us cwnd={cwnd} ssthresh={} mss={mss} retransmits={retransmits} delivery rate={}",
                ssthresh_text(*ssthresh),
                rate_text(*delivery_rate_bps)
            ),
            Event::TcpInfo {
                remote,
                after_response,
                rtt_us,
                rttvar_us,
                cwnd,
                ssthresh,
                total_retrans,
                delivery_rate_bps,
                bytes_sent,
                bytes_received,
            } => write!(
                f,
                "TCP_INFO {} ({remote}): rtt={rtt_us}us rttvar={rttvar_us}us cwnd={cwnd} ssthresh={} retransmits={total_retrans} delivery rate={} sent={bytes_sent}B received={bytes_received}B",
                if *after_response {
                    "after the response"
                } else {
                    "at the end"
                },
                ssthresh_text(*ssthresh),
                rate_text(*delivery_rate_bps)
            ),
            Event::ConnectionReused { remote, version } => {
                write!(f, "reused the open {version} connection to {remote}")
            }
            Event::TlsHandshake {
                sni,
                version,
                cipher,
                group,
                alpn,
                chain,
                verified_by,
            } => write!(
                f,
                "TLS {version} with {sni}: cipher={cipher} key exchange={group} ALPN={} chain=[{}] verified by {verified_by}",
                opt(alpn),
                chain.join(" <- ")
            ),
            Event::RequestSent {
                method,
                url,
                version,
            } => write!(f, "sent {method} {url} over {version}"),
            // HTTP/0.9 answers have no status (recorded as 0) and no head.
            Event::Waiting { status: 0, .. } => write!(
                f,
                "waited for the first byte (HTTP/0.9: no status line, no headers)"
            ),
            Event::Waiting { status, .. } => write!(f, "waited for the response head: {status}"),
            Event::BodyReceived {
                status: 0,
                wire_bytes,
                ..
            } => write!(
                f,
                "received the whole answer, {wire_bytes} bytes, ended by the server closing (HTTP/0.9: a body and nothing else)"
            ),
            Event::BodyReceived {
                status,
                content_type,
                content_encoding,
                wire_bytes,
            } => write!(
                f,
                "received {status} {} ({wire_bytes} bytes on the wire, encoding {})",
                opt(content_type),
                opt(content_encoding)
            ),
            Event::Decoded {
                encoding,
                wire_bytes,
                decoded_bytes,
            } => {
                write!(
                    f,
                    "decoded {encoding}: {wire_bytes} -> {decoded_bytes} bytes"
                )?;
                match saved_percent(*wire_bytes, *decoded_bytes) {
                    Some(p) if p > 0 => write!(f, " (the wire carried {p} % less)"),
                    _ => write!(
                        f,
                        " (compression saved nothing: {} bytes more on the wire)",
                        wire_bytes.saturating_sub(*decoded_bytes)
                    ),
                }
            }
            Event::HtmlParsed { subresources } => {
                write!(f, "HTML parsed: found {}", subresources.join(", "))
            }
            Event::HttpServe {
                method,
                path,
                version,
                peer,
                status,
            } => write!(f, "{method} {path} {version} from {peer} -> {status}"),
            Event::LbPick {
                algorithm,
                backend,
                reason,
            } => write!(f, "picked {backend} by {algorithm} ({reason})"),
            Event::WebDecision { path, action } => match action {
                WebAction::Static { file, bytes } => {
                    write!(
                        f,
                        "{path}: static file {file} ({bytes} bytes), no app server"
                    )
                }
                WebAction::Proxy { upstream } => {
                    write!(f, "{path}: dynamic, proxy to application server {upstream}")
                }
                WebAction::Reject { status, reason } => write!(f, "{path}: {status} ({reason})"),
            },
            Event::ProxyForward {
                upstream,
                headers,
                status,
                connection,
            } => {
                write!(f, "forwarded to {upstream} -> {status}")?;
                if !connection.is_empty() {
                    write!(f, " over {connection}")?;
                }
                for (k, v) in headers {
                    write!(f, " | {k}: {v}")?;
                }
                Ok(())
            }
            Event::HttpCache {
                key,
                outcome,
                reason,
            } => write!(f, "cache {outcome} {key}: {reason}"),
            Event::Firewall {
                client,
                allowed,
                reason,
            } => {
                let verdict = if *allowed { "allowed" } else { "refused" };
                write!(f, "firewall {verdict} {client}: {reason}")
            }
            Event::BackendHealth {
                backend,
                up,
                reason,
            } => {
                let state = if *up { "up" } else { "down" };
                write!(f, "backend {backend} is {state}: {reason}")
            }
            Event::Tunnel {
                upstream,
                protocol,
                client_to_upstream,
                upstream_to_client,
                ended,
            } => write!(
                f,
                "{protocol} tunnel to {upstream}: {client_to_upstream} bytes up, {upstream_to_client} bytes down, {ended}"
            ),
            Event::Middleware { name, order } => write!(f, "middleware #{order}: {name}"),
            Event::Route {
                pattern,
                controller,
            } => write!(f, "route {pattern} -> {controller}"),
            Event::Service { name } => write!(f, "service {name}"),
            Event::Sql {
                statement,
                params,
                rows,
            } => match params {
                0 => write!(f, "SQL {statement} ({rows} rows)"),
                n => write!(f, "SQL {statement} ({n} params, {rows} rows)"),
            },
            Event::HttpCall {
                method,
                url,
                peer,
                status,
                error,
            } => match status {
                0 => write!(f, "called {method} {url} at {peer}: {error}"),
                s => write!(f, "called {method} {url} at {peer}: {s}"),
            },
            Event::Note { text } => f.write_str(text),
            Event::Foreign {
                service,
                name,
                attributes,
            } => {
                write!(f, "{service}: {name}")?;
                for (k, v) in attributes {
                    write!(f, " | {k}={v}")?;
                }
                Ok(())
            }
        }
    }
}

/// An error and the causes behind it on one line, each cause once
/// (libraries often repeat a cause's words in their own): what a span's
/// error field or a printed failure should say, since the outermost words
/// ("connection error", "client error (SendRequest)") rarely say what
/// happened underneath.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connection error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("broken pipe"));
        assert_eq!(error_chain(&e), "connection error: broken pipe");
        let plain = std::io::Error::other("refused");
        assert_eq!(error_chain(&plain), "refused");
    }

    #[test]
    fn a_decoded_step_says_whether_compression_saved_bytes() {
        let step = |wire_bytes, decoded_bytes| {
            Event::Decoded {
                encoding: "gzip".into(),
                wire_bytes,
                decoded_bytes,
            }
            .to_string()
        };
        assert_eq!(
            step(429, 989),
            "decoded gzip: 429 -> 989 bytes (the wire carried 56 % less)"
        );
        assert_eq!(
            step(40, 20),
            "decoded gzip: 40 -> 20 bytes (compression saved nothing: 20 bytes more on the wire)"
        );
        assert!(step(20, 0).contains("saved nothing"));
        let ko = crate::korean::said(
            &Event::Decoded {
                encoding: "br".into(),
                wire_bytes: 40,
                decoded_bytes: 20,
            },
            crate::explain::Lang::Ko,
        );
        assert!(ko.contains("압축 이득 없음"), "{ko}");
    }
}
