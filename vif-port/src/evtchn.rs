//! Event channels behind a trait: real ones through `/dev/xen/evtchn`
//! ([`crate::xen::EvtchnDev`]), emulated ones through eventfds ([`crate::emul::EventFdChannel`]).

use std::os::fd::BorrowedFd;

/// One bound event channel, seen from one end.
pub trait EventChannel: std::fmt::Debug {
    /// Send an event to the other end.
    fn notify(&self);
    /// A file descriptor that becomes readable when the other end notified.
    fn event_fd(&self) -> BorrowedFd<'_>;
    /// Consume pending events so that the fd stops being readable (and, on
    /// real Xen, unmask the port).
    fn ack(&self);
}
