//! Row gather and its backward, scatter-add. One kernel family serves both the embedding lookup
//! (rows of a table by token id) and the gather of masked positions for the MLM head.
//!
//! Shapes: table/inp: (V, C); idx: (n) with every idx < V (checked by the engine);
//! out/dout: (n, C); dtable: (V, C).

use crate::Real;

/// out[i, :] = table[idx[i], :]
pub fn gather_rows_fwd_scalar<T: Real>(out: &mut [T], table: &[T], idx: &[usize], cols: usize) {
    assert_eq!(out.len(), idx.len() * cols, "gather_rows_fwd: out length");
    for (i, &row) in idx.iter().enumerate() {
        out[i * cols..(i + 1) * cols].copy_from_slice(&table[row * cols..(row + 1) * cols]);
    }
}

/// dtable[idx[i], :] += dout[i, :]   (accumulates: repeated ids add up, and the table is
/// usually a parameter)
pub fn gather_rows_bwd_scalar<T: Real>(dtable: &mut [T], dout: &[T], idx: &[usize], cols: usize) {
    assert_eq!(dout.len(), idx.len() * cols, "gather_rows_bwd: dout length");
    for (i, &row) in idx.iter().enumerate() {
        let dst = &mut dtable[row * cols..(row + 1) * cols];
        for (d, &g) in dst.iter_mut().zip(&dout[i * cols..(i + 1) * cols]) {
            *d += g;
        }
    }
}

pub fn gather_rows_fwd(out: &mut [f32], table: &[f32], idx: &[usize], cols: usize) {
    gather_rows_fwd_scalar(out, table, idx, cols)
}

pub fn gather_rows_bwd(dtable: &mut [f32], dout: &[f32], idx: &[usize], cols: usize) {
    gather_rows_bwd_scalar(dtable, dout, idx, cols)
}
