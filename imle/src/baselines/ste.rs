//! Straight-through estimator (Bengio, Léonard & Courville 2013).

use super::{check_rows, check_temperature, check_upstream, Seeds};
use crate::error::{Error, Result};
use crate::noise::Noise;
use crate::op::{custom_op, BackwardErrors};
use crate::solver::MapSolver;
use dfdx::shapes::{Dim, HasShape};
use dfdx::tensor::{Cpu, Tape, Tensor};

/// The straight-through estimator (STE; Bengio, Léonard & Courville 2013, *Estimating or
/// propagating gradients through stochastic neurons for conditional computation*), as
/// used in the I-MLE paper's comparisons.
///
/// Forward: perturb-and-MAP `z = MAP(θ + τ·ε)` with any noise of the core ([`Noise`]:
/// none, Gumbel, Sum-of-Gamma). Backward: the identity, `∇θ L ≈ ∂L/∂z`.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::{baselines::Ste, solver::TopK, Noise};
///
/// let dev = Cpu::default();
/// let ste = Ste::new(Noise::gumbel(1.0)?).seed(3);
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
/// let z = ste.apply(theta.leaky_trace(), &TopK::new(2))?;
/// assert_eq!(z.as_vec().iter().sum::<f32>(), 2.0);
/// let grads = (z * dev.tensor([[1.0f32, 2.0, 3.0, 4.0]])).sum().backward();
/// assert_eq!(grads.get(&theta).array(), [[1.0, 2.0, 3.0, 4.0]]); // identity
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ste {
    noise: Noise,
    temperature: f32,
    seeds: Seeds,
    errors: BackwardErrors,
}

impl Ste {
    /// STE with forward noise `noise`, temperature 1, seed 0.
    pub fn new(noise: Noise) -> Self {
        Self {
            noise,
            temperature: 1.0,
            seeds: Seeds::new(0),
            errors: BackwardErrors::default(),
        }
    }

    /// Temperature τ multiplying the forward noise (> 0).
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = t;
        self
    }

    /// Seed of the forward noise (resets the call counter).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeds = Seeds::new(seed);
        self
    }

    /// The noise distribution.
    pub fn noise(&self) -> &Noise {
        &self.noise
    }

    /// The error of the last failed backward pass (see [`crate::op`]).
    pub fn take_backward_error(&self) -> Option<Error> {
        self.errors.take()
    }

    /// Forward pass on plain slices: `MAP(θ + τ·ε)` for every row of `theta` (row-major,
    /// rows of length `m`). Call `n` draws ε with `noise.fill(call_seed(seed, n), ..)` in
    /// the layout of θ.
    pub fn forward<S: MapSolver + ?Sized>(
        &self,
        theta: &[f32],
        m: usize,
        solver: &S,
    ) -> Result<Vec<f32>> {
        check_temperature("temperature", self.temperature)?;
        solver.check_len(m)?;
        check_rows(theta, m)?;
        let mut perturbed = vec![0.0; theta.len()];
        self.noise.fill(self.seeds.next(), &mut perturbed);
        for (p, t) in perturbed.iter_mut().zip(theta) {
            *p = t + self.temperature * *p;
        }
        let mut z = vec![0.0; theta.len()];
        solver.solve_batch(&perturbed, m, &mut z)?;
        Ok(z)
    }

    /// The STE op: forward `MAP(θ + τ·ε)` row by row, backward the identity.
    pub fn apply<B: Dim, M: Dim, T: Tape<f32, Cpu>, S: MapSolver + ?Sized>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        solver: &S,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        let shape = *theta.shape();
        let z = self.forward(&theta.as_vec(), shape.1.size(), solver)?;
        let n = z.len();
        custom_op(
            theta,
            shape,
            z,
            move |g: &[f32]| {
                check_upstream(g, n)?;
                Ok(g.to_vec())
            },
            &self.errors,
        )
    }
}
