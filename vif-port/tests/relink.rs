//! Interface reset with the port kept (`netback::Relink`): an emulated
//! netfront and a backend Vif owned by a thread that serves it as the
//! forwarding thread does; the control side releases the rings, the
//! frontend sets up fresh ones under new grant references, the control
//! side hands them over. Counters stay, packets for the guest meanwhile
//! are held and delivered on the fresh rings, and a dropped vif refuses.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use xennet_datapath::{Packet, PacketBatch, Port};
use xennet_vif::emul::EventFdChannel;
use xennet_vif::netback::{QueueSpec, Relink, RelinkError, Rings};
use xennet_vif::netfront::Netfront;
use xennet_vif::Vif;

fn frame(tag: u8) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5];
    f.extend(std::iter::repeat(tag).take(46));
    f
}

enum Cmd {
    /// Send this frame to the guest (the switch's output to the port).
    Send(Vec<u8>),
    Stop,
}

/// Serves `vif` every 100 µs (recv, as the forwarding thread does on its
/// events) until told to stop; what the guest sent comes out on the
/// returned receiver.
fn forwarder(
    mut vif: Vif,
) -> (
    mpsc::Sender<Cmd>,
    mpsc::Receiver<Vec<u8>>,
    std::thread::JoinHandle<Vif>,
) {
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut batch = PacketBatch::new();
        loop {
            match cmd_rx.try_recv() {
                Ok(Cmd::Send(f)) => vif.send(&[&Packet::from_slice(&f)]),
                Ok(Cmd::Stop) => return vif,
                Err(_) => {}
            }
            batch.clear();
            vif.recv(&mut batch);
            for p in batch.packets() {
                let _ = out_tx.send(p.data().to_vec());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    });
    (cmd_tx, out_rx, t)
}

/// The guest's next received frame, waiting up to 5 s.
fn guest_recv(nf: &mut Netfront) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..5000 {
        if nf.recv(&mut out).is_some() {
            return Some(out);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// The frontend's current rings, mapped. The first time with its event
/// channel's backend end; later with a channel of our own (the
/// netfront's backend ends are handed out once; both sides are polled
/// here, so no notification is needed).
fn connect(nf: &mut Netfront) -> Rings {
    let grants = nf.emulated_grants().expect("grants");
    let specs = nf.emulated_queues().unwrap_or_else(|_| {
        let (tx_ring_ref, rx_ring_ref) = nf.ring_refs(0);
        let (ours, _theirs) = EventFdChannel::pair().expect("channel");
        vec![QueueSpec {
            tx_ring_ref,
            rx_ring_ref,
            tx_evtchn: Box::new(ours),
            rx_evtchn: None,
        }]
    });
    let cfg = nf.frontend_config(0);
    Rings::connect_queues("vif1.0".into(), cfg, specs, Box::new(grants)).expect("rings")
}

#[test]
fn reset_swaps_rings_keeps_counters_and_holds_packets() {
    let mut nf = Netfront::with_queues(1, 0, 1, false).expect("netfront");
    let vif = Vif::from_rings(connect(&mut nf)).expect("vif");
    let metrics = vif.metrics();
    let relink: Arc<Relink> = vif.relink();
    let (cmd, out, t) = forwarder(vif);

    assert!(nf.send(&frame(1), 0).unwrap());
    nf.notify();
    assert_eq!(out.recv_timeout(Duration::from_secs(60)).unwrap(), frame(1));

    // The frontend goes Closing: the rings are released (the forwarding
    // thread did it when detach returns), so its grants may go.
    relink.detach().expect("detach");
    let (refs_before, _) = nf.ring_refs(0);
    nf.reset().expect("fresh rings");
    assert_ne!(nf.ring_refs(0).0, refs_before);
    // A frame for the guest while its rings are down is held.
    cmd.send(Cmd::Send(frame(2))).unwrap();
    // Detaching again while down costs nothing and succeeds.
    relink.detach().expect("second detach");

    // Fresh rings handed over without waiting; the held frame arrives on
    // them and the guest's traffic flows again.
    relink.attach(connect(&mut nf)).expect("attach");
    nf.notify_all();
    assert_eq!(guest_recv(&mut nf).expect("held frame"), frame(2));
    assert!(nf.send(&frame(3), 0).unwrap());
    nf.notify();
    assert_eq!(out.recv_timeout(Duration::from_secs(60)).unwrap(), frame(3));
    // Same counters throughout.
    let m = metrics.to_json();
    assert_eq!(m["rx_packets"], 2, "{m}");
    assert_eq!(m["tx_packets"], 1, "{m}");
    assert_eq!(m["tx_down_drops"], 0, "{m}");

    // The vif gone, nobody serves requests: refused at once.
    cmd.send(Cmd::Stop).unwrap();
    drop(t.join().unwrap());
    assert_eq!(relink.detach(), Err(RelinkError::Dead));
    let fresh = connect(&mut nf);
    assert!(matches!(relink.attach(fresh), Err((RelinkError::Dead, _))));
}

/// A vif nobody polls (not in any forwarding thread): detach gives up
/// after its timeout instead of waiting for ever.
#[test]
fn an_unpolled_vif_times_out() {
    let mut nf = Netfront::with_queues(1, 0, 1, false).expect("netfront");
    let vif = Vif::from_rings(connect(&mut nf)).expect("vif");
    assert_eq!(vif.relink().detach(), Err(RelinkError::Timeout));
}
