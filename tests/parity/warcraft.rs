//! Table 2's cost network (`warcraft::model`), one BB and one I-MLE M-M step, against
//! `scripts/torch_reference/warcraft.py fixture` (K = 12, 6 generated maps).

use crate::fixture::{
    assert_close, gradients, gradients_from, max_rel, set_tensors, tensors, Fixture,
};
use imle::solver::{GridShortestPath, MapSolver};
use imle_paper::data::warcraft::{Split, Warcraft};
use imle_paper::warcraft::model::Net;
use imle_paper::warcraft::{Method, PathConfig, PathFinder};
use std::sync::Arc;

const FILE: &str = "warcraft_step.safetensors";

fn data(fx: &Fixture) -> Arc<Warcraft> {
    let (k, b): (usize, usize) = (fx.meta("k"), fx.meta("batch"));
    let split = Split {
        n: b,
        k,
        px: 8 * k,
        maps: fx.u8["maps"].1.clone(),
        weights: vec![1.0; b * k * k],
        paths: fx.get("paths").to_vec(),
    };
    Arc::new(Warcraft {
        dir: "fixture".into(),
        k,
        train: split.clone(),
        val: split.clone(),
        test: split,
        checksum: String::new(),
    })
}

fn finder(fx: &Fixture, method: Method) -> PathFinder {
    let k: usize = fx.meta("k");
    let mut pf = PathFinder::new(PathConfig::paper(method, k), data(fx)).unwrap();
    let (m, s) = (fx.get("mean"), fx.get("std"));
    pf.norm = ([m[0], m[1], m[2]], [s[0], s[1], s[2]]);
    match &mut pf.net {
        Net::Costs(net) => set_tensors(net, &fx.under("init")),
        Net::Direct(_) => unreachable!(),
    }
    pf
}

fn trunk(pf: &PathFinder) -> &imle_paper::warcraft::model::Trunk {
    match &pf.net {
        Net::Costs(m) => m,
        Net::Direct(_) => unreachable!(),
    }
}

/// Our Dijkstra on PyTorch's costs gives PyTorch's (scipy's) path.
fn same_paths(costs: &[f32], paths: &[f32], k: usize, what: &str) {
    let theta: Vec<f32> = costs.iter().map(|c| -c).collect();
    let mut z = vec![0.0; costs.len()];
    GridShortestPath::new(k)
        .shift_negative_costs()
        .solve_batch(&theta, k * k, &mut z)
        .unwrap();
    assert_eq!(z, paths, "{what}: our shortest paths differ from scipy's");
}

fn step(method: Method, tag: &str) {
    let fx = Fixture::load(FILE);
    let (k, b): (usize, usize) = (fx.meta("k"), fx.meta("batch"));
    let lr: f64 = fx.meta("lr");
    let batch: Vec<usize> = (0..b).collect();
    let get = |name: &str| fx.get(&format!("{tag}/{name}"));

    // Forward (train mode), the solver's paths, the loss.
    let mut pf = finder(&fx, method);
    let s = pf.gradients(&batch, 0).unwrap();
    assert_close(&format!("{tag} costs"), &s.out, get("costs"), 1e-4, 1e-5);
    same_paths(get("costs"), get("path"), k, &format!("{tag} forward"));
    assert!((s.loss as f32 - get("loss")[0]).abs() <= 1e-5 * get("loss")[0].abs());

    // The target the estimator solves: w' = alpha w + lambda dL/dz (PyTorch's).
    let (lambda, alpha) = if method == Method::Bb {
        (20.0, 1.0)
    } else {
        (50.0, 0.0)
    };
    let target: Vec<f32> = get("costs")
        .iter()
        .zip(fx.get("paths"))
        .map(|(&w, &t)| alpha * w + lambda * (1.0 - 2.0 * t) / b as f32)
        .collect();
    same_paths(&target, get("target_path"), k, &format!("{tag} target"));

    // The gradient of every parameter, and the running statistics after the step.
    let ours = gradients(trunk(&pf), &s.grads);
    let theirs = fx.under(&format!("{tag}/grad"));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (name, g) in &ours {
        assert_close(&format!("{tag} d/d{name}"), g, &theirs[name], 1e-4, 1e-5);
        eprintln!(
            "{tag} d/d{name}: max rel. difference {:.2e}",
            max_rel(g, &theirs[name])
        );
    }
    let after = fx.under(&format!("{tag}/after"));
    for (name, v) in tensors(trunk(&pf))
        .iter()
        .filter(|(n, _)| n.contains("running"))
    {
        assert_close(&format!("{tag} {name}"), v, &after[name], 1e-5, 1e-6);
    }

    // Adam from the same weights with PyTorch's gradients gives PyTorch's weights.
    let mut pf = finder(&fx, method);
    let mut g = gradients_from(trunk(&pf), &theirs);
    pf.update(&mut g, lr).unwrap();
    for (name, v) in tensors(trunk(&pf))
        .iter()
        .filter(|(n, _)| theirs.contains_key(*n))
    {
        assert_close(
            &format!("{tag} {name} after Adam"),
            v,
            &after[name],
            1e-6,
            1e-7,
        );
    }

    // Eval mode with the stepped weights and running statistics.
    let mut pf = finder(&fx, method);
    match &mut pf.net {
        Net::Costs(m) => set_tensors(m, &after),
        Net::Direct(_) => unreachable!(),
    }
    let (costs, _) = pf.predict(&pf.data.train.clone(), &batch).unwrap();
    assert_close(
        &format!("{tag} eval costs"),
        &costs,
        get("eval_costs"),
        1e-4,
        1e-5,
    );
}

#[test]
fn blackbox_step_equals_pytorch() {
    step(Method::Bb, "bb");
}

#[test]
fn imle_map_map_step_equals_pytorch() {
    step(Method::ImleMm, "imle-mm");
}

#[test]
fn several_blackbox_steps_equal_pytorch() {
    // Eight BB steps on rotating halves of the batch: the losses of every step and the
    // weights and running statistics after the last (Adam's later steps, the statistics
    // accumulating, nothing else carried between steps).
    let fx = Fixture::load(FILE);
    let b: usize = fx.meta("batch");
    let lr: f64 = fx.meta("lr");
    let mut pf = finder(&fx, Method::Bb);
    let theirs = fx.get("multi/losses");
    for (step, &want) in theirs.iter().enumerate() {
        let batch: Vec<usize> = (0..b / 2).map(|i| (i + step * (b / 2)) % b).collect();
        let mut s = pf.gradients(&batch, step as u64).unwrap();
        assert!(
            (s.loss as f32 - want).abs() <= 1e-4 * want.abs().max(1.0),
            "step {step}: loss {} here, {want} in PyTorch",
            s.loss
        );
        pf.update(&mut s.grads, lr).unwrap();
    }
    // Element by element the weights cannot agree after several Adam steps: an entry whose
    // gradient is rounding-level (~1e-9) still moves by ±lr, its sign set by the rounding.
    // Compared instead: the change from the initial weights, in relative L2 norm.
    let (after, init) = (fx.under("multi/after"), fx.under("init"));
    for (name, v) in tensors(trunk(&pf)) {
        let (w0, w1) = (&init[&name], &after[&name]);
        let (mut diff, mut norm) = (0f64, 0f64);
        for ((a, b), c) in v.iter().zip(w1).zip(w0) {
            diff += ((a - b) as f64).powi(2);
            norm += ((b - c) as f64).powi(2);
        }
        let rel = (diff / norm.max(1e-30)).sqrt();
        eprintln!(
            "after {} BB steps, {name}: |Δours - Δtorch| / |Δtorch| = {rel:.2e}",
            theirs.len()
        );
        assert!(
            rel < 0.1,
            "{name}: the change differs by {rel:.2e} of its norm"
        );
    }
}
