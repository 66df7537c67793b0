//! Discrete VAE: the loss formula on a hand-computed example, our Adam against dfdx's,
//! a two-epoch tiny run whose loss falls, and resume == uninterrupted.
//!
//! The training tests use synthetic "digits" (blurred random strokes), so they do not
//! depend on MNIST being present.

use dfdx::optim::{Adam as DfdxAdam, Optimizer};
use dfdx::prelude::*;
use imle_paper::data::mnist::MnistSplit;
use imle_paper::train::{AdamHyper, Optimiser, OptimiserConfig};
use imle_paper::vae::model::{build, flat_params, vae_loss, vae_loss_f64, VaeSpec};
use imle_paper::vae::{Method, Vae, VaeConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn loss_matches_hand_computed_example() {
    // B = 2 examples, 2 pixels, 1 block of M = 2 categories.
    // Example 1: x = (1, 0), pixel logits (0, ln 3), block logits (0, 0).
    //   BCE = ln 2 + ln 4 = 3 ln 2 (σ(0) = 1/2; σ(ln 3) = 3/4 so −ln(1/4) = ln 4); KL = 0.
    // Example 2: x = (1/2, 1/2), pixel logits (ln 3, 0), block logits (ln 3, 0).
    //   BCE = ½ ln(4/3) + ½ ln 4 + ln 2 = ½ ln(16/3) + ln 2;
    //   q = (3/4, 1/4): KL = ¾ ln(¾·2) + ¼ ln(¼·2) = ¾ ln 1.5 + ¼ ln 0.5.
    let ln3 = 3f64.ln() as f32;
    let dev = Cpu::default();
    let x = dev.tensor_from_vec(vec![1.0f32, 0.0, 0.5, 0.5], (2usize, Const::<2>));
    let xl = dev.tensor_from_vec(vec![0.0f32, ln3, ln3, 0.0], (2usize, Const::<2>));
    let logits = dev.tensor_from_vec(
        vec![0.0f32, 0.0, ln3, 0.0],
        (2usize, Const::<1>, Const::<2>),
    );
    let recon_hand = (3.0 * 2f64.ln() + 0.5 * (16.0f64 / 3.0).ln() + 2f64.ln()) / 2.0;
    let kl_hand = (0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln()) / 2.0;
    let (loss, recon, kl) = vae_loss(xl.leaky_trace(), &x, logits.leaky_trace());
    assert!(
        (recon as f64 - recon_hand).abs() < 1e-5,
        "{recon} vs {recon_hand}"
    );
    assert!((kl as f64 - kl_hand).abs() < 1e-6, "{kl} vs {kl_hand}");
    assert!((loss.array() as f64 - recon_hand - kl_hand).abs() < 1e-5);
    // The f64 reference agrees.
    let (r64, k64) = vae_loss_f64(&xl.as_vec(), &x.as_vec(), &logits.as_vec(), 2, 2);
    assert!((r64 - recon_hand).abs() < 1e-6 && (k64 - kl_hand).abs() < 1e-7);
    // d loss / d pixel logit = (σ(l) − x)/B.
    let grads = loss.backward();
    let g = grads.get(&xl).as_vec();
    let want = [
        (0.5 - 1.0) / 2.0,
        (0.75 - 0.0) / 2.0,
        (0.75 - 0.5) / 2.0,
        0.0,
    ];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{g:?}");
    }
}

#[test]
fn loss_on_vae_shapes_matches_f64_reference() {
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let b = 3;
    let x: Vec<f32> = (0..b * 784).map(|_| rng.gen_range(0.0..1.0)).collect();
    let xl: Vec<f32> = (0..b * 784).map(|_| rng.gen_range(-5.0..5.0)).collect();
    let th: Vec<f32> = (0..b * 400).map(|_| rng.gen_range(-3.0..3.0)).collect();
    let (loss, recon, kl) = vae_loss(
        dev.tensor_from_vec(xl.clone(), (b, Const::<784>)),
        &dev.tensor_from_vec(x.clone(), (b, Const::<784>)),
        dev.tensor_from_vec(th.clone(), (b, Const::<20>, Const::<20>)),
    );
    let (r, k) = vae_loss_f64(&xl, &x, &th, b, 20);
    assert!(((recon as f64) - r).abs() / r < 1e-5);
    assert!(((kl as f64) - k).abs() < 1e-3 * k.max(1.0));
    assert!(((loss.array() as f64) - r - k).abs() / (r + k) < 1e-5);
}

#[test]
fn fused_host_loss_equals_the_dfdx_chain_in_value_and_gradients() {
    // vae_loss_host (one pass per term) against vae_loss (dfdx's ops) on VAE shapes, with
    // large logits (saturated sigmoids, near one-hot softmaxes) among them.
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let b = 7;
    let x: Vec<f32> = (0..b * 784).map(|_| rng.gen_range(0.0..1.0)).collect();
    let xl: Vec<f32> = (0..b * 784)
        .map(|i| rng.gen_range(-5.0..5.0) * if i % 97 == 0 { 8.0 } else { 1.0 })
        .collect();
    let th: Vec<f32> = (0..b * 400)
        .map(|i| rng.gen_range(-3.0..3.0) * if i % 41 == 0 { 10.0 } else { 1.0 })
        .collect();
    let xl_t = dev.tensor_from_vec(xl.clone(), (b, Const::<784>));
    let th_t = dev.tensor_from_vec(th.clone(), (b, Const::<20>, Const::<20>));
    let x_t = dev.tensor_from_vec(x.clone(), (b, Const::<784>));
    let (chain, rc, kc) = vae_loss(xl_t.leaky_trace(), &x_t, th_t.leaky_trace());
    let errors = imle::op::BackwardErrors::default();
    let (fused, rf, kf) =
        imle_paper::vae::model::vae_loss_host(xl_t.leaky_trace(), &x, th_t.leaky_trace(), &errors)
            .unwrap();
    assert!((rc - rf).abs() <= 1e-5 * rc.abs(), "recon {rc} vs {rf}");
    assert!(
        (kc - kf).abs() <= 1e-5 * kc.abs().max(1.0),
        "kl {kc} vs {kf}"
    );
    assert!((chain.array() - fused.array()).abs() <= 1e-5 * chain.array().abs());
    let (gc, gf) = (chain.backward(), fused.backward());
    for (what, a, b) in [
        (
            "pixel logits",
            gc.get(&xl_t).as_vec(),
            gf.get(&xl_t).as_vec(),
        ),
        (
            "block logits",
            gc.get(&th_t).as_vec(),
            gf.get(&th_t).as_vec(),
        ),
    ] {
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (i, (u, v)) in a.iter().zip(&b).enumerate() {
            assert!((u - v).abs() <= 1e-5 * scale, "{what}[{i}]: {u} vs {v}");
        }
    }
}

#[test]
fn our_adam_equals_dfdx_adam_step_for_step() {
    let dev = Cpu::default();
    let mut a = build(&dev, 7);
    let mut b = a.clone();
    let hyper = AdamHyper::default();
    let mut ours = Optimiser::new(OptimiserConfig::Adam(hyper));
    let mut theirs: DfdxAdam<_, f32, Cpu> = DfdxAdam::new(&b, hyper.to_dfdx());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..4 {
        let x: Vec<f32> = (0..5 * 784).map(|_| rng.gen_range(0.0..1.0)).collect();
        let x = dev.tensor_from_vec(x, (5usize, Const::<784>));
        let loss_of = |m: &<VaeSpec as BuildOnDevice<Cpu, f32>>::Built| {
            let h = m.0.forward(x.leaky_trace());
            m.1.forward(h.sigmoid()).bce_with_logits(x.clone()).sum()
        };
        let mut ga = loss_of(&a).backward();
        let gb = loss_of(&b).backward();
        ours.update(&mut a, &mut ga, hyper.lr).unwrap();
        theirs
            .update(&mut b, &gb)
            .expect("all parameters have gradients");
        assert_eq!(
            flat_params(&a),
            flat_params(&b),
            "bitwise equal after each step"
        );
    }
}

/// `n` synthetic 28x28 "digits": a few bright random strokes, values in [0, 1].
fn synthetic(n: usize, seed: u64) -> MnistSplit {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = vec![0u8; n * 784];
    for img in images.chunks_mut(784) {
        let class = rng.gen_range(0..4);
        for s in 0..3 {
            let (r0, c0) = (4 + 5 * ((class + s) % 4), 4 + rng.gen_range(0..4));
            for t in 0..14 {
                let (r, c) = (r0 + t / 4, c0 + t);
                img[r * 28 + c] = 255;
                img[(r + 1) * 28 + c] = 128;
            }
        }
    }
    MnistSplit {
        images,
        labels: vec![0; n],
    }
}

fn tiny(method: Method, epochs: usize) -> VaeConfig {
    VaeConfig {
        batch: 25,
        epochs,
        seed: 11,
        ..VaeConfig::paper(method)
    }
}

#[test]
fn two_epoch_tiny_run_loss_falls() {
    let (train, test) = (synthetic(500, 1), synthetic(100, 2));
    for method in [Method::ImleSog, Method::Gsmt] {
        let mut t = Vae::new(tiny(method, 2)).unwrap();
        let before = t.evaluate(&test, 0).unwrap().loss;
        t.fit(&train, &test, None, |_| {}).unwrap();
        let h = &t.history;
        assert_eq!(h.len(), 2);
        assert!(h[1].eval("loss") < before, "{method:?}: {before} -> {h:?}");
        assert!(h[1].train("loss") < h[0].train("loss"), "{method:?}: {h:?}");
        assert!(h
            .iter()
            .all(|r| r.eval("loss").is_finite() && r.eval("kl") >= 0.0));
    }
}

#[test]
fn every_method_trains_one_step() {
    let train = synthetic(50, 3);
    for method in Method::ALL {
        let mut t = Vae::new(VaeConfig {
            train_subset: Some(50),
            ..tiny(method, 1)
        })
        .unwrap();
        let before = flat_params(&t.model);
        t.fit(&train, &train, None, |_| {}).unwrap();
        assert!(t.history[0].train("loss").is_finite(), "{method:?}");
        assert_ne!(
            before,
            flat_params(&t.model),
            "{method:?} did not move the weights"
        );
    }
}

#[test]
fn same_seed_same_numbers_and_resume_equals_uninterrupted() {
    // Uninterrupted, and interrupted after epoch 1 (a run of 1 epoch with checkpoints)
    // then resumed to 3.
    let (a, c) = uninterrupted_and_resumed(Method::ImleSog);
    assert_eq!(flat_params(&a.model), flat_params(&c.model));
    assert_eq!(a.optimiser.slots, c.optimiser.slots);
    assert_eq!(a.optimiser.t, c.optimiser.t);
    let losses = |t: &Vae| {
        t.history
            .iter()
            .map(|r| (r.train.clone(), r.eval.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&a), losses(&c));
    // A checkpoint of another configuration is refused.
    let (train, test) = (synthetic(200, 4), synthetic(50, 5));
    let cfg = tiny(Method::ImleSog, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut b = Vae::new(VaeConfig {
        epochs: 1,
        ..cfg.clone()
    })
    .unwrap();
    b.fit(&train, &test, Some(dir.path()), |_| {}).unwrap();
    let mut other = Vae::new(VaeConfig {
        seed: 12,
        ..cfg.clone()
    })
    .unwrap();
    let err = other
        .fit(&train, &test, Some(dir.path()), |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("another run"), "{err}");
    assert!(err.to_string().contains("configuration"), "{err}");
    // A checkpoint of another data set (same configuration) is refused, naming both
    // checksums.
    let mut same = Vae::new(cfg).unwrap();
    let other_data = synthetic(200, 99);
    let err = same
        .fit(&other_data, &test, Some(dir.path()), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("trained on mnist with checksum"), "{err}");
}

/// AIMLE's adaptive state (β, running non-zero fraction) survives a resume exactly.
#[test]
fn aimle_resume_equals_uninterrupted() {
    let (a, c) = uninterrupted_and_resumed(Method::Aimle);
    assert_eq!(flat_params(&a.model), flat_params(&c.model));
    assert_eq!(a.latent.adaptive_state(), c.latent.adaptive_state());
}

/// Trains `method` for 3 epochs uninterrupted, and again as a 1-epoch run with a
/// checkpoint resumed to 3 epochs; returns both trainers.
fn uninterrupted_and_resumed(method: Method) -> (Vae, Vae) {
    let (train, test) = (synthetic(200, 4), synthetic(50, 5));
    let cfg = tiny(method, 3);
    let mut a = Vae::new(cfg.clone()).unwrap();
    a.fit(&train, &test, None, |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut b = Vae::new(VaeConfig {
        epochs: 1,
        ..cfg.clone()
    })
    .unwrap();
    b.fit(&train, &test, Some(dir.path()), |_| {}).unwrap();
    drop(b);
    let mut c = Vae::new(cfg).unwrap();
    c.fit(&train, &test, Some(dir.path()), |_| {}).unwrap();
    (a, c)
}

#[test]
fn gsmt_temperature_follows_official_schedule() {
    let c = imle_paper::vae::LatentConfig::default();
    assert_eq!(c.gs_temperature(0), 1.0);
    assert!((c.gs_temperature(1) - (-3e-4f32).exp()).abs() < 1e-7);
    // exp(−r·e(e+1)/2) until the floor 0.5 (reached at epoch 68).
    assert!((c.gs_temperature(10) - (-3e-4f32 * 55.0).exp()).abs() < 1e-5);
    assert!(c.gs_temperature(67) > 0.5);
    assert_eq!(c.gs_temperature(68), 0.5);
    assert_eq!(c.gs_temperature(100), 0.5);
}

#[test]
fn official_rate_sog_noise_has_the_moments_of_the_notes() {
    // PAPER-NOTES: at κ = τ = s = 10 the rate-parameterised noise has mean
    // Σ_i (1/κ)(i/κ) − ln 10 = 0.55 − 2.303 ≈ −1.75 and std sqrt(Σ_i (1/κ)(i/κ)²) ≈ 0.62.
    let mut v = vec![0.0f32; 200_000];
    let dist = imle_paper::spec::OfficialRateSog::new(10.0, 10.0, 10).unwrap();
    imle::Noise::custom("rate-form SoG", dist).fill(5, &mut v);
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!((mean - (0.55 - 10f64.ln())).abs() < 0.01, "{mean}");
    assert!((std - 0.62).abs() < 0.02, "{std}");
}

#[test]
fn numbers_do_not_depend_on_the_thread_count() {
    // The dense layers' GEMMs and the noise run on rayon's threads: 1 and 3 threads must
    // give bit-identical weights (batch 100 so that the GEMMs are large enough to split).
    let (train, test) = (synthetic(200, 5), synthetic(100, 6));
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut t = Vae::new(VaeConfig {
                    batch: 100,
                    ..tiny(Method::ImleSog, 1)
                })
                .unwrap();
                t.fit(&train, &test, None, |_| {}).unwrap();
                (flat_params(&t.model), t.history[0].eval("loss"))
            })
    };
    assert_eq!(run(1), run(3));
}

/// The device-generic passes (dfdx's `Linear`, the estimators through `ImleDevice`),
/// here on the Cpu: the same losses as the host `Dense` path up to GEMM rounding, the
/// loss falls, and a checkpoint resumes on either path.
#[test]
fn device_generic_passes_agree_with_the_host_path() {
    use imle_paper::vae::Backend;
    let (train, test) = (synthetic(200, 3), synthetic(100, 4));
    for method in [Method::ImleSog, Method::Gsmt] {
        let mut host = Vae::new(tiny(method, 2)).unwrap();
        let mut dfdx = Vae::with_backend(tiny(method, 2), Backend::DfdxCpu).unwrap();
        let (a, b) = (
            host.evaluate(&test, 0).unwrap().loss,
            dfdx.evaluate(&test, 0).unwrap().loss,
        );
        assert!((a - b).abs() < 1e-3 * a.abs(), "{method:?}: {a} vs {b}");
        host.fit(&train, &test, None, |_| {}).unwrap();
        dfdx.fit(&train, &test, None, |_| {}).unwrap();
        let (ha, hb) = (&host.history, &dfdx.history);
        assert!(
            hb[1].eval("loss") < b,
            "{method:?}: {b} -> {}",
            hb[1].eval("loss")
        );
        // Same seeds, same data: the two runs stay close (they differ by rounding only).
        for (x, y) in ha.iter().zip(hb) {
            assert!(
                (x.eval("loss") - y.eval("loss")).abs() < 0.05 * x.eval("loss"),
                "{method:?}: {} vs {}",
                x.eval("loss"),
                y.eval("loss")
            );
        }
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_backend_without_the_feature_is_a_clear_error() {
    let e = Vae::with_backend(tiny(Method::ImleSog, 1), imle_paper::vae::Backend::Cuda)
        .err()
        .expect("no cuda in this build");
    assert!(e.to_string().contains("--features cuda"), "{e}");
}
