//! The UDP generator of `scripts/bench` (`storm` and `ct_bench` in
//! `scripts/lib/bench-net.sh`). Three forms:
//!
//! - `udp_burst DST_IP FIRST_PORT COUNT`: one 1-byte UDP datagram to each
//!   of `DST_IP:FIRST_PORT .. FIRST_PORT+COUNT-1` from one unconnected
//!   UDP socket, through the kernel's UDP, IP and neighbour code.
//! - `udp_burst --raw DEV SRC_IP DST_MAC DST_IP FIRST_PORT COUNT`: the
//!   same datagrams as Ethernet frames, built before the clock starts and
//!   written on device `DEV` with an `AF_PACKET` socket that bypasses the
//!   qdisc (`PACKET_QDISC_BYPASS`): from `DEV`'s MAC and `SRC_IP:40000`
//!   to `DST_MAC`. A frame then costs the sender the device's transmit
//!   alone, not the UDP and IP stack, so on a machine of few CPUs the
//!   generator leaves more of them to the switch under test.
//! - `udp_burst --raw DEV SRC_IP DST_MAC DST_IP PORT --secs S --len L`:
//!   one flow (one 5-tuple) for `S` seconds, `L` bytes of UDP payload a
//!   frame.
//!
//! The raw forms take `--from-port P` last, for another UDP source port
//! than 40000 (`ct_bench` sends its flow's one reply so, which makes the
//! connection established).
//!
//! All send with `sendmmsg(2)`, up to 64 datagrams or frames a call, as
//! fast as the kernel takes them, and print `sent N of COUNT in S s` to
//! stderr on the way out (the flow form: `sent N of N in S s`; S: seconds
//! from the first call to the last return), so the bench can tell the
//! rate offered from the rate a switch forwards. Datagrams or frames the
//! kernel refuses (`ENOBUFS`, an ICMP error reported on the socket) are
//! skipped, not retried.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Datagrams or frames per `sendmmsg` call.
const BATCH: usize = 64;
/// The UDP source port of the raw forms, unless `--from-port` says.
const RAW_SRC_PORT: u16 = 40000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sport = RAW_SRC_PORT;
    if let [.., "--from-port", p] = args.as_slice() {
        match p.parse() {
            Ok(p) => sport = p,
            Err(_) => args.clear(), // a usage error below
        }
        args.truncate(args.len().saturating_sub(2));
    }
    let result = match args.as_slice() {
        ["--raw", dev, src, mac, dst, port, "--secs", secs, "--len", len] => {
            RawPort::open(dev, src, mac, dst, sport).and_then(|raw| raw_flow(&raw, port, secs, len))
        }
        ["--raw", dev, src, mac, dst, first, count] => {
            RawPort::open(dev, src, mac, dst, sport).and_then(|raw| raw_burst(&raw, first, count))
        }
        [dst, first, count] => socket_burst(dst, first, count),
        _ => Err(Error::Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage) => {
            eprintln!(
                "usage: udp_burst DST_IP FIRST_PORT COUNT\n       \
                 udp_burst --raw DEV SRC_IP DST_MAC DST_IP FIRST_PORT COUNT [--from-port P]\n       \
                 udp_burst --raw DEV SRC_IP DST_MAC DST_IP PORT --secs S --len L [--from-port P]"
            );
            ExitCode::from(2)
        }
        Err(Error::Failed(e)) => {
            eprintln!("udp_burst: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Error {
    Usage,
    Failed(String),
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, Error> {
    s.parse().map_err(|_| Error::Usage)
}

/// Ports `first .. first + count`, refused past 65535.
fn port_range(first: &str, count: &str) -> Result<(u16, u32), Error> {
    let (first, count) = (parse::<u16>(first)?, parse::<u32>(count)?);
    if u32::from(first) + count > 65536 {
        return Err(Error::Failed(
            "FIRST_PORT + COUNT is beyond port 65535".into(),
        ));
    }
    Ok((first, count))
}

fn socket_burst(dst: &str, first: &str, count: &str) -> Result<(), Error> {
    let ip = parse::<Ipv4Addr>(dst)?;
    let (first, count) = port_range(first, count)?;
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")
        .map_err(|e| Error::Failed(format!("socket: {e}")))?;
    let payload = [b'x'];
    let t0 = Instant::now();
    let mut sent = 0u32;
    let mut next = 0u32;
    while next < count {
        let n = (count - next).min(BATCH as u32) as usize;
        // SAFETY: sockaddr_in is plain data; zero is a valid value.
        let mut addrs: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
        for (i, a) in addrs[..n].iter_mut().enumerate() {
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = (first + (next + i as u32) as u16).to_be();
            a.sin_addr.s_addr = u32::from(ip).to_be();
        }
        let frames: Vec<&[u8]> = vec![&payload[..]; n];
        sent += send_all(sock.as_raw_fd(), &frames, Some(&mut addrs[..n]));
        next += n as u32;
    }
    report(sent, count, t0);
    Ok(())
}

fn raw_burst(raw: &RawPort, first: &str, count: &str) -> Result<(), Error> {
    let (first, count) = port_range(first, count)?;
    let frames: Vec<Vec<u8>> = (0..count)
        .map(|i| raw.frame(first + i as u16, b"x"))
        .collect();
    let t0 = Instant::now();
    let mut sent = 0;
    for chunk in frames.chunks(BATCH) {
        let batch: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        sent += send_all(raw.fd.as_raw_fd(), &batch, None);
    }
    report(sent, count, t0);
    Ok(())
}

fn raw_flow(raw: &RawPort, port: &str, secs: &str, len: &str) -> Result<(), Error> {
    let (port, secs, len) = (
        parse::<u16>(port)?,
        parse::<f64>(secs)?,
        parse::<usize>(len)?,
    );
    if !(0.0..=3600.0).contains(&secs) || len > 1472 {
        return Err(Error::Failed(
            "--secs is 0 to 3600, --len at most 1472 bytes".into(),
        ));
    }
    let frame = raw.frame(port, &vec![b'x'; len]);
    let batch = vec![frame.as_slice(); BATCH];
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut sent = 0;
    while Instant::now() < end {
        sent += send_all(raw.fd.as_raw_fd(), &batch, None);
    }
    report(sent, sent, t0);
    Ok(())
}

fn report(sent: u32, count: u32, t0: Instant) {
    eprintln!(
        "sent {sent} of {count} in {:.4} s",
        t0.elapsed().as_secs_f64()
    );
}

/// An `AF_PACKET` socket bound to one device for sending only (protocol
/// 0: it receives nothing), and the addresses of the frames it sends.
struct RawPort {
    fd: OwnedFd,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    sport: u16,
}

impl RawPort {
    fn open(dev: &str, src: &str, mac: &str, dst: &str, sport: u16) -> Result<RawPort, Error> {
        let parse_mac = |s: &str| -> Option<[u8; 6]> {
            let v: Vec<u8> = s
                .trim()
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).ok())
                .collect::<Option<_>>()?;
            v.try_into().ok()
        };
        let src_ip = parse::<Ipv4Addr>(src)?.octets();
        let dst_ip = parse::<Ipv4Addr>(dst)?.octets();
        let dst_mac = parse_mac(mac).ok_or(Error::Usage)?;
        let failed = |what: &str, e: std::io::Error| Error::Failed(format!("{dev}: {what}: {e}"));
        let src_mac = std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))
            .map_err(|e| failed("address", e))?;
        let src_mac = parse_mac(&src_mac)
            .ok_or_else(|| Error::Failed(format!("{dev}: no Ethernet address: {src_mac:?}")))?;
        let name = std::ffi::CString::new(dev).map_err(|_| Error::Usage)?;
        // SAFETY: a NUL-terminated name; the call only reads it.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(failed("if_nametoindex", std::io::Error::last_os_error()));
        }
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(failed("socket(AF_PACKET)", std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a sockaddr_ll of the length given.
        let r = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(failed("bind", std::io::Error::last_os_error()));
        }
        let one: libc::c_int = 1;
        // SAFETY: an int option of the length given.
        let r = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(failed(
                "PACKET_QDISC_BYPASS",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(RawPort {
            fd,
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            sport,
        })
    }

    /// Ethernet, IPv4 and UDP (checksums filled in) to `port`.
    fn frame(&self, port: u16, payload: &[u8]) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2(self.src_mac, self.dst_mac)
            .ipv4(self.src_ip, self.dst_ip, 64)
            .udp(self.sport, port);
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder
            .write(&mut frame, payload)
            .expect("a UDP datagram of at most 1472 bytes fits IPv4");
        frame
    }
}

/// Sends `frames` on `fd` with `sendmmsg`, each to its address in
/// `addrs` where given (a bound socket otherwise), skipping what the
/// kernel refuses; returns how many were sent.
fn send_all(fd: i32, frames: &[&[u8]], mut addrs: Option<&mut [libc::sockaddr_in]>) -> u32 {
    let n = frames.len().min(BATCH);
    // SAFETY: iovec and mmsghdr are plain data; zero is a valid value.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iov[i].iov_base = frames[i].as_ptr().cast_mut().cast();
        iov[i].iov_len = frames[i].len();
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        if let Some(a) = addrs.as_deref_mut() {
            msgs[i].msg_hdr.msg_name = (&mut a[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
    }
    let (mut off, mut sent) = (0, 0);
    while off < n {
        // SAFETY: `msgs[off..n]` point at iovecs in `iov`, the frames and
        // the addresses, all alive across the call; the kernel only reads
        // them.
        let r =
            unsafe { libc::sendmmsg(fd, msgs[off..].as_mut_ptr(), (n - off) as libc::c_uint, 0) };
        if r <= 0 {
            off += 1; // refused: skip it
        } else {
            off += r as usize;
            sent += r as u32;
        }
    }
    sent
}
