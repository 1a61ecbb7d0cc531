//! Named parameters with persistent gradient buffers.

use engine::{Error, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub value: Tensor,
    /// Accumulated gradient (same shape as value); None until a backward touches it.
    pub grad: Option<Tensor>,
}

/// All trainable tensors of a model, in registration order.
#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    params: Vec<Param>,
}

impl ParamStore {
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    /// Registers a parameter; names must be unique.
    pub fn add(&mut self, name: &str, value: Tensor) -> Result<ParamId> {
        if self.params.iter().any(|p| p.name == name) {
            return Err(Error::Invalid(format!("parameter {name:?} is already registered")));
        }
        self.params.push(Param { name: name.to_string(), value, grad: None });
        Ok(ParamId(self.params.len() - 1))
    }

    pub fn get(&self, id: ParamId) -> &Param {
        &self.params[id.0]
    }

    pub fn value(&self, id: ParamId) -> &Tensor {
        &self.params[id.0].value
    }

    /// Replaces a value (e.g. after an optimizer step); the shape must stay the same.
    pub fn set_value(&mut self, id: ParamId, value: Tensor) -> Result<()> {
        let p = &mut self.params[id.0];
        if p.value.shape() != value.shape() {
            return Err(Error::Shape(format!(
                "parameter {}: new value {} vs {}",
                p.name,
                value.dims(),
                p.value.dims()
            )));
        }
        p.value = value;
        Ok(())
    }

    pub fn grad(&self, id: ParamId) -> Option<&Tensor> {
        self.params[id.0].grad.as_ref()
    }

    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.params.iter().position(|p| p.name == name).map(ParamId)
    }

    pub fn ids(&self) -> impl Iterator<Item = ParamId> {
        (0..self.params.len()).map(ParamId)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &Param)> {
        self.params.iter().enumerate().map(|(i, p)| (ParamId(i), p))
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.params.iter().map(|p| p.value.numel()).sum()
    }

    /// grad += g (the accumulation rule for parameters).
    pub fn accumulate(&mut self, id: ParamId, g: &Tensor) -> Result<()> {
        let p = &mut self.params[id.0];
        match &mut p.grad {
            Some(acc) => acc.add_assign(g),
            None => {
                if g.shape() != p.value.shape() {
                    return Err(Error::Shape(format!(
                        "parameter {}: gradient {} vs value {}",
                        p.name,
                        g.dims(),
                        p.value.dims()
                    )));
                }
                p.grad = Some(g.contiguous());
                Ok(())
            }
        }
    }

    /// Replaces a gradient (e.g. by the sum over data-parallel ranks); None clears it.
    pub fn set_grad(&mut self, id: ParamId, grad: Option<Tensor>) -> Result<()> {
        let p = &mut self.params[id.0];
        if let Some(g) = &grad {
            if g.shape() != p.value.shape() {
                return Err(Error::Shape(format!(
                    "parameter {}: gradient {} vs value {}",
                    p.name,
                    g.dims(),
                    p.value.dims()
                )));
            }
        }
        p.grad = grad;
        Ok(())
    }

    /// Moves every value (and gradient) to `device`.
    pub fn to_device(&mut self, device: engine::Device) -> Result<()> {
        for p in &mut self.params {
            p.value = p.value.to_device(device)?;
            if let Some(g) = &p.grad {
                p.grad = Some(g.to_device(device)?);
            }
        }
        Ok(())
    }

    /// The device of the parameters (the first one's; `to_device` keeps them together).
    pub fn device(&self) -> engine::Device {
        self.params.first().map_or(engine::Device::Cpu, |p| p.value.device())
    }

    /// Clears every gradient (before the next accumulation window).
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.grad = None;
        }
    }
}
