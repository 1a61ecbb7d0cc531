//! GPU copies (kernels::cuda::copy) against the CPU reference `cpu::copy::copy_strided_scalar`,
//! bit for bit: strided / permuted / broadcast / narrowed views of every element size, 2-D block
//! copies (gaps between rows left untouched), f32 <-> bf16 conversion (vs `half`) and fill.
//! Skips (passes) when there is no CUDA device.
mod common;

use common::rand_vec;
use kernels::cpu::copy::copy_strided_scalar;
use kernels::cuda::copy::{convert, copy_2d, copy_strided, fill};
use kernels::cuda::{download_f32, test_device, upload_f32, DevPtr, DeviceBuffer, Dims6, Dt, Gpu};
use std::sync::Arc;

/// Deterministic pseudo-random bytes (SplitMix64).
fn rand_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

/// A small LCG for picking shapes.
struct Pick(u64);
impl Pick {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Bytes written before and after every output region; a kernel writing out of bounds changes them.
const GUARD: usize = 64;
const CANARY_BYTE: u8 = 0xA5;

/// An output buffer of `len` bytes between GUARD canary bytes on each side, starting `shift` bytes
/// after a 16-byte boundary (shift != 0 exercises the unaligned paths).
struct Out {
    buf: DeviceBuffer,
    len: usize,
    front: usize,
}

impl Out {
    fn new(g: &Arc<Gpu>, len: usize, shift: usize) -> Out {
        let front = GUARD + shift;
        let buf = g.upload(&vec![CANARY_BYTE; front + len + GUARD]).unwrap();
        Out { buf, len, front }
    }
    fn ptr(&self) -> DevPtr {
        self.buf.ptr(self.front)
    }
    /// The output region; panics if a canary changed.
    fn get(&self, what: &str) -> Vec<u8> {
        let all = self.buf.gpu().download(&self.buf, 0, self.front + self.len + GUARD).unwrap();
        let (head, rest) = all.split_at(self.front);
        let (body, tail) = rest.split_at(self.len);
        assert!(head.iter().chain(tail).all(|&b| b == CANARY_BYTE), "{what}: wrote outside its output");
        body.to_vec()
    }
}

/// Checks copy_strided of the view (shape, strides, offset) of a source of `src_elems` elements of
/// `eb` bytes, with the output `shift` elements after a 16-byte boundary.
#[allow(clippy::too_many_arguments)]
fn check_strided(
    g: &Arc<Gpu>,
    eb: usize,
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    src_elems: usize,
    shift: usize,
    seed: u64,
) {
    let what = format!("copy_strided eb {eb} shape {shape:?} strides {strides:?} offset {offset} shift {shift}");
    let n: usize = shape.iter().product();
    let src_bytes = rand_bytes(seed, src_elems * eb);
    let src = g.upload(&src_bytes).unwrap();
    // the reference on element indices: which source element lands at each output position
    let idx: Vec<usize> = (0..src_elems).collect();
    let mut picked = vec![0usize; n];
    copy_strided_scalar(&mut picked, &idx, shape, strides, offset);
    let want: Vec<u8> = picked.iter().flat_map(|&i| src_bytes[i * eb..(i + 1) * eb].iter().copied()).collect();

    let out = Out::new(g, n * eb, shift * eb);
    let mut d = Dims6 { rank: shape.len() as i32, ..Dims6::default() };
    for (k, (&s, &st)) in shape.iter().zip(strides).enumerate() {
        d.shape[k] = s as i64;
        d.stride[k] = st as i64;
    }
    copy_strided(g, eb, out.ptr(), src.ptr(offset * eb), &d).unwrap();
    let got = out.get(&what);
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("{what}: first wrong byte {i} (element {}): got {}, want {}", i / eb, got[i], want[i]);
    }
}

/// Row-major strides of `shape`.
fn dense(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

#[test]
fn copy_strided_fixed_views() {
    let Some(g) = test_device() else { return };
    for eb in [1usize, 2, 4, 8] {
        // dense (widened to 16-byte words where the element size allows)
        check_strided(&g, eb, &[2, 3, 4], &dense(&[2, 3, 4]), 0, 24, 0, 1);
        check_strided(&g, eb, &[1_000_003], &[1], 0, 1_000_003, 0, 2);
        // dense with an odd offset and a misaligned output
        check_strided(&g, eb, &[17, 33], &[33, 1], 3, 3 + 17 * 33, 1, 3);
        // transpose of the last two dims of (3, 5, 7)
        check_strided(&g, eb, &[3, 7, 5], &[35, 1, 7], 0, 105, 0, 4);
        // heads split: (B, S, N, D) -> (B, N, S, D) of (2, 17, 4, 8)
        check_strided(&g, eb, &[2, 4, 17, 8], &[544, 8, 32, 1], 0, 1088, 0, 5);
        // broadcast a row along a new leading dim, and a column along the last
        check_strided(&g, eb, &[127, 768], &[0, 1], 0, 768, 0, 6);
        check_strided(&g, eb, &[33, 17], &[1, 0], 0, 33, 0, 7);
        // narrow: columns 4..12 of a (9, 16) buffer
        check_strided(&g, eb, &[9, 8], &[16, 1], 4, 144, 0, 8);
        // rank 0 (one element) and rank 6
        check_strided(&g, eb, &[], &[], 5, 6, 0, 9);
        check_strided(&g, eb, &[2, 3, 1, 2, 3, 5], &[1, 2, 180, 6, 60, 12], 0, 180, 0, 10);
        // sum_axis_bwd's pattern: (outer, len, inner) with stride 0 on len
        check_strided(&g, eb, &[3, 1000, 129], &[129, 0, 1], 0, 387, 0, 11);
        // empty
        check_strided(&g, eb, &[4, 0, 3], &[0, 3, 1], 0, 1, 0, 12);
    }
}

#[test]
fn copy_strided_random_views() {
    let Some(g) = test_device() else { return };
    let mut pick = Pick(7);
    let sizes = [1usize, 2, 3, 5, 8, 17];
    for case in 0..300u64 {
        let eb = [1usize, 2, 4, 8][pick.below(4)];
        let rank = pick.below(7);
        let shape: Vec<usize> = (0..rank).map(|_| sizes[pick.below(sizes.len())]).collect();
        // a parent buffer with padded dims (narrowing), laid out in a random order (permutation),
        // some dims broadcast (stride 0)
        let mut order: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() {
            order.swap(i, pick.below(i + 1));
        }
        let mut strides = vec![0usize; rank];
        let mut step = 1usize;
        for &d in order.iter().rev() {
            strides[d] = step;
            step *= shape[d] + pick.below(3);
        }
        for s in strides.iter_mut() {
            if pick.below(5) == 0 {
                *s = 0;
            }
        }
        let offset = pick.below(4);
        let extent: usize = shape.iter().zip(&strides).map(|(&n, &s)| (n.max(1) - 1) * s).sum();
        check_strided(&g, eb, &shape, &strides, offset, offset + extent + 1, pick.below(2), 100 + case);
    }
}

#[test]
fn copy_2d_blocks() {
    let Some(g) = test_device() else { return };
    // (rows, cols, dst_ld, src_ld, dst_off, src_off) in elements
    let cases = [
        (1usize, 1usize, 1usize, 1usize, 0usize, 0usize),
        (3, 17, 40, 17, 0, 0),
        (33, 128, 384, 128, 128, 0), // one part of a concat along the last dim
        (33, 128, 128, 384, 0, 256), // its backward (split)
        (127, 3, 5, 7, 1, 2),
        (1000, 768, 768, 768, 0, 0), // fully dense: one 1-D copy
        (5, 0, 3, 3, 0, 0),
    ];
    for eb in [2usize, 4, 8] {
        for (k, &(rows, cols, dst_ld, src_ld, dst_off, src_off)) in cases.iter().enumerate() {
            let what = format!("copy_2d eb {eb} rows {rows} cols {cols} dst_ld {dst_ld} src_ld {src_ld}");
            let src_elems = src_off + rows * src_ld + 1;
            let dst_elems = dst_off + rows * dst_ld + 1;
            let src_bytes = rand_bytes(k as u64, src_elems * eb);
            let dst_init = rand_bytes(1000 + k as u64, dst_elems * eb);
            let src = g.upload(&src_bytes).unwrap();
            let dst = g.upload(&dst_init).unwrap();
            copy_2d(&g, eb, dst.ptr(dst_off * eb), dst_ld, src.ptr(src_off * eb), src_ld, rows, cols).unwrap();
            let got = g.download(&dst, 0, dst_elems * eb).unwrap();
            let mut want = dst_init.clone();
            for r in 0..rows {
                let (d, s) = ((dst_off + r * dst_ld) * eb, (src_off + r * src_ld) * eb);
                want[d..d + cols * eb].copy_from_slice(&src_bytes[s..s + cols * eb]);
            }
            assert!(got == want, "{what}: wrong bytes (or gaps between rows overwritten)");
        }
    }
    // overlapping rows are refused
    let src = g.upload(&[0u8; 64]).unwrap();
    assert!(copy_2d(&g, 4, src.ptr(0), 2, src.ptr(0), 4, 2, 4).is_err());
}

#[test]
fn convert_matches_half() {
    let Some(g) = test_device() else { return };
    let mut specials =
        vec![0.0f32, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MAX, f32::MIN_POSITIVE];
    // ties (round to even), values just either side of ties, subnormals
    for bits in [0x3F80_8000u32, 0x3F81_8000, 0x3F80_8001, 0x3F80_7FFF, 0x0000_1234, 0x8040_0000, 0x7F7F_FFFF] {
        specials.push(f32::from_bits(bits));
    }
    for n in [1usize, 3, 17, 33, 127, 1000, 4099] {
        for shift in [0usize, 1] {
            let mut x = rand_vec(n as u64, n, -3.0, 3.0);
            for (i, &s) in specials.iter().enumerate().take(n) {
                x[i] = s;
            }
            let what = format!("convert n {n} shift {shift}");
            // f32 -> bf16: the bits half gives
            let src = upload_f32(&g, &[vec![0.0; shift], x.clone()].concat(), Dt::F32).unwrap();
            let out = Out::new(&g, n * 2, 2 * shift);
            convert(&g, out.ptr(), Dt::BF16, src.ptr(4 * shift), Dt::F32, n).unwrap();
            let got: Vec<u16> = out.get(&what).chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            for (i, (&gb, &v)) in got.iter().zip(&x).enumerate() {
                let want = half::bf16::from_f32(v);
                let ok = gb == want.to_bits() || (v.is_nan() && half::bf16::from_bits(gb).is_nan());
                assert!(ok, "{what}: f32 -> bf16 of {v:e} (index {i}): got {gb:#06x}, want {:#06x}", want.to_bits());
            }
            // bf16 -> f32: exact
            let xb: Vec<f32> = x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
            let src = upload_f32(&g, &[vec![0.0; shift], xb.clone()].concat(), Dt::BF16).unwrap();
            let out = Out::new(&g, n * 4, 4 * shift);
            convert(&g, out.ptr(), Dt::F32, src.ptr(2 * shift), Dt::BF16, n).unwrap();
            let got: Vec<f32> =
                out.get(&what).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            for (i, (&a, &b)) in got.iter().zip(&xb).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{what}: bf16 -> f32 index {i}: {a} vs {b}"
                );
            }
            // same type: a copy
            for dt in [Dt::F32, Dt::BF16] {
                let src = upload_f32(&g, &x, dt).unwrap();
                let out = Out::new(&g, n * dt.size(), shift * dt.size());
                convert(&g, out.ptr(), dt, src.ptr(0), dt, n).unwrap();
                let want = g.download(&src, 0, n * dt.size()).unwrap();
                assert!(out.get(&what) == want, "{what}: same-type convert {dt:?} is not a copy");
            }
        }
    }
}

#[test]
fn fill_writes_exactly_n() {
    let Some(g) = test_device() else { return };
    for dt in [Dt::F32, Dt::BF16] {
        for n in [1usize, 3, 17, 33, 127, 1000, 100_003] {
            for shift in [0usize, 1] {
                let what = format!("fill {dt:?} n {n} shift {shift}");
                let out = Out::new(&g, n * dt.size(), shift * dt.size());
                fill(&g, dt, out.ptr(), n, -1.7).unwrap();
                let bytes = out.get(&what);
                let want = match dt {
                    Dt::F32 => (-1.7f32).to_le_bytes().to_vec(),
                    Dt::BF16 => half::bf16::from_f32(-1.7).to_bits().to_le_bytes().to_vec(),
                };
                assert!(bytes.chunks_exact(dt.size()).all(|c| c == want.as_slice()), "{what}");
                // download_f32 agrees
                let buf = g.alloc_zeroed(n * dt.size()).unwrap();
                fill(&g, dt, buf.ptr(0), n, 0.25).unwrap();
                assert!(download_f32(&buf, dt, 0, n).unwrap().iter().all(|&v| v == 0.25), "{what}");
            }
        }
    }
}
