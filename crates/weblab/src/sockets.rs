//! `weblab experiment sockets` (C21): the socket API, one call at a time.
//! A server and a client on two loopback addresses make the calls a web
//! server and a browser make (socket, bind, listen, connect, accept,
//! write, read, close), each for real and in order; after each, the TCP
//! state of every socket of the connection is read back from the kernel
//! (TCP_INFO for an open descriptor, /proc/net/tcp for one already
//! closed, as `ss` does). The listening socket and the accepted one are
//! two descriptors, and the output keeps them apart.
//!
//! Written with libc rather than std::net or socket2 on purpose: the
//! point is to show the calls themselves, one to one.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{Context as _, Result};

/// One call and what the kernel said.
#[derive(Clone, Debug)]
pub struct Step {
    /// `server` or `client`.
    pub who: &'static str,
    pub call: String,
    pub result: String,
    /// The TCP states after the call: (socket, state).
    pub states: Vec<(String, String)>,
}

/// The state names of Linux's TCP (include/net/tcp_states.h).
fn state_name(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "?",
    }
}

fn check(rc: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(rc)
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn from_sockaddr(s: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr)),
        u16::from_be(s.sin_port),
    )
}

const LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

fn socket() -> io::Result<libc::c_int> {
    // SAFETY: plain socket(2).
    check(
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) },
        "socket",
    )
}

fn bind(fd: libc::c_int, a: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr(a);
    // SAFETY: a sockaddr_in of the stated length.
    check(
        unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), LEN) },
        "bind",
    )
    .map(drop)
}

fn local(fd: libc::c_int) -> io::Result<SocketAddrV4> {
    // SAFETY: sockaddr_in is plain data.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = LEN;
    // SAFETY: a sockaddr_in and its length to fill.
    check(
        unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_in).cast(), &mut len) },
        "getsockname",
    )?;
    Ok(from_sockaddr(&sa))
}

/// The TCP state of an open descriptor, from TCP_INFO.
fn state_of(fd: libc::c_int) -> String {
    weblab_browser::conn::tcp_info(fd)
        .map_or("?", |i| state_name(i.state))
        .into()
}

/// read(2) into `buf`.
fn read(fd: libc::c_int, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a buffer of the stated length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    check(n as libc::c_int, "read").map(|n| n as usize)
}

/// write(2) of `bytes`.
fn write(fd: libc::c_int, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: writing from a buffer of the stated length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    check(n as libc::c_int, "write").map(|n| n as usize)
}

/// close(2) of a descriptor this module opened, once.
fn close(fd: libc::c_int, fds: &mut Vec<libc::c_int>) -> io::Result<()> {
    fds.retain(|&f| f != fd);
    // SAFETY: closing an open descriptor once (it left `fds`).
    check(unsafe { libc::close(fd) }, "close").map(drop)
}

/// The state of the socket bound to `local` and connected to `remote`,
/// from /proc/net/tcp (for a socket whose descriptor is closed: the
/// kernel keeps it until its close is done).
fn state_in_proc(local: SocketAddrV4, remote: SocketAddrV4) -> String {
    let hex = |a: SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (l, r) = (hex(local), hex(remote));
    let Ok(text) = std::fs::read_to_string("/proc/net/tcp") else {
        return "?".into();
    };
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 3 && f[1] == l && f[2] == r {
            return u8::from_str_radix(f[3], 16).map_or("?", state_name).into();
        }
    }
    "gone".into()
}

/// Runs the calls between `server` and `client` addresses on `port`.
pub fn run(server: Ipv4Addr, client: Ipv4Addr, port: u16) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut fds: Vec<libc::c_int> = Vec::new();
    let result = calls(server, client, port, &mut steps, &mut fds);
    for fd in fds {
        // SAFETY: closing descriptors this function opened and did not
        // close (after a failure).
        unsafe { libc::close(fd) };
    }
    result.map(|()| steps)
}

fn calls(
    server: Ipv4Addr,
    client: Ipv4Addr,
    port: u16,
    steps: &mut Vec<Step>,
    fds: &mut Vec<libc::c_int>,
) -> Result<()> {
    let at = SocketAddrV4::new(server, port);
    // Who is open, for the states after each call.
    struct Open {
        listener: Option<libc::c_int>,
        client: Option<libc::c_int>,
        accepted: Option<libc::c_int>,
        pair: Option<(SocketAddrV4, SocketAddrV4)>,
    }
    let mut o = Open {
        listener: None,
        client: None,
        accepted: None,
        pair: None,
    };
    let states = |o: &Open| {
        let mut v = Vec::new();
        if let Some(fd) = o.listener {
            v.push((format!("listening fd {fd}"), state_of(fd)));
        }
        if let Some((c, s)) = o.pair {
            let st = match o.client {
                Some(fd) => state_of(fd),
                None => state_in_proc(c, s),
            };
            v.push((format!("client {c}"), st));
            let st = match o.accepted {
                Some(fd) => state_of(fd),
                None => state_in_proc(s, c),
            };
            v.push((format!("server {s}"), st));
        }
        v
    };
    let mut step = |o: &Open, who: &'static str, call: String, result: String| {
        steps.push(Step {
            who,
            call,
            result,
            states: states(o),
        });
    };

    let lfd = socket()?;
    fds.push(lfd);
    step(
        &o,
        "server",
        "socket(AF_INET, SOCK_STREAM, 0)".into(),
        format!("fd {lfd}"),
    );
    let one: libc::c_int = 1;
    // SAFETY: an int option of the right size.
    check(
        unsafe {
            libc::setsockopt(
                lfd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        },
        "setsockopt",
    )?;
    bind(lfd, at).with_context(|| format!("bind {at}"))?;
    step(&o, "server", format!("bind(fd {lfd}, {at})"), "0".into());
    // SAFETY: listen(2) on an open socket.
    check(unsafe { libc::listen(lfd, 16) }, "listen")?;
    o.listener = Some(lfd);
    step(
        &o,
        "server",
        format!("listen(fd {lfd}, backlog 16)"),
        "0: the kernel now completes handshakes to this address for it".into(),
    );

    let cfd = socket()?;
    fds.push(cfd);
    step(
        &o,
        "client",
        "socket(AF_INET, SOCK_STREAM, 0)".into(),
        format!("fd {cfd}"),
    );
    bind(cfd, SocketAddrV4::new(client, 0))?;
    let mine = local(cfd)?;
    step(
        &o,
        "client",
        format!("bind(fd {cfd}, {client}:0)"),
        format!("0: port {} chosen by the kernel", mine.port()),
    );
    let sa = sockaddr(at);
    let t0 = std::time::Instant::now();
    // SAFETY: a blocking connect with a sockaddr_in of the stated length.
    check(
        unsafe { libc::connect(cfd, (&sa as *const libc::sockaddr_in).cast(), LEN) },
        "connect",
    )?;
    let took = t0.elapsed();
    o.client = Some(cfd);
    o.pair = Some((mine, at));
    step(
        &o,
        "client",
        format!("connect(fd {cfd}, {at})"),
        format!(
            "0 after {:.3} ms: connected, before the server called accept (its side of the connection waits in the listener's queue)",
            took.as_secs_f64() * 1000.0
        ),
    );
    // SAFETY: sockaddr_in is plain data.
    let mut peer: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = LEN;
    // SAFETY: accept(2) with room for a sockaddr_in.
    let afd = check(
        unsafe { libc::accept(lfd, (&mut peer as *mut libc::sockaddr_in).cast(), &mut len) },
        "accept",
    )?;
    fds.push(afd);
    o.accepted = Some(afd);
    step(
        &o,
        "server",
        format!("accept(fd {lfd})"),
        format!(
            "fd {afd}, a new socket connected to {}; fd {lfd} goes on listening",
            from_sockaddr(&peer)
        ),
    );
    let request = b"GET / HTTP/1.0\r\n\r\n";
    let n = write(cfd, request)?;
    step(
        &o,
        "client",
        format!("write(fd {cfd}, {:?})", String::from_utf8_lossy(request)),
        format!("{n}: taken into the socket's send buffer"),
    );
    let mut buf = [0u8; 256];
    let n = read(afd, &mut buf)?;
    step(
        &o,
        "server",
        format!("read(fd {afd}, 256)"),
        format!("{n}: {:?}", String::from_utf8_lossy(&buf[..n])),
    );
    let answer = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nhi\n";
    let n = write(afd, answer)?;
    step(
        &o,
        "server",
        format!("write(fd {afd}, {} bytes of answer)", answer.len()),
        format!("{n}"),
    );
    close(afd, fds)?;
    o.accepted = None;
    step(
        &o,
        "server",
        format!("close(fd {afd})"),
        "0: the server's side sends FIN".into(),
    );
    let n = read(cfd, &mut buf)?;
    let first = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    step(
        &o,
        "client",
        format!("read(fd {cfd}, 256)"),
        format!("{n}: the answer ({first:?} …)"),
    );
    // Read until the end of the stream, each call as it returned: the
    // answer may come in more than one read.
    loop {
        let n = read(cfd, &mut buf)?;
        let what = match n {
            0 => "0: end of stream, the server closed".to_string(),
            n => format!("{n}: more of the answer"),
        };
        step(&o, "client", format!("read(fd {cfd}, 256)"), what);
        if n == 0 {
            break;
        }
    }
    close(cfd, fds)?;
    o.client = None;
    step(
        &o,
        "client",
        format!("close(fd {cfd})"),
        "0: the client's side sends FIN".into(),
    );
    close(lfd, fds)?;
    o.listener = None;
    step(
        &o,
        "server",
        format!("close(fd {lfd})"),
        "0: no more connections to this address".into(),
    );
    Ok(())
}

/// The steps as a person reads them.
pub fn render(steps: &[Step]) -> String {
    use std::fmt::Write;
    let mut s = String::from(
        "weblab experiment sockets (C21): a server and a client make the socket calls a web server and a browser make, one at a time; after each call, the TCP state of each socket as the kernel reports it.\n\n",
    );
    for (i, st) in steps.iter().enumerate() {
        let _ = writeln!(s, "{:>2}. {:<6} {}", i + 1, st.who, st.call);
        let _ = writeln!(s, "           -> {}", st.result);
        if !st.states.is_empty() {
            let states: Vec<String> = st.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "           states: {}", states.join("; "));
        }
    }
    s
}
