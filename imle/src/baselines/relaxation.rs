//! What the relaxations (Gumbel-softmax, SoftSub, L2X) share: their saved state, the
//! slice-level forward and backward passes run on the `Cpu`, the [`Estimator`]
//! implementation written once (`relaxation_estimator!`) and the noise upload.

use super::checks::{check_noise_len, check_rows, check_upstream};
use crate::device::ImleDevice;
use crate::error::{Error, Result};
#[allow(unused_imports)] // for the docs
use crate::estimator::Estimator;
use dfdx::shapes::Shape;
use dfdx::tensor::{Cpu, Tensor, TensorFromVec, Trace};
use dfdx::tensor_ops::{Backward, SumTo, TryMul};

/// What a relaxation's slice-level backward pass needs: θ, its noise and the row length.
#[derive(Debug, Clone)]
pub struct RelaxationSaved {
    theta: Vec<f32>,
    noise: Vec<f32>,
    m: usize,
}

/// The slice-level forward pass of a relaxation: `relax(θ, noise)` on the `Cpu`.
pub(crate) fn relaxation_forward<F>(
    theta: &[f32],
    m: usize,
    noise: Vec<f32>,
    relax: F,
) -> Result<(Vec<f32>, RelaxationSaved)>
where
    F: FnOnce(
        Tensor<(usize, usize), f32, Cpu>,
        Vec<f32>,
    ) -> Result<Tensor<(usize, usize), f32, Cpu>>,
{
    check_rows(theta, m)?;
    let t = Cpu::default().tensor_from_vec(theta.to_vec(), (theta.len() / m, m));
    let y = relax(t, noise.clone())?;
    let saved = RelaxationSaved {
        theta: theta.to_vec(),
        noise,
        m,
    };
    Ok((y.as_vec(), saved))
}

/// The slice-level backward pass of a relaxation: the vector-Jacobian product
/// `(∂y/∂θ)ᵀ·g` that dfdx computes for `y = relax(θ, noise)` on the `Cpu`.
pub(crate) fn relaxation_backward<F>(
    saved: &RelaxationSaved,
    grad: &[f32],
    relax: F,
) -> Result<Vec<f32>>
where
    F: FnOnce(
        Tensor<(usize, usize), f32, Cpu, dfdx::tensor::OwnedTape<f32, Cpu>>,
        Vec<f32>,
    ) -> Result<Tensor<(usize, usize), f32, Cpu, dfdx::tensor::OwnedTape<f32, Cpu>>>,
{
    check_upstream(grad, saved.theta.len())?;
    let dev = Cpu::default();
    let shape = (saved.theta.len() / saved.m, saved.m);
    let t = dev.tensor_from_vec(saved.theta.clone(), shape);
    let y = relax(t.leaky_trace(), saved.noise.clone())?;
    let g = dev.tensor_from_vec(grad.to_vec(), shape);
    let grads = y
        .try_mul(g)
        .map_err(Error::device)?
        .try_sum::<(), _>()
        .map_err(Error::device)?
        .try_backward()
        .map_err(Error::device)?;
    Ok(grads.get(&t).as_vec())
}

/// Implements [`Estimator`] for a relaxation with a `state: OpState` field,
/// `fn draw_noise(&self, n)` (the noise for `n` entries of θ, from the next seed) and the
/// generic `fn apply_with_noise(θ, noise)`; `apply` runs `apply_with_noise` on θ's own
/// device.
macro_rules! relaxation_estimator {
    ($ty:ty) => {
        impl $crate::estimator::Estimator for $ty {
            type Saved = $crate::baselines::RelaxationSaved;

            fn forward(&self, theta: &[f32], m: usize) -> $crate::Result<(Vec<f32>, Self::Saved)> {
                let noise = self.draw_noise(theta.len());
                $crate::baselines::relaxation_forward(theta, m, noise, |t, n| {
                    self.apply_with_noise(t, n)
                })
            }

            fn backward(&self, saved: &Self::Saved, grad: &[f32]) -> $crate::Result<Vec<f32>> {
                $crate::baselines::relaxation_backward(saved, grad, |t, n| {
                    self.apply_with_noise(t, n)
                })
            }

            fn state(&self) -> &$crate::op::OpState {
                &self.state
            }

            fn state_mut(&mut self) -> &mut $crate::op::OpState {
                &mut self.state
            }

            fn apply<
                B: dfdx::shapes::Dim,
                M: dfdx::shapes::Dim,
                D: $crate::device::ImleDevice,
                T: dfdx::tensor::Tape<f32, D>,
            >(
                &self,
                theta: dfdx::tensor::Tensor<(B, M), f32, D, T>,
            ) -> $crate::Result<dfdx::tensor::Tensor<(B, M), f32, D, T>> {
                use dfdx::shapes::{HasShape, Shape};
                let noise = self.draw_noise(theta.shape().num_elements());
                self.apply_with_noise(theta, noise)
            }
        }
    };
}
pub(crate) use relaxation_estimator;

/// Uploads host noise (row-major, `shape`) to θ's device.
pub(crate) fn noise_tensor<S: Shape, S2: Shape, D: ImleDevice, T>(
    theta: &Tensor<S, f32, D, T>,
    noise: Vec<f32>,
    shape: S2,
) -> Result<Tensor<S2, f32, D>> {
    check_noise_len(&noise, shape.num_elements())?;
    theta
        .device()
        .try_tensor_from_vec(noise, shape)
        .map_err(Error::device)
}
