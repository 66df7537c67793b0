//! Differentiable perturbed optimizers (Berthet et al. 2020) and the Fenchel-Young loss.

use super::{check_rows, check_temperature, check_upstream};
use crate::error::{Error, Result};
use crate::estimator::Estimator;
use crate::noise::Noise;
use crate::op::OpState;
use crate::solver::MapSolver;
use rand_distr::{Distribution, StandardNormal};

/// The noise Z of a perturbed optimizer, with density `μ(z) ∝ exp(−ν(z))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PerturbationNoise {
    /// Standard normal: `ν(z) = z²/2`, `∇ν(z) = z`.
    #[default]
    Normal,
    /// Standard Gumbel: `ν(z) = z + e^{−z}`, `∇ν(z) = 1 − e^{−z}`.
    Gumbel,
}

impl PerturbationNoise {
    /// Fills `out` with i.i.d. standard noise from `seed` (in parallel; the result depends on
    /// `seed` and `out.len()` only: chunk `c` of 1024 values comes from `ChaCha8Rng` seeded
    /// with `seed`, stream `c`, as in [`Noise::fill`]).
    pub fn fill(&self, seed: u64, out: &mut [f32]) {
        match self {
            PerturbationNoise::Gumbel => Noise::Gumbel(
                crate::noise::Gumbel::new(1.0).expect("scale 1 is a valid Gumbel scale"),
            )
            .fill(seed, out),
            PerturbationNoise::Normal => {
                crate::noise::fill_chunks(seed, out, |rng| StandardNormal.sample(rng))
            }
        }
    }

    /// `∇ν(z)`, the gradient of the negative log-density.
    #[inline]
    pub fn grad_neg_log_density(&self, z: f32) -> f32 {
        match self {
            PerturbationNoise::Normal => z,
            PerturbationNoise::Gumbel => 1.0 - (-z).exp(),
        }
    }
}

/// The samples of one forward pass of [`Perturbed`].
#[derive(Debug, Clone)]
pub struct PerturbedSamples {
    /// θ, row-major `(B, M)`.
    pub theta: Vec<f32>,
    /// Row length M.
    pub m: usize,
    /// Number of Monte-Carlo samples S.
    pub samples: usize,
    /// Standard noise Z (before σ), row-major `(B, S, M)`.
    pub noise: Vec<f32>,
    /// `MAP(θ + σ·Z_s)`, row-major `(B, S, M)`.
    pub z: Vec<f32>,
}

impl PerturbedSamples {
    /// The Monte-Carlo mean `ŷ = (1/S) Σ_s MAP(θ + σ·Z_s)`, row-major `(B, M)`.
    pub fn mean(&self) -> Vec<f32> {
        crate::implicit_mle::mean_over_samples(&self.z, self.m, self.samples)
    }
}

/// Differentiable perturbed optimizer (DPO; Berthet, Blondel, Teboul, Cuturi, Vert & Bach
/// 2020, *Learning with differentiable perturbed optimizers*), in the maximisation
/// convention of our MAP.
///
/// Forward: the Monte-Carlo estimate of the perturbed maximiser
/// `y_σ(θ) = E_Z[MAP(θ + σ·Z)]`,
///
/// ```text
/// ŷ = (1/S) Σ_s MAP(θ + σ·Z_s),      Z_s ~ μ (normal or Gumbel).
/// ```
///
/// Backward: the perturbation gradient of Berthet et al. (their Prop. 3.1,
/// `J_θ y_σ = E[MAP(θ + σZ) ∇ν(Z)ᵀ]/σ`), estimated with the forward samples:
///
/// ```text
/// ∇θ L ≈ (1/(S·σ)) Σ_s <MAP(θ + σ·Z_s), g> · ∇ν(Z_s),      g = ∂L/∂ŷ.
/// ```
///
/// [`crate::loss::FenchelYoung`] is the Fenchel-Young loss of the same paper, whose
/// gradient is `ŷ − y`.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::prelude::*;
///
/// let dev = Cpu::default();
/// let dpo = Perturbed::new(TopK::new(2), 0.5, 100)?.seed(0);
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
/// let y = dpo.apply(theta.leaky_trace())?;
/// assert!((y.as_vec().iter().sum::<f32>() - 2.0).abs() < 1e-4); // a mean of 2-subsets
/// let grads = (y * dev.tensor([[1.0f32, 0.0, 0.0, 0.0]])).sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Perturbed<S> {
    solver: S,
    sigma: f32,
    samples: usize,
    noise: PerturbationNoise,
    state: OpState,
}

impl<S: MapSolver + Clone + 'static> Perturbed<S> {
    /// DPO with the given MAP solver, noise scale `sigma > 0` and `samples >= 1`
    /// Monte-Carlo samples, normal noise, seed 0.
    pub fn new(solver: S, sigma: f32, samples: usize) -> Result<Self> {
        check_temperature("sigma", sigma)?;
        if samples == 0 {
            return Err(Error::ZeroSamples);
        }
        Ok(Self {
            solver,
            sigma,
            samples,
            noise: PerturbationNoise::Normal,
            state: OpState::new(0),
        })
    }

    /// The noise distribution of Z.
    pub fn noise(mut self, noise: PerturbationNoise) -> Self {
        self.noise = noise;
        self
    }

    /// σ.
    pub fn sigma(&self) -> f32 {
        self.sigma
    }

    /// The MAP solver.
    pub fn solver(&self) -> &S {
        &self.solver
    }

    /// S samples `MAP(θ + σ·Z_s)` for every row. Call `n` draws Z with
    /// `noise.fill(call_seed(seed, n), ..)` in the layout `(B, S, M)`.
    pub fn sample(&self, theta: &[f32], m: usize) -> Result<PerturbedSamples> {
        self.solver.check_len(m)?;
        check_rows(theta, m)?;
        let s = self.samples;
        let mut noise = vec![0.0; theta.len() * s];
        self.noise.fill(self.state.next_seed(), &mut noise);
        let perturbed = crate::implicit_mle::perturb(theta, m, s, &noise, self.sigma);
        let mut z = vec![0.0; perturbed.len()];
        self.solver.solve_batch(&perturbed, m, &mut z)?;
        Ok(PerturbedSamples {
            theta: theta.to_vec(),
            m,
            samples: s,
            noise,
            z,
        })
    }

    /// Berthet et al.'s perturbation gradient: for every row,
    /// `(1/(S·σ)) Σ_s <z_s, g>·∇ν(Z_s)`, with `grad_mean = ∂L/∂ŷ` (row-major `(B, M)`).
    pub fn gradient(&self, fwd: &PerturbedSamples, grad_mean: &[f32]) -> Result<Vec<f32>> {
        check_upstream(grad_mean, fwd.theta.len())?;
        let (m, s) = (fwd.m, fwd.samples);
        let scale = 1.0 / (s as f32 * self.sigma);
        let mut grad = vec![0.0f32; fwd.theta.len()];
        for (b, (out, g)) in grad.chunks_mut(m).zip(grad_mean.chunks(m)).enumerate() {
            for j in 0..s {
                let r = (b * s + j) * m;
                let z = &fwd.z[r..r + m];
                let eps = &fwd.noise[r..r + m];
                let dot: f32 = z.iter().zip(g).map(|(a, b)| a * b).sum();
                if dot != 0.0 {
                    for (o, &e) in out.iter_mut().zip(eps) {
                        *o += scale * dot * self.noise.grad_neg_log_density(e);
                    }
                }
            }
        }
        Ok(grad)
    }

    /// Fenchel-Young loss values and gradients on plain slices (see
    /// [`crate::loss::FenchelYoung`]), from samples `fwd` and targets `y` (row-major
    /// `(B, M)`): per row
    /// `F̂(θ) − <θ, y>` with `F̂(θ) = (1/S) Σ_s <MAP(θ + σZ_s), θ + σZ_s>`, and its gradient
    /// `ŷ − y`.
    pub fn fenchel_young_rows(
        &self,
        fwd: &PerturbedSamples,
        y: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        if y.len() != fwd.theta.len() {
            return Err(Error::LengthMismatch {
                what: "Fenchel-Young target y",
                expected: fwd.theta.len(),
                got: y.len(),
            });
        }
        crate::error::check_finite("Fenchel-Young target y", y)?;
        let (m, s) = (fwd.m, fwd.samples);
        let mean = fwd.mean();
        let values = (0..fwd.theta.len() / m)
            .map(|b| {
                let theta = &fwd.theta[b * m..(b + 1) * m];
                let mut f = 0.0f64;
                for j in 0..s {
                    let r = (b * s + j) * m;
                    for ((&z, &t), &e) in
                        fwd.z[r..r + m].iter().zip(theta).zip(&fwd.noise[r..r + m])
                    {
                        f += (z * (t + self.sigma * e)) as f64;
                    }
                }
                let dot: f64 = theta
                    .iter()
                    .zip(&y[b * m..(b + 1) * m])
                    .map(|(&t, &v)| (t * v) as f64)
                    .sum();
                (f / s as f64 - dot) as f32
            })
            .collect();
        let grads = mean.iter().zip(y).map(|(a, b)| a - b).collect();
        Ok((values, grads))
    }
}

/// Forward the Monte-Carlo mean `ŷ`, backward the perturbation gradient.
impl<S: MapSolver + Clone + 'static> Estimator for Perturbed<S> {
    type Saved = PerturbedSamples;

    fn forward(&self, theta: &[f32], m: usize) -> Result<(Vec<f32>, PerturbedSamples)> {
        let fwd = self.sample(theta, m)?;
        Ok((fwd.mean(), fwd))
    }

    fn backward(&self, saved: &PerturbedSamples, grad_out: &[f32]) -> Result<Vec<f32>> {
        self.gradient(saved, grad_out)
    }

    fn state(&self) -> &OpState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut OpState {
        &mut self.state
    }
}
