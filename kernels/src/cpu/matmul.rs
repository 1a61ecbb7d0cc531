//! General matrix multiply, batched, with either operand transposed in place (no transpose
//! copies) and an optional fused bias epilogue.
//!
//! For each batch index b:
//!   C_b[i, j] = (accumulate ? C_b[i, j] : 0) + sum_p op(A_b)[i, p] * op(B_b)[p, j] + bias[j]
//! op(A): (m, k); stored (m, k) with row stride lda, or, if trans_a, stored (k, m).
//! op(B): (k, n); stored (k, n) with row stride ldb, or, if trans_b, stored (n, k).
//! C: (m, n) with row stride ldc. Batch b starts at b * stride_{a,b,c}; a stride of 0 shares
//! one operand across the batch (x[B,S,H] times one weight W).
//! Linear layers use trans_b: y = x W^T + b with W stored (out, in) as PyTorch does.
//!
//! Versions:
//! - [`gemm_scalar`]: three loops, generic over [`Real`]; the spec (and the f64 check in tests).
//! - [`gemm_avx2`]: packed, cache-blocked, register-tiled AVX2+FMA f32 gemm (BLIS loop order):
//!   `jc` (NC columns) -> `pc` (KC depth: pack a KC x NC slab of op(B)) -> `ic` (MC rows: pack
//!   an MC x KC block of op(A)) -> `jr` (NR) -> `ir` (MR) -> 6x16 microkernel. Packing reads
//!   either layout straight from the strided source (8x8 register transposes where the source
//!   runs along k), so no operand is ever transposed as a whole.
//!
//! Blocking (f32; this machine type: L1d 32-48 KiB, L2 0.5-1 MiB per core, L3 32 MiB shared):
//! - MR x NR = 6 x 16: 12 ymm accumulators + 2 for B + 1 broadcast of A = 15 of 16 registers,
//!   and 12 FMAs per 8 loads keeps both FMA pipes busy without becoming load-bound.
//! - KC = 256: one B micro-panel (KC x NR = 16 KiB) stays in L1 next to the streamed A panel.
//! - MC = 144: the packed A block (MC x KC = 144 KiB) stays in L2 while every B panel meets it.
//! - NC = 4096: a packed B slab (KC x NC <= 4 MiB per thread) fits in the shared L3; only
//!   very wide outputs (the vocabulary decoder) need more than one jc step.
//!
//! Threading (rayon global pool): a batch of independent products (disjoint C) is split over
//! the batch when that balances (attention's 96 heads); otherwise each product big enough to
//! pay for waking a worker (~8M multiply-adds) is cut into one equal range of row panels per
//! thread (column panels when C is wider than tall), and each thread runs the whole blocked
//! loop nest on its range with its own packing buffers: one fork-join per product, no
//! synchronisation inside (re-packing the smaller shared operand per thread is cheaper than
//! the ~40 us wake-ups a shared B slab's per-block joins cost on this VM).

use crate::cpu::Isa;
use crate::Real;

/// Sizes, layouts and strides of one (batched) gemm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
    /// C += A B instead of C = A B (beta = 1 instead of 0).
    pub accumulate: bool,
}

impl Gemm {
    /// One dense row-major product with the tightest leading dimensions.
    pub fn new(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
        Gemm {
            batch: 1,
            m,
            n,
            k,
            trans_a,
            trans_b,
            lda: if trans_a { m } else { k },
            ldb: if trans_b { k } else { n },
            ldc: n,
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
            accumulate: false,
        }
    }

    /// `batch` dense products laid out back to back.
    pub fn batched(batch: usize, m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
        Gemm { batch, ..Gemm::new(m, n, k, trans_a, trans_b) }
    }

    /// Multiply-adds times two.
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.m * self.n * self.k) as u64
    }

    /// Smallest slice lengths (a, b, c) this gemm touches; callers' slices must be at least this.
    pub fn min_lens(&self) -> (usize, usize, usize) {
        let span = |rows: usize, cols: usize, ld: usize| {
            if rows == 0 || cols == 0 {
                0
            } else {
                (rows - 1) * ld + cols
            }
        };
        let last = |stride: usize, one: usize| {
            if self.batch == 0 || one == 0 {
                0
            } else {
                (self.batch - 1) * stride + one
            }
        };
        let a1 = if self.trans_a { span(self.k, self.m, self.lda) } else { span(self.m, self.k, self.lda) };
        let b1 = if self.trans_b { span(self.n, self.k, self.ldb) } else { span(self.k, self.n, self.ldb) };
        let c1 = span(self.m, self.n, self.ldc);
        (last(self.stride_a, a1), last(self.stride_b, b1), last(self.stride_c, c1))
    }

    /// Panics with a clear message if a slice is too short or a leading dimension too small.
    pub fn check(&self, a: usize, b: usize, c: usize, bias: Option<usize>) {
        let (ra, rb, rc) = self.min_lens();
        assert!(a >= ra && b >= rb && c >= rc, "gemm {self:?}: slices a={a} b={b} c={c}, need {ra} {rb} {rc}");
        assert!(self.lda >= if self.trans_a { self.m } else { self.k }, "gemm: lda too small");
        assert!(self.ldb >= if self.trans_b { self.k } else { self.n }, "gemm: ldb too small");
        assert!(self.ldc >= self.n, "gemm: ldc too small");
        if let Some(len) = bias {
            assert_eq!(len, self.n, "gemm: bias length must be n");
        }
    }

    #[inline]
    pub fn a_at(&self, i: usize, p: usize) -> usize {
        if self.trans_a {
            p * self.lda + i
        } else {
            i * self.lda + p
        }
    }

    #[inline]
    pub fn b_at(&self, p: usize, j: usize) -> usize {
        if self.trans_b {
            j * self.ldb + p
        } else {
            p * self.ldb + j
        }
    }
}

/// The reference: three loops, accumulating in T. Readable, slow, always correct.
pub fn gemm_scalar<T: Real>(g: &Gemm, a: &[T], b: &[T], c: &mut [T], bias: Option<&[T]>) {
    g.check(a.len(), b.len(), c.len(), bias.map(|x| x.len()));
    for bi in 0..g.batch {
        let (a, b) = (&a[bi * g.stride_a..], &b[bi * g.stride_b..]);
        let c = &mut c[bi * g.stride_c..];
        for i in 0..g.m {
            for j in 0..g.n {
                let mut acc = T::zero();
                for p in 0..g.k {
                    acc += a[g.a_at(i, p)] * b[g.b_at(p, j)];
                }
                if let Some(bias) = bias {
                    acc += bias[j];
                }
                let dst = &mut c[i * g.ldc + j];
                *dst = if g.accumulate { *dst + acc } else { acc };
            }
        }
    }
}

/// The f32 entry point: the AVX2 path when the CPU has it, else the reference.
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32], bias: Option<&[f32]>) {
    gemm_isa(crate::cpu::isa(), g, a, b, c, bias)
}

/// [`gemm`] on a version chosen by the caller (tests pin the scalar path with it).
/// Panics if `isa` is not available on this CPU.
pub fn gemm_isa(isa: Isa, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32], bias: Option<&[f32]>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => gemm_avx2(g, a, b, c, bias),
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2Fma => panic!("gemm: avx2 requested on a non-x86-64 CPU"),
        Isa::Scalar => gemm_scalar(g, a, b, c, bias),
    }
}

/// The packed AVX2+FMA gemm (see the module docs). Same semantics as [`gemm_scalar`]; the sum
/// over k is blocked (KC at a time), so results differ from the reference by rounding only.
/// Panics if the CPU lacks AVX2 or FMA.
#[cfg(target_arch = "x86_64")]
pub fn gemm_avx2(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32], bias: Option<&[f32]>) {
    g.check(a.len(), b.len(), c.len(), bias.map(|x| x.len()));
    assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"), "gemm_avx2 needs AVX2 and FMA");
    if g.batch == 0 || g.m == 0 || g.n == 0 {
        return;
    }
    if g.k == 0 {
        // Nothing to multiply: C = (C or 0) + bias, exactly as the reference writes it.
        return gemm_scalar(g, a, b, c, bias);
    }
    avx2::run(g, a, b, avx2::Out::new(c), bias);
}

/// C = op(A) op(B) (+ bias) into a new dense C of `batch * m * n` floats (ldc = n, batches back
/// to back), without first zeroing it: the AVX2 path writes every element (its first k block
/// stores, never loads), so the engine's outputs skip a serial memset of their whole size
/// (measured: ~4 % of a tiny-model training step). Panics if `g` accumulates or C is not dense.
pub fn gemm_new(g: &Gemm, a: &[f32], b: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    assert!(!g.accumulate, "gemm_new: a new C cannot be accumulated into");
    assert!(g.ldc == g.n && (g.batch <= 1 || g.stride_c == g.m * g.n), "gemm_new: C must be dense, got {g:?}");
    let len = g.batch * g.m * g.n;
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::isa() == Isa::Avx2Fma && len > 0 && g.k > 0 {
        let (ra, rb, _) = g.min_lens();
        assert!(a.len() >= ra && b.len() >= rb, "gemm {g:?}: slices a={} b={}, need {ra} {rb}", a.len(), b.len());
        g.check(a.len(), b.len(), len, bias.map(|x| x.len()));
        let mut c: Vec<f32> = Vec::with_capacity(len);
        avx2::run(g, a, b, avx2::Out { ptr: c.as_mut_ptr(), len }, bias);
        // SAFETY: with accumulate off, every tile of every batch entry is stored by its first
        // k block before anything reads it, and a dense C has no element outside the tiles.
        unsafe { c.set_len(len) };
        return c;
    }
    let mut c = vec![0.0; len];
    gemm(g, a, b, &mut c, bias);
    c
}

/// [`gemm_new`] on the calling thread only, for callers that already run one product per
/// thread (fused attention runs one head per rayon task).
pub fn gemm_new_one_thread(g: &Gemm, a: &[f32], b: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    assert!(!g.accumulate, "gemm_new: a new C cannot be accumulated into");
    assert!(g.ldc == g.n && (g.batch <= 1 || g.stride_c == g.m * g.n), "gemm_new: C must be dense, got {g:?}");
    let len = g.batch * g.m * g.n;
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::isa() == Isa::Avx2Fma && len > 0 && g.k > 0 {
        g.check(a.len(), b.len(), len, bias.map(|x| x.len()));
        let mut c: Vec<f32> = Vec::with_capacity(len);
        avx2::run_capped(g, a, b, avx2::Out { ptr: c.as_mut_ptr(), len }, bias, 1);
        // SAFETY: as in gemm_new: every element is stored before it is read.
        unsafe { c.set_len(len) };
        return c;
    }
    let mut c = vec![0.0; len];
    match crate::cpu::isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if g.k > 0 && len > 0 => avx2::run_capped(g, a, b, avx2::Out::new(&mut c), bias, 1),
        _ => gemm_scalar(g, a, b, &mut c, bias),
    }
    c
}

/// [`gemm`] on the calling thread only (the caller already runs one product per thread).
pub fn gemm_one_thread(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32], bias: Option<&[f32]>) {
    match crate::cpu::isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if g.batch > 0 && g.m > 0 && g.n > 0 && g.k > 0 => {
            g.check(a.len(), b.len(), c.len(), bias.map(|x| x.len()));
            avx2::run_capped(g, a, b, avx2::Out::new(c), bias, 1)
        }
        _ => gemm_scalar(g, a, b, c, bias),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Gemm;
    use rayon::prelude::*;
    use std::arch::x86_64::*;
    use std::cell::Cell;
    use std::ops::Range;
    use std::thread::LocalKey;

    const MR: usize = 6;
    const NR: usize = 16;
    const KC: usize = 256;
    const MC: usize = 144;
    const NC: usize = 4096;
    /// Below this many multiply-adds a product runs on one thread: waking a sleeping rayon
    /// worker costs ~40 us on this VM, and 2^23 MACs (~130 us on one core) is where a split
    /// starts to pay (measured: 128x128x128 took 32 us on one thread, 43-69 us on two).
    const PAR_MIN_MACS: usize = 1 << 23;

    thread_local! {
        // Packing buffers, reused across calls so big blocks are not re-faulted in every time.
        static PACK_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
        static PACK_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    }

    /// Runs `f` on a 64-byte aligned scratch slice of `len` floats from this thread's buffer.
    /// The buffer is taken out while in use, so a nested call on the same thread (rayon may run
    /// another gemm here while this one waits) just allocates its own.
    fn with_buf<R>(key: &'static LocalKey<Cell<Vec<f32>>>, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let mut v = key.take();
        if v.len() < len + 16 {
            v = vec![0.0; len + 16];
        }
        let off = v.as_ptr().align_offset(64).min(16);
        let off = if off + len <= v.len() { off } else { 0 };
        let r = f(&mut v[off..off + len]);
        key.set(v);
        r
    }

    /// `c` spans at least `g.min_lens().2` floats (checked by the callers).
    pub(super) fn run(g: &Gemm, a: &[f32], b: &[f32], c: Out, bias: Option<&[f32]>) {
        run_capped(g, a, b, c, bias, rayon::current_num_threads())
    }

    /// [`run`] on at most `threads` threads (1: the calling thread only).
    pub(super) fn run_capped(g: &Gemm, a: &[f32], b: &[f32], c: Out, bias: Option<&[f32]>, threads: usize) {
        let macs = g.m * g.n * g.k;
        let c_span = (g.m - 1) * g.ldc + g.n;
        // C blocks of different batch entries must not overlap to run them concurrently; a
        // stride of 0 (summing into one C) runs in batch order like the reference.
        let disjoint = g.batch == 1 || g.stride_c >= c_span;
        let split_batch = threads > 1
            && g.batch > 1
            && disjoint
            && (g.batch.is_multiple_of(threads) || g.batch >= 8 * threads || macs < PAR_MIN_MACS);
        let entry = |bi: usize| c.sub(bi * g.stride_c, c_span);
        if split_batch {
            (0..g.batch)
                .into_par_iter()
                .for_each(|bi| one(g, &a[bi * g.stride_a..], &b[bi * g.stride_b..], entry(bi), bias, 1));
        } else {
            let inner = if macs >= PAR_MIN_MACS { threads } else { 1 };
            for bi in 0..g.batch {
                one(g, &a[bi * g.stride_a..], &b[bi * g.stride_b..], entry(bi), bias, inner);
            }
        }
    }

    /// The C of one product as a raw pointer, so that threads can write disjoint tiles of it
    /// (column ranges of the same rows cannot be separate `&mut` slices). Every tile store is
    /// checked against `len` first.
    /// It may point at memory not yet initialised: stores go through the raw pointer, and a
    /// tile is loaded only after this product's first k block has stored it.
    #[derive(Clone, Copy)]
    pub(super) struct Out {
        pub(super) ptr: *mut f32,
        pub(super) len: usize,
    }
    // SAFETY: `run` hands each thread a disjoint batch entry, and `one` a disjoint range of rows
    // or columns of C.
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}

    impl Out {
        pub(super) fn new(c: &mut [f32]) -> Out {
            Out { ptr: c.as_mut_ptr(), len: c.len() }
        }

        /// `len` floats from `start`; panics if they do not lie in this range.
        fn sub(self, start: usize, len: usize) -> Out {
            assert!(start + len <= self.len, "gemm: C sub-range {start}+{len} outside {}", self.len);
            // SAFETY: in bounds (asserted).
            Out { ptr: unsafe { self.ptr.add(start) }, len }
        }
    }

    /// One product; a, b, c start at this batch entry. With `threads` > 1 the output is cut into
    /// that many equal ranges of row panels (or of column panels when C is wider than tall),
    /// and each thread runs the whole blocked algorithm on its range with its own packing: one
    /// fork-join per product, no synchronisation inside. The price is packing B once per thread
    /// for a row split (a column split shares A, which is read in place); the split goes along
    /// the longer side, so that duplicate is the smaller operand.
    fn one(g: &Gemm, a: &[f32], b: &[f32], out: Out, bias: Option<&[f32]>, threads: usize) {
        let (mp, np) = (g.m.div_ceil(MR), g.n.div_ceil(NR));
        let by_rows = mp >= np;
        let parts = threads.clamp(1, if by_rows { mp } else { np });
        let range = |t: usize, panels: usize, w: usize, len: usize| {
            (t * panels / parts * w).min(len)..((t + 1) * panels / parts * w).min(len)
        };
        let task = |t: usize| {
            if by_rows {
                part(g, a, b, out, bias, range(t, mp, MR, g.m), 0..g.n)
            } else {
                part(g, a, b, out, bias, 0..g.m, range(t, np, NR, g.n))
            }
        };
        if parts > 1 {
            (0..parts).into_par_iter().for_each(task);
        } else {
            task(0);
        }
    }

    /// C[rows, cols] of one product, single-threaded: jc -> pc (pack B) -> ic (pack A) blocks.
    fn part(g: &Gemm, a: &[f32], b: &[f32], out: Out, bias: Option<&[f32]>, rows: Range<usize>, cols: Range<usize>) {
        let k = g.k;
        // Equal k blocks (k = 300 -> 2 x 150, not 256 + 44) so no pass is mostly overhead.
        let kc_max = k.div_ceil(k.div_ceil(KC));
        // Equal row blocks of at most MC rows (130 rows run as 66 + 64, not 126 + 4).
        let mp = rows.len().div_ceil(MR);
        let mc = mp.div_ceil(mp.div_ceil(MC / MR)) * MR;
        let nc_max = cols.len().min(NC);
        with_buf(&PACK_B, nc_max.div_ceil(NR) * NR * kc_max, |bbuf| {
            for jc in cols.clone().step_by(NC) {
                let nc = NC.min(cols.end - jc);
                for pc in (0..k).step_by(kc_max) {
                    let kc = kc_max.min(k - pc);
                    let slab = &mut bbuf[..nc.div_ceil(NR) * NR * kc];
                    for (jp, dst) in slab.chunks_mut(NR * kc).enumerate() {
                        let j0 = jc + jp * NR;
                        pack_b(g, b, dst, j0, NR.min(jc + nc - j0), pc, kc);
                    }
                    // The first k block applies beta, the last one adds the bias.
                    let beta = g.accumulate || pc > 0;
                    let bias = if pc + kc == k { bias } else { None };
                    let t = Tile { jc, nc, pc, kc, beta };
                    for i0 in rows.clone().step_by(mc) {
                        block(g, a, slab, out, i0..rows.end.min(i0 + mc), t, bias);
                    }
                }
            }
        })
    }

    /// The column and depth range one pass covers, and whether it adds to C.
    #[derive(Clone, Copy)]
    struct Tile {
        jc: usize,
        nc: usize,
        pc: usize,
        kc: usize,
        beta: bool,
    }

    /// C[rows, jc .. jc + nc] += op(A)[rows, pc .. pc + kc] times the packed B slab `slab`.
    ///
    /// Full 6-row panels of A are not packed: the microkernel broadcasts A's elements one at a
    /// time, so it can read them straight from the source through two strides (row and depth)
    /// as cheaply as from a packed panel, and the panel (6 x kc) stays in L1 while every B
    /// panel of the slab passes. Packing A cost 10-15 % of the time on the skinny products of
    /// small models (n = 128: each packed element was used only n / 16 = 8 times). Only a
    /// last panel of fewer than 6 rows is packed (zero-padded), so no read leaves A.
    fn block(g: &Gemm, a: &[f32], slab: &[f32], out: Out, rows: Range<usize>, t: Tile, bias: Option<&[f32]>) {
        let kc = t.kc;
        // Strides of op(A)[i, p] in the source: (row, depth).
        let (rs, ps) = if g.trans_a { (1, g.lda) } else { (g.lda, 1) };
        let full = rows.len() / MR * MR;
        let tail = rows.len() - full;
        with_buf(&PACK_A, if tail > 0 { MR * kc } else { 0 }, |apack| {
            if tail > 0 {
                pack_a(g, a, apack, rows.start + full, tail, t.pc, kc);
            }
            for (jp, bp) in slab.chunks(NR * kc).enumerate() {
                let j0 = t.jc + jp * NR;
                let nr = NR.min(t.jc + t.nc - j0);
                let bias = bias.map(|x| &x[j0..j0 + nr]);
                for r0 in rows.clone().step_by(MR) {
                    let mr = MR.min(rows.end - r0);
                    let off = r0 * g.ldc + j0;
                    // The tile's last element; every store below stays inside C.
                    assert!(off + (mr - 1) * g.ldc + nr <= out.len);
                    let (ap, ars, aps) = if mr == MR {
                        let first = g.a_at(r0, t.pc);
                        // The farthest element the microkernel reads from A.
                        assert!(first + (MR - 1) * rs + (kc - 1) * ps < a.len());
                        (a[first..].as_ptr(), rs, ps)
                    } else {
                        (apack.as_ptr(), 1, MR)
                    };
                    // SAFETY: AVX2+FMA were detected by gemm_avx2; the A panel (MR rows at
                    // stride ars, kc steps at stride aps) lies in `a` or `apack` (assert above,
                    // or packed MR x kc); bp holds kc*NR floats; the C tile (mr x nr, row
                    // stride ldc) lies in C (assert above) and belongs to this thread only.
                    unsafe {
                        let ct = out.ptr.add(off);
                        let pa = PanelA { ptr: ap, rs: ars, ps: aps };
                        kernel(kc, pa, bp.as_ptr(), ct, g.ldc, mr, nr, t.beta, bias);
                    }
                }
            }
        })
    }

    /// An A panel as the microkernel reads it: row i at depth p is `ptr + i * rs + p * ps`.
    #[derive(Clone, Copy)]
    struct PanelA {
        ptr: *const f32,
        rs: usize,
        ps: usize,
    }

    /// Where lane l (row of an A panel, column of a B panel) at depth p lives in the source:
    /// `base + l * ls + p * ps`. One of ls, ps is 1 for any layout.
    #[derive(Clone, Copy)]
    struct Src {
        base: usize,
        ls: usize,
        ps: usize,
    }

    /// Packs op(A)[r0 .. r0 + w, pc .. pc + kc] as kc groups of MR floats (zero rows past w).
    fn pack_a(g: &Gemm, a: &[f32], dst: &mut [f32], r0: usize, w: usize, pc: usize, kc: usize) {
        let s = if g.trans_a {
            Src { base: pc * g.lda + r0, ls: 1, ps: g.lda }
        } else {
            Src { base: r0 * g.lda + pc, ls: g.lda, ps: 1 }
        };
        pack::<MR>(dst, a, s, w, kc)
    }

    /// Packs op(B)[pc .. pc + kc, j0 .. j0 + w] as kc groups of NR floats (zero columns past w).
    fn pack_b(g: &Gemm, b: &[f32], dst: &mut [f32], j0: usize, w: usize, pc: usize, kc: usize) {
        let s = if g.trans_b {
            Src { base: j0 * g.ldb + pc, ls: g.ldb, ps: 1 }
        } else {
            Src { base: pc * g.ldb + j0, ls: 1, ps: g.ldb }
        };
        pack::<NR>(dst, b, s, w, kc)
    }

    /// dst[p * W + l] = src[s.base + l * s.ls + p * s.ps] for l < w, 0 for w <= l < W.
    fn pack<const W: usize>(dst: &mut [f32], src: &[f32], s: Src, w: usize, kc: usize) {
        assert!(dst.len() == W * kc && (1..=W).contains(&w) && kc >= 1);
        // The farthest element read; all reads below are at or before it.
        assert!(s.base + (w - 1) * s.ls + (kc - 1) * s.ps < src.len());
        if s.ls == 1 {
            // Lanes are contiguous (A transposed, B plain): copy a row of w per depth step.
            for (p, d) in dst.chunks_exact_mut(W).enumerate() {
                let o = s.base + p * s.ps;
                if w == W {
                    // Fixed length: a few vector moves instead of a memcpy call.
                    d.copy_from_slice(&src[o..o + W]);
                } else {
                    d[..w].copy_from_slice(&src[o..o + w]);
                    d[w..].fill(0.0);
                }
            }
        } else if s.ps == 1 && w == W && (W == 16 || W == 6) {
            // Lanes run along k (A plain, B transposed): transpose 8 x 8 tiles in registers.
            // SAFETY: AVX2 detected by gemm_avx2; bounds asserted above.
            unsafe { pack_transposed::<W>(dst, src, s, kc) }
        } else {
            for (p, d) in dst.chunks_exact_mut(W).enumerate() {
                for (l, x) in d.iter_mut().enumerate() {
                    *x = if l < w { src[s.base + l * s.ls + p * s.ps] } else { 0.0 };
                }
            }
        }
    }

    /// `pack` for ps == 1 and all W lanes present (W = 6 or 16). Caller checked the bounds.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_transposed<const W: usize>(dst: &mut [f32], src: &[f32], s: Src, kc: usize) {
        let sp = src.as_ptr().add(s.base);
        let dp = dst.as_mut_ptr();
        let k8 = kc / 8 * 8;
        for p in (0..k8).step_by(8) {
            for h in (0..W).step_by(8) {
                let lanes = (W - h).min(8);
                let mut r = [_mm256_setzero_ps(); 8];
                for (l, x) in r.iter_mut().enumerate().take(lanes) {
                    *x = _mm256_loadu_ps(sp.add((h + l) * s.ls + p));
                }
                let t = transpose8(r);
                for (q, x) in t.iter().enumerate() {
                    let d = dp.add((p + q) * W + h);
                    if lanes == 8 {
                        _mm256_storeu_ps(d, *x);
                    } else {
                        // W = 6: lanes 0..4 then 4..6.
                        _mm_storeu_ps(d, _mm256_castps256_ps128(*x));
                        let hi = _mm256_extractf128_ps::<1>(*x);
                        _mm_storel_pd(d.add(4) as *mut f64, _mm_castps_pd(hi));
                    }
                }
            }
        }
        for p in k8..kc {
            for l in 0..W {
                *dp.add(p * W + l) = *sp.add(l * s.ls + p);
            }
        }
    }

    /// Transposes 8 rows of 8 floats: out[q] lane l = r[l] lane q.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// The 6x16 microkernel: acc = A panel (6 x kc, read through `pa`'s strides) times B panel
    /// (kc x 16, packed) in 12 ymm registers, then C tile = (beta ? C : 0) + (acc + bias),
    /// storing only mr x nr. `pb` holds kc*NR floats; `c` points at an mr x nr tile with row
    /// stride ldc; `bias` (if any) holds nr floats.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel(
        kc: usize,
        pa: PanelA,
        pb: *const f32,
        c: *mut f32,
        ldc: usize,
        mr: usize,
        nr: usize,
        beta: bool,
        bias: Option<&[f32]>,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let rows: [*const f32; MR] = std::array::from_fn(|i| pa.ptr.add(i * pa.rs));
        for p in 0..kc {
            let b0 = _mm256_loadu_ps(pb.add(p * NR));
            let b1 = _mm256_loadu_ps(pb.add(p * NR + 8));
            let at = p * pa.ps;
            for (row, r) in acc.iter_mut().zip(rows) {
                let ai = _mm256_set1_ps(*r.add(at));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
        }
        if mr == MR && nr == NR {
            for (i, row) in acc.iter().enumerate() {
                let d = c.add(i * ldc);
                let (mut v0, mut v1) = (row[0], row[1]);
                if let Some(bs) = bias {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bs.as_ptr()));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bs.as_ptr().add(8)));
                }
                if beta {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(d));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(d.add(8)));
                }
                _mm256_storeu_ps(d, v0);
                _mm256_storeu_ps(d.add(8), v1);
            }
        } else {
            // Edge tile: spill, then write only the mr x nr part that exists.
            let mut tmp = [[0f32; NR]; MR];
            for (t, row) in tmp.iter_mut().zip(&acc) {
                _mm256_storeu_ps(t.as_mut_ptr(), row[0]);
                _mm256_storeu_ps(t.as_mut_ptr().add(8), row[1]);
            }
            for (i, t) in tmp.iter().enumerate().take(mr) {
                for (j, &x) in t.iter().enumerate().take(nr) {
                    let v = match bias {
                        Some(bs) => x + bs[j],
                        None => x,
                    };
                    let d = c.add(i * ldc + j);
                    *d = if beta { *d + v } else { v };
                }
            }
        }
    }
}
