//! A seeded random generator: the same seed gives the same numbers on every machine and run.
//! ChaCha8 (rand_chacha) provides the stream; the distributions are written here so their output
//! cannot change under us with a dependency upgrade.

use crate::{DType, Result, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct Rng {
    inner: ChaCha8Rng,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { inner: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// An independent generator for a sub-task (e.g. per-layer dropout), derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.inner.next_u64())
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        // Lemire's multiply-shift; the bias is below 2^-64 * n, negligible for our sizes.
        ((self.inner.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal by Box-Muller (one value per call; simple and exact enough).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: keeps ln finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Normal(0, std) redrawn until within 2 std, as TF's truncated_normal initialiser does.
    pub fn truncated_normal(&mut self, std: f64) -> f64 {
        loop {
            let z = self.normal();
            if z.abs() <= 2.0 {
                return z * std;
            }
        }
    }

    fn tensor(&mut self, shape: &[usize], dtype: DType, mut f: impl FnMut(&mut Rng) -> f64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| f(self)).collect();
        Ok(Tensor::from_vec(v, shape)?.to_dtype(dtype))
    }

    pub fn uniform_tensor(&mut self, shape: &[usize], lo: f64, hi: f64, dtype: DType) -> Result<Tensor> {
        self.tensor(shape, dtype, |r| lo + (hi - lo) * r.next_f64())
    }

    pub fn normal_tensor(&mut self, shape: &[usize], mean: f64, std: f64, dtype: DType) -> Result<Tensor> {
        self.tensor(shape, dtype, |r| mean + std * r.normal())
    }

    pub fn truncated_normal_tensor(&mut self, shape: &[usize], std: f64, dtype: DType) -> Result<Tensor> {
        self.tensor(shape, dtype, |r| r.truncated_normal(std))
    }

    /// n draws of Bernoulli(p_one): 1 with probability p_one, else 0.
    pub fn bernoulli_mask(&mut self, n: usize, p_one: f64) -> Vec<u8> {
        (0..n).map(|_| u8::from(self.next_f64() < p_one)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn moments_are_right() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        // standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032; allow ~4.5 sigma
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
        let t: Vec<f64> = (0..n).map(|_| r.truncated_normal(0.02)).collect();
        assert!(t.iter().all(|x| x.abs() <= 0.04));
        // truncated at 2 sigma: std = 0.8796 sigma
        let tv = t.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!((tv.sqrt() / 0.02 - 0.8796).abs() < 0.01, "truncated std {}", tv.sqrt());
        let m = r.bernoulli_mask(n, 0.9);
        let ones = m.iter().filter(|&&b| b == 1).count() as f64 / n as f64;
        assert!((ones - 0.9).abs() < 0.003, "bernoulli {ones}");
        let u: Vec<u64> = (0..n).map(|_| r.below(10)).collect();
        assert!(u.iter().all(|&x| x < 10));
    }
}
