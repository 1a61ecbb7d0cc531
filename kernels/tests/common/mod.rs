//! Helpers shared by the kernel tests: canary-guarded output buffers, a seeded input generator and
//! a tolerance check that prints where and by how much two results differ.
#![allow(dead_code)]

pub mod gpu;

/// A value no kernel produces by accident; written before and after every output region.
pub const CANARY: f32 = -7.654_321e29;
pub const GUARD: usize = 19;

/// An output buffer of `len` elements with GUARD canaries on each side.
pub struct Guarded {
    buf: Vec<f32>,
    len: usize,
}

impl Guarded {
    /// Output region filled with `fill` (use NaN to prove the kernel writes every element).
    pub fn new(len: usize, fill: f32) -> Guarded {
        let mut buf = vec![CANARY; len + 2 * GUARD];
        buf[GUARD..GUARD + len].fill(fill);
        Guarded { buf, len }
    }
    /// Output region starting as a copy of `init` (for kernels that accumulate).
    pub fn from(init: &[f32]) -> Guarded {
        let mut g = Guarded::new(init.len(), 0.0);
        g.inner_mut().copy_from_slice(init);
        g
    }
    pub fn inner(&self) -> &[f32] {
        &self.buf[GUARD..GUARD + self.len]
    }
    pub fn inner_mut(&mut self) -> &mut [f32] {
        &mut self.buf[GUARD..GUARD + self.len]
    }
    /// Panics if any canary was overwritten (an out-of-bounds write by the kernel).
    pub fn check_canaries(&self, what: &str) {
        for (i, &v) in self.buf[..GUARD].iter().chain(&self.buf[GUARD + self.len..]).enumerate() {
            assert!(v.to_bits() == CANARY.to_bits(), "{what}: canary {i} overwritten with {v}");
        }
    }
}

/// Deterministic pseudo-random floats in [lo, hi) from a seed (SplitMix64), so failures reproduce.
pub fn rand_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// |got - want| <= abs + rel * |want| elementwise; on failure names the op, the index, both values.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], abs: f32, rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0f32);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ok = err <= abs + rel * w.abs() || (g.is_nan() && w.is_nan()) || g == w;
        assert!(ok, "{what}: index {i}: got {g}, want {w} (|diff| {err}, abs tol {abs}, rel tol {rel})");
        if err > worst.1 {
            worst = (i, err);
        }
    }
}

/// f32 inputs widened for the f64 reference run.
pub fn f64v(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// The f64 reference's results narrowed for comparison.
pub fn f32v(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// 64 cases keep the suite fast; PROPTEST_CASES=n overrides for a longer soak.
pub fn proptest_config() -> proptest::test_runner::Config {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => proptest::test_runner::Config::default(),
        Err(_) => proptest::test_runner::Config::with_cases(64),
    }
}
