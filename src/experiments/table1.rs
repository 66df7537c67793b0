//! Table 1 (Sec. 6): learning to explain with k-subset selection on aspect reviews
//! (aroma), k ∈ {5, 10, 15}: test MSE and subset precision of L2X, SoftSub, STE and the
//! I-MLE variants (plus AIMLE, beyond the paper), mean ± std over runs.
//!
//! Every (k, method, run) is one unit that trains in its own run folder
//! (`<run-dir>/k10/imle-sog/run0/checkpoint.safetensors`, written after every epoch;
//! `best.safetensors`, the epoch with the best validation MSE): a killed run resumes
//! after its last finished epoch. The data are the BeerAdvocate files if the user has
//! them (`--data-dir`, `$IMLE_DATA_DIR`, `datasets/beer/`),
//! otherwise the generated look-alike set, written into `datasets/beer/` on first use
//! (`imle-paper data generate beer`). `--eval CHECKPOINT` evaluates a kept model on any
//! data set in that layout.

use super::template;
use super::trained::{self, unit_name, TrainedRun};
use super::{positive_usize, Experiment, Profile, Report, RunContext};
use crate::data::beer::{self, generate::GeneratorConfig, Beer};
use crate::explain::{ExplainConfig, Explainer, Method};
use crate::output::Table;
use crate::plot::{Figure, MarkedWord, Panel, WordPanel};
use crate::spec::EstimatorSpec;
use crate::stats::{mean_std, median};
use crate::train::{Checkpoint, EpochRecord};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Command-line overrides of Table 1 (defaults: the official protocol).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Subset sizes, comma-separated [full: 5,10,15; quick: 10].
    #[arg(long, value_delimiter = ',', value_parser = positive_usize)]
    pub ks: Option<Vec<usize>>,
    /// Methods, comma-separated, from l2x, softsub, ste, imle-map, imle-gumbel, imle-sog,
    /// aimle [k = 10: all; k = 5, 15: l2x, softsub, imle-sog (the paper's rows)].
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Runs per row (each its own seed and validation/test split) [paper: 10; full: 5;
    /// quick: 1].
    #[arg(long, value_parser = positive_usize)]
    pub runs: Option<usize>,
    /// Epochs [paper: 20; quick: 3].
    #[arg(long, value_parser = positive_usize)]
    pub epochs: Option<usize>,
    /// Train on the first N training reviews [full: all; quick: 1000].
    #[arg(long, value_parser = positive_usize)]
    pub train_subset: Option<usize>,
    /// Sequence length (padded and truncated at the front) [paper: 350; a generated set:
    /// its generator's `long_length`, 150 by default, its reviews being shorter].
    #[arg(long, value_parser = positive_usize)]
    pub maxlen: Option<usize>,
    /// Batch size [paper: 40].
    #[arg(long, value_parser = positive_usize)]
    pub batch: Option<usize>,
    /// λ of the I-MLE target [paper: 1000].
    #[arg(long, value_parser = super::positive_f64)]
    pub lambda: Option<f64>,
    /// τ of the Sum-of-Gamma noise of STE, I-MLE SoG and AIMLE [paper: 5 for k = 5,
    /// 30 otherwise].
    #[arg(long, value_parser = super::positive_f64)]
    pub sog_tau: Option<f64>,
    /// Replace a method's estimator: METHOD=SPEC, repeatable (SPEC: `kind:key=value,...`
    /// or JSON, see `imle_paper::spec`; e.g. `imle-sog=imle:lambda=100,noise=sog,kappa=10,tau=30`).
    #[arg(long = "spec", value_parser = parse_method_spec)]
    pub specs: Vec<(Method, EstimatorSpec)>,
    /// Directory of the BeerAdvocate-layout files (then $IMLE_DATA_DIR, datasets/beer/; none
    /// there: the generated set is written to datasets/beer/).
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

/// The paper's rows for `k`: all methods at k = 10, L2X, SoftSub and I-MLE otherwise.
pub fn paper_methods(k: usize) -> Vec<Method> {
    if k == 10 {
        Method::ALL.to_vec()
    } else {
        vec![Method::L2x, Method::Softsub, Method::ImleSog]
    }
}

/// Resolved configuration of Table 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// One configuration per (k, method, run); seeds filled in at run time.
    pub runs: Vec<ExplainConfig>,
    /// The generator's settings when the data are generated (None: the user's files).
    pub generated: Option<GeneratorConfig>,
    /// Where the files are looked for first (not part of the configuration: checkpoints
    /// record the data's checksum).
    #[serde(skip)]
    pub data_dir: Option<PathBuf>,
}

impl Args {
    /// The configuration for `profile`.
    pub fn resolve(&self, profile: Profile) -> Result<Config> {
        let (_, generated) = beer::find_or_generate(self.data_dir.as_deref())?;
        let maxlen = self.maxlen.unwrap_or(match &generated {
            Some(g) => g.long_length,
            None => beer::PAPER_MAXLEN,
        });
        let ks = self
            .ks
            .clone()
            .unwrap_or_else(|| profile.pick(vec![10], vec![5, 10, 15]));
        let chosen: Option<Vec<Method>> = self
            .methods
            .as_ref()
            .map(|names| super::parse_methods(names, Method::parse, &Method::ALL.map(|m| m.name())))
            .transpose()?;
        let runs_per_row = self.runs.unwrap_or(profile.pick(1, 5));
        // Run index outermost: a partial full run has whole tables of fewer runs.
        let mut runs = Vec::new();
        for run in 0..runs_per_row {
            for &k in &ks {
                if k > maxlen {
                    bail!("k = {k} is larger than the sequence length {maxlen}");
                }
                for m in chosen.clone().unwrap_or_else(|| paper_methods(k)) {
                    let mut c = ExplainConfig::paper(m, k, maxlen);
                    let tau = self.sog_tau.unwrap_or(Method::default_tau(k));
                    let lambda = self.lambda.map_or(1000.0, |l| l as f32);
                    c.spec = self
                        .specs
                        .iter()
                        .rev()
                        .find(|(sm, _)| *sm == m)
                        .map_or_else(|| m.spec(k, lambda, tau), |(_, s)| s.clone());
                    c.spec
                        .build(imle::solver::TopK::new(k), k)
                        .with_context(|| format!("the estimator of {}", m.name()))?;
                    c.epochs = self.epochs.unwrap_or(profile.pick(3, 20));
                    c.batch = self.batch.unwrap_or(c.batch);
                    c.train_subset = self.train_subset.or(profile.pick(Some(1000), None));
                    c.run = run;
                    runs.push(c);
                }
            }
        }
        if let Some((m, _)) = self
            .specs
            .iter()
            .find(|(m, _)| !runs.iter().any(|c| c.method == *m))
        {
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

/// The data set, read once per process (every unit trains on it).
fn beer_data(dir: Option<&Path>, maxlen: usize) -> Result<Arc<Beer>> {
    let (found, _) = beer::find_or_generate(dir)?;
    trained::cached(format!("{}:{maxlen}", found.display()), || {
        let data = beer::load_from(&found, maxlen)?;
        println!(
            "table1: {} ({} training, {} held-out, {} annotated reviews; vocabulary {}, {:.0} % \
             with an embedding)",
            data.dir.display(),
            data.train.len(),
            data.heldout.len(),
            data.annotated.len(),
            data.vocab.len(),
            100.0 * data.embedded_share
        );
        Ok(data)
    })
}

/// The result of one run (`examples`: a few annotated reviews with the best model's
/// selection).
pub type RunResult = trained::RunOf<ExplainConfig>;

impl TrainedRun for ExplainConfig {
    const EXPERIMENT: &'static str = "table1";
    const BEST: (&'static str, bool) = ("val_mse", false);
    type Data = Beer;
    type Learner = Explainer;
    type Examples = Vec<Vec<MarkedWord>>;

    trained::run_fields!();
    fn data(&self, data_dir: Option<&Path>) -> Result<Arc<Beer>> {
        beer_data(data_dir, self.maxlen)
    }
    fn identity(&self, data: &Beer) -> (String, String) {
        ("beer".into(), data.checksum.clone())
    }
    fn learner(&self, data: Arc<Beer>) -> Result<Explainer> {
        Explainer::new(self.clone(), data)
    }
    fn log_line(&self, r: &EpochRecord) -> String {
        format!(
            "{:>22} epoch {:>2}: train MSE {:.4}  val {:.4}  test {:.4}  precision {:.1} %  {:.1}+{:.1} s",
            unit_name(self),
            r.epoch,
            r.train("mse"),
            r.eval("val_mse"),
            r.eval("test_mse"),
            100.0 * r.eval("precision"),
            r.train_seconds,
            r.eval_seconds
        )
    }
    /// Three annotated reviews with the selection of the best-validation model.
    fn examples(&self, learner: &mut Explainer, dir: &Path) -> Result<Vec<Vec<MarkedWord>>> {
        let best = Checkpoint::load(&dir.join(trained::BEST))?;
        learner
            .model_from(&best)
            .with_context(|| format!("loading {}", dir.join(trained::BEST).display()))?;
        examples(learner, 3)
    }
}

/// The first `n` annotated reviews with `learner`'s test-time selection marked.
pub fn examples(learner: &Explainer, n: usize) -> Result<Vec<Vec<MarkedWord>>> {
    let data = &learner.data;
    let enc = &data.annotated;
    let idx: Vec<usize> = (0..n.min(enc.len())).collect();
    let (_, z) = learner.select(enc, &idx)?;
    let l = enc.maxlen;
    Ok(idx
        .iter()
        .map(|&r| {
            let tokens = &data.annotated_tokens[r];
            let mut words: Vec<MarkedWord> = tokens
                .iter()
                .enumerate()
                .map(|(t, w)| MarkedWord {
                    text: w.clone(),
                    selected: false,
                    rationale: data.aroma_ranges[r].iter().any(|&(a, b)| a <= t && t < b),
                })
                .collect();
            for p in 0..l {
                if z[r * l + p] != 0.0 {
                    if let Some(t) = enc.token_index(r, p) {
                        words[t].selected = true;
                    }
                }
            }
            // Only the part the model saw (the last maxlen tokens).
            words.split_off(tokens.len().saturating_sub(l))
        })
        .collect())
}

/// Table 1 on the framework: one unit per (k, method, run).
pub struct Table1;

impl Experiment for Table1 {
    const NAME: &'static str = "table1";
    const TITLE: &'static str =
        "Table 1 — learning to explain (aroma), k-subset selection (Sec. 6)";
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
    fn report(
        cfg: &Config,
        units: &[(String, Option<RunResult>)],
        ctx: &RunContext,
    ) -> Result<Report> {
        report(cfg, units, ctx)
    }
}

/// The paper's test MSE × 100 (mean, std over 10 runs) for `(k, method)`, as quoted in
/// Table 1 of Sahoo et al. (ICLR 2023) from Niepert et al. (2021); None where not
/// transcribed here.
pub fn paper_mse(k: usize, m: Method) -> Option<(f64, f64)> {
    Some(match (k, m) {
        (5, Method::ImleSog) => (2.62, 0.05),
        (10, Method::ImleSog) => (2.71, 0.10),
        (15, Method::ImleSog) => (2.91, 0.18),
        (5, Method::L2x) => (5.75, 0.30),
        (10, Method::L2x) => (6.68, 1.08),
        (15, Method::L2x) => (7.71, 0.64),
        (5, Method::Softsub) => (2.57, 0.12),
        (10, Method::Softsub) => (2.67, 0.14),
        (15, Method::Softsub) => (2.52, 0.07),
        _ => return None,
    })
}

/// One row of the table: `(k, method)` over its runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// k.
    pub k: usize,
    /// Method name.
    pub method: String,
    /// Label.
    pub label: String,
    /// The estimator.
    pub spec: EstimatorSpec,
    /// Runs with all epochs done / configured.
    pub runs_done: usize,
    /// Runs configured.
    pub runs: usize,
    /// Test MSE × 100 at the best-validation epoch: mean, std (population) over runs.
    pub mse_x100: (f64, f64),
    /// Subset precision × 100 at the best-validation epoch: mean, std.
    pub precision_x100: (f64, f64),
    /// The paper's test MSE × 100.
    pub paper_mse_x100: Option<(f64, f64)>,
    /// Median seconds per training epoch.
    pub epoch_seconds: f64,
    /// Rayon threads of the epochs.
    pub threads: Vec<usize>,
}

fn rows(units: &[(String, Option<RunResult>)]) -> Vec<Row> {
    let mut keys: Vec<(usize, Method)> = Vec::new();
    for r in units.iter().filter_map(|(_, u)| u.as_ref()) {
        let key = (r.config.k, r.config.method);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.iter()
        .map(|&(k, m)| {
            let of: Vec<&RunResult> = units
                .iter()
                .filter_map(|(_, u)| u.as_ref())
                .filter(|r| r.config.k == k && r.config.method == m)
                .collect();
            let done: Vec<&&RunResult> = of.iter().filter(|r| r.complete).collect();
            let best: Vec<&EpochRecord> = done.iter().filter_map(|r| r.best()).collect();
            let mut threads: Vec<usize> = of
                .iter()
                .flat_map(|r| r.epochs.iter().map(|e| e.threads))
                .collect();
            threads.sort_unstable();
            threads.dedup();
            Row {
                k,
                method: m.name().into(),
                label: m.label().into(),
                spec: of[0].config.spec.clone(),
                runs_done: done.len(),
                runs: units
                    .iter()
                    .filter(|(n, _)| n.starts_with(&format!("k{k}/{}/", m.name())))
                    .count(),
                mse_x100: mean_std(best.iter().map(|e| 100.0 * e.eval("test_mse"))),
                precision_x100: mean_std(best.iter().map(|e| 100.0 * e.eval("precision"))),
                paper_mse_x100: paper_mse(k, m),
                epoch_seconds: median(
                    of.iter()
                        .flat_map(|r| r.epochs.iter().map(|e| e.train_seconds)),
                ),
                threads,
            }
        })
        .collect()
}

fn pm((m, s): (f64, f64)) -> String {
    if m.is_finite() {
        format!("{m:.2} ± {s:.2}")
    } else {
        "–".into()
    }
}

/// Table 1's report: `table1.csv` (one row per k and method), `table1_runs.csv` (per
/// run), `table1.png` (validation MSE and precision per epoch at k = 10),
/// `table1_explanations.png` (selected words per method), record and README section.
pub fn report(
    cfg: &Config,
    units: &[(String, Option<RunResult>)],
    _ctx: &RunContext,
) -> Result<Report> {
    let rows = rows(units);
    let table = Table::new()
        .i64("k", rows.iter().map(|r| r.k as i64).collect())
        .str("method", rows.iter().map(|r| r.method.clone()).collect())
        .str("label", rows.iter().map(|r| r.label.clone()).collect())
        .i64(
            "runs_done",
            rows.iter().map(|r| r.runs_done as i64).collect(),
        )
        .i64("runs", rows.iter().map(|r| r.runs as i64).collect())
        .f64("mse_x100_mean", rows.iter().map(|r| r.mse_x100.0).collect())
        .f64("mse_x100_std", rows.iter().map(|r| r.mse_x100.1).collect())
        .f64(
            "precision_x100_mean",
            rows.iter().map(|r| r.precision_x100.0).collect(),
        )
        .f64(
            "precision_x100_std",
            rows.iter().map(|r| r.precision_x100.1).collect(),
        )
        .f64(
            "paper_mse_x100_mean",
            rows.iter()
                .map(|r| r.paper_mse_x100.map_or(f64::NAN, |p| p.0))
                .collect(),
        )
        .f64(
            "paper_mse_x100_std",
            rows.iter()
                .map(|r| r.paper_mse_x100.map_or(f64::NAN, |p| p.1))
                .collect(),
        )
        .f64(
            "epoch_seconds",
            rows.iter().map(|r| r.epoch_seconds).collect(),
        );
    let done: Vec<&RunResult> = units.iter().filter_map(|(_, u)| u.as_ref()).collect();
    let best: Vec<Option<&EpochRecord>> = done.iter().map(|r| r.best()).collect();
    let get = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<f64> {
        best.iter().map(|b| b.map_or(f64::NAN, f)).collect()
    };
    let runs_table = Table::new()
        .i64("k", done.iter().map(|r| r.config.k as i64).collect())
        .str(
            "method",
            done.iter()
                .map(|r| r.config.method.name().to_string())
                .collect(),
        )
        .i64("run", done.iter().map(|r| r.config.run as i64).collect())
        .bool("complete", done.iter().map(|r| r.complete).collect())
        .i64(
            "epochs_done",
            done.iter().map(|r| r.epochs.len() as i64).collect(),
        )
        .i64(
            "best_epoch",
            best.iter()
                .map(|b| b.map_or(0, |e| e.epoch as i64))
                .collect(),
        )
        .f64("val_mse", get(&|e| e.eval("val_mse")))
        .f64("test_mse", get(&|e| e.eval("test_mse")))
        .f64("precision", get(&|e| e.eval("precision")));

    // Curves at k = 10 (or the first k), mean over runs per epoch.
    let k_plot = if rows.iter().any(|r| r.k == 10) {
        10
    } else {
        rows.first().map_or(10, |r| r.k)
    };
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
                format!("validation MSE × 100 (k = {k_plot})"),
                "MSE × 100",
                "val_mse",
            ),
            (
                format!("subset precision × 100 (k = {k_plot})"),
                "precision × 100",
                "precision",
            ),
        ],
    );
    let mut figures = vec![(
        "table1".to_string(),
        Figure::rows(vec![charts], (1100, 430))
            .title("Table 1 — learning to explain: per-epoch validation MSE and subset precision"),
    )];
    let panels: Vec<Vec<Panel>> = Method::ALL
        .iter()
        .filter_map(|m| {
            let r = done.iter().find(|r| r.config.k == k_plot && r.config.method == *m && r.config.run == 0)?;
            let ex = r.examples.as_ref()?;
            Some(vec![Panel::Words(WordPanel {
                title: format!("{} (k = {k_plot}): selected ∩ rationale green, selected only red, missed rationale underlined", m.label()),
                texts: ex.iter().take(2).cloned().collect(),
            })])
        })
        .collect();
    if !panels.is_empty() {
        let n = panels.len() as u32;
        figures.push((
            "table1_explanations".to_string(),
            Figure::rows(panels, (1200, 190 * n))
                .title("Selected words of two annotated test reviews"),
        ));
    }

    let data_note = match &cfg.generated {
        Some(g) => format!(
            "**Data: the generated look-alike set** (`imle-paper data generate beer --seed {}`: {} training, {} held-out, {} annotated reviews; see `datasets/beer/README.md`), **not the BeerAdvocate reviews** — the paper's numbers beside ours are for the real data and are not comparable in value, only in ranking.",
            g.seed, g.train, g.heldout, g.annotated
        ),
        None => "Data: the user's BeerAdvocate-layout files.".into(),
    };
    let c0 = cfg.runs.first();
    let mut md = template::fill(
        include_str!("prose/table1_intro.md"),
        &[
            ("data_note", data_note),
            ("maxlen", c0.map_or(0, |c| c.maxlen).to_string()),
            ("epochs", c0.map_or(0, |c| c.epochs).to_string()),
            ("batch", c0.map_or(0, |c| c.batch).to_string()),
        ],
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {}/{} | {} | {} | {} | {:.1} |\n",
            r.k,
            r.label,
            r.runs_done,
            r.runs,
            pm(r.mse_x100),
            pm(r.precision_x100),
            r.paper_mse_x100.map_or("–".into(), pm),
            r.epoch_seconds
        ));
    }
    md.push_str(&template::fill(include_str!("prose/table1_notes.md"), &[]));
    let lines = rows
        .iter()
        .map(|r| {
            format!(
                "k = {:>2} {:<26} MSE×100 {:<14} precision×100 {:<14} ({}/{} runs)",
                r.k,
                r.label,
                pm(r.mse_x100),
                pm(r.precision_x100),
                r.runs_done,
                r.runs
            )
        })
        .collect();
    Ok(Report {
        data: serde_json::json!({ "runs": done }),
        summary: serde_json::to_value(&rows)?,
        tables: vec![("table1".into(), table), ("table1_runs".into(), runs_table)],
        figures,
        readme: md,
        lines,
    })
}

/// `--eval CHECKPOINT`: the test MSE on the whole held-out set and the subset precision
/// of the model in `checkpoint`, on the data set found as `data_dir` says.
pub fn evaluate_checkpoint(path: &Path, data_dir: Option<&Path>) -> Result<Vec<String>> {
    let (ck, mut c): (Checkpoint, ExplainConfig) = Checkpoint::load_run(path, "table1")?;
    c.epochs = ck.header.history.len();
    let data = Arc::new(match data_dir {
        Some(d) => beer::load(Some(d), c.maxlen)?,
        None => beer::load_from(&beer::find_or_generate(None)?.0, c.maxlen)?,
    });
    let mut learner = Explainer::new(c.clone(), data.clone())?;
    learner.model_from(&ck)?;
    let all: Vec<usize> = (0..data.heldout.len()).collect();
    let mse = learner.mse(&data.heldout, &all)?;
    let precision = learner.precision()?;
    Ok(vec![
        format!(
            "{} ({} k = {}, after epoch {}) on {}:",
            path.display(),
            c.method.label(),
            c.k,
            c.epochs,
            data.dir.display()
        ),
        format!(
            "  test MSE × 100 (all {} held-out reviews): {:.3}",
            all.len(),
            100.0 * mse
        ),
        format!(
            "  subset precision × 100 ({} annotated reviews): {:.2}",
            data.annotated.len(),
            100.0 * precision
        ),
    ])
}
