use crate::{Error, Result};
use kernels::cuda::Gpu;
use std::fmt;
use std::sync::Arc;

/// Where a tensor's storage lives: host memory, or CUDA device n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// Fails with a clear message for devices this machine cannot use (no driver, no such GPU).
    pub fn check_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Cuda(_) => self.gpu().map(|_| ()),
        }
    }

    /// The opened CUDA device (an error for the CPU).
    pub fn gpu(self) -> Result<Arc<Gpu>> {
        match self {
            Device::Cpu => Err(Error::Device("the CPU is not a CUDA device".into())),
            Device::Cuda(i) => Ok(kernels::cuda::gpu(i)?),
        }
    }

    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// Parses `cpu`, `cuda` (= cuda:0) or `cuda:N`.
    pub fn parse(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Ok(Device::Cuda(n)),
                None => Err(Error::Invalid(format!("device {s:?}: expected cpu, cuda or cuda:N"))),
            },
        }
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Device> {
        Device::parse(s)
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
