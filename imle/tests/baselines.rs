//! The baseline estimators against their defining formulas: hand-checkable inputs, noise
//! reproduced from the documented seeds, finite differences and exact expectations.

use dfdx::prelude::*;
use imle::baselines::{call_seed, PerturbationNoise, TemperatureSchedule};
use imle::exact::{categorical, KSubset};
use imle::loss::Baseline;
use imle::prelude::*;
use imle::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ChiSquared, ContinuousCDF};

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert!(close(a, b, tol), "\n  {a:?}\n  {b:?}\n  (tol {tol})");
}

fn softmax(v: &[f64], t: f64) -> Vec<f64> {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| ((x - max) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn gumbel(seed: u64, call: u64, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n];
    Noise::gumbel(1.0)
        .unwrap()
        .fill(call_seed(seed, call), &mut out);
    out
}

fn random_vec(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

// ---------------------------------------------------------------- STE

#[test]
fn ste_forward_is_perturb_and_map_and_backward_is_identity() {
    let dev = Cpu::default();
    // No noise: MAP(θ) itself.
    let theta = dev.tensor([[0.3f32, -1.0, 2.0, 0.5], [1.0, 2.0, 3.0, 4.0]]);
    let ste = Ste::new(TopK::new(2), Noise::None);
    let z = ste.apply(theta.leaky_trace()).unwrap();
    assert_eq!(z.array(), [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]);
    let c = dev.tensor([[1.0f32, -2.0, 3.0, 0.5], [0.0, 1.0, 0.0, -1.0]]);
    let grads = (z * c.clone()).sum().backward();
    assert_eq!(grads.get(&theta).array(), c.array());

    // Gumbel noise: MAP(θ + τ·G), G reproduced from the documented seed derivation.
    let ste = Ste::new(TopK::new(2), Noise::gumbel(1.0).unwrap())
        .temperature(0.5)
        .unwrap()
        .seed(11);
    let theta_v = vec![0.3f32, -1.0, 2.0, 0.5, 1.0, 2.0, 3.0, 4.0];
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (2, 4));
    for call in 0..3 {
        let z = ste.apply(theta.clone()).unwrap();
        let g = gumbel(11, call, 8);
        let perturbed: Vec<f32> = theta_v.iter().zip(&g).map(|(t, e)| t + 0.5 * e).collect();
        let mut expect = vec![0.0; 8];
        TopK::new(2)
            .solve_batch(&perturbed, 4, &mut expect)
            .unwrap();
        assert_eq!(z.as_vec(), expect, "call {call}");
    }
}

#[test]
fn ste_is_reproducible_from_its_seed() {
    let dev = Cpu::default();
    let theta: Tensor<Rank2<8, 10>, f32, _> = dev.sample_normal();
    let run = |seed| {
        let ste = Ste::new(TopK::new(3), Noise::sum_of_gamma(3.0, 1.0, 10).unwrap()).seed(seed);
        (0..3)
            .map(|_| ste.apply(theta.clone()).unwrap().as_vec())
            .collect::<Vec<_>>()
    };
    let a = run(5);
    assert_eq!(a, run(5));
    assert_ne!(a, run(6));
    assert_ne!(a[0], a[1]);
}

#[test]
fn ste_bad_input_returns_typed_errors() {
    let dev = Cpu::default();
    let ste = Ste::new(TopK::new(1), Noise::None);
    let nan = dev.tensor([[1.0f32, f32::NAN, 0.0]]);
    assert!(matches!(
        ste.apply(nan),
        Err(Error::NonFinite { index: 1, .. })
    ));
    let theta = dev.tensor([[1.0f32, 2.0, 0.0]]);
    assert!(matches!(
        Ste::new(TopK::new(4), Noise::None).apply(theta.clone()),
        Err(Error::InvalidK { k: 4, m: 3 })
    ));
    assert!(matches!(
        Ste::new(TopK::new(1), Noise::None).temperature(-1.0),
        Err(Error::InvalidParameter { .. })
    ));
    // A non-finite upstream gradient makes the backward pass fail with a recorded error.
    let z = ste.apply(theta.leaky_trace()).unwrap();
    let r = (z * dev.tensor([[f32::NAN, 0.0, 0.0]]))
        .sum()
        .try_backward();
    assert!(r.is_err());
    assert!(matches!(
        ste.take_backward_error(),
        Some(Error::NonFinite { .. })
    ));
}

// ---------------------------------------------------------------- SFE

#[test]
fn sfe_surrogate_is_the_score_function_formula() {
    let dev = Cpu::default();
    let theta_v = [1.0f32, 0.0, -1.0];
    for (tau, baseline, b) in [
        (1.0f32, Baseline::None, 0.0f32),
        (2.0, Baseline::None, 0.0),
        (0.5, Baseline::Constant(0.5), 0.5),
    ] {
        let sfe = ScoreFunction::new(1)
            .unwrap()
            .temperature(tau)
            .unwrap()
            .baseline(baseline)
            .unwrap();
        let theta = dev.tensor([theta_v]);
        let z = dev.tensor([[1.0f32, 0.0, 0.0]]);
        let loss = 2.0f32;
        let s = sfe.surrogate(theta.leaky_trace(), &z, &[loss]).unwrap();
        let p = categorical::softmax(&theta_v, tau as f64).unwrap();
        // Value (L − b)·log p(z), gradient g·(L − b)·(z − μ)/τ with g = 0.5 here.
        assert!((s.as_vec()[0] as f64 - (loss - b) as f64 * p[0].ln()).abs() < 1e-5);
        let grads = (s * 0.5).sum().backward();
        let expect: Vec<f32> = [1.0, 0.0, 0.0]
            .iter()
            .zip(&p)
            .map(|(z, mu)| (0.5 * (loss - b) as f64 * (z - mu) / tau as f64) as f32)
            .collect();
        assert_close(&grads.get(&theta).as_vec(), &expect, 1e-6);
    }
}

#[test]
fn sfe_k_subset_gradient_uses_exact_marginals() {
    let dev = Cpu::default();
    let theta_v = [0.5f32, -1.0, 2.0, 0.1, 0.0];
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.to_vec(), (1, 5));
    let sfe = ScoreFunction::new(2).unwrap().seed(9);
    let z = sfe.sample(&theta).unwrap();
    let zv = z.as_vec();
    assert_eq!(zv.iter().sum::<f32>(), 2.0);
    let s = sfe.surrogate(theta.leaky_trace(), &z, &[3.0]).unwrap();
    let grads = s.sum().backward();
    let mu = KSubset::new(&theta_v, 2, 1.0).unwrap().marginals().to_vec();
    let expect: Vec<f32> = zv
        .iter()
        .zip(&mu)
        .map(|(z, m)| (3.0 * (*z as f64 - m)) as f32)
        .collect();
    assert_close(&grads.get(&theta).as_vec(), &expect, 1e-6);
}

#[test]
fn sfe_samples_are_exact() {
    // 20 000 rows with the same θ in one call: the row mean estimates the marginals.
    let dev = Cpu::default();
    let theta_row = [0.8f32, -0.3, 1.5, 0.0, -1.0, 0.4];
    let rows = 20_000;
    let theta: Tensor<(usize, usize), f32, _> =
        dev.tensor_from_vec(theta_row.repeat(rows), (rows, 6));
    let z = ScoreFunction::new(3)
        .unwrap()
        .temperature(0.7)
        .unwrap()
        .seed(1)
        .sample(&theta)
        .unwrap()
        .as_vec();
    let mu = KSubset::new(&theta_row, 3, 0.7)
        .unwrap()
        .marginals()
        .to_vec();
    for (i, m) in mu.iter().enumerate() {
        let mean = z.iter().skip(i).step_by(6).map(|&v| v as f64).sum::<f64>() / rows as f64;
        assert!(
            (mean - m).abs() < 5.0 * (m * (1.0 - m) / rows as f64).sqrt(),
            "{i}: {mean} vs {m}"
        );
    }
    assert!(z.chunks(6).all(|r| r.iter().sum::<f32>() == 3.0));
}

#[test]
fn sfe_moving_average_baseline_uses_only_past_losses() {
    let dev = Cpu::default();
    let sfe = ScoreFunction::new(1)
        .unwrap()
        .baseline(Baseline::MovingAverage { momentum: 0.5 })
        .unwrap();
    let theta = dev.tensor([[0.0f32, 0.0], [0.0, 0.0]]);
    let z = dev.tensor([[1.0f32, 0.0], [0.0, 1.0]]);
    assert_eq!(sfe.current_baseline(), 0.0);
    // First call: baseline 0; μ = (1/2, 1/2).
    let s = sfe.surrogate(theta.leaky_trace(), &z, &[1.0, 3.0]).unwrap();
    let g = s.sum().backward().get(&theta).as_vec();
    assert_close(&g, &[0.5, -0.5, -1.5, 1.5], 1e-6);
    assert_eq!(sfe.current_baseline(), 2.0);
    // Second call: baseline = mean of the first batch = 2.
    let s = sfe.surrogate(theta.leaky_trace(), &z, &[4.0, 0.0]).unwrap();
    let g = s.sum().backward().get(&theta).as_vec();
    assert_close(&g, &[1.0, -1.0, 1.0, -1.0], 1e-6);
    assert_eq!(sfe.current_baseline(), 0.5 * 2.0 + 0.5 * 2.0);
}

#[test]
fn sfe_bad_input_returns_typed_errors() {
    let dev = Cpu::default();
    let sfe = ScoreFunction::new(2).unwrap();
    let theta = dev.tensor([[0.0f32, 1.0, 2.0]]);
    let not_a_state = dev.tensor([[1.0f32, 0.0, 0.0]]);
    assert!(matches!(
        sfe.surrogate(theta.clone(), &not_a_state, &[1.0]),
        Err(Error::InvalidProblem(_))
    ));
    let z = dev.tensor([[1.0f32, 1.0, 0.0]]);
    assert!(matches!(
        sfe.surrogate(theta.clone(), &z, &[1.0, 2.0]),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        sfe.surrogate(theta.clone(), &z, &[f32::NAN]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        ScoreFunction::new(4).unwrap().sample(&theta),
        Err(Error::InvalidK { k: 4, m: 3 })
    ));
    assert!(matches!(
        ScoreFunction::new(0),
        Err(Error::InvalidK { k: 0, .. })
    ));
    assert!(matches!(
        ScoreFunction::new(1).unwrap().temperature(0.0),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        ScoreFunction::new(1)
            .unwrap()
            .baseline(Baseline::MovingAverage { momentum: 1.5 }),
        Err(Error::InvalidParameter {
            name: "momentum",
            ..
        })
    ));
    assert!(matches!(
        ScoreFunction::new(1)
            .unwrap()
            .baseline(Baseline::Constant(f32::NAN)),
        Err(Error::NonFinite { .. })
    ));
}

// ---------------------------------------------------------------- Gumbel-softmax

#[test]
fn gumbel_softmax_forward_and_backward_are_the_softmax_formulas() {
    let dev = Cpu::default();
    let theta_v = [1.0f32, 0.0, -1.0];
    let t = 0.5f32;
    // Zero noise: softmax(θ/t); backward for L = <c, y>: y ⊙ (c − <c, y>)/t.
    let gs = GumbelSoftmax::new(t).unwrap();
    let theta = dev.tensor([theta_v]);
    let y = gs
        .apply_with_noise(theta.leaky_trace(), vec![0.0; 3])
        .unwrap();
    let p = softmax(&theta_v.map(f64::from), t as f64);
    let pf: Vec<f32> = p.iter().map(|&v| v as f32).collect();
    assert_close(&y.as_vec(), &pf, 1e-6);
    let c = [2.0f64, -1.0, 0.5];
    let grads = (y * dev.tensor([c.map(|v| v as f32)])).sum().backward();
    let cy: f64 = c.iter().zip(&p).map(|(a, b)| a * b).sum();
    let expect: Vec<f32> = p
        .iter()
        .zip(&c)
        .map(|(y, c)| (y * (c - cy) / t as f64) as f32)
        .collect();
    assert_close(&grads.get(&theta).as_vec(), &expect, 1e-5);

    // With seeded noise: softmax((θ + G)/t), G from the documented seed.
    let gs = GumbelSoftmax::new(t).unwrap().seed(4);
    let y = gs.apply(theta.clone()).unwrap().as_vec();
    let g = gumbel(4, 0, 3);
    let keys: Vec<f64> = theta_v
        .iter()
        .zip(&g)
        .map(|(a, b)| (a + b) as f64)
        .collect();
    let expect: Vec<f32> = softmax(&keys, t as f64).iter().map(|&v| v as f32).collect();
    assert_close(&y, &expect, 1e-5);
}

#[test]
fn gumbel_softmax_at_tiny_temperature_is_the_one_hot_argmax() {
    let dev = Cpu::default();
    let theta_row = [0.5f32, -0.3, 1.0, 0.0];
    let rows = 5000;
    let theta_v = theta_row.repeat(rows);
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (rows, 4));
    let y = GumbelSoftmax::new(1e-3)
        .unwrap()
        .seed(8)
        .apply(theta)
        .unwrap()
        .as_vec();
    let g = gumbel(8, 0, rows * 4);
    let mut counts = [0usize; 4];
    for r in 0..rows {
        let keys: Vec<f32> = (0..4).map(|i| theta_v[r * 4 + i] + g[r * 4 + i]).collect();
        let best = argmax(&keys);
        let row = &y[r * 4..r * 4 + 4];
        assert_eq!(argmax(row), best);
        let mut sorted = keys.clone();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        if sorted[0] - sorted[1] > 0.02 {
            let mut one_hot = [0.0f32; 4];
            one_hot[best] = 1.0;
            assert_close(row, &one_hot, 1e-6);
        }
        counts[best] += 1;
    }
    // Gumbel-max: the argmax is an exact sample of softmax(θ).
    let p = categorical::softmax(&theta_row, 1.0).unwrap();
    let chi2: f64 = counts
        .iter()
        .zip(&p)
        .map(|(&c, p)| (c as f64 - rows as f64 * p).powi(2) / (rows as f64 * p))
        .sum();
    assert!(
        chi2 < ChiSquared::new(3.0).unwrap().inverse_cdf(0.999),
        "chi2 {chi2}"
    );
}

#[test]
fn straight_through_gumbel_softmax_is_hard_forward_relaxed_backward() {
    let dev = Cpu::default();
    let theta: Tensor<Rank2<3, 5>, f32, _> = dev.sample_normal();
    let c: Tensor<Rank2<3, 5>, f32, _> = dev.sample_normal();
    let soft = GumbelSoftmax::new(0.7).unwrap().seed(2);
    let hard = GumbelSoftmax::new(0.7).unwrap().hard(true).seed(2);
    let ys = soft.apply(theta.leaky_trace()).unwrap();
    let yh = hard.apply(theta.leaky_trace()).unwrap();
    for (h, s) in yh.as_vec().chunks(5).zip(ys.as_vec().chunks(5)) {
        let mut one_hot = [0.0f32; 5];
        one_hot[argmax(s)] = 1.0;
        assert_eq!(h, one_hot);
    }
    let gs = (ys * c.clone()).sum().backward().get(&theta).as_vec();
    let gh = (yh * c).sum().backward().get(&theta).as_vec();
    assert_close(&gh, &gs, 1e-6);
}

#[test]
fn gumbel_softmax_blocks_and_schedule() {
    let dev = Cpu::default();
    let theta: Tensor<(usize, Const<4>, Const<6>), f32, _> =
        dev.sample_normal_like(&(2, Const, Const));
    let y = GumbelSoftmax::new(0.5)
        .unwrap()
        .apply_blocks(theta)
        .unwrap();
    assert!(y
        .as_vec()
        .chunks(6)
        .all(|b| (b.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    let s = TemperatureSchedule::exponential(1.0, 1e-3, 0.5).unwrap();
    assert_eq!(s.at(0), 1.0);
    assert!((s.at(100) - (-0.1f32).exp()).abs() < 1e-6);
    assert_eq!(s.at(1000), 0.5); // exp(−1) < 0.5 is clamped
    assert!(TemperatureSchedule::exponential(1.0, 1e-3, 2.0).is_err());
    assert!(TemperatureSchedule::exponential(0.0, 1e-3, 0.5).is_err());
    assert!(TemperatureSchedule::exponential(1.0, -1.0, 0.5).is_err());
}

#[test]
fn gumbel_softmax_bad_input_returns_typed_errors() {
    let dev = Cpu::default();
    let theta = dev.tensor([[0.0f32, 1.0]]);
    assert!(matches!(
        GumbelSoftmax::new(0.0),
        Err(Error::InvalidParameter { .. })
    ));
    let mut gs = GumbelSoftmax::new(1.0).unwrap();
    assert!(gs.set_temperature(-1.0).is_err());
    assert_eq!(gs.current_temperature(), 1.0);
    assert!(matches!(
        GumbelSoftmax::new(1.0)
            .unwrap()
            .apply(dev.tensor([[f32::INFINITY, 0.0]])),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        GumbelSoftmax::new(1.0)
            .unwrap()
            .apply_with_noise(theta, vec![0.0; 3]),
        Err(Error::LengthMismatch { .. })
    ));
}

// ---------------------------------------------------------------- BB

#[test]
fn blackbox_is_its_defining_formula() {
    let dev = Cpu::default();
    let theta_v = [0.3f32, -1.0, 2.0, 0.5];
    let theta = dev.tensor([theta_v]);
    let bb = Blackbox::new(TopK::new(2), 3.0).unwrap();
    let z = bb.apply(theta.leaky_trace()).unwrap();
    assert_eq!(z.array(), [[0.0, 0.0, 1.0, 1.0]]);
    // g = (0, 0, 1, 0): θ' = θ − 3g = (0.3, −1, −1, 0.5) → MAP(θ') = (1, 0, 0, 1).
    let grads = (z * dev.tensor([[0.0f32, 0.0, 1.0, 0.0]])).sum().backward();
    assert_close(
        &grads.get(&theta).as_vec(),
        &[-1.0 / 3.0, 0.0, 1.0 / 3.0, 0.0],
        1e-7,
    );
}

#[test]
fn blackbox_is_imle_without_noise_scaled_by_lambda() {
    // Footnote 10 of the I-MLE paper.
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for lambda in [0.5f32, 2.0, 10.0] {
        let theta_v = random_vec(&mut rng, 6 * 10, 2.0);
        let c = random_vec(&mut rng, 6 * 10, 2.0);
        let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v, (6, 10));
        let c: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(c, (6, 10));
        let bb = Blackbox::new(TopK::new(4), lambda)
            .unwrap()
            .apply(theta.leaky_trace())
            .unwrap();
        let imle = Imle::new(TopK::new(4), Target::pid(lambda).unwrap(), Noise::None)
            .scale_by_lambda(true);
        let im = imle.apply(theta.leaky_trace()).unwrap();
        assert_eq!(bb.as_vec(), im.as_vec());
        let g_bb = (bb * c.clone()).sum().backward().get(&theta).as_vec();
        let g_im = (im * c).sum().backward().get(&theta).as_vec();
        assert_close(&g_bb, &g_im, 1e-6);
        assert!(g_bb.iter().any(|v| *v != 0.0));
    }
}

#[test]
fn blackbox_bad_input_returns_typed_errors() {
    let dev = Cpu::default();
    let theta = dev.tensor([[0.0f32, 1.0]]);
    assert!(matches!(
        Blackbox::new(Argmax, 0.0),
        Err(Error::InvalidParameter { name: "lambda", .. })
    ));
    let bb = Blackbox::new(Argmax, 1.0).unwrap();
    let z = bb.apply(theta.leaky_trace()).unwrap();
    assert!((z * dev.tensor([[f32::NAN, 0.0]]))
        .sum()
        .try_backward()
        .is_err());
    assert!(matches!(
        bb.take_backward_error(),
        Some(Error::NonFinite { .. })
    ));
}

// ---------------------------------------------------------------- DPO

#[test]
fn perturbed_forward_and_backward_are_berthet_formulas() {
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (b, m, s, sigma) = (2usize, 5usize, 7usize, 0.8f32);
    let theta_v = random_vec(&mut rng, b * m, 1.0);
    let c = random_vec(&mut rng, b * m, 1.0);
    for noise in [PerturbationNoise::Normal, PerturbationNoise::Gumbel] {
        let dpo = Perturbed::new(TopK::new(2), sigma, s)
            .unwrap()
            .noise(noise)
            .seed(21);
        let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (b, m));
        let y = dpo.apply(theta.leaky_trace()).unwrap();
        // The noise of call 0, reproduced.
        let mut z_noise = vec![0.0; b * s * m];
        noise.fill(call_seed(21, 0), &mut z_noise);
        let mut mean = vec![0.0f32; b * m];
        let mut grad = vec![0.0f32; b * m];
        for bi in 0..b {
            for j in 0..s {
                let eps = &z_noise[(bi * s + j) * m..(bi * s + j + 1) * m];
                let pert: Vec<f32> = (0..m)
                    .map(|i| theta_v[bi * m + i] + sigma * eps[i])
                    .collect();
                let mut z = vec![0.0; m];
                TopK::new(2).solve(&pert, &mut z).unwrap();
                let dot: f32 = (0..m).map(|i| z[i] * c[bi * m + i]).sum();
                for i in 0..m {
                    mean[bi * m + i] += z[i] / s as f32;
                    let dnu = match noise {
                        PerturbationNoise::Normal => eps[i],
                        PerturbationNoise::Gumbel => 1.0 - (-eps[i]).exp(),
                    };
                    grad[bi * m + i] += dot * dnu / (s as f32 * sigma);
                }
            }
        }
        assert_close(&y.as_vec(), &mean, 1e-6);
        let c_t: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(c.clone(), (b, m));
        let g = (y * c_t).sum().backward().get(&theta).as_vec();
        assert_close(&g, &grad, 1e-5);
    }
}

#[test]
fn perturbed_gumbel_argmax_gradient_matches_the_exact_softmax_expectation() {
    // With Gumbel noise and the argmax solver, E[MAP(θ + σG)] = softmax(θ/σ) exactly;
    // DPO's gradient estimates the vector-Jacobian product of that expectation, which we
    // take by central finite differences.
    let theta = [0.5f32, -0.2, 0.1, 0.0];
    let c = [1.0f32, -0.5, 0.3, 2.0];
    let sigma = 0.7f32;
    let dpo = Perturbed::new(Argmax, sigma, 200_000)
        .unwrap()
        .noise(PerturbationNoise::Gumbel)
        .seed(1);
    let (_, fwd) = dpo.forward(&theta, 4).unwrap();
    let grad = dpo.backward(&fwd, &c).unwrap();
    let f = |th: &[f64]| -> f64 {
        softmax(th, sigma as f64)
            .iter()
            .zip(&c)
            .map(|(p, c)| p * *c as f64)
            .sum()
    };
    let th: Vec<f64> = theta.iter().map(|&v| v as f64).collect();
    for i in 0..4 {
        let h = 1e-5;
        let mut plus = th.clone();
        plus[i] += h;
        let mut minus = th.clone();
        minus[i] -= h;
        let fd = (f(&plus) - f(&minus)) / (2.0 * h);
        assert!(
            (grad[i] as f64 - fd).abs() < 0.03,
            "{i}: {} vs {fd}",
            grad[i]
        );
    }
    // The forward mean estimates softmax(θ/σ) too.
    let p = softmax(&th, sigma as f64);
    for (a, b) in fwd.mean().iter().zip(&p) {
        assert!((*a as f64 - b).abs() < 0.005);
    }
}

#[test]
fn perturbed_gradient_matches_finite_differences_with_common_random_numbers() {
    // F(θ) = (1/S) Σ_s <c, MAP(θ + σZ_s)> with the forward's own noise Z_s; central
    // differences of F with the same Z_s estimate ∇E[<c, MAP(θ + σZ)>], as does DPO.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (m, s, sigma) = (5usize, 100_000usize, 1.0f32);
    let theta = random_vec(&mut rng, m, 1.0);
    let c = random_vec(&mut rng, m, 1.0);
    let solver = TopK::new(2);
    let dpo = Perturbed::new(solver, sigma, s).unwrap().seed(3);
    let fwd = dpo.sample(&theta, m).unwrap();
    let grad = dpo.gradient(&fwd, &c).unwrap();
    let f = |th: &[f32]| -> f64 {
        let pert: Vec<f32> = fwd
            .noise
            .chunks(m)
            .flat_map(|eps| {
                th.iter()
                    .zip(eps)
                    .map(|(t, e)| t + sigma * e)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut z = vec![0.0; pert.len()];
        solver.solve_batch(&pert, m, &mut z).unwrap();
        z.chunks(m)
            .map(|z| z.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum::<f64>())
            .sum::<f64>()
            / s as f64
    };
    let h = 0.05f32;
    for i in 0..m {
        let mut plus = theta.clone();
        plus[i] += h;
        let mut minus = theta.clone();
        minus[i] -= h;
        let fd = (f(&plus) - f(&minus)) / (2.0 * h as f64);
        assert!(
            (grad[i] as f64 - fd).abs() < 0.04,
            "{i}: {} vs {fd}",
            grad[i]
        );
    }
}

#[test]
fn fenchel_young_loss_has_gradient_mean_minus_target() {
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (m, s, sigma) = (6usize, 500usize, 0.5f32);
    let theta_v = random_vec(&mut rng, m, 1.0);
    let y_v = vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 0.0];
    let solver = TopK::new(2);
    let fy = FenchelYoung::new(Perturbed::new(solver, sigma, s).unwrap().seed(5));
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (1, m));
    let y: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(y_v.clone(), (1, m));
    let loss = fy.loss(theta.leaky_trace(), &y).unwrap();
    let value = loss.as_vec()[0];
    let grad = loss.sum().backward().get(&theta).as_vec();
    // Same seed, call 0: the same samples.
    let fwd = Perturbed::new(solver, sigma, s)
        .unwrap()
        .seed(5)
        .sample(&theta_v, m)
        .unwrap();
    let mean = fwd.mean();
    let expect: Vec<f32> = mean.iter().zip(&y_v).map(|(a, b)| a - b).collect();
    assert_close(&grad, &expect, 1e-6);
    // Value: F̂(θ) − <θ, y>, F̂(θ) = (1/S) Σ_s max_z <z, θ + σZ_s>.
    let f_hat = |th: &[f32]| -> f64 {
        fwd.noise
            .chunks(m)
            .map(|eps| {
                let pert: Vec<f32> = th.iter().zip(eps).map(|(t, e)| t + sigma * e).collect();
                let mut z = vec![0.0; m];
                solver.solve(&pert, &mut z).unwrap();
                z.iter()
                    .zip(&pert)
                    .map(|(a, b)| (a * b) as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / s as f64
    };
    let dot = |th: &[f32]| -> f64 { th.iter().zip(&y_v).map(|(a, b)| (a * b) as f64).sum() };
    assert!((value as f64 - (f_hat(&theta_v) - dot(&theta_v))).abs() < 1e-4);
    // F̂ is convex and piecewise linear with gradient ŷ (Danskin): finite differences agree.
    let h = 1e-3f32;
    for i in 0..m {
        let mut plus = theta_v.clone();
        plus[i] += h;
        let mut minus = theta_v.clone();
        minus[i] -= h;
        let fd = (f_hat(&plus) - dot(&plus) - f_hat(&minus) + dot(&minus)) / (2.0 * h as f64);
        assert!(
            (fd - expect[i] as f64).abs() < 1e-2,
            "{i}: {fd} vs {}",
            expect[i]
        );
    }
}

#[test]
fn perturbed_bad_input_returns_typed_errors() {
    let dev = Cpu::default();
    let theta = dev.tensor([[0.0f32, 1.0, 2.0]]);
    assert!(matches!(
        Perturbed::new(Argmax, 1.0, 0),
        Err(Error::ZeroSamples)
    ));
    assert!(matches!(
        Perturbed::new(Argmax, -1.0, 3),
        Err(Error::InvalidParameter { name: "sigma", .. })
    ));
    assert!(matches!(
        Perturbed::new(TopK::new(5), 1.0, 3)
            .unwrap()
            .apply(theta.clone()),
        Err(Error::InvalidK { .. })
    ));
    let bad_y = dev.tensor([[0.0f32, f32::NAN, 1.0]]);
    assert!(matches!(
        FenchelYoung::new(Perturbed::new(Argmax, 1.0, 3).unwrap()).loss(theta, &bad_y),
        Err(Error::NonFinite { .. })
    ));
}

// ---------------------------------------------------------------- SoftSub

/// SoftSub in f64, straight from Xie & Ermon's Algorithm 2.
fn softsub_reference(keys: &[f64], k: usize, t: f64) -> Vec<f64> {
    let mut alpha = keys.to_vec();
    let mut y = vec![0.0; keys.len()];
    for j in 0..k {
        let a = softmax(&alpha, t);
        for (yi, ai) in y.iter_mut().zip(&a) {
            *yi += ai;
        }
        if j + 1 < k {
            for (al, ai) in alpha.iter_mut().zip(&a) {
                *al += (1.0 - ai).max(f32::MIN_POSITIVE as f64).ln();
            }
        }
    }
    y
}

#[test]
fn softsub_forward_is_xie_ermon_algorithm() {
    let dev = Cpu::default();
    // k = 1 without noise: a softmax.
    let theta_v = [1.0f32, 0.0, -1.0, 0.5];
    let theta = dev.tensor([theta_v]);
    let y = SoftSub::new(1, 0.5)
        .unwrap()
        .apply_with_noise(theta.clone(), vec![0.0; 4])
        .unwrap();
    let p: Vec<f32> = softmax(&theta_v.map(f64::from), 0.5)
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert_close(&y.as_vec(), &p, 1e-6);
    // m = k = 2 at t = 1, keys (ln 0.9, ln 0.1): a¹ = (0.9, 0.1), a² = (0.5, 0.5),
    // y = (1.4, 0.6): the relaxation leaves [0, 1] (documented).
    let theta = dev.tensor([[0.9f32.ln(), 0.1f32.ln()]]);
    let y = SoftSub::new(2, 1.0)
        .unwrap()
        .apply_with_noise(theta, vec![0.0; 2])
        .unwrap();
    assert_close(&y.as_vec(), &[1.4, 0.6], 1e-5);
    // Seeded noise, against the f64 reference.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let theta_v = random_vec(&mut rng, 3 * 8, 2.0);
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (3, 8));
    let y = SoftSub::new(3, 0.4)
        .unwrap()
        .seed(6)
        .apply(theta)
        .unwrap()
        .as_vec();
    let g = gumbel(6, 0, 24);
    for r in 0..3 {
        let keys: Vec<f64> = (0..8)
            .map(|i| (theta_v[r * 8 + i] + g[r * 8 + i]) as f64)
            .collect();
        let expect: Vec<f32> = softsub_reference(&keys, 3, 0.4)
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_close(&y[r * 8..r * 8 + 8], &expect, 1e-5);
    }
}

#[test]
fn softsub_rows_sum_to_k_and_tend_to_the_top_k_of_the_keys() {
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let (b, m, k) = (50usize, 10usize, 3usize);
    let theta_v = random_vec(&mut rng, b * m, 2.0);
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (b, m));
    for t in [2.0f32, 0.5, 0.1] {
        let y = SoftSub::new(k, t)
            .unwrap()
            .seed(1)
            .apply(theta.clone())
            .unwrap()
            .as_vec();
        for row in y.chunks(m) {
            assert!(row.iter().all(|&v| v >= 0.0));
            assert!((row.iter().sum::<f32>() - k as f32).abs() < 1e-4);
        }
    }
    // t → 0: the k-hot top-k of θ + G, which lies in {0, 1}.
    let y = SoftSub::new(k, 1e-3)
        .unwrap()
        .seed(2)
        .apply(theta)
        .unwrap()
        .as_vec();
    let g = gumbel(2, 0, b * m);
    let keys: Vec<f32> = theta_v.iter().zip(&g).map(|(a, b)| a + b).collect();
    let mut top = vec![0.0; b * m];
    TopK::new(k).solve_batch(&keys, m, &mut top).unwrap();
    let mut exact_rows = 0;
    for r in 0..b {
        let mut sorted = keys[r * m..(r + 1) * m].to_vec();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        if sorted.windows(2).take(k).all(|w| w[0] - w[1] > 0.05) {
            assert_close(&y[r * m..(r + 1) * m], &top[r * m..(r + 1) * m], 1e-4);
            exact_rows += 1;
        }
    }
    assert!(exact_rows > b / 2, "only {exact_rows} rows with clear gaps");
}

/// Central finite differences of `<c, f(θ)>` in f64 around θ (f evaluated in f32).
fn finite_differences(
    theta: &[f32],
    c: &[f32],
    h: f32,
    f: impl Fn(&[f32]) -> Vec<f32>,
) -> Vec<f32> {
    (0..theta.len())
        .map(|i| {
            let mut plus = theta.to_vec();
            plus[i] += h;
            let mut minus = theta.to_vec();
            minus[i] -= h;
            let lp: f64 = f(&plus).iter().zip(c).map(|(a, b)| (a * b) as f64).sum();
            let lm: f64 = f(&minus).iter().zip(c).map(|(a, b)| (a * b) as f64).sum();
            ((lp - lm) / (2.0 * h as f64)) as f32
        })
        .collect()
}

#[test]
fn softsub_and_l2x_gradients_match_finite_differences() {
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let m = 6;
    let theta_v = random_vec(&mut rng, m, 1.0);
    let c = random_vec(&mut rng, m, 1.0);
    let c_t: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(c.clone(), (1, m));
    let noise = random_vec(&mut rng, m, 1.0);
    let ss = SoftSub::new(3, 1.0).unwrap();
    let fwd = |th: &[f32]| {
        let t: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(th.to_vec(), (1, m));
        ss.apply_with_noise(t, noise.clone()).unwrap().as_vec()
    };
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (1, m));
    let y = ss
        .apply_with_noise(theta.leaky_trace(), noise.clone())
        .unwrap();
    let g = (y * c_t.clone()).sum().backward().get(&theta).as_vec();
    assert_close(&g, &finite_differences(&theta_v, &c, 1e-2, fwd), 2e-3);

    let noise3 = random_vec(&mut rng, 2 * m, 1.0);
    let l2x = L2x::new(2, 1.0).unwrap();
    let fwd = |th: &[f32]| {
        let t: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(th.to_vec(), (1, m));
        l2x.apply_with_noise(t, noise3.clone()).unwrap().as_vec()
    };
    let y = l2x
        .apply_with_noise(theta.leaky_trace(), noise3.clone())
        .unwrap();
    let g = (y * c_t).sum().backward().get(&theta).as_vec();
    assert_close(&g, &finite_differences(&theta_v, &c, 1e-3, fwd), 2e-3);
}

#[test]
fn relaxations_bad_input_returns_typed_errors() {
    let dev = Cpu::default();
    let theta = dev.tensor([[0.0f32, 1.0, 2.0]]);
    assert!(matches!(
        SoftSub::new(0, 1.0),
        Err(Error::InvalidK { k: 0, .. })
    ));
    assert!(matches!(
        SoftSub::new(4, 1.0).unwrap().apply(theta.clone()),
        Err(Error::InvalidK { k: 4, m: 3 })
    ));
    assert!(matches!(
        SoftSub::new(1, -1.0),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        L2x::new(4, 1.0).unwrap().apply(theta.clone()),
        Err(Error::InvalidK { .. })
    ));
    assert!(matches!(
        L2x::new(2, f32::NAN),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(L2x::new(0, 1.0), Err(Error::InvalidK { .. })));
    assert!(matches!(
        L2x::new(2, 1.0)
            .unwrap()
            .apply(dev.tensor([[0.0f32, f32::NAN, 2.0]])),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        L2x::new(2, 1.0)
            .unwrap()
            .apply_with_noise(theta, vec![0.0; 3]),
        Err(Error::LengthMismatch { .. })
    ));
}

// ---------------------------------------------------------------- L2X

#[test]
fn l2x_forward_is_the_max_of_k_gumbel_softmaxes() {
    let dev = Cpu::default();
    // Zero noise: every softmax is the same, so y = softmax(θ/t).
    let theta_v = [1.0f32, 0.0, -1.0, 0.5];
    let theta = dev.tensor([theta_v]);
    let y = L2x::new(3, 0.5)
        .unwrap()
        .apply_with_noise(theta, vec![0.0; 12])
        .unwrap();
    let p: Vec<f32> = softmax(&theta_v.map(f64::from), 0.5)
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert_close(&y.as_vec(), &p, 1e-6);
    // Seeded noise, layout (B, k, M), against a hand computation.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (b, m, k, t) = (4usize, 7usize, 3usize, 0.3f32);
    let theta_v = random_vec(&mut rng, b * m, 2.0);
    let theta: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_v.clone(), (b, m));
    let y = L2x::new(k, t)
        .unwrap()
        .seed(3)
        .apply(theta)
        .unwrap()
        .as_vec();
    let g = gumbel(3, 0, b * k * m);
    for r in 0..b {
        let mut expect = vec![0.0f64; m];
        for j in 0..k {
            let keys: Vec<f64> = (0..m)
                .map(|i| (theta_v[r * m + i] + g[(r * k + j) * m + i]) as f64)
                .collect();
            for (e, p) in expect.iter_mut().zip(softmax(&keys, t as f64)) {
                *e = e.max(p);
            }
        }
        let expect: Vec<f32> = expect.iter().map(|&v| v as f32).collect();
        assert_close(&y[r * m..(r + 1) * m], &expect, 1e-5);
        let row = &y[r * m..(r + 1) * m];
        assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
        let sum: f32 = row.iter().sum();
        assert!((1.0 - 1e-5..=k as f32 + 1e-5).contains(&sum));
    }
}

#[test]
fn ops_work_with_const_and_runtime_dims_and_without_tape() {
    let dev = Cpu::default();
    let theta: Tensor<Rank2<4, 6>, f32, _> = dev.sample_normal();
    let rt: Tensor<(usize, Const<6>), f32, _> = dev.tensor_from_vec(theta.as_vec(), (4, Const));
    let solver = TopK::new(2);
    assert_eq!(
        Ste::new(solver, Noise::None)
            .apply(theta.clone())
            .unwrap()
            .shape(),
        &(Const, Const)
    );
    assert_eq!(
        Ste::new(solver, Noise::None)
            .apply(rt.clone())
            .unwrap()
            .shape()
            .0,
        4
    );
    assert_eq!(
        Blackbox::new(solver, 1.0)
            .unwrap()
            .apply(rt.clone())
            .unwrap()
            .as_vec()
            .len(),
        24
    );
    assert_eq!(
        Perturbed::new(solver, 1.0, 3)
            .unwrap()
            .apply(rt.clone())
            .unwrap()
            .as_vec()
            .len(),
        24
    );
    assert_eq!(
        GumbelSoftmax::new(1.0)
            .unwrap()
            .apply(rt.clone())
            .unwrap()
            .as_vec()
            .len(),
        24
    );
    assert_eq!(
        SoftSub::new(2, 1.0)
            .unwrap()
            .apply(rt.clone())
            .unwrap()
            .as_vec()
            .len(),
        24
    );
    assert_eq!(
        L2x::new(2, 1.0)
            .unwrap()
            .apply(rt.clone())
            .unwrap()
            .as_vec()
            .len(),
        24
    );
    let z = ScoreFunction::new(2).unwrap().sample(&rt).unwrap();
    let s = ScoreFunction::new(2)
        .unwrap()
        .surrogate(rt.clone(), &z, &[1.0; 4])
        .unwrap();
    assert_eq!(s.shape().0, 4);
    // Traced with const dims: gradients reach θ.
    let g = L2x::new(2, 1.0)
        .unwrap()
        .apply(theta.leaky_trace())
        .unwrap()
        .square()
        .sum()
        .backward();
    assert!(g.get(&theta).as_vec().iter().any(|v| *v != 0.0));
}
