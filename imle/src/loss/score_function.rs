//! Score-function estimator (REINFORCE) with exact k-subset samples and marginals.

use crate::baselines::{check_k, check_rows, check_temperature};
use crate::device::ImleDevice;
use crate::error::{check_finite, Error, Result};
use crate::exact::KSubset;
use crate::op::OpState;
use dfdx::shapes::{Dim, HasShape};
use dfdx::tensor::{NoneTape, Tape, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// The baseline `b` subtracted from the loss in the score-function estimate
/// `(L(z) − b)·∇θ log p(z; θ)`. Any `b` that does not depend on the current sample keeps
/// the estimate unbiased and can reduce its variance.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Baseline {
    /// `b = 0`: plain REINFORCE.
    #[default]
    None,
    /// A fixed `b`.
    Constant(f32),
    /// An exponential moving average of past mean losses, `b ← ρ·b + (1 − ρ)·mean(L)`,
    /// updated *after* each [`ScoreFunction::surrogate`] call (so the current batch never
    /// enters its own baseline); 0 before the first call. `momentum` = ρ in `[0, 1)`.
    MovingAverage {
        /// ρ.
        momentum: f32,
    },
}

/// The score-function estimator (SFE, REINFORCE; Williams 1992, *Simple statistical
/// gradient-following algorithms for connectionist reinforcement learning*) for the
/// k-subset distribution of Eq. 3, with exact samples and exact marginals from
/// [`KSubset`]:
///
/// ```text
/// ∇θ E_{z~p(z;θ)}[L(z)] = E[(L(z) − b)·∇θ log p(z; θ)],    ∇θ log p(z; θ) = (z − μ(θ))/τ.
/// ```
///
/// (For τ = 1 this is the `L·(z − μ(θ))` of the issue; the `1/τ` is the score of Eq. 3
/// at temperature τ.) k = 1 gives the categorical distribution.
///
/// **API.** A dfdx op only sees `∂L/∂z`, but SFE needs the *value* of the loss per
/// example, so SFE is not an op on z. It is used as in PyTorch, through a surrogate:
///
/// 1. [`ScoreFunction::sample`] draws exact samples `z ~ p(z; θ)` (a tensor without tape:
///    no gradient flows through z);
/// 2. compute the per-example losses `L(z_b)` however you like (e.g. a dfdx expression
///    of z, then `.as_vec()`);
/// 3. [`ScoreFunction::surrogate`] returns, per example, `(L_b − b)·log p(z_b; θ_b)`
///    whose gradient with respect to θ_b is `(L_b − b)·(z_b − μ(θ_b))/τ`; backpropagate
///    through it (e.g. `.mean()` over the batch) instead of through the loss.
///
/// The surrogate can be added to other loss terms (the loss itself, if it also depends
/// on other parameters).
///
/// ```
/// use dfdx::prelude::*;
/// use imle::loss::ScoreFunction;
///
/// let dev = Cpu::default();
/// let sfe = ScoreFunction::new(2)?.seed(1);
/// let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
/// let z = sfe.sample(&theta)?;
/// let b = dev.tensor([[1.0f32, 1.0, 0.0, 0.0]]);
/// let loss = (z.clone() - b).square().sum::<Rank1<1>, _>(); // L(z) = ||z − b||², per row
/// let surrogate = sfe.surrogate(theta.leaky_trace(), &z, &loss.as_vec())?;
/// let grads = surrogate.sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScoreFunction {
    k: usize,
    tau: f32,
    baseline: Baseline,
    average: Arc<Mutex<Option<f64>>>,
    state: OpState,
}

impl ScoreFunction {
    /// SFE for k-subsets (`k >= 1`; k = 1: categorical; `k <= m` is checked when
    /// applied), temperature 1, no baseline, seed 0.
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::InvalidK { k, m: 0 });
        }
        Ok(Self {
            k,
            tau: 1.0,
            baseline: Baseline::None,
            average: Arc::new(Mutex::new(None)),
            state: OpState::new(0),
        })
    }

    /// Temperature τ > 0 of Eq. 3.
    pub fn temperature(mut self, tau: f32) -> Result<Self> {
        check_temperature("tau", tau)?;
        self.tau = tau;
        Ok(self)
    }

    /// The variance-reduction baseline (resets a moving average): a constant must be
    /// finite, a momentum lie in `[0, 1)`.
    pub fn baseline(mut self, baseline: Baseline) -> Result<Self> {
        match baseline {
            Baseline::MovingAverage { momentum } if !(0.0..1.0).contains(&momentum) => {
                return Err(Error::InvalidParameter {
                    name: "momentum",
                    value: momentum as f64,
                    reason: "must lie in [0, 1)",
                })
            }
            Baseline::Constant(b) => check_finite("baseline", &[b])?,
            _ => {}
        }
        self.baseline = baseline;
        self.average = Arc::new(Mutex::new(None));
        Ok(self)
    }

    /// Seed of the samples (restarts the call counter).
    pub fn seed(mut self, seed: u64) -> Self {
        self.state.reseed(seed);
        self
    }

    /// Subset size k.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The baseline value the next [`ScoreFunction::surrogate`] call will use.
    pub fn current_baseline(&self) -> f32 {
        match self.baseline {
            Baseline::None => 0.0,
            Baseline::Constant(b) => b,
            Baseline::MovingAverage { .. } => self.lock().unwrap_or(0.0) as f32,
        }
    }

    /// The error of the last failed backward pass (see [`crate::op`]).
    pub fn take_backward_error(&self) -> Option<Error> {
        self.state.errors().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<f64>> {
        self.average.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn validate(&self, theta: &[f32], m: usize) -> Result<()> {
        check_rows(theta, m)?;
        check_k(self.k, m)
    }

    /// Exact samples on plain slices: one `z ~ p(z; θ_b)` per row (row-major, rows of
    /// length `m`). Row `b` of call `n` is drawn with `ChaCha8Rng` seeded with
    /// `call_seed(seed, n)`, stream `b`.
    pub fn sample_rows(&self, theta: &[f32], m: usize) -> Result<Vec<f32>> {
        self.validate(theta, m)?;
        let seed = self.state.next_seed();
        let (k, tau) = (self.k, self.tau as f64);
        let mut z = vec![0.0; theta.len()];
        z.par_chunks_mut(m)
            .zip(theta.par_chunks(m))
            .enumerate()
            .try_for_each(|(b, (z, theta))| -> Result<()> {
                let dist = KSubset::new(theta, k, tau)?;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(b as u64);
                dist.sample_into(&mut rng, z)
            })?;
        Ok(z)
    }

    /// The score-function estimate on plain slices: `(L_b − b)·(z_b − μ(θ_b))/τ` for every
    /// row, and the surrogate values `(L_b − b)·log p(z_b; θ_b)`. Uses (and then updates)
    /// the baseline.
    pub fn estimate_rows(
        &self,
        theta: &[f32],
        m: usize,
        z: &[f32],
        loss: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        self.validate(theta, m)?;
        let rows = theta.len() / m;
        if z.len() != theta.len() {
            return Err(Error::LengthMismatch {
                what: "samples z",
                expected: theta.len(),
                got: z.len(),
            });
        }
        if loss.len() != rows {
            return Err(Error::LengthMismatch {
                what: "per-example loss",
                expected: rows,
                got: loss.len(),
            });
        }
        check_finite("loss", loss)?;
        let baseline = self.current_baseline();
        let (k, tau) = (self.k, self.tau as f64);
        let per_row: Vec<Result<(Vec<f32>, f32)>> = theta
            .par_chunks(m)
            .zip(z.par_chunks(m))
            .zip(loss.par_iter())
            .enumerate()
            .map(|(b, ((theta, z), &l))| {
                let dist = KSubset::new(theta, k, tau)?;
                let logp = dist.log_prob(z)?;
                if logp == f64::NEG_INFINITY {
                    return Err(Error::InvalidProblem(format!(
                        "row {b} of z is not a {k}-subset state"
                    )));
                }
                let w = (l - baseline) as f64;
                let grad = z
                    .iter()
                    .zip(dist.marginals())
                    .map(|(&zi, mu)| (w * (zi as f64 - mu) / tau) as f32)
                    .collect();
                Ok((grad, (w * logp) as f32))
            })
            .collect();
        let mut grad = Vec::with_capacity(theta.len());
        let mut surrogate = Vec::with_capacity(rows);
        for r in per_row {
            let (g, s) = r?;
            grad.extend(g);
            surrogate.push(s);
        }
        if let Baseline::MovingAverage { momentum } = self.baseline {
            let mean = loss.iter().map(|&l| l as f64).sum::<f64>() / rows.max(1) as f64;
            let mut avg = self.lock();
            *avg = Some(match *avg {
                Some(a) => momentum as f64 * a + (1.0 - momentum as f64) * mean,
                None => mean,
            });
        }
        Ok((grad, surrogate))
    }

    /// Exact samples `z ~ p(z; θ)` for every row of θ (no gradient flows through them).
    pub fn sample<B: Dim, M: Dim, D: ImleDevice, T>(
        &self,
        theta: &Tensor<(B, M), f32, D, T>,
    ) -> Result<Tensor<(B, M), f32, D, NoneTape>> {
        let shape = *theta.shape();
        let z = self.sample_rows(&theta.as_vec(), shape.1.size())?;
        theta
            .device()
            .try_tensor_from_vec(z, shape)
            .map_err(Error::device)
    }

    /// The SFE surrogate: per example `(L_b − b)·log p(z_b; θ_b)`, shape `(B,)`, whose
    /// backward pass gives θ_b the gradient `g_b·(L_b − b)·(z_b − μ(θ_b))/τ` (`g_b` the
    /// upstream gradient of the surrogate, e.g. `1/B` for a mean).
    ///
    /// `z` must hold k-subset states (e.g. from [`ScoreFunction::sample`]) and `loss` the B
    /// per-example losses `L(z_b)`.
    pub fn surrogate<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>, T2>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        z: &Tensor<(B, M), f32, D, T2>,
        loss: &[f32],
    ) -> Result<Tensor<(B,), f32, D, T>> {
        let m = theta.shape().1.size();
        let (grad, surrogate) = self.estimate_rows(&theta.as_vec(), m, &z.as_vec(), loss)?;
        super::per_example_loss(theta, surrogate, grad, self.state.errors())
    }
}
