//! End-to-end: a tiny CNN built as a tuple of layers learns a synthetic pattern with
//! dfdx's Adam, and models save/load with dfdx's safetensors support.

#![allow(clippy::type_complexity)]

use dfdx::optim::{Adam, AdamConfig, Optimizer};
use dfdx::prelude::*;
use imle_conv::builders as cb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const S: usize = 10;

/// Noise images with a horizontal (class 0) or vertical (class 1) bar of length 5 at a
/// random place; only the orientation tells the classes apart.
fn batch(rng: &mut ChaCha8Rng, n: usize) -> (Vec<f32>, Vec<usize>) {
    let mut x = vec![0.0; n * S * S];
    let mut y = vec![0; n];
    for i in 0..n {
        let img = &mut x[i * S * S..(i + 1) * S * S];
        img.iter_mut().for_each(|v| *v = rng.gen_range(-0.3..0.3));
        let class = rng.gen_range(0..2);
        let (a, b) = (rng.gen_range(0..S), rng.gen_range(0..S - 4));
        for t in 0..5 {
            let (r, c) = if class == 0 { (a, b + t) } else { (b + t, a) };
            img[r * S + c] += 1.0;
        }
        y[i] = class;
    }
    (x, y)
}

type Net = (
    (
        cb::Conv2D<1, 8, 3, 1, 1>,
        cb::BatchNormReLU2D<8>,
        cb::MaxPool2D<2, 2>,
    ),
    (cb::Conv2D<8, 8, 3, 1, 1>, cb::BatchNorm2D<8>, ReLU),
    cb::GlobalMaxPool,
    Linear<8, 2>,
);

#[test]
fn tiny_cnn_learns_bar_orientation() {
    let dev = Cpu::seed_from_u64(7);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut model = dev.build_module::<Net, f32>();
    let mut grads = model.alloc_grads();
    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
    );
    let accuracy = |model: &<Net as BuildOnDevice<Cpu, f32>>::Built, rng: &mut ChaCha8Rng| {
        let (x, y) = batch(rng, 200);
        let logits = model
            .forward(dev.tensor_from_vec(x, (200, Const::<1>, S, S)))
            .as_vec();
        let hits = y
            .iter()
            .enumerate()
            .filter(|(i, &c)| (logits[2 * i + 1] > logits[2 * i]) as usize == c)
            .count();
        hits as f32 / 200.0
    };
    let before = accuracy(&model, &mut ChaCha8Rng::seed_from_u64(1));
    for _ in 0..150 {
        let (x, y) = batch(&mut rng, 32);
        let x = dev.tensor_from_vec(x, (32, Const::<1>, S, S));
        let mut onehot = vec![0.0; 64];
        y.iter()
            .enumerate()
            .for_each(|(i, &c)| onehot[2 * i + c] = 1.0);
        let logits = model.forward_mut(x.traced(grads));
        let loss =
            cross_entropy_with_logits_loss(logits, dev.tensor_from_vec(onehot, (32, Const::<2>)));
        grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    let after = accuracy(&model, &mut ChaCha8Rng::seed_from_u64(1));
    assert!(
        after >= 0.95,
        "held-out accuracy {after} (before training {before})"
    );
}

#[test]
fn save_and_load_round_trip() {
    let dev = Cpu::seed_from_u64(3);
    let mut model = dev.build_module::<(
        cb::UnbiasedConv2D<2, 4, 3, 1, 1>,
        cb::BasicBlock<4>,
        cb::GlobalAvgPool,
    ), f32>();
    // move the running statistics off their defaults
    let x: Tensor<(usize, Const<2>, usize, usize), f32, _> =
        dev.sample_normal_like(&(3, Const, 6, 6));
    let _ = model.forward_mut(x.leaky_trace());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    model.save_safetensors(&path).unwrap();
    let mut fresh = Cpu::seed_from_u64(4).build_module::<(
        cb::UnbiasedConv2D<2, 4, 3, 1, 1>,
        cb::BasicBlock<4>,
        cb::GlobalAvgPool,
    ), f32>();
    assert_ne!(
        fresh.forward(x.clone()).as_vec(),
        model.forward(x.clone()).as_vec()
    );
    fresh.load_safetensors(&path).unwrap();
    assert_eq!(
        fresh.forward(x.clone()).as_vec(),
        model.forward(x.clone()).as_vec()
    );
    assert_eq!(
        fresh.1.bn2.running_var.as_vec(),
        model.1.bn2.running_var.as_vec()
    );

    let c1 = dev.build_module::<cb::Conv1D<4, 6, 3, 1, cb::Same>, f32>();
    let p1 = dir.path().join("c1.safetensors");
    c1.save_safetensors(&p1).unwrap();
    let mut c2 = Cpu::seed_from_u64(5).build_module::<cb::Conv1D<4, 6, 3, 1, cb::Same>, f32>();
    c2.load_safetensors(&p1).unwrap();
    assert_eq!(c1.weight.as_vec(), c2.weight.as_vec());
    assert_eq!(c1.bias.as_vec(), c2.bias.as_vec());
}
