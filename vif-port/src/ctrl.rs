//! The netif control ring's hash requests (`io/netif.h`,
//! `XEN_NETIF_CTRL_TYPE_*`), as Linux netback's `hash.c` serves them: the
//! frontend picks the Toeplitz algorithm, a key of up to 40 bytes, the
//! hash types, and a mapping table from hash to queue; the backend then
//! sends each packet to the guest on `mapping[hash % size]`.
//!
//! [`process`] handles one request copied out of the ring (the caller
//! copies it once; only the copy is looked at). Every field is checked:
//! key size ≤ [`crate::toeplitz::MAX_KEY_SIZE`], mapping size ≤
//! [`MAX_MAPPING_SIZE`], mapping ranges inside the table and entries below
//! the number of queues, grant copy failures → `INVALID_PARAMETER`.
//! Nothing a frontend sends can panic or allocate.

use crate::grant::{DomId, ForeignAddr, GrantCopy, GrantOps, GNTST_OKAY};
use crate::ring::{NetifExtraInfo, XEN_NETIF_EXTRA_TYPE_HASH, XEN_PAGE_SIZE};
use crate::toeplitz::{hash_frame, FlowHash, HASH_TYPES_ALL, MAX_KEY_SIZE};

/// `XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS`.
pub const CTRL_TYPE_GET_HASH_FLAGS: u16 = 1;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS`.
pub const CTRL_TYPE_SET_HASH_FLAGS: u16 = 2;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_KEY`.
pub const CTRL_TYPE_SET_HASH_KEY: u16 = 3;
/// `XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE`.
pub const CTRL_TYPE_GET_HASH_MAPPING_SIZE: u16 = 4;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE`.
pub const CTRL_TYPE_SET_HASH_MAPPING_SIZE: u16 = 5;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING`.
pub const CTRL_TYPE_SET_HASH_MAPPING: u16 = 6;
/// `XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM`.
pub const CTRL_TYPE_SET_HASH_ALGORITHM: u16 = 7;

/// `XEN_NETIF_CTRL_STATUS_SUCCESS`.
pub const CTRL_STATUS_SUCCESS: u32 = 0;
/// `XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED`.
pub const CTRL_STATUS_NOT_SUPPORTED: u32 = 1;
/// `XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER`.
pub const CTRL_STATUS_INVALID_PARAMETER: u32 = 2;
/// `XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW`.
pub const CTRL_STATUS_BUFFER_OVERFLOW: u32 = 3;

/// `XEN_NETIF_CTRL_HASH_ALGORITHM_NONE`.
pub const HASH_ALGORITHM_NONE: u32 = 0;
/// `XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ`.
pub const HASH_ALGORITHM_TOEPLITZ: u32 = 1;

/// Largest mapping table (Linux `XEN_NETBK_MAX_HASH_MAPPING_SIZE`); the
/// answer to `GET_HASH_MAPPING_SIZE`.
pub const MAX_MAPPING_SIZE: usize = 128;

/// `struct xen_netif_ctrl_request`, 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtrlRequest {
    /// Echoed in the response (`id`).
    pub id: u16,
    /// `XEN_NETIF_CTRL_TYPE_*` (`type`).
    pub kind: u16,
    /// Type-specific parameters (`data[3]`).
    pub data: [u32; 3],
}

/// `struct xen_netif_ctrl_response`, 12 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtrlResponse {
    /// The request's `id`.
    pub id: u16,
    /// The request's `type`.
    pub kind: u16,
    /// `XEN_NETIF_CTRL_STATUS_*` (`status`).
    pub status: u32,
    /// Type-specific result (`data`).
    pub data: u32,
}

// SAFETY: #[repr(C)] structs of integers without padding (sizes asserted
// below); every bit pattern is valid.
unsafe impl crate::mem::Pod for CtrlRequest {}
// SAFETY: as above.
unsafe impl crate::mem::Pod for CtrlResponse {}

const _: () = {
    assert!(std::mem::size_of::<CtrlRequest>() == 16);
    assert!(std::mem::size_of::<CtrlResponse>() == 12);
};

/// A vif's receive-side hash configuration. Fixed-size: no allocation.
#[derive(Debug, Clone)]
pub struct HashConfig {
    /// Toeplitz selected (`SET_HASH_ALGORITHM`).
    pub toeplitz: bool,
    /// Enabled `XEN_NETIF_CTRL_HASH_TYPE_*` bits.
    pub flags: u32,
    /// The key, zero-extended to 40 bytes.
    pub key: [u8; MAX_KEY_SIZE],
    /// The mapping table; `size` entries are in use.
    pub mapping: [u32; MAX_MAPPING_SIZE],
    /// Entries of `mapping` in use (0: hash modulo the queue count).
    pub size: usize,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            toeplitz: false,
            flags: 0,
            key: [0; MAX_KEY_SIZE],
            mapping: [0; MAX_MAPPING_SIZE],
            size: 0,
        }
    }
}

impl HashConfig {
    /// Whether the frontend configured a hash (Toeplitz with some hash
    /// types): packets may then carry a hash extra.
    pub fn active(&self) -> bool {
        self.toeplitz && self.flags != 0
    }

    /// The frontend's hash of a frame: `None` when it configured no hash
    /// ([`HashConfig::active`]) or none of its types covers the frame.
    /// Computed once per packet, for both [`HashConfig::queue_of`] and
    /// [`HashConfig::extra_of`].
    pub fn flow_hash(&self, frame: &[u8]) -> Option<FlowHash> {
        if !self.active() {
            return None;
        }
        hash_frame(&self.key, self.flags, frame)
    }

    /// The queue (before reduction modulo the queue count) for a frame
    /// whose [`HashConfig::flow_hash`] is `h`, as Linux
    /// `xenvif_select_queue`: `None` when the frontend configured no hash;
    /// otherwise `mapping[hash % size]`, or the hash itself with no
    /// mapping. A frame no enabled hash type covers hashes to 0.
    pub fn queue_of(&self, h: Option<FlowHash>) -> Option<usize> {
        if !self.active() {
            return None;
        }
        let h = h.map_or(0, |h| h.value);
        if self.size == 0 {
            return Some(h as usize);
        }
        let i = h as usize % self.size;
        Some(self.mapping.get(i).copied().unwrap_or(0) as usize)
    }

    /// The `XEN_NETIF_EXTRA_TYPE_HASH` extra for a frame going to the
    /// guest whose hash is `h`: `u.hash.type` is the type's number
    /// (`_XEN_NETIF_CTRL_HASH_TYPE_*`, the bit position),
    /// `u.hash.algorithm` Toeplitz, `u.hash.value` the hash in native
    /// byte order, as Linux netback's `xenvif_rx_extra_slot`.
    pub fn extra_of(h: FlowHash) -> NetifExtraInfo {
        let v = h.value.to_ne_bytes();
        NetifExtraInfo {
            kind: XEN_NETIF_EXTRA_TYPE_HASH,
            flags: 0,
            u: [
                h.kind.trailing_zeros() as u8,
                HASH_ALGORITHM_TOEPLITZ as u8,
                v[0],
                v[1],
                v[2],
                v[3],
            ],
        }
    }
}

/// Serve one control request (already copied out of the ring) against
/// `cfg`, for a vif of `num_queues` queues whose frontend is `domid`;
/// grant copies (key and mapping pages) go through `grants`.
pub fn process(
    cfg: &mut HashConfig,
    num_queues: usize,
    req: &CtrlRequest,
    grants: &mut dyn GrantOps,
    domid: DomId,
) -> CtrlResponse {
    let [d0, d1, d2] = req.data;
    let (status, data) = match req.kind {
        CTRL_TYPE_GET_HASH_FLAGS => (CTRL_STATUS_SUCCESS, HASH_TYPES_ALL),
        CTRL_TYPE_SET_HASH_FLAGS => {
            if d0 & !HASH_TYPES_ALL != 0 || (!cfg.toeplitz && d0 != 0) {
                (CTRL_STATUS_INVALID_PARAMETER, 0)
            } else {
                cfg.flags = d0;
                (CTRL_STATUS_SUCCESS, 0)
            }
        }
        CTRL_TYPE_SET_HASH_ALGORITHM => match d0 {
            HASH_ALGORITHM_NONE | HASH_ALGORITHM_TOEPLITZ => {
                cfg.toeplitz = d0 == HASH_ALGORITHM_TOEPLITZ;
                if !cfg.toeplitz {
                    cfg.flags = 0;
                }
                (CTRL_STATUS_SUCCESS, 0)
            }
            _ => (CTRL_STATUS_INVALID_PARAMETER, 0),
        },
        CTRL_TYPE_SET_HASH_KEY => {
            let len = d1 as usize;
            if len > MAX_KEY_SIZE {
                (CTRL_STATUS_BUFFER_OVERFLOW, 0)
            } else {
                let mut key = [0u8; MAX_KEY_SIZE];
                let ok = len == 0
                    || copy_in(grants, domid, d0, 0, key.get_mut(..len).unwrap_or(&mut []));
                if ok {
                    cfg.key = key;
                    (CTRL_STATUS_SUCCESS, 0)
                } else {
                    (CTRL_STATUS_INVALID_PARAMETER, 0)
                }
            }
        }
        CTRL_TYPE_GET_HASH_MAPPING_SIZE => (CTRL_STATUS_SUCCESS, MAX_MAPPING_SIZE as u32),
        CTRL_TYPE_SET_HASH_MAPPING_SIZE => {
            let size = d0 as usize;
            if size > MAX_MAPPING_SIZE {
                (CTRL_STATUS_INVALID_PARAMETER, 0)
            } else {
                cfg.size = size;
                cfg.mapping = [0; MAX_MAPPING_SIZE];
                (CTRL_STATUS_SUCCESS, 0)
            }
        }
        CTRL_TYPE_SET_HASH_MAPPING => {
            let (gref, len, off) = (d0, d1 as usize, d2 as usize);
            let in_table = off.checked_add(len).is_some_and(|end| end <= cfg.size);
            if !in_table || len * 4 > XEN_PAGE_SIZE {
                (CTRL_STATUS_INVALID_PARAMETER, 0)
            } else {
                let mut raw = [0u8; MAX_MAPPING_SIZE * 4];
                let buf = raw.get_mut(..len * 4).unwrap_or(&mut []);
                let ok = len == 0 || copy_in(grants, domid, gref, 0, buf);
                let mut entries = [0u32; MAX_MAPPING_SIZE];
                for (e, c) in entries.iter_mut().zip(raw.chunks_exact(4)).take(len) {
                    *e = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                }
                let valid = entries.iter().take(len).all(|&q| (q as usize) < num_queues);
                if ok && valid {
                    if let Some(dst) = cfg.mapping.get_mut(off..off + len) {
                        dst.copy_from_slice(entries.get(..len).unwrap_or(&[]));
                    }
                    (CTRL_STATUS_SUCCESS, 0)
                } else {
                    (CTRL_STATUS_INVALID_PARAMETER, 0)
                }
            }
        }
        _ => (CTRL_STATUS_NOT_SUPPORTED, 0),
    };
    CtrlResponse {
        id: req.id,
        kind: req.kind,
        status,
        data,
    }
}

/// Grant-copy `dst.len()` bytes from `gref` at `offset`; false on any
/// failure.
fn copy_in(
    grants: &mut dyn GrantOps,
    domid: DomId,
    gref: u32,
    offset: u16,
    dst: &mut [u8],
) -> bool {
    let mut op = [GrantCopy::from_guest(
        ForeignAddr {
            domid,
            gref,
            offset,
        },
        dst,
    )];
    grants.copy(&mut op);
    op[0].status == GNTST_OKAY
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfront::Netfront;
    use crate::toeplitz::{DEFAULT_KEY, HASH_TYPE_IPV4, HASH_TYPE_IPV4_TCP};

    fn req(kind: u16, data: [u32; 3]) -> CtrlRequest {
        CtrlRequest { id: 7, kind, data }
    }

    /// A guest with the RSS key in TX buffer 0 and a mapping table of
    /// `[3, 2, 1, 0]` in TX buffer 1; returns the backend's grant ops.
    fn guest() -> (Netfront, crate::emul::EmulatedGrants) {
        let mut nf = Netfront::new(3, 0).unwrap();
        assert!(nf.write_tx_buffer(0, 0, &DEFAULT_KEY));
        let table: Vec<u8> = [3u32, 2, 1, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        assert!(nf.write_tx_buffer(1, 0, &table));
        assert!(nf.write_tx_buffer(2, 0, &9u32.to_ne_bytes()));
        let grants = nf.emulated_domain().unwrap().grants;
        (nf, grants)
    }

    fn frame() -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[66, 9, 149, 187, 161, 142, 100, 80]);
        f.extend_from_slice(&2794u16.to_be_bytes());
        f.extend_from_slice(&1766u16.to_be_bytes());
        f.extend_from_slice(&[0; 16]);
        f
    }

    #[test]
    fn configure_toeplitz_and_map_a_flow() {
        let (_nf, mut g) = guest();
        let mut cfg = HashConfig::default();
        let key_ref = Netfront::tx_buffer_gref(0);
        let map_ref = Netfront::tx_buffer_gref(1);
        let mut run =
            |cfg: &mut HashConfig, kind, data| process(cfg, 4, &req(kind, data), &mut g, 3);
        let r = run(&mut cfg, CTRL_TYPE_GET_HASH_FLAGS, [0; 3]);
        assert_eq!(
            (r.id, r.status, r.data),
            (7, CTRL_STATUS_SUCCESS, HASH_TYPES_ALL)
        );
        assert_eq!(
            cfg.queue_of(cfg.flow_hash(&frame())),
            None,
            "no hash before configuration"
        );
        // Flags need an algorithm first.
        let r = run(&mut cfg, CTRL_TYPE_SET_HASH_FLAGS, [HASH_TYPE_IPV4, 0, 0]);
        assert_eq!(r.status, CTRL_STATUS_INVALID_PARAMETER);
        let r = run(
            &mut cfg,
            CTRL_TYPE_SET_HASH_ALGORITHM,
            [HASH_ALGORITHM_TOEPLITZ, 0, 0],
        );
        assert_eq!(r.status, CTRL_STATUS_SUCCESS);
        let r = run(&mut cfg, CTRL_TYPE_SET_HASH_KEY, [key_ref, 40, 0]);
        assert_eq!(r.status, CTRL_STATUS_SUCCESS);
        assert_eq!(cfg.key, DEFAULT_KEY);
        let r = run(
            &mut cfg,
            CTRL_TYPE_SET_HASH_FLAGS,
            [HASH_TYPE_IPV4_TCP, 0, 0],
        );
        assert_eq!(r.status, CTRL_STATUS_SUCCESS);
        // No mapping: the hash itself (0x51ccc178, the RSS vector).
        assert_eq!(cfg.queue_of(cfg.flow_hash(&frame())), Some(0x51ccc178));
        let r = run(&mut cfg, CTRL_TYPE_GET_HASH_MAPPING_SIZE, [0; 3]);
        assert_eq!(r.data, MAX_MAPPING_SIZE as u32);
        let r = run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING_SIZE, [4, 0, 0]);
        assert_eq!(r.status, CTRL_STATUS_SUCCESS);
        let r = run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING, [map_ref, 4, 0]);
        assert_eq!(r.status, CTRL_STATUS_SUCCESS);
        assert_eq!(cfg.mapping[..4], [3, 2, 1, 0]);
        // 0x51ccc178 % 4 = 0 → mapping[0] = 3.
        assert_eq!(cfg.queue_of(cfg.flow_hash(&frame())), Some(3));
    }

    #[test]
    fn hostile_requests_get_status_errors() {
        let (_nf, mut g) = guest();
        let mut cfg = HashConfig::default();
        let map_ref = Netfront::tx_buffer_gref(1);
        let bad_ref = Netfront::tx_buffer_gref(2); // holds queue 9
        let mut run =
            |cfg: &mut HashConfig, kind, data| process(cfg, 4, &req(kind, data), &mut g, 3).status;
        use CTRL_STATUS_INVALID_PARAMETER as INVALID;
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_KEY, [8, 41, 0]),
            CTRL_STATUS_BUFFER_OVERFLOW
        );
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_KEY, [u32::MAX, 40, 0]),
            INVALID
        );
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_ALGORITHM, [2, 0, 0]),
            INVALID
        );
        assert_eq!(run(&mut cfg, CTRL_TYPE_SET_HASH_ALGORITHM, [1, 0, 0]), 0);
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_FLAGS, [1 << 4, 0, 0]),
            INVALID
        );
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING_SIZE, [129, 0, 0]),
            INVALID
        );
        assert_eq!(run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING_SIZE, [4, 0, 0]), 0);
        // Outside the table, wrapping offsets, entries ≥ the queue count.
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING, [map_ref, 4, 1]),
            INVALID
        );
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING, [map_ref, 2, u32::MAX]),
            INVALID
        );
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING, [map_ref, u32::MAX, 1]),
            INVALID
        );
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING, [bad_ref, 1, 0]),
            INVALID
        );
        assert_eq!(cfg.mapping[0], 0, "a refused mapping changes nothing");
        assert_eq!(
            run(&mut cfg, CTRL_TYPE_SET_HASH_MAPPING, [999_999, 1, 0]),
            INVALID
        );
        assert_eq!(run(&mut cfg, 0, [0; 3]), CTRL_STATUS_NOT_SUPPORTED);
        assert_eq!(run(&mut cfg, 8, [0; 3]), CTRL_STATUS_NOT_SUPPORTED);
        assert_eq!(run(&mut cfg, u16::MAX, [0; 3]), CTRL_STATUS_NOT_SUPPORTED);
        // Any request at all: a status, never a panic, entries in range.
        let mut x = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let kind = (x % 10) as u16;
            let small = |v: u64| (v % 300) as u32;
            let data = [
                if x & 1 == 0 { map_ref } else { (x >> 8) as u32 },
                small(x >> 16),
                small(x >> 32),
            ];
            let _ = run(&mut cfg, kind, data);
            assert!(cfg.size <= MAX_MAPPING_SIZE);
            assert!(cfg.mapping.iter().all(|&q| q < 4));
            let _ = cfg.queue_of(cfg.flow_hash(&frame()));
        }
    }
}
