//! Open vSwitch's 32-bit hash functions (OVS `lib/hash.h`, `lib/hash.c`,
//! the portable Murmur3-based variant that builds without SSE 4.2 use,
//! as the distributions' packages are built), for selections that must
//! pick what Open vSwitch picks: a select group's `selection_method=hash`
//! (OVS `pick_hash_fields_select_group`, `group_best_live_bucket`).

/// OVS `hash_rot`.
fn rot(x: u32, k: u32) -> u32 {
    x.rotate_left(k)
}

/// OVS `mhash_add` (as `hash_add`): mixes one 32-bit word into `hash`; a
/// zero word leaves the pre-rotation value unchanged (`mhash_add__`).
pub fn hash_add(hash: u32, data: u32) -> u32 {
    let mut hash = hash;
    if data != 0 {
        let d = rot(data.wrapping_mul(0xcc9e_2d51), 15).wrapping_mul(0x1b87_3593);
        hash ^= d;
    }
    rot(hash, 13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// OVS `hash_add64`: the low word, then the high word.
pub fn hash_add64(hash: u32, data: u64) -> u32 {
    hash_add(hash_add(hash, data as u32), (data >> 32) as u32)
}

/// OVS `hash_finish` (`mhash_finish(hash ^ final)`).
pub fn hash_finish(hash: u32, fin: u32) -> u32 {
    let mut h = hash ^ fin;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// OVS `hash_int` (`hash_2words(x, basis)`).
pub fn hash_int(x: u32, basis: u32) -> u32 {
    hash_finish(hash_add(hash_add(x, 0), basis), 8)
}

/// OVS `hash_uint64` (`hash_uint64_basis(x, 0)`).
pub fn hash_uint64(x: u64) -> u32 {
    hash_finish(hash_add64(0, x), 8)
}

/// OVS `hash_bytes`: the bytes as little-endian 32-bit words (OVS reads
/// them in host order, and its hosts here are little-endian), the last
/// partial word zero-padded, finished with the length in bytes.
pub fn hash_bytes(p: &[u8], basis: u32) -> u32 {
    let mut h = basis;
    let mut chunks = p.chunks_exact(4);
    for c in &mut chunks {
        h = hash_add(h, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 4];
        w[..rest.len()].copy_from_slice(rest);
        h = hash_add(h, u32::from_le_bytes(w));
    }
    hash_finish(h, p.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_blocks_agree() {
        // hash_int(x, basis) is hash_2words(x, basis): starting from x,
        // the words 0 and basis, finished with 8, which is hash_bytes of
        // those two little-endian words with x as the basis.
        let (x, b) = (7u32, 0x1234_5678u32);
        let mut bytes = 0u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&b.to_le_bytes());
        assert_eq!(hash_int(x, b), hash_bytes(&bytes, x));
        // hash_uint64 is the same over the 64-bit value's two words.
        let v = 0xdead_beef_0000_0005u64;
        assert_eq!(hash_uint64(v), hash_bytes(&v.to_le_bytes(), 0));
        // A zero word leaves only the rotation and constant.
        assert_eq!(hash_add(0, 0), 0xe654_6b64);
        // (That these are OVS's values, bucket for bucket, is what
        // tests/differential.rs `select_group_selection_methods_as_on_ovs`
        // checks against ovs-vswitchd.)
        // Different inputs, different hashes.
        assert_ne!(hash_bytes(&[10, 0, 0, 1], 0), hash_bytes(&[10, 0, 0, 2], 0));
    }
}
