//! What the ops of this crate need from a dfdx device: [`ImleDevice`], implemented for
//! `Cpu` and, with the `cuda` feature, for `Cuda`.
//!
//! MAP solvers run on the host (in parallel over rows with rayon). An op on a device
//! tensor therefore makes **one transfer each way per pass**: the forward pass copies θ to
//! the host and the solver's output back; the backward pass copies `∂L/∂z` to the host and
//! the estimated `∂L/∂θ` back, where a small kernel adds it into θ's gradient. The
//! relaxations (Gumbel-softmax, SoftSub, L2X) are compositions of dfdx ops and run on the
//! device itself; only their noise is drawn on the host (one upload per call).
//!
//! dfdx's `Tensor::to_device` drops the tape, so a model on `Cuda` must hand its Cuda
//! tensor to the op: the op keeps the tape and the gradient never leaves the graph.

use crate::error::{Error, Result};
use dfdx::tensor::{Cpu, CpuError, Storage};
use dfdx::tensor_ops::Device;

/// A dfdx device the estimators of this crate run on.
///
/// Implemented for `Cpu` and, with the `cuda` feature, `Cuda`; every op of the crate is
/// generic over it, so the same model code trains on either.
pub trait ImleDevice: Device<f32> {
    /// `acc += values`, where `acc` is a gradient buffer of this device and `values`
    /// (same length) lie on the host.
    fn add_from_host(acc: &mut <Self as Storage<f32>>::Vec, values: &[f32]) -> Result<()>;

    /// The device error handed to dfdx when one of our ops fails inside dfdx (a backward
    /// pass, a `Module::try_forward`); the real [`Error`] is kept in the op's
    /// [`crate::op::OpState`].
    fn op_failed() -> Self::Err;
}

impl ImleDevice for Cpu {
    fn add_from_host(acc: &mut <Self as Storage<f32>>::Vec, values: &[f32]) -> Result<()> {
        check_same_len(acc.len(), values.len())?;
        for (a, v) in acc.iter_mut().zip(values) {
            *a += v;
        }
        Ok(())
    }

    fn op_failed() -> CpuError {
        CpuError::WrongNumElements
    }
}

fn check_same_len(acc: usize, values: usize) -> Result<()> {
    if acc == values {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what: "input gradient buffer (is the input a broadcast view?)",
            expected: values,
            got: acc,
        })
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::{check_same_len, ImleDevice};
    use crate::error::{Error, Result};
    use cudarc::driver::{DeviceSlice, LaunchAsync, LaunchConfig};
    use dfdx::tensor::{CpuError, Cuda, CudaError, Storage};

    const MODULE: &str = "imle_add_from_host";
    const KERNEL: &str = "imle_add_into";
    const SOURCE: &str = r#"
extern "C" __global__ void imle_add_into(const size_t n, float *acc, const float *src) {
    size_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { acc[i] += src[i]; }
}
"#;

    impl ImleDevice for Cuda {
        fn add_from_host(acc: &mut <Self as Storage<f32>>::Vec, values: &[f32]) -> Result<()> {
            let n = values.len();
            check_same_len(acc.len(), n)?;
            if n == 0 {
                return Ok(());
            }
            let acc: &mut cudarc::driver::CudaSlice<f32> = acc;
            let dev = acc.device();
            if !dev.has_func(MODULE, KERNEL) {
                let ptx = cudarc::nvrtc::compile_ptx(SOURCE).map_err(Error::device)?;
                dev.load_ptx(ptx, MODULE, &[KERNEL])
                    .map_err(Error::device)?;
            }
            let add = dev
                .get_func(MODULE, KERNEL)
                .ok_or_else(|| Error::Device(format!("CUDA kernel {KERNEL} not loaded")))?;
            let src = dev.htod_sync_copy(values).map_err(Error::device)?;
            // SAFETY: the kernel reads `n` floats of `src` and writes `n` floats of `acc`,
            // both of which hold exactly `n` (checked above).
            unsafe { add.launch(LaunchConfig::for_num_elems(n as u32), (n, acc, &src)) }
                .map_err(Error::device)
        }

        fn op_failed() -> CudaError {
            CudaError::Cpu(CpuError::WrongNumElements)
        }
    }
}
