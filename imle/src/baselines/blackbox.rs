//! Blackbox differentiation of combinatorial solvers (Vlastelica/Pogančić et al. 2020).

use super::{check_rows, check_temperature, check_upstream};
use crate::error::{check_finite, Result};
use crate::estimator::Estimator;
use crate::op::OpState;
use crate::solver::MapSolver;

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
/// `Imle::new(solver, Target::pid(λ)?, Noise::None).scale_by_lambda(true)` computes the same
/// numbers. I-MLE generalises BB by sampling from the perturbed distributions instead of
/// taking their modes.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::prelude::*;
///
/// let dev = Cpu::default();
/// let theta = dev.tensor([[1.0f32, 0.0, -1.0]]);
/// let z = Blackbox::new(Argmax, 2.0)?.apply(theta.leaky_trace())?;
/// assert_eq!(z.array(), [[1.0, 0.0, 0.0]]);
/// // L = <z, g> with g = (1, 0, 0): θ' = (1, 0, −1) − 2·g = (−1, 0, −1) → MAP(θ') = e_1.
/// let grads = (z * dev.tensor([[1.0f32, 0.0, 0.0]])).sum().backward();
/// assert_eq!(grads.get(&theta).array(), [[0.5, -0.5, 0.0]]);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Blackbox<S> {
    solver: S,
    lambda: f32,
    state: OpState,
}

impl<S: MapSolver + Clone + 'static> Blackbox<S> {
    /// BB with the given MAP solver and interpolation strength `lambda > 0`.
    /// BB is deterministic: its seed is unused.
    pub fn new(solver: S, lambda: f32) -> Result<Self> {
        check_temperature("lambda", lambda)?;
        Ok(Self {
            solver,
            lambda,
            state: OpState::default(),
        })
    }

    /// The interpolation strength λ.
    pub fn lambda(&self) -> f32 {
        self.lambda
    }

    /// The MAP solver.
    pub fn solver(&self) -> &S {
        &self.solver
    }
}

/// What BB's backward pass needs: θ, `MAP(θ)` and the row length.
#[derive(Debug, Clone)]
pub struct BlackboxSaved {
    theta: Vec<f32>,
    z: Vec<f32>,
    m: usize,
}

/// Forward `MAP(θ)`, backward `(MAP(θ) − MAP(θ − λ·∂L/∂z))/λ`.
impl<S: MapSolver + Clone + 'static> Estimator for Blackbox<S> {
    type Saved = BlackboxSaved;

    fn forward(&self, theta: &[f32], m: usize) -> Result<(Vec<f32>, BlackboxSaved)> {
        self.solver.check_len(m)?;
        check_rows(theta, m)?;
        let mut z = vec![0.0; theta.len()];
        self.solver.solve_batch(theta, m, &mut z)?;
        let saved = BlackboxSaved {
            theta: theta.to_vec(),
            z: z.clone(),
            m,
        };
        Ok((z, saved))
    }

    fn backward(&self, saved: &BlackboxSaved, grad_z: &[f32]) -> Result<Vec<f32>> {
        let BlackboxSaved { theta, z, m } = saved;
        check_upstream(grad_z, theta.len())?;
        let lambda = self.lambda;
        let shifted: Vec<f32> = theta
            .iter()
            .zip(grad_z)
            .map(|(t, g)| t - lambda * g)
            .collect();
        check_finite("perturbed parameters theta'", &shifted)?;
        let mut z2 = vec![0.0; theta.len()];
        self.solver.solve_batch(&shifted, *m, &mut z2)?;
        Ok(z.iter().zip(&z2).map(|(a, b)| (a - b) / lambda).collect())
    }

    fn state(&self) -> &OpState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut OpState {
        &mut self.state
    }
}
