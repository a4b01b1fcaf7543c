//! Datagrams read and written many per system call: Linux's recvmmsg(2)
//! and sendmmsg(2), as NSD and Unbound use. Under load a DNS server's cost
//! is mostly the kernel's path for each datagram, and a system call per
//! query and another per answer was a large part of it.
//!
//! Written by hand over `libc`: tokio reads one datagram per call, and
//! neither tokio nor socket2 offers recvmmsg/sendmmsg.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per call.
pub const BATCH: usize = 32;
/// Room for each datagram: the largest a UDP datagram can carry, so a
/// datagram is always read whole and goes to the handler as it came (as
/// the one-at-a-time loop did). Memory is only touched where datagrams
/// land: one page per slot in use.
pub const SLOT: usize = 65_535;

/// Room for one batch of received datagrams.
pub struct Inbox {
    bufs: Box<[[u8; SLOT]]>,
    names: Box<[libc::sockaddr_storage]>,
    lens: [usize; BATCH],
    count: usize,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            bufs: vec![[0u8; SLOT]; BATCH].into_boxed_slice(),
            // SAFETY: all-zero bytes are a valid (unspecified-family) address.
            names: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            lens: [0; BATCH],
            count: 0,
        }
    }
}

/// One received datagram.
pub struct Datagram<'a> {
    pub bytes: &'a [u8],
    pub from: Option<SocketAddr>,
}

impl Inbox {
    /// Reads what datagrams are waiting (up to [`BATCH`]) without
    /// blocking: `WouldBlock` when there are none.
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: zeroed iovec/mmsghdr are valid (null pointers, zero
        // lengths) and every pointer set below points into `self`, which
        // outlives the call.
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, (h, v)) in hdrs.iter_mut().zip(iov.iter_mut()).enumerate() {
            point(
                h,
                v,
                (self.bufs[i].as_mut_ptr().cast(), SLOT),
                (
                    (&mut self.names[i] as *mut libc::sockaddr_storage).cast(),
                    size_of::<libc::sockaddr_storage>() as libc::socklen_t,
                ),
            );
        }
        // SAFETY: `hdrs` holds BATCH initialised headers as above.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        for (i, h) in hdrs.iter().take(self.count).enumerate() {
            self.lens[i] = (h.msg_len as usize).min(SLOT);
        }
        Ok(self.count)
    }

    /// Datagrams read by the last [`Inbox::receive`] (0 after an error).
    pub fn len(&self) -> usize {
        self.count
    }

    /// The `i`th datagram of the last [`Inbox::receive`].
    pub fn get(&self, i: usize) -> Datagram<'_> {
        Datagram {
            bytes: &self.bufs[i][..self.lens[i]],
            from: socket_addr(&self.names[i]),
        }
    }
}

fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Points one message header at one buffer `(start, length)` and one
/// address `(start, length)`, through `iov`.
fn point(
    h: &mut libc::mmsghdr,
    iov: &mut libc::iovec,
    (buf, len): (*mut libc::c_void, usize),
    (name, namelen): (*mut libc::c_void, libc::socklen_t),
) {
    iov.iov_base = buf;
    iov.iov_len = len;
    let m = &mut h.msg_hdr;
    m.msg_name = name;
    m.msg_namelen = namelen;
    m.msg_iov = iov;
    m.msg_iovlen = 1;
}

/// Sends `replies` in as few calls as the kernel allows, without
/// blocking: how many went out (the rest are the caller's to send).
pub fn send(fd: RawFd, replies: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    let mut sent = 0;
    for chunk in replies.chunks(BATCH) {
        let names: Vec<socket2::SockAddr> = chunk
            .iter()
            .map(|(_, to)| socket2::SockAddr::from(*to))
            .collect();
        // SAFETY: as in `receive`; the pointers go into `chunk` and
        // `names`, alive for the call, and the kernel only reads them.
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, (reply, _)) in chunk.iter().enumerate() {
            point(
                &mut hdrs[i],
                &mut iov[i],
                (reply.as_ptr() as *mut libc::c_void, reply.len()),
                (names[i].as_ptr() as *mut libc::c_void, names[i].len()),
            );
        }
        // SAFETY: the first chunk.len() headers are initialised above.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr(),
                chunk.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if sent > 0 { Ok(sent) } else { Err(e) };
        }
        sent += n as usize;
        if (n as usize) < chunk.len() {
            break;
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_back_whole_with_addresses() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        client.send_to(b"one", to).unwrap();
        client.send_to(b"two", to).unwrap();
        // Far longer than any query: still read whole.
        client.send_to(&vec![7u8; 9000], to).unwrap();
        let mut inbox = Inbox::default();
        let mut got = Vec::new();
        for _ in 0..100 {
            match inbox.receive(server.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let d = inbox.get(i);
                        got.push((d.bytes.to_vec(), d.from));
                    }
                    if got.len() == 3 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let me = Some(client.local_addr().unwrap());
        assert_eq!(got[0], (b"one".to_vec(), me));
        assert_eq!(got[1], (b"two".to_vec(), me));
        assert_eq!(got[2], (vec![7u8; 9000], me));

        let replies: Vec<(Vec<u8>, SocketAddr)> = (0..40u8)
            .map(|i| (vec![i], client.local_addr().unwrap()))
            .collect();
        assert_eq!(send(server.as_raw_fd(), &replies).unwrap(), 40);
        let mut buf = [0u8; 16];
        for i in 0..40u8 {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[i][..], to));
        }
    }
}
