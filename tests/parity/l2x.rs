//! Table 1's selector and predictor (`explain::model`, dropout off), one step with I-MLE
//! SoG, SoftSub and L2X from the same weights, batch and noise draw, against
//! `scripts/torch_reference/l2x.py fixture` (k = 10, 4 sequences of 24 tokens).

use crate::fixture::{
    assert_close, assert_close_floor, gradients, gradients_from, max_abs, max_rel, set_tensors,
    tensors, Fixture,
};
use dfdx::prelude::*;
use imle::solver::TopK;
use imle_paper::explain::model::{predict, selector_logits, ExplainerSpec};
use imle_paper::explain::Method;
use imle_paper::spec::Built;
use imle_paper::train::{AdamHyper, Optimiser, OptimiserConfig};

const FILE: &str = "l2x_step.safetensors";

fn step(method: Method, tag: &str) {
    let fx = Fixture::load(FILE);
    let (k, b, l): (usize, usize, usize) = (fx.meta("k"), fx.meta("batch"), fx.meta("maxlen"));
    let get = |name: &str| fx.get(&format!("{tag}/{name}"));
    let dev = Cpu::default();
    let mut model = dev.build_module::<ExplainerSpec, f32>();
    set_tensors(&mut model, &fx.under("init"));
    let x = dev.tensor_from_vec(fx.get("x").to_vec(), (b, Const::<200>, l));
    let y = dev.tensor_from_vec(fx.get("y").to_vec(), (b, Const::<1>));

    // The estimator alone: PyTorch's θ in, ∂L/∂θ out.
    let apply = |theta: Tensor<(usize, usize), f32, Cpu, OwnedTape<f32, Cpu>>, noise: Vec<f32>| {
        let estimator = method.spec(k, 1000.0, 30.0).build(TopK::new(k), k).unwrap();
        match &estimator {
            Built::Imle(op) => op.apply_with_noise(theta, noise),
            Built::SoftSub(op) => op.apply_with_noise(theta, noise),
            Built::L2x(op) => op.apply_with_noise(theta, noise),
            _ => unreachable!("the methods of this test"),
        }
        .unwrap()
    };
    let theta0 = dev.tensor_from_vec(get("theta").to_vec(), (b, l));
    let z0 = apply(theta0.leaky_trace(), get("noise").to_vec());
    let g0 = mse_loss(predict(&model, &x, z0, k), y.clone()).backward();
    assert_close(
        &format!("{tag} dL/dθ"),
        &g0.get(&theta0).as_vec(),
        get("theta_grad"),
        1e-4,
        1e-5,
    );

    let theta = selector_logits(&model, x.clone().traced(model.alloc_grads()), None);
    assert_close(
        &format!("{tag} theta"),
        &theta.as_vec(),
        get("theta"),
        1e-4,
        1e-5,
    );
    let z = apply(theta, get("noise").to_vec());
    assert_close(&format!("{tag} z"), &z.as_vec(), get("z"), 1e-4, 1e-5);
    let loss = mse_loss(predict(&model, &x, z, k), y);
    let value = loss.array();
    assert!((value - get("loss")[0]).abs() <= 1e-5 * get("loss")[0]);
    let grads = loss.backward();

    let ours = gradients(&model, &grads);
    let theirs = fx.under(&format!("{tag}/grad"));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (name, g) in &ours {
        eprintln!(
            "{tag} d/d{name}: max rel. difference {:.2e}",
            max_rel(g, &theirs[name])
        );
    }
    // The last layer's bias gradient is the sum of ∂L/∂θ, which cancels to ~1e-9 for the
    // relaxations (each row of their output sums to a constant): an absolute floor of
    // 1e-6 of the largest gradient anywhere in the model.
    let floor = 1e-6 * max_abs(theirs.values());
    for (name, g) in &ours {
        assert_close_floor(
            &format!("{tag} d/d{name}"),
            g,
            &theirs[name],
            1e-4,
            1e-5,
            floor,
        );
    }

    // Adam (Keras' ε = 1e-7) from the same weights with PyTorch's gradients.
    let after = fx.under(&format!("{tag}/after"));
    if !after.is_empty() {
        let mut model = dev.build_module::<ExplainerSpec, f32>();
        set_tensors(&mut model, &fx.under("init"));
        let mut g = gradients_from(&model, &theirs);
        let mut adam = Optimiser::new(OptimiserConfig::Adam(AdamHyper {
            lr: fx.meta("lr"),
            betas: [0.9, 0.999],
            eps: fx.meta("eps"),
        }));
        adam.update(&mut model, &mut g, fx.meta("lr")).unwrap();
        for (name, v) in tensors(&model)
            .iter()
            .filter(|(n, _)| theirs.contains_key(*n))
        {
            assert_close(
                &format!("{tag} {name} after Adam"),
                v,
                &after[name],
                1e-6,
                1e-7,
            );
        }
    }
}

#[test]
fn imle_sog_step_equals_pytorch() {
    step(Method::ImleSog, "imle-sog");
}

#[test]
fn softsub_step_equals_pytorch() {
    step(Method::Softsub, "softsub");
}

#[test]
fn l2x_step_equals_pytorch() {
    step(Method::L2x, "l2x");
}
