//! One training step of the discrete VAE (batch 100, 784-512-256-400 | 400-256-512-784)
//! with I-MLE (SoG noise), next to the parts that are ours: the I-MLE op alone (noise,
//! top-k, target MAP) and the SoG noise alone, and a step with Gumbel noise.
//!
//! `cargo bench --bench vae_step` (set `RAYON_NUM_THREADS=2` to match the notes).

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
use imle::prelude::*;
use imle_paper::vae::{Method, Vae, VaeConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn batch(seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..100 * 784).map(|_| rng.gen_range(0.0..1.0)).collect()
}

fn bench(c: &mut Criterion) {
    let x = batch(0);
    for method in [Method::ImleSog, Method::ImleGumbel] {
        let mut t = Vae::new(VaeConfig::paper(method)).unwrap();
        let mut seed = 0;
        c.bench_function(
            &format!("vae train step, batch 100, {}", method.name()),
            |b| {
                b.iter(|| {
                    seed += 1;
                    t.step(x.clone(), seed, 1.0).unwrap()
                })
            },
        );
    }

    // The I-MLE op alone on (100·20, 20) logits: forward + backward.
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let theta: Vec<f32> = (0..100 * 400).map(|_| rng.gen_range(-3.0..3.0)).collect();
    let theta = dev.tensor_from_vec(theta, (100usize, Const::<20>, Const::<20>));
    let up: Vec<f32> = (0..100 * 400).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let up = dev.tensor_from_vec(up, (100usize, Const::<20>, Const::<20>));
    let imle = Imle::new(
        TopK::new(10),
        Target::pid(10.0).unwrap(),
        Noise::sum_of_gamma(10.0, 10.0, 10).unwrap(),
    )
    .scale_by_lambda(true);
    c.bench_function("I-MLE op fwd+bwd (100x20 blocks of 20, SoG, top-10)", |b| {
        b.iter(|| {
            let z = imle.apply_blocks(theta.leaky_trace()).unwrap();
            (z * up.clone()).sum().backward()
        })
    });
    let mut buf = vec![0.0f32; 100 * 400];
    let sog = Noise::sum_of_gamma(10.0, 10.0, 10).unwrap();
    c.bench_function("SoG(10,10,10) noise fill, 40000 values", |b| {
        b.iter(|| sog.fill(7, &mut buf))
    });
    let gumbel = Noise::gumbel(1.0).unwrap();
    c.bench_function("Gumbel noise fill, 40000 values", |b| {
        b.iter(|| gumbel.fill(7, &mut buf))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
