//! MAP solver throughput on the batch sizes of the paper's experiments:
//! top-k on an L2X-like batch (B = 40, m = 350, k = 10) and on the discrete VAE's latent
//! (2,000 rows of 20, k = 10: rank counting), and the Warcraft shortest path on a batch of
//! 70 K x K grids with the data set's cell costs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use imle::solver::{GridShortestPath, MapSolver, Neighbourhood, TopK};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

fn topk(c: &mut Criterion) {
    let (batch, m, k) = (40, 350, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let thetas: Vec<f32> = (0..batch * m).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut out = vec![0.0; batch * m];
    let solver = TopK::new(k);
    let mut group = c.benchmark_group("topk_batch");
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function(BenchmarkId::new("B40_m350_k10", m), |b| {
        b.iter(|| solver.solve_batch(black_box(&thetas), m, &mut out).unwrap())
    });
    // Figure 4's latent: batch 100 x 20 blocks of 20 categories, k = 10
    let (rows, m) = (2000, 20);
    let thetas: Vec<f32> = (0..rows * m).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut out = vec![0.0; rows * m];
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(BenchmarkId::new("rows2000_m20_k10", m), |b| {
        b.iter(|| solver.solve_batch(black_box(&thetas), m, &mut out).unwrap())
    });
    group.finish();
}

fn grid(c: &mut Criterion) {
    const COSTS: [f32; 5] = [0.8, 1.2, 5.3, 7.7, 9.2];
    let batch = 70;
    let mut group = c.benchmark_group("grid_shortest_path_batch70");
    group.throughput(Throughput::Elements(batch as u64));
    for nb in [Neighbourhood::Eight, Neighbourhood::Four] {
        for k in [12, 18, 24, 30] {
            let m = k * k;
            let mut rng = ChaCha8Rng::seed_from_u64(k as u64);
            let thetas: Vec<f32> = (0..batch * m)
                .map(|_| -COSTS[rng.gen_range(0..COSTS.len())])
                .collect();
            let mut out = vec![0.0; batch * m];
            let solver = GridShortestPath::new(k).with_neighbourhood(nb);
            let name = match nb {
                Neighbourhood::Eight => "8-neighbourhood",
                Neighbourhood::Four => "4-neighbourhood",
            };
            group.bench_with_input(BenchmarkId::new(name, k), &k, |b, _| {
                b.iter(|| solver.solve_batch(black_box(&thetas), m, &mut out).unwrap())
            });
        }
    }
    group.finish();

    // One 30 x 30 grid on the calling thread: the per-instance cost without rayon.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let theta: Vec<f32> = (0..900)
        .map(|_| -COSTS[rng.gen_range(0..COSTS.len())])
        .collect();
    let mut z = vec![0.0; 900];
    let solver = GridShortestPath::new(30);
    c.bench_function("grid_shortest_path_single/30", |b| {
        b.iter(|| solver.solve(black_box(&theta), &mut z).unwrap())
    });
}

criterion_group!(benches, topk, grid);
criterion_main!(benches);
