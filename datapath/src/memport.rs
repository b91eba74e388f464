//! An in-memory [`Port`] for tests and demos: frames are injected and
//! collected through a [`MemPortPeer`]; an eventfd wakes the forwarding
//! thread as a real port's event channel would.
//!
//! It takes a lock per call, which is fine for tests and nothing else.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::buffer::{Packet, PacketBatch};
use crate::port::{Port, PortFeatures, PortStats, RecvStatus};

#[derive(Debug, Default)]
struct Shared {
    rx: VecDeque<Packet>,
    tx: Vec<Packet>,
    stats: PortStats,
    disabled: bool,
}

fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The switch side of an in-memory port.
#[derive(Debug)]
pub struct MemPort {
    name: String,
    shared: Arc<Mutex<Shared>>,
    efd: Arc<EventFd>,
    features: PortFeatures,
}

/// The far side of an in-memory port: inject frames, collect output.
#[derive(Debug, Clone)]
pub struct MemPortPeer {
    shared: Arc<Mutex<Shared>>,
    efd: Arc<EventFd>,
}

/// Create a port and its peer. `features` are the offloads the port
/// claims to accept on output.
pub fn mem_port(name: &str, features: PortFeatures) -> std::io::Result<(MemPort, MemPortPeer)> {
    let efd = Arc::new(EventFd::from_value_and_flags(
        0,
        EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
    )?);
    let shared = Arc::new(Mutex::new(Shared::default()));
    Ok((
        MemPort {
            name: name.to_owned(),
            shared: shared.clone(),
            efd: efd.clone(),
            features,
        },
        MemPortPeer { shared, efd },
    ))
}

impl MemPortPeer {
    /// Queue a packet for the switch to receive and wake it.
    pub fn inject(&self, pkt: Packet) {
        lock(&self.shared).rx.push_back(pkt);
        let _ = self.efd.write(1);
    }

    /// Queue a frame for the switch to receive.
    pub fn inject_frame(&self, frame: &[u8]) {
        self.inject(Packet::from_slice(frame));
    }

    /// Take everything the switch sent out of the port so far.
    pub fn take_sent(&self) -> Vec<Packet> {
        std::mem::take(&mut lock(&self.shared).tx)
    }

    /// Take what the switch sends out of the port, waiting until there
    /// are at least `n` frames or `timeout` has passed (for tests, where
    /// the forwarding thread runs on its own).
    pub fn wait_sent(&self, n: usize, timeout: std::time::Duration) -> Vec<Packet> {
        let deadline = std::time::Instant::now() + timeout;
        let mut got = self.take_sent();
        while got.len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
            got.extend(self.take_sent());
        }
        got
    }

    /// Make the port report [`RecvStatus::Disabled`] from now on.
    pub fn disable(&self) {
        lock(&self.shared).disabled = true;
        let _ = self.efd.write(1);
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.efd.as_fd())
    }

    fn recv(&mut self, batch: &mut PacketBatch) -> RecvStatus {
        let _ = self.efd.read();
        let mut s = lock(&self.shared);
        if s.disabled {
            return RecvStatus::Disabled;
        }
        while !batch.is_full() {
            let Some(p) = s.rx.pop_front() else { break };
            s.stats.rx_packets += 1;
            s.stats.rx_bytes += p.len() as u64;
            if let Some(slot) = batch.push_slot() {
                slot.clone_from_packet(&p);
            }
        }
        if s.rx.is_empty() {
            RecvStatus::Idle
        } else {
            RecvStatus::More
        }
    }

    fn send(&mut self, pkts: &[&Packet]) {
        let mut s = lock(&self.shared);
        for p in pkts {
            s.stats.tx_packets += 1;
            s.stats.tx_bytes += p.len() as u64;
            s.tx.push((*p).clone());
        }
    }

    fn features(&self) -> PortFeatures {
        self.features
    }

    fn stats(&self) -> PortStats {
        lock(&self.shared).stats
    }
}
