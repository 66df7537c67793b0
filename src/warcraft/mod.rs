//! Shortest paths on Warcraft terrain maps (Sec. 6, Table 2; Pogančić et al. 2020): a
//! network reads the map image and predicts one cost per cell, Dijkstra finds the cheapest
//! top-left to bottom-right path on those costs, and the loss compares that path with the
//! true one; the estimators (BB, I-MLE, DPO, ...) differentiate through the solver. The
//! protocol is the official code's (tf-imle, `WARCRAFT/`): Hamming loss, Adam
//! lr 5e-4 ×0.1 after epochs 30 and 40, 50 epochs, batch 70, inputs normalised per channel
//! with training-set statistics, accuracy = share of test maps whose predicted path costs
//! (in true costs) the optimum.
//!
//! * [`model`] — the ResNet18-stem networks;
//! * [`Method`] — the rows of Table 2 and their estimators and losses;
//! * [`PathFinder`] — a run as a [`crate::train::Learner`];
//! * [`path_metrics`] — accuracy, exact match, validity and regret.
//!
//! Sign convention: the library's solvers maximise `<z, θ>`, so θ = −costs, and the
//! targets' costs follow (`w' = w + λ·∂L/∂z` is `θ' = θ − λ·∂L/∂z`). Negative costs are
//! shifted away per instance in noiseless runs (the official `translate_weights` of the
//! targets) and clamped at 0 in runs that perturb ([`NegativeCostPolicy`]).

mod config;
mod metrics;
pub mod model;

pub use config::{LossKind, Method, NegativeCostPolicy, PathConfig};
pub use metrics::{channel_stats, is_valid_path, path_metrics, PathMetrics};

use crate::data::warcraft::{Split, Warcraft};
use crate::spec::{Built, EstimatorSpec, NoiseSpec, TargetSpec};
use crate::train::{
    tags, AdamHyper, Checkpoint, Learner, Metrics, Optimiser, OptimiserConfig, Step,
};
use anyhow::{bail, Context, Result};
use dfdx::prelude::*;
use imle::loss::FenchelYoung;
use imle::solver::{GridShortestPath, MapSolver};
use model::{Images, Net, PerCell};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One training run: the network, Adam, the estimator and the data.
pub struct PathFinder {
    /// Its configuration.
    pub cfg: PathConfig,
    /// The network.
    pub net: Net,
    /// Adam.
    pub optimiser: Optimiser,
    /// The estimator through the training solver (None: the direct baseline).
    pub estimator: Option<Built<GridShortestPath>>,
    /// The data.
    pub data: Arc<Warcraft>,
    /// Per-channel mean and std of the training images.
    pub norm: ([f32; 3], [f32; 3]),
    dev: Cpu,
}

/// Maps per evaluation batch.
const EVAL_BATCH: usize = 100;

impl PathFinder {
    /// A fresh run.
    pub fn new(cfg: PathConfig, data: Arc<Warcraft>) -> Result<Self> {
        if cfg.batch == 0 || cfg.k < 2 {
            bail!("the batch size must be at least 1 and K at least 2");
        }
        if data.k != cfg.k {
            bail!(
                "the data are {0}x{0} grids, the run needs {1}x{1}",
                data.k,
                cfg.k
            );
        }
        if data.train.px != crate::data::warcraft::CELL_PX * cfg.k {
            bail!(
                "the images are {0}x{0} px; the network expects 8 px per cell ({1}x{1})",
                data.train.px,
                crate::data::warcraft::CELL_PX * cfg.k
            );
        }
        if cfg.spec.is_none() != (cfg.method == Method::Resnet) {
            bail!(
                "{} needs {} estimator",
                cfg.method.name(),
                if cfg.method == Method::Resnet {
                    "no"
                } else {
                    "an"
                }
            );
        }
        let solver = cfg.negative_costs.solver(cfg.k);
        let estimator = cfg
            .spec
            .as_ref()
            .map(|s| s.build(solver, cfg.k))
            .transpose()?;
        if matches!(estimator, Some(Built::Dpo(_))) != (cfg.method.loss() == LossKind::FenchelYoung)
        {
            bail!("the Fenchel-Young loss needs the dpo estimator and dpo needs it");
        }
        let net = Net::new(
            cfg.method == Method::Resnet,
            crate::run::tag_seed(cfg.seed, tags::INIT),
        );
        let norm = channel_stats(&data.train);
        Ok(Self {
            optimiser: Optimiser::new(OptimiserConfig::Adam(cfg.adam)),
            cfg,
            net,
            estimator,
            data,
            norm,
            dev: Cpu::default(),
        })
    }

    /// Maps `idx` of `split` as normalised images, channels first.
    pub fn images(&self, split: &Split, idx: &[usize]) -> Images {
        let px = split.px;
        let (mean, std) = self.norm;
        let mut out = vec![0.0f32; idx.len() * 3 * px * px];
        out.par_chunks_mut(3 * px * px)
            .zip(idx)
            .for_each(|(o, &i)| {
                let m = split.map_of(i);
                for (p, rgb) in m.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        o[c * px * px + p] = (rgb[c] as f32 - mean[c]) / std[c];
                    }
                }
            });
        self.dev
            .tensor_from_vec(out, (idx.len(), Const::<3>, px, px))
    }

    fn rows(&self, values: Vec<f32>, b: usize) -> PerCell {
        let kk = self.cfg.k * self.cfg.k;
        self.dev.tensor_from_vec(values, (b, kk))
    }

    /// The test-time prediction for maps `idx` of `split`: `(costs or logits, path)`,
    /// row-major `(maps, K K)`; the path is Dijkstra's on the predicted costs, or the
    /// cells with a positive logit for the baseline.
    pub fn predict(&self, split: &Split, idx: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
        let kk = self.cfg.k * self.cfg.k;
        let (mut out, mut paths) = (
            Vec::with_capacity(idx.len() * kk),
            Vec::with_capacity(idx.len() * kk),
        );
        for chunk in idx.chunks(EVAL_BATCH) {
            let y = self.net.forward_eval(self.images(split, chunk)).as_vec();
            let z = match self.net.is_direct() {
                true => y.iter().map(|&l| (l > 0.0) as u8 as f32).collect(),
                false => {
                    let theta: Vec<f32> = y.iter().map(|w| -w).collect();
                    let mut z = vec![0.0; y.len()];
                    GridShortestPath::new(self.cfg.k).solve_batch(&theta, kk, &mut z)?;
                    z
                }
            };
            out.extend(y);
            paths.extend(z);
        }
        Ok((out, paths))
    }

    /// [`path_metrics`] of the test-time predictions for the first `n` maps of `split`.
    pub fn metrics(&self, split: &Split, n: Option<usize>) -> Result<PathMetrics> {
        let idx: Vec<usize> = (0..n.map_or(split.n, |n| n.min(split.n))).collect();
        let (_, z) = self.predict(split, &idx)?;
        Ok(path_metrics(&z, split, &idx))
    }

    /// Replaces the network's weights with those of checkpoint `ck`.
    pub fn model_from(&mut self, ck: &Checkpoint) -> Result<()> {
        match &mut self.net {
            Net::Costs(m) => ck.take_model("model", m),
            Net::Direct(m) => ck.take_model("model", m),
        }
        .map_err(anyhow::Error::msg)
    }

    fn loss(
        &self,
        out: PerCell<OwnedTape<f32, Cpu>>,
        batch: &[usize],
        seed: u64,
    ) -> Result<Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>> {
        let split = &self.data.train;
        let b = batch.len();
        let gather = |f: fn(&Split, usize) -> &[f32]| -> Vec<f32> {
            batch
                .iter()
                .flat_map(|&i| f(split, i).iter().copied())
                .collect()
        };
        let t = gather(Split::path_of);
        let kind = self.cfg.method.loss();
        if kind == LossKind::Bce {
            return Ok(binary_cross_entropy_with_logits_loss(out, self.rows(t, b)));
        }
        let theta = out.negate();
        let estimator = self.estimator.as_ref().context("no estimator")?;
        if let (LossKind::FenchelYoung, Built::Dpo(p)) = (kind, estimator) {
            let fy = FenchelYoung::new(imle::Estimator::seed(p.clone(), seed));
            return Ok(fy.loss(theta, &self.rows(t, b))?.mean());
        }
        let z = estimator.apply_seeded(theta, seed)?;
        Ok(match kind {
            LossKind::Regret => {
                let c = gather(Split::weights_of);
                let opt: f32 = c.iter().zip(&t).map(|(a, b)| a * b).sum();
                (z * self.rows(c, b)).sum::<Rank0, _>() - opt
            }
            _ => {
                let ones: f32 = t.iter().sum();
                let w: Vec<f32> = t.iter().map(|t| 1.0 - 2.0 * t).collect();
                ((z * self.rows(w, b)).sum::<Rank0, _>() + ones) / b as f32
            }
        })
    }

    fn train_rows(&self) -> usize {
        self.cfg
            .train_subset
            .map_or(self.data.train.n, |n| n.min(self.data.train.n))
    }
}

/// What one training step computes before the update: the loss, the network's output
/// (costs or logits, `(batch, K K)`) and the gradient of every parameter.
pub struct StepGradients {
    /// The batch's loss.
    pub loss: f64,
    /// The network's output.
    pub out: Vec<f32>,
    /// The parameters' gradients.
    pub grads: Gradients<f32, Cpu>,
}

impl PathFinder {
    /// Forward (train mode: the batch-norm running statistics are updated), loss and
    /// backward on training maps `batch`, with the estimator's noise from `seed`.
    pub fn gradients(&mut self, batch: &[usize], seed: u64) -> Result<StepGradients> {
        let x = self.images(&self.data.train, batch);
        let grads = match &self.net {
            Net::Costs(m) => m.alloc_grads(),
            Net::Direct(m) => m.alloc_grads(),
        };
        let out = self.net.forward_train(x.traced(grads));
        let values = out.as_vec();
        let loss = self.loss(out, batch, seed)?;
        let value = loss.array() as f64;
        if !value.is_finite() {
            bail!("the training loss is {value} (diverged)");
        }
        let grads = match loss.try_backward() {
            Ok(g) => g,
            Err(e) => {
                return Err(
                    match self.estimator.as_ref().and_then(Built::take_backward_error) {
                        Some(err) => anyhow::Error::new(err),
                        None => anyhow::anyhow!("backward pass failed: {e:?}"),
                    },
                )
            }
        };
        Ok(StepGradients {
            loss: value,
            out: values,
            grads,
        })
    }

    /// One optimiser update of the network with `grads` at learning rate `lr`.
    pub fn update(&mut self, grads: &mut Gradients<f32, Cpu>, lr: f64) -> Result<()> {
        match &mut self.net {
            Net::Costs(m) => self.optimiser.update(m, grads, lr),
            Net::Direct(m) => self.optimiser.update(m, grads, lr),
        }
        .map_err(|e| anyhow::anyhow!("optimiser update failed: {e:?}"))
    }
}

impl Learner for PathFinder {
    fn train_len(&self) -> usize {
        self.train_rows()
    }

    fn train_step(&mut self, step: Step) -> Result<Metrics> {
        let mut s = self.gradients(step.batch, step.seed)?;
        self.update(&mut s.grads, step.lr)?;
        Ok(Metrics::from([("loss".to_string(), s.loss)]))
    }

    fn evaluate(&mut self, _epoch: usize) -> Result<Metrics> {
        let n = self.cfg.eval_subset;
        let val = self.metrics(&self.data.val, n)?;
        let test = self.metrics(&self.data.test, n)?;
        Ok(Metrics::from([
            ("val_accuracy".to_string(), val.accuracy),
            ("val_exact".to_string(), val.exact),
            ("val_regret".to_string(), val.regret),
            ("test_accuracy".to_string(), test.accuracy),
            ("test_exact".to_string(), test.exact),
            ("test_valid".to_string(), test.valid),
            ("test_regret".to_string(), test.regret),
        ]))
    }

    fn save(&self, ck: &mut Checkpoint) -> Result<()> {
        let adaptive = self.estimator.as_ref().and_then(Built::adaptive_state);
        match &self.net {
            Net::Costs(m) => ck.put_run(m, &self.optimiser, adaptive),
            Net::Direct(m) => ck.put_run(m, &self.optimiser, adaptive),
        }
        Ok(())
    }

    fn load(&mut self, ck: &Checkpoint) -> Result<()> {
        let adaptive = match &mut self.net {
            Net::Costs(m) => ck.take_run(m, &mut self.optimiser)?,
            Net::Direct(m) => ck.take_run(m, &mut self.optimiser)?,
        };
        if let Some(e) = &self.estimator {
            e.restore_adaptive_state(adaptive)?;
        }
        Ok(())
    }
}
