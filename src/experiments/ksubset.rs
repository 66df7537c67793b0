//! The exact k-subset distribution `p(z; θ) ∝ exp(<z, θ>)`, `|z| = k`, by enumerating
//! the `C(n, k)` subsets: log-partition, marginals, exact samples, and the exact expected
//! loss of the synthetic experiment. Meant for small `n` (the synthetic experiment has
//! `C(10, 5) = 252` states); computed in f64 with log-sum-exp.

use rand::Rng;

/// All k-subsets of `{0, ..., n-1}` as bit masks, with `n <= 30`.
#[derive(Debug, Clone)]
pub struct KSubsets {
    n: usize,
    k: usize,
    masks: Vec<u32>,
}

impl KSubsets {
    /// Enumerates the k-subsets of n items (`1 <= k <= n <= 30`).
    pub fn new(n: usize, k: usize) -> Self {
        assert!(n <= 30 && k >= 1 && k <= n, "need 1 <= k <= n <= 30");
        let masks = (0u32..(1u32 << n))
            .filter(|m| m.count_ones() as usize == k)
            .collect();
        Self { n, k, masks }
    }

    /// n.
    pub fn n(&self) -> usize {
        self.n
    }
    /// k.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Number of states, `C(n, k)`.
    pub fn len(&self) -> usize {
        self.masks.len()
    }
    /// Always false (k >= 1).
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// The state `z ∈ {0,1}^n` of subset `i`.
    pub fn state(&self, i: usize) -> Vec<f32> {
        (0..self.n)
            .map(|j| ((self.masks[i] >> j) & 1) as f32)
            .collect()
    }

    fn scores(&self, theta: &[f32]) -> Vec<f64> {
        self.masks
            .iter()
            .map(|&m| {
                (0..self.n)
                    .filter(|j| (m >> j) & 1 == 1)
                    .map(|j| theta[j] as f64)
                    .sum()
            })
            .collect()
    }

    /// Probabilities of every state (in enumeration order).
    pub fn probs(&self, theta: &[f32]) -> Vec<f64> {
        let s = self.scores(theta);
        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - mx).exp()).collect();
        let z: f64 = e.iter().sum();
        e.into_iter().map(|v| v / z).collect()
    }

    /// The log-partition function `A(θ) = log Σ_z exp(<z, θ>)`.
    pub fn log_partition(&self, theta: &[f32]) -> f64 {
        let s = self.scores(theta);
        let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        mx + s.iter().map(|v| (v - mx).exp()).sum::<f64>().ln()
    }

    /// The marginals `μ_i = p(z_i = 1)` (the gradient of `A`).
    pub fn marginals(&self, theta: &[f32]) -> Vec<f64> {
        let p = self.probs(theta);
        let mut mu = vec![0.0; self.n];
        for (&m, &pi) in self.masks.iter().zip(&p) {
            for (j, mj) in mu.iter_mut().enumerate() {
                if (m >> j) & 1 == 1 {
                    *mj += pi;
                }
            }
        }
        mu
    }

    /// One exact sample `z ~ p(z; θ)`.
    pub fn sample<R: Rng + ?Sized>(&self, theta: &[f32], rng: &mut R) -> Vec<f32> {
        let p = self.probs(theta);
        let u: f64 = rng.gen();
        let mut acc = 0.0;
        let mut idx = p.len() - 1;
        for (i, pi) in p.iter().enumerate() {
            acc += pi;
            if u < acc {
                idx = i;
                break;
            }
        }
        self.state(idx)
    }

    /// The smallest value of `Σ_i z_i c_i` over the states (`c_i` per item).
    pub fn min_linear(&self, c: &[f64]) -> f64 {
        let mut c = c.to_vec();
        c.sort_by(f64::total_cmp);
        c[..self.k].iter().sum()
    }
}

/// The exact expected loss of the synthetic experiment,
/// `E_{z~p(z;θ)} ||z − b||² = Σ_i μ_i (1 − 2 b_i) + ||b||²` (using `z_i² = z_i`).
pub fn expected_sq_loss(mu: &[f64], b: &[f64]) -> f64 {
    mu.iter()
        .zip(b)
        .map(|(m, bi)| m * (1.0 - 2.0 * bi))
        .sum::<f64>()
        + b.iter().map(|v| v * v).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn marginals_sum_to_k_and_match_enumeration_of_loss() {
        let ks = KSubsets::new(6, 3);
        assert_eq!(ks.len(), 20);
        let theta = [0.3f32, -1.0, 2.0, 0.0, 0.5, -0.2];
        let mu = ks.marginals(&theta);
        assert!((mu.iter().sum::<f64>() - 3.0).abs() < 1e-12);
        let b = [0.1, 0.9, 1.5, 0.0, 0.3, 0.7];
        let p = ks.probs(&theta);
        let direct: f64 = (0..ks.len())
            .map(|i| {
                let z = ks.state(i);
                p[i] * z
                    .iter()
                    .zip(&b)
                    .map(|(z, b)| (*z as f64 - b).powi(2))
                    .sum::<f64>()
            })
            .sum();
        assert!((direct - expected_sq_loss(&mu, &b)).abs() < 1e-12);
    }

    #[test]
    fn samples_follow_marginals() {
        let ks = KSubsets::new(5, 2);
        let theta = [1.0f32, 0.0, -1.0, 0.5, 2.0];
        let mu = ks.marginals(&theta);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 20000;
        let mut freq = [0.0; 5];
        for _ in 0..n {
            for (f, z) in freq.iter_mut().zip(ks.sample(&theta, &mut rng)) {
                *f += z as f64 / n as f64;
            }
        }
        for (f, m) in freq.iter().zip(&mu) {
            assert!((f - m).abs() < 0.02, "{f} vs {m}");
        }
    }
}
