//! The I-MLE op, forward + backward through dfdx, on the discrete-VAE shape:
//! B = 100 examples × 20 blocks of 20 logits, top-10 per block, S ∈ {1, 10}.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use dfdx::prelude::*;
use imle::prelude::*;

fn op_fwd_bwd(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let theta: Tensor<Rank3<100, 20, 20>, f32, _> = dev.sample_normal();
    let w: Tensor<Rank3<100, 20, 20>, f32, _> = dev.sample_normal();
    let mut group = c.benchmark_group("imle_op_fwd_bwd_B100_20x20_k10");
    for samples in [1usize, 10] {
        let imle = Imle::new(
            TopK::new(10),
            Target::pid(10.0).unwrap(),
            Noise::sum_of_gamma(10.0, 10.0, 10).unwrap(),
        )
        .samples(samples)
        .unwrap()
        .scale_by_lambda(true)
        .seed(0);
        group.bench_with_input(BenchmarkId::new("S", samples), &samples, |b, _| {
            b.iter(|| {
                let z = imle.apply_blocks(theta.leaky_trace()).unwrap();
                let grads = (z * w.clone()).sum().backward();
                black_box(grads.get(&theta));
            })
        });
    }
    group.finish();
}

fn noise_fill(c: &mut Criterion) {
    let mut group = c.benchmark_group("noise_fill_40000");
    let mut out = vec![0.0f32; 40_000];
    for (name, noise) in [
        ("gumbel", Noise::gumbel(1.0).unwrap()),
        ("sog_k10_s10", Noise::sum_of_gamma(10.0, 10.0, 10).unwrap()),
    ] {
        group.bench_function(name, |b| b.iter(|| noise.fill(black_box(7), &mut out)));
    }
    group.finish();
}

/// Ours against `rand_distr::Gumbel` (which can return +∞, see `imle::noise::Gumbel`):
/// 40,000 draws from one ChaCha8 stream, one thread.
fn gumbel_draw(c: &mut Criterion) {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut group = c.benchmark_group("gumbel_draw_40000");
    let ours = imle::noise::Gumbel::new(1.0).unwrap();
    let theirs = rand_distr::Gumbel::new(0.0f32, 1.0).unwrap();
    group.bench_function("imle", |b| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        b.iter(|| {
            (0..40_000)
                .map(|_| -> f32 { ours.sample(&mut rng) })
                .sum::<f32>()
        })
    });
    group.bench_function("rand_distr", |b| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        b.iter(|| (0..40_000).map(|_| theirs.sample(&mut rng)).sum::<f32>())
    });
    group.finish();
}

criterion_group!(benches, op_fwd_bwd, noise_fill, gumbel_draw);
criterion_main!(benches);
