//! Row gathers by integer index: the embedding lookup (rows of a table by token id) and the gather
//! of masked positions for the MLM head. Backward scatter-adds, so repeated ids accumulate.

use super::float_dispatch;
use crate::cuda::{dt_of, empty, op_gpu, ptr, upload_indices, zeros};
use crate::elem::k;
use crate::{DType, Error, Result, Tensor};
use num_traits::Zero as _;

/// Validates ids against the table's row count; the error names the first bad id and where it is.
fn check_ids(op: &str, ids: &[i64], rows: usize) -> Result<Vec<usize>> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            if id < 0 || id as usize >= rows {
                Err(Error::Index(format!("{op}: index {id} at position {i} is out of range for {rows} rows")))
            } else {
                Ok(id as usize)
            }
        })
        .collect()
}

fn gather(op: &str, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    if table.rank() != 2 {
        return Err(Error::Shape(format!("{op}: table must be 2-D [rows, cols], got {}", table.dims())));
    }
    let (rows, cols) = (table.shape()[0], table.shape()[1]);
    let idx = check_ids(op, &ids.ids(op)?, rows)?;
    let mut shape = ids.shape().to_vec();
    shape.push(cols);
    let t = table.contiguous();
    if let Some(g) = op_gpu(op, &[&t])? {
        let out = empty(&g, t.dtype(), &shape)?;
        let dev_idx = upload_indices(&g, &idx)?;
        let dt = dt_of(op, &t)?;
        kernels::cuda::gather::gather_rows_fwd(&g, dt, ptr(&out), ptr(&t), dev_idx.ptr(0), idx.len(), cols, rows)?;
        return Ok(out);
    }
    float_dispatch!(op, t.dtype(), |T| {
        let mut out = vec![T::zero(); idx.len() * cols];
        k::gather_rows_fwd(&mut out, t.data::<T>(op)?, &idx, cols);
        Tensor::from_vec(out, &shape)
    })
}

fn gather_bwd(op: &str, dout: &Tensor, ids: &Tensor, table_shape: &[usize]) -> Result<Tensor> {
    let (rows, cols) = (table_shape[0], table_shape[1]);
    let idx = check_ids(op, &ids.ids(op)?, rows)?;
    if dout.numel() != idx.len() * cols {
        return Err(Error::Shape(format!("{op}: dout {} does not match {} ids x {cols}", dout.dims(), idx.len())));
    }
    let g = dout.contiguous();
    if let Some(gpu) = op_gpu(op, &[&g])? {
        // Scatter-add into an f32 table (f32 atomics), then to the gradient's dtype.
        let dtable = zeros(&gpu, DType::F32, table_shape)?;
        let dev_idx = upload_indices(&gpu, &idx)?;
        let dt = dt_of(op, &g)?;
        kernels::cuda::gather::gather_rows_bwd(&gpu, dt, ptr(&dtable), ptr(&g), dev_idx.ptr(0), idx.len(), cols, rows)?;
        return Ok(dtable.to_dtype(g.dtype()));
    }
    float_dispatch!(op, g.dtype(), |T| {
        let mut dtable = vec![T::zero(); rows * cols];
        k::gather_rows_bwd(&mut dtable, g.data::<T>(op)?, &idx, cols);
        Tensor::from_vec(dtable, table_shape)
    })
}

/// out[..., :] = table[ids[...], :]. table: [V, C]; ids: i64, any shape; out: ids.shape + [C].
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    gather("embedding", table, ids)
}

/// dtable: [V, C], rows scatter-added from dout (repeated ids add up).
pub fn embedding_bwd(dout: &Tensor, ids: &Tensor, table_shape: &[usize]) -> Result<Tensor> {
    gather_bwd("embedding_bwd", dout, ids, table_shape)
}

/// Rows of x: [R, C] at idx (e.g. the masked positions of flattened hidden states).
pub fn gather_rows(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    gather("gather_rows", x, idx)
}

/// dx: [R, C] with dout's rows scatter-added at idx.
pub fn gather_rows_bwd(dout: &Tensor, idx: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    gather_bwd("gather_rows_bwd", dout, idx, x_shape)
}
