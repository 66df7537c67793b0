//! Figure 4 (Sec. 6): the discrete k-subset VAE on MNIST.
//!
//! Test loss against epochs for I-MLE with Sum-of-Gamma vs Gumbel noise (left), the
//! straight-through estimator (middle) and the categorical 1-of-20 VAE trained with the
//! Gumbel-softmax trick with temperature annealing ("GSMT", right); optionally, beyond
//! the paper, adaptive I-MLE and two-sided I-MLE (a fourth panel). The protocol (the
//! official code's) is documented in [`crate::vae`].
//!
//! Every method trains in its own run directory (`<run-dir>/<method>/checkpoint.bin`,
//! written atomically after every epoch): a killed run started again with the same
//! command resumes from the last finished epoch and gives the same numbers as an
//! uninterrupted run. `--report-only` draws the figure from the checkpoints present
//! without training (partial runs are labelled as such).

use super::{positive_usize, Profile, RunContext, Summary};
use crate::data::mnist::{self, Mnist};
use crate::output::Table;
use crate::plot::{Figure, ImageGrid, LineChart, Panel, Series};
use crate::vae::train::{Checkpoint, CHECKPOINT};
use crate::vae::{Backend, EpochRecord, Method, Trainer, VaeConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// Directory holding the MNIST files (then $IMLE_DATA_DIR, datasets/mnist/,
    /// ../shared/datasets/mnist/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run directory for checkpoints [runs/fig4/<profile>]; one subfolder per method.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Delete existing checkpoints of the chosen methods and start afresh.
    #[arg(long, conflicts_with = "report_only")]
    pub fresh: bool,
    /// Do not train: draw the figure from the checkpoints in the run directory.
    #[arg(long)]
    pub report_only: bool,
    /// Where the forward/backward passes run: cpu (imle-conv's Dense layers, fastest on
    /// a CPU), dfdx-cpu (dfdx's Linear through the device-generic path) or cuda (dfdx's
    /// Linear on the GPU; needs a binary built with --features cuda). Checkpoints, seeds
    /// and the optimiser stay on the host, so a run can resume on another device.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub device: Backend,
}

/// Resolved configuration of Figure 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// One training configuration per method (seed filled in at run time).
    pub runs: Vec<VaeConfig>,
    /// Where the MNIST files are looked for first.
    pub data_dir: Option<PathBuf>,
    /// Run directory (one subfolder per method).
    pub run_dir: PathBuf,
    /// Delete existing checkpoints first.
    pub fresh: bool,
    /// Only report what the checkpoints hold.
    pub report_only: bool,
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
            Some(names) => names
                .iter()
                .map(|n| {
                    Method::parse(n.trim()).with_context(|| {
                        format!(
                            "unknown method '{n}'; choose from {}",
                            Method::ALL.map(|m| m.name()).join(", ")
                        )
                    })
                })
                .collect::<Result<_>>()?,
        };
        if methods.is_empty() {
            bail!("--methods needs at least one method");
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
                c
            })
            .collect();
        Ok(Config {
            runs,
            data_dir: self.data_dir.clone(),
            run_dir: self
                .run_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("runs/fig4/{profile}"))),
            fresh: self.fresh,
            report_only: self.report_only,
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
            self.epochs.iter().map(|r| r.test_seconds).sum::<f64>() / n,
        )
    }

    /// Median seconds per training epoch (robust to the epochs slowed by other work).
    fn median_train_seconds(&self) -> f64 {
        let mut t: Vec<f64> = self.epochs.iter().map(|r| r.train_seconds).collect();
        t.sort_by(f64::total_cmp);
        match t.len() {
            0 => 0.0,
            n if n % 2 == 1 => t[n / 2],
            n => (t[n / 2 - 1] + t[n / 2]) / 2.0,
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
pub fn method_dir(cfg: &Config, m: Method) -> PathBuf {
    cfg.run_dir.join(m.name())
}

/// Reads the curves a checkpoint holds (None if there is no checkpoint).
pub fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() < 16 || &bytes[..8] != b"IMLEVAE1" {
        bail!("{} is not a VAE checkpoint", path.display());
    }
    let n = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
    let json = bytes
        .get(16..16 + n)
        .with_context(|| format!("{} is truncated", path.display()))?;
    Ok(Some(serde_json::from_slice(json)?))
}

/// Trains (or resumes) one method; `log` receives one line per epoch.
pub fn train_method(
    cfg: &VaeConfig,
    backend: Backend,
    data: &Mnist,
    dir: &Path,
    mut log: impl FnMut(&EpochRecord),
) -> Result<Trainer> {
    let mut t = Trainer::with_backend(cfg.clone(), backend)?;
    t.fit(&data.train, &data.test, Some(dir), |r| log(r))?;
    Ok(t)
}

/// The figure: three panels as the paper (+ one for the methods beyond the paper).
pub fn figure(curves: &[MethodCurves]) -> Figure {
    let groups: [(&str, &[Method]); 4] = [
        (
            "I-MLE: SoG vs Gumbel noise",
            &[
                Method::ImleSog,
                Method::ImleGumbel,
                Method::ImleSogOfficialRate,
            ],
        ),
        ("STE (10-subset)", &[Method::SteSog, Method::SteGumbel]),
        ("Gumbel-softmax, 1-of-20 (GSMT)", &[Method::Gsmt]),
        (
            "beyond the paper",
            &[Method::Aimle, Method::ImleTwoSided, Method::ImleSog],
        ),
    ];
    let mut panels = Vec::new();
    for (gi, (title, methods)) in groups.iter().enumerate() {
        let present: Vec<&MethodCurves> = methods
            .iter()
            .filter_map(|m| curves.iter().find(|c| c.method == m.name()))
            .filter(|c| !c.epochs.is_empty())
            .collect();
        // The fourth panel only when a beyond-the-paper method ran.
        let beyond = gi == 3;
        if present.is_empty() || (beyond && present.iter().all(|c| c.method == "imle-sog")) {
            if !beyond {
                panels.push(Panel::Line(LineChart::new(
                    format!("{title} (not run)"),
                    "epoch",
                    "test loss",
                )));
            }
            continue;
        }
        let mut chart = LineChart::new(*title, "epoch", "test loss (BCE + KL)");
        for c in present {
            let idx = Method::ALL
                .iter()
                .position(|m| m.name() == c.method)
                .unwrap_or(0);
            let x: Vec<f64> = c.epochs.iter().map(|r| r.epoch as f64).collect();
            let y: Vec<f64> = c.epochs.iter().map(|r| r.test_loss).collect();
            let name = if c.complete {
                c.label.clone()
            } else {
                format!(
                    "{} [partial: {}/{} epochs]",
                    c.label,
                    c.epochs.len(),
                    c.config.epochs
                )
            };
            let mut s = Series::new(name, x, y).color(idx);
            if beyond && c.method == "imle-sog" {
                s = s.dashed();
            }
            chart = chart.series(s);
        }
        panels.push(Panel::Line(chart));
    }
    let n = panels.len() as u32;
    Figure::rows(vec![panels], (480 * n, 420))
        .title("Figure 4 — discrete VAE on MNIST: test loss per epoch")
}

/// Reconstructions (with noisy samples) of the first 8 test images and 8 samples from
/// the prior, as one image grid per row: originals, reconstructions, prior samples.
pub fn sample_grid(
    t: &Trainer,
    test: &crate::data::mnist::MnistSplit,
    seed: u64,
) -> Result<ImageGrid> {
    let idx: Vec<usize> = (0..8.min(test.len())).collect();
    let x = test.batch_f32(&idx);
    let (recon, _) = t.reconstruct(x.clone(), seed, false)?;
    let prior = t.sample_prior(8, seed ^ 1);
    let mut images: Vec<Vec<f32>> = Vec::new();
    for block in [&x, &recon, &prior] {
        images.extend(block.chunks(784).map(|c| c.to_vec()));
    }
    Ok(ImageGrid {
        title: format!(
            "{}: test images / reconstructions / prior samples",
            t.cfg.method.name()
        ),
        images,
        width: 28,
        height: 28,
        cols: idx.len(),
    })
}

/// Runs Figure 4: trains (or resumes) each method, then writes `fig4.json`, `fig4.csv`,
/// `fig4.png`/`.svg` and `fig4_samples.png`/`.svg`.
pub fn run(cfg: &Config, ctx: &RunContext) -> Result<Summary> {
    let started = Instant::now();
    let runs: Vec<VaeConfig> = cfg
        .runs
        .iter()
        .map(|c| VaeConfig {
            seed: ctx.seed,
            ..c.clone()
        })
        .collect();
    let mut curves = Vec::new();
    let mut grid = None;
    let data = if cfg.report_only {
        None
    } else {
        let d = mnist::load(cfg.data_dir.as_deref())?;
        println!("MNIST: {}", d.dir.display());
        Some(d)
    };
    for c in &runs {
        let dir = method_dir(cfg, c.method);
        let ck = dir.join(CHECKPOINT);
        let history = if let Some(data) = &data {
            if cfg.fresh && ck.exists() {
                std::fs::remove_file(&ck).with_context(|| format!("removing {}", ck.display()))?;
            }
            let pb = ctx.progress(c.epochs as u64, c.method.name());
            let t = train_method(c, cfg.device, data, &dir, |r| {
                pb.set_position(r.epoch as u64);
                let line = format!(
                    "{:>14} epoch {:>3}: train {:.3}  test {:.3} (BCE {:.3} + KL {:.3})  {:.1}+{:.1} s",
                    c.method.name(),
                    r.epoch,
                    r.train_loss,
                    r.test_loss,
                    r.test_recon,
                    r.test_kl,
                    r.train_seconds,
                    r.test_seconds
                );
                if pb.is_hidden() {
                    println!("{line}");
                } else {
                    pb.println(line);
                }
            })?;
            pb.finish_and_clear();
            if grid.is_none() || c.method == Method::ImleSog {
                grid = Some(sample_grid(
                    &t,
                    &data.test,
                    super::derive_seed(ctx.seed, "fig4/grid", 0),
                )?);
            }
            t.history
        } else {
            match read_checkpoint(&ck)? {
                Some(k) if k.config.without_epochs_eq(c) => k.history,
                Some(_) => bail!(
                    "{} was written by another configuration than the one asked for",
                    ck.display()
                ),
                None => Vec::new(),
            }
        };
        curves.push(MethodCurves {
            method: c.method.name().into(),
            label: c.method.label().into(),
            config: c.clone(),
            complete: history.len() >= c.epochs,
            epochs: history,
        });
    }
    let fig = figure(&curves);
    let mut files = ctx.save_figure("fig4", &fig)?;
    if let Some(g) = grid {
        let f = Figure::single(Panel::Images(g), (640, 300));
        files.extend(ctx.save_figure("fig4_samples", &f)?);
    }
    // Long CSV: one row per (method, epoch).
    let rows: Vec<(&MethodCurves, &EpochRecord)> = curves
        .iter()
        .flat_map(|c| c.epochs.iter().map(move |r| (c, r)))
        .collect();
    let col =
        |f: &dyn Fn(&EpochRecord) -> f64| rows.iter().map(|(_, r)| f(r)).collect::<Vec<f64>>();
    let table = Table::new()
        .str(
            "method",
            rows.iter().map(|(c, _)| c.method.clone()).collect(),
        )
        .i64("epoch", rows.iter().map(|(_, r)| r.epoch as i64).collect())
        .f64("train_loss", col(&|r| r.train_loss))
        .f64("train_recon", col(&|r| r.train_recon))
        .f64("train_kl", col(&|r| r.train_kl))
        .f64("test_loss", col(&|r| r.test_loss))
        .f64("test_recon", col(&|r| r.test_recon))
        .f64("test_kl", col(&|r| r.test_kl))
        .f64(
            "temperature",
            col(&|r| r.temperature.map_or(f64::NAN, |t| t as f64)),
        )
        .f64("train_seconds", col(&|r| r.train_seconds))
        .f64("test_seconds", col(&|r| r.test_seconds))
        .f64("threads", col(&|r| r.threads as f64));
    files.push(ctx.write_table("fig4", &table)?);
    let summary: Vec<MethodSummary> = curves
        .iter()
        .map(|c| {
            let (tr, te) = c.mean_epoch_seconds();
            MethodSummary {
                method: c.method.clone(),
                epochs_done: c.epochs.len(),
                epochs: c.config.epochs,
                final_test_loss: c.epochs.last().map(|r| r.test_loss),
                best_test_loss: c.epochs.iter().map(|r| r.test_loss).min_by(f64::total_cmp),
                train_seconds_per_epoch: tr,
                median_train_seconds_per_epoch: c.median_train_seconds(),
                test_seconds_per_epoch: te,
                threads: c.threads(),
            }
        })
        .collect();
    let readme = readme(&curves, &summary, ctx, cfg.report_only);
    let data_rec = Fig4Data {
        methods: curves,
        rayon_threads: rayon::current_num_threads(),
    };
    let json = ctx.write_record(
        "fig4",
        "Figure 4 — discrete k-subset VAE on MNIST (Sec. 6)",
        cfg,
        &data_rec,
        &summary,
        started,
        files.clone(),
        readme,
    )?;
    Ok(Summary {
        experiment: "fig4".into(),
        files: std::iter::once(json)
            .chain(files.iter().map(|f| ctx.path(f)))
            .collect(),
        lines: summary
            .iter()
            .map(|s| {
                format!(
                    "{:>14}: {}/{} epochs, final test loss {}, {:.1} s/epoch train + {:.1} s test",
                    s.method,
                    s.epochs_done,
                    s.epochs,
                    s.final_test_loss.map_or("-".into(), |v| format!("{v:.3}")),
                    s.train_seconds_per_epoch,
                    s.test_seconds_per_epoch
                )
            })
            .collect(),
    })
}

fn readme(
    curves: &[MethodCurves],
    summary: &[MethodSummary],
    ctx: &RunContext,
    report_only: bool,
) -> String {
    let mut md = String::new();
    md.push_str(
        "Discrete VAE with 20 blocks of a 10-subset of 20 latent variables (GSMT: a 1-of-20 \
         categorical per block), the official code's protocol (batch 100, Adam lr 1e-3, \
         loss = BCE summed over pixels + KL of each block's softmax to the uniform, test \
         loss with noisy samples over the full test set unless a subset is stated); see \
         `src/vae/mod.rs` for every detail. The paper shows curves only (no table of \
         numbers); its claims are qualitative: I-MLE with SoG noise reaches a lower test \
         loss than with Gumbel noise, I-MLE beats STE, and the 10-subset I-MLE VAE is \
         competitive with the categorical Gumbel-softmax VAE.\n\n\
         | method | paper (Fig. 4) | epochs | final test loss | best test loss | s/epoch train (median) + test | threads |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (c, s) in curves.iter().zip(summary) {
        let paper = match c.method.as_str() {
            "imle-sog" => "lowest curve of the left panel",
            "imle-gumbel" => "above SoG (left panel)",
            "ste-sog" | "ste-gumbel" => "above I-MLE (middle panel)",
            "gsmt" => "right panel",
            "imle-sog-official-rate" => "(diagnostic: the official notebook's SoG noise)",
            _ => "(not in the paper)",
        };
        let sub = match c.config.train_subset {
            Some(n) => format!(", {n} train images"),
            None => String::new(),
        };
        md.push_str(&format!(
            "| {} | {} | {}/{}{}{} | {} | {} | {:.1} + {:.1} | {} |\n",
            c.label,
            paper,
            s.epochs_done,
            s.epochs,
            if c.complete {
                ""
            } else if c.epochs.is_empty() {
                " (not run)"
            } else {
                " **(partial)**"
            },
            sub,
            s.final_test_loss.map_or("-".into(), |v| format!("{v:.2}")),
            s.best_test_loss.map_or("-".into(), |v| format!("{v:.2}")),
            s.median_train_seconds_per_epoch,
            s.test_seconds_per_epoch + 0.0, // -0.0 (empty sum) prints as 0.0
            match s.threads.as_slice() {
                [] => "-".to_string(),
                [0] => "not recorded".to_string(),
                t => t
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        ));
    }
    md.push_str(&format!(
        "\nTimes: this machine, release build, {}, with the rayon threads each epoch was \
         trained on (results do not depend on them); runs resumed from checkpoints keep the \
         times of the process that trained each epoch. Profile `{}`.\n\n\
         **Noise parameterisation.** Our SoG noise is Eq. 13 (Gamma *scale* κ/i; the sum of \
         κ draws is Gumbel(0, τ), so at τ = 10 each entry has std ≈ 3.97). The official \
         notebook passes κ/i as a TensorFlow *rate*: its noise has mean −1.75 and std 0.62, \
         i.e. far weaker perturbations. `imle-sog-official-rate` reproduces that noise to \
         show how much of the paper's SoG-vs-Gumbel ordering it explains. Speed, a profile \
         and the provenance of the full runs: [`fig4-notes.md`](fig4-notes.md).\n",
        if report_only {
            "as recorded by the training processes (this report was drawn from their \
             checkpoints with `--report-only`)"
        } else {
            "as recorded while training"
        },
        ctx.profile
    ));
    md
}
