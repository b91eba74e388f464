//! `udp_burst DST_IP FIRST_PORT COUNT`: the new-5-tuple generator of
//! `scripts/bench` (`storm` in `scripts/lib/bench-net.sh`). Sends one
//! 1-byte UDP datagram to each of `DST_IP:FIRST_PORT ..
//! FIRST_PORT+COUNT-1` from one unconnected socket, as fast as the kernel
//! takes them: `sendmmsg(2)` with up to 64 datagrams a call, each with its
//! own destination. On the way out it prints `sent N of COUNT in S s` to
//! stderr (S: seconds from the first call to the last return), so the
//! bench can tell the rate offered from the rate a switch forwards.
//!
//! Datagrams the kernel refuses (`ENOBUFS`, an ICMP error reported on
//! the socket) are skipped, not retried, as the Python loop it replaces
//! did.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Instant;

/// Datagrams per `sendmmsg` call.
const BATCH: usize = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, ip, first, count] => ip
            .parse::<Ipv4Addr>()
            .ok()
            .zip(first.parse::<u16>().ok())
            .zip(count.parse::<u32>().ok()),
        _ => None,
    };
    let Some(((ip, first), count)) = parsed else {
        eprintln!("usage: udp_burst DST_IP FIRST_PORT COUNT");
        return ExitCode::from(2);
    };
    if u32::from(first) + count > 65536 {
        eprintln!("udp_burst: FIRST_PORT + COUNT is beyond port 65535");
        return ExitCode::from(2);
    }
    let sock = match std::net::UdpSocket::bind("0.0.0.0:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp_burst: socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fd = sock.as_raw_fd();
    let payload = [b'x'];
    let t0 = Instant::now();
    let mut sent = 0u32;
    let mut next = 0u32;
    while next < count {
        let n = (count - next).min(BATCH as u32) as usize;
        // SAFETY: sockaddr_in, iovec and mmsghdr are plain data; zero is
        // a valid value of each.
        let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            addrs[i].sin_family = libc::AF_INET as libc::sa_family_t;
            addrs[i].sin_port = (first + (next + i as u32) as u16).to_be();
            addrs[i].sin_addr.s_addr = u32::from(ip).to_be();
            iov[i].iov_base = payload.as_ptr().cast_mut().cast();
            iov[i].iov_len = payload.len();
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut off = 0;
        while off < n {
            // SAFETY: `msgs[off..n]` point at addresses in `addrs`, iovecs
            // in `iov` and `payload`, all alive across the call; the
            // kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(fd, msgs[off..].as_mut_ptr(), (n - off) as libc::c_uint, 0)
            };
            if r <= 0 {
                off += 1; // refused: skip it
            } else {
                off += r as usize;
                sent += r as u32;
            }
        }
        next += n as u32;
    }
    eprintln!(
        "sent {sent} of {count} in {:.4} s",
        t0.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
