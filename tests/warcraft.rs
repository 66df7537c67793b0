//! The Warcraft `.npy` loader (good, float16, corrupt, truncated, random and missing
//! files), the generator (deterministic, separate streams, optimal labels and ties checked
//! by brute force, textures that tell the terrain where mean colours do not), the path
//! metrics, and training runs (the loss falls and the accuracy rises; resume equals an
//! uninterrupted run).

use imle_paper::data::warcraft::{self, generate, Split};
use imle_paper::run::RunContext;
use imle_paper::warcraft::{is_valid_path, path_metrics, Method, PathConfig};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

fn tiny(k: usize, seed: u64) -> generate::GeneratorConfig {
    generate::GeneratorConfig {
        seed,
        train: 6,
        val: 3,
        test: 4,
        ..generate::GeneratorConfig::new(k)
    }
}

fn npy_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    warcraft::write_npy(&p, shape, data).unwrap();
    std::fs::read(p).unwrap()
}

/// `bytes` with the first `from` replaced by `to` (same length).
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("present");
    let mut out = bytes.to_vec();
    out[at..at + from.len()].copy_from_slice(to);
    out
}

#[test]
fn a_generated_set_loads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(5, 3);
    generate::write(&cfg, dir.path()).unwrap();
    let w = warcraft::load_from(dir.path(), 5).unwrap();
    let (train, _) = generate::split(&cfg, "train", 6);
    assert_eq!(w.train, train);
    assert_eq!((w.val.n, w.test.n, w.train.px), (3, 4, 40));
    // The look-up finds `<dir>/5x5/` and the folder itself.
    let parent = tempfile::tempdir().unwrap();
    generate::write(&cfg, &parent.path().join("5x5")).unwrap();
    assert!(warcraft::locate(Some(parent.path()), 5)
        .unwrap()
        .ends_with("5x5"));
    assert_eq!(warcraft::locate(Some(dir.path()), 5).unwrap(), dir.path());
}

#[test]
fn float16_costs_and_integer_paths_are_read() {
    let dir = tempfile::tempdir().unwrap();
    generate::write(&tiny(4, 0), dir.path()).unwrap();
    let w0 = warcraft::load_from(dir.path(), 4).unwrap();
    for s in ["train", "val", "test"] {
        let split = match s {
            "train" => &w0.train,
            "val" => &w0.val,
            _ => &w0.test,
        };
        let h: Vec<half::f16> = split
            .weights
            .iter()
            .map(|&x| half::f16::from_f32(x))
            .collect();
        warcraft::write_npy(
            &dir.path().join(format!("{s}_vertex_weights.npy")),
            &[split.n, 4, 4],
            &h,
        )
        .unwrap();
        let p: Vec<u8> = split.paths.iter().map(|&x| x as u8).collect();
        warcraft::write_npy(
            &dir.path().join(format!("{s}_shortest_paths.npy")),
            &[split.n, 4, 4],
            &p,
        )
        .unwrap();
    }
    let w = warcraft::load_from(dir.path(), 4).unwrap();
    assert_eq!(w.train.paths, w0.train.paths);
    for (a, b) in w.train.weights.iter().zip(&w0.train.weights) {
        assert!((a - b).abs() < 5e-3, "{a} vs {b}");
    }
}

#[test]
fn corrupt_and_missing_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    generate::write(&tiny(4, 0), dir.path()).unwrap();
    let d = dir.path();
    let check = |what: &str, file: &str, want: &str| {
        let e = warcraft::load_from(d, 4).unwrap_err().to_string();
        assert!(e.contains(file) && e.contains(want), "{what}: {e}");
    };
    let keep = |f: &str| std::fs::read(d.join(f)).unwrap();
    let maps = keep("val_maps.npy");
    // Wrong shape: 3-d maps.
    warcraft::write_npy(
        &d.join("val_maps.npy"),
        &[3, 32, 96],
        &vec![0u8; 3 * 32 * 96],
    )
    .unwrap();
    check("3-d maps", "val_maps.npy", "expected N x H x H x 3");
    // Wrong dtype: float maps.
    warcraft::write_npy(
        &d.join("val_maps.npy"),
        &[3, 32, 32, 3],
        &vec![0f32; 3 * 32 * 32 * 3],
    )
    .unwrap();
    check("float maps", "val_maps.npy", "expected uint8");
    // Truncated.
    std::fs::write(d.join("val_maps.npy"), &maps[..maps.len() - 10]).unwrap();
    check("truncated", "val_maps.npy", "needs");
    std::fs::write(d.join("val_maps.npy"), &maps).unwrap();
    // Counts that disagree.
    let w = keep("test_vertex_weights.npy");
    warcraft::write_npy(&d.join("test_vertex_weights.npy"), &[3, 4, 4], &[1f32; 48]).unwrap();
    check("count", "test_vertex_weights.npy", "expected [4, 4, 4]");
    // Negative and NaN costs.
    warcraft::write_npy(
        &d.join("test_vertex_weights.npy"),
        &[4, 4, 4],
        &[vec![-1f32], vec![1f32; 63]].concat(),
    )
    .unwrap();
    check("negative", "test_vertex_weights.npy", "non-negative");
    warcraft::write_npy(
        &d.join("test_vertex_weights.npy"),
        &[4, 4, 4],
        &[vec![f32::NAN], vec![1f32; 63]].concat(),
    )
    .unwrap();
    check("NaN", "test_vertex_weights.npy", "finite");
    std::fs::write(d.join("test_vertex_weights.npy"), &w).unwrap();
    // Paths that are not 0/1.
    warcraft::write_npy(
        &d.join("train_shortest_paths.npy"),
        &[6, 4, 4],
        &[vec![2f32], vec![0f32; 95]].concat(),
    )
    .unwrap();
    check("path values", "train_shortest_paths.npy", "0/1");
    // A missing file: the loader names it, the look-up lists what is missing where.
    std::fs::remove_file(d.join("train_shortest_paths.npy")).unwrap();
    check("missing", "train_shortest_paths.npy", "cannot read");
    let chain = format!(
        "{:#}",
        anyhow::Error::from(warcraft::load_from(d, 4).unwrap_err())
    );
    assert_eq!(
        chain.matches("os error").count(),
        1,
        "the reason once: {chain}"
    );
    let e = warcraft::locate(Some(d), 4).unwrap_err().to_string();
    assert!(
        e.contains("missing train_shortest_paths.npy")
            && e.contains("imle-paper data generate warcraft"),
        "{e}"
    );
    // Python objects and Fortran order are refused.
    let pickled = replace(&npy_u8(&[2], &[1, 2]), b"'|u1'", b"'|O' ");
    let e = warcraft::parse_u8(&pickled, Path::new("p.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pickled"), "{e}");
    let fortran = replace(
        &npy_u8(&[2], &[1, 2]),
        b"'fortran_order': False",
        b"'fortran_order': True ",
    );
    let e = warcraft::parse_u8(&fortran, Path::new("f.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Fortran"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = warcraft::parse_u8(&bytes, Path::new("r.npy"));
        let _ = warcraft::parse_f32(&bytes, Path::new("r.npy"));
        // Random bytes after a valid magic string and header length.
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend(&bytes);
        let _ = warcraft::parse_u8(&b, Path::new("r.npy"));
        let _ = warcraft::parse_f32(&b, Path::new("r.npy"));
    }

    #[test]
    fn truncated_arrays_are_errors(cut in 0usize..(128 + 2 * 3 * 4 * 4)) {
        let full = npy_u8(&[2, 3, 4, 4], &[7u8; 96]);
        prop_assume!(cut < full.len());
        prop_assert!(warcraft::parse_u8(&full[..cut], Path::new("t.npy")).is_err());
        prop_assert!(warcraft::parse_f32(&full[..cut], Path::new("t.npy")).is_err());
    }
}

/// Every simple 8-connected path from the top-left to the bottom-right cell: its cost.
fn all_path_costs(costs: &[f32], k: usize) -> Vec<f64> {
    fn go(u: usize, k: usize, c: &[f32], seen: &mut Vec<bool>, acc: f64, out: &mut Vec<f64>) {
        if u == k * k - 1 {
            out.push(acc);
            return;
        }
        let (r, col) = ((u / k) as isize, (u % k) as isize);
        for dr in -1..=1isize {
            for dc in -1..=1isize {
                let (nr, nc) = (r + dr, col + dc);
                if nr < 0 || nc < 0 || nr >= k as isize || nc >= k as isize {
                    continue;
                }
                let v = nr as usize * k + nc as usize;
                if !seen[v] {
                    seen[v] = true;
                    go(v, k, c, seen, acc + c[v] as f64, out);
                    seen[v] = false;
                }
            }
        }
    }
    let mut seen = vec![false; k * k];
    seen[0] = true;
    let mut out = Vec::new();
    go(0, k, costs, &mut seen, costs[0] as f64, &mut out);
    out
}

#[test]
fn labels_are_optimal_and_ties_are_detected_by_brute_force() {
    let cfg = generate::GeneratorConfig {
        isolated: 0.3,
        ..generate::GeneratorConfig::new(3)
    };
    let (mut ties, mut unique) = (0, 0);
    for i in 0..60 {
        let m = generate::map(&cfg, "warcraft/train", i);
        let costs = all_path_costs(&m.costs, 3);
        let best = costs.iter().cloned().fold(f64::INFINITY, f64::min);
        let label: f64 = m
            .path
            .iter()
            .zip(&m.costs)
            .map(|(&z, &c)| z as f64 * c as f64)
            .sum();
        assert!(
            (label - best).abs() < 1e-6,
            "map {i}: label {label}, optimum {best}"
        );
        assert!(is_valid_path(&m.path, 3));
        // Several optimal simple paths <=> a tie (an optimal path never revisits a cell).
        let optimal = costs
            .iter()
            .filter(|&&c| (c - best).abs() <= 1e-9 * best)
            .count();
        assert_eq!(m.tied, optimal > 1, "map {i}: {optimal} optimal paths");
        if m.tied {
            ties += 1
        } else {
            unique += 1
        }
    }
    assert!(
        ties > 0 && unique > 0,
        "both cases occur: {ties} tied, {unique} unique"
    );
}

#[test]
fn the_generator_is_deterministic_with_separate_streams() {
    let cfg = generate::GeneratorConfig::new(6);
    assert_eq!(
        generate::map(&cfg, "warcraft/train", 4),
        generate::map(&cfg, "warcraft/train", 4)
    );
    assert_ne!(
        generate::map(&cfg, "warcraft/train", 0).image,
        generate::map(&cfg, "warcraft/val", 0).image
    );
    let other = generate::GeneratorConfig {
        seed: 1,
        ..cfg.clone()
    };
    assert_ne!(
        generate::map(&cfg, "warcraft/test", 0).types,
        generate::map(&other, "warcraft/test", 0).types
    );
    // Costs are the data set's five values; terrain forms regions (most cells share their
    // type with a neighbour).
    let m = generate::map(&cfg, "warcraft/train", 1);
    assert!(m.costs.iter().all(|c| generate::COSTS.contains(c)));
    let k = 6;
    let same = (0..k * k)
        .filter(|&i| {
            let (r, c) = (i / k, i % k);
            [(0isize, 1isize), (1, 0), (0, -1), (-1, 0)]
                .iter()
                .any(|&(dr, dc)| {
                    let (nr, nc) = (r as isize + dr, c as isize + dc);
                    nr >= 0
                        && nc >= 0
                        && nr < k as isize
                        && nc < k as isize
                        && m.types[nr as usize * k + nc as usize] == m.types[i]
                })
        })
        .count();
    assert!(
        same as f64 > 0.7 * (k * k) as f64,
        "{same} of {} cells",
        k * k
    );
}

/// Tiles of `n` generated 12 x 12 maps: (map, type, RGB pixels of the 8 x 8 tile).
fn tiles(n: usize) -> Vec<(usize, u8, Vec<[f32; 3]>)> {
    let cfg = generate::GeneratorConfig::new(12);
    let px = 96;
    let mut out = Vec::new();
    for i in 0..n {
        let m = generate::map(&cfg, "warcraft/train", i);
        for cell in 0..144 {
            let (r, c) = (cell / 12, cell % 12);
            let mut t = Vec::with_capacity(64);
            for y in 0..8 {
                for x in 0..8 {
                    let o = ((r * 8 + y) * px + c * 8 + x) * 3;
                    t.push([
                        m.image[o] as f32,
                        m.image[o + 1] as f32,
                        m.image[o + 2] as f32,
                    ]);
                }
            }
            out.push((i, m.types[cell], t));
        }
    }
    out
}

/// Nearest-centroid accuracy of `feature` trained on the first half of the maps, tested on
/// the second half.
fn centroid_accuracy(
    tiles: &[(usize, u8, Vec<[f32; 3]>)],
    n: usize,
    feature: impl Fn(&[[f32; 3]]) -> Vec<f64>,
) -> f64 {
    let feats: Vec<(usize, u8, Vec<f64>)> =
        tiles.iter().map(|(m, t, p)| (*m, *t, feature(p))).collect();
    let dim = feats[0].2.len();
    let mut sum = vec![vec![0.0; dim]; 5];
    let mut count = [0usize; 5];
    for (m, t, f) in feats.iter().filter(|f| f.0 < n / 2) {
        let _ = m;
        count[*t as usize] += 1;
        for (s, v) in sum[*t as usize].iter_mut().zip(f) {
            *s += v;
        }
    }
    let centroids: Vec<Vec<f64>> = sum
        .iter()
        .zip(count)
        .map(|(s, c)| s.iter().map(|v| v / c.max(1) as f64).collect())
        .collect();
    let test: Vec<&(usize, u8, Vec<f64>)> = feats.iter().filter(|f| f.0 >= n / 2).collect();
    let right = test
        .iter()
        .filter(|(_, t, f)| {
            let d = |c: &Vec<f64>| c.iter().zip(f).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
            (0..5).min_by(|&a, &b| d(&centroids[a]).total_cmp(&d(&centroids[b])))
                == Some(*t as usize)
        })
        .count();
    right as f64 / test.len() as f64
}

#[test]
fn textures_tell_the_terrain_and_mean_colours_do_not() {
    let n = 40;
    let t = tiles(n);
    let mean_colour = centroid_accuracy(&t, n, |p| {
        (0..3)
            .map(|c| p.iter().map(|q| q[c] as f64).sum::<f64>() / 64.0)
            .collect()
    });
    // Texture: mean absolute grey-level differences at lags 1 and 2, horizontally and
    // vertically, relative to the tile's grey-level spread.
    let texture = centroid_accuracy(&t, n, |p| {
        let g: Vec<f64> = p
            .iter()
            .map(|q| (q[0] + q[1] + q[2]) as f64 / 3.0)
            .collect();
        let (lo, hi) = g
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let spread = (hi - lo).max(1.0);
        let diff = |dy: usize, dx: usize| {
            let mut s = 0.0;
            let mut n = 0.0;
            for y in 0..8 - dy {
                for x in 0..8 - dx {
                    s += (g[y * 8 + x] - g[(y + dy) * 8 + x + dx]).abs();
                    n += 1.0;
                }
            }
            s / n / spread
        };
        vec![diff(0, 1), diff(1, 0), diff(0, 2), diff(2, 0)]
    });
    assert!(
        mean_colour < 0.45,
        "mean colour classifies {mean_colour:.2}"
    );
    assert!(texture > 0.9, "texture classifies {texture:.2}");
}

#[test]
fn validity_and_metrics_by_hand() {
    // 3 x 3: a diagonal path, a broken one, a blob.
    let diag = [1., 0., 0., 0., 1., 0., 0., 0., 1.];
    let broken = [1., 0., 0., 0., 0., 0., 0., 0., 1.];
    let blob = [1., 1., 0., 1., 1., 0., 0., 0., 1.];
    assert!(is_valid_path(&diag, 3));
    assert!(!is_valid_path(&broken, 3));
    assert!(is_valid_path(&blob, 3));
    // 4 x 4: the diagonal and a cell touching none of it.
    let mut detached = [0.0f32; 16];
    for c in [0, 5, 10, 15, 3] {
        detached[c] = 1.0;
    }
    assert!(!is_valid_path(&detached, 4));
    detached[3] = 0.0;
    assert!(is_valid_path(&detached, 4));
    // A costly centre: two optimal 4-cell paths, one of them the label.
    let cells = |c: &[usize]| {
        let mut z = [0.0f32; 9];
        c.iter().for_each(|&i| z[i] = 1.0);
        z
    };
    let truth = cells(&[0, 1, 5, 8]);
    let split = Split {
        n: 4,
        k: 3,
        px: 24,
        maps: vec![0; 4 * 24 * 24 * 3],
        weights: [1., 1., 1., 1., 9., 1., 1., 1., 1.].repeat(4),
        paths: truth.repeat(4),
    };
    let preds = [
        truth,
        cells(&[0, 3, 7, 8]),
        cells(&[0, 1, 2, 5, 8]),
        cells(&[0, 8]),
    ]
    .concat();
    let m = path_metrics(&preds, &split, &[0, 1, 2, 3]);
    assert_eq!(m.maps, 4);
    assert_eq!(m.accuracy, 0.5);
    assert_eq!(m.exact, 0.25);
    assert_eq!(m.valid, 0.75);
    // Regret over the valid ones: 0, 0 and (5 − 4) / 4.
    assert!((m.regret - 0.25 / 3.0).abs() < 1e-12, "{}", m.regret);
}

const K: usize = 8;

fn tiny_run(method: Method, epochs: usize) -> PathConfig {
    let mut c = PathConfig {
        epochs,
        batch: 20,
        seed: 7,
        ..PathConfig::paper(method, K)
    };
    c.adam.lr = 3e-3;
    c
}

fn data6() -> Arc<warcraft::Warcraft> {
    static DATA: std::sync::OnceLock<Arc<warcraft::Warcraft>> = std::sync::OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = generate::GeneratorConfig {
            train: 300,
            val: 100,
            test: 60,
            ..generate::GeneratorConfig::new(K)
        };
        generate::write(&cfg, dir.path()).unwrap();
        Arc::new(warcraft::load_from(dir.path(), K).unwrap())
    })
    .clone()
}

#[test]
fn a_short_run_learns_and_resume_equals_uninterrupted() {
    use imle_paper::experiments::trained::{train_run, CHECKPOINT};
    use imle_paper::train::Checkpoint;
    let data = data6();
    let ctx = RunContext::new(tempfile::tempdir().unwrap().path());
    // Uninterrupted, 4 epochs.
    let a = tempfile::tempdir().unwrap();
    train_run(&tiny_run(Method::ImleMumu, 4), data.clone(), a.path(), &ctx).unwrap();
    let ha = Checkpoint::load(&a.path().join(CHECKPOINT))
        .unwrap()
        .header
        .history;
    let first = &ha[0];
    let last = &ha[3];
    assert!(
        last.train("loss") < first.train("loss"),
        "loss {} -> {}",
        first.train("loss"),
        last.train("loss")
    );
    assert!(
        last.eval("val_accuracy") > first.eval("val_accuracy"),
        "accuracy {} -> {}",
        first.eval("val_accuracy"),
        last.eval("val_accuracy")
    );
    // 1 epoch, then resumed to 4.
    let b = tempfile::tempdir().unwrap();
    train_run(&tiny_run(Method::ImleMumu, 1), data.clone(), b.path(), &ctx).unwrap();
    train_run(&tiny_run(Method::ImleMumu, 4), data.clone(), b.path(), &ctx).unwrap();
    let cb = Checkpoint::load(&b.path().join(CHECKPOINT)).unwrap();
    let ca = Checkpoint::load(&a.path().join(CHECKPOINT)).unwrap();
    for (x, y) in ca.header.history.iter().zip(&cb.header.history) {
        assert_eq!(x.train, y.train);
        assert_eq!(x.eval, y.eval);
    }
    assert_eq!(ca.tensors, cb.tensors, "the weights differ after a resume");
    // A report reads the progress of its own configuration only; another one's checkpoint
    // counts as no progress instead of failing the report.
    let path = a.path().join(CHECKPOINT);
    let mine = serde_json::to_value(tiny_run(Method::ImleMumu, 4).without_epochs()).unwrap();
    let done = Checkpoint::history_for(&path, &mine).unwrap().unwrap();
    assert_eq!(done.len(), 4);
    let mut other = tiny_run(Method::ImleMumu, 4);
    other.negative_costs = imle_paper::warcraft::NegativeCostPolicy::Shift;
    let theirs = serde_json::to_value(other.without_epochs()).unwrap();
    assert!(Checkpoint::history_for(&path, &theirs).unwrap().is_none());
    // Training from it is refused.
    assert!(train_run(&other, data.clone(), a.path(), &ctx).is_err());
}

#[test]
fn every_method_trains_a_step_without_error() {
    use imle_paper::train::{Learner, Step};
    let data = data6();
    for m in Method::ALL {
        let mut l = imle_paper::warcraft::PathFinder::new(tiny_run(m, 1), data.clone()).unwrap();
        let batch: Vec<usize> = (0..20).collect();
        let metrics = l
            .train_step(Step {
                epoch: 1,
                index: 0,
                batch: &batch,
                lr: 5e-4,
                seed: 3,
            })
            .unwrap_or_else(|e| panic!("{}: {e:#}", m.name()));
        assert!(metrics["loss"].is_finite(), "{}", m.name());
        let eval = l.evaluate(1).unwrap();
        assert!((0.0..=1.0).contains(&eval["test_accuracy"]), "{}", m.name());
    }
}

#[test]
fn runs_that_perturb_clamp_negative_costs_and_the_others_shift_them() {
    use imle_paper::warcraft::NegativeCostPolicy;
    for m in Method::ALL {
        let c = PathConfig::paper(m, 12);
        let json = serde_json::to_value(&c).unwrap();
        let perturbs = matches!(
            m,
            Method::ImleMumu | Method::ImleSogHamming | Method::Aimle | Method::Dpo
        );
        let want = if perturbs {
            NegativeCostPolicy::Clamp
        } else {
            NegativeCostPolicy::Shift
        };
        assert_eq!(c.negative_costs, want, "{}", m.name());
        // The shift is left out of the JSON: configurations (and checkpoints) written
        // before the policy existed read back equal.
        assert_eq!(
            json.get("negative_costs").is_some(),
            perturbs,
            "{}: {json}",
            m.name()
        );
        let back: PathConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back.negative_costs, want);
    }
    // Each policy builds the library solver of that name.
    use imle::solver::NegativeCosts;
    assert_eq!(
        NegativeCostPolicy::Shift.solver(12).negative_costs(),
        NegativeCosts::Shift
    );
    assert_eq!(
        NegativeCostPolicy::Clamp.solver(12).negative_costs(),
        NegativeCosts::Clamp
    );
}

/// The committed Table 2 record gives back its finished runs (what a fresh clone restores
/// into its run folder): every complete run with its examples, under its unit name, each
/// one's last epoch being the accuracy of its single-run row in `table2.csv`; no
/// unfinished run.
#[test]
fn the_committed_record_restores_its_finished_runs() {
    use imle_paper::experiments::{table2, Experiment};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("figures");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("table2.json")).unwrap()).unwrap();
    let all = rec["data"]["runs"].as_array().unwrap();
    let restored = table2::Table2::recorded(&rec["data"]);
    let complete = all.iter().filter(|r| r["complete"] == true).count();
    assert!(complete >= 10, "K = 12 and 18 are finished");
    assert_eq!(restored.len(), complete);
    let csv = std::fs::read_to_string(root.join("table2.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for (name, run) in &restored {
        assert_eq!(
            *name,
            imle_paper::experiments::trained::unit_name(&run.config)
        );
        assert!(run.complete && run.examples.is_some(), "{name}");
        assert_eq!(run.epochs.len(), run.config.epochs, "{name}");
        let row = rows
            .iter()
            .find(|r| {
                r[col("k")] == run.config.k.to_string()
                    && r[col("method")] == run.config.method.name()
            })
            .unwrap();
        if row[col("runs_done")] == "1" {
            let acc: f64 = row[col("accuracy_mean")].parse().unwrap();
            let last = run.last().unwrap().eval["test_accuracy"];
            assert!((acc - 100.0 * last).abs() < 1e-9, "{name}: {acc} vs {last}");
        }
    }
}
