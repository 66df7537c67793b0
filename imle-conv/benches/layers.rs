//! The two workloads:
//! - the Warcraft encoder (ResNet18's first block): conv7x7/2 -> BN -> ReLU ->
//!   maxpool 3x3/2/1 -> 2 x BasicBlock(64) -> maxpool 2x2 -> mean over channels,
//!   input 70 x 3 x 96 x 96, forward (train mode) and forward + backward;
//! - the L2X selector: three Conv1D(100, k=3, same) over 40 x 200 x 350 embeddings;
//! - the Figure 4 VAE's MLPs (784-512-256-400 and back, batch 100) with our `Dense` and
//!   `ReLU` against dfdx's `Linear` and `ReLU`;
//! - ReLU forward + backward, ours against dfdx's, at the selector's size (40 x 100 x 350)
//!   and the VAE's (100 x 512).
//!
//! `cargo bench -p imle-conv --bench layers`; the PyTorch counterpart is
//! `benches/torch_reference.py`.
#![allow(clippy::type_complexity)]

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
#[path = "common/models.rs"]
mod models;
use models::{DataEncoder, DataSelector, Encoder, Selector, VaeMlp};

fn warcraft(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let mut enc = dev.build_module::<Encoder, f32>();
    let x: Tensor<(usize, Const<3>, usize, usize), f32, _> =
        dev.sample_normal_like(&(70, Const, 96, 96));
    let mut grads = enc.alloc_grads();
    let mut g = c.benchmark_group("warcraft_encoder_70x3x96x96");
    g.sample_size(10)
        .measurement_time(std::time::Duration::from_secs(10));
    g.bench_function("forward_train", |b| {
        b.iter(|| {
            let y = enc.forward_mut(x.trace(grads.clone()));
            let cost: Tensor<(usize, usize, usize), f32, _, _> = y.mean::<_, Axis<1>>();
            assert_eq!(cost.shape().1, 12);
            cost
        })
    });
    g.bench_function("forward_backward", |b| {
        b.iter(|| {
            let y = enc.forward_mut(x.trace(grads.clone()));
            let cost: Tensor<(usize, usize, usize), f32, _, _> = y.mean::<_, Axis<1>>();
            let g2 = cost.sum::<Rank0, _>().backward();
            enc.zero_grads(&mut grads);
            g2
        })
    });
    g.bench_function("forward_eval", |b| {
        b.iter(|| {
            enc.forward(x.clone())
                .mean::<(usize, usize, usize), Axis<1>>()
        })
    });
    g.finish();
}

/// Forward + backward with dfdx's tensor cache enabled (`dev.enable_cache()`), as a
/// training loop should: outputs and gradients reuse the buffers freed by earlier steps.
fn warcraft_cached(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    dev.enable_cache();
    let mut enc = dev.build_module::<Encoder, f32>();
    let x: Tensor<(usize, Const<3>, usize, usize), f32, _> =
        dev.sample_normal_like(&(70, Const, 96, 96));
    let mut grads = enc.alloc_grads();
    let mut g = c.benchmark_group("warcraft_encoder_70x3x96x96_cached");
    g.sample_size(10)
        .measurement_time(std::time::Duration::from_secs(10));
    g.bench_function("forward_backward", |b| {
        b.iter(|| {
            let y = enc.forward_mut(x.trace(grads.clone()));
            let cost: Tensor<(usize, usize, usize), f32, _, _> = y.mean::<_, Axis<1>>();
            let g2 = cost.sum::<Rank0, _>().backward();
            enc.zero_grads(&mut grads);
            g2
        })
    });
    let mut data_enc = dev.build_module::<DataEncoder, f32>();
    let mut data_grads = data_enc.alloc_grads();
    g.bench_function("forward_backward_stem_on_data", |b| {
        b.iter(|| {
            let y = data_enc.forward_mut(x.trace(data_grads.clone()));
            let cost: Tensor<(usize, usize, usize), f32, _, _> = y.mean::<_, Axis<1>>();
            let g2 = cost.sum::<Rank0, _>().backward();
            data_enc.zero_grads(&mut data_grads);
            g2
        })
    });
    g.finish();
}

fn l2x(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    dev.enable_cache();
    let sel = dev.build_module::<Selector, f32>();
    let x: Tensor<(usize, Const<200>, usize), f32, _> = dev.sample_normal_like(&(40, Const, 350));
    let mut g = c.benchmark_group("l2x_selector_40x200x350");
    g.sample_size(10)
        .measurement_time(std::time::Duration::from_secs(5));
    g.bench_function("forward", |b| b.iter(|| sel.forward(x.clone())));
    g.bench_function("forward_backward", |b| {
        b.iter(|| sel.forward(x.leaky_trace()).sum::<Rank0, _>().backward())
    });
    let data_sel = dev.build_module::<DataSelector, f32>();
    g.bench_function("forward_backward_first_layer_on_data", |b| {
        b.iter(|| {
            data_sel
                .forward(x.leaky_trace())
                .sum::<Rank0, _>()
                .backward()
        })
    });
    g.finish();
}

type Mlp<L1, L2, L3, L4, L5, L6> = ((L1, ReLU, L2, ReLU, L3), (L4, ReLU, L5, ReLU, L6));

fn vae_mlp(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<(usize, Const<784>), f32, _> = dev.sample_uniform_like(&(100, Const));
    let ours = dev.build_module::<VaeMlp, f32>();
    let dfdx = dev.build_module::<Mlp<
        Linear<784, 512>,
        Linear<512, 256>,
        Linear<256, 400>,
        Linear<400, 256>,
        Linear<256, 512>,
        Linear<512, 784>,
    >, f32>();
    let mut g = c.benchmark_group("vae_mlp_100x784_fwd_bwd");
    g.sample_size(30);
    g.bench_function("imle_conv_dense", |b| {
        b.iter(|| ours.forward(x.leaky_trace()).sum::<Rank0, _>().backward())
    });
    g.bench_function("dfdx_linear", |b| {
        b.iter(|| dfdx.forward(x.leaky_trace()).sum::<Rank0, _>().backward())
    });
    g.finish();
}

/// With dfdx's tensor cache (as a training loop has it), so that both sides reuse warm
/// buffers; the `sum` and its backward pass are the same on both sides.
fn relu(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    dev.enable_cache();
    let mut g = c.benchmark_group("relu_fwd_bwd");
    for n in [40 * 100 * 350, 100 * 512] {
        let x: Tensor<(usize,), f32, _> = dev.sample_normal_like(&(n,));
        g.bench_function(format!("imle_conv_{n}"), |b| {
            b.iter(|| {
                imle_conv::relu(x.leaky_trace())
                    .unwrap()
                    .sum::<Rank0, _>()
                    .backward()
            })
        });
        g.bench_function(format!("dfdx_{n}"), |b| {
            b.iter(|| x.leaky_trace().relu().sum::<Rank0, _>().backward())
        });
    }
    g.finish();
}

criterion_group!(benches, warcraft, warcraft_cached, l2x, vae_mlp, relu);
criterion_main!(benches);
