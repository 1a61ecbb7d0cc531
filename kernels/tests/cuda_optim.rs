//! GPU multi-tensor optimizers (kernels::cuda::optim) against a host re-implementation of
//! albert/src/optim.rs written here (the albert crate depends on this one, so it cannot be called):
//! `AdamW::step_with_lr` and `Lamb::step` statement for statement, in the precisions they use (f32
//! moments and updates, f64 hyper-parameter constants, LAMB's f64 norms and final update). That is
//! stricter than an all-f64 reference: AdamW must agree bit for bit; LAMB's m, v and update u bit
//! for bit, its trust ratios to 1e-12 (f64 sums in another order) and its parameters to 1 f32 ulp.
//! Several steps over several tensors of odd sizes (chunk boundaries, an unaligned tensor, an
//! empty one, an all-zero one), with changing learning rates and clipping scales.
//! Skips (passes) when there is no CUDA device.
mod common;

use common::rand_vec;
use kernels::cuda::optim::{adamw_step, global_grad_sq, lamb_step_with_ratios, AdamWHp, LambHp, OptTensor, CHUNK};
use kernels::cuda::{download_f32, test_device, upload_f32, DeviceBuffer, Dt, Gpu};
use std::sync::Arc;

/// Tensor sizes: tiny, odd, exactly one chunk, one chunk + 1, several chunks, empty.
const SIZES: [usize; 8] = [1, 3, 17, 1000, CHUNK, CHUNK + 1, 3 * CHUNK + 77, 0];

/// One tensor on both sides: host mirror state and device buffers. `shift` 1 puts the tensor one
/// f32 past a 16-byte boundary (the kernels' scalar path).
struct T {
    w: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    g: Vec<f32>,
    wd: f64,
    adapt: bool,
    shift: usize,
    dw: DeviceBuffer,
    dg: DeviceBuffer,
    dm: DeviceBuffer,
    dv: DeviceBuffer,
}

impl T {
    fn new(g: &Arc<Gpu>, k: usize, n: usize) -> T {
        let shift = k % 3 == 1;
        let shift = usize::from(shift);
        // tensor 2 starts at zero: LAMB's ratio falls back to 1
        let w = if k == 2 { vec![0.0; n] } else { rand_vec(k as u64, n, -0.5, 0.5) };
        let up = |x: &[f32]| upload_f32(g, &[vec![0.0; shift], x.to_vec()].concat(), Dt::F32).unwrap();
        let zeros = vec![0.0f32; n];
        T {
            dw: up(&w),
            dg: up(&zeros),
            dm: up(&zeros),
            dv: up(&zeros),
            w,
            m: zeros.clone(),
            v: zeros.clone(),
            g: zeros,
            // every third tensor excluded (LayerNorm / bias in the real model)
            wd: if k.is_multiple_of(3) { 0.0 } else { 0.01 },
            adapt: !k.is_multiple_of(3),
            shift,
        }
    }
    fn n(&self) -> usize {
        self.w.len()
    }
    /// New gradients, on both sides.
    fn set_grads(&mut self, g: &Arc<Gpu>, seed: u64) {
        self.g = rand_vec(seed, self.n(), -1.0, 1.0);
        self.dg = upload_f32(g, &[vec![0.0; self.shift], self.g.clone()].concat(), Dt::F32).unwrap();
    }
    fn desc(&self) -> OptTensor {
        let off = 4 * self.shift;
        OptTensor {
            param: self.dw.ptr(off),
            grad: self.dg.ptr(off),
            m: self.dm.ptr(off),
            v: self.dv.ptr(off),
            numel: self.n(),
            weight_decay: self.wd,
            use_trust_ratio: self.adapt,
        }
    }
    fn download(buf: &DeviceBuffer, shift: usize, n: usize) -> Vec<f32> {
        download_f32(buf, Dt::F32, shift, n).unwrap()
    }
}

fn bits_equal(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits()) {
        panic!("{what}: index {i}: got {:e}, want {:e}", got[i], want[i]);
    }
}

/// albert::optim::AdamW::step_with_lr on one tensor (grads already clipped: g * grad_scale).
#[allow(clippy::too_many_arguments)]
fn adamw_host(t: &mut T, lr: f64, beta1: f64, beta2: f64, eps: f64, step: i32, grad_scale: f32) {
    let (b2, c1, c2) = (beta2 as f32, (1.0 - beta1) as f32, (1.0 - beta2) as f32);
    let bc1 = 1.0 - beta1.powi(step);
    let bc2_sqrt = ((1.0 - beta2.powi(step)).sqrt()) as f32;
    let step_size = (lr / bc1) as f32;
    let eps = eps as f32;
    let decay = (1.0 - lr * t.wd) as f32;
    for i in 0..t.n() {
        let g = t.g[i] * grad_scale;
        let (m, v) = (&mut t.m[i], &mut t.v[i]);
        let mut w = t.w[i];
        w *= decay;
        *m += c1 * (g - *m);
        *v = b2 * *v + c2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        w -= step_size * *m / denom;
        t.w[i] = w;
    }
}

#[test]
fn adamw_matches_host_bit_for_bit() {
    let Some(g) = test_device() else { return };
    let mut ts: Vec<T> = SIZES.iter().enumerate().map(|(k, &n)| T::new(&g, k, n)).collect();
    let (beta1, beta2, eps) = (0.9, 0.999, 1e-6);
    for step in 1..=5i32 {
        let lr = 1e-3 * (1.0 + 0.3 * f64::from(step));
        let grad_scale = if step % 2 == 0 { 0.37 } else { 1.0 };
        for (k, t) in ts.iter_mut().enumerate() {
            t.set_grads(&g, 100 * step as u64 + k as u64);
        }
        let descs: Vec<OptTensor> = ts.iter().map(T::desc).collect();
        adamw_step(&g, &descs, &AdamWHp { lr, beta1, beta2, eps, step, grad_scale }).unwrap();
        for (k, t) in ts.iter_mut().enumerate() {
            adamw_host(t, lr, beta1, beta2, eps, step, grad_scale);
            let what = format!("adamw step {step} tensor {k} ({} elements)", t.n());
            bits_equal(&format!("{what} param"), &T::download(&t.dw, t.shift, t.n()), &t.w);
            bits_equal(&format!("{what} m"), &T::download(&t.dm, t.shift, t.n()), &t.m);
            bits_equal(&format!("{what} v"), &T::download(&t.dv, t.shift, t.n()), &t.v);
            bits_equal(&format!("{what} grad untouched"), &T::download(&t.dg, t.shift, t.n()), &t.g);
        }
    }
}

/// albert::optim::Lamb::step on one tensor: returns (update u, trust ratio); updates t.w, t.m, t.v.
#[allow(clippy::too_many_arguments)]
fn lamb_host(t: &mut T, lr: f64, beta1: f64, beta2: f64, eps: f64, grad_scale: f32) -> (Vec<f32>, f64) {
    let (b1, b2) = (beta1 as f32, beta2 as f32);
    let (c1, c2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
    let (eps, wd) = (eps as f32, t.wd as f32);
    let (mut w_sq, mut u_sq) = (0f64, 0f64);
    let mut out = Vec::with_capacity(t.n());
    for i in 0..t.n() {
        let (w, g) = (t.w[i], t.g[i] * grad_scale);
        let (m, v) = (&mut t.m[i], &mut t.v[i]);
        *m = b1 * *m + c1 * g;
        *v = b2 * *v + c2 * (g * g);
        let mut u = *m / (v.sqrt() + eps);
        if t.adapt {
            u += wd * w;
        }
        w_sq += f64::from(w) * f64::from(w);
        u_sq += f64::from(u) * f64::from(u);
        out.push(u);
    }
    let ratio = if t.adapt {
        let (w_norm, u_norm) = (w_sq.sqrt(), u_sq.sqrt());
        if w_norm > 0.0 && u_norm > 0.0 {
            w_norm / u_norm
        } else {
            1.0
        }
    } else {
        1.0
    };
    let scale = ratio * lr;
    for (w, &u) in t.w.iter_mut().zip(&out) {
        *w = (f64::from(*w) - scale * f64::from(u)) as f32;
    }
    (out, ratio)
}

#[test]
fn lamb_matches_host() {
    let Some(g) = test_device() else { return };
    let mut ts: Vec<T> = SIZES.iter().enumerate().map(|(k, &n)| T::new(&g, k, n)).collect();
    let (beta1, beta2, eps) = (0.9, 0.999, 1e-6);
    let ratios_buf = upload_f32(&g, &vec![0.0; 2 * ts.len()], Dt::F32).unwrap();
    for step in 1..=5u64 {
        let lr = 1.76e-3 * step as f64 / 5.0;
        let grad_scale = if step % 2 == 0 { 0.5 } else { 1.0 };
        for (k, t) in ts.iter_mut().enumerate() {
            t.set_grads(&g, 1000 * step + k as u64);
        }
        let descs: Vec<OptTensor> = ts.iter().map(T::desc).collect();
        let hp = LambHp { lr, beta1, beta2, eps, grad_scale };
        lamb_step_with_ratios(&g, &descs, &hp, Some(ratios_buf.ptr(0))).unwrap();
        let ratio_bytes = g.download(&ratios_buf, 0, 8 * ts.len()).unwrap();
        for (k, t) in ts.iter_mut().enumerate() {
            let what = format!("lamb step {step} tensor {k} ({} elements)", t.n());
            let (u, ratio) = lamb_host(t, lr, beta1, beta2, eps, grad_scale);
            bits_equal(&format!("{what} m"), &T::download(&t.dm, t.shift, t.n()), &t.m);
            bits_equal(&format!("{what} v"), &T::download(&t.dv, t.shift, t.n()), &t.v);
            bits_equal(&format!("{what} update (in the grad buffer)"), &T::download(&t.dg, t.shift, t.n()), &u);
            let got_ratio = f64::from_le_bytes(ratio_bytes[8 * k..8 * k + 8].try_into().unwrap());
            assert!((got_ratio - ratio).abs() <= 1e-12 * ratio, "{what}: ratio {got_ratio} vs {ratio}");
            if !t.adapt || (k == 2 && step == 1) || t.n() == 0 {
                assert_eq!(got_ratio, 1.0, "{what}: excluded, zero or empty tensors keep ratio 1");
            }
            // the ratio's last bits may differ (f64 sums in another order): the f32 result may
            // then round to the neighbouring value
            let got_w = T::download(&t.dw, t.shift, t.n());
            for (i, (&a, &b)) in got_w.iter().zip(&t.w).enumerate() {
                let ulp = f32::from_bits(b.abs().to_bits() + 1) - b.abs();
                assert!((a - b).abs() <= ulp, "{what} param index {i}: got {a:e}, want {b:e}");
            }
            // continue from the device's values so that each step is compared on equal inputs
            t.w = got_w;
        }
    }
}

#[test]
fn global_grad_sq_matches_f64() {
    let Some(g) = test_device() else { return };
    let mut ts: Vec<T> = SIZES.iter().enumerate().map(|(k, &n)| T::new(&g, k, n)).collect();
    for (k, t) in ts.iter_mut().enumerate() {
        t.set_grads(&g, 77 + k as u64);
    }
    let descs: Vec<OptTensor> = ts.iter().map(T::desc).collect();
    let want: f64 = ts.iter().flat_map(|t| &t.g).map(|&x| f64::from(x) * f64::from(x)).sum();
    let out = upload_f32(&g, &[0.0, 0.0], Dt::F32).unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        global_grad_sq(&g, out.ptr(0), &descs).unwrap();
        let b = g.download(&out, 0, 8).unwrap();
        runs.push(f64::from_le_bytes(b.try_into().unwrap()));
    }
    assert!((runs[0] - want).abs() <= 1e-12 * want, "global_grad_sq {} vs {want}", runs[0]);
    assert_eq!(runs[0].to_bits(), runs[1].to_bits(), "global_grad_sq: runs differ");
    // nothing to sum: 0
    global_grad_sq(&g, out.ptr(0), &[]).unwrap();
    assert_eq!(g.download(&out, 0, 8).unwrap(), vec![0u8; 8]);
}

#[test]
fn bad_inputs_are_errors() {
    let Some(g) = test_device() else { return };
    let t = T::new(&g, 0, 10);
    let hp = AdamWHp { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 0, grad_scale: 1.0 };
    assert!(adamw_step(&g, &[t.desc()], &hp).is_err(), "step 0");
    let mut d = t.desc();
    d.m = kernels::cuda::DevPtr(0);
    assert!(adamw_step(&g, &[d], &AdamWHp { step: 1, ..hp }).is_err(), "null moment pointer");
}
