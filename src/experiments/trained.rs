//! The frame of the trained experiments (Table 1, Table 2): one unit per (size, method,
//! run), each a [`Learner`] trained by a [`Trainer`] in its own run folder
//! (`<run-dir>/k10/imle-sog/run0/`: `checkpoint.safetensors` after every epoch,
//! `best.safetensors` at the best epoch), so that a killed run resumes after its last
//! finished epoch and a finished one is read back.
//!
//! An experiment fills in [`TrainedRun`] for its run configuration (what its learner,
//! data and log line are) and keeps only what is its own: its command-line options, the
//! grid of runs and the report.

use super::RunContext;
use crate::run::log_line;
use crate::train::{Checkpoint, EpochRecord, KeepBest, Learner, RunStamp, Trainer};
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The configuration of one training run of an experiment, and what the frame needs to
/// know about it.
pub trait TrainedRun: Clone + Serialize + DeserializeOwned {
    /// The experiment (`table1`): its run folders, seeds and checkpoint stamps.
    const EXPERIMENT: &'static str;
    /// The evaluation metric whose best epoch is kept (`best.safetensors`), and whether
    /// larger is better.
    const BEST: (&'static str, bool);
    /// The data set it trains on.
    type Data: Send + Sync + 'static;
    /// The model with its optimiser and estimator.
    type Learner: Learner;
    /// What a finished run keeps for the report's figures.
    type Examples: Clone + std::fmt::Debug + Serialize + DeserializeOwned;

    /// The problem size (k or K), the method's name and the run index: the unit
    /// `k10/imle-sog/run0`.
    fn unit_parts(&self) -> (usize, &'static str, usize);
    /// The run's seed (filled in by [`run_config`]).
    fn seed(&self) -> u64;
    /// Sets the run's seed.
    fn set_seed(&mut self, seed: u64);
    /// Epochs to train.
    fn epochs(&self) -> usize;
    /// The configuration without what a resume may change (the number of epochs).
    fn without_epochs(&self) -> Self;
    /// Batch size and base learning rate.
    fn batch_and_lr(&self) -> (usize, f64);
    /// The data set found as `data_dir` says (generated when none is found and no
    /// directory was named; see [`cached`]).
    fn data(&self, data_dir: Option<&Path>) -> Result<Arc<Self::Data>>;
    /// The name and checksum that identify `data` in checkpoints.
    fn identity(&self, data: &Self::Data) -> (String, String);
    /// A fresh learner.
    fn learner(&self, data: Arc<Self::Data>) -> Result<Self::Learner>;
    /// Sets what the experiment's trainer needs beyond the defaults (a schedule).
    fn configure(&self, _trainer: &mut Trainer) {}
    /// The log line of a finished epoch.
    fn log_line(&self, record: &EpochRecord) -> String;
    /// What the finished run keeps for the report (its learner after the last epoch,
    /// its folder with the best checkpoint).
    fn examples(&self, learner: &mut Self::Learner, dir: &Path) -> Result<Self::Examples>;
}

/// The accessors of [`TrainedRun`] for a configuration with the fields `k`, `method` (with
/// `name()`), `run`, `seed`, `epochs`, `batch`, `adam.lr` and an inherent
/// `without_epochs`: written once, inside the `impl TrainedRun` block.
macro_rules! run_fields {
    () => {
        fn unit_parts(&self) -> (usize, &'static str, usize) {
            (self.k, self.method.name(), self.run)
        }
        fn seed(&self) -> u64 {
            self.seed
        }
        fn set_seed(&mut self, seed: u64) {
            self.seed = seed;
        }
        fn epochs(&self) -> usize {
            self.epochs
        }
        fn without_epochs(&self) -> Self {
            Self::without_epochs(self)
        }
        fn batch_and_lr(&self) -> (usize, f64) {
            (self.batch, self.adam.lr)
        }
    };
}
pub(crate) use run_fields;

/// `units`, `data_identity`, `compute` and `partial` of an [`super::Experiment`] whose
/// `Config` has the grid `runs` (of a [`TrainedRun`]) and `data_dir`, and whose `Unit` is
/// `RunResult`: written once, inside the `impl Experiment` block.
macro_rules! experiment_units {
    () => {
        fn units(cfg: &Config) -> Vec<String> {
            cfg.runs.iter().map(trained::unit_name).collect()
        }
        fn data_identity(cfg: &Config) -> Result<Vec<(String, String)>> {
            trained::data_identity(&cfg.runs, cfg.data_dir.as_deref())
        }
        fn compute(cfg: &Config, unit: &str, ctx: &RunContext) -> Result<RunResult> {
            trained::compute(&cfg.runs, cfg.data_dir.as_deref(), unit, ctx)
        }
        fn partial(cfg: &Config, unit: &str, ctx: &RunContext) -> Result<Option<RunResult>> {
            trained::partial(&cfg.runs, unit, ctx)
        }
    };
}
pub(crate) use experiment_units;

/// The result of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult<C, X> {
    /// Its configuration.
    pub config: C,
    /// Whether all epochs are done.
    pub complete: bool,
    /// One record per finished epoch.
    pub epochs: Vec<EpochRecord>,
    /// What the report shows of the run (absent for a partial run).
    pub examples: Option<X>,
}

impl<C: TrainedRun, X> RunResult<C, X> {
    /// The epoch with the best value of `C::BEST` (the kept model).
    pub fn best(&self) -> Option<&EpochRecord> {
        let (metric, maximise) = C::BEST;
        let finite = self.epochs.iter().filter(|r| r.eval(metric).is_finite());
        if maximise {
            finite.max_by(|a, b| a.eval(metric).total_cmp(&b.eval(metric)))
        } else {
            finite.min_by(|a, b| a.eval(metric).total_cmp(&b.eval(metric)))
        }
    }

    /// The last finished epoch.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }
}

/// The result type of runs of `C`.
pub type RunOf<C> = RunResult<C, <C as TrainedRun>::Examples>;

/// Checkpoint file of a run folder (after every epoch).
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The checkpoint of the best epoch.
pub const BEST: &str = "best.safetensors";

/// The unit name of a run: `k10/imle-sog/run0`.
pub fn unit_name<C: TrainedRun>(c: &C) -> String {
    let (size, method, run) = c.unit_parts();
    format!("k{size}/{method}/run{run}")
}

/// The run folder of a unit: `<run-dir>/k10/imle-sog/run0`.
pub fn run_dir<C: TrainedRun>(ctx: &RunContext, c: &C) -> PathBuf {
    ctx.run_dir_of(C::EXPERIMENT).join(unit_name(c))
}

/// The configuration of unit `unit` with its seed: runs of the same index share their
/// seed (initialisation, shuffles, split) across methods, a paired comparison.
pub fn run_config<C: TrainedRun>(runs: &[C], unit: &str, seed: u64) -> Result<C> {
    let mut c = runs
        .iter()
        .find(|c| unit_name(*c) == unit)
        .with_context(|| format!("{} has no unit '{unit}'", C::EXPERIMENT))?
        .clone();
    let run = c.unit_parts().2 as u64;
    c.set_seed(crate::run::derive_seed(
        seed,
        &format!("{}/run", C::EXPERIMENT),
        run,
    ));
    Ok(c)
}

/// What a checkpoint of `c` trained on `data` records about it.
pub fn stamp<C: TrainedRun>(c: &C, data: &C::Data) -> Result<RunStamp> {
    Ok(RunStamp {
        experiment: C::EXPERIMENT.into(),
        config: serde_json::to_value(c.without_epochs())?,
        data: Some(c.identity(data)),
    })
}

/// Trains (or resumes) run `c` in `dir`, keeping `best.safetensors` up to date.
pub fn train_run<C: TrainedRun>(
    c: &C,
    data: Arc<C::Data>,
    dir: &Path,
    ctx: &RunContext,
) -> Result<C::Learner> {
    let stamp = stamp(c, &data)?;
    let mut learner = c.learner(data)?;
    let (batch, lr) = c.batch_and_lr();
    let mut trainer = Trainer::new(stamp, c.epochs(), batch, c.seed(), lr);
    c.configure(&mut trainer);
    trainer.checkpoint = Some(dir.join(CHECKPOINT));
    trainer.label = unit_name(c);
    trainer.progress = ctx.progress;
    let (metric, maximise) = C::BEST;
    trainer.keep_best = Some(KeepBest {
        path: dir.join(BEST),
        metric: metric.into(),
        maximise,
    });
    let pb = ctx.progress(0, "");
    trainer.fit(&mut learner, Vec::new(), |r| log_line(&pb, &c.log_line(r)))?;
    Ok(learner)
}

/// Trains unit `unit` of `runs` (or resumes it, or reads it back when finished) and
/// returns its result.
pub fn compute<C: TrainedRun>(
    runs: &[C],
    data_dir: Option<&Path>,
    unit: &str,
    ctx: &RunContext,
) -> Result<RunOf<C>> {
    let c = run_config(runs, unit, ctx.seed)?;
    let data = c.data(data_dir)?;
    let dir = run_dir(ctx, &c);
    if ctx.fresh {
        Checkpoint::remove_all(&dir, &[CHECKPOINT, BEST])?;
    }
    let mut learner = train_run(&c, data, &dir, ctx)?;
    let history = Checkpoint::load(&dir.join(CHECKPOINT))?.header.history;
    Ok(RunResult {
        complete: history.len() >= c.epochs(),
        examples: Some(c.examples(&mut learner, &dir)?),
        config: c,
        epochs: history,
    })
}

/// [`super::Experiment::data_identity`] of a grid of runs: the data of each problem
/// size, read as `data_dir` says.
pub fn data_identity<C: TrainedRun>(
    runs: &[C],
    data_dir: Option<&Path>,
) -> Result<Vec<(String, String)>> {
    let mut sizes: Vec<(usize, &C)> = Vec::new();
    for c in runs {
        if !sizes.iter().any(|(s, _)| *s == c.unit_parts().0) {
            sizes.push((c.unit_parts().0, c));
        }
    }
    let mut out = Vec::new();
    for (_, c) in sizes {
        let id = c.identity(&*c.data(data_dir)?);
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The epochs an unfinished unit has recorded in its checkpoint, if any.
pub fn partial<C: TrainedRun>(
    runs: &[C],
    unit: &str,
    ctx: &RunContext,
) -> Result<Option<RunOf<C>>> {
    let c = run_config(runs, unit, ctx.seed)?;
    let path = run_dir(ctx, &c).join(CHECKPOINT);
    let config = serde_json::to_value(c.without_epochs())?;
    Ok(
        Checkpoint::history_for(&path, &config)?.map(|epochs| RunResult {
            complete: epochs.len() >= c.epochs(),
            config: c,
            epochs,
            examples: None,
        }),
    )
}

/// The data set of `key` (its folder and what else selects it), loaded once per process:
/// every unit of an experiment trains on it, and a new key frees the previous one first.
pub fn cached<D: Send + Sync + 'static>(
    key: String,
    load: impl FnOnce() -> Result<D>,
) -> Result<Arc<D>> {
    type Cache = Option<(String, Arc<dyn Any + Send + Sync>)>;
    static CACHE: Mutex<Cache> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, data)) = cache.as_ref() {
        if *k == key {
            if let Ok(d) = data.clone().downcast::<D>() {
                return Ok(d);
            }
        }
    }
    *cache = None;
    let data = Arc::new(load()?);
    *cache = Some((key, data.clone()));
    Ok(data)
}
