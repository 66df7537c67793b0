//! The I-MLE estimator (Algorithm 1, Eq. 9) and its dfdx op.
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
//! **Forward for S > 1.** [`Imle::apply`] returns the mean of the S samples (shape of θ;
//! the upstream gradient of the mean is used as `g` for every sample), and
//! [`Imle::apply_samples`] returns all S samples as rows `(b, s)` like torch-imle, each
//! with its own upstream gradient.

use crate::baselines::check_rows;
use crate::error::{check_finite, check_positive, Error, Result};
use crate::noise::{Noise, Seeds};
use crate::op::{custom_op, BackwardErrors};
use crate::solver::MapSolver;
use crate::target::Target;
use dfdx::shapes::{Const, Dim, HasShape, Shape};
use dfdx::tensor::{Cpu, Tape, Tensor};

/// Configuration and state of the I-MLE estimator.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::{Imle, Noise, Target, solver::TopK};
///
/// let dev = Cpu::default();
/// let imle = Imle::new(Target::pid(2.0)?, Noise::sum_of_gamma(2.0, 1.0, 10)?).seed(7);
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
/// let z = imle.apply(theta.leaky_trace(), &TopK::new(2))?;
/// assert_eq!(z.as_vec().iter().sum::<f32>(), 2.0); // a 2-subset
/// // Any loss of z; its gradient reaches θ through Eq. 9.
/// let target = dev.tensor([[1.0f32, 1.0, 0.0, 0.0]]);
/// let grads = (z - target).square().sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Imle {
    target: Target,
    noise: Noise,
    samples: usize,
    input_temperature: f32,
    target_temperature: f32,
    reuse_noise: bool,
    two_sided: bool,
    scale_by_lambda: bool,
    seeds: Seeds,
    errors: BackwardErrors,
}

/// A `(B, N, M)` tensor of N blocks of M values per example.
pub type Blocks<B, const N: usize, const M: usize, T> =
    Tensor<(B, Const<N>, Const<M>), f32, Cpu, T>;

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

impl Imle {
    /// I-MLE with the given target and noise, S = 1, temperatures 1, the forward noise
    /// reused for the target, one-sided, no 1/λ scaling, seed 0.
    pub fn new(target: Target, noise: Noise) -> Self {
        Self {
            target,
            noise,
            samples: 1,
            input_temperature: 1.0,
            target_temperature: 1.0,
            reuse_noise: true,
            two_sided: false,
            scale_by_lambda: false,
            seeds: Seeds::new(0),
            errors: BackwardErrors::default(),
        }
    }

    /// Number of samples S (≥ 1).
    pub fn samples(mut self, samples: usize) -> Self {
        self.samples = samples;
        self
    }
    /// Temperature τ_in multiplying the forward noise.
    pub fn input_temperature(mut self, t: f32) -> Self {
        self.input_temperature = t;
        self
    }
    /// Temperature τ_t multiplying the target's noise.
    pub fn target_temperature(mut self, t: f32) -> Self {
        self.target_temperature = t;
        self
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
    /// Seed of all noise; the same seed and the same sequence of calls give the same numbers.
    /// Forward call `n` draws its noise with [`crate::noise::call_seed`]`(seed, 2n)` and a
    /// fresh target noise (if not reused) with `call_seed(seed, 2n + 1)`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeds = Seeds::new(seed);
        self
    }

    /// The target distribution.
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// The noise distribution.
    pub fn noise(&self) -> &Noise {
        &self.noise
    }

    /// The error of the last failed backward pass (dfdx's `try_backward` then returns
    /// `Err(CpuError::WrongNumElements)`, which cannot carry it).
    pub fn take_backward_error(&self) -> Option<Error> {
        self.errors.take()
    }

    fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::ZeroSamples);
        }
        check_positive("input_temperature", self.input_temperature as f64)?;
        check_positive("target_temperature", self.target_temperature as f64)
    }

    /// Forward pass on plain slices: `S` samples `MAP(θ + τ_in·ε)` for every row of
    /// `theta` (row-major, rows of length `m`).
    pub fn forward<S: MapSolver + ?Sized>(
        &self,
        theta: &[f32],
        m: usize,
        solver: &S,
    ) -> Result<ImleSamples> {
        self.validate()?;
        solver.check_len(m)?;
        check_rows(theta, m)?;
        let noise_seed = self.seeds.next();
        let target_seed = self.seeds.next();
        let s = self.samples;
        let mut noise = vec![0.0; theta.len() * s];
        self.noise.fill(noise_seed, &mut noise);
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

    /// Backward pass (Eq. 9): the estimated `∇θ L`, row-major `(B, M)`.
    ///
    /// `grad_z` is `∂L/∂z` either per sample (`(B, S, M)`, as for
    /// [`Imle::apply_samples`]) or per row (`(B, M)`, shared by all samples, as for the
    /// mean returned by [`Imle::apply`]).
    pub fn backward<S: MapSolver + ?Sized>(
        &self,
        fwd: &ImleSamples,
        grad_z: &[f32],
        solver: &S,
    ) -> Result<Vec<f32>> {
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

    /// The I-MLE op: `MAP(θ + τ_in·ε)` for every row of θ, averaged over the S samples,
    /// with the gradient of Eq. 9 in the backward pass.
    ///
    /// Works with any tape (`OwnedTape` for training, `NoneTape` for inference) and with
    /// compile-time (`Const<M>`) or run-time (`usize`) dims. For higher-rank inputs, see
    /// [`Imle::apply_blocks`].
    pub fn apply<B: Dim, M: Dim, T: Tape<f32, Cpu>, S: MapSolver + Clone + 'static>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        solver: &S,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        let shape = *theta.shape();
        let fwd = self.forward(&theta.as_vec(), shape.1.size(), solver)?;
        let out = if fwd.samples == 1 {
            fwd.z.clone()
        } else {
            fwd.mean()
        };
        self.attach(theta, shape, out, fwd, solver)
    }

    /// Like [`Imle::apply`], but returns all S samples: row `b·S + s` is sample `s` of
    /// row `b` (torch-imle's layout), each with its own upstream gradient.
    pub fn apply_samples<B: Dim, M: Dim, T: Tape<f32, Cpu>, S: MapSolver + Clone + 'static>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        solver: &S,
    ) -> Result<Tensor<(usize, M), f32, Cpu, T>> {
        let (b, m) = *theta.shape();
        let fwd = self.forward(&theta.as_vec(), m.size(), solver)?;
        let out = fwd.z.clone();
        self.attach(theta, (b.size() * fwd.samples, m), out, fwd, solver)
    }

    /// I-MLE on a `(B, N, M)` tensor of N independent blocks per example (e.g. the
    /// discrete VAE's 20 blocks of 20 logits): each block of M is one MAP problem.
    /// Shorthand for [`Imle::apply_rows`] with rows of length M.
    pub fn apply_blocks<
        B: Dim,
        const N: usize,
        const M: usize,
        T: Tape<f32, Cpu>,
        S: MapSolver + Clone + 'static,
    >(
        &self,
        theta: Blocks<B, N, M, T>,
        solver: &S,
    ) -> Result<Blocks<B, N, M, T>> {
        self.apply_rows(theta, M, solver)
    }

    /// I-MLE on a tensor of any shape, read as rows of `row_len` values (row-major):
    /// reshapes to `(rows, row_len)`, applies [`Imle::apply`], and reshapes back.
    ///
    /// For a batch of K × K grids, `(B, K, K)` with `row_len = K·K`; for blocks of logits
    /// `(B, N, M)` with `row_len = M`.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use imle::{solver::GridShortestPath, Imle, Noise, Target};
    /// let dev = Cpu::default();
    /// // θ = −cost for two 3 × 3 grids of unit costs.
    /// let theta: Tensor<Rank3<2, 3, 3>, f32, _> = dev.ones() * -1.0;
    /// let imle = Imle::new(Target::pid(1.0)?, Noise::None);
    /// let solver = GridShortestPath::new(3);
    /// let paths = imle.apply_rows(theta, 9, &solver)?;
    /// // The diagonal: 3 cells per grid.
    /// assert_eq!(paths.as_vec().iter().sum::<f32>(), 6.0);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn apply_rows<Sh: Shape, T: Tape<f32, Cpu>, S: MapSolver + Clone + 'static>(
        &self,
        theta: Tensor<Sh, f32, Cpu, T>,
        row_len: usize,
        solver: &S,
    ) -> Result<Tensor<Sh, f32, Cpu, T>> {
        use dfdx::tensor_ops::ReshapeTo;
        let shape = *theta.shape();
        let n = shape.num_elements();
        if row_len == 0 || !n.is_multiple_of(row_len) {
            return Err(Error::LengthMismatch {
                what: "tensor size (a multiple of row_len)",
                expected: row_len.max(1) * (n / row_len.max(1) + 1),
                got: n,
            });
        }
        let flat = theta
            .try_reshape_like(&(n / row_len, row_len))
            .map_err(Error::from)?;
        let z = self.apply(flat, solver)?;
        z.try_reshape_like(&shape).map_err(Error::from)
    }

    fn attach<S0: dfdx::shapes::Shape, S2: dfdx::shapes::Shape, T, S>(
        &self,
        theta: Tensor<S0, f32, Cpu, T>,
        shape: S2,
        out: Vec<f32>,
        fwd: ImleSamples,
        solver: &S,
    ) -> Result<Tensor<S2, f32, Cpu, T>>
    where
        T: Tape<f32, Cpu>,
        S: MapSolver + Clone + 'static,
    {
        let this = self.clone();
        let solver = solver.clone();
        custom_op(
            theta,
            shape,
            out,
            move |g| this.backward(&fwd, g, &solver),
            &self.errors,
        )
    }
}

/// `θ + τ·ε` for every sample: rows `(b, s)` of the result are `θ_b + τ·ε_{b,s}`.
fn perturb(theta: &[f32], m: usize, s: usize, noise: &[f32], tau: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(noise.len());
    for (b, row) in theta.chunks(m).enumerate() {
        for k in 0..s {
            let eps = &noise[(b * s + k) * m..(b * s + k + 1) * m];
            out.extend(row.iter().zip(eps).map(|(t, e)| t + tau * e));
        }
    }
    out
}
