//! Optimizers over a `ParamStore`.
//!
//! `AdamW` follows `torch.optim.AdamW` step for step (decoupled weight decay applied first, bias
//! corrections, eps added after the square root scaled by the bias correction), so a training
//! trajectory can be compared with PyTorch's. LAMB (ALBERT's pretraining optimizer) arrives with
//! the pretraining work.

use autograd::{ParamId, ParamStore};
use engine::{Error, Result, Tensor};

pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    step: u64,
    /// (m, v) per parameter, created on the first step.
    state: Vec<Option<(Vec<f32>, Vec<f32>)>>,
}

impl AdamW {
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> AdamW {
        AdamW { lr, beta1, beta2, eps, weight_decay, step: 0, state: Vec::new() }
    }

    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// One update of every parameter that has a gradient (parameters without one are skipped,
    /// like PyTorch's `p.grad is None`).
    pub fn step(&mut self, store: &mut ParamStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = (self.lr / bc1) as f32;
        let decay = (1.0 - self.lr * self.weight_decay) as f32;
        self.state.resize_with(store.len(), || None);
        let ids: Vec<ParamId> = store.ids().collect();
        for id in ids {
            let Some(g) = store.grad(id) else { continue };
            let g = g.to_vec_f32();
            let p = store.value(id);
            if p.numel() != g.len() {
                return Err(Error::Shape(format!(
                    "AdamW: {} gradient {} values for {}",
                    store.get(id).name,
                    g.len(),
                    p.dims()
                )));
            }
            let mut w = p.to_vec_f32();
            let (m, v) = self.state[id.0].get_or_insert_with(|| (vec![0.0; w.len()], vec![0.0; w.len()]));
            for i in 0..w.len() {
                w[i] *= decay;
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let denom = v[i].sqrt() / bc2_sqrt as f32 + self.eps as f32;
                w[i] -= step_size * m[i] / denom;
            }
            let shape = p.shape().to_vec();
            store.set_value(id, Tensor::from_vec(w, &shape)?)?;
        }
        Ok(())
    }
}
