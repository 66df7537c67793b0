//! The baseline estimators next to the I-MLE op, forward + backward through dfdx, on the
//! discrete-VAE shape (B = 100 examples × 20 blocks = 2000 rows of 20 logits, top-10),
//! and the exact k-subset distribution.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dfdx::prelude::*;
use imle::baselines::PerturbationNoise;
use imle::exact::KSubset;
use imle::prelude::*;

const ROWS: usize = 2000;
const M: usize = 20;
const K: usize = 10;

type Theta = Tensor<Rank2<ROWS, M>, f32, Cpu>;

fn ops_fwd_bwd(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let theta: Theta = dev.sample_normal();
    let w: Theta = dev.sample_normal();
    let topk = TopK::new(K);
    let mut group = c.benchmark_group("baselines_fwd_bwd_2000x20_k10");

    let imle = Imle::new(
        topk,
        Target::pid(10.0).unwrap(),
        Noise::sum_of_gamma(10.0, 10.0, 10).unwrap(),
    )
    .seed(0);
    group.bench_function("imle_sog_S1", |b| {
        b.iter(|| {
            let z = imle.apply(theta.leaky_trace()).unwrap();
            black_box((z * w.clone()).sum().backward());
        })
    });

    let ste = Ste::new(topk, Noise::sum_of_gamma(10.0, 10.0, 10).unwrap()).seed(0);
    group.bench_function("ste_sog", |b| {
        b.iter(|| {
            let z = ste.apply(theta.leaky_trace()).unwrap();
            black_box((z * w.clone()).sum().backward());
        })
    });

    let bb = Blackbox::new(topk, 10.0).unwrap();
    group.bench_function("blackbox", |b| {
        b.iter(|| {
            let z = bb.apply(theta.leaky_trace()).unwrap();
            black_box((z * w.clone()).sum().backward());
        })
    });

    for (name, noise) in [
        ("normal", PerturbationNoise::Normal),
        ("gumbel", PerturbationNoise::Gumbel),
    ] {
        let dpo = Perturbed::new(topk, 1.0, 10).unwrap().noise(noise).seed(0);
        group.bench_with_input(BenchmarkId::new("perturbed_S10", name), &dpo, |b, dpo| {
            b.iter(|| {
                let y = dpo.apply(theta.leaky_trace()).unwrap();
                black_box((y * w.clone()).sum().backward());
            })
        });
    }

    let sfe = ScoreFunction::new(K).unwrap().seed(0);
    group.bench_function("score_function", |b| {
        b.iter(|| {
            let z = sfe.sample(&theta).unwrap();
            let loss = (z.clone() * w.clone()).sum::<Rank1<ROWS>, _>().as_vec();
            let s = sfe.surrogate(theta.leaky_trace(), &z, &loss).unwrap();
            black_box(s.sum().backward());
        })
    });

    for hard in [false, true] {
        let gs = GumbelSoftmax::new(0.5).unwrap().hard(hard).seed(0);
        let name = if hard { "straight_through" } else { "relaxed" };
        group.bench_with_input(BenchmarkId::new("gumbel_softmax", name), &gs, |b, gs| {
            b.iter(|| {
                let y = gs.apply(theta.leaky_trace()).unwrap();
                black_box((y * w.clone()).sum().backward());
            })
        });
    }

    let softsub = SoftSub::new(K, 0.5).unwrap().seed(0);
    group.bench_function("softsub", |b| {
        b.iter(|| {
            let y = softsub.apply(theta.leaky_trace()).unwrap();
            black_box((y * w.clone()).sum().backward());
        })
    });

    let l2x = L2x::new(K, 0.5).unwrap().seed(0);
    group.bench_function("l2x", |b| {
        b.iter(|| {
            let y = l2x.apply(theta.leaky_trace()).unwrap();
            black_box((y * w.clone()).sum().backward());
        })
    });
    group.finish();
}

fn exact_k_subset(c: &mut Criterion) {
    let mut group = c.benchmark_group("exact_k_subset_new");
    for (m, k) in [(20usize, 10usize), (1000, 100), (1000, 500)] {
        let theta: Vec<f32> = (0..m)
            .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
            .collect();
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("m{m}_k{k}")),
            &theta,
            |b, theta| b.iter(|| black_box(KSubset::new(theta, k, 1.0).unwrap())),
        );
    }
    group.finish();
}

criterion_group!(benches, ops_fwd_bwd, exact_k_subset);
criterion_main!(benches);
