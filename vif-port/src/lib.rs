//! xennet's userspace Xen netback.
#![warn(missing_docs)]
