//! The exact k-subset and categorical distributions against brute-force enumeration,
//! finite differences and sampling frequencies.

use imle::exact::{categorical, KSubset};
use imle::Error;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Every state of `{z ∈ {0,1}^m : Σz = k}`, by filtering all 2^m bit masks.
fn states(m: usize, k: usize) -> Vec<Vec<f64>> {
    (0u32..1 << m)
        .filter(|mask| mask.count_ones() as usize == k)
        .map(|mask| (0..m).map(|i| ((mask >> i) & 1) as f64).collect())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

fn random_theta(rng: &mut ChaCha8Rng, m: usize, scale: f64) -> Vec<f64> {
    (0..m).map(|_| rng.gen_range(-scale..scale)).collect()
}

#[test]
fn matches_brute_force_enumeration() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for m in [1usize, 2, 3, 5, 8, 12] {
        for k in [1, m.div_ceil(2), m] {
            for tau in [0.3, 1.0, 2.5] {
                let theta = random_theta(&mut rng, m, 3.0);
                let p = KSubset::new(&theta, k, tau).unwrap();
                let all = states(m, k);
                let scores: Vec<f64> = all.iter().map(|z| dot(z, &theta) / tau).collect();
                let a = log_sum_exp(&scores);
                assert!((p.log_partition() - a).abs() < 1e-10, "A: m={m} k={k}");
                let mut mu = vec![0.0; m];
                for (z, s) in all.iter().zip(&scores) {
                    let prob = (s - a).exp();
                    for (mi, zi) in mu.iter_mut().zip(z) {
                        *mi += prob * zi;
                    }
                    assert!((p.log_prob(z).unwrap() - (s - a)).abs() < 1e-10);
                }
                for (x, y) in p.marginals().iter().zip(&mu) {
                    assert!((x - y).abs() < 1e-10, "marginals m={m} k={k}: {x} vs {y}");
                }
            }
        }
    }
}

#[test]
fn marginals_sum_to_k_and_are_finite_differences_of_the_log_partition() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (m, k, tau) in [(6, 2, 1.0), (12, 5, 0.7), (40, 13, 2.0)] {
        let theta = random_theta(&mut rng, m, 2.0);
        let p = KSubset::new(&theta, k, tau).unwrap();
        let mu = p.marginals();
        assert!((mu.iter().sum::<f64>() - k as f64).abs() < 1e-9);
        let h = 1e-5;
        let grad = p.grad_log_partition();
        for i in 0..m {
            let mut plus = theta.clone();
            plus[i] += h;
            let mut minus = theta.clone();
            minus[i] -= h;
            let fd = (KSubset::new(&plus, k, tau).unwrap().log_partition()
                - KSubset::new(&minus, k, tau).unwrap().log_partition())
                / (2.0 * h);
            // μ = τ·∇A.
            assert!(
                (tau * fd - mu[i]).abs() < 1e-6,
                "i={i}: {} vs {}",
                tau * fd,
                mu[i]
            );
            assert!((grad[i] - mu[i] / tau).abs() < 1e-12);
        }
    }
}

#[test]
fn exact_samples_have_the_exact_frequencies() {
    // m = 5, k = 2: 10 states; Pearson chi-square with 9 degrees of freedom.
    let theta = [0.8f32, -0.3, 1.5, 0.0, -1.0];
    let p = KSubset::new(&theta, 2, 0.8).unwrap();
    let all = states(5, 2);
    let mut counts = vec![0usize; all.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 20_000;
    let mut z = vec![0.0f32; 5];
    for _ in 0..n {
        p.sample_into(&mut rng, &mut z).unwrap();
        let zf: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let idx = all.iter().position(|s| *s == zf).expect("a 2-subset state");
        counts[idx] += 1;
    }
    let chi2: f64 = all
        .iter()
        .zip(&counts)
        .map(|(s, &c)| {
            let e = n as f64 * p.log_prob(s).unwrap().exp();
            (c as f64 - e).powi(2) / e
        })
        .sum();
    let critical = ChiSquared::new(9.0).unwrap().inverse_cdf(0.999);
    assert!(chi2 < critical, "chi2 = {chi2} >= {critical}");
    // And the sample mean estimates the marginals.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut mean = [0.0f64; 5];
    for _ in 0..n {
        for (m, v) in mean.iter_mut().zip(p.sample(&mut rng)) {
            *m += v as f64 / n as f64;
        }
    }
    for (a, b) in mean.iter().zip(p.marginals()) {
        // 5 standard deviations of a Bernoulli mean.
        assert!((a - b).abs() < 5.0 * (b * (1.0 - b) / n as f64).sqrt() + 1e-9);
    }
}

#[test]
fn stable_for_large_theta_and_m() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let m = 1000;
    let theta = random_theta(&mut rng, m, 1e3);
    for (k, tau) in [(1, 1.0), (300, 1.0), (300, 0.01), (999, 1.0), (1000, 0.5)] {
        let p = KSubset::new(&theta, k, tau).unwrap();
        assert!(p.log_partition().is_finite());
        let mu = p.marginals();
        assert!(mu.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(
            (mu.iter().sum::<f64>() - k as f64).abs() < 1e-6 * k as f64,
            "k={k} tau={tau}"
        );
        // Gaps of order 1 between neighbours at |θ| ~ 1e3: the marginals are (almost) the
        // top-k indicator, and A ≈ (sum of the top k)/τ.
        let mut sorted = theta.clone();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let threshold = sorted[k - 1];
        let top: f64 = sorted[..k].iter().sum();
        assert!(p.log_partition() >= top / tau - 1e-9);
        assert!(p.log_partition() - top / tau < 50.0);
        if tau < 0.1 && k < m {
            for (t, v) in theta.iter().zip(mu) {
                let expect = if *t >= threshold { 1.0 } else { 0.0 };
                assert!((v - expect).abs() < 1e-3, "θ={t} μ={v}");
            }
        }
        let z = p.sample(&mut rng);
        assert_eq!(z.iter().filter(|&&v| v == 1.0).count(), k);
        assert!(p.log_prob(&z).unwrap() <= 1e-9);
    }
}

#[test]
fn constant_theta_has_the_binomial_partition() {
    use statrs::function::factorial::ln_binomial;
    for (m, k, c, tau) in [
        (10usize, 3usize, 1e3, 1.0),
        (1000, 400, -1e3, 0.5),
        (1000, 1, 7.0, 2.0),
    ] {
        let theta = vec![c; m];
        let p = KSubset::new(&theta, k, tau).unwrap();
        let expected = k as f64 * c / tau + ln_binomial(m as u64, k as u64);
        assert!(
            (p.log_partition() - expected).abs() < 1e-9 * expected.abs().max(1.0),
            "{} vs {expected}",
            p.log_partition()
        );
        for v in p.marginals() {
            assert!((v - k as f64 / m as f64).abs() < 1e-9);
        }
    }
}

#[test]
fn bad_input_returns_typed_errors() {
    assert!(matches!(
        KSubset::new(&[1.0f32, f32::NAN], 1, 1.0),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        KSubset::new(&[1.0f32, 2.0], 0, 1.0),
        Err(Error::InvalidK { k: 0, m: 2 })
    ));
    assert!(matches!(
        KSubset::new(&[1.0f32, 2.0], 3, 1.0),
        Err(Error::InvalidK { k: 3, m: 2 })
    ));
    assert!(matches!(
        KSubset::new(&[1.0f32], 1, 0.0),
        Err(Error::InvalidParameter { name: "tau", .. })
    ));
    assert!(matches!(
        KSubset::new::<f32>(&[], 1, 1.0),
        Err(Error::LengthMismatch { .. })
    ));
    let p = KSubset::new(&[1.0f32, 2.0, 3.0], 2, 1.0).unwrap();
    assert!(matches!(
        p.log_prob(&[1.0f32, 0.0]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        p.log_prob(&[1.0f32, 0.5, 0.5]),
        Err(Error::InvalidProblem(_))
    ));
    assert_eq!(p.log_prob(&[1.0f32, 0.0, 0.0]).unwrap(), f64::NEG_INFINITY);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!(matches!(
        p.sample_into(&mut rng, &mut [0.0; 2]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        categorical::softmax(&[1.0f64, f64::INFINITY], 1.0),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(categorical::log_softmax(&[1.0f32], -1.0).is_err());
}

#[test]
fn categorical_is_the_one_subset_distribution() {
    let theta = [0.3f64, -2.0, 1.1, 0.0, 4.0];
    for tau in [0.5, 1.0, 3.0] {
        let sm = categorical::softmax(&theta, tau).unwrap();
        let lsm = categorical::log_softmax(&theta, tau).unwrap();
        let p = KSubset::new(&theta, 1, tau).unwrap();
        assert!(
            (categorical::log_partition(&theta, tau).unwrap() - p.log_partition()).abs() < 1e-12
        );
        // Hand-computed softmax.
        let e: Vec<f64> = theta.iter().map(|t| (t / tau).exp()).collect();
        let s: f64 = e.iter().sum();
        for i in 0..theta.len() {
            assert!((sm[i] - e[i] / s).abs() < 1e-12);
            assert!((p.marginals()[i] - sm[i]).abs() < 1e-12);
            let mut one_hot = [0.0f64; 5];
            one_hot[i] = 1.0;
            assert!((p.log_prob(&one_hot).unwrap() - lsm[i]).abs() < 1e-12);
        }
    }
    // Stable at extreme logits.
    let lsm = categorical::log_softmax(&[1000.0f32, -1000.0, 0.0], 1.0).unwrap();
    assert!(lsm.iter().all(|v| v.is_finite()));
    assert!(lsm[0].abs() < 1e-12 && (lsm[1] + 2000.0).abs() < 1e-9);
}

#[test]
fn categorical_samples_have_the_softmax_frequencies() {
    let theta = [0.5f32, -1.0, 1.2, 0.0];
    let probs = categorical::softmax(&theta, 0.7).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let n = 20_000;
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[categorical::sample(&theta, 0.7, &mut rng).unwrap()] += 1;
    }
    let chi2: f64 = counts
        .iter()
        .zip(&probs)
        .map(|(&c, p)| (c as f64 - n as f64 * p).powi(2) / (n as f64 * p))
        .sum();
    assert!(
        chi2 < ChiSquared::new(3.0).unwrap().inverse_cdf(0.999),
        "chi2 = {chi2}"
    );
    // A dominant logit is always sampled.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..100 {
        assert_eq!(
            categorical::sample(&[-1e3f32, 1e3, 0.0], 1.0, &mut rng).unwrap(),
            1
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn samples_are_k_subsets_and_marginals_are_probabilities(
        theta in prop::collection::vec(-50.0f32..50.0, 1..60),
        k_frac in 0.0f64..1.0,
        tau in 0.05f64..5.0,
        seed in any::<u64>(),
    ) {
        let m = theta.len();
        let k = 1 + ((m - 1) as f64 * k_frac) as usize;
        let p = KSubset::new(&theta, k, tau).unwrap();
        let mu = p.marginals();
        prop_assert!(mu.iter().all(|v| (0.0..=1.0).contains(v)));
        prop_assert!((mu.iter().sum::<f64>() - k as f64).abs() < 1e-8 * k as f64 + 1e-9);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z = p.sample(&mut rng);
        prop_assert_eq!(z.iter().filter(|&&v| v == 1.0).count(), k);
        prop_assert!(z.iter().all(|&v| v == 0.0 || v == 1.0));
        prop_assert!(p.log_prob(&z).unwrap() <= 1e-9);
    }
}
