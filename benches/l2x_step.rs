//! One training step of Table 1's selector/predictor (batch 40, sequences of 150, k = 10)
//! with I-MLE (SoG noise, λ = 1000) and with L2X, and the test-time pass over 100 reviews,
//! on a generated review set. `benches/torch_l2x_epoch.py` is the PyTorch reference of a
//! whole epoch.
//!
//! `cargo bench --bench l2x_step` (set `RAYON_NUM_THREADS=2` to match the notes).

use criterion::{criterion_group, criterion_main, Criterion};
use imle_paper::data::beer::{self, generate};
use imle_paper::explain::{ExplainConfig, Explainer, Method};
use imle_paper::train::{Learner, Step};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    // What the CLI does at start-up (the step allocates and frees tensors of a few MiB).
    imle_paper::run::tune_allocator();
    let dir = tempfile::tempdir().unwrap();
    let cfg = generate::GeneratorConfig {
        train: 400,
        heldout: 100,
        annotated: 10,
        ..Default::default()
    };
    generate::write(&cfg, dir.path()).unwrap();
    let data = Arc::new(beer::load_from(dir.path(), 150).unwrap());
    let batch: Vec<usize> = (0..40).collect();
    for method in [Method::ImleSog, Method::L2x] {
        let mut e = Explainer::new(ExplainConfig::paper(method, 10, 150), data.clone()).unwrap();
        let mut seed = 0;
        c.bench_function(
            &format!("table1 train step, batch 40, maxlen 150, {}", method.name()),
            |b| {
                b.iter(|| {
                    seed += 1;
                    e.train_step(Step {
                        epoch: 1,
                        index: 0,
                        batch: &batch,
                        lr: 1e-3,
                        seed,
                    })
                    .unwrap()
                })
            },
        );
    }
    let e = Explainer::new(ExplainConfig::paper(Method::ImleSog, 10, 150), data.clone()).unwrap();
    let idx: Vec<usize> = (0..100).collect();
    c.bench_function("table1 test-time MSE, 100 reviews", |b| {
        b.iter(|| e.mse(&data.heldout, &idx).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
