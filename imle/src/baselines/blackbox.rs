//! Blackbox differentiation of combinatorial solvers (Vlastelica/Pogančić et al. 2020).

use super::{check_rows, check_temperature, check_upstream};
use crate::error::{check_finite, Error, Result};
use crate::op::{custom_op, BackwardErrors};
use crate::solver::MapSolver;
use dfdx::shapes::{Dim, HasShape};
use dfdx::tensor::{Cpu, Tape, Tensor};

/// Blackbox differentiation (BB; Vlastelica, Paulus, Musil, Martius & Rolínek 2020 —
/// published as Pogančić et al., *Differentiation of blackbox combinatorial solvers*,
/// ICLR 2020).
///
/// Forward: `z = MAP(θ)`. Backward, with `g = ∂L/∂z`, in the sign convention of our MAP
/// (which *maximises* `<z, θ>`; the original minimises a cost `w = −θ`, whose perturbed
/// cost `w + λ·g` is `−(θ − λ·g)`):
///
/// ```text
/// θ' = θ − λ·g,        ∇θ L ≈ (MAP(θ) − MAP(θ')) / λ.
/// ```
///
/// **Relation to I-MLE (Footnote 10 of the I-MLE paper).** This is exactly I-MLE with the
/// PID target of Eq. 10 (`θ' = θ − λ·g`), no perturbation (noise δ₀, [`crate::Noise::None`])
/// and the gradient divided by λ:
/// `Imle::new(Target::pid(λ)?, Noise::None).scale_by_lambda(true)` computes the same
/// numbers. I-MLE generalises BB by sampling from the perturbed distributions instead of
/// taking their modes.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::{baselines::Blackbox, solver::Argmax};
///
/// let dev = Cpu::default();
/// let theta = dev.tensor([[1.0f32, 0.0, -1.0]]);
/// let z = Blackbox::new(2.0).apply(theta.leaky_trace(), &Argmax)?;
/// assert_eq!(z.array(), [[1.0, 0.0, 0.0]]);
/// // L = <z, g> with g = (1, 0, 0): θ' = (1, 0, −1) − 2·g = (−1, 0, −1) → MAP(θ') = e_1.
/// let grads = (z * dev.tensor([[1.0f32, 0.0, 0.0]])).sum().backward();
/// assert_eq!(grads.get(&theta).array(), [[0.5, -0.5, 0.0]]);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Blackbox {
    lambda: f32,
    errors: BackwardErrors,
}

impl Blackbox {
    /// BB with interpolation strength `lambda > 0` (checked when applied).
    ///
    /// BB is deterministic, so it has no seed.
    pub fn new(lambda: f32) -> Self {
        Self {
            lambda,
            errors: BackwardErrors::default(),
        }
    }

    /// The interpolation strength λ.
    pub fn lambda(&self) -> f32 {
        self.lambda
    }

    /// The error of the last failed backward pass (see [`crate::op`]).
    pub fn take_backward_error(&self) -> Option<Error> {
        self.errors.take()
    }

    /// Forward pass on plain slices: `MAP(θ)` for every row.
    pub fn forward<S: MapSolver + ?Sized>(
        &self,
        theta: &[f32],
        m: usize,
        solver: &S,
    ) -> Result<Vec<f32>> {
        check_temperature("lambda", self.lambda)?;
        solver.check_len(m)?;
        check_rows(theta, m)?;
        let mut z = vec![0.0; theta.len()];
        solver.solve_batch(theta, m, &mut z)?;
        Ok(z)
    }

    /// Backward pass on plain slices: `(z − MAP(θ − λ·g))/λ` for every row, where `z` is
    /// the forward output `MAP(θ)`.
    pub fn backward<S: MapSolver + ?Sized>(
        &self,
        theta: &[f32],
        z: &[f32],
        grad_z: &[f32],
        m: usize,
        solver: &S,
    ) -> Result<Vec<f32>> {
        check_upstream(grad_z, theta.len())?;
        if z.len() != theta.len() {
            return Err(Error::LengthMismatch {
                what: "forward output z",
                expected: theta.len(),
                got: z.len(),
            });
        }
        let lambda = self.lambda;
        let shifted: Vec<f32> = theta
            .iter()
            .zip(grad_z)
            .map(|(t, g)| t - lambda * g)
            .collect();
        check_finite("perturbed parameters theta'", &shifted)?;
        let mut z2 = vec![0.0; theta.len()];
        solver.solve_batch(&shifted, m, &mut z2)?;
        Ok(z.iter().zip(&z2).map(|(a, b)| (a - b) / lambda).collect())
    }

    /// The BB op: forward `MAP(θ)`, backward `(MAP(θ) − MAP(θ − λ·∂L/∂z))/λ`.
    pub fn apply<B: Dim, M: Dim, T: Tape<f32, Cpu>, S: MapSolver + Clone + 'static>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        solver: &S,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        let shape = *theta.shape();
        let m = shape.1.size();
        let theta_v = theta.as_vec();
        let z = self.forward(&theta_v, m, solver)?;
        let this = self.clone();
        let solver = solver.clone();
        let z_saved = z.clone();
        custom_op(
            theta,
            shape,
            z,
            move |g: &[f32]| this.backward(&theta_v, &z_saved, g, m, &solver),
            &self.errors,
        )
    }
}
