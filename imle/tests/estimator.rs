//! The I-MLE estimator (Algorithm 1, Eq. 9) on hand-derived examples, through dfdx,
//! its errors and its determinism.

use dfdx::optim::{Adam, AdamConfig, Optimizer};
use dfdx::prelude::*;
use imle::prelude::*;
use imle::target::AdaptiveLambda;
use imle::Error;

fn topk(theta: &[f32], k: usize) -> Vec<f32> {
    let mut z = vec![0.0; theta.len()];
    TopK::new(k).solve(theta, &mut z).unwrap();
    z
}

fn axpy(a: f32, x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(x, y)| a * x + y).collect()
}

fn sub(x: &[f32], y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(x, y)| x - y).collect()
}

#[test]
fn hand_derived_example_without_noise() {
    // θ = (3, 1, 2, 0), k = 2: MAP = {0, 2}. g = (0, -2, 1, 0), λ = 1:
    // θ' = θ - λg = (3, 3, 1, 0): MAP = {0, 1}. Gradient = z - z' = (0, -1, 1, 0).
    let imle = Imle::new(TopK::new(2), Target::pid(1.0).unwrap(), Noise::None);
    let (z, fwd) = imle.forward(&[3.0, 1.0, 2.0, 0.0], 4).unwrap();
    assert_eq!(z, [1.0, 0.0, 1.0, 0.0]);
    let grad = imle.backward(&fwd, &[0.0, -2.0, 1.0, 0.0]).unwrap();
    assert_eq!(grad, [0.0, -1.0, 1.0, 0.0]);
    // Two-sided: (MAP(θ + λg) - MAP(θ - λg)) / 2, θ + λg = (3, -1, 3, 0): MAP = {0, 2}.
    let two = imle.clone().two_sided(true);
    let (_, fwd) = two.forward(&[3.0, 1.0, 2.0, 0.0], 4).unwrap();
    let grad = two.backward(&fwd, &[0.0, -2.0, 1.0, 0.0]).unwrap();
    assert_eq!(grad, [0.0, 0.5, -0.5, 0.0].map(|v: f32| -v));
}

/// Forward topk(θ + ε); backward topk(θ + ε) − topk(θ − λg + ε), averaged over S samples,
/// checked against the definition with the estimator's own noise.
#[test]
fn gradient_matches_definition_for_one_and_many_samples() {
    let theta = [0.3f32, -0.2, 1.5, 0.9, -1.1, 0.4, 0.0, 2.2];
    let g = [1.0f32, -0.5, 0.2, 0.0, 0.7, -1.3, 0.4, 0.1];
    let (m, k, lambda) = (4, 2, 1.5f32); // two rows of 4
    for samples in [1, 5] {
        for two_sided in [false, true] {
            for scale in [false, true] {
                let imle = Imle::new(
                    TopK::new(k),
                    Target::pid(lambda).unwrap(),
                    Noise::sum_of_gamma(2.0, 1.0, 10).unwrap(),
                )
                .samples(samples)
                .unwrap()
                .two_sided(two_sided)
                .scale_by_lambda(scale)
                .seed(9);
                let fwd = imle.sample(&theta, m).unwrap();
                let grad = imle.gradient(&fwd, &g).unwrap();
                let mut expected = vec![0.0f32; theta.len()];
                for b in 0..2 {
                    let th = &theta[b * m..(b + 1) * m];
                    let gb = &g[b * m..(b + 1) * m];
                    for s in 0..samples {
                        let r = b * samples + s;
                        let eps = &fwd.noise[r * m..(r + 1) * m];
                        let z = topk(&axpy(1.0, eps, th), k);
                        assert_eq!(&fwd.z[r * m..(r + 1) * m], &z[..]);
                        let minus = topk(&axpy(1.0, eps, &axpy(-lambda, gb, th)), k);
                        let diff = if two_sided {
                            let plus = topk(&axpy(1.0, eps, &axpy(lambda, gb, th)), k);
                            sub(&plus, &minus).iter().map(|v| v / 2.0).collect()
                        } else {
                            sub(&z, &minus)
                        };
                        let c = if scale { 1.0 / lambda } else { 1.0 } / samples as f32;
                        for (e, d) in expected[b * m..(b + 1) * m].iter_mut().zip(diff) {
                            *e += c * d;
                        }
                    }
                }
                for (a, e) in grad.iter().zip(&expected) {
                    assert!(
                        (a - e).abs() < 1e-6,
                        "S={samples} two={two_sided}: {grad:?} vs {expected:?}"
                    );
                }
            }
        }
    }
}

/// Footnote 10: with no noise and the PID target, the I-MLE gradient is λ times the
/// blackbox-differentiation gradient (MAP(θ) − MAP(θ − λg))/λ of Pogančić et al.
#[test]
fn no_noise_pid_is_blackbox_differentiation_times_lambda() {
    let theta = [0.5f32, 1.0, -0.3, 0.8, 0.1, -2.0];
    let g = [-0.6f32, 0.4, -0.9, 0.2, 0.3, 0.0];
    for lambda in [0.1f32, 1.0, 3.0, 10.0] {
        let bb: Vec<f32> = sub(&topk(&theta, 3), &topk(&axpy(-lambda, &g, &theta), 3))
            .iter()
            .map(|v| v / lambda)
            .collect();
        let imle = Imle::new(TopK::new(3), Target::pid(lambda).unwrap(), Noise::None);
        let (_, fwd) = imle.forward(&theta, 6).unwrap();
        let grad = imle.backward(&fwd, &g).unwrap();
        let scaled: Vec<f32> = bb.iter().map(|v| v * lambda).collect();
        assert_eq!(grad, scaled, "lambda = {lambda}");
        let scaled_imle = imle.clone().scale_by_lambda(true);
        let (_, fwd) = scaled_imle.forward(&theta, 6).unwrap();
        let grad = scaled_imle.backward(&fwd, &g).unwrap();
        assert_eq!(grad, bb);
        // And BB itself gives the same numbers.
        let bb_op = Blackbox::new(TopK::new(3), lambda).unwrap();
        let (_, saved) = bb_op.forward(&theta, 6).unwrap();
        assert_eq!(bb_op.backward(&saved, &g).unwrap(), bb);
    }
}

#[test]
fn combinatorial_target_is_eq_14() {
    // θ = (1, 2, 3), k = 1: MAP = e_2. g = (0, -5, 1): θ' = (1, 5, -1): MAP = e_1.
    let imle = Imle::new(TopK::new(1), Target::Combinatorial, Noise::None);
    let (_, fwd) = imle.forward(&[1.0, 2.0, 3.0], 3).unwrap();
    let grad = imle.backward(&fwd, &[0.0, -5.0, 1.0]).unwrap();
    assert_eq!(grad, [0.0, -1.0, 1.0]);
}

#[test]
fn adaptive_target_uses_norm_ratio_and_updates_beta() {
    let ada = std::sync::Arc::new(AdaptiveLambda::new(1.0, 0.9).unwrap());
    let imle = Imle::new(TopK::new(1), Target::Adaptive(ada.clone()), Noise::None);
    // ‖θ‖ = 5, ‖g‖ = 5 → λ = 1: θ' = (3, 4) - (0, 5)... with g = (-3, 4): θ' = (6, 0).
    let (_, fwd) = imle.forward(&[3.0, 4.0], 2).unwrap();
    let grad = imle.backward(&fwd, &[-3.0, 4.0]).unwrap();
    assert_eq!(grad, [-1.0, 1.0]);
    // Every entry non-zero ≥ target 0.9 → β shrinks.
    assert!(ada.beta() < 1.0);
}

/// The dfdx op writes exactly the slice-level estimate into θ's gradient, for
/// compile-time and run-time dims, mean and all-samples outputs.
#[test]
fn dfdx_op_gradients_equal_slice_level_estimates() {
    let dev = Cpu::default();
    let theta_data = [0.3f32, -0.2, 1.5, 0.9, -1.1, 0.4, 0.0, 2.2, 0.5, 0.1];
    let w_data = [1.0f32, -0.5, 0.2, 0.0, 0.7, -1.3, 0.4, 0.1, 0.9, -0.2];
    let make = || {
        Imle::new(
            TopK::new(2),
            Target::pid(2.0).unwrap(),
            Noise::gumbel(1.0).unwrap(),
        )
        .samples(3)
        .unwrap()
        .seed(5)
    };
    // Mean output, Const dims: L = Σ w ⊙ z̄ → g = w for every sample.
    let theta: Tensor<Rank2<2, 5>, f32, _> =
        dev.tensor_from_vec(theta_data.to_vec(), (Const, Const));
    let w: Tensor<Rank2<2, 5>, f32, _> = dev.tensor_from_vec(w_data.to_vec(), (Const, Const));
    let imle = make();
    let z = imle.apply(theta.leaky_trace()).unwrap();
    let z_values = z.as_vec();
    let grads = (z * w.clone()).sum().backward();
    let reference = make();
    let (mean, fwd) = reference.forward(&theta_data, 5).unwrap();
    assert_eq!(z_values, fwd.mean());
    assert_eq!(z_values, mean);
    let expected = reference.backward(&fwd, &w_data).unwrap();
    assert_eq!(grads.get(&theta).as_vec(), expected);

    // All samples, runtime dims: rows (b, s).
    let theta_rt: Tensor<(usize, usize), f32, _> = dev.tensor_from_vec(theta_data.to_vec(), (2, 5));
    let imle = make();
    let zs = imle.apply_samples(theta_rt.leaky_trace()).unwrap();
    assert_eq!(zs.shape().0, 6);
    let ws: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let ws_t = dev.tensor_from_vec(ws.clone(), (6, 5));
    let grads = (zs * ws_t).sum().backward();
    let reference = make();
    let fwd = reference.sample(&theta_data, 5).unwrap();
    let expected = reference.gradient(&fwd, &ws).unwrap();
    assert_eq!(grads.get(&theta_rt).as_vec(), expected);

    // No tape: inference works and gives a 2-subset per row.
    let z = make().apply(theta.clone()).unwrap();
    assert!((z.as_vec().iter().sum::<f32>() - 4.0).abs() < 1e-5);
}

#[test]
fn blocks_helper_solves_each_block() {
    let dev = Cpu::default();
    let theta: Tensor<Rank3<2, 3, 4>, f32, _> = dev.sample_normal();
    let imle = Imle::new(TopK::new(2), Target::pid(1.0).unwrap(), Noise::None);
    let z = imle.apply_blocks(theta.clone()).unwrap();
    let zv = z.as_vec();
    let tv = theta.as_vec();
    for (zb, tb) in zv.chunks(4).zip(tv.chunks(4)) {
        assert_eq!(zb, &topk(tb, 2)[..]);
    }
}

/// A tiny model: Linear → I-MLE top-k → MSE to a fixed k-hot target; the loss falls.
#[test]
fn tiny_model_learns_a_fixed_subset() {
    let dev = Cpu::seed_from_u64(0);
    let mut model = dev.build_module::<Linear<5, 10>, f32>();
    let mut grads = model.alloc_grads();
    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: 0.05,
            ..Default::default()
        },
    );
    // λ must be on the scale of θ relative to g = ∂L/∂z (here |g| = 2/16 per entry).
    let imle = Imle::new(
        TopK::new(3),
        Target::pid(10.0).unwrap(),
        Noise::sum_of_gamma(3.0, 1.0, 10).unwrap(),
    )
    .seed(1);
    let x: Tensor<Rank2<16, 5>, f32, _> = dev.sample_normal();
    let mut wanted = [[0.0f32; 10]; 16];
    for row in wanted.iter_mut() {
        row[1] = 1.0;
        row[4] = 1.0;
        row[7] = 1.0;
    }
    let wanted = dev.tensor(wanted);
    let mut losses = Vec::new();
    for _ in 0..150 {
        let theta = model.forward(x.trace(grads));
        let z = imle.apply(theta).unwrap();
        // Squared error summed over items, averaged over the 16 examples.
        let loss = (z - wanted.clone()).square().sum() / 16.0;
        losses.push(loss.array());
        grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(first > 2.0, "initial loss {first}");
    assert!(last < 0.25 * first, "loss {first} -> {last}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let pid = || Target::pid(1.0).unwrap();
    let imle = Imle::new(TopK::new(1), pid(), Noise::None);
    assert!(matches!(
        imle.forward(&[1.0, f32::NAN], 2),
        Err(Error::NonFinite {
            what: "theta",
            index: 1,
            ..
        })
    ));
    let with_k = |k| Imle::new(TopK::new(k), pid(), Noise::None);
    assert!(matches!(
        with_k(0).forward(&[1.0, 2.0], 2),
        Err(Error::InvalidK { k: 0, m: 2 })
    ));
    assert!(matches!(
        with_k(3).forward(&[1.0, 2.0], 2),
        Err(Error::InvalidK { k: 3, m: 2 })
    ));
    assert!(matches!(
        imle.forward(&[1.0, 2.0, 3.0], 2),
        Err(Error::LengthMismatch { .. })
    ));
    // Hyper-parameters are checked when the estimator is built, not when applied.
    assert!(matches!(imle.clone().samples(0), Err(Error::ZeroSamples)));
    for t in [-1.0, 0.0, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            imle.clone().input_temperature(t),
            Err(Error::InvalidParameter {
                name: "input_temperature",
                ..
            })
        ));
        assert!(matches!(
            imle.clone().target_temperature(t),
            Err(Error::InvalidParameter {
                name: "target_temperature",
                ..
            })
        ));
    }
    let (_, fwd) = imle.forward(&[1.0, 2.0], 2).unwrap();
    assert!(matches!(
        imle.backward(&fwd, &[1.0, 2.0, 3.0]),
        Err(Error::LengthMismatch {
            what: "upstream gradient",
            ..
        })
    ));
    assert!(matches!(
        imle.backward(&fwd, &[1.0, f32::INFINITY]),
        Err(Error::NonFinite {
            what: "upstream gradient",
            ..
        })
    ));
    assert!(Target::pid(-1.0).is_err());

    // Through dfdx: the op returns the error; a failing backward surfaces through
    // try_backward, and the real error is kept.
    let dev = Cpu::default();
    let bad = dev.tensor([[1.0f32, f32::NAN]]);
    assert!(matches!(
        imle.apply(bad.leaky_trace()),
        Err(Error::NonFinite { .. })
    ));
    let theta = dev.tensor([[1.0f32, 2.0]]);
    let z = imle.apply(theta.leaky_trace()).unwrap();
    let nan = dev.tensor([[f32::NAN, 1.0]]);
    assert!((z * nan).sum().try_backward().is_err());
    assert!(matches!(
        imle.take_backward_error(),
        Some(Error::NonFinite {
            what: "upstream gradient",
            ..
        })
    ));
    assert_eq!(imle.take_backward_error(), None);
}

#[test]
fn same_seed_same_numbers() {
    let theta: Vec<f32> = (0..200).map(|i| ((i * 37) % 17) as f32 / 5.0).collect();
    let g: Vec<f32> = (0..200).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
    let run = |seed| {
        let imle = Imle::new(
            TopK::new(5),
            Target::pid(2.0).unwrap(),
            Noise::sum_of_gamma(5.0, 1.0, 10).unwrap(),
        )
        .samples(4)
        .unwrap()
        .reuse_noise(false)
        .seed(seed);
        let mut out = Vec::new();
        for _ in 0..3 {
            let fwd = imle.sample(&theta, 20).unwrap();
            out.extend(imle.gradient(&fwd, &g).unwrap());
            out.extend(fwd.z);
        }
        out
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn rows_helper_handles_grids_and_rejects_bad_row_lengths() {
    let dev = Cpu::default();
    // Two 3 × 3 grids; the second has an expensive centre, so the path goes around it.
    let mut cost = [1.0f32; 18];
    cost[9 + 4] = 50.0;
    let theta = dev.tensor_from_vec(
        cost.iter().map(|c| -c).collect(),
        (Const::<2>, Const::<3>, Const::<3>),
    );
    let imle = Imle::new(
        GridShortestPath::new(3),
        Target::pid(1.0).unwrap(),
        Noise::None,
    );
    let z = imle.apply_rows(theta.leaky_trace(), 9).unwrap();
    let zv = z.as_vec();
    assert_eq!(&zv[..9], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(zv[9 + 4], 0.0);
    assert_eq!(zv[9..].iter().sum::<f32>(), 4.0);
    assert!(matches!(
        imle.apply_rows(theta, 7),
        Err(Error::LengthMismatch { .. })
    ));
}

/// A user's own noise and target distribution, used with the real `Imle`.
#[test]
fn custom_noise_and_custom_target_are_used_as_given() {
    use imle::target::TargetDistribution;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // θ' = θ − 10·g, counting the observe calls.
    #[derive(Debug)]
    struct Counting(Arc<AtomicUsize>);
    impl TargetDistribution for Counting {
        fn params(&self, theta: &[f32], g: &[f32], sign: f32, out: &mut [f32]) -> Option<f32> {
            for ((o, t), g) in out.iter_mut().zip(theta).zip(g) {
                *o = t - sign * 10.0 * g;
            }
            Some(10.0)
        }
        fn observe(&self, _gradient: &[f32]) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let uniform = rand_distr::Uniform::new(-0.5f32, 0.5);
    let custom = Imle::new(
        TopK::new(2),
        Target::custom(Counting(calls.clone())),
        Noise::custom("U(-0.5, 0.5)", uniform),
    )
    .scale_by_lambda(true)
    .seed(4);
    // The same numbers as the built-in PID(10) with the same noise drawn by hand.
    let theta: Vec<f32> = (0..40).map(|i| ((i * 7) % 13) as f32 / 3.0).collect();
    let g: Vec<f32> = (0..40)
        .map(|i| ((i * 5) % 11) as f32 / 10.0 - 0.5)
        .collect();
    let fwd = custom.sample(&theta, 8).unwrap();
    let grad = custom.gradient(&fwd, &g).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert!(fwd.noise.iter().all(|e| (-0.5..0.5).contains(e)));
    let mut expected = vec![0.0f32; 40];
    for r in 0..5 {
        let row = r * 8..(r + 1) * 8;
        let eps = &fwd.noise[row.clone()];
        let z = topk(&axpy(1.0, eps, &theta[row.clone()]), 2);
        let target = topk(
            &axpy(1.0, eps, &axpy(-10.0, &g[row.clone()], &theta[row.clone()])),
            2,
        );
        for (e, d) in expected[row].iter_mut().zip(sub(&z, &target)) {
            *e = d / 10.0;
        }
    }
    assert_eq!(grad, expected);
}

#[test]
fn given_noise_is_the_noise_the_seed_would_draw() {
    // Forward call 0 of an estimator seeded with s draws Noise::fill(call_seed(s, 0)):
    // given that draw, apply_with_noise returns the same sample and gradient.
    let dev = Cpu::default();
    let theta = dev.tensor([[0.3f32, -1.0, 2.0, 0.5, 0.0], [1.0, 1.0, -0.5, 0.2, 3.0]]);
    let noise = Noise::sum_of_gamma(2.0, 1.0, 10).unwrap();
    let imle = Imle::new(TopK::new(2), Target::pid(5.0).unwrap(), noise.clone());
    let mut eps = vec![0.0; 10];
    noise.fill(imle::noise::call_seed(7, 0), &mut eps);
    let up = dev.tensor([[1.0f32, -2.0, 0.5, 0.0, 1.0], [0.0, 3.0, -1.0, 2.0, -0.5]]);
    let run = |z: Tensor<Rank2<2, 5>, f32, Cpu, OwnedTape<f32, Cpu>>| {
        (z.as_vec(), (z * up.clone()).sum())
    };
    let (za, la) = run(imle.clone().seed(7).apply(theta.leaky_trace()).unwrap());
    let (zb, lb) = run(imle
        .apply_with_noise(theta.leaky_trace(), eps.clone())
        .unwrap());
    assert_eq!(za, zb);
    let (ga, gb) = (la.backward(), lb.backward());
    assert_eq!(ga.get(&theta).as_vec(), gb.get(&theta).as_vec());
    // A draw of the wrong length is an error, not a panic.
    let err = imle.apply_with_noise(theta.leaky_trace(), eps[..9].to_vec());
    assert!(matches!(err, Err(Error::LengthMismatch { .. })));
}
