use super::*;

/// Reference values from the xxHash project's implementation (python `xxhash`).
#[test]
fn xxh64_matches_reference_vectors() {
    let cases: [(&[u8], u64, u64); 6] = [
        (b"", 0xef46db3751d8e999, 0xd5afba1336a3be4b),
        (b"a", 0xd24ec4f1a98c6e5b, 0xdec2bc81c3cd46c6),
        (b"abc", 0x44bc2cf5ad770999, 0xbea9ca8199328908),
        (b"10.0.0.1", 0xed16cb68c786e3d7, 0xbf86da062e2ebec0),
        (
            b"0123456789abcdef0123456789abcdef",
            0x642a94958e71e6c5,
            0x048b8b580878a4a4,
        ),
        (
            b"The quick brown fox jumps over the lazy dog",
            0x0b242d361fda71bc,
            0xdf5091b6dad2c6db,
        ),
    ];
    for (input, seed0, seed1) in cases {
        let shown = String::from_utf8_lossy(input);
        assert_eq!(xxh64(input, 0), seed0, "seed 0, {shown:?}");
        assert_eq!(xxh64(input, 1), seed1, "seed 1, {shown:?}");
    }
}

#[test]
fn hash_key_is_xxh64_seed_zero() {
    assert_eq!(hash_key(b"abc"), 0x44bc2cf5ad770999);
    assert_ne!(hash_key(b"user-1"), hash_key(b"user-2"));
}

#[test]
fn mix64_spreads_sequential_keys_over_the_high_bits() {
    // Sequential keys must not cluster: check all 16 top-nibble buckets fill.
    let mut buckets = [0u32; 16];
    for k in 0..1600u64 {
        buckets[(mix64(k) >> 60) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|&n| (60..=140).contains(&n)),
        "{buckets:?}"
    );
}
