//! Stable hashing: request attributes to keys, and the mixing the tables use.
//!
//! Keys must hash the same in every process, release and language (gateway,
//! SDKs), so std's randomly seeded `RandomState` is out. We use XXH64, the
//! hash Envoy uses for its hash policies, implemented here (it is short) to
//! keep the crate free of dependencies on the request path.

/// Turns a request attribute (header value, cookie, client IP, path) into the
/// `u64` key that [`Balancer::pick`](crate::Balancer::pick) routes hash policies on.
///
/// It is XXH64 with seed 0: stable across processes and versions, so every
/// gateway replica and SDK sends the same key to the same endpoint.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 of `input` with `seed`, per the xxHash specification.
pub(crate) fn xxh64(input: &[u8], seed: u64) -> u64 {
    let mut rest = input;
    let mut h = if input.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while let Some((stripe, tail)) = rest.split_first_chunk::<32>() {
            for (lane, word) in v.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, read_u64(word));
            }
            rest = tail;
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = (h ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u64);
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        h ^= round(0, u64::from_le_bytes(*word));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = tail;
    }
    if let Some((word, tail)) = rest.split_first_chunk::<4>() {
        h ^= u64::from(u32::from_le_bytes(*word)).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = tail;
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn read_u64(word: &[u8]) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(word);
    u64::from_le_bytes(buf)
}

/// SplitMix64's finalizer: a cheap bijection that spreads any `u64` over the
/// whole range. Tables mix the caller's key with it so sequential or
/// low-entropy keys (user ids, small integers) still land evenly.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64's increment (2^64 / golden ratio): stepping a state by it and
/// mixing yields a well-spread sequence.
pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
mod tests;
