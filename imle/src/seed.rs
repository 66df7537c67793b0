//! Seed streams: one SplitMix64 mix from which every seed of the crate (and of the
//! `imle-paper` experiments) is derived, so that the same seed gives the same numbers on
//! any number of threads.

/// The golden-ratio increment of SplitMix64 (`⌊2⁶⁴/φ⌋`).
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijection of `u64` with good avalanche.
pub fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of item `item` of the stream `seed`, salted by `salt` (which keeps the
/// streams of different users of this function apart).
pub fn mix(seed: u64, item: u64, salt: u64) -> u64 {
    splitmix64((seed ^ item.wrapping_mul(GOLDEN)).wrapping_add(salt))
}

/// FNV-1a hash of a name: turns a stream tag into a number.
pub fn fnv1a(tag: &str) -> u64 {
    tag.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // SplitMix64 seeded with 0 (Vigna's reference implementation): the state is
        // advanced by GOLDEN, then finalised.
        assert_eq!(splitmix64(GOLDEN), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(GOLDEN.wrapping_mul(2)), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn fnv1a_matches_the_reference() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
