//! Straight-through estimator (Bengio, Léonard & Courville 2013).

use super::{check_rows, check_temperature, check_upstream};
use crate::error::Result;
use crate::estimator::Estimator;
use crate::noise::Noise;
use crate::op::OpState;
use crate::solver::MapSolver;

/// The straight-through estimator (STE; Bengio, Léonard & Courville 2013, *Estimating or
/// propagating gradients through stochastic neurons for conditional computation*), as
/// used in the I-MLE paper's comparisons.
///
/// Forward: perturb-and-MAP `z = MAP(θ + τ·ε)` with any noise of the core ([`Noise`]:
/// none, Gumbel, Sum-of-Gamma). Backward: the identity, `∇θ L ≈ ∂L/∂z`.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::prelude::*;
///
/// let dev = Cpu::default();
/// let ste = Ste::new(TopK::new(2), Noise::gumbel(1.0)?).seed(3);
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
/// let z = ste.apply(theta.leaky_trace())?;
/// assert_eq!(z.as_vec().iter().sum::<f32>(), 2.0);
/// let grads = (z * dev.tensor([[1.0f32, 2.0, 3.0, 4.0]])).sum().backward();
/// assert_eq!(grads.get(&theta).array(), [[1.0, 2.0, 3.0, 4.0]]); // identity
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ste<S> {
    solver: S,
    noise: Noise,
    temperature: f32,
    state: OpState,
}

impl<S: MapSolver + Clone + 'static> Ste<S> {
    /// STE with the given MAP solver and forward noise, temperature 1, seed 0.
    pub fn new(solver: S, noise: Noise) -> Self {
        Self {
            solver,
            noise,
            temperature: 1.0,
            state: OpState::new(0),
        }
    }

    /// Temperature τ > 0 multiplying the forward noise.
    pub fn temperature(mut self, t: f32) -> Result<Self> {
        check_temperature("temperature", t)?;
        self.temperature = t;
        Ok(self)
    }

    /// The noise distribution.
    pub fn noise(&self) -> &Noise {
        &self.noise
    }

    /// The MAP solver.
    pub fn solver(&self) -> &S {
        &self.solver
    }
}

/// Forward `MAP(θ + τ·ε)` row by row (call `n` draws ε with
/// `noise.fill(call_seed(seed, n), ..)` in the layout of θ), backward the identity.
impl<S: MapSolver + Clone + 'static> Estimator for Ste<S> {
    type Saved = usize;

    fn forward(&self, theta: &[f32], m: usize) -> Result<(Vec<f32>, usize)> {
        self.solver.check_len(m)?;
        check_rows(theta, m)?;
        let mut perturbed = vec![0.0; theta.len()];
        self.noise.fill(self.state.next_seed(), &mut perturbed);
        for (p, t) in perturbed.iter_mut().zip(theta) {
            *p = t + self.temperature * *p;
        }
        let mut z = vec![0.0; theta.len()];
        self.solver.solve_batch(&perturbed, m, &mut z)?;
        Ok((z, theta.len()))
    }

    fn backward(&self, &n: &usize, grad_out: &[f32]) -> Result<Vec<f32>> {
        check_upstream(grad_out, n)?;
        Ok(grad_out.to_vec())
    }

    fn state(&self) -> &OpState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut OpState {
        &mut self.state
    }
}
