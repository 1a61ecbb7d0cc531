//! Strided copy: the dispatched `copy_strided` against the scalar odometer reference (run in f64
//! and in f32; a copy must be exact).
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::copy::*;
use proptest::prelude::*;

/// Copies the view (shape, strides, offset) of a buffer just big enough for it (plus slack),
/// and compares with the reference.
fn check(shape: &[usize], strides: &[usize], offset: usize, seed: u64) {
    let n: usize = shape.iter().product();
    let last = offset + shape.iter().zip(strides).map(|(&s, &st)| s.saturating_sub(1) * st).sum::<usize>();
    let inp = rand_vec(seed, last + 3, -1.0, 1.0);
    let mut out = Guarded::new(n, f32::NAN);
    copy_strided(out.inner_mut(), &inp, shape, strides, offset);
    out.check_canaries("copy_strided");
    let mut want = vec![0f64; n];
    copy_strided_scalar(&mut want, &f64v(&inp), shape, strides, offset);
    // a copy: exact
    assert_close("copy_strided", out.inner(), &f32v(&want), 0.0, 0.0);
}

/// Strides of a row-major parent with the given dims.
fn contiguous(dims: &[usize]) -> Vec<usize> {
    let mut st = vec![1; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * dims[d + 1];
    }
    st
}

proptest! {
    #![proptest_config(proptest_config())]

    // A view of a bigger row-major parent (slices: parent dims >= view dims, the start offset
    // inside), permuted, with some dims broadcast (stride 0): contiguous runs, merged dims,
    // short runs and the odometer fallback all come up.
    #[test]
    fn copy_strided_matches_reference(
        dims in prop::collection::vec(prop::sample::select(vec![1usize, 2, 3, 5, 8, 17, 33]), 1..=4),
        extra in prop::collection::vec(prop::sample::select(vec![0usize, 0, 1, 3]), 4),
        perm_seed in any::<u64>(),
        broadcast in prop::collection::vec(prop::bool::weighted(0.15), 4),
        offset in prop::sample::select(vec![0usize, 1, 3, 5, 7]),
        seed in any::<u64>(),
    ) {
        let rank = dims.len();
        let parent: Vec<usize> = dims.iter().zip(&extra).map(|(&d, &e)| d + e).collect();
        let pst = contiguous(&parent);
        // Fisher-Yates with a tiny LCG: the axis order of the view
        let mut perm: Vec<usize> = (0..rank).collect();
        let mut s = perm_seed;
        for i in (1..rank).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let shape: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
        let strides: Vec<usize> = perm.iter().zip(&broadcast).map(|(&p, &b)| if b { 0 } else { pst[p] }).collect();
        check(&shape, &strides, offset, seed);
    }
}

#[test]
fn large_views_threaded() {
    // all above the threading threshold (16 * PAR_CHUNK = 524288 elements)
    // [B, S, N, D] -> [B, N, S, D]: runs of D = 64 contiguous floats, 590k elements
    let (b, s, n, d) = (6, 128, 12, 64);
    let st = contiguous(&[b, s, n, d]);
    check(&[b, n, s, d], &[st[0], st[2], st[1], st[3]], 0, 1);
    // a column slice of a wider matrix: rows of 300 out of 301
    check(&[2000, 300], &[301, 1], 1, 2);
    // a broadcast of one row over 2100 rows (outer stride 0, runs contiguous)
    check(&[2100, 257], &[0, 1], 5, 3);
    // transpose (innermost stride not 1): the odometer fallback on a large input
    check(&[2100, 257], &[1, 2100], 0, 4);
}

#[test]
fn degenerate_shapes() {
    check(&[], &[], 4, 1); // rank 0: one element
    check(&[1, 1, 1], &[7, 9, 11], 2, 2); // every dim of size 1
    let mut out: [f32; 0] = [];
    copy_strided(&mut out, &[1.0], &[3, 0, 2], &[2, 1, 1], 0); // zero elements: nothing read
}

#[test]
fn generic_element_type() {
    // the fast path is generic: integers through a permuted view of a (3, 4, 9) parent, whose
    // innermost runs of 9 take the copy_from_slice path
    let inp: Vec<i64> = (0..108).collect();
    let (shape, strides) = ([4, 3, 9], [9, 36, 1]);
    let mut a = vec![0i64; 108];
    let mut b = vec![0i64; 108];
    copy_strided(&mut a, &inp, &shape, &strides, 0);
    copy_strided_scalar(&mut b, &inp, &shape, &strides, 0);
    assert_eq!(a, b);
}
