//! Every estimator through the device-generic code path (`D: ImleDevice`).
//!
//! On `Cpu` (always): the dfdx op of each estimator gives exactly what its slice-level
//! definition gives, a tuple model with a layer trains, and failures keep their error.
//! With the `cuda` feature, the same generic functions run on `Cuda` and must equal the
//! `Cpu` numbers for the same seed; those tests are `#[ignore]`d (they need a GPU) and
//! run by `.ci/gpu-check` with `--ignored`.

use dfdx::optim::{Adam, AdamConfig, Optimizer};
use dfdx::prelude::*;
use imle::baselines::PerturbationNoise;
use imle::loss::{FenchelYoung, ScoreFunction};
use imle::prelude::*;
use imle::Error;

const B: usize = 6;
const M: usize = 8;
const K: usize = 3;

fn theta_data() -> Vec<f32> {
    (0..B * M)
        .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
        .collect()
}

fn w_data() -> Vec<f32> {
    (0..B * M)
        .map(|i| ((i * 11) % 9) as f32 / 4.0 - 1.0)
        .collect()
}

/// The forward values and θ's gradient for `L = <w, op(θ)>`, on `dev`.
fn through_dfdx<E: Estimator, D: ImleDevice>(dev: &D, op: &E) -> (Vec<f32>, Vec<f32>) {
    let theta = dev.tensor_from_vec(theta_data(), (B, M));
    let w = dev.tensor_from_vec(w_data(), (B, M));
    let z = op.clone().seed(3).apply(theta.leaky_trace()).unwrap();
    let values = z.as_vec();
    let grads = (z * w).sum().backward();
    (values, grads.get(&theta).as_vec())
}

/// The same through the slice-level forward and backward, without dfdx.
fn through_slices<E: Estimator>(op: &E) -> (Vec<f32>, Vec<f32>) {
    let op = op.clone().seed(3);
    let (values, saved) = op.forward(&theta_data(), M).unwrap();
    let grad = op.backward(&saved, &w_data()).unwrap();
    (values, grad)
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
    }
}

/// Calls the generic `$check(name, &op, tolerance)` for every estimator of the crate
/// (the I-MLE variants, STE, BB, DPO, Gumbel-softmax and its straight-through form,
/// SoftSub, L2X); the tolerance is 0 for the ops whose numbers are computed on the host
/// and small for the relaxations, whose dfdx kernels may round differently on a device.
macro_rules! every_estimator {
    ($check:expr) => {{
        let topk = TopK::new(K);
        let sog = Noise::sum_of_gamma(K as f64, 1.0, 10).unwrap();
        let pid = Target::pid(2.0).unwrap();
        $check("I-MLE SoG", &Imle::new(topk, pid.clone(), sog.clone()), 0.0);
        $check(
            "I-MLE Gumbel, S = 3, two-sided, 1/lambda",
            &Imle::new(topk, pid.clone(), Noise::gumbel(1.0).unwrap())
                .samples(3)
                .unwrap()
                .two_sided(true)
                .scale_by_lambda(true),
            0.0,
        );
        $check(
            "I-MLE Eq. 14 target, fresh target noise",
            &Imle::new(topk, Target::Combinatorial, sog.clone()).reuse_noise(false),
            0.0,
        );
        $check(
            "I-MLE custom noise",
            &Imle::new(
                topk,
                pid.clone(),
                Noise::custom("N(0, 1)", rand_distr::StandardNormal),
            ),
            0.0,
        );
        $check("STE", &Ste::new(topk, sog.clone()), 0.0);
        $check("BB", &Blackbox::new(topk, 5.0).unwrap(), 0.0);
        $check(
            "DPO",
            &Perturbed::new(topk, 0.5, 4)
                .unwrap()
                .noise(PerturbationNoise::Gumbel),
            0.0,
        );
        $check("Gumbel-softmax", &GumbelSoftmax::new(0.5).unwrap(), 1e-5);
        $check(
            "straight-through Gumbel-softmax",
            &GumbelSoftmax::new(0.5).unwrap().hard(true),
            1e-5,
        );
        $check("SoftSub", &SoftSub::new(K, 0.5).unwrap(), 1e-5);
        $check("L2X", &L2x::new(K, 0.5).unwrap(), 1e-5);
    }};
}

fn op_equals_its_slices<E: Estimator>(name: &str, op: &E, _tol: f32) {
    let (z, g) = through_dfdx(&Cpu::default(), op);
    let (z_ref, g_ref) = through_slices(op);
    // The relaxations' slices run the same dfdx ops on the Cpu: identical numbers.
    assert_close(&format!("{name}: forward"), &z, &z_ref, 0.0);
    assert_close(&format!("{name}: gradient"), &g, &g_ref, 0.0);
    assert!(g.iter().any(|v| *v != 0.0), "{name}: zero gradient");
}

#[test]
fn every_estimator_on_the_generic_path_equals_its_slice_level_definition() {
    every_estimator!(op_equals_its_slices);
}

/// A tuple model `(Linear, Layer(op), Linear)` trained with Adam towards fixed outputs:
/// the first and last mean losses of 200 steps, and whether the first layer's weights
/// received a (non-zero) gradient through the estimator at some step.
fn model_trains_through<E: Estimator, D: ImleDevice + DeviceBuildExt>(
    dev: &D,
    op: &E,
) -> (f32, f32, bool) {
    let mut model = (
        dev.build_module::<Linear<5, 10>, f32>(),
        Layer::new(op.clone().seed(1)),
        dev.build_module::<Linear<10, 10>, f32>(),
    );
    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: 0.02,
            ..Default::default()
        },
    );
    let x: Tensor<Rank2<16, 5>, f32, D> = dev.tensor_from_vec(
        (0..80)
            .map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0)
            .collect(),
        (Const, Const),
    );
    let wanted: Tensor<Rank2<16, 10>, f32, D> = dev.tensor_from_vec(
        (0..160)
            .map(|i| [1.0, 0.0][(i % 10 != 2) as usize])
            .collect(),
        (Const, Const),
    );
    let mut grads = model.alloc_grads();
    let mut losses = Vec::new();
    let mut reached_first_layer = false;
    for _ in 0..200 {
        let y = model.forward_mut(x.trace(grads));
        let loss = (y - wanted.clone()).square().mean();
        losses.push(loss.as_vec()[0]);
        grads = loss.backward();
        reached_first_layer |= grads
            .get(&model.0.weight)
            .as_vec()
            .iter()
            .any(|g| *g != 0.0);
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    (
        mean(&losses[..10]),
        mean(&losses[losses.len() - 10..]),
        reached_first_layer,
    )
}

fn trains_on_cpu<E: Estimator>(name: &str, op: &E, _tol: f32) {
    let (first, last, reached) = model_trains_through(&Cpu::default(), op);
    assert!(reached, "{name}: no gradient reached the first layer");
    assert!(last < 0.5 * first, "{name}: loss {first} -> {last}");
}

#[test]
fn a_tuple_model_trains_through_every_estimator_on_cpu() {
    every_estimator!(trains_on_cpu);
}

/// The losses that are not layers, on any device: their values and θ's gradients.
fn losses_on<D: ImleDevice>(dev: &D) -> Vec<Vec<f32>> {
    let theta = dev.tensor_from_vec(theta_data(), (B, M));
    let sfe = ScoreFunction::new(K).unwrap().seed(2);
    let z = sfe.sample(&theta).unwrap();
    let per_row: Vec<f32> = z
        .as_vec()
        .chunks(M)
        .zip(w_data().chunks(M))
        .map(|(z, w)| z.iter().zip(w).map(|(a, b)| a * b).sum())
        .collect();
    let s = sfe.surrogate(theta.leaky_trace(), &z, &per_row).unwrap();
    let s_values = s.as_vec();
    let g_sfe = s.sum().backward().get(&theta).as_vec();
    let fy = FenchelYoung::new(Perturbed::new(TopK::new(K), 0.5, 5).unwrap().seed(4));
    let y = dev.tensor_from_vec(
        (0..B * M).map(|i| (i % M < K) as u8 as f32).collect(),
        (B, M),
    );
    let l = fy.loss(theta.leaky_trace(), &y).unwrap();
    let l_values = l.as_vec();
    let g_fy = l.sum().backward().get(&theta).as_vec();
    vec![z.as_vec(), s_values, g_sfe, l_values, g_fy]
}

#[test]
fn losses_run_through_the_generic_path() {
    let out = losses_on(&Cpu::default());
    assert!(out[0].chunks(M).all(|r| r.iter().sum::<f32>() == K as f32));
    assert!(out.iter().all(|v| v.iter().all(|x| x.is_finite())));
    assert!(out[2].iter().any(|v| *v != 0.0) && out[4].iter().any(|v| *v != 0.0));
}

#[test]
fn a_failing_layer_keeps_its_error() {
    let dev = Cpu::default();
    let layer = ImleLayer::new(Imle::new(
        TopK::new(9),
        Target::pid(1.0).unwrap(),
        Noise::None,
    ));
    let theta = dev.tensor_from_vec(theta_data(), (B, M));
    // k = 9 > m = 8: try_forward fails with the device's error, the real one is kept.
    assert!(layer.try_forward(theta.clone()).is_err());
    assert!(matches!(
        layer.take_error(),
        Some(Error::InvalidK { k: 9, m: 8 })
    ));
    let forward = std::panic::AssertUnwindSafe(|| layer.forward(theta));
    let panic = std::panic::catch_unwind(forward).unwrap_err();
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("k = 9"), "{msg}");
    // Blocks (B, N, M) go through `apply_blocks`.
    let ok = ImleLayer::new(Imle::new(
        TopK::new(2),
        Target::pid(1.0).unwrap(),
        Noise::None,
    ));
    let blocks: Tensor<Rank3<2, 3, 4>, f32, _> = dev.sample_normal();
    let z = ok.forward(blocks);
    assert!(z.as_vec().chunks(4).all(|b| b.iter().sum::<f32>() == 2.0));
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    fn cuda_equals_cpu<E: Estimator>(name: &str, op: &E, tol: f32) {
        let cuda = Cuda::default();
        let (z, g) = through_dfdx(&cuda, op);
        let (z_ref, g_ref) = through_dfdx(&Cpu::default(), op);
        assert_close(&format!("{name}: forward on Cuda"), &z, &z_ref, tol);
        assert_close(&format!("{name}: gradient on Cuda"), &g, &g_ref, tol);
    }

    #[test]
    #[ignore = "needs a GPU: run by .ci/gpu-check"]
    fn every_estimator_on_cuda_equals_cpu() {
        every_estimator!(cuda_equals_cpu);
    }

    fn trains_on_cuda<E: Estimator>(name: &str, op: &E, _tol: f32) {
        let (first, last, reached) = model_trains_through(&Cuda::default(), op);
        assert!(
            reached,
            "{name}: no gradient reached the first layer on Cuda"
        );
        assert!(last < 0.5 * first, "{name}: loss {first} -> {last} on Cuda");
    }

    #[test]
    #[ignore = "needs a GPU: run by .ci/gpu-check"]
    fn a_tuple_model_trains_through_every_estimator_on_cuda() {
        every_estimator!(trains_on_cuda);
    }

    #[test]
    #[ignore = "needs a GPU: run by .ci/gpu-check"]
    fn losses_on_cuda_equal_cpu() {
        let gpu = losses_on(&Cuda::default());
        let cpu = losses_on(&Cpu::default());
        for (i, (a, b)) in gpu.iter().zip(&cpu).enumerate() {
            assert_close(&format!("loss output {i}"), a, b, 1e-5);
        }
    }
}
