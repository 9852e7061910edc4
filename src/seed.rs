//! Seed mixing, in one place: every random stream of a run (data order, augmentation draws, the
//! validation split, flips, dropout, replicas) derives from `train.seed` through [`mix`] and a
//! salt of its own, so the streams are unrelated and each depends on the seed and its counter
//! alone (what makes resumed runs bit-exact).

/// Salt of the validation split's permutation (`data.val_split`).
pub const SPLIT_SALT: u64 = 0x5eed_0f5a_1d00_0001;
/// Salt of airbench's alternating flips (`data.flip_mode = "alternate"`).
pub const FLIP_SALT: u64 = 0xf11b_0001;
/// Salt of the dropout masks, so their stream differs from the data order's.
pub const DROPOUT_SALT: u64 = 0xd50_0001;

/// Mixes a seed with a counter (epoch, micro-batch, replica, image index; SplitMix64 finaliser)
/// so nearby seeds and counters give unrelated streams.
pub fn mix(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::mix;

    /// SplitMix64's published first output for state 0 advanced once (Steele et al. 2014; the
    /// reference `splitmix64.c`): 0xE220A8397B1DCDAF. `mix(0, 0)` is that step.
    #[test]
    fn mix_is_splitmix64() {
        assert_eq!(mix(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_ne!(mix(1, 0), mix(0, 1));
    }
}
