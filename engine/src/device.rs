use crate::{Error, Result};
use std::fmt;

/// Where a tensor's storage lives. Only the CPU backend exists so far; `Cuda` is named so that
/// every dispatch site already has to say what it does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// Fails with a clear message for devices this build cannot use.
    pub fn check_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(i) => Err(Error::Device(format!(
                "device cuda:{i}: the CUDA backend is not part of this build yet (CPU only)"
            ))),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
