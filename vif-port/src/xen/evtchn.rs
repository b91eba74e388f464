//! [`EvtchnDev`]: [`EventChannel`] on real Xen through Linux's
//! `/dev/xen/evtchn` (module `xen-evtchn`), as Xen's `tools/libs/evtchn`
//! (`linux.c`) uses it.
//!
//! One open of the device per bound channel, so that the device fd is
//! the channel's pollable fd: `IOCTL_EVTCHN_BIND_INTERDOMAIN` binds the
//! frontend's port and returns our local port; `IOCTL_EVTCHN_NOTIFY`
//! sends. The kernel (`drivers/xen/evtchn.c`) masks a port when it
//! delivers an event and queues the port number for `read`; [`ack`]
//! reads the queued `u32` port numbers and writes them back, which
//! unmasks them. Dropping unbinds (`IOCTL_EVTCHN_UNBIND`, and closing the
//! fd unbinds whatever is left).
//!
//! [`ack`]: EventChannel::ack

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::evtchn::EventChannel;
use crate::grant::DomId;

use super::sys::{
    EvtchnBindInterdomain, EvtchnPort, IOCTL_EVTCHN_BIND_INTERDOMAIN, IOCTL_EVTCHN_NOTIFY,
    IOCTL_EVTCHN_RESET, IOCTL_EVTCHN_UNBIND,
};
use super::{open_device, XenDevError};

/// The event channel device.
pub const EVTCHN_PATH: &str = "/dev/xen/evtchn";

/// One interdomain event channel bound through its own open of
/// `/dev/xen/evtchn` (non-blocking).
#[derive(Debug)]
pub struct EvtchnDev {
    fd: OwnedFd,
    local_port: u32,
    remote_domid: DomId,
    remote_port: u32,
    /// Failed notifies and unmasks, for rate-limited logs.
    failures: AtomicU64,
}

impl EvtchnDev {
    /// Binds our end to port `remote_port` of domain `remote_domid`
    /// (`IOCTL_EVTCHN_BIND_INTERDOMAIN` on a new open of [`EVTCHN_PATH`],
    /// or of `evtchn` in `$XENNET_XEN_DEV_DIR`, see
    /// [`super::device_path`]).
    pub fn bind_interdomain(remote_domid: DomId, remote_port: u32) -> Result<Self, XenDevError> {
        Self::bind_interdomain_at(super::device_path("evtchn"), remote_domid, remote_port)
    }

    /// As [`bind_interdomain`](Self::bind_interdomain), with the device at
    /// `path`.
    pub fn bind_interdomain_at(
        path: impl AsRef<Path>,
        remote_domid: DomId,
        remote_port: u32,
    ) -> Result<Self, XenDevError> {
        let path = path.as_ref();
        let file = open_device(
            path,
            "xen-evtchn",
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK),
        )?;
        let fd: OwnedFd = file.into();
        let mut arg = EvtchnBindInterdomain {
            remote_domain: u32::from(remote_domid),
            remote_port,
        };
        // SAFETY: a valid `ioctl_evtchn_bind_interdomain`, read by the
        // kernel; the return value is the local port.
        let r = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                IOCTL_EVTCHN_BIND_INTERDOMAIN,
                &mut arg as *mut EvtchnBindInterdomain,
            )
        };
        if r < 0 {
            return Err(XenDevError::Ioctl {
                what: format!(
                    "IOCTL_EVTCHN_BIND_INTERDOMAIN domain {remote_domid} port {remote_port}"
                ),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(EvtchnDev {
            fd,
            local_port: r as u32,
            remote_domid,
            remote_port,
            failures: AtomicU64::new(0),
        })
    }

    /// Our local port.
    pub fn local_port(&self) -> u32 {
        self.local_port
    }

    /// The other end: (domain, port).
    pub fn remote(&self) -> (DomId, u32) {
        (self.remote_domid, self.remote_port)
    }

    fn port_ioctl(&self, request: nix::sys::ioctl::ioctl_num_type) -> std::io::Result<()> {
        let mut arg = EvtchnPort {
            port: self.local_port,
        };
        // SAFETY: a valid `ioctl_evtchn_notify`/`ioctl_evtchn_unbind`.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), request, &mut arg as *mut EvtchnPort) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl EventChannel for EvtchnDev {
    fn notify(&self) {
        if let Err(e) = self.port_ioctl(IOCTL_EVTCHN_NOTIFY) {
            self.failed(format_args!(
                "IOCTL_EVTCHN_NOTIFY port {}: {e}",
                self.local_port
            ));
        }
    }

    fn event_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn ack(&self) {
        let mut buf = [0u8; 4 * 64];
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // Only our own port is bound on this fd; unmask it
                    // once, whatever the kernel queued.
                    let n = n - n % 4;
                    let ours = buf[..n]
                        .chunks_exact(4)
                        .any(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) == self.local_port);
                    if ours {
                        self.unmask();
                    }
                    if n < buf.len() {
                        break;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EFBIG) => {
                    // The pending ring overflowed: reset it and unmask.
                    // SAFETY: IOCTL_EVTCHN_RESET takes no argument.
                    let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), IOCTL_EVTCHN_RESET, 0) };
                    if r < 0 {
                        tracing::warn!(
                            "IOCTL_EVTCHN_RESET port {}: {}",
                            self.local_port,
                            std::io::Error::last_os_error()
                        );
                    }
                    self.unmask();
                    break;
                }
                Err(e) => {
                    self.failed(format_args!(
                        "reading event channel port {}: {e}",
                        self.local_port
                    ));
                    break;
                }
            }
        }
    }
}

impl EvtchnDev {
    /// Writes our port back to the device, which unmasks it.
    fn unmask(&self) {
        let b = self.local_port.to_ne_bytes();
        if let Err(e) = nix::unistd::write(&self.fd, &b) {
            self.failed(format_args!(
                "unmasking event channel port {}: {e}",
                self.local_port
            ));
        }
    }

    /// Counts a failure and logs the 1st, 2nd, 4th, 8th... one.
    fn failed(&self, what: std::fmt::Arguments<'_>) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!("{what} ({n} event channel failures so far)");
        }
    }
}

impl Drop for EvtchnDev {
    fn drop(&mut self) {
        if let Err(e) = self.port_ioctl(IOCTL_EVTCHN_UNBIND) {
            tracing::warn!("IOCTL_EVTCHN_UNBIND port {}: {e}", self.local_port);
        }
    }
}
