//! Real Xen: the implementations of [`crate::grant::GrantOps`] and
//! [`crate::evtchn::EventChannel`] over Linux's Xen devices, for a
//! backend running in dom0 or a driver domain.
//!
//! - [`Gntdev`]: grant copies and ring mappings through `/dev/xen/gntdev`.
//! - [`EvtchnDev`]: one interdomain event channel through
//!   `/dev/xen/evtchn`.
//! - [`sys`]: the devices' ioctl ABI, checked against Xen's
//!   `xen/sys/gntdev.h` and `xen/sys/evtchn.h` by `tests/devabi.rs`.
//!
//! The xenstore side needs nothing new: [`crate::xenstore::Client::open`]
//! connects to the real xenstored's socket or `/dev/xen/xenbus`.

pub mod evtchn;
pub mod gntdev;
pub mod sys;

use std::fs::{File, OpenOptions};
use std::path::Path;

pub use evtchn::{EvtchnDev, EVTCHN_PATH};
pub use gntdev::{Gntdev, COPY_BATCH, GNTDEV_PATH};

/// Errors opening or using the Xen devices.
#[derive(Debug, thiserror::Error)]
pub enum XenDevError {
    /// The device node does not exist.
    #[error("not running on Xen: {path} missing (load {module})")]
    Missing {
        /// The device path.
        path: String,
        /// The kernel module that provides it.
        module: &'static str,
    },
    /// Opening the device failed for another reason (e.g. permissions).
    #[error("opening {path}: {source}")]
    Open {
        /// The device path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An ioctl failed.
    #[error("{what}: {source}")]
    Ioctl {
        /// Which ioctl, with its arguments.
        what: String,
        /// The errno.
        source: std::io::Error,
    },
}

/// Environment variable naming the directory that holds the `gntdev` and
/// `evtchn` devices instead of `/dev/xen` (tests use it to put other
/// files there).
pub const DEV_DIR_ENV: &str = "XENNET_XEN_DEV_DIR";

/// Where device `name` (`gntdev`, `evtchn`) is: `$XENNET_XEN_DEV_DIR/name`,
/// else `/dev/xen/name`.
pub fn device_path(name: &str) -> std::path::PathBuf {
    match std::env::var_os(DEV_DIR_ENV) {
        Some(d) => Path::new(&d).join(name),
        None => Path::new("/dev/xen").join(name),
    }
}

/// Checks that both devices can be opened (readable and writable), for a
/// clear error at start rather than at the first vif.
pub fn check_devices() -> Result<(), XenDevError> {
    drop(Gntdev::open()?);
    let rw = OpenOptions::new().read(true).write(true).clone();
    drop(open_device(&device_path("evtchn"), "xen-evtchn", &rw)?);
    Ok(())
}

/// Opens a Xen device, telling a missing node apart (not on Xen, or
/// module `module` not loaded).
fn open_device(path: &Path, module: &'static str, opts: &OpenOptions) -> Result<File, XenDevError> {
    opts.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            XenDevError::Missing {
                path: path.display().to_string(),
                module,
            }
        } else {
            XenDevError::Open {
                path: path.display().to_string(),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_devices_say_so() {
        let dir = std::env::temp_dir().join(format!("xennet-nodev-{}", std::process::id()));
        let g = Gntdev::open_path(dir.join("gntdev")).unwrap_err();
        assert_eq!(
            g.to_string(),
            format!(
                "not running on Xen: {} missing (load xen-gntdev)",
                dir.join("gntdev").display()
            )
        );
        let e = EvtchnDev::bind_interdomain_at(dir.join("evtchn"), 1, 5).unwrap_err();
        assert!(e.to_string().ends_with("missing (load xen-evtchn)"), "{e}");
        if !Path::new(GNTDEV_PATH).exists() && std::env::var_os(DEV_DIR_ENV).is_none() {
            let g = Gntdev::open().unwrap_err();
            assert_eq!(
                g.to_string(),
                "not running on Xen: /dev/xen/gntdev missing (load xen-gntdev)"
            );
        }
    }

    #[test]
    fn ioctls_on_a_non_xen_device_fail_cleanly() {
        // /dev/null accepts the open but no Xen ioctl: binding must be an
        // error, not a bogus port.
        let e = EvtchnDev::bind_interdomain_at("/dev/null", 1, 5).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("IOCTL_EVTCHN_BIND_INTERDOMAIN domain 1 port 5"),
            "{e}"
        );
        let mut g = Gntdev::open_path("/dev/null").unwrap();
        let err = crate::grant::GrantOps::map_ring(&mut g, 1, 7, true).unwrap_err();
        assert_eq!(
            err,
            crate::grant::GrantError::Refused {
                domid: 1,
                gref: 7,
                status: crate::grant::GNTST_GENERAL_ERROR
            }
        );
    }

    #[test]
    fn failed_copies_never_look_successful() {
        use crate::grant::{
            ForeignAddr, GrantCopy, GrantOps, GNTST_BAD_COPY_ARG, GNTST_GENERAL_ERROR, GNTST_OKAY,
        };
        // /dev/null fails every ioctl (ENOTTY): each batch fails as a
        // whole, every op in it must say so; ops Linux would refuse with
        // EINVAL for the whole batch (crossing the foreign page) never
        // reach the kernel; empty ops succeed without it.
        let mut g = Gntdev::open_path("/dev/null").unwrap();
        let n = 2 * COPY_BATCH + 3;
        let mut bufs = vec![[0u8; 64]; n];
        let src = [7u8; 100];
        let mut ops: Vec<GrantCopy<'_>> = Vec::new();
        for (i, b) in bufs.iter_mut().enumerate() {
            let foreign = ForeignAddr {
                domid: 3,
                gref: i as u32,
                offset: 0,
            };
            ops.push(GrantCopy::from_guest(foreign, b));
        }
        let crossing = ForeignAddr {
            domid: 3,
            gref: 1,
            offset: 4000,
        };
        ops.push(GrantCopy::to_guest(crossing, &src));
        ops.push(GrantCopy::to_guest(crossing, &src[..0]));
        for op in ops.iter_mut() {
            op.status = GNTST_OKAY;
        }
        g.copy(&mut ops);
        assert!(ops[..n].iter().all(|o| o.status == GNTST_GENERAL_ERROR));
        assert_eq!(ops[n].status, GNTST_BAD_COPY_ARG);
        assert_eq!(ops[n + 1].status, GNTST_OKAY);
        // One ioctl per batch of COPY_BATCH segments.
        assert_eq!(g.failures(), 3);
    }
}
