//! The Fenchel-Young loss of perturbed optimizers (Berthet et al. 2020).

use crate::baselines::Perturbed;
use crate::device::ImleDevice;
use crate::error::Result;
use crate::solver::MapSolver;
use dfdx::shapes::{Dim, HasShape};
use dfdx::tensor::{Tape, Tensor};

/// The Fenchel-Young loss of Berthet et al. for the perturbed maximiser of a
/// [`Perturbed`] optimizer, per example (shape `(B,)`): `F_σ(θ) − <θ, y>` estimated with
/// its S samples, where `F_σ(θ) = E[max_z <z, θ + σZ>]`. Its gradient with respect to θ
/// is `ŷ − y` (`ŷ` the Monte-Carlo perturbed maximiser). The term `Ω(y)` of the full
/// loss does not depend on θ and is omitted, so the value is the loss up to a constant
/// per example.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::prelude::*;
/// use imle::loss::FenchelYoung;
///
/// let dev = Cpu::default();
/// let fy = FenchelYoung::new(Perturbed::new(TopK::new(1), 1.0, 50)?.seed(0));
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0]]);
/// let y = dev.tensor([[1.0f32, 0.0, 0.0]]);
/// let grads = fy.loss(theta.leaky_trace(), &y)?.sum().backward();
/// let g = grads.get(&theta).as_vec(); // ŷ − y: pushes θ_0 up and θ_2 down
/// assert!(g[0] < 0.0 && g[2] > 0.0);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FenchelYoung<S> {
    perturbed: Perturbed<S>,
}

impl<S: MapSolver + Clone + 'static> FenchelYoung<S> {
    /// The Fenchel-Young loss of the perturbed optimizer `perturbed` (its solver, σ, S,
    /// noise and seed).
    pub fn new(perturbed: Perturbed<S>) -> Self {
        Self { perturbed }
    }

    /// The perturbed optimizer.
    pub fn perturbed(&self) -> &Perturbed<S> {
        &self.perturbed
    }

    /// Loss values and gradients on plain slices for θ and targets `y` (row-major,
    /// rows of length `m`): per row `F̂(θ) − <θ, y>` and `ŷ − y`.
    pub fn loss_rows(&self, theta: &[f32], y: &[f32], m: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let fwd = self.perturbed.sample(theta, m)?;
        self.perturbed.fenchel_young_rows(&fwd, y)
    }

    /// The loss per example, `(B,)`, with gradient `g_b·(ŷ_b − y_b)` for θ.
    pub fn loss<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>, T2>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        y: &Tensor<(B, M), f32, D, T2>,
    ) -> Result<Tensor<(B,), f32, D, T>> {
        let m = theta.shape().1.size();
        let (values, grads) = self.loss_rows(&theta.as_vec(), &y.as_vec(), m)?;
        let errors = crate::estimator::Estimator::state(&self.perturbed).errors();
        super::per_example_loss(theta, values, grads, errors)
    }
}
