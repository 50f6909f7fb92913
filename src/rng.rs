//! Deterministic, seeded random numbers: weight initialisation and per-epoch shuffling.
//!
//! The generator is xoshiro256** (Blackman and Vigna), its 256-bit state filled from the seed by
//! splitmix64, as its authors recommend. It is not cryptographic; it is small, fast, passes the
//! usual statistical batteries and, above all, gives the same stream for the same seed on every
//! platform, so a training run is reproducible from its seed.

/// One step of splitmix64: advances `state` and returns the next output. Used to expand a 64-bit
/// seed into xoshiro's state (it never yields four zero words from any seed).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded xoshiro256** generator. The same seed always gives the same sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform `f64` in `[0, 1)`: the top 53 bits scaled by 2^-53, so every value is exact.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform `f64` in `[lo, hi)` (or exactly `lo` when `lo == hi`).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let x = lo + (hi - lo) * self.next_f64();
        // Rounding can land on `hi` when the interval is tiny; keep the half-open promise.
        if x >= hi && hi > lo {
            lo
        } else {
            x
        }
    }

    /// A uniform integer in `[0, n)`, without modulo bias (Lemire's multiply-and-reject).
    ///
    /// # Panics
    /// If `n` is 0 (there is no such integer).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below: the range [0, 0) is empty");
        let threshold = n.wrapping_neg() % n; // 2^64 mod n: the biased low part to reject
        loop {
            let wide = u128::from(self.next_u64()) * u128::from(n);
            if (wide as u64) >= threshold {
                return (wide >> 64) as u64;
            }
        }
    }

    /// Shuffles `items` in place (Fisher-Yates): every permutation equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The order in which epoch `epoch` of a run seeded with `seed` visits `n` samples: a seeded
/// permutation of `0..n`. Each epoch gets its own independent stream derived from `(seed, epoch)`,
/// so an epoch's order does not depend on how many random numbers earlier epochs used.
///
/// # Panics
/// If `n` exceeds `u32::MAX` (datasets here hold tens of thousands of samples).
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    assert!(
        u32::try_from(n).is_ok(),
        "epoch_permutation: {n} samples do not fit in u32 indices"
    );
    let mut mix = epoch ^ 0xD1B5_4A32_D192_ED03;
    let stream = seed ^ splitmix64(&mut mix);
    let mut rng = Rng::new(stream);
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seeds_differ() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let mut c = Rng::new(43);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // Reference outputs of splitmix64 seeded with 1234567 (from the algorithm's C reference).
        let mut s = 1234567u64;
        let got: Vec<u64> = (0..3).map(|_| splitmix64(&mut s)).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn next_f64_and_uniform_stay_in_range() {
        let mut r = Rng::new(7);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
            let u = r.uniform(-0.25, 0.5);
            assert!((-0.25..0.5).contains(&u), "{u}");
        }
        // Mean of 10,000 U(0,1) draws: 0.5 with standard error ~0.003.
        assert!(
            (sum / 10_000.0 - 0.5).abs() < 0.02,
            "mean {}",
            sum / 10_000.0
        );
        assert_eq!(r.uniform(3.0, 3.0), 3.0);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7_000 {
            let v = r.below(7);
            seen[v as usize] += 1;
        }
        for (value, &count) in seen.iter().enumerate() {
            assert!(
                (800..1200).contains(&count),
                "value {value} drawn {count} times"
            );
        }
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn epoch_permutation_is_a_seeded_permutation() {
        let p = epoch_permutation(1000, 5, 0);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(p, epoch_permutation(1000, 5, 0));
        assert_ne!(p, epoch_permutation(1000, 5, 1));
        assert_ne!(p, epoch_permutation(1000, 6, 0));
        assert_ne!(p, (0..1000).collect::<Vec<u32>>());
        assert!(epoch_permutation(0, 1, 2).is_empty());
        assert_eq!(epoch_permutation(1, 1, 2), vec![0]);
    }
}
