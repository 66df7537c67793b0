//! Figure 4 (Sec. 6): the discrete k-subset VAE on MNIST.
//!
//! Test loss against epochs for I-MLE with Sum-of-Gamma vs Gumbel noise (left), the
//! straight-through estimator (middle) and the categorical 1-of-20 VAE trained with the
//! Gumbel-softmax trick with temperature annealing ("GSMT", right); optionally, beyond
//! the paper, adaptive I-MLE and two-sided I-MLE (a fourth panel). The protocol (the
//! official code's) is documented in [`crate::vae`].
//!
//! Every method is one unit of the experiment and trains in its own run directory
//! (`<run-dir>/<method>/checkpoint.safetensors`, written atomically after every epoch by
//! [`crate::train::Trainer`]): a killed run started again with the same command resumes
//! from the last finished epoch and gives the same numbers as an uninterrupted run.
//! `--report-only` draws the figure from the finished units and the checkpoints present
//! without training (partial runs are labelled as such); `--shard i/N` trains every N-th
//! method.

use super::{positive_usize, Experiment, Profile, Report, RunContext};
use crate::data::mnist::{self, Mnist};
use crate::output::Table;
use crate::plot::{Figure, ImageGrid, LineChart, Panel, Series};
use crate::run::log_line;
use crate::train::{Checkpoint, EpochRecord};
use crate::vae::train::CHECKPOINT;
use crate::vae::{Backend, Method, Vae, VaeConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod report;
#[cfg(feature = "csv")]
pub use report::curves_from_frame;
pub use report::{figure, report, sample_grid};

/// Command-line overrides of Figure 4 (defaults: the official code's protocol).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Methods, comma-separated, from imle-sog, imle-gumbel, ste-sog, ste-gumbel, gsmt,
    /// aimle, imle-two-sided [quick: imle-sog,imle-gumbel,ste-sog,gsmt;
    /// full: the same four].
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Epochs [paper: 100; quick: 10].
    #[arg(long, value_parser = positive_usize)]
    pub epochs: Option<usize>,
    /// Train on the first N training images [full: all 60000; quick: 6000].
    #[arg(long, value_parser = positive_usize)]
    pub train_subset: Option<usize>,
    /// Evaluate on the first N test images [both: all 10000].
    #[arg(long, value_parser = positive_usize)]
    pub test_subset: Option<usize>,
    /// Batch size [paper: 100].
    #[arg(long, value_parser = positive_usize)]
    pub batch: Option<usize>,
    /// λ of the I-MLE target [paper: 10].
    #[arg(long, value_parser = super::positive_f64)]
    pub lambda: Option<f64>,
    /// τ of the Sum-of-Gamma noise [paper: 10].
    #[arg(long, value_parser = super::positive_f64)]
    pub sog_tau: Option<f64>,
    /// Directory holding the MNIST files (then $IMLE_DATA_DIR, datasets/mnist/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Replace a method's estimator: METHOD=SPEC, repeatable, e.g.
    /// `--spec imle-sog=imle:noise=sog,kappa=10,tau=10,s=10,lambda=5,scale_by_lambda=true`
    /// (SPEC: `kind:key=value,...` or JSON; see `imle_paper::spec`). The record keeps the
    /// spec used.
    #[arg(long = "spec", value_parser = parse_method_spec)]
    pub specs: Vec<(Method, crate::spec::EstimatorSpec)>,
    /// Where the forward/backward passes run: cpu (imle-conv's Dense layers, fastest on
    /// a CPU), dfdx-cpu (dfdx's Linear through the device-generic path) or cuda (dfdx's
    /// Linear on the GPU; needs a binary built with --features cuda). Checkpoints, seeds
    /// and the optimiser stay on the host, so a run can resume on another device.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub device: Backend,
}

fn parse_method_spec(s: &str) -> std::result::Result<(Method, crate::spec::EstimatorSpec), String> {
    super::method_spec(s, Method::parse)
}

/// Resolved configuration of Figure 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// One training configuration per method (seed filled in at run time).
    pub runs: Vec<VaeConfig>,
    /// Where the MNIST files are looked for first (not part of the configuration: the
    /// checkpoints record the data's checksum instead).
    #[serde(skip)]
    pub data_dir: Option<PathBuf>,
    /// Where the passes run.
    #[serde(default)]
    pub device: Backend,
}

/// The four methods of the paper's figure.
pub const PAPER_METHODS: [Method; 4] = [
    Method::ImleSog,
    Method::ImleGumbel,
    Method::SteSog,
    Method::Gsmt,
];

impl Args {
    /// The configuration for `profile` (quick: 6000 training images, 10 epochs).
    pub fn resolve(&self, profile: Profile) -> Result<Config> {
        self.device.check_available()?;
        let methods: Vec<Method> = match &self.methods {
            None => PAPER_METHODS.to_vec(),
            Some(names) => {
                super::parse_methods(names, Method::parse, &Method::ALL.map(|m| m.name()))?
            }
        };
        if let Some((m, _)) = self.specs.iter().find(|(m, _)| !methods.contains(m)) {
            bail!("--spec names {}, which is not among --methods", m.name());
        }
        let runs = methods
            .into_iter()
            .map(|m| {
                let mut c = VaeConfig::paper(m);
                c.epochs = self.epochs.unwrap_or(profile.pick(10, 100));
                c.train_subset = self.train_subset.or(profile.pick(Some(6000), None));
                c.test_subset = self.test_subset;
                c.batch = self.batch.unwrap_or(c.batch);
                if let Some(l) = self.lambda {
                    c.latent.lambda = l as f32;
                }
                if let Some(t) = self.sog_tau {
                    c.latent.sog_tau = t;
                }
                c.spec = self
                    .specs
                    .iter()
                    .rev()
                    .find(|(sm, _)| *sm == m)
                    .map(|(_, s)| s.clone());
                c
            })
            .collect::<Vec<VaeConfig>>();
        for c in &runs {
            crate::vae::Latent::with_spec(c.method, &c.latent, c.spec.as_ref())
                .with_context(|| format!("the estimator of {}", c.method.name()))?;
        }
        Ok(Config {
            runs,
            data_dir: self.data_dir.clone(),
            device: self.device,
        })
    }
}

/// The curves of one method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodCurves {
    /// Method name.
    pub method: String,
    /// Legend label.
    pub label: String,
    /// The estimator of the latent layer and its hyper-parameters.
    #[serde(default)]
    pub spec: Option<crate::spec::EstimatorSpec>,
    /// The training configuration.
    pub config: VaeConfig,
    /// Whether all configured epochs are done.
    pub complete: bool,
    /// One record per finished epoch.
    pub epochs: Vec<EpochRecord>,
}

impl MethodCurves {
    fn mean_epoch_seconds(&self) -> (f64, f64) {
        let n = self.epochs.len().max(1) as f64;
        (
            self.epochs.iter().map(|r| r.train_seconds).sum::<f64>() / n,
            self.epochs.iter().map(|r| r.eval_seconds).sum::<f64>() / n,
        )
    }

    /// Median seconds per training epoch (robust to the epochs slowed by other work).
    fn median_train_seconds(&self) -> f64 {
        match self.epochs.len() {
            0 => 0.0,
            _ => crate::stats::median(self.epochs.iter().map(|r| r.train_seconds)),
        }
    }

    /// The distinct thread counts the epochs ran on (0: not recorded).
    fn threads(&self) -> Vec<usize> {
        let mut t: Vec<usize> = self.epochs.iter().map(|r| r.threads).collect();
        t.sort_unstable();
        t.dedup();
        t
    }
}

/// Headline numbers of one method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodSummary {
    /// Method name.
    pub method: String,
    /// Epochs finished / configured.
    pub epochs_done: usize,
    /// Epochs configured.
    pub epochs: usize,
    /// Test loss after the last finished epoch.
    pub final_test_loss: Option<f64>,
    /// Lowest test loss over the epochs.
    pub best_test_loss: Option<f64>,
    /// Mean seconds per training epoch (this machine, the run's thread count).
    pub train_seconds_per_epoch: f64,
    /// Median seconds per training epoch.
    pub median_train_seconds_per_epoch: f64,
    /// Mean seconds per test pass.
    pub test_seconds_per_epoch: f64,
    /// Rayon threads the epochs were trained with (0: not recorded by older versions).
    pub threads: Vec<usize>,
}

/// The data of `fig4.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fig4Data {
    /// Per method.
    pub methods: Vec<MethodCurves>,
    /// Rayon threads of the process that wrote this file (the training threads of each
    /// epoch are in its record).
    pub rayon_threads: usize,
}

/// The run directory of one method.
pub fn method_dir(ctx: &RunContext, m: Method) -> PathBuf {
    ctx.run_dir_of("fig4").join(m.name())
}

/// MNIST from `dir` (see [`mnist::load`]), read once per process: every method's unit
/// trains on it.
fn mnist_data(dir: Option<&Path>) -> Result<Arc<Mnist>> {
    super::trained::cached(format!("mnist:{dir:?}"), || {
        let data = mnist::load(dir)?;
        println!("MNIST: {}", data.dir.display());
        Ok(data)
    })
}

/// What one method's unit produces: its curves and a sample grid of the trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodUnit {
    /// The curves.
    pub curves: MethodCurves,
    /// Reconstructions and prior samples (absent for a partial run read back).
    pub grid: Option<ImageGrid>,
}

/// The configuration of `method` with the run's seed.
fn run_config(cfg: &Config, method: &str, seed: u64) -> Result<VaeConfig> {
    let c = cfg
        .runs
        .iter()
        .find(|c| c.method.name() == method)
        .with_context(|| format!("fig4 has no method '{method}'"))?;
    Ok(VaeConfig { seed, ..c.clone() })
}

/// Trains (or resumes) one method in `dir`, with a progress bar and one line per epoch.
pub fn train_method(
    cfg: &VaeConfig,
    backend: Backend,
    data: &Mnist,
    dir: &Path,
    ctx: &RunContext,
) -> Result<Vae> {
    let mut t = Vae::with_backend(cfg.clone(), backend)?;
    let mut trainer = t.trainer(&data.train, &data.test, Some(dir))?;
    trainer.progress = ctx.progress;
    trainer.verbose = false;
    let pb = ctx.progress(0, "");
    t.fit_with(&trainer, &data.train, &data.test, |r| {
        log_line(
            &pb,
            &format!(
                "{:>14} epoch {:>3}: train {:.3}  test {:.3} (BCE {:.3} + KL {:.3})  {:.1}+{:.1} s",
                cfg.method.name(),
                r.epoch,
                r.train("loss"),
                r.eval("loss"),
                r.eval("recon"),
                r.eval("kl"),
                r.train_seconds,
                r.eval_seconds
            ),
        )
    })?;
    Ok(t)
}

fn curves_of(c: &VaeConfig, history: Vec<EpochRecord>) -> MethodCurves {
    MethodCurves {
        method: c.method.name().into(),
        label: c.method.label().into(),
        spec: Some(c.spec.clone().unwrap_or_else(|| c.method.spec(&c.latent))),
        config: c.clone(),
        complete: history.len() >= c.epochs,
        epochs: history,
    }
}

/// Figure 4 on the framework: one unit per method.
pub struct Fig4;

impl Experiment for Fig4 {
    const NAME: &'static str = "fig4";
    const TITLE: &'static str = "Figure 4 — discrete k-subset VAE on MNIST (Sec. 6)";
    const DATA: &'static [&'static str] = &["mnist"];
    type Args = Args;
    type Config = Config;
    type Unit = MethodUnit;

    fn resolve(args: &Args, profile: Profile) -> Result<Config> {
        args.resolve(profile)
    }
    fn units(cfg: &Config) -> Vec<String> {
        cfg.runs
            .iter()
            .map(|c| c.method.name().to_string())
            .collect()
    }
    fn data_identity(cfg: &Config) -> Result<Vec<(String, String)>> {
        Ok(vec![(
            "mnist".into(),
            mnist_data(cfg.data_dir.as_deref())?.checksum.clone(),
        )])
    }
    fn compute(cfg: &Config, unit: &str, ctx: &RunContext) -> Result<MethodUnit> {
        let c = run_config(cfg, unit, ctx.seed)?;
        let data = mnist_data(cfg.data_dir.as_deref())?;
        let dir = method_dir(ctx, c.method);
        let ck = dir.join(CHECKPOINT);
        if ctx.fresh && ck.exists() {
            std::fs::remove_file(&ck).with_context(|| format!("removing {}", ck.display()))?;
        }
        let t = train_method(&c, cfg.device, &data, &dir, ctx)?;
        let grid = sample_grid(
            &t,
            &data.test,
            crate::run::derive_seed(ctx.seed, "fig4/grid", 0),
        )?;
        Ok(MethodUnit {
            curves: curves_of(&c, t.history),
            grid: Some(grid),
        })
    }
    fn partial(cfg: &Config, unit: &str, ctx: &RunContext) -> Result<Option<MethodUnit>> {
        let c = run_config(cfg, unit, ctx.seed)?;
        let path = method_dir(ctx, c.method).join(CHECKPOINT);
        let Some(ck) = path.exists().then(|| Checkpoint::load(&path)).transpose()? else {
            return Ok(None);
        };
        let mine = serde_json::to_value(c.without_epochs())?;
        if !crate::output::same_json(&ck.header.stamp.config, &mine) {
            bail!(
                "{} was written by another configuration than the one asked for",
                path.display()
            );
        }
        Ok(Some(MethodUnit {
            curves: curves_of(&c, ck.header.history),
            grid: None,
        }))
    }
    fn report(
        cfg: &Config,
        units: &[(String, Option<MethodUnit>)],
        ctx: &RunContext,
    ) -> Result<Report> {
        report(cfg, units, ctx)
    }
}
