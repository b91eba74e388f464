//! The cross-process attach handshake over a Unix socket pair.

use std::io::Write;
use std::os::unix::net::UnixStream;

use xennet_datapath::{PacketBatch, Port, RecvStatus};
use xennet_vif::emul::attach::{recv_attach, send_reply, AttachReply};
use xennet_vif::netfront::Netfront;
use xennet_vif::Vif;

#[test]
fn attach_then_forward() {
    let (guest_sock, backend_sock) = UnixStream::pair().unwrap();
    let backend = std::thread::spawn(move || {
        let (req, dom) = recv_attach(&backend_sock, 0).expect("attach request");
        assert_eq!(req.domid, 3);
        assert_eq!(req.mac, [0, 0x16, 0x3e, 0, 0, 1]);
        let name = format!("vif{}.{}", req.domid, req.handle);
        let vif = Vif::connect(
            name.clone(),
            0,
            req.frontend_config(),
            Box::new(dom.grants),
            Box::new(dom.evtchn),
        )
        .expect("connect");
        send_reply(&backend_sock, &AttachReply::ok(7, name)).unwrap();
        vif
    });
    let mut nf = Netfront::new(3, 0).unwrap();
    let reply = nf.attach(&guest_sock, 0, [0, 0x16, 0x3e, 0, 0, 1]).unwrap();
    assert!(reply.ok);
    assert_eq!(reply.ofport, Some(7));
    assert_eq!(reply.name.as_deref(), Some("vif3.0"));
    let mut vif = backend.join().unwrap();

    let mut f = vec![0u8; 60];
    f[12] = 0x88;
    f[13] = 0xb5;
    assert!(nf.send(&f, 0).unwrap());
    let mut batch = PacketBatch::new();
    assert_eq!(vif.recv(&mut batch), RecvStatus::Idle);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.packets()[0].data(), &f[..]);

    vif.send(&[&batch.packets()[0]]);
    let mut out = Vec::new();
    assert!(nf.recv(&mut out).is_some());
    assert_eq!(out, f);
}

#[test]
fn garbage_attach_is_an_error() {
    // No fds, bad JSON.
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"{\"domid\": 1}\n").unwrap();
    assert!(recv_attach(&b, 0).is_err());

    // Valid JSON, no fds.
    let (mut a, b) = UnixStream::pair().unwrap();
    let msg = r#"{"domid":1,"handle":0,"mac":[0,0,0,0,0,1],"tx_ring_ref":8,"rx_ring_ref":9,"event_channel":1,"request_rx_copy":true,"feature_rx_csum":true,"nr_frames":514,"nr_grants":1024}"#;
    a.write_all(msg.as_bytes()).unwrap();
    a.write_all(b"\n").unwrap();
    let err = recv_attach(&b, 0).unwrap_err().to_string();
    assert!(err.contains("4 file descriptors"), "{err}");

    // Closed socket.
    let (a, b) = UnixStream::pair().unwrap();
    drop(a);
    assert!(recv_attach(&b, 0).is_err());
}

fn send_raw(sock: &UnixStream, json: &str, fds: &[std::os::fd::RawFd]) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let msg = format!("{json}\n");
    let iov = [std::io::IoSlice::new(msg.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).unwrap();
}

fn request(nr_frames: u32) -> String {
    format!(
        r#"{{"domid":1,"handle":0,"mac":[0,0,0,0,0,1],"tx_ring_ref":8,"rx_ring_ref":9,"event_channel":1,"request_rx_copy":true,"feature_rx_csum":true,"nr_frames":{nr_frames},"nr_grants":1024}}"#
    )
}

#[test]
fn lying_or_unsealed_memory_is_an_error() {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    use std::os::fd::{AsRawFd, OwnedFd};
    let mem = xennet_vif::emul::sealed_memfd("m", 514 * 4096).unwrap();
    let table = xennet_vif::emul::sealed_memfd("g", 1024 * 8).unwrap();
    let e1: OwnedFd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK)
        .unwrap()
        .into();
    let e2: OwnedFd = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK)
        .unwrap()
        .into();
    let fds = [
        mem.as_raw_fd(),
        table.as_raw_fd(),
        e1.as_raw_fd(),
        e2.as_raw_fd(),
    ];

    // Announces more memory than the memfd holds.
    let (a, b) = UnixStream::pair().unwrap();
    send_raw(&a, &request(100_000), &fds);
    let err = recv_attach(&b, 0).unwrap_err().to_string();
    assert!(err.contains("size"), "{err}");

    // Absurd size.
    let (a, b) = UnixStream::pair().unwrap();
    send_raw(&a, &request(u32::MAX), &fds);
    assert!(recv_attach(&b, 0).is_err());

    // Eventfds where the memfds should be.
    let (a, b) = UnixStream::pair().unwrap();
    send_raw(&a, &request(514), &[fds[2], fds[3], fds[2], fds[3]]);
    assert!(recv_attach(&b, 0).is_err());

    // Memfds where the eventfds should be.
    let (a, b) = UnixStream::pair().unwrap();
    send_raw(&a, &request(514), &[fds[0], fds[1], fds[0], fds[1]]);
    let err = recv_attach(&b, 0).unwrap_err().to_string();
    assert!(err.contains("eventfd"), "{err}");

    // Correct: accepted.
    let (a, b) = UnixStream::pair().unwrap();
    send_raw(&a, &request(514), &fds);
    assert!(recv_attach(&b, 0).is_ok());

    // Unsealed memory (could be truncated under the backend: SIGBUS).
    let unsealed =
        nix::sys::memfd::memfd_create(c"u", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&unsealed, 514 * 4096).unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    send_raw(
        &a,
        &request(514),
        &[unsealed.as_raw_fd(), fds[1], fds[2], fds[3]],
    );
    let err = recv_attach(&b, 0).unwrap_err().to_string();
    assert!(err.contains("F_SEAL_SHRINK"), "{err}");
}

/// The xenbus path: the guest only registers its domain; the backend binds
/// the event channel by port number and connects with keys it got
/// elsewhere (xenstore).
#[test]
fn register_then_bind_by_port() {
    use xennet_vif::emul::attach::{recv_hello, Hello, EVENT_CHANNEL_PORT};
    use xennet_vif::netfront::{gref_of, RX_RING_FRAME, TX_RING_FRAME};
    use xennet_vif::FrontendConfig;

    let (guest_sock, backend_sock) = UnixStream::pair().unwrap();
    let backend = std::thread::spawn(move || {
        let Hello::Register(dom) = recv_hello(&backend_sock, 0).expect("registration") else {
            panic!("expected a registration");
        };
        assert_eq!(dom.domid, 4);
        send_reply(&backend_sock, &AttachReply::ok(0, "domain 4".into())).unwrap();
        dom
    });
    let mut nf = Netfront::new(4, 0).unwrap();
    assert!(nf.register(&guest_sock).unwrap().ok);
    let dom = backend.join().unwrap();
    // A port the domain does not have is refused, like
    // EVTCHNOP_bind_interdomain.
    assert!(dom.bind(0, EVENT_CHANNEL_PORT + 1).is_err());
    let d = dom.bind(0, EVENT_CHANNEL_PORT).unwrap();
    // A ring reference the guest never granted fails to map.
    let bad = FrontendConfig::new(4, 0, 1000, gref_of(RX_RING_FRAME));
    let d2 = dom.bind(0, EVENT_CHANNEL_PORT).unwrap();
    assert!(Vif::connect(
        "vif4.0".into(),
        0,
        bad,
        Box::new(d2.grants),
        Box::new(d2.evtchn)
    )
    .is_err());
    let cfg = FrontendConfig::new(4, 0, gref_of(TX_RING_FRAME), gref_of(RX_RING_FRAME));
    let mut vif = Vif::connect(
        "vif4.0".into(),
        0,
        cfg,
        Box::new(d.grants),
        Box::new(d.evtchn),
    )
    .unwrap();
    let mut f = vec![0u8; 60];
    f[12] = 0x88;
    f[13] = 0xb5;
    assert!(nf.send(&f, 0).unwrap());
    let mut batch = PacketBatch::new();
    vif.recv(&mut batch);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.packets()[0].data(), &f[..]);
}

/// A message with more descriptors than any registration needs
/// (MSG_CTRUNC) is refused with `TooManyFds`, and every descriptor it
/// brought is closed: once ours goes too, the pipe's reader sees EOF.
#[test]
fn truncated_descriptors_are_refused_and_closed() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use xennet_vif::emul::attach::recv_hello;
    use xennet_vif::error::VifError;
    let (r, w) = nix::unistd::pipe().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    send_raw(&a, &request(514), &[w.as_raw_fd(); 40]);
    drop(w);
    match recv_hello(&b, 0) {
        Err(VifError::TooManyFds { received, max }) => assert!(received <= max && max < 40),
        other => panic!("{other:?}"),
    }
    let mut reader = std::fs::File::from(r);
    nix::fcntl::fcntl(
        reader.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        reader.read(&mut byte).unwrap(),
        0,
        "a write end is still open"
    );
}
