//! `weblab experiment layers` (C52): one request's bytes, layer by layer,
//! as the kernel carried them. A packet socket on the loopback interface
//! captures every frame between the client host and a web server while
//! the browser fetches one file over plain HTTP/1.1 and closes; each frame
//! is then split into its headers (Ethernet II as loopback writes it,
//! IPv4, TCP) and what TCP carried (the HTTP message). Nothing is drawn
//! from a model: the handshake, the segments and their sizes are the
//! captured ones.
//!
//! Capturing needs CAP_NET_RAW (root). Frames are read with etherparse;
//! the packet socket itself is a few libc calls (no crate wraps an
//! AF_PACKET socket for tokio).

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use tokio::io::unix::AsyncFd;
use url::Url;
use weblab_browser::Destination;
use weblab_trace::Ctx;

use crate::config::World;
use crate::world::RunningWorld;

/// The block the experiment's world uses unless `--block` is given.
pub const DEFAULT_BLOCK: u8 = 63;

/// Frames kept at most (a small file needs about a dozen).
const MAX_FRAMES: usize = 2000;

/// One captured frame, in the order the kernel sent it.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Microseconds after the capture began.
    pub at_us: u64,
    pub bytes: Vec<u8>,
}

/// A packet socket on `lo` that keeps what it sees until dropped.
struct Capture {
    fd: AsyncFd<OwnedFd>,
}

impl Capture {
    fn open() -> io::Result<Capture> {
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2); the descriptor is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = c"lo";
        // SAFETY: a NUL-terminated interface name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto as u16;
        addr.sll_ifindex = index as i32;
        // SAFETY: binding a packet socket to an interface with a
        // sockaddr_ll of the right size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let size: libc::c_int = 4 << 20;
        // SAFETY: an int option of the right size; best effort.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // SAFETY: `fd` is an open descriptor the AsyncFd owns from here
        // on, and an OwnedFd always returns the same one.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Capture { fd })
    }

    /// Reads frames until `stop`, keeping those `keep` accepts. Loopback
    /// shows every frame twice, leaving and arriving: only the leaving
    /// copy is kept.
    async fn run(
        self,
        mut stop: tokio::sync::oneshot::Receiver<()>,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Frame> {
        let start = Instant::now();
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 70 * 1024];
        loop {
            tokio::select! {
                _ = &mut stop => break,
                ready = self.fd.readable() => {
                    let Ok(mut guard) = ready else { break };
                    loop {
                        // SAFETY: sockaddr_ll is plain data.
                        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                        // SAFETY: recvfrom into a buffer of its stated size
                        // and a sockaddr_ll of its stated size.
                        let n = unsafe {
                            libc::recvfrom(
                                self.fd.get_ref().as_raw_fd(),
                                buf.as_mut_ptr().cast(),
                                buf.len(),
                                0,
                                (&mut from as *mut libc::sockaddr_ll).cast(),
                                &mut len,
                            )
                        };
                        if n < 0 {
                            let e = io::Error::last_os_error();
                            if e.kind() == io::ErrorKind::WouldBlock {
                                guard.clear_ready();
                                break;
                            }
                            // Any other error ends the capture with what
                            // it has (a readiness left set would spin).
                            return frames;
                        }
                        let bytes = &buf[..n as usize];
                        if from.sll_pkttype == libc::PACKET_OUTGOING
                            && frames.len() < MAX_FRAMES
                            && keep(bytes)
                        {
                            frames.push(Frame {
                                at_us: start.elapsed().as_micros() as u64,
                                bytes: bytes.to_vec(),
                            });
                        }
                    }
                }
            }
        }
        frames
    }
}

/// Whether a frame is IPv4 between `a` and `b` (either way).
fn between(frame: &[u8], a: Ipv4Addr, b: Ipv4Addr) -> bool {
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        return false;
    };
    match p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let (s, d) = (ip.header().source_addr(), ip.header().destination_addr());
            (s == a && d == b) || (s == b && d == a)
        }
        _ => false,
    }
}

/// One frame split into its layers.
#[derive(Clone, Debug)]
pub struct Layers {
    pub at_us: u64,
    pub frame_len: usize,
    /// Ethernet II: destination, source, EtherType.
    pub link: ([u8; 6], [u8; 6], u16),
    pub link_len: usize,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub ip_len: usize,
    pub ip_total: u16,
    pub dont_fragment: bool,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: String,
    pub window: u16,
    /// The TCP options, named (MSS, window scale, SACK, timestamps).
    pub options: Vec<String>,
    /// The window scale this segment offers (a SYN's option).
    pub wscale: Option<u8>,
    pub tcp_len: usize,
    /// The whole frame as captured.
    pub raw: Vec<u8>,
}

impl Layers {
    /// What TCP carried: the frame's bytes after the three headers, up to
    /// where IPv4's total length ends (a link may pad a short frame).
    pub fn payload(&self) -> &[u8] {
        let end = (self.link_len + usize::from(self.ip_total)).min(self.raw.len());
        let start = (self.link_len + self.ip_len + self.tcp_len).min(end);
        &self.raw[start..end]
    }
}

/// Splits a captured frame; `None` for anything but Ethernet/IPv4/TCP.
pub fn split(f: &Frame) -> Option<Layers> {
    let p = SlicedPacket::from_ethernet(&f.bytes).ok()?;
    let Some(LinkSlice::Ethernet2(eth)) = &p.link else {
        return None;
    };
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        return None;
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        return None;
    };
    let h = ip.header();
    let mut options = Vec::new();
    let mut wscale = None;
    for o in tcp.options_iterator().flatten() {
        use etherparse::TcpOptionElement as O;
        match o {
            O::Noop => {}
            O::MaximumSegmentSize(m) => options.push(format!("MSS {m}")),
            O::WindowScale(w) => {
                wscale = Some(w);
                options.push(format!("window scale {w}"));
            }
            O::SelectiveAcknowledgementPermitted => options.push("SACK permitted".into()),
            O::SelectiveAcknowledgement(..) => options.push("SACK blocks".into()),
            O::Timestamp(..) => options.push("timestamps".into()),
        }
    }
    let mut flags = Vec::new();
    for (on, name) in [
        (tcp.syn(), "SYN"),
        (tcp.fin(), "FIN"),
        (tcp.rst(), "RST"),
        (tcp.psh(), "PSH"),
        (tcp.ack(), "ACK"),
    ] {
        if on {
            flags.push(name);
        }
    }
    Some(Layers {
        at_us: f.at_us,
        frame_len: f.bytes.len(),
        link: (eth.destination(), eth.source(), eth.ether_type().0),
        link_len: eth.header_slice().len(),
        src: h.source_addr(),
        dst: h.destination_addr(),
        ttl: h.ttl(),
        ip_len: h.slice().len(),
        ip_total: h.total_len(),
        dont_fragment: h.dont_fragment(),
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: flags.join(" "),
        window: tcp.window_size(),
        options,
        wscale,
        tcp_len: tcp.header_slice().len(),
        raw: f.bytes.clone(),
    })
}

/// The experiment's result.
pub struct Outcome {
    /// The TLS records, when the fetch was over HTTPS.
    pub records: Vec<Record>,
    pub client: Ipv4Addr,
    pub server: Ipv4Addr,
    pub url: String,
    pub packets: Vec<Layers>,
    pub report: String,
}

/// Fetches one file from `world`'s first web server with its client's
/// browser, capturing every frame between the two.
/// A TLS record that begins in a captured frame (`tls` runs).
#[derive(Clone, Debug)]
pub struct Record {
    /// Index into the packets.
    pub frame: usize,
    pub from_client: bool,
    pub kind: u8,
    pub len: u16,
}

/// The TLS records of each direction, framed across the segments in the
/// order they were sent (loopback delivers in order).
fn records(client: Ipv4Addr, p: &[Layers]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut framers = [
        crate::mitm::Framer::default(),
        crate::mitm::Framer::default(),
    ];
    for (i, l) in p.iter().enumerate() {
        if l.payload().is_empty() {
            continue;
        }
        let from_client = l.src == client;
        let mut bytes = l.payload().to_vec();
        framers[usize::from(!from_client)].feed(&mut bytes, |kind, len, _| {
            out.push(Record {
                frame: i,
                from_client,
                kind,
                len,
            });
            false
        });
    }
    out
}

/// With `tls`, the fetch goes to the site's name over HTTPS through the
/// load balancer (HTTP/1.1 inside TLS), and the capture is between the
/// client and the load balancer.
pub async fn run(world: World, data_dir: std::path::PathBuf, tls: bool) -> Result<Outcome> {
    let capture = open_capture()?;
    let Some(web) = world.web.first().map(|w| w.host.clone()) else {
        bail!("the world has no web server");
    };
    let site = world.lb.server_names.first().cloned();
    let target = if tls { world.lb.host.clone() } else { web };
    let running = RunningWorld::start(world, data_dir, weblab_trace::Detail::Full).await?;
    let client = match running.addr(&running.world.client.host) {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => bail!("the client host has no IPv4 address"),
    };
    let server = match running.addr(&target) {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => bail!("{target} has no IPv4 address"),
    };
    let port = if running.ports.http == 80 {
        String::new()
    } else {
        format!(":{}", running.ports.http)
    };
    let url = match (&site, tls) {
        (Some(site), true) => format!("https://{site}/static/app.css"),
        (None, true) => bail!("--tls: the world's [lb] has no server_names"),
        (_, false) => format!("http://{server}{port}/static/app.css"),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let capturing = tokio::spawn(capture.run(stopped, move |f| between(f, client, server)));
    let browser = running.browser(true)?;
    let got = browser
        .fetch(
            Ctx::new_root(),
            0,
            &Url::parse(&url)?,
            Destination::Sub(weblab_browser::html::Kind::Stylesheet),
        )
        .await;
    // Closing the browser closes its connection: the FINs are captured
    // too.
    drop(browser);
    let frames = end_capture(stop, capturing).await?;
    running.stop_accepting();
    let got = got.map_err(|e| anyhow::anyhow!("the fetch failed: {e}"))?;
    let packets: Vec<Layers> = frames.iter().filter_map(split).collect();
    let records = if tls {
        records(client, &packets)
    } else {
        Vec::new()
    };
    let report = render(
        client,
        server,
        &url,
        got.status,
        &packets,
        &records,
        site.as_deref(),
    );
    Ok(Outcome {
        records,
        client,
        server,
        url,
        packets,
        report,
    })
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn hex(bytes: &[u8], max: usize) -> String {
    let mut s: Vec<String> = bytes.iter().take(max).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > max {
        s.push("…".into());
    }
    s.join(" ")
}

/// The first line of what TCP carried, as text.
fn first_line(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(&payload[..payload.len().min(200)]);
    text.lines().next().unwrap_or("").to_string()
}

fn render(
    client: Ipv4Addr,
    server: Ipv4Addr,
    url: &str,
    status: u16,
    p: &[Layers],
    records: &[Record],
    site: Option<&str>,
) -> String {
    let tls = url.starts_with("https:");
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "weblab experiment layers (C52): the browser on {client} fetched {url} ({status}) over HTTP/1.1{} and closed; {} frames between {client} and {server} were captured on lo.\n",
        if tls { " inside TLS" } else { "" },
        p.len()
    );
    // Sequence numbers relative to each side's first (its SYN's), as
    // Wireshark shows them.
    let isn = |from: Ipv4Addr| {
        p.iter()
            .find(|l| l.src == from && l.flags.contains("SYN"))
            .map(|l| l.seq)
    };
    let (c_isn, s_isn) = (isn(client), isn(server));
    let rel = |l: &Layers| {
        let (mine, theirs) = if l.src == client {
            (c_isn, s_isn)
        } else {
            (s_isn, c_isn)
        };
        let seq = mine.map_or(l.seq, |i| l.seq.wrapping_sub(i));
        let ack = if l.flags.contains("ACK") {
            theirs.map_or(l.ack, |i| l.ack.wrapping_sub(i))
        } else {
            0
        };
        (seq, ack)
    };
    let _ = writeln!(
        s,
        "  #   time ms  from      TCP flags      seq   ack  frame = Ethernet + IPv4 + TCP + data"
    );
    for (i, l) in p.iter().enumerate() {
        let (seq, ack) = rel(l);
        let from = if l.src == client { "client" } else { "server" };
        let _ = writeln!(
            s,
            "{:>3} {:>8.3}  {from:<8}  {:<12} {seq:>5} {ack:>5}  {:>5} = {} + {} + {} + {}",
            i + 1,
            l.at_us as f64 / 1000.0,
            l.flags,
            l.frame_len,
            l.link_len,
            l.ip_len,
            l.tcp_len,
            l.payload().len()
        );
    }
    for (who, from) in [("client", client), ("server", server)] {
        if let Some(syn) = p.iter().find(|l| l.src == from && l.flags.contains("SYN")) {
            let _ = writeln!(
                s,
                "  the {who}'s SYN offered: {}",
                if syn.options.is_empty() {
                    "no options".to_string()
                } else {
                    syn.options.join(", ")
                }
            );
        }
    }
    // The window field counts in units of 2^scale once both SYNs offered
    // a scale (RFC 7323 §2.2).
    let scale = |from: Ipv4Addr| {
        let mine = p
            .iter()
            .find(|l| l.src == from && l.flags.contains("SYN"))?
            .wscale;
        let theirs = p
            .iter()
            .find(|l| l.src != from && l.flags.contains("SYN"))?
            .wscale;
        theirs.and(mine)
    };
    let request = p
        .iter()
        .find(|l| l.src == client && !l.payload().is_empty());
    let answer = p
        .iter()
        .find(|l| l.src == server && !l.payload().is_empty());
    let names = if tls {
        ["the client's first data", "the server's first data"]
    } else {
        ["the request", "the first frame of the answer"]
    };
    for (what, l) in [(names[0], request), (names[1], answer)] {
        let Some(l) = l else { continue };
        let n = p
            .iter()
            .position(|x| std::ptr::eq(x, l))
            .map_or(0, |i| i + 1);
        let (seq, ack) = rel(l);
        let _ = writeln!(
            s,
            "\nFrame {n}, {what}, {} bytes, outermost first:",
            l.frame_len
        );
        let _ = writeln!(
            s,
            "  L2 link, Ethernet II frame header, {} bytes: to {} from {}, EtherType 0x{:04x} (IPv4)",
            l.link_len,
            mac(l.link.0),
            mac(l.link.1),
            l.link.2
        );
        let _ = writeln!(
            s,
            "  L3 network, IPv4 packet header, {} bytes: {} -> {}, TTL {}, total length {}{}",
            l.ip_len,
            l.src,
            l.dst,
            l.ttl,
            l.ip_total,
            if l.dont_fragment {
                ", don't fragment"
            } else {
                ""
            }
        );
        let window = match scale(l.src) {
            Some(k) => format!(
                "window {} (x{} = {} bytes)",
                l.window,
                1u32 << k,
                (l.window as u64) << k
            ),
            None => format!("window {}", l.window),
        };
        let _ = writeln!(
            s,
            "  L4 transport, TCP segment header, {} bytes: port {} -> {}, seq {seq}, ack {ack}, {}, {window}",
            l.tcp_len, l.sport, l.dport, l.flags
        );
        if tls {
            let n = p.iter().position(|x| std::ptr::eq(x, l)).unwrap_or(0);
            let here: Vec<String> = records
                .iter()
                .filter(|r| r.frame == n)
                .map(|r| format!("{} {} bytes", crate::mitm::record_name(r.kind), r.len))
                .collect();
            // A frame that begins with a handshake record: its first
            // message's type (RFC 8446 §4).
            let message = match (l.payload().first(), l.payload().get(5)) {
                (Some(22), Some(1)) => " (ClientHello first)",
                (Some(22), Some(2)) => " (ServerHello first)",
                _ => "",
            };
            let _ = writeln!(
                s,
                "  TLS (between TCP and HTTP){message}, {} bytes of records; records starting here: {}",
                l.payload().len(),
                if here.is_empty() {
                    "none (the rest of an earlier one)".to_string()
                } else {
                    here.join(", ")
                }
            );
            if let Some(site) = site
                && crate::mitm::contains(l.payload(), site.as_bytes())
            {
                let _ = writeln!(
                    s,
                    "    the name {site:?} is readable in it (the ClientHello's server name)"
                );
            }
        } else {
            let _ = writeln!(
                s,
                "  L7 application, HTTP message bytes, {}: {:?}",
                l.payload().len(),
                first_line(l.payload())
            );
        }
        let at = l.link_len + l.ip_len + l.tcp_len;
        let _ = writeln!(s, "  the frame's bytes by layer:");
        let all = [
            ("L2", 0, l.link_len),
            ("L3", l.link_len, l.link_len + l.ip_len),
            ("L4", l.link_len + l.ip_len, at),
        ];
        for (name, a, b) in all {
            let bytes = l.raw.get(a..b).unwrap_or_default();
            for (i, row) in bytes.chunks(20).enumerate() {
                let label = if i == 0 { name } else { "  " };
                let _ = writeln!(s, "    {label} {}", hex(row, 20));
            }
        }
        let top = if tls { "TLS" } else { "L7" };
        let _ = writeln!(s, "    {top} {}", hex(l.payload(), 20));
    }
    if tls {
        for (from_client, who) in [(true, "the client"), (false, "the server")] {
            let list: Vec<String> = records
                .iter()
                .filter(|r| r.from_client == from_client)
                .map(|r| format!("{} {}", crate::mitm::record_name(r.kind), r.len))
                .collect();
            let _ = writeln!(s, "\nTLS records from {who}, in order: {}", list.join(", "));
        }
        let _ = writeln!(
            s,
            "After the hellos every record is application_data to an onlooker: the HTTP request and answer are inside, encrypted."
        );
    }
    let wire: usize = p.iter().map(|l| l.frame_len).sum();
    let data: usize = p.iter().map(|l| l.payload().len()).sum();
    let headers = wire - data;
    let _ = writeln!(
        s,
        "\n{} frames, {wire} bytes on the wire: {data} bytes of {} and {headers} bytes of Ethernet, IPv4 and TCP headers ({} %). {} frames carried no data (TCP's SYNs, bare ACKs, FINs and RSTs).",
        p.len(),
        if tls { "TLS records" } else { "HTTP" },
        (headers * 100).checked_div(wire).unwrap_or(0),
        p.iter().filter(|l| l.payload().is_empty()).count()
    );
    let _ = writeln!(
        s,
        "Each layer wraps the one above it: the HTTP message travels{} as TCP segments, each inside an IPv4 packet, each inside an Ethernet frame (OSI L2-L4 and L7; TCP/IP's link, internet, transport and application layers).",
        if tls {
            " inside TLS records, which travel"
        } else {
            ""
        }
    );
    s
}

/// One pair of hosts that exchanged frames during a page load.
#[derive(Clone, Debug)]
pub struct Hop {
    /// The side that sent the pair's first frame, then the other.
    pub from: (String, Ipv4Addr),
    pub to: (String, Ipv4Addr),
    /// Transport and the server's port: `TCP 443`, `UDP 53`.
    pub transport: String,
    /// What the payload was: DNS, TLS, HTTP, or unknown.
    pub carried: String,
    pub frames: usize,
    pub bytes: usize,
    pub payload: usize,
    pub connections: usize,
    /// Connections the world made on its own meanwhile: a load balancer's
    /// health check, a status page read by the DNS policy (known by their
    /// first request).
    pub background: usize,
    /// Microseconds after the capture began: the pair's first frame.
    pub first_us: u64,
}

/// Loads `url`'s page with the world's client, capturing every IPv4
/// frame between the world's hosts on lo, grouped by host pair in the
/// order each pair first spoke.
pub async fn page(world: World, data_dir: std::path::PathBuf) -> Result<(Vec<Hop>, String)> {
    let capture = open_capture()?;
    let site = crate::mitm::site_name(&world)?;
    let running = RunningWorld::start(world, data_dir, weblab_trace::Detail::Full).await?;
    let names: std::collections::HashMap<Ipv4Addr, String> = running
        .world
        .hosts
        .iter()
        .map(|(n, a)| (*a, n.clone()))
        .collect();
    let known = names.clone();
    let keep = move |f: &[u8]| {
        let Ok(p) = SlicedPacket::from_ethernet(f) else {
            return false;
        };
        matches!(&p.net, Some(NetSlice::Ipv4(ip))
            if known.contains_key(&ip.header().source_addr())
                && known.contains_key(&ip.header().destination_addr()))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let capturing = tokio::spawn(capture.run(stopped, keep));
    let url = format!("https://{site}/login");
    let browser = running.browser(false)?;
    let (_, got) = browser.navigate(&url).await;
    drop(browser);
    let frames = end_capture(stop, capturing).await?;
    running.stop_accepting();
    let page = got.map_err(|e| anyhow::anyhow!("the page load failed: {e}"))?;
    let hops = group(&frames, &names);
    let mut s = format!(
        "weblab experiment layers --page (C52, C53): the browser loaded {url} ({}, {} subresources); {} frames between the world's hosts were captured on lo. By pair of hosts, in the order they first spoke:\n\n",
        page.main.status,
        page.subresources.len(),
        frames.len()
    );
    s.push_str(&render_hops(&hops));
    Ok((hops, s))
}

/// Ends a capture a moment after the last request (loopback delivers at
/// once; the moment lets the last ACK and FIN pass) and takes its frames.
async fn end_capture(
    stop: tokio::sync::oneshot::Sender<()>,
    capturing: tokio::task::JoinHandle<Vec<Frame>>,
) -> Result<Vec<Frame>> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    Ok(capturing.await?)
}

fn open_capture() -> Result<Capture> {
    match Capture::open() {
        Ok(c) => Ok(c),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            bail!("capturing on lo needs CAP_NET_RAW (run as root): {e}")
        }
        Err(e) => bail!("cannot open a packet socket on lo: {e}"),
    }
}

/// Groups frames by unordered host pair; the side that sent a pair's
/// first frame is its `from` (the client of that hop).
pub fn group(frames: &[Frame], names: &std::collections::HashMap<Ipv4Addr, String>) -> Vec<Hop> {
    let mut hops: Vec<Hop> = Vec::new();
    // Per pair: each connection (client port, server port) and whether
    // its first payload was seen yet.
    let mut conns: Vec<std::collections::HashMap<(u16, u16), bool>> = Vec::new();
    for f in frames {
        let Ok(p) = SlicedPacket::from_ethernet(&f.bytes) else {
            continue;
        };
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            continue;
        };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        let (ports, payload, proto) = match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                ((t.source_port(), t.destination_port()), t.payload(), "TCP")
            }
            Some(TransportSlice::Udp(u)) => {
                ((u.source_port(), u.destination_port()), u.payload(), "UDP")
            }
            _ => continue,
        };
        let at = hops
            .iter()
            .position(|h| (h.from.1 == src && h.to.1 == dst) || (h.from.1 == dst && h.to.1 == src));
        let i = match at {
            Some(i) => i,
            None => {
                let name = |a: Ipv4Addr| names.get(&a).cloned().unwrap_or_else(|| a.to_string());
                hops.push(Hop {
                    from: (name(src), src),
                    to: (name(dst), dst),
                    transport: format!("{proto} {}", ports.1),
                    carried: String::new(),
                    frames: 0,
                    bytes: 0,
                    payload: 0,
                    connections: 0,
                    background: 0,
                    first_us: f.at_us,
                });
                conns.push(Default::default());
                hops.len() - 1
            }
        };
        let h = &mut hops[i];
        h.frames += 1;
        h.bytes += f.bytes.len();
        h.payload += payload.len();
        let key = if src == h.from.1 {
            ports
        } else {
            (ports.1, ports.0)
        };
        let started = conns[i].entry(key).or_insert(false);
        if !*started && !payload.is_empty() {
            *started = true;
            if crate::mitm::contains(payload, b"weblab-health-check")
                || payload.starts_with(b"GET /_weblab/status")
            {
                h.background += 1;
            }
        }
        h.connections = conns[i].len();
        if h.carried.is_empty() && !payload.is_empty() {
            h.carried = carried(proto, ports, payload).into();
        }
    }
    hops
}

/// What a transport payload is, from its first bytes and ports.
fn carried(proto: &str, ports: (u16, u16), payload: &[u8]) -> &'static str {
    let http = [
        &b"GET "[..],
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"HTTP/1.",
    ];
    match proto {
        "UDP" if ports.0 == 53 || ports.1 == 53 || payload.len() >= 12 => "DNS",
        "TCP" if payload.first() == Some(&22) && payload.get(1) == Some(&3) => "TLS",
        "TCP" if http.iter().any(|m| payload.starts_with(m)) => "HTTP/1.1",
        "TCP" if payload.starts_with(b"PRI * HTTP/2.0") => "HTTP/2",
        _ => "other",
    }
}

fn render_hops(hops: &[Hop]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<20} {:<20} {:<8} {:<8} {:>9} {:>6} {:>7} {:>7}",
        "from", "to", "over", "carries", "conns", "frames", "bytes", "payload"
    );
    for h in hops {
        let side = |(n, a): &(String, Ipv4Addr)| format!("{n} {a}");
        let conns = if h.background > 0 {
            format!("{} ({} bg)", h.connections, h.background)
        } else {
            h.connections.to_string()
        };
        let _ = writeln!(
            s,
            "  {:<20} {:<20} {:<8} {:<8} {:>9} {:>6} {:>7} {:>7}",
            side(&h.from),
            side(&h.to),
            h.transport,
            h.carried,
            conns,
            h.frames,
            h.bytes,
            h.payload
        );
    }
    let _ = writeln!(
        s,
        "\n(conns: TCP connections, or UDP port pairs; bg: of those, the world's own traffic meanwhile, health checks of the load balancer and status pages read by the DNS policy; payload: what TCP or UDP carried, without the Ethernet, IPv4 and TCP/UDP headers.)"
    );
    s
}
