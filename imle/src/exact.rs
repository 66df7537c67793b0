//! Exact k-subset and categorical distributions (Eq. 3 of the I-MLE paper).
//!
//! The k-subset distribution is the exponential family of Eq. 3 restricted to the states
//! `C = {z ∈ {0,1}^m : Σ_i z_i = k}`:
//!
//! ```text
//! p(z; θ) = exp(<z, θ>/τ − A(θ)),     A(θ) = log Σ_{z ∈ C} exp(<z, θ>/τ).
//! ```
//!
//! [`KSubset`] computes the log-partition `A(θ)` by a dynamic programme in log space in
//! O(m·k), the exact marginals `μ(θ) = E[z] = τ·∇θ A(θ)` by a forward-backward pass over
//! the same programme (no enumeration), exact samples (sequential conditional sampling
//! from the backward table, O(m) per sample) and log-probabilities of states. Everything
//! is computed in `f64` and is stable for `|θ|/τ` up to at least 1e5 and m in the
//! thousands.
//!
//! [`categorical`] is the case k = 1 (one-hot states): softmax, log-softmax and exact
//! sampling.

use crate::error::{Error, Result};
use rand::Rng;

/// `log(exp(a) + exp(b))`, exact for infinite arguments.
#[inline]
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

fn scaled_theta<T: Copy + Into<f64>>(theta: &[T], tau: f64) -> Result<Vec<f64>> {
    if !(tau.is_finite() && tau > 0.0) {
        return Err(Error::InvalidParameter {
            name: "tau",
            value: tau,
            reason: "must be finite and > 0",
        });
    }
    if theta.is_empty() {
        return Err(Error::LengthMismatch {
            what: "theta (at least one entry)",
            expected: 1,
            got: 0,
        });
    }
    theta
        .iter()
        .enumerate()
        .map(|(index, &t)| {
            let t: f64 = t.into();
            if t.is_finite() {
                Ok(t / tau)
            } else {
                Err(Error::NonFinite {
                    what: "theta",
                    index,
                    value: t as f32,
                })
            }
        })
        .collect()
}

/// The exact k-subset distribution of Eq. 3: `p(z; θ) ∝ exp(<z, θ>/τ)` over binary vectors
/// with exactly `k` ones.
///
/// Construction runs the forward-backward dynamic programme once (O(m·k) time and memory);
/// the log-partition and marginals are then free and every sample costs O(m).
///
/// ```
/// use imle::exact::KSubset;
/// use rand::SeedableRng;
///
/// let p = KSubset::new(&[1.0f32, 0.0, -1.0, 2.0], 2, 1.0)?;
/// // Marginals μ = E[z] sum to k.
/// let mu = p.marginals();
/// assert!((mu.iter().sum::<f64>() - 2.0).abs() < 1e-12);
/// // Exact samples are 2-subsets; their log-probability is <z, θ>/τ − A(θ).
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let z = p.sample(&mut rng);
/// assert_eq!(z.iter().sum::<f32>(), 2.0);
/// assert!(p.log_prob(&z)? <= 0.0);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct KSubset {
    /// θ/τ.
    scaled: Vec<f64>,
    k: usize,
    tau: f64,
    log_partition: f64,
    marginals: Vec<f64>,
    /// `beta[i·(k+1) + j]` = log Σ over states of items `i..m` with `j` ones of
    /// `exp(Σ_l z_l θ_l/τ)`; `i` in `0..=m`.
    beta: Vec<f64>,
}

impl KSubset {
    /// The k-subset distribution with parameters `theta` (length m, finite), subset size
    /// `1 <= k <= m` and temperature `tau > 0`.
    pub fn new<T: Copy + Into<f64>>(theta: &[T], k: usize, tau: f64) -> Result<Self> {
        let scaled = scaled_theta(theta, tau)?;
        let m = scaled.len();
        if k == 0 || k > m {
            return Err(Error::InvalidK { k, m });
        }
        let w = k + 1;
        let ninf = f64::NEG_INFINITY;
        // Forward table: alpha[i][j] over items 0..i with j ones.
        let mut alpha = vec![ninf; (m + 1) * w];
        alpha[0] = 0.0;
        for i in 1..=m {
            let s = scaled[i - 1];
            let (prev, cur) = alpha.split_at_mut(i * w);
            let prev = &prev[(i - 1) * w..];
            let cur = &mut cur[..w];
            for j in 0..=k.min(i) {
                let skip = prev[j];
                let take = if j > 0 { prev[j - 1] + s } else { ninf };
                cur[j] = log_add_exp(skip, take);
            }
        }
        // Backward table: beta[i][j] over items i..m with j ones.
        let mut beta = vec![ninf; (m + 1) * w];
        beta[m * w] = 0.0;
        for i in (0..m).rev() {
            let s = scaled[i];
            let (cur, next) = beta.split_at_mut((i + 1) * w);
            let cur = &mut cur[i * w..];
            let next = &next[..w];
            for j in 0..=k.min(m - i) {
                let skip = next[j];
                let take = if j > 0 { next[j - 1] + s } else { ninf };
                cur[j] = log_add_exp(skip, take);
            }
        }
        let log_partition = alpha[m * w + k];
        // μ_i = Σ_j exp(alpha[i][j] + s_i + beta[i+1][k−1−j] − A).
        let marginals = (0..m)
            .map(|i| {
                let mut mu = 0.0;
                for j in 0..k {
                    let a = alpha[i * w + j];
                    let b = beta[(i + 1) * w + (k - 1 - j)];
                    if a > ninf && b > ninf {
                        mu += (a + scaled[i] + b - log_partition).exp();
                    }
                }
                mu.clamp(0.0, 1.0)
            })
            .collect();
        Ok(Self {
            scaled,
            k,
            tau,
            log_partition,
            marginals,
            beta,
        })
    }

    /// Number of items m.
    pub fn m(&self) -> usize {
        self.scaled.len()
    }
    /// Subset size k.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Temperature τ.
    pub fn tau(&self) -> f64 {
        self.tau
    }

    /// The log-partition function `A(θ) = log Σ_{z ∈ C} exp(<z, θ>/τ)` of Eq. 3.
    pub fn log_partition(&self) -> f64 {
        self.log_partition
    }

    /// The exact marginals `μ_i(θ) = P(z_i = 1) = E[z_i]`, which equal `τ·∂A/∂θ_i`.
    /// They lie in `[0, 1]` and sum to k.
    pub fn marginals(&self) -> &[f64] {
        &self.marginals
    }

    /// `∇θ A(θ) = μ(θ)/τ`: the gradient of the log-partition, i.e. the expectation of the
    /// score `∇θ log p(z; θ) = (z − μ)/τ` shifted by `z/τ`.
    pub fn grad_log_partition(&self) -> Vec<f64> {
        self.marginals.iter().map(|m| m / self.tau).collect()
    }

    /// An exact sample `z ~ p(z; θ)` written into `z` (length m, else
    /// [`Error::LengthMismatch`]): items are decided in
    /// order, item `i` being taken with probability
    /// `exp(θ_i/τ + B_{i+1}(r − 1) − B_i(r))`, where `r` is the number of ones still to
    /// place and `B` the backward table.
    pub fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, z: &mut [f32]) -> Result<()> {
        let (m, w) = (self.m(), self.k + 1);
        if z.len() != m {
            return Err(Error::LengthMismatch {
                what: "sample buffer z",
                expected: m,
                got: z.len(),
            });
        }
        let mut r = self.k;
        for (i, zi) in z.iter_mut().enumerate() {
            let take = if r == 0 {
                false
            } else if m - i == r {
                true
            } else {
                let p =
                    (self.scaled[i] + self.beta[(i + 1) * w + r - 1] - self.beta[i * w + r]).exp();
                rng.gen::<f64>() < p
            };
            if take {
                *zi = 1.0;
                r -= 1;
            } else {
                *zi = 0.0;
            }
        }
        Ok(())
    }

    /// An exact sample `z ~ p(z; θ)`: a 0/1 vector with exactly k ones.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<f32> {
        let mut z = vec![0.0; self.m()];
        // Cannot fail: z has length m.
        let _ = self.sample_into(rng, &mut z);
        z
    }

    /// `log p(z; θ) = <z, θ>/τ − A(θ)`; `−∞` for a binary `z` whose number of ones is not k.
    ///
    /// Errors: [`Error::LengthMismatch`] if `z.len() != m`, [`Error::InvalidProblem`] if an
    /// entry of `z` is neither 0 nor 1.
    pub fn log_prob<T: Copy + Into<f64>>(&self, z: &[T]) -> Result<f64> {
        if z.len() != self.m() {
            return Err(Error::LengthMismatch {
                what: "state z",
                expected: self.m(),
                got: z.len(),
            });
        }
        let mut ones = 0;
        let mut dot = 0.0;
        for (i, (&zi, s)) in z.iter().zip(&self.scaled).enumerate() {
            let zi: f64 = zi.into();
            if zi == 1.0 {
                ones += 1;
                dot += s;
            } else if zi != 0.0 {
                return Err(Error::InvalidProblem(format!(
                    "state entry z[{i}] = {zi} is neither 0 nor 1"
                )));
            }
        }
        if ones != self.k {
            return Ok(f64::NEG_INFINITY);
        }
        Ok(dot - self.log_partition)
    }
}

/// The categorical distribution (the k-subset distribution with k = 1, Example 1 of the
/// paper): `p(i; θ) = softmax(θ/τ)_i`.
///
/// ```
/// use imle::exact::categorical;
/// let p = categorical::softmax(&[0.0f32, 1.0, 0.0], 1.0)?;
/// assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// assert!(p[1] > p[0]);
/// # Ok::<(), imle::Error>(())
/// ```
pub mod categorical {
    use super::{log_add_exp, scaled_theta};
    use crate::error::Result;
    use rand::Rng;

    /// `A(θ) = log Σ_i exp(θ_i/τ)` (log-sum-exp, shifted by the maximum).
    pub fn log_partition<T: Copy + Into<f64>>(theta: &[T], tau: f64) -> Result<f64> {
        let s = scaled_theta(theta, tau)?;
        Ok(lse(&s))
    }

    fn lse(s: &[f64]) -> f64 {
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + s.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
    }

    /// `log softmax(θ/τ)`, computed stably (finite for any finite θ).
    pub fn log_softmax<T: Copy + Into<f64>>(theta: &[T], tau: f64) -> Result<Vec<f64>> {
        let s = scaled_theta(theta, tau)?;
        let a = lse(&s);
        Ok(s.iter().map(|v| v - a).collect())
    }

    /// `softmax(θ/τ)`: the marginals of the categorical distribution.
    pub fn softmax<T: Copy + Into<f64>>(theta: &[T], tau: f64) -> Result<Vec<f64>> {
        Ok(log_softmax(theta, tau)?.into_iter().map(f64::exp).collect())
    }

    /// An exact sample: the index `i` with probability `softmax(θ/τ)_i` (inverse CDF).
    pub fn sample<T: Copy + Into<f64>, R: Rng + ?Sized>(
        theta: &[T],
        tau: f64,
        rng: &mut R,
    ) -> Result<usize> {
        let logp = log_softmax(theta, tau)?;
        let u: f64 = rng.gen::<f64>().ln();
        // Compare in log space: the first i with log CDF_i > log u.
        let mut acc = f64::NEG_INFINITY;
        for (i, lp) in logp.iter().enumerate() {
            acc = log_add_exp(acc, *lp);
            if u < acc {
                return Ok(i);
            }
        }
        // Rounding left the total CDF just below u: return the last item of positive mass.
        Ok(logp
            .iter()
            .rposition(|lp| *lp > f64::NEG_INFINITY)
            .unwrap_or(logp.len() - 1))
    }
}
