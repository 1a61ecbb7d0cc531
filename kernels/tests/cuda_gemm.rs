//! The CUDA gemm against the CPU reference (`cpu::matmul::gemm_scalar` run in f64): every kernel
//! (SIMT, the three mma.sync tiles, split-K, and wgmma where enabled) on odd shapes, all four
//! transpose combinations, padded leading dimensions, batches with a shared operand, accumulate,
//! bias and the GELU epilogues with their pre-activations, and operands cp.async cannot copy.
//! Every element the gemm must not write (ldc padding, gaps between batch entries, guards
//! around C and pre_act) is checked unchanged. Skips without a GPU.
//!
//! Tolerances, per output element, from S = sum_p |a_ip| |b_pj| (+ |old C| + |bias|): a rigorous
//! bound, so no seed can fail by chance, yet a dropped, doubled or misplaced product (an error
//! of ~|a b| ~ S / k) is far outside it:
//! - f32 IEEE (SIMT): f32 accumulation of k terms, (k + 8) 2^-24 S (at least 1e-5 S).
//! - f32 TF32: both factors rounded to 10-bit mantissas (relative error <= 2^-11 each), so
//!   2^-10 S on top of the f32 accumulation; S <= sqrt(k) |a . b|_2, the sqrt(k) 2^-10 scaling.
//! - bf16: inputs are rounded to bf16 on the host, so products are exact and the reference sees
//!   the GPU's operands; f32 accumulation as above, then the bf16 store: + 2^-8 |value|.
//!
//! GELU outputs: 1.13 (the largest slope of either GELU) times the pre-activation's tolerance,
//! plus the f32 tanhf / erff error, plus the output rounding.

mod common;

use common::rand_vec;
use kernels::cpu::activation::{gelu_erf_fwd_scalar, gelu_tanh_fwd_scalar};
use kernels::cpu::matmul::{gemm_scalar, Gemm};
use kernels::cuda::gemm::{
    choose_mma, gemm, gemm_flops, gemm_reference_ieee, gemm_with_plan, plan, plan_fits, set_f32_precision,
    wgmma_enabled, Epilogue, F32Precision, Kernel, Plan, Tile,
};
use kernels::cuda::{download_f32, test_device, upload_f32, DevPtr, DeviceBuffer, Dt, Gpu};
use std::sync::{Arc, Mutex};

/// Tests that call `gemm` on f32 hold this: the precision setting is process-wide.
static PRECISION: Mutex<()> = Mutex::new(());

/// Elements before and after C / pre_act that must survive (8 keeps the data 16-byte aligned).
const GUARD: usize = 8;
const C_GUARD: f32 = -96.0;
/// What pre_act starts as (exact in bf16); untouched elements must keep it.
const PRE_INIT: f32 = 3.5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ieee,
    Tf32,
    Bf16,
}

impl Mode {
    fn dt(self) -> Dt {
        if self == Mode::Bf16 {
            Dt::BF16
        } else {
            Dt::F32
        }
    }
    /// Relative (to S) bound of the product and accumulation error.
    fn sum_tol(self, k: usize) -> f64 {
        let acc = ((k + 8) as f64 * 2f64.powi(-24)).max(1e-5);
        match self {
            Mode::Tf32 => acc + 2f64.powi(-10),
            _ => acc,
        }
    }
    /// Relative error of storing a value.
    fn store_tol(self) -> f64 {
        if self == Mode::Bf16 {
            2f64.powi(-8)
        } else {
            2f64.powi(-24)
        }
    }
}

fn round_to(dt: Dt, v: &mut [f32]) {
    if dt == Dt::BF16 {
        for x in v {
            *x = half::bf16::from_f32(*x).to_f32();
        }
    }
}

fn f64v(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn gelu64(epi: Epilogue, x: f64) -> f64 {
    let mut out = [0.0f64];
    match epi {
        Epilogue::BiasGeluTanh => gelu_tanh_fwd_scalar(&mut out, &[x]),
        Epilogue::BiasGeluErf => gelu_erf_fwd_scalar(&mut out, &[x]),
        _ => return x,
    }
    out[0]
}

/// Host inputs (already rounded to the storage type) and the f64 reference of one gemm.
struct Reference {
    p: Gemm,
    epi: Epilogue,
    a: Vec<f32>,
    b: Vec<f32>,
    c0: Vec<f32>,
    bias: Vec<f32>,
    /// The whole C region afterwards: reference values at outputs, c0 elsewhere.
    want: Vec<f64>,
    /// Pre-GELU reference values at outputs (GELU epilogues only).
    want_pre: Vec<f64>,
    /// S of each output (see the file comment); 0 elsewhere.
    scale: Vec<f64>,
    /// Whether each element of the C region is an output.
    is_out: Vec<bool>,
}

impl Reference {
    fn new(p: Gemm, epi: Epilogue, dt: Dt, seed: u64) -> Reference {
        let (la, lb, lc) = p.min_lens();
        let mut a = rand_vec(seed, la, -1.0, 1.0);
        let mut b = rand_vec(seed ^ 0xb, lb, -1.0, 1.0);
        let mut c0 = rand_vec(seed ^ 0xc, lc, -1.0, 1.0);
        let mut bias = rand_vec(seed ^ 0xd, p.n, -1.0, 1.0);
        for v in [&mut a, &mut b, &mut c0, &mut bias] {
            round_to(dt, v);
        }
        let has_bias = epi != Epilogue::None;
        let mut want = f64v(&c0);
        gemm_scalar::<f64>(&p, &f64v(&a), &f64v(&b), &mut want, has_bias.then(|| f64v(&bias)).as_deref());
        let abs = |v: &[f32]| v.iter().map(|x| x.abs() as f64).collect::<Vec<f64>>();
        let mut scale = if p.accumulate { abs(&c0) } else { vec![0.0; lc] };
        gemm_scalar::<f64>(&p, &abs(&a), &abs(&b), &mut scale, has_bias.then(|| abs(&bias)).as_deref());
        let mut is_out = vec![false; lc];
        for bi in 0..p.batch {
            for i in 0..p.m {
                for j in 0..p.n {
                    is_out[bi * p.stride_c + i * p.ldc + j] = true;
                }
            }
        }
        let want_pre = want.clone();
        for (w, &o) in want.iter_mut().zip(&is_out) {
            if o {
                *w = gelu64(epi, *w);
            }
        }
        Reference { p, epi, a, b, c0, bias, want, want_pre, scale, is_out }
    }

    /// Compares C (and pre_act) as downloaded, guards included.
    fn check(&self, what: &str, mode: Mode, got_c: &[f32], got_pre: Option<&[f32]>) {
        let lc = self.want.len();
        assert_eq!(got_c.len(), lc + 2 * GUARD);
        for (i, &v) in got_c[..GUARD].iter().chain(&got_c[GUARD + lc..]).enumerate() {
            assert_eq!(v, C_GUARD, "{what}: guard {i} around C overwritten");
        }
        let gelu = self.epi == Epilogue::BiasGeluTanh || self.epi == Epilogue::BiasGeluErf;
        let st = mode.store_tol();
        for (idx, &got) in got_c[GUARD..GUARD + lc].iter().enumerate() {
            if !self.is_out[idx] {
                assert_eq!(got, self.c0[idx], "{what}: element {idx} is not an output but changed");
                continue;
            }
            let x_tol = mode.sum_tol(self.p.k) * self.scale[idx] + 1e-30;
            let want = self.want[idx];
            let tol = if gelu {
                let x = self.want_pre[idx];
                1.13 * x_tol + 1e-6 * (x.abs() + 1e-6) + st * (want.abs() + x_tol)
            } else {
                x_tol + st * (want.abs() + x_tol)
            };
            let err = (got as f64 - want).abs();
            assert!(
                err <= tol,
                "{what}: C element {idx} ({}): got {got}, want {want} (|err| {err:.3e} > tol {tol:.3e})",
                self.pos(idx)
            );
        }
        if let Some(pre) = got_pre {
            for (i, &v) in pre[..GUARD].iter().chain(&pre[GUARD + lc..]).enumerate() {
                assert_eq!(v, C_GUARD, "{what}: guard {i} around pre_act overwritten");
            }
            for (idx, &got) in pre[GUARD..GUARD + lc].iter().enumerate() {
                if !self.is_out[idx] {
                    assert_eq!(got, PRE_INIT, "{what}: pre_act element {idx} is not an output but changed");
                    continue;
                }
                let want = self.want_pre[idx];
                let x_tol = mode.sum_tol(self.p.k) * self.scale[idx] + 1e-30;
                let tol = x_tol + st * (want.abs() + x_tol);
                let err = (got as f64 - want).abs();
                assert!(
                    err <= tol,
                    "{what}: pre_act element {idx} ({}): got {got}, want {want} (tol {tol:.3e})",
                    self.pos(idx)
                );
            }
        }
    }

    fn pos(&self, idx: usize) -> String {
        let p = &self.p;
        let (bi, rem) = if p.batch > 1 && p.stride_c > 0 { (idx / p.stride_c, idx % p.stride_c) } else { (0, idx) };
        format!("batch {bi}, row {}, col {}", rem / p.ldc, rem % p.ldc)
    }
}

/// The reference's operands on the device. A sits `a_shift` elements into its buffer (a shift
/// that breaks 16-byte alignment sends the gemm to the SIMT fallback).
struct Device {
    a: DeviceBuffer,
    b: DeviceBuffer,
    bias: DeviceBuffer,
    a_shift: usize,
}

impl Device {
    fn new(g: &Arc<Gpu>, r: &Reference, dt: Dt, a_shift: usize) -> Device {
        let mut a = vec![0.0f32; a_shift];
        a.extend_from_slice(&r.a);
        Device {
            a: upload_f32(g, &a, dt).unwrap(),
            b: upload_f32(g, &r.b, dt).unwrap(),
            bias: upload_f32(g, &r.bias, dt).unwrap(),
            a_shift,
        }
    }
    fn a(&self, dt: Dt) -> DevPtr {
        self.a.ptr(self.a_shift * dt.size())
    }
}

/// A guarded output buffer holding `inner` between GUARD copies of C_GUARD.
fn guarded(g: &Arc<Gpu>, inner: &[f32], dt: Dt) -> DeviceBuffer {
    let mut v = vec![C_GUARD; GUARD];
    v.extend_from_slice(inner);
    v.extend(std::iter::repeat_n(C_GUARD, GUARD));
    upload_f32(g, &v, dt).unwrap()
}

/// Runs the gemm of `r` (on `plan`, or on `gemm`'s own choice when None) and checks it.
fn run_and_check(g: &Arc<Gpu>, mode: Mode, r: &Reference, dev: &Device, plan: Option<Plan>, with_pre: bool) {
    let dt = mode.dt();
    let lc = r.want.len();
    let c = guarded(g, &r.c0, dt);
    let pre = with_pre.then(|| guarded(g, &vec![PRE_INIT; lc], dt));
    let bias = (r.epi != Epilogue::None).then(|| dev.bias.ptr(0));
    let what = format!("{mode:?} {plan:?} {:?} {:?} a_shift {} pre {with_pre}", r.p, r.epi, dev.a_shift);
    let (cp, pp) = (c.ptr(GUARD * dt.size()), pre.as_ref().map(|b| b.ptr(GUARD * dt.size())));
    match plan {
        Some(plan) => gemm_with_plan(g, dt, &r.p, plan, dev.a(dt), dev.b.ptr(0), cp, bias, r.epi, pp),
        None => gemm(g, dt, &r.p, dev.a(dt), dev.b.ptr(0), cp, bias, r.epi, pp),
    }
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    let got_c = download_f32(&c, dt, 0, lc + 2 * GUARD).unwrap();
    let got_pre = pre.as_ref().map(|b| download_f32(b, dt, 0, lc + 2 * GUARD).unwrap());
    r.check(&what, mode, &got_c, got_pre.as_deref());
}

/// Every plan worth testing; those that cannot run a given gemm are skipped by `plan_fits`.
/// The unproven wgmma kernel only with ALBERT_GEMM_WGMMA=1, as in `gemm` itself.
fn all_plans() -> Vec<Plan> {
    let mut v = vec![Plan { kernel: Kernel::Simt, split_k: 1 }];
    if wgmma_enabled() {
        v.push(Plan { kernel: Kernel::Wgmma, split_k: 1 });
    }
    for tile in Tile::ALL {
        v.push(Plan { kernel: Kernel::Mma(tile), split_k: 1 });
    }
    v.push(Plan { kernel: Kernel::Mma(Tile::Medium), split_k: 2 });
    v.push(Plan { kernel: Kernel::Mma(Tile::Small), split_k: 3 });
    v
}

/// Runs `r` on every plan that fits (and on `gemm`'s choice for bf16); returns how many ran.
fn every_plan(g: &Arc<Gpu>, mode: Mode, r: &Reference, dev: &Device, with_pre: bool) -> usize {
    let dt = mode.dt();
    let mut ran = 0;
    for plan in all_plans() {
        // Tf32 tolerances cover the SIMT kernel too; Ieee runs only on it.
        if mode == Mode::Ieee && plan.kernel != Kernel::Simt {
            continue;
        }
        if plan_fits(g, dt, &r.p, plan, dev.a(dt), dev.b.ptr(0)) {
            run_and_check(g, mode, r, dev, Some(plan), with_pre);
            ran += 1;
        }
    }
    if mode == Mode::Bf16 {
        run_and_check(g, mode, r, dev, None, with_pre);
    }
    ran
}

/// Leading dimensions rounded up to 8 elements (so cp.async can copy every operand) and an
/// odd ldc (so the epilogue's pair stores meet unaligned rows too); dense batch strides.
fn padded(p: Gemm) -> Gemm {
    let r8 = |x: usize| x.div_ceil(8) * 8;
    let mut q = p;
    q.lda = r8(p.lda);
    q.ldb = r8(p.ldb);
    q.ldc = p.n + 1;
    let rows_a = if p.trans_a { p.k } else { p.m };
    let rows_b = if p.trans_b { p.n } else { p.k };
    q.stride_a = rows_a * q.lda;
    q.stride_b = rows_b * q.ldb;
    q.stride_c = p.m * q.ldc;
    q
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 33, 127),
    (33, 7, 1),
    (127, 129, 33),
    (129, 127, 7),
    (1000, 33, 129),
    (33, 1000, 7),
    (7, 129, 1000),
    (129, 1000, 33),
    (256, 384, 320),
];

fn layouts() -> [(bool, bool); 4] {
    [(false, false), (false, true), (true, false), (true, true)]
}

fn shapes_on_every_kernel(mode: Mode) {
    let Some(g) = test_device() else { return };
    let mut seed = 1;
    for &(m, n, k) in SHAPES {
        for (ta, tb) in layouts() {
            for p in [Gemm::new(m, n, k, ta, tb), padded(Gemm::new(m, n, k, ta, tb))] {
                seed += 1;
                let r = Reference::new(p, Epilogue::None, mode.dt(), seed);
                let dev = Device::new(&g, &r, mode.dt(), 0);
                let ran = every_plan(&g, mode, &r, &dev, false);
                assert!(ran >= 1, "{p:?}: no plan ran");
            }
        }
    }
}

#[test]
fn f32_tf32_shapes_and_layouts_on_every_kernel() {
    shapes_on_every_kernel(Mode::Tf32);
}

#[test]
fn bf16_shapes_and_layouts_on_every_kernel() {
    shapes_on_every_kernel(Mode::Bf16);
}

#[test]
fn f32_ieee_mode_is_the_exact_simt_kernel() {
    let Some(g) = test_device() else { return };
    let _lock = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    set_f32_precision(F32Precision::Ieee);
    let mut seed = 100;
    for &(m, n, k) in SHAPES {
        for (ta, tb) in layouts() {
            seed += 1;
            let p = padded(Gemm::new(m, n, k, ta, tb));
            let r = Reference::new(p, Epilogue::None, Dt::F32, seed);
            let dev = Device::new(&g, &r, Dt::F32, 0);
            let chosen = plan(&g, Dt::F32, &p, dev.a(Dt::F32), dev.b.ptr(0));
            assert_eq!(chosen.kernel, Kernel::Simt, "IEEE mode must not use tensor cores");
            run_and_check(&g, Mode::Ieee, &r, &dev, None, false);
        }
    }
    set_f32_precision(F32Precision::Tf32);
}

#[test]
fn f32_default_is_tf32_on_aligned_operands() {
    let Some(g) = test_device() else { return };
    let _lock = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    set_f32_precision(F32Precision::Tf32);
    let p = padded(Gemm::new(300, 200, 100, false, true));
    let r = Reference::new(p, Epilogue::Bias, Dt::F32, 7);
    let dev = Device::new(&g, &r, Dt::F32, 0);
    assert!(matches!(plan(&g, Dt::F32, &p, dev.a(Dt::F32), dev.b.ptr(0)).kernel, Kernel::Mma(_) | Kernel::Wgmma));
    run_and_check(&g, Mode::Tf32, &r, &dev, None, false);
}

#[test]
fn the_reference_kernel_serves_bf16_too() {
    let Some(g) = test_device() else { return };
    let p = Gemm::new(129, 67, 45, true, false);
    let r = Reference::new(p, Epilogue::BiasGeluErf, Dt::BF16, 9);
    let dev = Device::new(&g, &r, Dt::BF16, 0);
    let lc = r.want.len();
    let c = guarded(&g, &r.c0, Dt::BF16);
    let pre = guarded(&g, &vec![PRE_INIT; lc], Dt::BF16);
    let e = GUARD * Dt::BF16.size();
    gemm_reference_ieee(
        &g,
        Dt::BF16,
        &p,
        dev.a(Dt::BF16),
        dev.b.ptr(0),
        c.ptr(e),
        Some(dev.bias.ptr(0)),
        r.epi,
        Some(pre.ptr(e)),
    )
    .unwrap();
    let got_c = download_f32(&c, Dt::BF16, 0, lc + 2 * GUARD).unwrap();
    let got_pre = download_f32(&pre, Dt::BF16, 0, lc + 2 * GUARD).unwrap();
    r.check("gemm_reference_ieee bf16", Mode::Bf16, &got_c, Some(&got_pre));
}

/// Batch 3 with A or B shared (stride 0) and gaps between the C entries.
#[test]
fn batches_with_a_shared_operand() {
    let Some(g) = test_device() else { return };
    let mut seed = 200;
    for mode in [Mode::Tf32, Mode::Bf16] {
        for &(m, n, k) in &[(33, 127, 65), (130, 260, 96), (7, 1, 200)] {
            for (ta, tb) in layouts() {
                for share in [0, 1] {
                    seed += 1;
                    let mut p = padded(Gemm::batched(3, m, n, k, ta, tb));
                    p.stride_c += 24; // a gap that must stay untouched
                    if share == 0 {
                        p.stride_a = 0;
                    } else {
                        p.stride_b = 0;
                    }
                    let r = Reference::new(p, Epilogue::None, mode.dt(), seed);
                    let dev = Device::new(&g, &r, mode.dt(), 0);
                    every_plan(&g, mode, &r, &dev, false);
                }
            }
        }
    }
}

#[test]
fn accumulate_adds_to_the_old_c() {
    let Some(g) = test_device() else { return };
    let mut seed = 300;
    for mode in [Mode::Tf32, Mode::Bf16] {
        for &(m, n, k) in &[(1, 1, 1), (129, 33, 1000), (300, 260, 64), (64, 64, 4096)] {
            for (ta, tb) in layouts() {
                seed += 1;
                let mut p = padded(Gemm::batched(2, m, n, k, ta, tb));
                p.accumulate = true;
                let r = Reference::new(p, Epilogue::None, mode.dt(), seed);
                let dev = Device::new(&g, &r, mode.dt(), 0);
                every_plan(&g, mode, &r, &dev, false);
            }
        }
    }
}

#[test]
fn bias_and_gelu_epilogues_with_pre_activations() {
    let Some(g) = test_device() else { return };
    let mut seed = 400;
    for mode in [Mode::Tf32, Mode::Bf16] {
        for &(m, n, k) in &[(1, 7, 3), (127, 129, 33), (257, 300, 128)] {
            for (ta, tb) in layouts() {
                for epi in [Epilogue::Bias, Epilogue::BiasGeluTanh, Epilogue::BiasGeluErf] {
                    for with_pre in [false, true] {
                        if with_pre && epi == Epilogue::Bias {
                            continue;
                        }
                        seed += 1;
                        let p = padded(Gemm::batched(2, m, n, k, ta, tb));
                        let r = Reference::new(p, epi, mode.dt(), seed);
                        let dev = Device::new(&g, &r, mode.dt(), 0);
                        every_plan(&g, mode, &r, &dev, with_pre);
                    }
                }
            }
        }
    }
}

/// Odd leading dimensions, or an operand one element past an aligned address: no cp.async
/// plan fits, `gemm` picks the SIMT kernel, and the result is still right.
#[test]
fn unaligned_operands_fall_back_to_simt() {
    let Some(g) = test_device() else { return };
    let mut seed = 500;
    for mode in [Mode::Tf32, Mode::Bf16] {
        let dt = mode.dt();
        for (ta, tb) in layouts() {
            for (p, shift) in [(Gemm::new(70, 90, 33, ta, tb), 0), (padded(Gemm::new(70, 90, 64, ta, tb)), 1)] {
                let mut p = p;
                if shift == 0 {
                    // lda odd whichever way A is stored
                    p.lda += 1 - p.lda % 2;
                    p.stride_a = if ta { p.k } else { p.m } * p.lda;
                }
                seed += 1;
                let r = Reference::new(p, Epilogue::Bias, dt, seed);
                let dev = Device::new(&g, &r, dt, shift);
                let mma = Plan { kernel: Kernel::Mma(Tile::Small), split_k: 1 };
                assert!(
                    !plan_fits(&g, dt, &p, mma, dev.a(dt), dev.b.ptr(0)),
                    "{p:?} shift {shift}: cp.async plan accepted"
                );
                if mode == Mode::Bf16 {
                    assert_eq!(plan(&g, dt, &p, dev.a(dt), dev.b.ptr(0)).kernel, Kernel::Simt);
                }
                every_plan(&g, mode, &r, &dev, false);
            }
        }
    }
}

#[test]
fn k_zero_writes_the_bias_or_keeps_c() {
    let Some(g) = test_device() else { return };
    for mode in [Mode::Tf32, Mode::Bf16] {
        let mut p = Gemm::new(5, 9, 0, false, true);
        p.lda = 8;
        p.ldb = 8;
        let r = Reference::new(p, Epilogue::BiasGeluTanh, mode.dt(), 600);
        let dev = Device::new(&g, &r, mode.dt(), 0);
        every_plan(&g, mode, &r, &dev, true);
        p.accumulate = true;
        let r = Reference::new(p, Epilogue::None, mode.dt(), 601);
        let dev = Device::new(&g, &r, mode.dt(), 0);
        every_plan(&g, mode, &r, &dev, false);
    }
}

/// The same call gives the same bits (split-K adds its slices in a fixed order).
#[test]
fn results_are_deterministic() {
    let Some(g) = test_device() else { return };
    let p = padded(Gemm::new(96, 80, 3000, true, false));
    let r = Reference::new(p, Epilogue::None, Dt::BF16, 700);
    let dev = Device::new(&g, &r, Dt::BF16, 0);
    let plan = Plan { kernel: Kernel::Mma(Tile::Small), split_k: 6 };
    let run = || {
        let c = guarded(&g, &r.c0, Dt::BF16);
        gemm_with_plan(
            &g,
            Dt::BF16,
            &p,
            plan,
            dev.a(Dt::BF16),
            dev.b.ptr(0),
            c.ptr(GUARD * Dt::BF16.size()),
            None,
            Epilogue::None,
            None,
        )
        .unwrap();
        download_f32(&c, Dt::BF16, 0, r.want.len() + 2 * GUARD).unwrap()
    };
    let first = run();
    for _ in 0..3 {
        assert!(
            run().iter().zip(&first).all(|(x, y)| x.to_bits() == y.to_bits()),
            "split-K result changed between runs"
        );
    }
}

#[test]
fn bad_arguments_are_errors() {
    let Some(g) = test_device() else { return };
    let buf = g.alloc_zeroed(1 << 16).unwrap();
    let x = buf.ptr(0);
    let p = Gemm::new(8, 8, 8, false, false);
    let call = |p: &Gemm, bias: Option<DevPtr>, epi: Epilogue, pre: Option<DevPtr>| {
        gemm(&g, Dt::F32, p, x, x, x, bias, epi, pre)
    };
    assert!(call(&p, Some(x), Epilogue::None, None).is_err(), "bias without a bias epilogue");
    assert!(call(&p, None, Epilogue::Bias, None).is_err(), "bias epilogue without a bias");
    assert!(call(&p, Some(x), Epilogue::Bias, Some(x)).is_err(), "pre_act without GELU");
    let mut acc = p;
    acc.accumulate = true;
    assert!(call(&acc, Some(x), Epilogue::BiasGeluTanh, None).is_err(), "accumulate with an epilogue");
    let mut lda = p;
    lda.lda = 4;
    assert!(call(&lda, None, Epilogue::None, None).is_err(), "lda below k");
    let mut overlap = Gemm::batched(2, 8, 8, 8, false, false);
    overlap.stride_c = 0;
    let e = call(&overlap, None, Epilogue::None, None).unwrap_err();
    assert!(e.0.contains("gemm") && e.0.contains("m 8"), "the error names the gemm and its sizes: {e}");
    assert!(call(&p, None, Epilogue::None, None).is_ok());
}

#[test]
fn flops_count_multiply_adds_twice() {
    assert_eq!(gemm_flops(&Gemm::batched(3, 4, 5, 6, false, true)), 720.0);
}

/// Timings of the shapes the engine runs (ALBERT base at batch 32 x 512 tokens) and 4096^3,
/// in TFLOP/s, for the lead's comparison with torch.matmul. Run on a GPU with
/// `cargo test --release -p kernels --test cuda_gemm -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_albert_shapes() {
    let Some(g) = test_device() else { return };
    let tokens = 16384;
    let shapes: &[(&str, usize, usize, usize, bool, bool)] = &[
        ("square 4096", 4096, 4096, 4096, false, false),
        ("embed proj E->H", tokens, 768, 128, false, true),
        ("qkv / attn-out H->H", tokens, 768, 768, false, true),
        ("ffn in H->4H", tokens, 3072, 768, false, true),
        ("ffn out 4H->H", tokens, 768, 3072, false, true),
        ("mlm decoder E->V", tokens, 30000, 128, false, true),
        ("dX ffn-in (dY W)", tokens, 768, 3072, false, false),
        ("dW H->H (dY^T X)", 768, 768, tokens, true, false),
        ("dW ffn-in", 3072, 768, tokens, true, false),
        ("dW embed proj", 768, 128, tokens, true, false),
    ];
    for dt in [Dt::BF16, Dt::F32] {
        for &(name, m, n, k, ta, tb) in shapes {
            let p = Gemm::new(m, n, k, ta, tb);
            let (la, lb, lc) = p.min_lens();
            let a = g.alloc_zeroed(la * dt.size()).unwrap();
            let b = g.alloc_zeroed(lb * dt.size()).unwrap();
            let c = g.alloc_zeroed(lc * dt.size()).unwrap();
            let chosen = plan(&g, dt, &p, a.ptr(0), b.ptr(0));
            let call = || gemm(&g, dt, &p, a.ptr(0), b.ptr(0), c.ptr(0), None, Epilogue::None, None);
            call().unwrap();
            g.synchronize().unwrap();
            let reps = 10;
            let ms = g.time_ms(|| (0..reps).try_for_each(|_| call())).unwrap() / reps as f32;
            let tflops = gemm_flops(&p) / (ms as f64 * 1e-3) / 1e12;
            println!("{dt:?} {name:24} {m:6}x{n:6}x{k:6} {ms:8.3} ms {tflops:7.1} TFLOP/s  {chosen:?}");
        }
    }
}

/// What the planner picks on an H100 (132 SMs, 227 KiB of shared memory per block) for the
/// shapes ALBERT runs (no GPU needed): full-size tiles for the token-major products, split-K for
/// the weight gradients whose outputs are too few to fill the SMs.
#[test]
fn planner_choices_for_albert_shapes() {
    let (sms, smem) = (132, 227 * 1024);
    let tokens = 16384;
    let cases: &[(usize, usize, usize, bool, bool)] = &[
        (4096, 4096, 4096, false, false),
        (tokens, 768, 128, false, true),
        (tokens, 768, 768, false, true),
        (tokens, 3072, 768, false, true),
        (tokens, 768, 3072, false, true),
        (tokens, 30000, 128, false, true),
        (tokens, 128, 768, false, false),
        (768, 768, tokens, true, false),
        (3072, 768, tokens, true, false),
        (768, 128, tokens, true, false),
        (64, 64, 64, false, false),
    ];
    for &(m, n, k, ta, tb) in cases {
        let p = Gemm::new(m, n, k, ta, tb);
        for dt in [Dt::BF16, Dt::F32] {
            let plan = choose_mma(sms, smem, dt, &p);
            eprintln!("{dt:?} {m}x{n}x{k} ta {ta} tb {tb}: {plan:?}");
            let Kernel::Mma(tile) = plan.kernel else { panic!("{m}x{n}x{k}: no mma plan") };
            let (bm, bn) = tile.shape();
            let blocks = m.div_ceil(bm) * n.div_ceil(bn) * plan.split_k;
            // Enough blocks to occupy (nearly) every SM, unless the whole problem is tiny.
            assert!(4 * blocks >= 3 * sms || m * n * k < 1 << 24, "{m}x{n}x{k}: {plan:?} leaves SMs idle");
        }
    }
}
