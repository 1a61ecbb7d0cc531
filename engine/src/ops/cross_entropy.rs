//! Cross-entropy over logits with integer targets: fused log-softmax + NLL, mean over the rows
//! whose target is not `ignore_index` (HF uses -100).

use super::{float_dispatch, rows_cols};
use crate::cuda::{dt_of, empty, expect_saved_f32, op_gpu, ptr, zeros};
use crate::elem::k;
use crate::{DType, Error, Result, Tensor};
use num_traits::Zero as _;

/// What the backward needs besides the logits: log-sum-exp per row (f32 on the GPU) and the
/// counted rows.
#[derive(Clone, Debug)]
pub struct CrossEntropySaved {
    pub lse: Tensor,
    pub count: usize,
}

fn check_targets(logits: &Tensor, targets: &Tensor, ignore_index: i64) -> Result<(usize, usize, Vec<i64>)> {
    let (rows, cols) = rows_cols("cross_entropy", logits)?;
    let t = targets.ids("cross_entropy targets")?;
    if t.len() != rows {
        return Err(Error::Shape(format!(
            "cross_entropy: logits {} have {rows} rows but targets {} have {} entries",
            logits.dims(),
            targets.dims(),
            t.len()
        )));
    }
    if let Some((i, &bad)) = t.iter().enumerate().find(|(_, &v)| v != ignore_index && (v < 0 || v as usize >= cols)) {
        return Err(Error::Index(format!(
            "cross_entropy: target {bad} at row {i} is out of range for {cols} classes (ignore_index {ignore_index})"
        )));
    }
    Ok((rows, cols, t))
}

/// Mean loss (a scalar tensor of the logits' dtype). If every row is ignored the loss is 0 (and so
/// is its gradient), where PyTorch would return NaN: an empty MLM batch should not poison training.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, ignore_index: i64) -> Result<(Tensor, CrossEntropySaved)> {
    let (rows, cols, t) = check_targets(logits, targets, ignore_index)?;
    let x = logits.contiguous();
    if let Some(g) = op_gpu("cross_entropy", &[&x])? {
        // The loss is f32 whatever the logits' dtype; its mean divides by the host-side count.
        let count = t.iter().filter(|&&v| v != ignore_index).count();
        let dev_t = kernels::cuda::upload_i64(&g, &t)?;
        let (sum, dev_count) = (zeros(&g, DType::F32, &[])?, zeros(&g, DType::F32, &[])?);
        let lse = empty(&g, DType::F32, &[rows])?;
        let dt = dt_of("cross_entropy", &x)?;
        kernels::cuda::cross_entropy::cross_entropy_fwd(
            &g,
            dt,
            ptr(&sum),
            ptr(&dev_count),
            ptr(&lse),
            ptr(&x),
            dev_t.ptr(0),
            rows,
            cols,
            ignore_index,
        )?;
        let mean = super::scale(&sum, if count == 0 { 0.0 } else { 1.0 / count as f64 })?;
        return Ok((mean, CrossEntropySaved { lse, count }));
    }
    float_dispatch!("cross_entropy", x.dtype(), |T| {
        let mut lse = vec![T::zero(); rows];
        let (sum, count) = k::cross_entropy_fwd(&mut lse, x.data::<T>("cross_entropy")?, &t, rows, cols, ignore_index);
        let mean = if count == 0 { 0.0 } else { sum / count as f64 };
        let saved = CrossEntropySaved { lse: Tensor::from_vec(lse, &[rows])?, count };
        Ok((Tensor::from_vec(vec![<T as kernels::Real>::c(mean)], &[])?, saved))
    })
}

/// dlogits for upstream gradient `dloss` of the mean loss.
pub fn cross_entropy_bwd(
    dloss: f64,
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: i64,
    saved: &CrossEntropySaved,
) -> Result<Tensor> {
    let (rows, cols, t) = check_targets(logits, targets, ignore_index)?;
    let x = logits.contiguous();
    let scale = if saved.count == 0 { 0.0 } else { dloss / saved.count as f64 };
    if let Some(g) = op_gpu("cross_entropy_bwd", &[&x])? {
        expect_saved_f32("cross_entropy_bwd", "lse", &saved.lse, rows, x.device())?;
        let d = empty(&g, x.dtype(), x.shape())?;
        let dev_t = kernels::cuda::upload_i64(&g, &t)?;
        // [gradient of the mean, count] as the kernel reads them from device memory.
        let (dl, n) = if saved.count == 0 { (0.0f32, 1.0f32) } else { (dloss as f32, saved.count as f32) };
        let consts = Tensor::from_vec(vec![dl, n], &[2])?.to_device(x.device())?;
        let dt = dt_of("cross_entropy_bwd", &x)?;
        kernels::cuda::cross_entropy::cross_entropy_bwd(
            &g,
            dt,
            ptr(&d),
            ptr(&x),
            ptr(&saved.lse),
            dev_t.ptr(0),
            rows,
            cols,
            ignore_index,
            ptr(&consts),
            ptr(&consts).add_bytes(4),
        )?;
        return Ok(d);
    }
    float_dispatch!("cross_entropy_bwd", x.dtype(), |T| {
        let op = "cross_entropy_bwd";
        let mut d = vec![T::zero(); rows * cols];
        let s = <T as kernels::Real>::c(scale);
        k::cross_entropy_bwd(&mut d, x.data::<T>(op)?, saved.lse.data::<T>(op)?, &t, rows, cols, ignore_index, s);
        Tensor::from_vec(d, x.shape())
    })
}
