//! GEMM back-end choice: the three candidates on the shapes of the Warcraft encoder's
//! convolutions (one image, one thread; rayon parallelises over the batch).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn bench(c: &mut Criterion) {
    // (m, n, k): out[m, n] = w[m, k] * col[k, n]
    let shapes = [
        (64usize, 576usize, 576usize),
        (64, 2304, 147),
        (576, 576, 64),
    ];
    let mut g = c.benchmark_group("gemm");
    for &(m, n, k) in &shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut d = vec![0f32; m * n];
        let id = format!("{m}x{n}x{k}");
        g.bench_function(BenchmarkId::new("gemm-0.19", &id), |bch| {
            bch.iter(|| unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    d.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            })
        });
        g.bench_function(BenchmarkId::new("gemm-0.15", &id), |bch| {
            bch.iter(|| unsafe {
                gemm015::gemm(
                    m,
                    n,
                    k,
                    d.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm015::Parallelism::None,
                )
            })
        });
        g.bench_function(BenchmarkId::new("matrixmultiply", &id), |bch| {
            bch.iter(|| unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    n as isize,
                    1,
                    0.0,
                    d.as_mut_ptr(),
                    n as isize,
                    1,
                )
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
