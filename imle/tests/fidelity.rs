//! Estimator fidelity: the exact gradient of E[L(z)], and bias/variance/cosine reports.

use imle::exact::categorical;
use imle::fidelity::{self, evaluate, for_each_k_subset, Problem};
use imle::loss::Baseline;
use imle::prelude::*;
use imle::{Error, Imle, Noise, Target};

/// θ and b of a small synthetic problem in the spirit of the paper's top-k experiment.
fn synthetic(m: usize) -> (Vec<f32>, Vec<f32>) {
    let theta = (0..m)
        .map(|i| ((i * 7 % m) as f32 - m as f32 / 2.0) / 4.0)
        .collect();
    let b = (0..m).map(|i| ((i * 3) % 2) as f32).collect();
    (theta, b)
}

#[test]
fn enumeration_visits_every_k_subset_once() {
    let mut seen = std::collections::HashSet::new();
    for_each_k_subset(10, 4, |z| {
        assert_eq!(z.iter().sum::<f32>(), 4.0);
        assert!(seen.insert(z.iter().map(|&v| v as u8).collect::<Vec<_>>()));
    })
    .unwrap();
    assert_eq!(seen.len(), 210);
    let mut n = 0;
    for_each_k_subset(20, 10, |_| n += 1).unwrap();
    assert_eq!(n, 184_756);
    assert!(matches!(
        for_each_k_subset(21, 1, |_| ()),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        for_each_k_subset(5, 6, |_| ()),
        Err(Error::InvalidK { .. })
    ));
}

#[test]
fn exact_gradient_is_the_finite_difference_of_the_expected_loss() {
    let (theta, b) = synthetic(8);
    for tau in [0.5, 1.0, 2.0] {
        let p = Problem::squared_distance(theta.clone(), 3, tau, b.clone()).unwrap();
        let h = 1e-3f32;
        for i in 0..8 {
            let mut plus = theta.clone();
            plus[i] += h;
            let mut minus = theta.clone();
            minus[i] -= h;
            let lp = Problem::squared_distance(plus.clone(), 3, tau, b.clone()).unwrap();
            let lm = Problem::squared_distance(minus.clone(), 3, tau, b.clone()).unwrap();
            // The f32 step actually taken.
            let step = (plus[i] - minus[i]) as f64;
            let fd = (lp.expected_loss() - lm.expected_loss()) / step;
            let g = p.exact_gradient()[i];
            assert!(
                (fd - g).abs() < 1e-5 * g.abs().max(1.0),
                "τ={tau} i={i}: {fd} vs {g}"
            );
        }
    }
}

#[test]
fn exact_gradient_of_a_linear_loss_on_the_simplex_is_hand_computable() {
    // k = 1, L(z) = <c, z>: E[L] = <c, softmax(θ/τ)>, gradient (diag(p) − ppᵀ)c/τ.
    let theta = vec![0.5f32, -1.0, 1.5, 0.0];
    let c = [1.0f32, 2.0, -1.0, 0.5];
    let tau = 0.8;
    let p = categorical::softmax(&theta, tau).unwrap();
    let problem = Problem::new(
        theta,
        1,
        tau,
        move |z| z.iter().zip(&c).map(|(a, b)| a * b).sum(),
        move |_| c.to_vec(),
    )
    .unwrap();
    let cp: f64 = c.iter().zip(&p).map(|(a, b)| *a as f64 * b).sum();
    assert!((problem.expected_loss() - cp).abs() < 1e-9);
    for i in 0..4 {
        let expect = p[i] * (c[i] as f64 - cp) / tau;
        assert!((problem.exact_gradient()[i] - expect).abs() < 1e-9);
    }
}

#[test]
fn fidelity_reports_bias_variance_and_cosine_of_any_estimator() {
    let (theta, b) = synthetic(6);
    let problem = Problem::squared_distance(theta, 2, 1.0, b).unwrap();
    let exact: Vec<f32> = problem.exact_gradient().iter().map(|&v| v as f32).collect();
    // Deterministic, biased by a known offset: exact + (1, −1, 0, 0, 0, 0).
    let mut offset = |p: &Problem, _seed: u64| -> imle::Result<Vec<f32>> {
        let mut g: Vec<f32> = p.exact_gradient().iter().map(|&v| v as f32).collect();
        g[0] += 1.0;
        g[1] -= 1.0;
        Ok(g)
    };
    let f = evaluate(&problem, &mut offset, 10, 0).unwrap();
    assert!((f.bias_norm - 2f64.sqrt()).abs() < 1e-6);
    assert!(f.variance < 1e-12);
    let dot: f64 = f.mean.iter().zip(&f.exact).map(|(a, b)| a * b).sum();
    let norms = f.mean.iter().map(|v| v * v).sum::<f64>().sqrt()
        * f.exact.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((f.cosine - dot / norms).abs() < 1e-9);
    // Alternating ±d around the exact gradient: unbiased, variance ||d||².
    let mut alternating = |_: &Problem, seed: u64| -> imle::Result<Vec<f32>> {
        let s = if seed.is_multiple_of(2) { 1.0 } else { -1.0 };
        Ok(exact
            .iter()
            .enumerate()
            .map(|(i, v)| v + s * (i as f32 + 1.0) / 10.0)
            .collect())
    };
    let f = evaluate(&problem, &mut alternating, 4000, 0).unwrap();
    let d2: f64 = (1..=6).map(|i| (i as f64 / 10.0).powi(2)).sum();
    assert!(
        (f.variance - d2).abs() < 0.05 * d2,
        "variance {}",
        f.variance
    );
    // Bad estimators and arguments are typed errors.
    let mut short = |_: &Problem, _| -> imle::Result<Vec<f32>> { Ok(vec![0.0; 3]) };
    assert!(matches!(
        evaluate(&problem, &mut short, 3, 0),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        evaluate(&problem, &mut offset, 0, 0),
        Err(Error::ZeroSamples)
    ));
    assert!(matches!(
        Problem::squared_distance(vec![0.0; 21], 2, 1.0, vec![0.0; 21]),
        Err(Error::InvalidParameter { name: "m", .. })
    ));
}

#[test]
fn sfe_is_unbiased_with_a_tolerance_shrinking_with_n() {
    let (theta, b) = synthetic(10);
    let problem = Problem::squared_distance(theta, 5, 1.0, b).unwrap();
    let exact_norm = problem
        .exact_gradient()
        .iter()
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt();
    let mut last_tolerance = f64::INFINITY;
    for (n, seed) in [(300usize, 1u64), (3000, 2), (30_000, 3)] {
        let f = evaluate(&problem, &mut fidelity::sfe(Baseline::None), n, seed).unwrap();
        // ||bias||² has expectation variance/N for an unbiased estimator: allow 4 standard
        // errors, a tolerance that shrinks like 1/sqrt(N).
        let tolerance = 4.0 * f.standard_error();
        assert!(
            f.bias_norm < tolerance,
            "N={n}: bias {} >= {tolerance}",
            f.bias_norm
        );
        assert!(tolerance < last_tolerance);
        last_tolerance = tolerance;
    }
    // At N = 30 000 the test resolves the gradient to better than 30% of its norm.
    assert!(last_tolerance < 0.3 * exact_norm);
    // A constant baseline keeps it unbiased and here reduces the variance.
    let plain = evaluate(&problem, &mut fidelity::sfe(Baseline::None), 5000, 4).unwrap();
    let based = evaluate(
        &problem,
        &mut fidelity::sfe(Baseline::Constant(problem.expected_loss() as f32)),
        5000,
        4,
    )
    .unwrap();
    assert!(based.bias_norm < 4.0 * based.standard_error());
    assert!(
        based.variance < 0.5 * plain.variance,
        "{} vs {}",
        based.variance,
        plain.variance
    );
    let ma = evaluate(
        &problem,
        &mut fidelity::sfe(Baseline::MovingAverage { momentum: 0.9 }),
        5000,
        5,
    )
    .unwrap();
    assert!(ma.bias_norm < 4.0 * ma.standard_error());
}

#[test]
fn imle_bias_is_reported_not_hidden() {
    let (theta, b) = synthetic(10);
    let problem = Problem::squared_distance(theta, 5, 1.0, b).unwrap();
    let imle = Imle::new(
        TopK::new(5),
        Target::pid(1.0).unwrap(),
        Noise::sum_of_gamma(5.0, 1.0, 10).unwrap(),
    );
    let f = evaluate(&problem, &mut fidelity::estimator(imle), 4000, 0).unwrap();
    // I-MLE is a biased estimator of ∇E[L]: the bias is many standard errors wide...
    assert!(
        f.bias_norm > 10.0 * f.standard_error(),
        "bias {} se {}",
        f.bias_norm,
        f.standard_error()
    );
    assert!(f.relative_bias.is_finite() && f.relative_bias > 0.0);
    // ...but it points the right way.
    assert!(f.cosine > 0.5, "cosine {}", f.cosine);
}

#[test]
fn every_adapter_produces_a_report() {
    let (theta, b) = synthetic(8);
    let problem = Problem::squared_distance(theta, 3, 1.0, b).unwrap();
    // STE without noise is deterministic: zero variance, and its estimate is ∂L/∂z at MAP(θ).
    let topk = TopK::new(3);
    let ste = Ste::new(topk, Noise::None);
    let f = evaluate(&problem, &mut fidelity::estimator(ste), 5, 0).unwrap();
    assert!(f.variance < 1e-12);
    let mut z = vec![0.0; 8];
    imle::solver::MapSolver::solve(&imle::solver::TopK::new(3), problem.theta(), &mut z).unwrap();
    let g = problem.loss_grad(&z);
    for (a, b) in f.mean.iter().zip(&g) {
        assert!((a - *b as f64).abs() < 1e-6);
    }
    let ste = Ste::new(topk, Noise::gumbel(1.0).unwrap());
    let bb = Blackbox::new(topk, 1.0).unwrap();
    let dpo = Perturbed::new(topk, 1.0, 10).unwrap();
    let softsub = SoftSub::new(3, 0.5).unwrap();
    let l2x = L2x::new(3, 0.5).unwrap();
    let reports = [
        evaluate(&problem, &mut fidelity::estimator(ste), 50, 0),
        evaluate(&problem, &mut fidelity::estimator(bb), 5, 0),
        evaluate(&problem, &mut fidelity::estimator(dpo), 50, 0),
        evaluate(&problem, &mut fidelity::estimator(softsub), 50, 0),
        evaluate(&problem, &mut fidelity::estimator(l2x), 50, 0),
    ];
    for r in reports {
        let r = r.unwrap();
        assert!(r.bias_norm.is_finite() && r.variance.is_finite() && r.cosine.abs() <= 1.0 + 1e-12);
        assert!(r.draws >= 5);
    }
}
