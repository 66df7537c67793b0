//! One training step of Table 2's network (batch 70, K = 12, 96 x 96 images) with BB and
//! with I-MLE μ-μ (Dijkstra forward and backward, Adam update included), and the
//! test-time pass over 100 maps, on generated maps. `benches/torch_warcraft_epoch.py` is
//! the PyTorch reference of a whole epoch; `cargo bench -p imle --bench solvers` times the
//! batched Dijkstra against `benches/scipy_dijkstra.py`.
//!
//! `cargo bench --bench warcraft_step` (set `RAYON_NUM_THREADS=2` to match the notes).

use criterion::{criterion_group, criterion_main, Criterion};
use imle_paper::data::warcraft::{self, generate};
use imle_paper::train::{Learner, Step};
use imle_paper::warcraft::{Method, PathConfig, PathFinder};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    imle_paper::run::tune_allocator();
    let dir = tempfile::tempdir().unwrap();
    let cfg = generate::GeneratorConfig {
        train: 140,
        val: 100,
        test: 10,
        ..generate::GeneratorConfig::new(12)
    };
    generate::write(&cfg, dir.path()).unwrap();
    let data = Arc::new(warcraft::load_from(dir.path(), 12).unwrap());
    let batch: Vec<usize> = (0..70).collect();
    for method in [Method::Bb, Method::ImleMumu] {
        let mut l = PathFinder::new(PathConfig::paper(method, 12), data.clone()).unwrap();
        let mut seed = 0;
        c.bench_function(
            &format!("table2 train step, batch 70, K 12, {}", method.name()),
            |b| {
                b.iter(|| {
                    seed += 1;
                    l.train_step(Step {
                        epoch: 1,
                        index: 0,
                        batch: &batch,
                        lr: 5e-4,
                        seed,
                    })
                    .unwrap()
                })
            },
        );
    }
    let l = PathFinder::new(PathConfig::paper(Method::Bb, 12), data.clone()).unwrap();
    c.bench_function("table2 test-time paths, 100 maps", |b| {
        b.iter(|| l.metrics(&data.val, Some(100)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
