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
use crate::stats::{mean_std, median, pm};
use crate::train::{Checkpoint, EpochRecord};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod report;
pub use report::{paper_mse, report, Row};

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
    trained::experiment_units!();
    fn report(
        cfg: &Config,
        units: &[(String, Option<RunResult>)],
        ctx: &RunContext,
    ) -> Result<Report> {
        report(cfg, units, ctx)
    }
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
