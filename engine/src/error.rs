//! One error type for the engine. Messages name the op and the offending shapes, dtypes or values,
//! e.g. `matmul: lhs [8,128,768] and rhs [512,768]: inner dimensions 768 vs 512`.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Incompatible or invalid shapes.
    Shape(String),
    /// An op got a dtype it does not support.
    DType(String),
    /// An op got tensors on different devices, or an unavailable device.
    Device(String),
    /// An index (token id, target, axis) out of range.
    Index(String),
    /// Any other invalid argument.
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape(m) | Error::DType(m) | Error::Device(m) | Error::Index(m) | Error::Invalid(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for Error {}

/// Formats a shape as `[8,128,768]` for error messages.
pub(crate) fn dims(shape: &[usize]) -> String {
    let inner: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", inner.join(","))
}

impl From<kernels::cuda::CudaError> for Error {
    fn from(e: kernels::cuda::CudaError) -> Error {
        Error::Device(e.0)
    }
}
