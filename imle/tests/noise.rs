//! Statistical tests of the noise distributions (Sec. 3.2), with fixed seeds.

use imle::noise::{Gumbel, Noise, SumOfGamma};
use imle::solver::{Argmax, MapSolver};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};
use statrs::distribution::{ChiSquared, ContinuousCDF};

const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

fn gumbel_cdf(x: f64, tau: f64) -> f64 {
    (-(-x / tau).exp()).exp()
}

/// Kolmogorov-Smirnov statistic of `samples` against a continuous CDF.
fn ks_statistic(mut samples: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = samples.len() as f64;
    samples
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max)
}

/// KS critical value at significance 0.001 (asymptotic).
fn ks_critical(n: usize) -> f64 {
    1.95 / (n as f64).sqrt()
}

fn sum_of_kappa<D: Distribution<f64>>(d: &D, kappa: usize, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..kappa).map(|_| d.sample(&mut rng)).sum())
        .collect()
}

/// Lemma 1 / Theorem 1: the sum of κ i.i.d. SoG(κ, τ, s) samples is Gumbel(0, τ).
#[test]
fn sum_of_kappa_sog_samples_is_gumbel() {
    let n = 20_000;
    for (kappa, tau, seed) in [(1usize, 1.0, 1u64), (5, 1.0, 2), (10, 1.0, 3), (5, 2.5, 4)] {
        let sog = SumOfGamma::new(kappa as f64, tau, 200).unwrap();
        let samples = sum_of_kappa(&sog, kappa, n, seed);
        let mean = samples.iter().sum::<f64>() / n as f64;
        let d = ks_statistic(samples, |x| gumbel_cdf(x, tau));
        assert!(
            d < ks_critical(n),
            "kappa={kappa} tau={tau}: KS distance {d} >= {}",
            ks_critical(n)
        );
        // Gumbel(0, τ) has mean τγ and std τπ/√6.
        let std_err = tau * std::f64::consts::PI / 6f64.sqrt() / (n as f64).sqrt();
        assert!(
            (mean - tau * EULER_GAMMA).abs() < 4.0 * std_err,
            "kappa={kappa}: mean {mean} vs {}",
            tau * EULER_GAMMA
        );
    }
}

/// Negative control: with κ/i read as a *rate* (scale i/κ), as some public code does,
/// the sum is far from Gumbel, and the same KS test rejects it. This shows the test
/// above has the power to catch the wrong parameterisation.
#[test]
fn rate_parameterisation_is_rejected() {
    struct RateSog {
        kappa: f64,
        tau: f64,
        gammas: Vec<Gamma<f64>>,
    }
    impl Distribution<f64> for RateSog {
        fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
            let s = self.gammas.len() as f64;
            let sum: f64 = self.gammas.iter().map(|g| g.sample(rng)).sum();
            self.tau / self.kappa * (sum - s.ln())
        }
    }
    let (kappa, tau) = (10.0, 10.0);
    let wrong = RateSog {
        kappa,
        tau,
        gammas: (1..=10)
            .map(|i| Gamma::new(1.0 / kappa, i as f64 / kappa).unwrap())
            .collect(),
    };
    let samples: Vec<f64> = {
        let mut rng = StdRng::seed_from_u64(5);
        (0..20_000).map(|_| wrong.sample(&mut rng)).collect()
    };
    // PAPER-NOTES: a single such sample has mean ≈ -1.75 and std ≈ 0.62 at κ = τ = 10.
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    assert!((mean + 1.75).abs() < 0.05, "mean {mean}");
    let sums = sum_of_kappa(&wrong, 10, 20_000, 6);
    let d = ks_statistic(sums, |x| gumbel_cdf(x, tau));
    assert!(d > 10.0 * ks_critical(20_000), "KS distance {d}");
}

#[test]
fn gumbel_matches_its_cdf() {
    let n = 20_000;
    let g = Gumbel::new(0.7).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let samples: Vec<f64> = (0..n).map(|_| g.sample(&mut rng)).collect();
    assert!(ks_statistic(samples, |x| gumbel_cdf(x, 0.7)) < ks_critical(n));
}

/// The Gumbel-max trick: argmax(θ + Gumbel(0,1)) ~ softmax(θ). Chi-square test.
#[test]
fn gumbel_max_frequencies_match_softmax() {
    let theta = [0.5f32, -1.0, 2.0, 0.0, 1.2, -0.3];
    let m = theta.len();
    let n = 30_000;
    let noise = Noise::gumbel(1.0).unwrap();
    let mut eps = vec![0.0f32; n * m];
    noise.fill(42, &mut eps);
    let perturbed: Vec<f32> = eps
        .chunks(m)
        .flat_map(|e| theta.iter().zip(e).map(|(t, e)| t + e))
        .collect();
    let mut z = vec![0.0; n * m];
    Argmax.solve_batch(&perturbed, m, &mut z).unwrap();
    let mut counts = vec![0.0f64; m];
    for row in z.chunks(m) {
        for (c, v) in counts.iter_mut().zip(row) {
            *c += *v as f64;
        }
    }
    let norm: f64 = theta.iter().map(|t| (*t as f64).exp()).sum();
    let chi2: f64 = theta
        .iter()
        .zip(&counts)
        .map(|(t, c)| {
            let expected = n as f64 * (*t as f64).exp() / norm;
            (c - expected).powi(2) / expected
        })
        .sum();
    let p = 1.0 - ChiSquared::new((m - 1) as f64).unwrap().cdf(chi2);
    assert!(p > 0.001, "chi2 = {chi2}, p = {p}, counts = {counts:?}");
    // And the test has power: frequencies are far from uniform.
    let uniform_chi2: f64 = counts
        .iter()
        .map(|c| (c - n as f64 / m as f64).powi(2) / (n as f64 / m as f64))
        .sum();
    assert!(1.0 - ChiSquared::new((m - 1) as f64).unwrap().cdf(uniform_chi2) < 1e-6);
}

#[test]
fn fill_depends_on_seed_only_not_on_threads() {
    let noise = Noise::sum_of_gamma(5.0, 1.0, 10).unwrap();
    let mut a = vec![0.0; 10_000];
    let mut b = vec![0.0; 10_000];
    noise.fill(3, &mut a);
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| noise.fill(3, &mut b));
    assert_eq!(a, b);
    noise.fill(4, &mut b);
    assert_ne!(a, b);
    let mut none = vec![1.0; 5];
    Noise::None.fill(3, &mut none);
    assert_eq!(none, [0.0; 5]);
}

#[test]
fn invalid_parameters_are_errors() {
    use imle::Error;
    assert!(matches!(
        Gumbel::new(0.0),
        Err(Error::InvalidParameter { name: "tau", .. })
    ));
    assert!(matches!(
        Gumbel::new(f64::NAN),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        SumOfGamma::new(5.0, 1.0, 0),
        Err(Error::InvalidParameter { name: "s", .. })
    ));
    assert!(matches!(
        SumOfGamma::new(-1.0, 1.0, 10),
        Err(Error::InvalidParameter { name: "kappa", .. })
    ));
    assert!(matches!(
        Noise::sum_of_gamma(5.0, f64::INFINITY, 10),
        Err(Error::InvalidParameter { name: "tau", .. })
    ));
}

/// The f32 path used by `Noise::fill` (the estimators' hot path, its own Gamma sampler)
/// satisfies Lemma 1 too, for integer κ (integer powers) and non-integer κ.
#[test]
fn f32_fill_path_sums_to_gumbel() {
    let n = 20_000;
    for (kappa, tau, seed) in [(1usize, 1.0, 17u64), (5, 1.0, 18), (10, 3.0, 19)] {
        let noise = Noise::sum_of_gamma(kappa as f64, tau, 200).unwrap();
        let mut eps = vec![0.0f32; n * kappa];
        noise.fill(seed, &mut eps);
        let sums: Vec<f64> = eps
            .chunks(kappa)
            .map(|c| c.iter().map(|&v| v as f64).sum())
            .collect();
        let d = ks_statistic(sums, |x| gumbel_cdf(x, tau));
        assert!(d < ks_critical(n), "kappa={kappa}: KS distance {d}");
    }
    // Non-integer κ = 2.5: the SoG value itself has the mean of its f64 twin (τγ/κ per
    // sample up to the finite-s truncation), checked against the f64 sampler.
    let noise = Noise::sum_of_gamma(2.5, 1.0, 50).unwrap();
    let mut eps = vec![0.0f32; 100_000];
    noise.fill(20, &mut eps);
    let mean32 = eps.iter().map(|&v| v as f64).sum::<f64>() / eps.len() as f64;
    let sog = SumOfGamma::new(2.5, 1.0, 50).unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let mean64 = (0..100_000)
        .map(|_| Distribution::<f64>::sample(&sog, &mut rng))
        .sum::<f64>()
        / 100_000.0;
    assert!((mean32 - mean64).abs() < 0.02, "{mean32} vs {mean64}");
}

/// The f32 Gamma sampler against the Gamma CDF directly (KS), small and unit shapes.
#[test]
fn f32_sum_of_gamma_terms_follow_gamma() {
    use statrs::distribution::Gamma as GammaCdf;
    // With s = 1, SoG = (τ/κ)(Gamma(1/κ, κ) − 0): so κ/τ·SoG ~ Gamma(1/κ, scale κ).
    for (kappa, seed) in [(10.0f64, 30u64), (4.0, 31), (1.0, 32), (2.5, 33)] {
        let noise = Noise::sum_of_gamma(kappa, 1.0, 1).unwrap();
        let mut eps = vec![0.0f32; 20_000];
        noise.fill(seed, &mut eps);
        let cdf = GammaCdf::new(1.0 / kappa, 1.0 / kappa).unwrap(); // shape, rate
        let samples: Vec<f64> = eps.iter().map(|&v| v as f64 * kappa).collect();
        let d = ks_statistic(samples, |x| cdf.cdf(x));
        assert!(d < ks_critical(20_000), "kappa={kappa}: KS distance {d}");
    }
}
