//! Accepting connections without dying of a passing shortage.
//!
//! `accept(2)` fails for reasons that pass: the process or the system is
//! out of descriptors (`EMFILE`, `ENFILE`) or memory (`ENOMEM`,
//! `ENOBUFS`), the peer gave up before we took its connection
//! (`ECONNABORTED`), a signal (`EINTR`), nothing pending (`EAGAIN`), and,
//! as accept(2) says for TCP, network errors already pending on the new
//! connection (`ENETDOWN`, `EPROTO`, `ENOPROTOOPT`, `EHOSTDOWN`, `ENONET`,
//! `EHOSTUNREACH`, `EOPNOTSUPP`, `ENETUNREACH`) and a firewall's `EPERM`.
//! A listener that stops on those lets any local user take the daemon down
//! by opening idle connections until it runs out of descriptors. Like
//! OVS's `pstream_accept` callers, a listener logs them (rate-limited),
//! waits [`BACKOFF`] so as not to spin while the shortage lasts, and goes
//! on; other errors (`EBADF`, `EINVAL`, `ENOTSOCK`, ...) mean the listener
//! itself is broken and are returned.
//!
//! [`AcceptErrors`] is the bookkeeping every listening socket shares: the
//! emulated xenstored's accept thread here, and in xennetd the unixctl,
//! OpenFlow (`<bridge>.mgmt`, `ptcp:`, `punix:`) and emulated Xen
//! registration listeners (async, through `xennetd`'s `accept` module).

use std::io;
use std::time::Duration;

use crate::ratelimit::LogLimit;

/// How long a listener waits after a transient accept error.
pub const BACKOFF: Duration = Duration::from_millis(100);

/// Whether a failed `accept(2)` is worth retrying (see the module docs).
pub fn is_transient(e: &io::Error) -> bool {
    use nix::errno::Errno;
    let Some(code) = e.raw_os_error() else {
        return e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted;
    };
    matches!(
        Errno::from_raw(code),
        Errno::EMFILE
            | Errno::ENFILE
            | Errno::ENOMEM
            | Errno::ENOBUFS
            | Errno::ECONNABORTED
            | Errno::EINTR
            | Errno::EAGAIN
            | Errno::ENETDOWN
            | Errno::EPROTO
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH
            | Errno::EPERM
    )
}

/// One listener's failed accepts: a count and a rate-limited log line.
#[derive(Debug)]
pub struct AcceptErrors {
    what: String,
    transient: u64,
    log: LogLimit,
}

impl AcceptErrors {
    /// Bookkeeping for the listener `what` (as log lines name it, e.g. the
    /// socket's path).
    pub fn new(what: impl Into<String>) -> Self {
        AcceptErrors {
            what: what.into(),
            transient: 0,
            log: LogLimit::new(),
        }
    }

    /// Transient errors so far.
    pub fn transient(&self) -> u64 {
        self.transient
    }

    /// Notes the failed accept `e`. A transient error is counted and
    /// logged (at most once per [`LogLimit::INTERVAL`]) and gives how long
    /// to wait before accepting again ([`BACKOFF`]; no wait for `EAGAIN`
    /// and `EINTR`); any other error gives `Err(e)`: the listener is
    /// broken.
    ///
    /// # Errors
    /// `e` itself when it is not transient.
    pub fn backoff(&mut self, e: io::Error) -> io::Result<Duration> {
        if !is_transient(&e) {
            return Err(e);
        }
        self.transient = self.transient.saturating_add(1);
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ) {
            return Ok(Duration::ZERO);
        }
        if self.log.ready() {
            tracing::warn!(
                "{}: accept: {e}; retrying in {} ms ({} transient errors in all)",
                self.what,
                BACKOFF.as_millis(),
                self.transient
            );
        }
        Ok(BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    fn err(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e as i32)
    }

    #[test]
    fn shortages_are_transient_broken_listeners_are_not() {
        let mut a = AcceptErrors::new("test.sock");
        for e in [Errno::EMFILE, Errno::ENFILE, Errno::ENOMEM, Errno::ENOBUFS] {
            assert_eq!(a.backoff(err(e)).unwrap(), BACKOFF);
        }
        assert_eq!(a.backoff(err(Errno::ECONNABORTED)).unwrap(), BACKOFF);
        assert_eq!(a.backoff(err(Errno::EINTR)).unwrap(), Duration::ZERO);
        assert_eq!(a.backoff(err(Errno::EAGAIN)).unwrap(), Duration::ZERO);
        assert_eq!(a.transient(), 7);
        for e in [Errno::EBADF, Errno::EINVAL, Errno::ENOTSOCK] {
            assert_eq!(
                a.backoff(err(e)).unwrap_err().raw_os_error(),
                Some(e as i32)
            );
        }
        assert_eq!(a.transient(), 7);
    }
}
