//! Training: one loop for every experiment that trains a model.
//!
//! A [`Learner`] knows its model and data: one optimisation step on a batch, one
//! evaluation, and how to save and restore its state in a [`Checkpoint`]. The
//! [`Trainer`] runs epochs of seeded, shuffled batches with a learning-rate schedule,
//! averages the step metrics, evaluates, records an [`EpochRecord`] (named metrics,
//! wall time, thread count), shows a progress bar (indicatif) and, with a checkpoint
//! path, writes a checkpoint after every epoch and resumes from it: a killed run
//! started again continues after its last finished epoch and gives the same numbers as
//! an uninterrupted one. [`optim`] has the optimisers (any dfdx model).
//!
//! Seeds: the shuffle of epoch `e` is [`crate::run::stream_seed`]`(seed, SHUFFLE, e, 0)`,
//! the noise of step `i` of epoch `e` `stream_seed(seed, STEP, e, i)`; learners derive
//! their other streams ([`tags`]) the same way.

pub mod checkpoint;
pub mod init;
pub mod optim;

pub use checkpoint::{Checkpoint, CheckpointError, RunStamp};
pub use optim::{AdamHyper, Optimiser, OptimiserConfig};

use crate::run::{log_line, progress_bar, stream_seed};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Stream tags of [`crate::run::stream_seed`] used by training runs.
pub mod tags {
    /// Weight initialisation.
    pub const INIT: u64 = 1;
    /// The shuffle of each epoch.
    pub const SHUFFLE: u64 = 2;
    /// The noise of each training step.
    pub const STEP: u64 = 3;
    /// The noise of each evaluation batch.
    pub const EVAL: u64 = 4;
    /// The dropout masks of each training step.
    pub const DROPOUT: u64 = 5;
    /// Data splits (e.g. a validation/test split per run).
    pub const SPLIT: u64 = 6;
}

/// What a checkpoint keeps of an estimator: its seed and call counter (call `n` draws
/// with `call_seed(seed, n)`) and, for adaptive I-MLE, `(β, running non-zero fraction)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorState {
    /// The seed.
    pub seed: u64,
    /// Calls made.
    pub calls: u64,
    /// AIMLE's state, if adaptive.
    pub adaptive: Option<(f32, Option<f32>)>,
}

impl EstimatorState {
    /// The state of `e` (`adaptive` from the estimator's target, if any).
    pub fn of<E: imle::Estimator>(e: &E, adaptive: Option<(f32, Option<f32>)>) -> Self {
        Self {
            seed: e.state().seed(),
            calls: e.state().calls(),
            adaptive,
        }
    }

    /// Continues `e`'s random sequence where the checkpointed one stopped.
    pub fn restore_into<E: imle::Estimator>(&self, e: &mut E) {
        e.state_mut().reseed(self.seed);
        e.state().set_calls(self.calls);
    }
}

/// Named metrics (sorted by name).
pub type Metrics = BTreeMap<String, f64>;

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// The learning rate of the epoch.
    pub lr: f64,
    /// The mean over the epoch's batches of each training-step metric.
    pub train: Metrics,
    /// The evaluation after the epoch.
    pub eval: Metrics,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// Seconds spent evaluating.
    pub eval_seconds: f64,
    /// Rayon threads of the process that ran the epoch (results do not depend on it).
    pub threads: usize,
}

impl EpochRecord {
    /// A training metric (NaN if absent).
    pub fn train(&self, name: &str) -> f64 {
        self.train.get(name).copied().unwrap_or(f64::NAN)
    }
    /// An evaluation metric (NaN if absent).
    pub fn eval(&self, name: &str) -> f64 {
        self.eval.get(name).copied().unwrap_or(f64::NAN)
    }
}

/// Learning rate as a function of the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// The base rate times `gamma` for every milestone passed: epoch `e` (from 1) uses
    /// `gamma^#{m : e > m}` (PyTorch's `MultiStepLR` stepped once per epoch; the
    /// Warcraft protocol's ×0.1 at epochs 30 and 40 is `milestones = [30, 40]`).
    StepDecay {
        /// Epochs after which the rate drops.
        milestones: Vec<usize>,
        /// The factor of each drop.
        gamma: f64,
    },
}

impl LrSchedule {
    /// The learning rate of epoch `epoch` (from 1) for base rate `base`.
    pub fn lr(&self, base: f64, epoch: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::StepDecay { milestones, gamma } => {
                let n = milestones.iter().filter(|&&m| epoch > m).count();
                base * gamma.powi(n as i32)
            }
        }
    }
}

/// One training step's inputs.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Step within the epoch, from 0.
    pub index: usize,
    /// The batch: indices into the training set.
    pub batch: &'a [usize],
    /// The learning rate.
    pub lr: f64,
    /// The seed of the step's noise.
    pub seed: u64,
}

/// A model with its data, optimiser and estimators, trained by a [`Trainer`].
pub trait Learner {
    /// The number of training examples (the batches are drawn from `0..train_len()`).
    fn train_len(&self) -> usize;
    /// One optimisation step; returns the step's metrics (averaged over the epoch).
    fn train_step(&mut self, step: Step) -> Result<Metrics>;
    /// Evaluates after epoch `epoch` (from 1; 0 before training).
    fn evaluate(&mut self, epoch: usize) -> Result<Metrics>;
    /// Adds the model, optimiser and estimator state to `ck`.
    fn save(&self, ck: &mut Checkpoint) -> Result<()>;
    /// Restores what [`Learner::save`] wrote.
    fn load(&mut self, ck: &Checkpoint) -> Result<()>;
}

/// Runs epochs of batches: see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Trainer {
    /// Number of epochs to reach.
    pub epochs: usize,
    /// Batch size (the last batch of an epoch may be smaller).
    pub batch: usize,
    /// The run's seed.
    pub seed: u64,
    /// The base learning rate.
    pub lr: f64,
    /// Its schedule.
    pub schedule: LrSchedule,
    /// Checkpoint file (written after every epoch, resumed from if present).
    pub checkpoint: Option<PathBuf>,
    /// What identifies the run in its checkpoints.
    pub stamp: RunStamp,
    /// Label of the progress bar and log lines.
    pub label: String,
    /// Show a progress bar.
    pub progress: bool,
    /// Print a line per epoch (the line saying which checkpoint and epoch a run resumes
    /// from is always printed).
    pub verbose: bool,
    /// Keep a copy of the checkpoint of the best epoch (needs `checkpoint`).
    pub keep_best: Option<KeepBest>,
}

/// Which epoch's checkpoint a run keeps beside its latest: the one with the lowest (or
/// highest) value of an evaluation metric so far, copied to `path` after that epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepBest {
    /// Where the best epoch's checkpoint is copied.
    pub path: PathBuf,
    /// The evaluation metric compared.
    pub metric: String,
    /// Higher is better (else lower).
    pub maximise: bool,
}

impl KeepBest {
    /// Whether `value` beats `best`.
    fn beats(&self, value: f64, best: f64) -> bool {
        value.is_finite()
            && if self.maximise {
                value > best
            } else {
                value < best
            }
    }

    /// The metric's value in the kept checkpoint (the worst possible if there is none).
    fn current(&self) -> Result<f64> {
        let worst = if self.maximise {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        if !self.path.exists() {
            return Ok(worst);
        }
        Ok(Checkpoint::load(&self.path)?
            .header
            .history
            .last()
            .map_or(worst, |r| r.eval(&self.metric)))
    }
}

impl Trainer {
    /// A trainer for `epochs` epochs of batches of `batch`, without checkpoints,
    /// progress bar or log lines.
    pub fn new(stamp: RunStamp, epochs: usize, batch: usize, seed: u64, lr: f64) -> Self {
        Self {
            epochs,
            batch,
            seed,
            lr,
            schedule: LrSchedule::Constant,
            checkpoint: None,
            label: stamp.experiment.clone(),
            stamp,
            progress: false,
            verbose: false,
            keep_best: None,
        }
    }

    /// Trains `learner` until `epochs` epochs are done; returns every epoch's record.
    /// `history` holds the epochs the learner has already done in this process (empty
    /// for a fresh one); a checkpoint, if there is one, replaces both the learner's state
    /// and `history`. `on_epoch` sees each new record after its checkpoint is written.
    pub fn fit<L: Learner>(
        &self,
        learner: &mut L,
        mut history: Vec<EpochRecord>,
        mut on_epoch: impl FnMut(&EpochRecord),
    ) -> Result<Vec<EpochRecord>> {
        if self.batch == 0 {
            bail!("the batch size must be at least 1");
        }
        let n = learner.train_len();
        if n == 0 {
            bail!("the training set is empty");
        }
        let per_epoch = n.div_ceil(self.batch) as u64;
        let pb = progress_bar(self.progress, per_epoch * self.epochs as u64, &self.label);
        if let Some(path) = self.checkpoint.as_ref().filter(|p| p.exists()) {
            let ck = Checkpoint::load(path)?;
            ck.check_stamp(&self.stamp, path)?;
            learner
                .load(&ck)
                .with_context(|| format!("restoring {}", path.display()))?;
            history = ck.header.history;
            log_line(
                &pb,
                &format!(
                    "{:>14}: resuming {} after epoch {} of {}",
                    self.label,
                    path.display(),
                    history.len(),
                    self.epochs
                ),
            );
        }
        pb.set_position(per_epoch * history.len().min(self.epochs) as u64);
        if self.keep_best.is_some() && self.checkpoint.is_none() {
            bail!("keeping the best epoch needs a checkpoint path");
        }
        let mut best = self.keep_best.as_ref().map(KeepBest::current).transpose()?;
        while history.len() < self.epochs {
            let epoch = history.len() + 1;
            let lr = self.schedule.lr(self.lr, epoch);
            let t0 = Instant::now();
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(stream_seed(
                self.seed,
                tags::SHUFFLE,
                epoch,
                0,
            )));
            let mut steps = Vec::with_capacity(per_epoch as usize);
            for (index, batch) in order.chunks(self.batch).enumerate() {
                let step = Step {
                    epoch,
                    index,
                    batch,
                    lr,
                    seed: stream_seed(self.seed, tags::STEP, epoch, index),
                };
                steps.push(
                    learner
                        .train_step(step)
                        .with_context(|| format!("epoch {epoch}, batch {index}"))?,
                );
                pb.inc(1);
            }
            let t1 = Instant::now();
            let eval = learner
                .evaluate(epoch)
                .with_context(|| format!("evaluating after epoch {epoch}"))?;
            let rec = EpochRecord {
                epoch,
                lr,
                train: mean_metrics(&steps),
                eval,
                train_seconds: (t1 - t0).as_secs_f64(),
                eval_seconds: t1.elapsed().as_secs_f64(),
                threads: rayon::current_num_threads(),
            };
            history.push(rec);
            if let Some(path) = &self.checkpoint {
                let mut ck = Checkpoint::new(self.stamp.clone(), history.clone());
                learner.save(&mut ck)?;
                ck.save(path)?;
                if let (Some(keep), Some(b)) = (&self.keep_best, best.as_mut()) {
                    let v = history.last().expect("just pushed").eval(&keep.metric);
                    if keep.beats(v, *b) {
                        *b = v;
                        std::fs::copy(path, &keep.path)
                            .with_context(|| format!("keeping {}", keep.path.display()))?;
                    }
                }
            }
            let rec = history.last().expect("just pushed");
            if self.verbose {
                log_line(&pb, &self.epoch_line(rec));
            }
            on_epoch(rec);
        }
        pb.finish_and_clear();
        Ok(history)
    }

    fn epoch_line(&self, r: &EpochRecord) -> String {
        let show = |m: &Metrics| {
            m.iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} epoch {}/{}: train {} | eval {} ({:.1} + {:.1} s)",
            self.label,
            r.epoch,
            self.epochs,
            show(&r.train),
            show(&r.eval),
            r.train_seconds,
            r.eval_seconds
        )
    }
}

/// The mean of each metric over the steps (summed in order, then divided).
pub fn mean_metrics(steps: &[Metrics]) -> Metrics {
    let mut sum = Metrics::new();
    for s in steps {
        for (k, v) in s {
            *sum.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    let k = steps.len() as f64;
    sum.values_mut().for_each(|v| *v /= k);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decay_drops_after_each_milestone() {
        let s = LrSchedule::StepDecay {
            milestones: vec![30, 40],
            gamma: 0.1,
        };
        assert_eq!(s.lr(1.0, 1), 1.0);
        assert_eq!(s.lr(1.0, 30), 1.0);
        assert!((s.lr(1.0, 31) - 0.1).abs() < 1e-15);
        assert!((s.lr(1.0, 41) - 0.01).abs() < 1e-15);
        assert_eq!(LrSchedule::Constant.lr(0.5, 99), 0.5);
    }

    #[test]
    fn mean_metrics_sums_in_order() {
        let m = |v: f64| Metrics::from([("loss".to_string(), v)]);
        let mean = mean_metrics(&[m(1.0), m(2.0), m(6.0)]);
        assert_eq!(mean["loss"], 3.0);
    }
}
