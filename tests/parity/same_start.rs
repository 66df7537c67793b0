//! Same start, same batches: Table 2 BB trained from given weights and a given batch order
//! (`PARITY_SAME_DIR` with `init.safetensors` and `order.npy`, as `warcraft.py train
//! --init --order` reads them), on the maps of `PARITY_DATA`, writing one CSV row per
//! epoch to `PARITY_SAME_DIR/ours.csv`. Both sides then differ only by rounding: a
//! difference that grows beyond PyTorch's own seed spread is in the training step, one
//! that does not is in the random starts. Long: run by hand with
//! `cargo test --release --test parity same_start -- --ignored --nocapture`.

use crate::fixture::set_tensors;
use imle_paper::warcraft::model::Net;
use imle_paper::warcraft::{Method, PathConfig, PathFinder};
use std::io::Write;
use std::sync::Arc;

#[test]
#[ignore = "a 12-epoch training run; see the module documentation"]
fn same_start() {
    let dir = std::path::PathBuf::from(std::env::var("PARITY_SAME_DIR").expect("PARITY_SAME_DIR"));
    let data_dir = std::env::var("PARITY_DATA").expect("PARITY_DATA");
    let data = Arc::new(imle_paper::data::warcraft::load_from(data_dir.as_ref(), 12).unwrap());
    let mut cfg = PathConfig::paper(Method::Bb, 12);
    cfg.epochs = 12;
    cfg.milestones = PathConfig::drops_for(12);
    let mut pf = PathFinder::new(cfg.clone(), data.clone()).unwrap();
    let bytes = std::fs::read(dir.join("init.safetensors")).unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let init = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let f: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, f)
        })
        .collect();
    match &mut pf.net {
        Net::Costs(m) => set_tensors(m, &init),
        Net::Direct(_) => unreachable!(),
    }
    let order = npyz::NpyFile::new(&std::fs::read(dir.join("order.npy")).unwrap()[..])
        .unwrap()
        .into_vec::<i64>()
        .unwrap();
    let n = order.len() / cfg.epochs;
    let mut out = std::fs::File::create(dir.join("ours.csv")).unwrap();
    writeln!(out, "epoch,lr,train_loss,test_accuracy").unwrap();
    for epoch in 1..=cfg.epochs {
        let lr = cfg.schedule().lr(cfg.adam.lr, epoch);
        let idx: Vec<usize> = order[(epoch - 1) * n..epoch * n]
            .iter()
            .map(|&i| i as usize)
            .collect();
        let mut losses = Vec::new();
        for batch in idx.chunks(cfg.batch) {
            let mut s = pf.gradients(batch, 0).unwrap();
            pf.update(&mut s.grads, lr).unwrap();
            losses.push(s.loss);
        }
        let loss = losses.iter().sum::<f64>() / losses.len() as f64;
        let test = pf.metrics(&data.test, Some(1000)).unwrap().accuracy;
        writeln!(out, "{epoch},{lr},{loss},{test}").unwrap();
        eprintln!("same start, epoch {epoch}: loss {loss:.4}, test accuracy {test:.3}");
    }
}
