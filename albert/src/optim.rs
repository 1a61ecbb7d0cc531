//! Optimizers, gradient clipping and the learning-rate schedule over a [`ParamStore`].
//!
//! * [`AdamW`] follows `torch.optim.AdamW` step for step (decoupled weight decay applied first,
//!   bias corrections, eps added after the square root scaled by the bias correction), so a
//!   training trajectory can be compared with PyTorch's. It can leave parameters out of the weight
//!   decay by name ([`AdamW::with_exclusions`]; none by default, as in torch).
//! * [`Lamb`] is ALBERT's pretraining optimizer exactly as the official TF code
//!   (`lamb_optimizer.py`): Adam moments without bias correction, weight decay added to the update,
//!   and a per-tensor trust ratio `||w|| / ||update||`.
//! * [`clip_grad_norm`] is `tf.clip_by_global_norm`, [`Schedule`] the official warmup +
//!   polynomial-decay learning rate.
//! * The [`Optimizer`] trait lets a trainer drive either optimizer and save / restore its state as
//!   named tensors (`<param>.adam_m`, `<param>.adam_v`, `step`), so that a resumed run continues bit
//!   for bit; [`save_state_file`] / [`load_state_file`] put them in a safetensors file.
//!
//! Moments are f32 (one `Vec<f32>` pair per parameter, created on its first gradient and reused);
//! norms are accumulated in f64. Parameters are updated in parallel across tensors (rayon), each
//! tensor sequentially, so the result does not depend on the number of threads.

use crate::checkpoint::{parse_tensors, write_tensors};
use autograd::{ParamId, ParamStore};
use engine::{DType, Error, Result, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// Name patterns the official pretraining recipe leaves out of both weight decay and LAMB's trust
/// ratio (`exclude_from_weight_decay` in `run_pretraining.py`): every LayerNorm gamma/beta (HF
/// spells them `LayerNorm` and `full_layer_layer_norm`) and every bias.
pub const DEFAULT_EXCLUDE: [&str; 3] = ["LayerNorm", "layer_norm", "bias"];

/// Suffix of the first-moment state tensor of a parameter (the official slot name `adam_m`).
pub const M_SUFFIX: &str = ".adam_m";
/// Suffix of the second-moment state tensor of a parameter (`adam_v`).
pub const V_SUFFIX: &str = ".adam_v";
/// Name of the i64 scalar holding the number of steps taken.
pub const STEP_TENSOR: &str = "step";

/// Whether `name` contains any of `patterns` as a substring (the official code's `re.search` on
/// the variable name with these literal patterns).
pub fn is_excluded(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| name.contains(p.as_str()))
}

/// [`DEFAULT_EXCLUDE`] as owned strings.
pub fn default_exclude() -> Vec<String> {
    DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect()
}

// ====================================================================================== trait

/// What a trainer needs from an optimizer: a step at a given learning rate, and its state as named
/// tensors for checkpoints.
pub trait Optimizer {
    /// Updates every parameter that has a gradient, with learning rate `lr` (from the schedule).
    fn step(&mut self, store: &mut ParamStore, lr: f64) -> Result<()>;
    /// The state to checkpoint: `<param>.adam_m` and `<param>.adam_v` (f32, the parameter's shape)
    /// for every parameter that has state, plus `step` (i64 scalar).
    fn state_tensors(&self, store: &ParamStore) -> Vec<(String, Tensor)>;
    /// Restores what [`Optimizer::state_tensors`] returned. Names, dtypes and shapes are checked
    /// against `store` first; on any error the optimizer is left unchanged and the message names the
    /// offending tensor.
    fn load_state(&mut self, store: &ParamStore, tensors: &[(String, Tensor)]) -> std::result::Result<(), String>;
    /// A short identifier (`"adamw"`, `"lamb"`), stored in state files.
    fn name(&self) -> &'static str;
    /// Number of steps taken (restored by `load_state`).
    fn steps_taken(&self) -> u64;
}

// ====================================================================================== shared state

/// First and second moments of one parameter.
#[derive(Clone, Debug)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// Checks that every gradient has as many elements as its parameter, before any state changes.
fn check_grads(store: &ParamStore, who: &str) -> Result<()> {
    for (_, p) in store.iter() {
        if let Some(g) = &p.grad {
            if g.numel() != p.value.numel() {
                return Err(Error::Shape(format!(
                    "{who}: {} gradient {} values for {}",
                    p.name,
                    g.numel(),
                    p.value.dims()
                )));
            }
        }
    }
    Ok(())
}

/// Runs `update(name, param, grad, moments, out)` for every parameter with a gradient, in parallel
/// across tensors, then stores each `out` as the parameter's new value. `update` fills `out` (empty,
/// with capacity for the tensor) with the new values and returns the trust ratio it applied.
/// `ratios[i]` receives that ratio, or NaN for a parameter without gradient.
fn update_all<F>(
    store: &mut ParamStore,
    state: &mut Vec<Option<Moments>>,
    ratios: &mut Vec<f64>,
    update: F,
) -> Result<()>
where
    F: Fn(&str, &[f32], &[f32], &mut Moments, &mut Vec<f32>) -> f64 + Sync,
{
    state.resize_with(store.len(), || None);
    let shared: &ParamStore = store;
    let results: Vec<Option<(Tensor, f64)>> = state
        .par_iter_mut()
        .enumerate()
        .map(|(i, slot)| {
            let param = shared.get(ParamId(i));
            let grad = param.grad.as_ref()?;
            let w = param.value.f32_values();
            let g = grad.f32_values();
            let n = w.len();
            let moments = slot.get_or_insert_with(|| Moments { m: vec![0.0; n], v: vec![0.0; n] });
            let mut out = Vec::with_capacity(n);
            let ratio = update(&param.name, &w, &g, moments, &mut out);
            let t = Tensor::from_vec(out, param.value.shape()).expect("the update keeps the parameter's size");
            Some((t, ratio))
        })
        .collect();
    ratios.clear();
    ratios.resize(results.len(), f64::NAN);
    for (i, r) in results.into_iter().enumerate() {
        if let Some((t, ratio)) = r {
            ratios[i] = ratio;
            store.set_value(ParamId(i), t)?;
        }
    }
    Ok(())
}

/// `<param>.adam_m`, `<param>.adam_v` for every parameter with state, then `step` (host tensors
/// whichever device the moments live on).
fn moments_to_tensors(
    store: &ParamStore,
    state: &[Option<Moments>],
    device: &[Option<DeviceMoments>],
    step: u64,
) -> Vec<(String, Tensor)> {
    let mut out = Vec::with_capacity(2 * state.len() + 1);
    for (id, p) in store.iter() {
        if let Some(Some(d)) = device.get(id.0) {
            for (suffix, t) in [(M_SUFFIX, &d.m), (V_SUFFIX, &d.v)] {
                let host = t.to_device(engine::Device::Cpu).expect("device -> host copy of optimizer state");
                out.push((format!("{}{suffix}", p.name), host));
            }
            continue;
        }
        let Some(Some(mo)) = state.get(id.0) else { continue };
        // A state that does not fit the store (another model passed in) is written flat, so that
        // loading it reports the mismatch instead of this panicking.
        let shape = if mo.m.len() == p.value.numel() { p.value.shape().to_vec() } else { vec![mo.m.len()] };
        for (suffix, data) in [(M_SUFFIX, &mo.m), (V_SUFFIX, &mo.v)] {
            let t = Tensor::from_vec(data.clone(), &shape).expect("shape holds the state's length");
            out.push((format!("{}{suffix}", p.name), t));
        }
    }
    out.push((STEP_TENSOR.to_string(), Tensor::from_i64(vec![step as i64], &[]).expect("scalar")));
    out
}

/// Formats a shape as `[768,128]`.
fn dims(shape: &[usize]) -> String {
    let inner: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(","))
}

/// Validates a state tensor list against `store` and builds (step, per-parameter moments).
///
/// Rules: exactly one `step` (i64, one element, >= 0); every other name is `<param>.adam_m` or
/// `<param>.adam_v` of a parameter of `store`, f32, the parameter's shape, finite, at most once;
/// each parameter has both moments or neither (a parameter without state never had a gradient).
fn moments_from_tensors(
    who: &str,
    store: &ParamStore,
    tensors: &[(String, Tensor)],
) -> std::result::Result<(u64, Vec<Option<Moments>>), String> {
    let mut step = None;
    let mut m: Vec<Option<Vec<f32>>> = vec![None; store.len()];
    let mut v: Vec<Option<Vec<f32>>> = vec![None; store.len()];
    for (name, t) in tensors {
        if name == STEP_TENSOR {
            if step.is_some() {
                return Err(format!("{who} state: duplicate tensor {name}"));
            }
            if t.dtype() != DType::I64 || t.numel() != 1 {
                return Err(format!(
                    "{who} state: tensor {name} must be a single i64 value, found {} {}",
                    t.dtype(),
                    t.dims()
                ));
            }
            let s = t.ids("optimizer state").map_err(|e| format!("{who} state: tensor {name}: {e}"))?[0];
            if s < 0 {
                return Err(format!("{who} state: tensor {name} is negative ({s})"));
            }
            step = Some(s as u64);
            continue;
        }
        let (param_name, slot) = if let Some(p) = name.strip_suffix(M_SUFFIX) {
            (p, &mut m)
        } else if let Some(p) = name.strip_suffix(V_SUFFIX) {
            (p, &mut v)
        } else {
            return Err(format!(
                "{who} state: unexpected tensor {name} (expected <param>{M_SUFFIX}, <param>{V_SUFFIX} or {STEP_TENSOR})"
            ));
        };
        let id = store
            .find(param_name)
            .ok_or_else(|| format!("{who} state: tensor {name} is for {param_name}, which is not a model parameter"))?;
        let expected = store.value(id).shape();
        if t.shape() != expected {
            return Err(format!("{who} state: tensor {name}: expected shape {}, found {}", dims(expected), t.dims()));
        }
        if t.dtype() != DType::F32 {
            return Err(format!("{who} state: tensor {name} has dtype {}, expected f32", t.dtype()));
        }
        let data = t.to_vec_f32();
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(format!("{who} state: tensor {name} holds a non-finite value ({}) at index {i}", data[i]));
        }
        if slot[id.0].replace(data).is_some() {
            return Err(format!("{who} state: duplicate tensor {name}"));
        }
    }
    let step = step.ok_or_else(|| format!("{who} state: missing tensor {STEP_TENSOR}"))?;
    let mut state = Vec::with_capacity(store.len());
    for (id, p) in store.iter() {
        state.push(match (m[id.0].take(), v[id.0].take()) {
            (Some(m), Some(v)) => Some(Moments { m, v }),
            (None, None) => None,
            (Some(_), None) => return Err(format!("{who} state: missing tensor {}{V_SUFFIX}", p.name)),
            (None, Some(_)) => return Err(format!("{who} state: missing tensor {}{M_SUFFIX}", p.name)),
        });
    }
    Ok((step, state))
}

// ====================================================================================== GPU

/// First and second moments of one parameter in device memory (f32, the parameter's shape).
#[derive(Clone, Debug)]
struct DeviceMoments {
    m: Tensor,
    v: Tensor,
}

/// The multi-tensor descriptors of a GPU step: every parameter with a gradient, with its moments
/// (moved up from `host` after a `load_state`, or zero-initialised on its first gradient).
/// Parameters are updated in place, so their buffers must be dense; `decay_of(name)` is the
/// tensor's weight decay and `adapt_of(name)` whether LAMB's trust ratio applies.
fn device_descriptors(
    store: &ParamStore,
    host: &mut Vec<Option<Moments>>,
    device: &mut Vec<Option<DeviceMoments>>,
    decay_of: impl Fn(&str) -> f64,
    adapt_of: impl Fn(&str) -> bool,
) -> Result<Vec<kernels::cuda::optim::OptTensor>> {
    host.resize_with(store.len(), || None);
    device.resize_with(store.len(), || None);
    let mut out = Vec::new();
    for (id, p) in store.iter() {
        let Some(grad) = &p.grad else { continue };
        let dev = p.value.device();
        let slot = &mut device[id.0];
        if slot.is_none() {
            let shape = p.value.shape();
            *slot = Some(match host[id.0].take() {
                Some(mo) => DeviceMoments {
                    m: Tensor::from_vec(mo.m, shape)?.to_device(dev)?,
                    v: Tensor::from_vec(mo.v, shape)?.to_device(dev)?,
                },
                None => DeviceMoments {
                    m: Tensor::zeros_on(shape, DType::F32, dev)?,
                    v: Tensor::zeros_on(shape, DType::F32, dev)?,
                },
            });
        }
        let mo = slot.as_ref().expect("just filled");
        let ptr = |t: &Tensor, what: &str| {
            if t.dtype() != DType::F32 {
                return Err(Error::DType(format!(
                    "{}: the GPU optimizers update f32 {what}, found {}",
                    p.name,
                    t.dtype()
                )));
            }
            t.cuda_ptr().ok_or_else(|| Error::Device(format!("{}: {what} is not a dense device tensor", p.name)))
        };
        out.push(kernels::cuda::optim::OptTensor {
            param: ptr(&p.value, "the parameter")?,
            grad: ptr(grad, "the gradient")?,
            m: ptr(&mo.m, "the first moment")?,
            v: ptr(&mo.v, "the second moment")?,
            numel: p.value.numel(),
            weight_decay: decay_of(&p.name),
            use_trust_ratio: adapt_of(&p.name),
        });
    }
    Ok(out)
}

// ====================================================================================== AdamW

/// `torch.optim.AdamW` (amsgrad off). Per parameter with gradient g, t the 1-based step:
///
/// ```text
/// w *= 1 - lr * wd                       (skipped for names matching `exclude`)
/// m  = m + (1 - b1) (g - m)              (torch's lerp; = b1 m + (1 - b1) g)
/// v  = b2 v + (1 - b2) g^2
/// w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// ```
///
/// all in f32 in this order, as PyTorch's single-tensor implementation; 1 - b1 and 1 - b2 are
/// computed in f64 and rounded once, as Python floats become f32 there.
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Parameters whose name contains one of these get no weight decay. Empty by default (torch
    /// decays everything); the pretraining recipe uses [`DEFAULT_EXCLUDE`].
    pub exclude: Vec<String>,
    step: u64,
    /// (m, v) per parameter, created on its first gradient.
    state: Vec<Option<Moments>>,
    /// The same in device memory when the parameters are on a GPU.
    device: Vec<Option<DeviceMoments>>,
    /// Scratch for `update_all` (AdamW has no trust ratio; always 1 or NaN).
    ratios: Vec<f64>,
}

impl AdamW {
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> AdamW {
        AdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            exclude: Vec::new(),
            step: 0,
            state: Vec::new(),
            device: Vec::new(),
            ratios: Vec::new(),
        }
    }

    /// Leaves parameters whose name contains any of `patterns` out of the weight decay.
    pub fn with_exclusions<S: AsRef<str>>(mut self, patterns: &[S]) -> AdamW {
        self.exclude = patterns.iter().map(|p| p.as_ref().to_string()).collect();
        self
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// One update at the constant learning rate `self.lr` (see [`AdamW::step_with_lr`]).
    pub fn step(&mut self, store: &mut ParamStore) -> Result<()> {
        self.step_with_lr(store, self.lr)
    }

    /// One update of every parameter that has a gradient (parameters without one are skipped, like
    /// PyTorch's `p.grad is None`), at learning rate `lr` (e.g. from a [`Schedule`]).
    pub fn step_with_lr(&mut self, store: &mut ParamStore, lr: f64) -> Result<()> {
        check_grads(store, "AdamW")?;
        if let engine::Device::Cuda(_) = store.device() {
            let exclude = &self.exclude;
            let wd = self.weight_decay;
            let decay_of = |name: &str| if is_excluded(name, exclude) { 0.0 } else { wd };
            let tensors = device_descriptors(store, &mut self.state, &mut self.device, decay_of, |_| true)?;
            self.step += 1;
            let hp = kernels::cuda::optim::AdamWHp {
                lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                step: self.step as i32,
                grad_scale: 1.0,
            };
            kernels::cuda::optim::adamw_step(&*store.device().gpu()?, &tensors, &hp)?;
            return Ok(());
        }
        self.step += 1;
        let t = self.step as i32;
        let (b2, c1, c2) = (self.beta2 as f32, (1.0 - self.beta1) as f32, (1.0 - self.beta2) as f32);
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = ((1.0 - self.beta2.powi(t)).sqrt()) as f32;
        let step_size = (lr / bc1) as f32;
        let eps = self.eps as f32;
        let decay = (1.0 - lr * self.weight_decay) as f32;
        let exclude = &self.exclude;
        update_all(store, &mut self.state, &mut self.ratios, |name, w, g, mo, out| {
            let decay = if is_excluded(name, exclude) { 1.0 } else { decay };
            for (((&w, &g), m), v) in w.iter().zip(g).zip(mo.m.iter_mut()).zip(mo.v.iter_mut()) {
                let mut w = w;
                w *= decay;
                *m += c1 * (g - *m);
                *v = b2 * *v + c2 * g * g;
                let denom = v.sqrt() / bc2_sqrt + eps;
                w -= step_size * *m / denom;
                out.push(w);
            }
            1.0
        })
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, store: &mut ParamStore, lr: f64) -> Result<()> {
        self.step_with_lr(store, lr)
    }

    fn state_tensors(&self, store: &ParamStore) -> Vec<(String, Tensor)> {
        moments_to_tensors(store, &self.state, &self.device, self.step)
    }

    fn load_state(&mut self, store: &ParamStore, tensors: &[(String, Tensor)]) -> std::result::Result<(), String> {
        let (step, state) = moments_from_tensors("adamw", store, tensors)?;
        self.step = step;
        self.state = state;
        self.device.clear();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "adamw"
    }

    fn steps_taken(&self) -> u64 {
        self.step
    }
}

// ====================================================================================== LAMB

/// LAMB as in the official ALBERT code (`lamb_optimizer.py`). Per parameter w with (clipped)
/// gradient g:
///
/// ```text
/// m = b1 m + (1 - b1) g
/// v = b2 v + (1 - b2) g^2
/// u = m / (sqrt(v) + eps)                              no bias correction
/// u += wd * w                                          unless the name matches `exclude`
/// r = ||w||_2 / ||u||_2 over the whole tensor          1 if either norm is 0, or if excluded
/// w -= r * lr * u
/// ```
///
/// m, v and u are f32 as in TF (`1 - beta` rounded from f64); the norms are f64 sums, and `w - r*lr*u` is formed in f64 and
/// rounded once. The ratio is not clipped. The learning rate comes with each step (from a
/// [`Schedule`]); the official recipe is [`Lamb::official`] with [`clip_grad_norm`] at 1.0 first.
pub struct Lamb {
    /// Peak learning rate (what a [`Schedule`] is built from); [`Lamb::step`] uses the lr it is
    /// given, not this.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Parameters whose name contains one of these get neither weight decay nor the trust ratio
    /// (the official `exclude_from_weight_decay`, which `exclude_from_layer_adaptation` defaults
    /// to). Default [`DEFAULT_EXCLUDE`].
    pub exclude: Vec<String>,
    step: u64,
    state: Vec<Option<Moments>>,
    /// The moments in device memory when the parameters are on a GPU.
    device: Vec<Option<DeviceMoments>>,
    /// Trust ratio applied to each parameter (by id) in the last step; NaN if it had no gradient.
    /// Not filled by GPU steps (the ratios stay on the device).
    ratios: Vec<f64>,
}

impl Lamb {
    /// LAMB with the given hyper-parameters and the default exclusions ([`DEFAULT_EXCLUDE`]).
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Lamb {
        Lamb {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            exclude: default_exclude(),
            step: 0,
            state: Vec::new(),
            device: Vec::new(),
            ratios: Vec::new(),
        }
    }

    /// The pretraining hyper-parameters of `run_pretraining.py`: b1 0.9, b2 0.999, eps 1e-6,
    /// weight decay 0.01, LayerNorm and biases excluded.
    pub fn official(lr: f64) -> Lamb {
        Lamb::new(lr, 0.9, 0.999, 1e-6, 0.01)
    }

    /// Replaces the exclusion patterns.
    pub fn with_exclusions<S: AsRef<str>>(mut self, patterns: &[S]) -> Lamb {
        self.exclude = patterns.iter().map(|p| p.as_ref().to_string()).collect();
        self
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The trust ratio applied to each parameter (indexed by `ParamId.0`) in the last step: 1.0
    /// for excluded parameters and zero norms, NaN for parameters that had no gradient.
    pub fn trust_ratios(&self) -> &[f64] {
        &self.ratios
    }

    /// One update of every parameter that has a gradient, at learning rate `lr`.
    pub fn step(&mut self, store: &mut ParamStore, lr: f64) -> Result<()> {
        check_grads(store, "LAMB")?;
        if let engine::Device::Cuda(_) = store.device() {
            let exclude = &self.exclude;
            let wd = self.weight_decay;
            let decay_of = |name: &str| if is_excluded(name, exclude) { 0.0 } else { wd };
            let adapt_of = |name: &str| !is_excluded(name, exclude);
            let tensors = device_descriptors(store, &mut self.state, &mut self.device, decay_of, adapt_of)?;
            self.step += 1;
            let hp = kernels::cuda::optim::LambHp {
                lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                grad_scale: 1.0,
            };
            kernels::cuda::optim::lamb_step(&*store.device().gpu()?, &tensors, &hp)?;
            self.ratios.clear();
            return Ok(());
        }
        self.step += 1;
        // As TF with Python-float hyper-parameters: 1 - beta is formed in f64, then rounded to f32
        // (1 - 0.999_f32 would be 0.0010000467, 5e-5 off).
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let (c1, c2) = ((1.0 - self.beta1) as f32, (1.0 - self.beta2) as f32);
        let (eps, wd) = (self.eps as f32, self.weight_decay as f32);
        let exclude = &self.exclude;
        update_all(store, &mut self.state, &mut self.ratios, |name, w, g, mo, out| {
            let adapt = !is_excluded(name, exclude);
            let (mut w_sq, mut u_sq) = (0f64, 0f64);
            // pass 1: moments, the update u (kept in `out`) and both squared norms
            for (((&w, &g), m), v) in w.iter().zip(g).zip(mo.m.iter_mut()).zip(mo.v.iter_mut()) {
                *m = b1 * *m + c1 * g;
                *v = b2 * *v + c2 * (g * g);
                let mut u = *m / (v.sqrt() + eps);
                if adapt {
                    u += wd * w;
                }
                w_sq += f64::from(w) * f64::from(w);
                u_sq += f64::from(u) * f64::from(u);
                out.push(u);
            }
            let ratio = if adapt {
                let (w_norm, u_norm) = (w_sq.sqrt(), u_sq.sqrt());
                if w_norm > 0.0 && u_norm > 0.0 {
                    w_norm / u_norm
                } else {
                    1.0
                }
            } else {
                1.0
            };
            // pass 2: w - r * lr * u, in place of u
            let scale = ratio * lr;
            for (o, &w) in out.iter_mut().zip(w) {
                *o = (f64::from(w) - scale * f64::from(*o)) as f32;
            }
            ratio
        })
    }
}

impl Optimizer for Lamb {
    fn step(&mut self, store: &mut ParamStore, lr: f64) -> Result<()> {
        Lamb::step(self, store, lr)
    }

    fn state_tensors(&self, store: &ParamStore) -> Vec<(String, Tensor)> {
        moments_to_tensors(store, &self.state, &self.device, self.step)
    }

    fn load_state(&mut self, store: &ParamStore, tensors: &[(String, Tensor)]) -> std::result::Result<(), String> {
        let (step, state) = moments_from_tensors("lamb", store, tensors)?;
        self.step = step;
        self.state = state;
        self.device.clear();
        self.ratios.clear();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "lamb"
    }

    fn steps_taken(&self) -> u64 {
        self.step
    }
}

// ====================================================================================== clipping

/// Global-norm clipping as `tf.clip_by_global_norm`: with `norm = sqrt(sum over all gradients of
/// g^2)` (accumulated in f64), every gradient is multiplied by `max_norm / norm` when
/// `norm > max_norm`. Returns the norm before clipping. Parameters without a gradient are left
/// alone. A non-finite norm is returned without touching the gradients (TF would turn them all
/// into NaN); the caller should skip that step.
pub fn clip_grad_norm(store: &mut ParamStore, max_norm: f64) -> f64 {
    let grads: Vec<(ParamId, Tensor)> = store.iter().filter_map(|(id, p)| p.grad.clone().map(|g| (id, g))).collect();
    let on_gpu = store.device().is_cuda();
    let partial: Vec<f64> = if on_gpu {
        // One f32 sum per tensor on the device; the total is formed in f64 here.
        grads.iter().map(|(_, g)| engine::ops::sum_squares(g).unwrap_or(f64::NAN)).collect()
    } else {
        grads
            .par_iter()
            .map(|(_, g)| g.f32_values().iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
            .collect()
    };
    let norm = partial.iter().sum::<f64>().sqrt();
    if !(norm.is_finite() && norm > max_norm) {
        return norm;
    }
    let scale = (max_norm / norm) as f32;
    let scaled: Vec<(ParamId, Tensor)> = if on_gpu {
        let s = f64::from(scale);
        grads.iter().map(|(id, g)| (*id, engine::ops::scale(g, s).expect("a device gradient scales"))).collect()
    } else {
        grads
            .par_iter()
            .map(|(id, g)| {
                let data: Vec<f32> = g.f32_values().iter().map(|&x| x * scale).collect();
                (*id, Tensor::from_vec(data, g.shape()).expect("same size as the gradient"))
            })
            .collect()
    };
    // The store only adds into gradients, so clear them all and add the scaled ones back.
    store.zero_grad();
    for (id, g) in scaled {
        store.accumulate(id, &g).expect("a gradient keeps its parameter's shape");
    }
    norm
}

// ====================================================================================== schedule

/// The official learning-rate schedule (`optimization.py` `create_optimizer`): linear warmup from
/// 0, then polynomial decay to 0 measured from step 0 (not from the end of the warmup):
///
/// ```text
/// lr(s) = peak * s / warmup                               if s < warmup
///       = peak * (1 - min(s, total) / total) ^ power      otherwise
/// ```
///
/// So the decay continues where the warmup ends only approximately: for the paper's 0.00176 /
/// 3125 / 125000, lr(3125) = 0.00176 * (1 - 3125/125000). `total_steps == 0` means no decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub peak_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub power: f64,
}

impl Schedule {
    /// Warmup + linear decay (power 1, the official `poly_power`).
    pub fn new(peak_lr: f64, warmup_steps: u64, total_steps: u64) -> Schedule {
        Schedule { peak_lr, warmup_steps, total_steps, power: 1.0 }
    }

    /// ALBERT's pretraining schedule: peak 0.00176, 3125 warmup steps, 125000 steps, power 1.
    pub fn albert_pretraining() -> Schedule {
        Schedule::new(0.00176, 3125, 125_000)
    }

    /// The learning rate for the update made at global step `step` (0-based, as TF's
    /// `global_step` before it is incremented).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps as f64;
        }
        if self.total_steps == 0 {
            return self.peak_lr;
        }
        let done = step.min(self.total_steps) as f64 / self.total_steps as f64;
        self.peak_lr * (1.0 - done).powf(self.power)
    }
}

// ====================================================================================== files

/// Metadata key naming the optimizer in a state file.
const META_OPTIMIZER: &str = "optimizer";

/// Writes `opt.state_tensors(store)` to a safetensors file (atomically), with the optimizer's
/// name in the metadata so that [`load_state_file`] refuses another optimizer's state.
pub fn save_state_file(opt: &dyn Optimizer, store: &ParamStore, path: &Path) -> std::result::Result<(), String> {
    let meta = HashMap::from([
        (META_OPTIMIZER.to_string(), opt.name().to_string()),
        ("steps_taken".to_string(), opt.steps_taken().to_string()),
    ]);
    write_tensors(path, &opt.state_tensors(store), Some(meta)).map_err(|e| e.to_string())
}

/// Reads a file written by [`save_state_file`] into `opt`. Errors (unreadable or corrupt file,
/// another optimizer's state, unknown / missing / misshapen tensors) name the file and the tensor;
/// `opt` is unchanged on error.
pub fn load_state_file(opt: &mut dyn Optimizer, store: &ParamStore, path: &Path) -> std::result::Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let tensors = parse_tensors(&bytes, path).map_err(|e| e.to_string())?;
    // parse_tensors accepted the header, so this succeeds; the fallback only guards the unlikely.
    let saved = safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().and_then(|m| m.get(META_OPTIMIZER).cloned()));
    match saved {
        Some(name) if name == opt.name() => {}
        Some(name) => {
            return Err(format!("{}: optimizer state of {name}, cannot load it into {}", path.display(), opt.name()))
        }
        None => return Err(format!("{}: no \"{META_OPTIMIZER}\" entry in the metadata", path.display())),
    }
    opt.load_state(store, &tensors).map_err(|e| format!("{}: {e}", path.display()))
}
