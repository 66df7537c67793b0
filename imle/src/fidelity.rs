//! Estimator fidelity: bias, variance and cosine similarity of a gradient estimator
//! against the exact gradient of an expected loss, for tractable k-subset problems.
//!
//! For the k-subset distribution of Eq. 3 at temperature τ, `p(z; θ) ∝ exp(<z, θ>/τ)`,
//! and any loss `L(z)`,
//!
//! ```text
//! ∇θ E_{z~p(z;θ)}[L(z)] = Σ_z p(z; θ)·L(z)·(z − μ(θ))/τ
//! ```
//!
//! which [`Problem::new`] computes exactly by enumerating all `C(m, k)` states (m ≤ 20;
//! the log-partition and marginals μ come from the dynamic programme of
//! [`crate::exact::KSubset`]). [`evaluate`] then draws an estimator N times and reports
//! its mean, its bias (the mean minus the exact gradient: I-MLE's, STE's and the
//! relaxations' bias is reported, not hidden), its variance and the cosine similarity of
//! its mean to the exact gradient.
//!
//! Any [`Estimator`] through [`estimator`], the score-function estimator through
//! [`sfe`], any closure `FnMut(&Problem, seed) -> Result<Vec<f32>>`, or any dfdx op
//! through [`from_op`].
//!
//! ```
//! use imle::{fidelity, solver::TopK, Imle, Noise, Target};
//!
//! // The synthetic problem of the paper: L(z) = ||z − b||², m = 10, k = 5.
//! let theta: Vec<f32> = (0..10).map(|i| (i as f32 - 4.5) / 3.0).collect();
//! let b: Vec<f32> = (0..10).map(|i| (i % 2) as f32).collect();
//! let problem = fidelity::Problem::squared_distance(theta, 5, 1.0, b)?;
//! let sfe = fidelity::evaluate(&problem, &mut fidelity::sfe(Default::default()), 200, 0)?;
//! let imle = Imle::new(TopK::new(5), Target::pid(1.0)?, Noise::sum_of_gamma(5.0, 1.0, 10)?);
//! let imle = fidelity::evaluate(&problem, &mut fidelity::estimator(imle), 200, 0)?;
//! println!("SFE bias {:.3} var {:.3} cos {:.3}", sfe.bias_norm, sfe.variance, sfe.cosine);
//! println!("I-MLE bias {:.3} var {:.3} cos {:.3}", imle.bias_norm, imle.variance, imle.cosine);
//! assert!(imle.cosine > 0.0);
//! # Ok::<(), imle::Error>(())
//! ```

use crate::error::{check_finite, Error, Result};
use crate::estimator::Estimator;
use crate::exact::KSubset;
use crate::loss::{Baseline, ScoreFunction};
use dfdx::tensor::{Cpu, OwnedTape, Tensor, TensorFromVec, Trace};
use dfdx::tensor_ops::{Backward, SumTo, TryMul};

/// The largest m for which [`Problem::new`] enumerates the states.
pub const MAX_ENUMERATION_M: usize = 20;

type LossFn = Box<dyn Fn(&[f32]) -> f32 + Send + Sync>;
type LossGradFn = Box<dyn Fn(&[f32]) -> Vec<f32> + Send + Sync>;

/// A tractable k-subset problem: parameters θ (m ≤ 20), subset size k, temperature τ of
/// Eq. 3, a loss `L(z)` and its gradient `∂L/∂z` (needed by the estimators that
/// backpropagate through z: I-MLE, STE, BB, the relaxations), with the exact expected loss
/// and its exact gradient.
pub struct Problem {
    theta: Vec<f32>,
    k: usize,
    tau: f64,
    loss: LossFn,
    loss_grad: LossGradFn,
    distribution: KSubset,
    expected_loss: f64,
    exact: Vec<f64>,
}

impl std::fmt::Debug for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Problem")
            .field("theta", &self.theta)
            .field("k", &self.k)
            .field("tau", &self.tau)
            .field("expected_loss", &self.expected_loss)
            .field("exact", &self.exact)
            .finish_non_exhaustive()
    }
}

impl Problem {
    /// A problem with loss `loss` and its gradient `loss_grad`; computes the exact
    /// gradient by enumeration. Errors: m > [`MAX_ENUMERATION_M`], invalid k or τ,
    /// non-finite θ or a non-finite loss value.
    pub fn new(
        theta: Vec<f32>,
        k: usize,
        tau: f64,
        loss: impl Fn(&[f32]) -> f32 + Send + Sync + 'static,
        loss_grad: impl Fn(&[f32]) -> Vec<f32> + Send + Sync + 'static,
    ) -> Result<Self> {
        let m = theta.len();
        if m > MAX_ENUMERATION_M {
            return Err(Error::InvalidParameter {
                name: "m",
                value: m as f64,
                reason: "exact enumeration needs m <= 20",
            });
        }
        let distribution = KSubset::new(&theta, k, tau)?;
        let (expected_loss, exact) = exact_gradient_with(&distribution, &loss)?;
        Ok(Self {
            theta,
            k,
            tau,
            loss: Box::new(loss),
            loss_grad: Box::new(loss_grad),
            distribution,
            expected_loss,
            exact,
        })
    }

    /// The synthetic problem of the paper's top-k experiment: `L(z) = ||z − b||²`,
    /// `∂L/∂z = 2(z − b)`.
    pub fn squared_distance(theta: Vec<f32>, k: usize, tau: f64, b: Vec<f32>) -> Result<Self> {
        if b.len() != theta.len() {
            return Err(Error::LengthMismatch {
                what: "target b",
                expected: theta.len(),
                got: b.len(),
            });
        }
        check_finite("target b", &b)?;
        let b2 = b.clone();
        Self::new(
            theta,
            k,
            tau,
            move |z| z.iter().zip(&b).map(|(z, b)| (z - b) * (z - b)).sum(),
            move |z| z.iter().zip(&b2).map(|(z, b)| 2.0 * (z - b)).collect(),
        )
    }

    /// θ.
    pub fn theta(&self) -> &[f32] {
        &self.theta
    }
    /// Number of items m.
    pub fn m(&self) -> usize {
        self.theta.len()
    }
    /// Subset size k.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Temperature τ of Eq. 3.
    pub fn tau(&self) -> f64 {
        self.tau
    }
    /// `L(z)`.
    pub fn loss(&self, z: &[f32]) -> f32 {
        (self.loss)(z)
    }
    /// `∂L/∂z`.
    pub fn loss_grad(&self, z: &[f32]) -> Vec<f32> {
        (self.loss_grad)(z)
    }
    /// The exact distribution `p(z; θ)`.
    pub fn distribution(&self) -> &KSubset {
        &self.distribution
    }
    /// `E_{z~p(z;θ)}[L(z)]`, exactly.
    pub fn expected_loss(&self) -> f64 {
        self.expected_loss
    }
    /// `∇θ E_{z~p(z;θ)}[L(z)]`, exactly.
    pub fn exact_gradient(&self) -> &[f64] {
        &self.exact
    }
}

/// Calls `f` with every 0/1 vector of length `m <= 20` with exactly `k` ones (Gosper's
/// hack, in increasing order of the bit masks).
pub fn for_each_k_subset(m: usize, k: usize, mut f: impl FnMut(&[f32])) -> Result<()> {
    if m > MAX_ENUMERATION_M {
        return Err(Error::InvalidParameter {
            name: "m",
            value: m as f64,
            reason: "exact enumeration needs m <= 20",
        });
    }
    if k == 0 || k > m {
        return Err(Error::InvalidK { k, m });
    }
    let mut z = vec![0.0f32; m];
    let limit: u32 = 1 << m;
    let mut mask: u32 = (1 << k) - 1;
    while mask < limit {
        for (i, v) in z.iter_mut().enumerate() {
            *v = ((mask >> i) & 1) as f32;
        }
        f(&z);
        let c = mask & mask.wrapping_neg();
        let r = mask + c;
        mask = (((r ^ mask) >> 2) / c) | r;
    }
    Ok(())
}

/// The exact expected loss and its gradient `Σ_z p(z; θ)·L(z)·(z − μ)/τ` (enumeration of
/// the `C(m, k)` states; m ≤ 20).
pub fn exact_gradient(
    theta: &[f32],
    k: usize,
    tau: f64,
    loss: impl Fn(&[f32]) -> f32,
) -> Result<(f64, Vec<f64>)> {
    let dist = KSubset::new(theta, k, tau)?;
    exact_gradient_with(&dist, &loss)
}

fn exact_gradient_with(dist: &KSubset, loss: &dyn Fn(&[f32]) -> f32) -> Result<(f64, Vec<f64>)> {
    let (m, k, tau) = (dist.m(), dist.k(), dist.tau());
    let mu = dist.marginals();
    let mut grad = vec![0.0f64; m];
    let mut expected = 0.0f64;
    let mut bad = None;
    for_each_k_subset(m, k, |z| {
        let l = loss(z);
        if !l.is_finite() {
            bad.get_or_insert(l);
        }
        // log_prob cannot fail here: z is a k-subset state of length m.
        let p = dist.log_prob(z).map(f64::exp).unwrap_or(0.0);
        let w = p * l as f64;
        expected += w;
        for ((g, &zi), mi) in grad.iter_mut().zip(z).zip(mu) {
            *g += w * (zi as f64 - mi) / tau;
        }
    })?;
    if let Some(value) = bad {
        return Err(Error::NonFinite {
            what: "loss",
            index: 0,
            value,
        });
    }
    Ok((expected, grad))
}

/// A gradient estimator: one stochastic estimate of `∇θ E[L(z)]` for a problem, drawn
/// with the given seed. Implemented by every closure `FnMut(&Problem, u64) -> Result<Vec<f32>>`.
pub trait GradientEstimator {
    /// One estimate (length m).
    fn estimate(&mut self, problem: &Problem, seed: u64) -> Result<Vec<f32>>;
}

impl<F: FnMut(&Problem, u64) -> Result<Vec<f32>>> GradientEstimator for F {
    fn estimate(&mut self, problem: &Problem, seed: u64) -> Result<Vec<f32>> {
        self(problem, seed)
    }
}

/// Fidelity of an estimator over N draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Fidelity {
    /// The exact gradient `∇θ E[L(z)]`.
    pub exact: Vec<f64>,
    /// The mean of the N estimates.
    pub mean: Vec<f64>,
    /// `mean − exact`.
    pub bias: Vec<f64>,
    /// `||mean − exact||`.
    pub bias_norm: f64,
    /// `||mean − exact|| / ||exact||` (∞ if the exact gradient is 0 and the bias is not).
    pub relative_bias: f64,
    /// The mean squared deviation of the estimates from their mean, summed over
    /// coordinates: `(1/N) Σ_n ||ĝ_n − mean||²` (the trace of the covariance).
    pub variance: f64,
    /// Cosine similarity of the mean to the exact gradient (0 if either is 0).
    pub cosine: f64,
    /// The mean over draws of the cosine similarity of each single estimate to the exact
    /// gradient (0 for zero estimates).
    pub mean_cosine: f64,
    /// Number of draws N.
    pub draws: usize,
}

impl Fidelity {
    /// The standard error of the mean, `sqrt(variance / N)`: an unbiased estimator's
    /// `bias_norm` is of this order.
    pub fn standard_error(&self) -> f64 {
        (self.variance / self.draws as f64).sqrt()
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (na * nb)
}

/// Draws `estimator` `draws` times (draw `n` gets the seed
/// [`crate::baselines::call_seed`]`(seed, n)`) and compares the estimates to the exact
/// gradient of `problem`.
pub fn evaluate<E: GradientEstimator + ?Sized>(
    problem: &Problem,
    estimator: &mut E,
    draws: usize,
    seed: u64,
) -> Result<Fidelity> {
    if draws == 0 {
        return Err(Error::ZeroSamples);
    }
    let m = problem.m();
    let exact = problem.exact.clone();
    let mut estimates = Vec::with_capacity(draws);
    let mut sum = vec![0.0f64; m];
    let mut sum_cos = 0.0;
    for n in 0..draws {
        let g = estimator.estimate(problem, crate::baselines::call_seed(seed, n as u64))?;
        if g.len() != m {
            return Err(Error::LengthMismatch {
                what: "estimated gradient",
                expected: m,
                got: g.len(),
            });
        }
        check_finite("estimated gradient", &g)?;
        let g: Vec<f64> = g.into_iter().map(f64::from).collect();
        sum_cos += cosine(&g, &exact);
        for (s, v) in sum.iter_mut().zip(&g) {
            *s += v;
        }
        estimates.push(g);
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / draws as f64).collect();
    let variance = estimates
        .iter()
        .map(|g| {
            g.iter()
                .zip(&mean)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
        })
        .sum::<f64>()
        / draws as f64;
    let bias: Vec<f64> = mean.iter().zip(&exact).map(|(a, b)| a - b).collect();
    let bias_norm = norm(&bias);
    let exact_norm = norm(&exact);
    let relative_bias = if exact_norm > 0.0 {
        bias_norm / exact_norm
    } else if bias_norm == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    Ok(Fidelity {
        cosine: cosine(&mean, &exact),
        mean_cosine: sum_cos / draws as f64,
        exact,
        mean,
        bias,
        bias_norm,
        relative_bias,
        variance,
        draws,
    })
}

/// The traced θ a [`from_op`] closure receives: one row `(1, m)`.
pub type TracedTheta = Tensor<(usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>;

/// Turns a dfdx op on z into a [`GradientEstimator`] by the chain rule: for each draw,
/// `z = op(θ, problem, seed)` (θ as a traced `(1, m)` tensor) and the estimate is the
/// gradient that the op's backward pass gives θ for the upstream gradient `∂L/∂z(z)`.
pub fn from_op<F>(mut op: F) -> impl GradientEstimator
where
    F: FnMut(TracedTheta, &Problem, u64) -> Result<TracedTheta>,
{
    let dev = Cpu::default();
    move |problem: &Problem, seed: u64| -> Result<Vec<f32>> {
        let theta = dev.tensor_from_vec(problem.theta().to_vec(), (1, problem.m()));
        let z = op(theta.leaky_trace(), problem, seed)?;
        let g = problem.loss_grad(&z.as_vec());
        check_finite("loss gradient", &g)?;
        let g = dev.tensor_from_vec(g, (1, problem.m()));
        let grads = z
            .try_mul(g)?
            .try_sum::<(), _>()?
            .try_backward()
            .map_err(|e| Error::Device(format!("backward pass failed: {e:?}")))?;
        Ok(grads.get(&theta).as_vec())
    }
}

/// Any [`Estimator`] (I-MLE, STE, BB, DPO, Gumbel-softmax, SoftSub, L2X), through
/// [`from_op`]: draw `n` uses `op.clone().seed(seed_n).apply(θ)`. Its solver (or k)
/// should be the problem's: `TopK::new(problem.k())`. For the relaxations the loss is
/// evaluated at the relaxed sample.
pub fn estimator<E: Estimator>(op: E) -> impl GradientEstimator {
    from_op(move |theta, _p: &Problem, seed| op.clone().seed(seed).apply(theta))
}

/// The score-function estimator with exact samples of the problem's distribution (its k
/// and τ) and the given baseline, through [`ScoreFunction::sample`] and
/// [`ScoreFunction::surrogate`]. A moving-average baseline persists across draws.
pub fn sfe(baseline: Baseline) -> impl GradientEstimator {
    let dev = Cpu::default();
    let mut state: Option<ScoreFunction> = None;
    move |problem: &Problem, seed: u64| -> Result<Vec<f32>> {
        let base = match &mut state {
            Some(s) => s,
            None => state.insert(
                ScoreFunction::new(problem.k())?
                    .temperature(problem.tau() as f32)?
                    .baseline(baseline)?,
            ),
        };
        let sfe = base.clone().seed(seed);
        let theta = dev.tensor_from_vec(problem.theta().to_vec(), (1, problem.m()));
        let z = sfe.sample(&theta)?;
        let loss = [problem.loss(&z.as_vec())];
        let surrogate = sfe.surrogate(theta.leaky_trace(), &z, &loss)?;
        let grads = surrogate
            .try_sum::<(), _>()?
            .try_backward()
            .map_err(|e| Error::Device(format!("backward pass failed: {e:?}")))?;
        Ok(grads.get(&theta).as_vec())
    }
}
