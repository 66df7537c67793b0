//! The I-MLE estimator (Algorithm 1, Eq. 9), an [`Estimator`] that owns its MAP solver.
//!
//! Forward: `z = MAP(θ + τ_in·ε)`. Backward, with `g = ∂L/∂z` and the target parameters
//! `θ' = T(θ, g)` of a [`Target`]:
//!
//! ```text
//! one-sided:  ∇θ L ≈ (1/S) Σ_s [ MAP(θ + τ_in·ε_s) − MAP(θ' + τ_t·ε'_s) ]
//! two-sided:  ∇θ L ≈ (1/S) Σ_s [ MAP(T(θ, −g) + τ_t·ε'_s) − MAP(T(θ, g) + τ_t·ε'_s) ] / 2
//! ```
//!
//! optionally divided by λ. `ε'_s = ε_s` (Algorithm 1, the default) or a fresh sample.
//! For PID the two-sided points are `θ ± λ·g`, so in expectation the two-sided estimate
//! is the mean of the forward and backward differences. (The issue text wrote the two
//! points with swapped signs; that would ascend the loss, so this follows the sign of the
//! one-sided estimate.)
//!
//! **Forward for S > 1.** [`Estimator::apply`] returns the mean of the S samples (shape
//! of θ; the upstream gradient of the mean is used as `g` for every sample), and
//! [`Imle::apply_samples`] returns all S samples as rows `(b, s)` like torch-imle, each
//! with its own upstream gradient.

use crate::baselines::check_rows;
use crate::device::ImleDevice;
use crate::error::{check_finite, check_positive, Error, Result};
use crate::estimator::Estimator;
use crate::noise::Noise;
use crate::op::{custom_op, OpState};
use crate::solver::MapSolver;
use crate::target::Target;
use dfdx::shapes::{Dim, HasShape};
use dfdx::tensor::{Tape, Tensor};

/// Configuration and state of the I-MLE estimator.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::prelude::*;
///
/// let dev = Cpu::default();
/// let imle = Imle::new(TopK::new(2), Target::pid(2.0)?, Noise::sum_of_gamma(2.0, 1.0, 10)?).seed(7);
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
/// let z = imle.apply(theta.leaky_trace())?;
/// assert_eq!(z.as_vec().iter().sum::<f32>(), 2.0); // a 2-subset
/// // Any loss of z; its gradient reaches θ through Eq. 9.
/// let target = dev.tensor([[1.0f32, 1.0, 0.0, 0.0]]);
/// let grads = (z - target).square().sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Imle<S> {
    solver: S,
    target: Target,
    noise: Noise,
    samples: usize,
    input_temperature: f32,
    target_temperature: f32,
    reuse_noise: bool,
    two_sided: bool,
    scale_by_lambda: bool,
    state: OpState,
}

/// The S perturb-and-MAP samples of one forward pass and what their backward needs.
#[derive(Debug, Clone)]
pub struct ImleSamples {
    /// θ, row-major `(B, M)`.
    pub theta: Vec<f32>,
    /// Row length M.
    pub m: usize,
    /// Number of samples S.
    pub samples: usize,
    /// Base noise ε (before temperature), row-major `(B, S, M)`.
    pub noise: Vec<f32>,
    /// States `MAP(θ + τ_in·ε)`, row-major `(B, S, M)`.
    pub z: Vec<f32>,
    target_seed: u64,
}

impl ImleSamples {
    /// Batch size B.
    pub fn batch(&self) -> usize {
        self.theta.len() / self.m
    }

    /// What the layer outputs: the sample itself when S = 1, else [`ImleSamples::mean`].
    pub fn output(&self) -> Vec<f32> {
        if self.samples == 1 {
            self.z.clone()
        } else {
            self.mean()
        }
    }

    /// The mean of the S samples, row-major `(B, M)`.
    pub fn mean(&self) -> Vec<f32> {
        mean_over_samples(&self.z, self.m, self.samples)
    }
}

/// The mean over the S samples of each row: `(B, S, M)` row-major in, `(B, M)` out.
pub(crate) fn mean_over_samples(z: &[f32], m: usize, s: usize) -> Vec<f32> {
    let mut out = vec![0.0; z.len() / s];
    for (row, zs) in out.chunks_mut(m).zip(z.chunks(s * m)) {
        for z in zs.chunks(m) {
            for (o, v) in row.iter_mut().zip(z) {
                *o += v;
            }
        }
        row.iter_mut().for_each(|o| *o /= s as f32);
    }
    out
}

impl<S: MapSolver + Clone + 'static> Imle<S> {
    /// I-MLE with the given MAP solver, target and noise, S = 1, temperatures 1, the
    /// forward noise reused for the target, one-sided, no 1/λ scaling, seed 0.
    pub fn new(solver: S, target: Target, noise: Noise) -> Self {
        Self {
            solver,
            target,
            noise,
            samples: 1,
            input_temperature: 1.0,
            target_temperature: 1.0,
            reuse_noise: true,
            two_sided: false,
            scale_by_lambda: false,
            state: OpState::new(0),
        }
    }

    /// Number of samples S (≥ 1; 0 is an error).
    pub fn samples(mut self, samples: usize) -> Result<Self> {
        if samples == 0 {
            return Err(Error::ZeroSamples);
        }
        self.samples = samples;
        Ok(self)
    }
    /// Temperature τ_in > 0 multiplying the forward noise.
    pub fn input_temperature(mut self, t: f32) -> Result<Self> {
        check_positive("input_temperature", t as f64)?;
        self.input_temperature = t;
        Ok(self)
    }
    /// Temperature τ_t > 0 multiplying the target's noise.
    pub fn target_temperature(mut self, t: f32) -> Result<Self> {
        check_positive("target_temperature", t as f64)?;
        self.target_temperature = t;
        Ok(self)
    }
    /// Reuse the forward noise for the target (Algorithm 1; default) or draw it afresh.
    pub fn reuse_noise(mut self, reuse: bool) -> Self {
        self.reuse_noise = reuse;
        self
    }
    /// One-sided (default) or two-sided (central difference) estimate.
    pub fn two_sided(mut self, two_sided: bool) -> Self {
        self.two_sided = two_sided;
        self
    }
    /// Divide the gradient by λ (the discrete-VAE and Warcraft code do; default: no).
    pub fn scale_by_lambda(mut self, scale: bool) -> Self {
        self.scale_by_lambda = scale;
        self
    }
    /// The MAP solver.
    pub fn solver(&self) -> &S {
        &self.solver
    }
    /// The target distribution.
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// The noise distribution.
    pub fn noise(&self) -> &Noise {
        &self.noise
    }

    /// The `S` samples `MAP(θ + τ_in·ε)` for every row of `theta` (row-major, rows of
    /// length `m`). Forward call `n` draws its noise with
    /// [`crate::noise::call_seed`]`(seed, 2n)` and a fresh target noise (if not reused)
    /// with `call_seed(seed, 2n + 1)`.
    pub fn sample(&self, theta: &[f32], m: usize) -> Result<ImleSamples> {
        self.solver.check_len(m)?;
        check_rows(theta, m)?;
        let noise_seed = self.state.next_seed();
        let target_seed = self.state.next_seed();
        let mut noise = vec![0.0; theta.len() * self.samples];
        self.noise.fill(noise_seed, &mut noise);
        self.samples_of(theta, m, noise, target_seed)
    }

    /// Like [`Imle::sample`], with the base noise ε given (row-major `(B, S, M)`, e.g.
    /// drawn by another implementation): the target reuses it, or draws its own from the
    /// estimator's seed when noise reuse is off.
    pub fn sample_with_noise(
        &self,
        theta: &[f32],
        m: usize,
        noise: Vec<f32>,
    ) -> Result<ImleSamples> {
        self.solver.check_len(m)?;
        check_rows(theta, m)?;
        if noise.len() != theta.len() * self.samples {
            return Err(Error::LengthMismatch {
                what: "noise",
                expected: theta.len() * self.samples,
                got: noise.len(),
            });
        }
        check_finite("noise", &noise)?;
        // The call counter moves as in `sample`, whose first seed would draw ε.
        let _ = self.state.next_seed();
        let target_seed = self.state.next_seed();
        self.samples_of(theta, m, noise, target_seed)
    }

    fn samples_of(
        &self,
        theta: &[f32],
        m: usize,
        noise: Vec<f32>,
        target_seed: u64,
    ) -> Result<ImleSamples> {
        let solver = &self.solver;
        let s = self.samples;
        let perturbed = perturb(theta, m, s, &noise, self.input_temperature);
        let mut z = vec![0.0; perturbed.len()];
        solver.solve_batch(&perturbed, m, &mut z)?;
        Ok(ImleSamples {
            theta: theta.to_vec(),
            m,
            samples: s,
            noise,
            z,
            target_seed,
        })
    }

    /// The estimate of Eq. 9, `∇θ L`, row-major `(B, M)`.
    ///
    /// `grad_z` is `∂L/∂z` either per sample (`(B, S, M)`, as for
    /// [`Imle::apply_samples`]) or per row (`(B, M)`, shared by all samples, as for the
    /// mean returned by [`Estimator::apply`]).
    pub fn gradient(&self, fwd: &ImleSamples, grad_z: &[f32]) -> Result<Vec<f32>> {
        let solver = &self.solver;
        let (m, s) = (fwd.m, fwd.samples);
        let per_sample = match grad_z.len() {
            n if n == fwd.z.len() => true,
            n if n == fwd.theta.len() => false,
            n => {
                return Err(Error::LengthMismatch {
                    what: "upstream gradient",
                    expected: fwd.z.len(),
                    got: n,
                })
            }
        };
        check_finite("upstream gradient", grad_z)?;
        let target_noise = if self.reuse_noise {
            std::borrow::Cow::Borrowed(&fwd.noise)
        } else {
            let mut fresh = vec![0.0; fwd.noise.len()];
            self.noise.fill(fwd.target_seed, &mut fresh);
            std::borrow::Cow::Owned(fresh)
        };
        let points = if self.two_sided { 2 } else { 1 };
        let rows = fwd.z.len() / m; // B·S
        let mut thetas = vec![0.0; rows * points * m];
        let mut lambdas = vec![None; rows];
        for r in 0..rows {
            let b = r / s;
            let theta = &fwd.theta[b * m..(b + 1) * m];
            let g = if per_sample {
                &grad_z[r * m..(r + 1) * m]
            } else {
                &grad_z[b * m..(b + 1) * m]
            };
            let eps = &target_noise[r * m..(r + 1) * m];
            let base = r * points * m;
            // Point 0: T(θ, g); point 1 (two-sided): T(θ, −g).
            lambdas[r] = self
                .target
                .params(theta, g, 1.0, &mut thetas[base..base + m]);
            if self.two_sided {
                self.target
                    .params(theta, g, -1.0, &mut thetas[base + m..base + 2 * m]);
            }
            for row in thetas[base..base + points * m].chunks_mut(m) {
                for (t, e) in row.iter_mut().zip(eps) {
                    *t += self.target_temperature * e;
                }
            }
        }
        check_finite("target parameters theta'", &thetas)?;
        let mut z_target = vec![0.0; thetas.len()];
        solver.solve_batch(&thetas, m, &mut z_target)?;

        let mut grad = vec![0.0; fwd.theta.len()];
        for (r, lambda) in lambdas.iter().enumerate() {
            let b = r / s;
            let base = r * points * m;
            let mut scale = 1.0 / s as f32;
            if self.two_sided {
                scale *= 0.5;
            }
            if self.scale_by_lambda {
                if let Some(l) = lambda {
                    scale /= l;
                }
            }
            let out = &mut grad[b * m..(b + 1) * m];
            let z_minus = &z_target[base..base + m];
            let z_plus: &[f32] = if self.two_sided {
                &z_target[base + m..base + 2 * m]
            } else {
                &fwd.z[r * m..(r + 1) * m]
            };
            for ((o, p), q) in out.iter_mut().zip(z_plus).zip(z_minus) {
                *o += scale * (p - q);
            }
        }
        self.target.observe(&grad);
        Ok(grad)
    }

    /// Like [`Estimator::apply`] on rows `(B, M)`, with the base noise ε given (row-major
    /// `(B, S, M)`), as the baselines' `apply_with_noise`: to compare with another
    /// implementation on the same draw.
    pub fn apply_with_noise<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        noise: Vec<f32>,
    ) -> Result<Tensor<(B, M), f32, D, T>> {
        let shape = *theta.shape();
        let fwd = self.sample_with_noise(&theta.as_vec(), shape.1.size(), noise)?;
        let out = fwd.output();
        let this = self.clone();
        custom_op(
            theta,
            shape,
            out,
            move |g| this.gradient(&fwd, g),
            self.state.errors(),
        )
    }

    /// Like [`Estimator::apply`], but returns all S samples: row `b·S + s` is sample `s`
    /// of row `b` (torch-imle's layout), each with its own upstream gradient.
    pub fn apply_samples<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
    ) -> Result<Tensor<(usize, M), f32, D, T>> {
        let (b, m) = *theta.shape();
        let fwd = self.sample(&theta.as_vec(), m.size())?;
        let out = fwd.z.clone();
        let this = self.clone();
        custom_op(
            theta,
            (b.size() * fwd.samples, m),
            out,
            move |g| this.gradient(&fwd, g),
            self.state.errors(),
        )
    }
}

/// The I-MLE op: `MAP(θ + τ_in·ε)` for every row of θ, averaged over the S samples, with
/// the gradient of Eq. 9.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::prelude::*;
/// // θ = −cost for two 3 × 3 grids of unit costs.
/// let dev = Cpu::default();
/// let theta: Tensor<Rank3<2, 3, 3>, f32, _> = dev.ones() * -1.0;
/// let imle = Imle::new(GridShortestPath::new(3), Target::pid(1.0)?, Noise::None);
/// let paths = imle.apply_rows(theta, 9)?;
/// // The diagonal: 3 cells per grid.
/// assert_eq!(paths.as_vec().iter().sum::<f32>(), 6.0);
/// # Ok::<(), imle::Error>(())
/// ```
impl<S: MapSolver + Clone + 'static> Estimator for Imle<S> {
    type Saved = ImleSamples;

    fn forward(&self, theta: &[f32], m: usize) -> Result<(Vec<f32>, ImleSamples)> {
        let fwd = self.sample(theta, m)?;
        Ok((fwd.output(), fwd))
    }

    fn backward(&self, saved: &ImleSamples, grad_out: &[f32]) -> Result<Vec<f32>> {
        self.gradient(saved, grad_out)
    }

    fn state(&self) -> &OpState {
        &self.state
    }

    fn state_mut(&mut self) -> &mut OpState {
        &mut self.state
    }
}

/// `θ + τ·ε` for every sample: rows `(b, s)` of the result are `θ_b + τ·ε_{b,s}`.
pub(crate) fn perturb(theta: &[f32], m: usize, s: usize, noise: &[f32], tau: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(noise.len());
    for (b, row) in theta.chunks(m).enumerate() {
        for k in 0..s {
            let eps = &noise[(b * s + k) * m..(b * s + k + 1) * m];
            out.extend(row.iter().zip(eps).map(|(t, e)| t + tau * e));
        }
    }
    out
}
