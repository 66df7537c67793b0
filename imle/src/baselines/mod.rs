//! The baseline gradient estimators of the paper's comparisons, as dfdx ops.
//!
//! | estimator | type | original paper |
//! |---|---|---|
//! | straight-through (STE) | [`Ste`] | Bengio, Léonard & Courville 2013, *Estimating or propagating gradients through stochastic neurons* |
//! | score function (SFE, REINFORCE) | [`crate::loss::ScoreFunction`] | Williams 1992, *Simple statistical gradient-following algorithms* |
//! | Gumbel-softmax / Concrete | [`GumbelSoftmax`] | Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017 |
//! | blackbox differentiation (BB) | [`Blackbox`] | Vlastelica (Pogančić) et al. 2020, *Differentiation of blackbox combinatorial solvers* |
//! | perturbed optimizers (DPO) | [`Perturbed`] | Berthet et al. 2020, *Learning with differentiable perturbed optimizers* |
//! | SoftSub (relaxed top-k) | [`SoftSub`] | Xie & Ermon 2019, *Reparameterizable subset sampling via continuous relaxations* |
//! | L2X | [`L2x`] | Chen et al. 2018, *Learning to explain* |
//!
//! (The score-function estimator and the Fenchel-Young loss are losses, not layers: they
//! are in [`crate::loss`].)
//!
//! Conventions shared with [`crate::Imle`]: every one is an [`Estimator`], built once
//! with its solver and hyper-parameters (validated then) and applied as `op.apply(θ)`;
//! the MAP *maximises* `<z, θ>`; a backward pass returns an estimate of `∂L/∂θ` (to be
//! descended); every op works on `Tensor<(B, M), f32, D, T>` for any [`ImleDevice`] `D`,
//! any tape `T` and compile-time or run-time dims; an op drawing noise has a `seed(u64)`
//! and a shared call counter, so that the same seed and the same sequence of calls give
//! the same numbers. Call `n` (counting from 0 after `seed`) draws its noise with the
//! seed [`call_seed`]`(seed, n)`.
//!
//! The hand-written ops (STE, BB, DPO and the straight-through Gumbel-softmax) are built
//! on [`crate::op::custom_op`] and run their solver on the host; the relaxations
//! (Gumbel-softmax, SoftSub, L2X) are compositions of dfdx tensor ops, differentiated by
//! dfdx itself on the device (their slice-level `forward`/`backward` run the same ops on
//! the `Cpu`).

mod blackbox;
mod gumbel_softmax;
mod l2x;
mod perturbed;
mod softsub;
mod ste;

pub use blackbox::{Blackbox, BlackboxSaved};
pub use gumbel_softmax::{GumbelSoftmax, TemperatureSchedule};
pub use l2x::L2x;
pub use perturbed::{PerturbationNoise, Perturbed, PerturbedSamples};
pub use softsub::SoftSub;
pub use ste::Ste;

pub use crate::noise::call_seed;

use crate::device::ImleDevice;
use crate::error::{check_finite, Error, Result};
#[allow(unused_imports)] // for the docs
use crate::estimator::Estimator;
use dfdx::shapes::{Dim, HasShape, Shape};
use dfdx::tensor::{Cpu, NoneTape, Tensor, TensorFromVec, Trace};
use dfdx::tensor_ops::{Backward, SumTo, TryMul};

/// What a relaxation's slice-level backward pass needs: θ, its noise and the row length.
#[derive(Debug, Clone)]
pub struct RelaxationSaved {
    theta: Vec<f32>,
    noise: Vec<f32>,
    m: usize,
}

/// Checks on the device that θ is finite (`Σ 0·θ` is 0, or NaN if any entry is not
/// finite: one scalar comes back to the host), and names the first bad entry if not.
pub(crate) fn check_finite_tensor<S: Shape, D: ImleDevice, T>(
    theta: &Tensor<S, f32, D, T>,
) -> Result<()> {
    let probe = theta
        .retaped::<NoneTape>()
        .try_mul(0.0f32)
        .map_err(Error::device)?
        .try_sum::<(), _>()
        .map_err(Error::device)?
        .as_vec();
    if probe.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        check_finite("theta", &theta.as_vec())
    }
}

/// Checks the shape of θ for a relaxation: rows of length `m >= 1`.
pub(crate) fn check_relaxation_input<B: Dim, M: Dim, D: ImleDevice, T>(
    theta: &Tensor<(B, M), f32, D, T>,
) -> Result<usize> {
    let m = theta.shape().1.size();
    if m == 0 {
        return Err(Error::LengthMismatch {
            what: "instance length m",
            expected: 1,
            got: 0,
        });
    }
    check_finite_tensor(theta)?;
    Ok(m)
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

/// Validates a row-major batch of θ with rows of length `m`: `m >= 1`, whole rows, finite.
pub(crate) fn check_rows(theta: &[f32], m: usize) -> Result<()> {
    if m == 0 {
        return Err(Error::LengthMismatch {
            what: "instance length m",
            expected: 1,
            got: 0,
        });
    }
    if !theta.len().is_multiple_of(m) {
        return Err(Error::LengthMismatch {
            what: "theta (a multiple of m)",
            expected: (theta.len() / m + 1) * m,
            got: theta.len(),
        });
    }
    check_finite("theta", theta)
}

/// Checks that a noise buffer has the expected length.
pub(crate) fn check_noise_len(noise: &[f32], expected: usize) -> Result<()> {
    if noise.len() != expected {
        return Err(Error::LengthMismatch {
            what: "noise",
            expected,
            got: noise.len(),
        });
    }
    check_finite("noise", noise)
}

/// Checks an upstream gradient: the right length and finite.
pub(crate) fn check_upstream(g: &[f32], expected: usize) -> Result<()> {
    if g.len() != expected {
        return Err(Error::LengthMismatch {
            what: "upstream gradient",
            expected,
            got: g.len(),
        });
    }
    check_finite("upstream gradient", g)
}

/// Checks that a temperature-like parameter is finite and > 0.
pub(crate) fn check_temperature(name: &'static str, t: f32) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value: t as f64,
            reason: "must be finite and > 0",
        })
    }
}

/// Checks `1 <= k <= m`.
pub(crate) fn check_k(k: usize, m: usize) -> Result<()> {
    if k == 0 || k > m {
        Err(Error::InvalidK { k, m })
    } else {
        Ok(())
    }
}
