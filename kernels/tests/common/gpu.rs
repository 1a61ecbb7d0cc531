//! Device buffers for the GPU kernel tests: f32 or bf16 storage between runs of canaries, read
//! back only after checking that no kernel wrote outside its range.

use kernels::cuda::{download_f32, upload_f32, DevPtr, DeviceBuffer, Dt, Gpu};
use std::sync::Arc;

/// Elements of canary after every buffer, and before it unless asked otherwise.
pub const GUARD: usize = 8;
/// Exactly representable in f32 and bf16, and produced by no kernel.
pub const CANARY: f32 = -1.267_650_6e30; // -2^100

/// The values bf16 storage holds for `v` (round to nearest even); f32 keeps them.
pub fn round(dt: Dt, v: &[f32]) -> Vec<f32> {
    match dt {
        Dt::F32 => v.to_vec(),
        Dt::BF16 => v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect(),
    }
}

/// A device buffer of `dt` holding `init`, between runs of canaries: `lead` before (GUARD keeps
/// 16-byte alignment; GUARD + 1 breaks it), GUARD after.
pub struct Buf {
    buf: DeviceBuffer,
    dt: Dt,
    n: usize,
    lead: usize,
}

impl Buf {
    pub fn new(g: &Arc<Gpu>, dt: Dt, init: &[f32]) -> Buf {
        Buf::with_lead(g, dt, init, GUARD)
    }
    pub fn with_lead(g: &Arc<Gpu>, dt: Dt, init: &[f32], lead: usize) -> Buf {
        let mut v = vec![CANARY; lead + init.len() + GUARD];
        v[lead..lead + init.len()].copy_from_slice(init);
        Buf { buf: upload_f32(g, &v, dt).unwrap(), dt, n: init.len(), lead }
    }
    pub fn ptr(&self) -> DevPtr {
        self.buf.ptr(self.lead * self.dt.size())
    }
    /// The contents, after checking that no canary was overwritten.
    pub fn read(&self, what: &str) -> Vec<f32> {
        let all = download_f32(&self.buf, self.dt, 0, self.lead + self.n + GUARD).unwrap();
        for (i, &v) in all[..self.lead].iter().chain(&all[self.lead + self.n..]).enumerate() {
            assert!(v.to_bits() == CANARY.to_bits(), "{what}: guard element {i} overwritten with {v}");
        }
        all[self.lead..self.lead + self.n].to_vec()
    }
}
