//! Table 2 (Sec. 6): shortest paths on Warcraft terrain maps (Pogančić et al. 2020): the
//! share of test maps whose predicted path is cost-optimal for BB, I-MLE M-M, I-MLE μ-μ,
//! I-MLE SoG from paths and DPO (plus AIMLE and the direct ResNet baseline, beyond the
//! paper), mean ± std over seeds, per grid size K.
//!
//! Every (K, method, run) is one unit that trains in its own run folder
//! (`<run-dir>/k12/bb/run0/checkpoint.safetensors`, written after every epoch;
//! `best.safetensors`, the epoch with the best validation accuracy): a killed run
//! resumes after its last finished epoch. The data are the data set's files if the user
//! has them (`--data-dir`, `$IMLE_DATA_DIR`, `datasets/warcraft/`, each with a `KxK/`
//! folder), otherwise generated look-alike maps, written into `datasets/warcraft/KxK/` on first use (`imle-paper data
//! generate warcraft --k K`). `--eval CHECKPOINT` evaluates a kept model on any data set in
//! that layout.

use super::template;
use super::trained::{self, unit_name, TrainedRun};
use super::{positive_usize, Experiment, Profile, Report, RunContext};
use crate::data::warcraft::{self, generate::GeneratorRecord, Warcraft};
use crate::output::Table;
use crate::plot::{Figure, Panel, PathPanel};
use crate::spec::EstimatorSpec;
use crate::stats::{mean_std, median, pm};
use crate::train::{Checkpoint, EpochRecord, Trainer};
use crate::warcraft::{Method, NegativeCostPolicy, PathConfig, PathFinder};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod report;
pub use report::{official_logs, paper_accuracy, report, Row};

/// Command-line overrides of Table 2 (defaults: the official protocol).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Grid sizes, comma-separated [quick: 12; full: 12, 18, 24, 30, the sizes above 12 with
    /// a reduced protocol: 2,000 training maps, 500 validation / test maps, 20 epochs, one
    /// seed].
    #[arg(long, value_delimiter = ',', value_parser = positive_usize)]
    pub ks: Option<Vec<usize>>,
    /// Methods, comma-separated, from bb, imle-mm, imle-mumu, imle-sog-hamming, dpo,
    /// aimle, resnet [quick: all; full: bb, imle-mm, imle-mumu, imle-sog-hamming, dpo].
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Seeds per row [paper: 5; full: 5 at K = 12, 1 at larger K; quick: 1].
    #[arg(long, value_parser = positive_usize)]
    pub runs: Option<usize>,
    /// Epochs [paper: 50; full: 50 at K = 12, 20 at larger K; quick: 3]. The learning rate
    /// drops ×0.1 after 60 % and 80 % of them (30 and 40 of 50) unless --milestones says.
    #[arg(long, value_parser = positive_usize)]
    pub epochs: Option<usize>,
    /// Epochs after which the learning rate drops ×0.1, comma-separated [default: 60 % and
    /// 80 % of the epochs, rounded down: 30, 40 of 50].
    #[arg(long, value_delimiter = ',', value_parser = positive_usize)]
    pub milestones: Option<Vec<usize>>,
    /// Train on the first N training maps [full: all at K = 12, 2000 at larger K; quick: 1000].
    #[arg(long, value_parser = positive_usize)]
    pub train_subset: Option<usize>,
    /// Evaluate on the first N validation and test maps [full: all at K = 12, 500 at larger
    /// K; quick: 200].
    #[arg(long, value_parser = positive_usize)]
    pub eval_subset: Option<usize>,
    /// Batch size [paper: 70].
    #[arg(long, value_parser = positive_usize)]
    pub batch: Option<usize>,
    /// Samples of DPO's perturbed Fenchel-Young loss [official: 1].
    #[arg(long, value_parser = positive_usize)]
    pub dpo_samples: Option<usize>,
    /// Replace a method's estimator: METHOD=SPEC, repeatable (SPEC: `kind:key=value,...`
    /// or JSON, see `imle_paper::spec`; e.g. the PID target with SoG noise for M-M:
    /// `imle-mm=imle:target=pid,lambda=50,noise=sog,kappa=15,tau=1,s=10,scale_by_lambda=true`).
    #[arg(long = "spec", value_parser = parse_method_spec)]
    pub specs: Vec<(Method, EstimatorSpec)>,
    /// Directory of the data set (a `KxK/` folder inside it, or the folder itself; then
    /// $IMLE_DATA_DIR, datasets/warcraft/; none there: the maps are generated into
    /// datasets/warcraft/KxK/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Evaluate a kept model (a `checkpoint.safetensors` or `best.safetensors` of a run
    /// folder) on the data set found as --data-dir says, print its metrics, and stop.
    #[arg(long)]
    pub eval: Option<PathBuf>,
}

fn parse_method_spec(s: &str) -> std::result::Result<(Method, EstimatorSpec), String> {
    super::method_spec(s, Method::parse)
}

/// The grid size of the committed full protocol.
pub const PAPER_K: usize = 12;
/// The reduced protocol of the full profile for larger grids (K = 18, 24, 30): training
/// maps (and the maps generated for them),
pub const REDUCED_MAPS: usize = 2_000;
/// epochs (the learning rate drops after 60 % and 80 % of them),
pub const REDUCED_EPOCHS: usize = 20;
/// and validation / test maps evaluated each epoch; one seed. What fits a few hours of
/// 2-core compute per size.
pub const REDUCED_EVAL_MAPS: usize = 500;

/// Resolved configuration of Table 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// One configuration per (K, method, run); seeds filled in at run time.
    pub runs: Vec<PathConfig>,
    /// The generator's record per K when the maps are generated (None: the user's files).
    pub generated: Vec<(usize, Option<GeneratorRecord>)>,
    /// Where the files are looked for first.
    #[serde(skip)]
    pub data_dir: Option<PathBuf>,
}

/// Training maps generated for grid size `k` when no maps are found: the data set's
/// 10,000 at the paper's K = 12, [`REDUCED_MAPS`] for the larger grids.
fn generated_maps(k: usize) -> usize {
    if k > PAPER_K {
        REDUCED_MAPS
    } else {
        10_000
    }
}

impl Args {
    /// The configuration for `profile`.
    pub fn resolve(&self, profile: Profile) -> Result<Config> {
        let ks = self
            .ks
            .clone()
            .unwrap_or_else(|| profile.pick(vec![PAPER_K], warcraft::PAPER_SIZES.to_vec()));
        let chosen: Vec<Method> = match &self.methods {
            Some(names) => {
                super::parse_methods(names, Method::parse, &Method::ALL.map(|m| m.name()))?
            }
            None => profile.pick(Method::ALL.to_vec(), Method::PAPER.to_vec()),
        };
        let mut generated = Vec::new();
        for &k in &ks {
            if k < 2 {
                bail!("the grid size K must be at least 2");
            }
            generated.push((
                k,
                warcraft::find_or_generate(self.data_dir.as_deref(), k, generated_maps(k))?.1,
            ));
        }
        let runs_per_row = self.runs.unwrap_or(profile.pick(1, 5));
        let mut runs = Vec::new();
        for run in 0..runs_per_row {
            for &k in &ks {
                // The reduced protocol of larger grids: one seed unless --runs says more.
                let reduced = profile == Profile::Full && k > PAPER_K;
                if reduced && run > 0 && self.runs.is_none() {
                    continue;
                }
                for &m in &chosen {
                    let mut c = PathConfig::paper(m, k);
                    if let Some((_, s)) = self.specs.iter().rev().find(|(sm, _)| *sm == m) {
                        if m == Method::Resnet {
                            bail!("--spec: resnet has no estimator");
                        }
                        c.spec = Some(s.clone());
                        c.negative_costs = NegativeCostPolicy::for_spec(c.spec.as_ref());
                    }
                    if let (Some(n), Some(EstimatorSpec::Dpo { samples, .. })) =
                        (self.dpo_samples, c.spec.as_mut())
                    {
                        *samples = n;
                    }
                    c.epochs = self
                        .epochs
                        .unwrap_or(profile.pick(3, if reduced { REDUCED_EPOCHS } else { 50 }));
                    c.milestones = match &self.milestones {
                        Some(m) => m.clone(),
                        None => PathConfig::drops_for(c.epochs),
                    };
                    c.batch = self.batch.unwrap_or(c.batch);
                    c.train_subset = self.train_subset.or(match (profile, reduced) {
                        (Profile::Quick, _) => Some(1000),
                        (_, true) => Some(REDUCED_MAPS),
                        _ => None,
                    });
                    c.eval_subset = self.eval_subset.or(match (profile, reduced) {
                        (Profile::Quick, _) => Some(200),
                        (_, true) => Some(REDUCED_EVAL_MAPS),
                        _ => None,
                    });
                    c.run = run;
                    runs.push(c);
                }
            }
        }
        if let Some((m, _)) = self.specs.iter().find(|(m, _)| !chosen.contains(m)) {
            bail!(
                "--spec names {}, which is not among the methods run",
                m.name()
            );
        }
        Ok(Config {
            runs,
            generated,
            data_dir: self.data_dir.clone(),
        })
    }
}

/// The data of grid size `k`, read once per process.
fn maps(dir: Option<&Path>, k: usize) -> Result<Arc<Warcraft>> {
    let (found, _) = warcraft::find_or_generate(dir, k, generated_maps(k))?;
    trained::cached(found.display().to_string(), || {
        let data = warcraft::load_from(&found, k)?;
        println!(
            "table2: {} ({} / {} / {} maps, {}x{} cells)",
            data.dir.display(),
            data.train.n,
            data.val.n,
            data.test.n,
            k,
            k
        );
        Ok(data)
    })
}

/// The result of one run (`examples`: the last epoch's predicted paths of the first test
/// maps).
pub type RunResult = trained::RunOf<PathConfig>;

/// Test maps whose paths a run keeps for the figure.
pub const EXAMPLES: usize = 3;

impl TrainedRun for PathConfig {
    const EXPERIMENT: &'static str = "table2";
    const BEST: (&'static str, bool) = ("val_accuracy", true);
    type Data = Warcraft;
    type Learner = PathFinder;
    type Examples = Vec<Vec<f32>>;

    trained::run_fields!();
    fn data(&self, data_dir: Option<&Path>) -> Result<Arc<Warcraft>> {
        maps(data_dir, self.k)
    }
    fn identity(&self, data: &Warcraft) -> (String, String) {
        (format!("warcraft{}", self.k), data.checksum.clone())
    }
    fn learner(&self, data: Arc<Warcraft>) -> Result<PathFinder> {
        PathFinder::new(self.clone(), data)
    }
    fn configure(&self, trainer: &mut Trainer) {
        trainer.schedule = self.schedule();
    }
    fn log_line(&self, r: &EpochRecord) -> String {
        format!(
            "{:>26} epoch {:>2}: loss {:.4}  val acc {:.1} %  test acc {:.1} %  exact {:.1} %  regret {:.4}  {:.1}+{:.1} s",
            unit_name(self),
            r.epoch,
            r.train("loss"),
            100.0 * r.eval("val_accuracy"),
            100.0 * r.eval("test_accuracy"),
            100.0 * r.eval("test_exact"),
            r.eval("test_regret"),
            r.train_seconds,
            r.eval_seconds
        )
    }
    /// The last epoch's paths of the first [`EXAMPLES`] test maps.
    fn examples(&self, learner: &mut PathFinder, _dir: &Path) -> Result<Vec<Vec<f32>>> {
        let test = &learner.data.clone().test;
        let idx: Vec<usize> = (0..EXAMPLES.min(test.n)).collect();
        let (_, z) = learner.predict(test, &idx)?;
        Ok(z.chunks(self.k * self.k).map(<[f32]>::to_vec).collect())
    }
}

/// Table 2 on the framework: one unit per (K, method, run).
pub struct Table2;

impl Experiment for Table2 {
    const NAME: &'static str = "table2";
    const TITLE: &'static str = "Table 2 — Warcraft shortest paths (Sec. 6)";
    type Args = Args;
    type Config = Config;
    type Unit = RunResult;

    fn resolve(args: &Args, profile: Profile) -> Result<Config> {
        args.resolve(profile)
    }
    trained::experiment_units!();
    /// The finished runs of `table2.json` (`data.runs`): those with every epoch and their
    /// example paths.
    fn recorded(data: &serde_json::Value) -> Vec<(String, RunResult)> {
        let runs: Vec<RunResult> = serde_json::from_value(data["runs"].clone()).unwrap_or_default();
        runs.into_iter()
            .filter(|r| r.complete && r.examples.is_some())
            .map(|r| (unit_name(&r.config), r))
            .collect()
    }
    fn report(
        cfg: &Config,
        units: &[(String, Option<RunResult>)],
        _ctx: &RunContext,
    ) -> Result<Report> {
        report(cfg, units)
    }
}

/// `--eval CHECKPOINT`: the metrics of the model in `checkpoint` on the validation and
/// test maps of the data set found as `data_dir` says.
pub fn evaluate_checkpoint(path: &Path, data_dir: Option<&Path>) -> Result<Vec<String>> {
    let (ck, mut c): (Checkpoint, PathConfig) = Checkpoint::load_run(path, "table2")?;
    c.epochs = ck.header.history.len();
    let data = Arc::new(match data_dir {
        Some(d) => warcraft::load(Some(d), c.k)?,
        None => warcraft::load_from(
            &warcraft::find_or_generate(None, c.k, generated_maps(c.k))?.0,
            c.k,
        )?,
    });
    let mut learner = PathFinder::new(c.clone(), data.clone())?;
    learner.model_from(&ck)?;
    let mut lines = vec![format!(
        "{} ({}, K = {}, after epoch {}) on {}:",
        path.display(),
        c.method.label(),
        c.k,
        c.epochs,
        data.dir.display()
    )];
    for (name, split) in [("validation", &data.val), ("test", &data.test)] {
        let m = learner.metrics(split, None)?;
        lines.push(format!(
            "  {name} ({} maps): accuracy {:.2} %, exact match {:.2} %, valid {:.2} %, regret × 100 {:.3}",
            m.maps,
            100.0 * m.accuracy,
            100.0 * m.exact,
            100.0 * m.valid,
            100.0 * m.regret
        ));
    }
    Ok(lines)
}
