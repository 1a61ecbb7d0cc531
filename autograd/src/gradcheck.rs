//! Finite-difference gradient checking in f64, usable from any test.

use crate::{ParamStore, Tape, Var};
use engine::{DType, Error, Result, Tensor};

/// The worst disagreement found between the tape's gradient and central differences.
#[derive(Debug, Clone)]
pub struct GradCheck {
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    /// (input index, element index) of the worst element.
    pub worst: (usize, usize),
    pub checked: usize,
}

/// Checks d f / d inputs for a scalar function `f` built from `Var` ops.
///
/// Inputs are converted to f64 (so the f64 scalar-reference kernels run) and each element is
/// perturbed by +-eps. An element passes if |analytic - numeric| <= atol + rtol * |numeric|.
/// Returns the report, or an error naming the first failing input and element.
pub fn gradcheck<F>(f: F, inputs: &[Tensor], eps: f64, atol: f64, rtol: f64) -> Result<GradCheck>
where
    F: for<'t> Fn(&'t Tape, &[Var<'t>]) -> Result<Var<'t>>,
{
    let inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F64).contiguous()).collect();
    // analytic
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let out = f(&tape, &vars)?;
    let grads = tape.backward(&out, &mut ParamStore::new())?;
    let analytic: Vec<Vec<f64>> =
        vars.iter().map(|v| grads.get(v).map_or_else(|| vec![0.0; v.value().numel()], |g| g.to_vec_f64())).collect();
    // numeric
    let eval = |k: usize, data: &[f64]| -> Result<f64> {
        let tape = Tape::no_grad();
        let vars: Vec<Var> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v = if i == k { Tensor::from_vec(data.to_vec(), t.shape()).expect("shape") } else { t.clone() };
                tape.leaf(v)
            })
            .collect();
        f(&tape, &vars)?.value().item()
    };
    let mut report = GradCheck { max_abs_err: 0.0, max_rel_err: 0.0, worst: (0, 0), checked: 0 };
    for (k, t) in inputs.iter().enumerate() {
        let mut data = t.to_vec_f64();
        for i in 0..data.len() {
            let orig = data[i];
            data[i] = orig + eps;
            let up = eval(k, &data)?;
            data[i] = orig - eps;
            let down = eval(k, &data)?;
            data[i] = orig;
            let numeric = (up - down) / (2.0 * eps);
            let a = analytic[k][i];
            let abs = (a - numeric).abs();
            let rel = abs / numeric.abs().max(1e-12);
            if abs > report.max_abs_err {
                report.max_abs_err = abs;
                report.worst = (k, i);
            }
            report.max_rel_err = report.max_rel_err.max(if abs > atol { rel } else { 0.0 });
            report.checked += 1;
            if abs > atol + rtol * numeric.abs() {
                return Err(Error::Invalid(format!(
                    "gradcheck: input {k} {} element {i}: analytic {a:.9e} vs numeric {numeric:.9e} (|diff| {abs:.3e})",
                    t.dims()
                )));
            }
        }
    }
    Ok(report)
}
