//! The tape: recording during the forward pass, and the reverse sweep.

use crate::op::Op;
use crate::params::{ParamId, ParamStore};
use crate::profile;
use crate::trace;
use crate::var::Var;
use engine::{Error, Result, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;

pub(crate) struct Node {
    pub(crate) op: Op,
    /// Node ids of the inputs; None for constants (no gradient wanted).
    pub(crate) inputs: Vec<Option<usize>>,
    pub(crate) shape: Vec<usize>,
}

struct Inner {
    nodes: Vec<Node>,
    recording: bool,
}

/// An explicit tape of recorded ops. One tape per training step (or reuse it: `backward` empties it).
pub struct Tape {
    inner: RefCell<Inner>,
}

/// Gradients of the non-parameter leaves (inputs created with [`Tape::leaf`]).
#[derive(Debug, Default)]
pub struct Gradients {
    by_node: HashMap<usize, Tensor>,
}

impl Gradients {
    /// The gradient of a leaf, or None if the loss does not depend on it.
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        v.id().and_then(|id| self.by_node.get(&id))
    }
}

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl Tape {
    /// A recording tape.
    pub fn new() -> Tape {
        Tape { inner: RefCell::new(Inner { nodes: Vec::new(), recording: true }) }
    }

    /// A tape that records nothing: ops compute values only (inference).
    pub fn no_grad() -> Tape {
        Tape { inner: RefCell::new(Inner { nodes: Vec::new(), recording: false }) }
    }

    pub fn is_recording(&self) -> bool {
        self.inner.borrow().recording
    }

    /// Number of recorded nodes (0 after `backward`).
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A differentiable input; its gradient comes back in [`Gradients`].
    pub fn leaf(&self, value: Tensor) -> Var<'_> {
        let id = self.push(Op::Leaf { param: None }, vec![], value.shape());
        Var::new(self, id, value)
    }

    /// A value that needs no gradient (ids, masks, targets, frozen weights).
    pub fn constant(&self, value: Tensor) -> Var<'_> {
        Var::new(self, None, value)
    }

    /// A parameter from the store; its gradient is accumulated into the store by `backward`.
    pub fn param(&self, store: &ParamStore, id: ParamId) -> Var<'_> {
        let value = store.value(id).clone();
        let node = self.push(Op::Leaf { param: Some(id) }, vec![], value.shape());
        Var::new(self, node, value)
    }

    fn push(&self, op: Op, inputs: Vec<Option<usize>>, shape: &[usize]) -> Option<usize> {
        profile::lap(op.kind());
        let mut inner = self.inner.borrow_mut();
        if !inner.recording {
            return None;
        }
        inner.nodes.push(Node { op, inputs, shape: shape.to_vec() });
        Some(inner.nodes.len() - 1)
    }

    /// Records `op` producing `value` from `inputs`; records nothing when no input needs a gradient.
    pub(crate) fn record<'t>(&'t self, op: Op, inputs: &[&Var<'t>], value: Tensor) -> Var<'t> {
        let ids: Vec<Option<usize>> = inputs.iter().map(|v| v.id()).collect();
        if trace::enabled() {
            let inner = self.inner.borrow();
            let param = |id: Option<usize>| match id.map(|i| &inner.nodes[i].op) {
                Some(Op::Leaf { param }) => *param,
                _ => None,
            };
            let ins: Vec<(&Tensor, Option<ParamId>)> = inputs.iter().map(|v| (v.value(), param(v.id()))).collect();
            trace::record(&op, &ins, &value);
        }
        let id = if ids.iter().any(Option::is_some) {
            self.push(op, ids, value.shape())
        } else {
            profile::lap(op.kind());
            None
        };
        Var::new(self, id, value)
    }

    /// Back-propagates from the scalar `loss`: parameter gradients are ADDED to `store`, leaf
    /// gradients returned. Empties the tape, freeing every saved tensor as it goes.
    pub fn backward(&self, loss: &Var<'_>, store: &mut ParamStore) -> Result<Gradients> {
        if loss.value().numel() != 1 {
            return Err(Error::Shape(format!("backward: the loss must have one element, got {}", loss.value().dims())));
        }
        let seed = Tensor::full(1.0f64, loss.value().shape()).to_dtype(loss.value().dtype());
        self.backward_seeded(loss, seed, store)
    }

    /// Back-propagates `seed`, the gradient of some scalar with respect to `out` (same shape as
    /// `out`), exactly as [`Tape::backward`] does from a loss.
    pub(crate) fn backward_seeded(&self, loss: &Var<'_>, seed: Tensor, store: &mut ParamStore) -> Result<Gradients> {
        if seed.shape() != loss.value().shape() {
            return Err(Error::Shape(format!(
                "backward: seed {} does not match the output {}",
                seed.dims(),
                loss.value().dims()
            )));
        }
        let Some(root) = loss.id() else {
            return Err(Error::Invalid(
                "backward: the loss does not depend on any leaf or parameter (or the tape is no_grad)".into(),
            ));
        };
        let mut nodes = std::mem::take(&mut self.inner.borrow_mut().nodes);
        let mut grads: Vec<Option<Tensor>> = vec![None; nodes.len()];
        grads[root] = Some(seed.to_device(loss.value().device())?);
        let mut out = Gradients::default();
        nodes.truncate(root + 1); // ops recorded after the loss cannot influence it
        while let Some(node) = nodes.pop() {
            let i = nodes.len();
            let Some(g) = grads[i].take() else { continue };
            match node.op {
                Op::Leaf { param: Some(p) } => store.accumulate(p, &g)?,
                Op::Leaf { param: None } => {
                    out.by_node.insert(i, g);
                }
                op => {
                    let t0 = profile::enabled().then(std::time::Instant::now);
                    // A weight that already has a gradient (ALBERT: the same weight at every layer)
                    // gets this layer's contribution added by the gemm itself, with no extra pass.
                    let weight = match (&op, node.inputs.get(1)) {
                        (Op::MatMul { .. }, Some(&Some(j))) if grads[j].is_some() => Some(j),
                        _ => None,
                    };
                    let dins: Vec<Option<Tensor>> = match (weight, &op) {
                        (Some(j), Op::MatMul { a, b, trans_a, trans_b, bias }) => {
                            let acc = grads[j].as_mut().expect("checked above");
                            let (da, dbias) =
                                engine::ops::matmul_bwd_accumulate(&g, a, b, *trans_a, *trans_b, *bias, acc)
                                    .map_err(|e| context(e, op.name(), i))?;
                            let mut v = vec![Some(da), None];
                            v.extend(dbias.map(Some));
                            v
                        }
                        _ => op.backward(&g).map_err(|e| context(e, op.name(), i))?.into_iter().map(Some).collect(),
                    };
                    debug_assert_eq!(dins.len(), node.inputs.len(), "{}: gradient count", op.name());
                    for (input, d) in node.inputs.iter().zip(dins) {
                        let (Some(j), Some(d)) = (*input, d) else { continue };
                        debug_assert_eq!(d.shape(), nodes[j].shape.as_slice(), "{}: gradient shape", op.name());
                        match &mut grads[j] {
                            Some(acc) => acc.add_assign(&d)?,
                            slot @ None => *slot = Some(d),
                        }
                    }
                    // A checkpoint's inner tape has charged its own ops already.
                    if let (Some(t0), false) = (t0, matches!(op, Op::Checkpoint { .. })) {
                        profile::add_backward(op.kind(), t0.elapsed());
                    }
                }
            }
        }
        Ok(out)
    }
}

fn context(e: Error, op: &str, node: usize) -> Error {
    let p = |m: String| format!("backward of {op} (node {node}): {m}");
    match e {
        Error::Shape(m) => Error::Shape(p(m)),
        Error::DType(m) => Error::DType(p(m)),
        Error::Device(m) => Error::Device(p(m)),
        Error::Index(m) => Error::Index(p(m)),
        Error::Invalid(m) => Error::Invalid(p(m)),
    }
}
