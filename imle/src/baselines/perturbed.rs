//! Differentiable perturbed optimizers (Berthet et al. 2020) and the Fenchel-Young loss.

use super::{check_rows, check_temperature, check_upstream, Seeds};
use crate::error::{Error, Result};
use crate::noise::Noise;
use crate::op::{custom_op, BackwardErrors};
use crate::solver::MapSolver;
use dfdx::shapes::{Dim, HasShape};
use dfdx::tensor::{Cpu, Tape, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

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
                out.par_chunks_mut(1024).enumerate().for_each(|(c, chunk)| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    rng.set_stream(c as u64);
                    for v in chunk {
                        *v = StandardNormal.sample(&mut rng);
                    }
                })
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
        crate::estimator::mean_over_samples(&self.z, self.m, self.samples)
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
/// [`Perturbed::fenchel_young`] is the Fenchel-Young loss of the same paper, whose
/// gradient is `ŷ − y`.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::{baselines::Perturbed, solver::TopK};
///
/// let dev = Cpu::default();
/// let dpo = Perturbed::new(0.5, 100).seed(0);
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
/// let y = dpo.apply(theta.leaky_trace(), &TopK::new(2))?;
/// assert!((y.as_vec().iter().sum::<f32>() - 2.0).abs() < 1e-4); // a mean of 2-subsets
/// let grads = (y * dev.tensor([[1.0f32, 0.0, 0.0, 0.0]])).sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Perturbed {
    sigma: f32,
    samples: usize,
    noise: PerturbationNoise,
    seeds: Seeds,
    errors: BackwardErrors,
}

impl Perturbed {
    /// DPO with noise scale `sigma > 0` and `samples >= 1` Monte-Carlo samples (checked when
    /// applied), normal noise, seed 0.
    pub fn new(sigma: f32, samples: usize) -> Self {
        Self {
            sigma,
            samples,
            noise: PerturbationNoise::Normal,
            seeds: Seeds::new(0),
            errors: BackwardErrors::default(),
        }
    }

    /// The noise distribution of Z.
    pub fn noise(mut self, noise: PerturbationNoise) -> Self {
        self.noise = noise;
        self
    }

    /// Seed of the noise (resets the call counter).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeds = Seeds::new(seed);
        self
    }

    /// σ.
    pub fn sigma(&self) -> f32 {
        self.sigma
    }

    /// The error of the last failed backward pass (see [`crate::op`]).
    pub fn take_backward_error(&self) -> Option<Error> {
        self.errors.take()
    }

    /// Forward pass on plain slices: S samples `MAP(θ + σ·Z_s)` for every row. Call `n`
    /// draws Z with `noise.fill(call_seed(seed, n), ..)` in the layout `(B, S, M)`.
    pub fn forward<S: MapSolver + ?Sized>(
        &self,
        theta: &[f32],
        m: usize,
        solver: &S,
    ) -> Result<PerturbedSamples> {
        check_temperature("sigma", self.sigma)?;
        if self.samples == 0 {
            return Err(Error::ZeroSamples);
        }
        solver.check_len(m)?;
        check_rows(theta, m)?;
        let s = self.samples;
        let mut noise = vec![0.0; theta.len() * s];
        self.noise.fill(self.seeds.next(), &mut noise);
        let mut perturbed = Vec::with_capacity(noise.len());
        for (b, row) in theta.chunks(m).enumerate() {
            for j in 0..s {
                let eps = &noise[(b * s + j) * m..(b * s + j + 1) * m];
                perturbed.extend(row.iter().zip(eps).map(|(t, e)| t + self.sigma * e));
            }
        }
        let mut z = vec![0.0; perturbed.len()];
        solver.solve_batch(&perturbed, m, &mut z)?;
        Ok(PerturbedSamples {
            theta: theta.to_vec(),
            m,
            samples: s,
            noise,
            z,
        })
    }

    /// Backward pass (Berthet et al.'s perturbation gradient): for every row,
    /// `(1/(S·σ)) Σ_s <z_s, g>·∇ν(Z_s)`, with `grad_mean = ∂L/∂ŷ` (row-major `(B, M)`).
    pub fn backward(&self, fwd: &PerturbedSamples, grad_mean: &[f32]) -> Result<Vec<f32>> {
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

    /// The DPO op: forward the Monte-Carlo mean `ŷ`, backward the perturbation gradient.
    pub fn apply<B: Dim, M: Dim, T: Tape<f32, Cpu>, S: MapSolver + ?Sized>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        solver: &S,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        let shape = *theta.shape();
        let fwd = self.forward(&theta.as_vec(), shape.1.size(), solver)?;
        let this = self.clone();
        custom_op(
            theta,
            shape,
            fwd.mean(),
            move |g: &[f32]| this.backward(&fwd, g),
            &self.errors,
        )
    }

    /// Fenchel-Young loss values and gradients on plain slices, from a forward pass `fwd`
    /// and targets `y` (row-major `(B, M)`): per row
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

    /// The Fenchel-Young loss of Berthet et al. for the perturbed maximiser, per example
    /// (shape `(B,)`): `F_σ(θ) − <θ, y>` estimated with S samples, where
    /// `F_σ(θ) = E[max_z <z, θ + σZ>]`. Its gradient with respect to θ is `ŷ − y`
    /// (`ŷ` the Monte-Carlo perturbed maximiser). The term `Ω(y)` of the full loss does
    /// not depend on θ and is omitted, so the value is the loss up to a constant per
    /// example.
    pub fn fenchel_young<B: Dim, M: Dim, T: Tape<f32, Cpu>, T2, S: MapSolver + ?Sized>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        y: &Tensor<(B, M), f32, Cpu, T2>,
        solver: &S,
    ) -> Result<Tensor<(B,), f32, Cpu, T>> {
        let shape = *theta.shape();
        let m = shape.1.size();
        let fwd = self.forward(&theta.as_vec(), m, solver)?;
        let (values, grads) = self.fenchel_young_rows(&fwd, &y.as_vec())?;
        custom_op(
            theta,
            (shape.0,),
            values,
            move |g: &[f32]| {
                check_upstream(g, grads.len() / m)?;
                Ok(grads
                    .chunks(m)
                    .zip(g)
                    .flat_map(|(row, &gb)| row.iter().map(move |v| gb * v))
                    .collect())
            },
            &self.errors,
        )
    }
}
