//! `weblab dig NAME [TYPE] [@SERVER] [+trace] [+norec] [+tcp]`: one DNS
//! question to a server of the world (the resolver by default) or any DNS
//! server, printed in dig's sections; with `+trace`, the walk from the root
//! servers down, one referral at a time, each with the server that gave it
//! and how long it took (C08).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, Record, RecordType};
use weblab_dns::net::{build_query, exchange_tcp, exchange_udp};

use crate::config::World;
use crate::world::choose_ports;

/// How long one server has to answer.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Referrals followed at most by `+trace`.
const MAX_STEPS: usize = 16;

/// What was asked for on the command line.
#[derive(Debug, PartialEq)]
pub struct Ask {
    pub name: Name,
    pub qtype: RecordType,
    /// `@HOST` (a host of the world), `@ADDR` or `@ADDR:PORT`.
    pub server: Option<String>,
    pub trace: bool,
    pub recurse: bool,
    pub tcp: bool,
}

/// Reads dig's argument forms, in any order.
pub fn parse(args: &[String]) -> Result<Ask> {
    let (mut name, mut qtype, mut server) = (None, None, None);
    let (mut trace, mut recurse, mut tcp) = (false, true, false);
    for a in args {
        if let Some(s) = a.strip_prefix('@') {
            server = Some(s.to_string());
        } else if let Some(opt) = a.strip_prefix('+') {
            match opt {
                "trace" => trace = true,
                "norec" | "norecurse" => recurse = false,
                "rec" | "recurse" => recurse = true,
                "tcp" | "vc" => tcp = true,
                other => bail!("+{other}: weblab dig knows +trace, +norec, +tcp"),
            }
        } else if name.is_none() {
            let n = Name::from_ascii(a).with_context(|| format!("{a:?} is not a domain name"))?;
            name = Some(if n.is_fqdn() {
                n
            } else {
                n.append_domain(&Name::root())?
            });
        } else if qtype.is_none() {
            let t: RecordType = a.to_ascii_uppercase().parse().with_context(|| {
                format!("{a:?} is not a record type (A, AAAA, NS, MX, TXT, SOA, ...)")
            })?;
            qtype = Some(t);
        } else {
            bail!("{a:?}: one name and one type at most");
        }
    }
    Ok(Ask {
        name: name.context("which name? e.g. weblab dig myapp.test")?,
        qtype: qtype.unwrap_or(RecordType::A),
        server,
        trace,
        recurse,
        tcp,
    })
}

/// The socket address `@SERVER` names: a host of the world, an address,
/// or an address with its port; the world's DNS port when none is given.
fn server_addr(world: &World, port: u16, server: &str) -> Result<SocketAddr> {
    if let Some(ip) = world.hosts.get(server) {
        return Ok(SocketAddr::new(IpAddr::V4(*ip), port));
    }
    if let Ok(sa) = server.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let ip: IpAddr = server.parse().with_context(|| {
        format!(
            "@{server}: not a host of the world nor an address (hosts: {})",
            world.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// The response code as dig writes it (NOERROR, NXDOMAIN, SERVFAIL, …).
fn status(m: &Message) -> String {
    format!("{:?}", m.metadata.response_code).to_ascii_uppercase()
}

fn flags(m: &Message) -> String {
    let md = &m.metadata;
    let mut f = Vec::new();
    for (on, name) in [
        (
            md.message_type == hickory_proto::op::MessageType::Response,
            "qr",
        ),
        (md.authoritative, "aa"),
        (md.truncation, "tc"),
        (md.recursion_desired, "rd"),
        (md.recursion_available, "ra"),
        (md.authentic_data, "ad"),
        (md.checking_disabled, "cd"),
    ] {
        if on {
            f.push(name);
        }
    }
    f.join(" ")
}

fn record_line(r: &Record) -> String {
    format!(
        "{:<23} {:<7} IN {:<6} {}",
        r.name.to_string(),
        r.ttl,
        r.record_type().to_string(),
        r.data
    )
}

fn section(out: &mut String, title: &str, records: &[Record]) {
    if records.is_empty() {
        return;
    }
    out.push_str(&format!("\n;; {title} SECTION:\n"));
    for r in records {
        out.push_str(&record_line(r));
        out.push('\n');
    }
}

/// One exchange, over UDP then TCP when the answer comes back truncated
/// (as dig does), or over TCP from the start.
async fn exchange(
    bind: IpAddr,
    server: SocketAddr,
    query: &Message,
    tcp: bool,
) -> Result<(Message, &'static str, Duration, bool)> {
    let t0 = Instant::now();
    if !tcp {
        let x = exchange_udp(bind, server, query, TIMEOUT).await?;
        if !x.response.metadata.truncation {
            return Ok((x.response, "UDP", t0.elapsed(), false));
        }
    }
    let x = exchange_tcp(bind, server, query, TIMEOUT).await?;
    Ok((x.response, "TCP", t0.elapsed(), !tcp))
}

fn full(out: &mut String, m: &Message, cookie: &[u8; 8]) {
    out.push_str(&format!(
        ";; ->>HEADER<<- opcode: QUERY, status: {}, id: {}\n;; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}\n",
        status(m),
        m.metadata.id,
        flags(m),
        m.queries.len(),
        m.answers.len(),
        m.authorities.len(),
        m.additionals.len(),
    ));
    for line in extended_errors(m) {
        out.push_str(&line);
    }
    if let Some(line) = cookie_line(m, cookie) {
        out.push_str(&line);
    }
    out.push_str("\n;; QUESTION SECTION:\n");
    for q in &m.queries {
        out.push_str(&format!(
            ";{:<22}          IN {}\n",
            q.name().to_string(),
            q.query_type()
        ));
    }
    section(out, "ANSWER", &m.answers);
    section(out, "AUTHORITY", &m.authorities);
    section(out, "ADDITIONAL", &m.additionals);
}

/// The reply's DNS cookie (RFC 7873) as dig prints it: the client's
/// cookie and the server's, `good` when the client's is the one `sent`.
fn cookie_line(m: &Message, sent: &[u8; 8]) -> Option<String> {
    let opts = m.edns.as_ref()?.options();
    let data = opts.as_ref().iter().find_map(|(_, o)| match o {
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, d) => Some(d),
        _ => None,
    })?;
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let verdict = match data.get(..8) {
        Some(client) if client == sent => "good",
        _ => "bad: not the client cookie sent",
    };
    Some(format!("; COOKIE: {hex} ({verdict})\n"))
}

/// The Extended DNS Errors (RFC 8914) in a reply's OPT, as dig prints
/// them: `; EDE: 22 (No Reachable Authority): (text)`.
fn extended_errors(m: &Message) -> Vec<String> {
    // The IANA registry's names, by INFO-CODE.
    const NAMES: [&str; 25] = [
        "Other",
        "Unsupported DNSKEY Algorithm",
        "Unsupported DS Digest Type",
        "Stale Answer",
        "Forged Answer",
        "DNSSEC Indeterminate",
        "DNSSEC Bogus",
        "Signature Expired",
        "Signature Not Yet Valid",
        "DNSKEY Missing",
        "RRSIGs Missing",
        "No Zone Key Bit Set",
        "NSEC Missing",
        "Cached Error",
        "Not Ready",
        "Blocked",
        "Censored",
        "Filtered",
        "Prohibited",
        "Stale NXDOMAIN Answer",
        "Not Authoritative",
        "Not Supported",
        "No Reachable Authority",
        "Network Error",
        "Invalid Data",
    ];
    let Some(edns) = &m.edns else {
        return Vec::new();
    };
    edns.options()
        .as_ref()
        .iter()
        .filter_map(|(_, o)| match o {
            hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, data) if data.len() >= 2 => {
                let code = u16::from_be_bytes([data[0], data[1]]);
                let name = NAMES.get(usize::from(code)).copied().unwrap_or("Unknown");
                let text = String::from_utf8_lossy(&data[2..]);
                Some(match text.is_empty() {
                    true => format!("; EDE: {code} ({name})\n"),
                    false => format!("; EDE: {code} ({name}): ({text})\n"),
                })
            }
            _ => None,
        })
        .collect()
}

/// Runs `weblab dig`; the text to print.
pub async fn run(world: &World, args: &[String]) -> Result<String> {
    let ask = parse(args)?;
    let ports = choose_ports(world);
    let bind = IpAddr::V4(world.addr(&world.client.host));
    let resolver = SocketAddr::new(IpAddr::V4(world.addr(&world.resolver_host)), ports.dns);
    let mut out = String::new();
    if ask.trace {
        trace(world, &ask, bind, ports.dns, resolver, &mut out).await?;
        return Ok(out);
    }
    let server = match &ask.server {
        Some(s) => server_addr(world, ports.dns, s)?,
        None => resolver,
    };
    let mut query = build_query(&ask.name, ask.qtype, ask.recurse);
    // A client cookie, as dig sends one (RFC 7873): the server answers
    // with it and a cookie of its own.
    let cookie: [u8; 8] = rand::random();
    if let Some(edns) = query.edns.as_mut() {
        edns.options_mut()
            .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
                10,
                cookie.to_vec(),
            ));
    }
    out.push_str(&format!(
        "; weblab dig {} {} @{server}\n",
        ask.name, ask.qtype
    ));
    let (m, transport, took, retried) = exchange(bind, server, &query, ask.tcp)
        .await
        .with_context(|| {
            format!("no answer from {server} (is the world up? `weblab up` starts it)")
        })?;
    if retried {
        out.push_str(";; truncated over UDP, retrying over TCP (C10)\n");
    }
    full(&mut out, &m, &cookie);
    out.push_str(&format!(
        "\n;; Query time: {:.3} ms\n;; SERVER: {}#{} ({transport})\n",
        took.as_secs_f64() * 1e3,
        server.ip(),
        server.port()
    ));
    Ok(out)
}

/// The addresses of the A records among `records`, at `port`.
fn a_addrs(records: &[Record], port: u16) -> Vec<SocketAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), port)),
            _ => None,
        })
        .collect()
}

/// `+trace`: from the root hints down, asking each server without
/// recursion and following its referral.
async fn trace(
    world: &World,
    ask: &Ask,
    bind: IpAddr,
    port: u16,
    resolver: SocketAddr,
    out: &mut String,
) -> Result<()> {
    let mut zone = Name::root();
    let mut servers: Vec<SocketAddr> = world
        .root_hints
        .iter()
        .map(|h| SocketAddr::new(IpAddr::V4(world.addr(h)), port))
        .collect();
    out.push_str(&format!(
        "; weblab dig {} {} +trace (from the root hints)\n",
        ask.name, ask.qtype
    ));
    for _ in 0..MAX_STEPS {
        let server = *servers.first().context("no server to ask")?;
        let query = build_query(&ask.name, ask.qtype, false);
        let (m, transport, took, _) = exchange(bind, server, &query, ask.tcp)
            .await
            .with_context(|| format!("no answer from {server} (zone {zone})"))?;
        let host = world
            .hosts
            .iter()
            .find(|(_, ip)| IpAddr::V4(**ip) == server.ip())
            .map_or(String::new(), |(h, _)| format!(" ({h})"));
        out.push('\n');
        for r in m.answers.iter().chain(&m.authorities) {
            out.push_str(&record_line(r));
            out.push('\n');
        }
        out.push_str(&format!(
            ";; {} from {server}{host} for zone {zone} in {:.3} ms over {transport}\n",
            status(&m),
            took.as_secs_f64() * 1e3
        ));
        if !m.answers.is_empty() || m.metadata.authoritative {
            return Ok(());
        }
        let Some(next) =
            weblab_dns::scrub::referral(&m.authorities, &m.additionals, &ask.name, &zone)
        else {
            out.push_str(";; neither an answer nor a referral: the walk ends here\n");
            return Ok(());
        };
        let mut addrs = a_addrs(&next.glue, port);
        if addrs.is_empty() {
            // No glue: ask the resolver where the name servers are, as dig does.
            for r in &next.ns {
                let hickory_proto::rr::RData::NS(target) = &r.data else {
                    continue;
                };
                let q = build_query(&target.0, RecordType::A, true);
                if let Ok(x) = exchange_udp(bind, resolver, &q, TIMEOUT).await {
                    addrs = a_addrs(&x.response.answers, port);
                    if !addrs.is_empty() {
                        out.push_str(&format!(
                            ";; no glue for {}: its address from the resolver\n",
                            target.0
                        ));
                    }
                }
                if !addrs.is_empty() {
                    break;
                }
            }
        }
        if addrs.is_empty() {
            bail!("the referral to {} gave no address to ask", next.child);
        }
        zone = next.child;
        servers = addrs;
    }
    bail!("more than {MAX_STEPS} referrals")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn a_cookie_is_good_only_when_it_carries_the_client_cookie_sent() {
        let mut m = Message::query();
        assert_eq!(cookie_line(&m, &[1; 8]), None);
        let mut edns = hickory_proto::op::Edns::new();
        let mut data = vec![1; 8];
        data.extend_from_slice(&[0xab; 16]);
        edns.options_mut()
            .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, data));
        m.set_edns(edns);
        let line = cookie_line(&m, &[1; 8]).unwrap();
        assert!(
            line.starts_with("; COOKIE: 0101010101010101abab") && line.ends_with("(good)\n"),
            "{line}"
        );
        assert!(cookie_line(&m, &[2; 8]).unwrap().contains("(bad"));
    }

    #[test]
    fn extended_errors_are_printed_with_their_names() {
        use hickory_proto::rr::rdata::opt::EdnsOption;
        let mut m = Message::query();
        assert!(extended_errors(&m).is_empty());
        let mut edns = hickory_proto::op::Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(15, b"\x00\x16no server".to_vec()));
        m.set_edns(edns);
        let m = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!(
            extended_errors(&m),
            ["; EDE: 22 (No Reachable Authority): (no server)\n"]
        );
    }

    #[test]
    fn dig_forms_are_read_in_any_order() {
        let a = parse(&args("@root myapp.test MX +norec +tcp")).unwrap();
        assert_eq!(a.name, Name::from_ascii("myapp.test.").unwrap());
        assert_eq!(a.qtype, RecordType::MX);
        assert_eq!(a.server.as_deref(), Some("root"));
        assert!(!a.recurse && a.tcp && !a.trace);
        assert_eq!(parse(&args("myapp.test")).unwrap().qtype, RecordType::A);
        assert!(parse(&args("myapp.test +short")).is_err());
        assert!(parse(&args("myapp.test NOPE")).is_err());
        assert!(parse(&args("+trace")).is_err());
    }
}
