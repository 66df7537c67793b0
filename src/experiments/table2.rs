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
use crate::stats::{mean_std, median};
use crate::train::{Checkpoint, EpochRecord, Trainer};
use crate::warcraft::{Method, NegativeCostPolicy, PathConfig, PathFinder};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    fn units(cfg: &Config) -> Vec<String> {
        cfg.runs.iter().map(unit_name).collect()
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

/// The paper's accuracy in % (mean, std over 5 seeds) for `(K, method)`: Table 2 of
/// Niepert et al. (2021) as quoted by the NeSyDM paper's Table 2 (its "I-MLE" row, the
/// μ-μ setting, at 12 x 12 and 30 x 30); None where not transcribed here (the paper's other
/// rows and sizes could not be checked against a source available to us).
pub fn paper_accuracy(k: usize, m: Method) -> Option<(f64, f64)> {
    Some(match (m, k) {
        (Method::ImleMumu, 12) => (97.2, 0.5),
        (Method::ImleMumu, 30) => (93.7, 0.6),
        _ => return None,
    })
}

/// The official code's own results on the real maps for `(K, method)`: `(accuracy, exact)`
/// in %, each (mean, sample std) over its 5 seeds after the last epoch, from the logs in
/// nec-research/tf-imle `WARCRAFT/logs/warcraft/` of the runs with the paper's settings
/// (BB: `temperature_beaker_v10`, mode 0, λ 20, no noise; M-M: `v8`, mode 1, λ 50, no noise;
/// μ-μ: `v11`, mode 4, λ 10, SoG both sides, temperature 1; DPO: `v14`, Fenchel-Young,
/// σ 0.01; the direct baseline: `baseline_beaker_v12`, a whole ResNet18, 150 epochs), as
/// `scripts/tf_imle_warcraft_logs.py` prints them. The μ-μ row at K = 12 is the paper's
/// 97.2 ± 0.5. None for our additions (`imle-sog-hamming`, AIMLE).
pub fn official_logs(k: usize, m: Method) -> Option<[(f64, f64); 2]> {
    let by_k = |rows: [[(f64, f64); 2]; 4]| {
        let i = warcraft::PAPER_SIZES.iter().position(|&s| s == k)?;
        Some(rows[i])
    };
    match m {
        Method::Bb => by_k([
            [(95.2, 0.7), (86.0, 1.1)],
            [(94.7, 0.4), (76.3, 0.9)],
            [(93.8, 0.3), (71.5, 1.2)],
            [(93.6, 0.5), (66.0, 1.5)],
        ]),
        Method::ImleMm => by_k([
            [(95.2, 0.3), (85.1, 0.6)],
            [(94.4, 0.5), (75.0, 0.5)],
            [(93.2, 0.2), (70.5, 1.3)],
            [(93.7, 0.6), (65.8, 0.9)],
        ]),
        Method::ImleMumu => by_k([
            [(97.2, 0.5), (17.1, 0.9)],
            [(95.8, 0.7), (5.1, 0.7)],
            [(94.3, 1.0), (2.4, 0.2)],
            [(93.6, 0.4), (1.0, 0.5)],
        ]),
        Method::Dpo => by_k([
            [(94.8, 0.3), (86.0, 0.9)],
            [(92.3, 0.8), (77.4, 0.8)],
            [(91.5, 0.4), (73.5, 0.7)],
            [(91.5, 0.8), (69.1, 0.8)],
        ]),
        Method::Resnet => by_k([
            [(46.6, 4.0), (44.4, 3.7)],
            [(11.0, 2.1), (10.0, 2.0)],
            [(0.7, 0.3), (0.6, 0.2)],
            [(0.1, 0.1), (0.0, 0.0)],
        ]),
        _ => None,
    }
}

/// One row of the table: `(K, method)` over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// K.
    pub k: usize,
    /// Method name.
    pub method: String,
    /// Label.
    pub label: String,
    /// Supervised by the true costs (not only the paths).
    pub cost_supervised: bool,
    /// The estimator.
    pub spec: Option<EstimatorSpec>,
    /// Epochs configured.
    pub epochs: usize,
    /// Training maps used (None: all of the user's files).
    pub train_maps: Option<usize>,
    /// Runs with all epochs done / configured.
    pub runs_done: usize,
    /// Runs configured.
    pub runs: usize,
    /// Test accuracy × 100 after the last epoch: mean, std (population) over done runs.
    pub accuracy: (f64, f64),
    /// Exact path match × 100.
    pub exact: (f64, f64),
    /// Mean relative regret × 100.
    pub regret: (f64, f64),
    /// The paper's accuracy.
    pub paper_accuracy: Option<(f64, f64)>,
    /// The official code's logs on the real maps: accuracy and exact match, see
    /// [`official_logs`].
    #[serde(default)]
    pub official: Option<[(f64, f64); 2]>,
    /// Median seconds per training epoch.
    pub epoch_seconds: f64,
    /// Unfinished runs: `(epochs done, test accuracy × 100 after the last of them)`.
    pub in_progress: Vec<(usize, f64)>,
}

fn rows(cfg: &Config, units: &[(String, Option<RunResult>)]) -> Vec<Row> {
    let mut keys: Vec<(usize, Method)> = Vec::new();
    for c in &cfg.runs {
        if !keys.contains(&(c.k, c.method)) {
            keys.push((c.k, c.method));
        }
    }
    keys.iter()
        .filter_map(|&(k, m)| {
            let of: Vec<&RunResult> = units
                .iter()
                .filter_map(|(_, u)| u.as_ref())
                .filter(|r| r.config.k == k && r.config.method == m)
                .collect();
            let first = cfg.runs.iter().find(|c| c.k == k && c.method == m)?;
            let done: Vec<&EpochRecord> = of
                .iter()
                .filter(|r| r.complete)
                .filter_map(|r| r.last())
                .collect();
            let train_maps = cfg
                .generated
                .iter()
                .find(|(kk, _)| *kk == k)
                .and_then(|(_, g)| g.as_ref().map(|g| g.config.train))
                .map_or(first.train_subset, |n| {
                    Some(first.train_subset.map_or(n, |s| s.min(n)))
                });
            Some(Row {
                k,
                method: m.name().into(),
                label: m.label().into(),
                cost_supervised: m.cost_supervised(),
                spec: first.spec.clone(),
                epochs: first.epochs,
                train_maps,
                runs_done: done.len(),
                runs: cfg
                    .runs
                    .iter()
                    .filter(|c| c.k == k && c.method == m)
                    .count(),
                accuracy: mean_std(done.iter().map(|e| 100.0 * e.eval("test_accuracy"))),
                exact: mean_std(done.iter().map(|e| 100.0 * e.eval("test_exact"))),
                regret: mean_std(done.iter().map(|e| 100.0 * e.eval("test_regret"))),
                paper_accuracy: paper_accuracy(k, m),
                official: official_logs(k, m),
                in_progress: of
                    .iter()
                    .filter(|r| !r.complete)
                    .filter_map(|r| r.last().map(|e| (e.epoch, 100.0 * e.eval("test_accuracy"))))
                    .collect(),
                epoch_seconds: median(
                    of.iter()
                        .flat_map(|r| r.epochs.iter().map(|e| e.train_seconds)),
                ),
            })
        })
        .collect()
}

fn pm((m, s): (f64, f64), digits: usize) -> String {
    if m.is_finite() {
        format!("{m:.digits$} ± {s:.digits$}")
    } else {
        "–".into()
    }
}

/// Table 2's report: `table2.csv` (one row per K and method), `table2_runs.csv` (per
/// run and epoch), `table2.png` (test accuracy per epoch), `table2_paths.png` (test maps
/// with the true and predicted paths), record and README section.
pub fn report(cfg: &Config, units: &[(String, Option<RunResult>)]) -> Result<Report> {
    let rows = rows(cfg, units);
    let f = |g: &dyn Fn(&Row) -> f64| rows.iter().map(g).collect::<Vec<f64>>();
    let opt =
        |v: Option<(f64, f64)>, i: usize| v.map_or(f64::NAN, |p| if i == 0 { p.0 } else { p.1 });
    let table = Table::new()
        .i64("k", rows.iter().map(|r| r.k as i64).collect())
        .str("method", rows.iter().map(|r| r.method.clone()).collect())
        .str("label", rows.iter().map(|r| r.label.clone()).collect())
        .bool(
            "cost_supervised",
            rows.iter().map(|r| r.cost_supervised).collect(),
        )
        .i64("epochs", rows.iter().map(|r| r.epochs as i64).collect())
        .i64(
            "train_maps",
            rows.iter()
                .map(|r| r.train_maps.map_or(-1, |n| n as i64))
                .collect(),
        )
        .i64(
            "runs_done",
            rows.iter().map(|r| r.runs_done as i64).collect(),
        )
        .i64("runs", rows.iter().map(|r| r.runs as i64).collect())
        .f64("accuracy_mean", f(&|r| r.accuracy.0))
        .f64("accuracy_std", f(&|r| r.accuracy.1))
        .f64("exact_mean", f(&|r| r.exact.0))
        .f64("exact_std", f(&|r| r.exact.1))
        .f64("regret_x100_mean", f(&|r| r.regret.0))
        .f64("regret_x100_std", f(&|r| r.regret.1))
        .f64("paper_accuracy_mean", f(&|r| opt(r.paper_accuracy, 0)))
        .f64("paper_accuracy_std", f(&|r| opt(r.paper_accuracy, 1)))
        .f64(
            "official_accuracy_mean",
            f(&|r| r.official.map_or(f64::NAN, |o| o[0].0)),
        )
        .f64(
            "official_accuracy_std",
            f(&|r| r.official.map_or(f64::NAN, |o| o[0].1)),
        )
        .f64(
            "official_exact_mean",
            f(&|r| r.official.map_or(f64::NAN, |o| o[1].0)),
        )
        .f64(
            "official_exact_std",
            f(&|r| r.official.map_or(f64::NAN, |o| o[1].1)),
        )
        .f64("epoch_seconds", f(&|r| r.epoch_seconds));
    let done: Vec<&RunResult> = units.iter().filter_map(|(_, u)| u.as_ref()).collect();
    let per_epoch: Vec<(&RunResult, &EpochRecord)> = done
        .iter()
        .flat_map(|r| r.epochs.iter().map(move |e| (*r, e)))
        .collect();
    let metric = |name: &str| {
        per_epoch
            .iter()
            .map(|(_, e)| e.eval(name))
            .collect::<Vec<f64>>()
    };
    let runs_table = Table::new()
        .i64(
            "k",
            per_epoch.iter().map(|(r, _)| r.config.k as i64).collect(),
        )
        .str(
            "method",
            per_epoch
                .iter()
                .map(|(r, _)| r.config.method.name().to_string())
                .collect(),
        )
        .i64(
            "run",
            per_epoch.iter().map(|(r, _)| r.config.run as i64).collect(),
        )
        .i64(
            "epoch",
            per_epoch.iter().map(|(_, e)| e.epoch as i64).collect(),
        )
        .f64(
            "train_loss",
            per_epoch.iter().map(|(_, e)| e.train("loss")).collect(),
        )
        .f64("val_accuracy", metric("val_accuracy"))
        .f64("test_accuracy", metric("test_accuracy"))
        .f64("test_exact", metric("test_exact"))
        .f64("test_regret", metric("test_regret"))
        .f64(
            "train_seconds",
            per_epoch.iter().map(|(_, e)| e.train_seconds).collect(),
        );

    let k_plot = rows.first().map_or(12, |r| r.k);
    let groups: Vec<(String, usize, Vec<&[EpochRecord]>)> = Method::ALL
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let runs = done
                .iter()
                .filter(|r| r.config.k == k_plot && r.config.method == *m)
                .map(|r| r.epochs.as_slice())
                .collect();
            (m.label().to_string(), i, runs)
        })
        .collect();
    let charts = super::epoch_charts(
        &groups,
        &[
            (
                format!("test accuracy % (K = {k_plot})"),
                "accuracy %",
                "test_accuracy",
            ),
            (
                format!("exact path match % (K = {k_plot})"),
                "exact %",
                "test_exact",
            ),
        ],
    );
    let mut figures = vec![(
        "table2".to_string(),
        Figure::rows(vec![charts], (1100, 430))
            .title("Table 2 — Warcraft shortest paths: test accuracy and exact match per epoch"),
    )];
    // Paths of the first test maps, every method of run 0 at K = k_plot.
    let with_examples: Vec<&RunResult> = done
        .iter()
        .copied()
        .filter(|r| r.config.k == k_plot && r.config.run == 0 && r.examples.is_some())
        .collect();
    // The picture needs the test maps only: that split alone is read (the configuration
    // has already located or generated the data).
    if let Some(first) = with_examples.first() {
        let dir =
            warcraft::find_or_generate(cfg.data_dir.as_deref(), k_plot, generated_maps(k_plot))?.0;
        let test = warcraft::load_split(&dir, "test", k_plot, &mut Vec::new())?;
        let n = first.examples.as_ref().map_or(0, Vec::len);
        let panels: Vec<Panel> = (0..n)
            .map(|i| {
                Panel::Paths(PathPanel {
                    title: format!("test map {i}: true path outlined"),
                    image: test.map_of(i).to_vec(),
                    px: test.px,
                    k: k_plot,
                    truth: test.path_of(i).to_vec(),
                    paths: with_examples
                        .iter()
                        .filter_map(|r| {
                            Some((
                                r.config.method.label().to_string(),
                                r.examples.as_ref()?.get(i)?.clone(),
                            ))
                        })
                        .collect(),
                })
            })
            .collect();
        let legend = 16 * with_examples.len() as u32;
        figures.push((
            "table2_paths".to_string(),
            Figure::rows(vec![panels], (380 * n as u32, 400 + legend))
                .title("Predicted paths on test maps (last epoch, run 0)"),
        ));
    }

    let data_note = cfg
        .generated
        .iter()
        .map(|(k, g)| match g {
            Some(g) => format!(
                "K = {k}: **generated look-alike maps** (`imle-paper data generate warcraft --k {k} --seed {}`: {} / {} / {} maps, {} with tied optimal paths in the test split; see `datasets/warcraft/README.md`), **not the Warcraft II tiles**",
                g.config.seed, g.config.train, g.config.val, g.config.test, g.tied_maps[2]
            ),
            None => format!("K = {k}: the user's files of the data set"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut md = template::fill(
        include_str!("prose/table2_intro.md"),
        &[("data_note", data_note)],
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{}{} | {} | {} | {} | {} | {} | {} |\n",
            r.k,
            r.label,
            if r.cost_supervised {
                "**costs**"
            } else {
                "paths"
            },
            r.epochs,
            r.train_maps.map_or("all".into(), |n| n.to_string()),
            r.runs_done,
            r.runs,
            r.in_progress
                .iter()
                .map(|(e, a)| format!("; 1 at epoch {e}: {a:.1} %"))
                .collect::<String>(),
            pm(r.accuracy, 1),
            pm(r.exact, 1),
            pm(r.regret, 2),
            r.paper_accuracy.map_or("–".into(), |p| pm(p, 1)),
            r.official.map_or("–".into(), |[a, e]| format!(
                "{} / {}",
                pm(a, 1),
                pm(e, 1)
            )),
            if r.epoch_seconds.is_finite() {
                format!("{:.0}", r.epoch_seconds)
            } else {
                "–".into()
            }
        ));
    }
    md.push_str(&template::fill(include_str!("prose/table2_notes.md"), &[]));
    let lines = rows
        .iter()
        .map(|r| {
            format!(
                "K = {:>2} {:<40} accuracy {:<14} exact {:<14} ({}/{} runs, {} epochs)",
                r.k,
                r.label,
                pm(r.accuracy, 1),
                pm(r.exact, 1),
                r.runs_done,
                r.runs,
                r.epochs
            )
        })
        .collect();
    Ok(Report {
        data: serde_json::json!({ "runs": done }),
        summary: serde_json::to_value(&rows)?,
        tables: vec![("table2".into(), table), ("table2_runs".into(), runs_table)],
        figures,
        readme: md,
        lines,
    })
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
