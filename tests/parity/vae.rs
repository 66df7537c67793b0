//! Figure 4's discrete VAE (`vae`), one I-MLE SoG step from the same weights, batch and
//! noise draw, against `scripts/torch_reference/vae.py fixture` (8 MNIST images). The
//! weights come from an integer generator both sides implement ([`lcg_uniform`]); the
//! large tensors are compared through fixed random projections, their norm and 4,096
//! fixed entries (see the script).

use crate::fixture::{assert_close, assert_close_floor, gradients, set_tensors, tensors, Fixture};
use dfdx::prelude::*;
use imle::solver::TopK;
use imle_paper::spec::Built;
use imle_paper::train::{AdamHyper, Optimiser, OptimiserConfig};
use imle_paper::vae::model::{vae_loss_host, BLOCKS, CATS, PIXELS};
use imle_paper::vae::{LatentConfig, Method, Vae, VaeConfig};
use std::collections::BTreeMap;

const FILE: &str = "vae_step.safetensors";
/// The script's layer names and (out, in) sizes.
const LAYERS: [(&str, usize, usize); 6] = [
    ("0.0", 512, 784),
    ("0.2", 256, 512),
    ("0.4", 400, 256),
    ("1.0", 256, 400),
    ("1.2", 512, 256),
    ("1.4", 784, 512),
];

/// `n` values of `x <- 1664525 x + 1013904223 (mod 2^32)` after `seed`.
fn lcg(seed: u32, n: usize) -> Vec<u32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            x
        })
        .collect()
}

/// `limit (2 u - 1)` with `u = x / 2^32`, in f64, then f32 (the script's `lcg_uniform`).
fn lcg_uniform(seed: u32, n: usize, limit: f64) -> Vec<f32> {
    lcg(seed, n)
        .into_iter()
        .map(|x| (limit * (2.0 * (x as f64 / 4_294_967_296.0) - 1.0)) as f32)
        .collect()
}

/// The fixture's initial weights: tensor `j` (weight, bias, weight, ... in layer order)
/// from seed `j + 1`; weights Glorot-bounded, biases in ±0.05.
fn initial() -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    for (i, &(name, o, n_in)) in LAYERS.iter().enumerate() {
        let limit = (6.0 / (o + n_in) as f64).sqrt();
        out.insert(
            format!("{name}.weight"),
            lcg_uniform(2 * i as u32 + 1, o * n_in, limit),
        );
        out.insert(
            format!("{name}.bias"),
            lcg_uniform(2 * i as u32 + 2, o, 0.05),
        );
    }
    out
}

/// Compares `ours` with the fixture's `name`: entry by entry, or through its projections,
/// norm and sampled entries.
fn compare(fx: &Fixture, name: &str, ours: &[f32], rtol: f32, floor: f32) {
    if fx.f32.contains_key(name) {
        return assert_close_floor(name, ours, fx.get(name), rtol, rtol / 10.0, floor);
    }
    let v: Vec<f64> = ours.iter().map(|&x| x as f64).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let theirs_norm = fx.get(&format!("{name}#norm"))[0] as f64;
    assert!(
        (norm - theirs_norm).abs() <= rtol as f64 * theirs_norm,
        "{name}: norm {norm} here, {theirs_norm} in PyTorch"
    );
    for (j, &p) in fx.get(&format!("{name}#proj")).iter().enumerate() {
        let r = lcg_uniform(1000 + j as u32, v.len(), 1.0);
        let rn = r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let mine: f64 = r.iter().zip(&v).map(|(&a, b)| a as f64 * b).sum();
        assert!(
            (mine - p as f64).abs() <= rtol as f64 * rn * theirs_norm,
            "{name}: projection {j} is {mine} here, {p} in PyTorch"
        );
    }
    let idx = lcg(77, 4096);
    let sample: Vec<f32> = idx.iter().map(|&i| ours[i as usize % ours.len()]).collect();
    assert_close_floor(
        &format!("{name} (sampled)"),
        &sample,
        fx.get(&format!("{name}#sample")),
        rtol,
        rtol / 10.0,
        floor,
    );
}

#[test]
fn imle_sog_step_equals_pytorch() {
    let fx = Fixture::load(FILE);
    let b: usize = fx.meta("batch");
    let mut vae = Vae::new(VaeConfig::paper(Method::ImleSog)).unwrap();
    set_tensors(&mut vae.model, &initial());
    let dev = Cpu::default();
    let pixels = fx.get("x").to_vec();
    let x = dev.tensor_from_vec(pixels.clone(), (b, Const::<PIXELS>));

    let logits = vae.encode(x.traced(Gradients::leaky()));
    assert_close("logits", &logits.as_vec(), fx.get("logits"), 1e-4, 1e-5);
    let kl_logits = logits.retaped::<OwnedTape<f32, Cpu>>();
    let spec = Method::ImleSog.spec(&LatentConfig::default());
    let Built::Imle(op) = spec.build(TopK::new(10), 10).unwrap() else {
        unreachable!("I-MLE")
    };
    let rows = logits.reshape_like(&(b * BLOCKS, CATS));
    let z = op.apply_with_noise(rows, fx.get("noise").to_vec()).unwrap();
    assert_eq!(z.as_vec(), fx.get("z"), "the top-10 samples");
    let z = z.reshape_like(&(b, Const::<BLOCKS>, Const::<CATS>));
    let x_logits = vae.decode(z);
    compare(&fx, "x_logits", &x_logits.as_vec(), 1e-4, 0.0);
    let errors = imle::op::BackwardErrors::default();
    let (loss, recon, kl) = vae_loss_host(x_logits, &pixels, kl_logits, &errors).unwrap();
    let theirs = fx.get("loss");
    for (what, ours, theirs) in [
        ("loss", loss.array(), theirs[0]),
        ("recon", recon, theirs[1]),
        ("kl", kl, theirs[2]),
    ] {
        assert!(
            (ours - theirs).abs() <= 1e-5 * theirs.abs(),
            "{what}: {ours} here, {theirs} in PyTorch"
        );
    }
    let grads = loss.backward();

    let ours = gradients(&vae.model, &grads);
    assert_eq!(ours.len(), 12);
    let floor = 1e-6 * ours.values().flatten().fold(0f32, |m, v| m.max(v.abs()));
    for (name, g) in &ours {
        compare(&fx, &format!("grad/{name}"), g, 1e-4, floor);
    }

    // Adam (Keras' ε) from the same weights with our gradients: the stepped weights.
    let mut adam = Optimiser::new(OptimiserConfig::Adam(AdamHyper {
        lr: fx.meta("lr"),
        betas: [0.9, 0.999],
        eps: fx.meta("eps"),
    }));
    let mut grads = grads;
    adam.update(&mut vae.model, &mut grads, fx.meta("lr"))
        .unwrap();
    for (name, w) in tensors(&vae.model) {
        compare(&fx, &format!("after/{name}"), &w, 1e-5, 1e-7);
    }
}
