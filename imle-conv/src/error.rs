//! The error type of the functional ops and `try_forward_checked` methods.

use dfdx::tensor::CpuError;

/// Why a convolution, pooling or batch-norm call was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConvError {
    /// The kernel does not fit in the (padded) input along `axis`.
    #[error(
        "kernel size {kernel} is larger than the padded input size {padded} along the {axis} axis"
    )]
    KernelTooLarge {
        /// "height", "width" or "length".
        axis: &'static str,
        /// Kernel extent along the axis.
        kernel: usize,
        /// Input size plus padding along the axis.
        padded: usize,
    },
    /// A stride of zero.
    #[error("stride must be at least 1")]
    ZeroStride,
    /// Max pooling with padding larger than half the kernel (a window could be all padding).
    #[error("max-pool padding {padding} exceeds half the kernel size {kernel}")]
    PaddingTooLarge {
        /// Padding requested.
        padding: usize,
        /// Kernel size.
        kernel: usize,
    },
    /// Adaptive pooling needs the input size to be a positive multiple of the output size.
    #[error("input {axis} size {input} is not a positive multiple of the output size {output}")]
    NotAMultiple {
        /// "height" or "width".
        axis: &'static str,
        /// Input size.
        input: usize,
        /// Requested output size.
        output: usize,
    },
    /// Pooling or normalising over an empty set (e.g. a zero-sized batch or spatial axis).
    #[error("cannot reduce over an empty {0}")]
    Empty(&'static str),
    /// The device failed (e.g. out of memory).
    #[error(transparent)]
    Device(#[from] CpuError),
}

/// Used by `Module::try_forward`, whose error type must be dfdx's `CpuError` so that our
/// layers compose with dfdx's in tuples: device errors are returned, bad geometry panics
/// with the message of [`ConvError`] (as dfdx panics on mismatched runtime shapes).
pub(crate) fn or_panic<T>(r: Result<T, ConvError>) -> Result<T, CpuError> {
    match r {
        Ok(t) => Ok(t),
        Err(ConvError::Device(e)) => Err(e),
        Err(e) => panic!("imle-conv: {e}"),
    }
}
