//! Row gather and scatter-add: the dispatched f32 kernels against the scalar reference run in
//! f64, and against the f32 reference bit for bit (same additions in the same order).
mod common;

use common::{assert_close, f32v, f64v, proptest_config, rand_vec, Guarded};
use kernels::cpu::gather::*;
use proptest::prelude::*;

/// n ids in [0, vocab): with n > vocab, repeats are certain.
fn make_ids(seed: u64, n: usize, vocab: usize) -> Vec<usize> {
    rand_vec(seed, n, 0.0, 1.0).iter().map(|&u| ((u * vocab as f32) as usize).min(vocab - 1)).collect()
}

fn check(vocab: usize, n: usize, cols: usize, off: usize, seed: u64) {
    let table = rand_vec(seed, vocab * cols + off, -1.0, 1.0);
    let table = &table[off..];
    let ids = make_ids(seed ^ 1, n, vocab);

    let mut out = Guarded::new(n * cols, f32::NAN);
    gather_rows_fwd(out.inner_mut(), table, &ids, cols);
    out.check_canaries("gather_rows_fwd");
    let mut want = vec![0f64; n * cols];
    gather_rows_fwd_scalar(&mut want, &f64v(table), &ids, cols);
    // copies: exact
    assert_close("gather_rows_fwd", out.inner(), &f32v(&want), 0.0, 0.0);

    // scatter-add onto random non-zero contents
    let dout = rand_vec(seed ^ 2, n * cols + 3, -1.0, 1.0);
    let dout = &dout[3..];
    let init = rand_vec(seed ^ 3, vocab * cols, -2.0, 2.0);
    let mut dtable = Guarded::from(&init);
    gather_rows_bwd(dtable.inner_mut(), dout, &ids, cols);
    dtable.check_canaries("gather_rows_bwd");
    let mut want = f64v(&init);
    gather_rows_bwd_scalar(&mut want, &f64v(dout), &ids, cols);
    // an element hit k <= n times takes k f32 additions of values <= 1 onto |init| <= 2, each
    // rounding by at most half an ulp of the running sum (<= 2 + k): k (2 + k) 6e-8 in all
    assert_close("gather_rows_bwd", dtable.inner(), &f32v(&want), 6e-8 * (n * (2 + n)) as f32, 0.0);
    // and the same additions in the same order as the f32 reference: bit-identical
    let mut want32 = init.clone();
    gather_rows_bwd_scalar(&mut want32, dout, &ids, cols);
    assert!(
        dtable.inner().iter().zip(&want32).all(|(a, b)| a.to_bits() == b.to_bits()),
        "gather_rows_bwd: not bit-identical to the f32 reference"
    );
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn gather_matches_reference(
        vocab in prop::sample::select(vec![1usize, 3, 7, 17]),
        n in prop::sample::select(vec![1usize, 3, 7, 17, 33]),
        cols in prop::sample::select(vec![1usize, 3, 7, 8, 9, 17, 33, 129, 768]),
        off in prop::sample::select(vec![0usize, 1, 3, 5, 7]),
        seed in any::<u64>(),
    ) {
        check(vocab, n, cols, off, seed);
    }
}

#[test]
fn threaded_paths() {
    // fwd: row blocks; bwd: column ranges (n * cols >= simd::PAR_MIN_LIGHT = 524288 and
    // cols >= 128), with every id repeated ~16 times
    check(50, 800, 768, 3, 1);
    // embedding shape, cols below the column-split threshold: serial scatter
    check(1000, 1024, 128, 1, 2);
    check(5, 300, 1001, 0, 3);
}

#[test]
fn repeated_ids_accumulate() {
    let cols = 9;
    let mut dtable = vec![1f32; 3 * cols];
    let dout: Vec<f32> = (0..4 * cols).map(|i| (i / cols) as f32 + 1.0).collect(); // rows 1,2,3,4
    gather_rows_bwd(&mut dtable, &dout, &[2, 0, 2, 2], cols);
    assert_eq!(&dtable[..cols], &[3.0; 9]); // 1 + 2
    assert_eq!(&dtable[cols..2 * cols], &[1.0; 9]); // untouched
    assert_eq!(&dtable[2 * cols..], &[9.0; 9]); // 1 + 1 + 3 + 4
}

#[test]
#[should_panic]
fn bad_id_panics() {
    let mut dtable = vec![0f32; 4 * 200];
    let dout = vec![1f32; 2 * 200];
    gather_rows_bwd(&mut dtable, &dout, &[1, 4], 200);
}
