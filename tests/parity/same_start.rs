//! Same start, same batches: a training run from given weights and a given batch order,
//! read from `PARITY_SAME_DIR` (as the PyTorch reference wrote them), one CSV row per epoch
//! to `PARITY_SAME_DIR/ours.csv` (`ours-noise<seed>.csv` with our own noise). Both sides then differ only by rounding (and, where the
//! reference did not record its noise, by the noise): a difference that grows beyond
//! PyTorch's own seed spread is in the training step, one that does not is in the random
//! starts. Long: run by hand, `cargo test --release --test parity same_start -- --ignored
//! --nocapture`, with `PARITY_DATA` the data folder.
//!
//! - `warcraft_same_start`: Table 2 BB, 12 epochs (`warcraft.py train --init --order`:
//!   `init.safetensors`, `order.npy`), its own noise-free BB steps.
//! - `explain_same_start`: Table 1 with `PARITY_METHOD` (softsub, l2x or imle-sog), k = 10,
//!   maxlen 150, dropout off, the noise PyTorch drew (`l2x.py train --same-start DIR`:
//!   `init.safetensors`, `order.npy`, `noise.npy`): the runs are the same up to rounding.
//!   `PARITY_NOISE=ours` (and `PARITY_NOISE_SEED`) draws our own noise instead, to see what
//!   the noise alone changes.

use crate::fixture::{set_tensors, Fixture};
use dfdx::prelude::*;
use imle_paper::explain::model::{predict, selector_logits};
use imle_paper::explain::{ExplainConfig, Explainer, Method};
use imle_paper::spec::Built;
use imle_paper::warcraft::model::Net;
use imle_paper::warcraft::{PathConfig, PathFinder};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// `PARITY_SAME_DIR`, `PARITY_DATA`, the initial weights by name and the batch order of
/// every epoch.
struct SameStart {
    dir: PathBuf,
    data: PathBuf,
    init: std::collections::BTreeMap<String, Vec<f32>>,
    order: Vec<usize>,
}

impl SameStart {
    fn from_env() -> Self {
        let dir = PathBuf::from(std::env::var("PARITY_SAME_DIR").expect("PARITY_SAME_DIR"));
        let data = PathBuf::from(std::env::var("PARITY_DATA").expect("PARITY_DATA"));
        let init = Fixture::load_path(dir.join("init.safetensors").to_str().unwrap()).values();
        let order = npyz::NpyFile::new(&std::fs::read(dir.join("order.npy")).unwrap()[..])
            .unwrap()
            .into_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|i| i as usize)
            .collect();
        Self {
            dir,
            data,
            init,
            order,
        }
    }

    /// The batch order of `epoch` (from 1) of `epochs`.
    fn epoch(&self, epoch: usize, epochs: usize) -> &[usize] {
        let n = self.order.len() / epochs;
        &self.order[(epoch - 1) * n..epoch * n]
    }

    fn csv(&self, name: &str, header: &str) -> std::fs::File {
        let mut out = std::fs::File::create(self.dir.join(name)).unwrap();
        writeln!(out, "{header}").unwrap();
        out
    }
}

#[test]
#[ignore = "a 12-epoch training run; see the module documentation"]
fn warcraft_same_start() {
    let s = SameStart::from_env();
    let data = Arc::new(imle_paper::data::warcraft::load_from(&s.data, 12).unwrap());
    let mut cfg = PathConfig::paper(imle_paper::warcraft::Method::Bb, 12);
    cfg.epochs = 12;
    cfg.milestones = PathConfig::drops_for(12);
    let mut pf = PathFinder::new(cfg.clone(), data.clone()).unwrap();
    match &mut pf.net {
        Net::Costs(m) => set_tensors(m, &s.init),
        Net::Direct(_) => unreachable!(),
    }
    let mut out = s.csv("ours.csv", "epoch,lr,train_loss,test_accuracy");
    for epoch in 1..=cfg.epochs {
        let lr = cfg.schedule().lr(cfg.adam.lr, epoch);
        let mut losses = Vec::new();
        for batch in s.epoch(epoch, cfg.epochs).chunks(cfg.batch) {
            let mut st = pf.gradients(batch, 0).unwrap();
            pf.update(&mut st.grads, lr).unwrap();
            losses.push(st.loss);
        }
        let loss = losses.iter().sum::<f64>() / losses.len() as f64;
        let test = pf.metrics(&data.test, Some(1000)).unwrap().accuracy;
        writeln!(out, "{epoch},{lr},{loss},{test}").unwrap();
        eprintln!("same start, epoch {epoch}: loss {loss:.4}, test accuracy {test:.3}");
    }
}

#[test]
#[ignore = "a Table 1 training run; see the module documentation"]
fn explain_same_start() {
    let s = SameStart::from_env();
    let method = std::env::var("PARITY_METHOD").unwrap_or_else(|_| "softsub".into());
    let method = Method::parse(&method).expect("PARITY_METHOD: softsub, l2x or imle-sog");
    let (k, maxlen) = (10, 150);
    let data = Arc::new(imle_paper::data::beer::load_from(&s.data, maxlen).unwrap());
    let mut cfg = ExplainConfig::paper(method, k, maxlen);
    cfg.dropout = 0.0;
    let n = data.train.len();
    let epochs = s.order.len() / n;
    let mut ex = Explainer::new(cfg.clone(), data.clone()).unwrap();
    set_tensors(&mut ex.model, &s.init);
    let noise = npyz::NpyFile::new(&std::fs::read(s.dir.join("noise.npy")).unwrap()[..])
        .unwrap()
        .into_vec::<f32>()
        .unwrap();
    // PARITY_NOISE=ours: our own draws instead of PyTorch's (isolates the noise).
    let own_noise = std::env::var("PARITY_NOISE").is_ok_and(|v| v == "ours");
    let noise_seed: u64 = std::env::var("PARITY_NOISE_SEED").map_or(0, |v| v.parse().unwrap());
    let per_entry = if method == Method::L2x { k } else { 1 };
    let mut used = 0;
    let all_held: Vec<usize> = (0..data.heldout.len()).collect();
    let name = match own_noise {
        true => format!("ours-noise{noise_seed}.csv"),
        false => "ours.csv".into(),
    };
    let mut out = s.csv(&name, "epoch,train_mse,heldout_mse,precision");
    for epoch in 1..=epochs {
        let mut losses = Vec::new();
        for batch in s.epoch(epoch, epochs).chunks(cfg.batch) {
            let x = ex.embed(&data.train, batch);
            let y: Vec<f32> = batch.iter().map(|&i| data.train.y[i]).collect();
            let y = Cpu::default().tensor_from_vec(y, (batch.len(), Const::<1>));
            let take = batch.len() * maxlen * per_entry;
            let g = noise[used..used + take].to_vec();
            used += take;
            let theta = selector_logits(&ex.model, x.clone().traced(ex.model.alloc_grads()), None);
            let z = match (&ex.estimator, own_noise) {
                (op, true) => op.apply_seeded(theta, noise_seed + used as u64),
                (Built::SoftSub(op), _) => op.apply_with_noise(theta, g).map_err(Into::into),
                (Built::L2x(op), _) => op.apply_with_noise(theta, g).map_err(Into::into),
                (Built::Imle(op), _) => op.apply_with_noise(theta, g).map_err(Into::into),
                _ => unreachable!("the methods of this test"),
            }
            .unwrap();
            let loss = mse_loss(predict(&ex.model, &x, z, k), y);
            losses.push(loss.array() as f64);
            let mut grads = loss.backward();
            ex.optimiser
                .update(&mut ex.model, &mut grads, cfg.adam.lr)
                .unwrap();
        }
        let train = losses.iter().sum::<f64>() / losses.len() as f64;
        let held = ex.mse(&data.heldout, &all_held).unwrap();
        let precision = ex.precision().unwrap();
        writeln!(out, "{epoch},{train},{held},{precision}").unwrap();
        eprintln!("same start, epoch {epoch}: mse {train:.5}, held-out {held:.5}, precision {precision:.3}");
    }
    assert_eq!(used, noise.len(), "every recorded draw used once");
}
