//! Figure 3 (Sec. 6): the synthetic k-subset experiment.
//!
//! `p(z; θ)` is the 5-subset distribution over `z ∈ {0,1}^10` (Eq. 3 with τ = 1) and
//! `L(θ) = E_{z~p(z;θ)} ||z − b||²`. Every method starts from the same `θ_0` and runs SGD
//! with momentum 0.9 (PyTorch's rule: `v ← 0.9·v + g`, `θ ← θ − lr·v`):
//!
//! * **I-MLE**: `z = MAP(θ + ε)`, ε ~ SoG(κ = 5, τ = 1, s = 10), PID target
//!   `θ' = θ − λ·∂L/∂z` with λ = 2 and the same noise sample, gradient `z − MAP(θ' + ε)`
//!   (no 1/λ, as in the official code), lr 0.75, 50 steps;
//! * **STE**: `z = MAP(θ + ε)`, ε ~ Gumbel(0, 1), gradient `∂L/∂z`, lr 0.019, 50 steps;
//! * **SFE**: exact samples `z ~ p(z; θ)`, gradient `L(z)·(z − μ(θ))`, lr 0.0046, 500 steps.
//!
//! with `∂L/∂z = 2(z − b)`. The curve records the *exact* `L(θ_t)` before each update,
//! from the exact marginals: `E||z − b||² = Σ_i μ_i (1 − 2 b_i) + ||b||²`. The figure plots
//! the mean ± (population) std over repetitions of `L(θ_t) − min_z ||z − b||²`.
//!
//! The heat map compares I-MLE with SoG and with Gumbel(0, 1) noise: the mean final loss
//! of SoG minus that of Gumbel over `lr ∈ linspace(0.5, 1, 5)` × `λ ∈ linspace(0.5, 3, 6)`
//! (blue: SoG better).
//!
//! **The problem.** With `--instance official` (the default of `--full`), the official
//! run's `θ_0` and `b` ([`OFFICIAL_THETA0`], [`OFFICIAL_B`]: numpy `RandomState(0)`,
//! `randn(10)` then `abs(randn(10))`, float32), so that our figure is directly comparable
//! with the paper's. With `--instance drawn` (the quick default), `θ_0 ~ N(0, I)` and
//! `b = |N(0, I)|` (absolute values, as in the official code; the paper's text says
//! `b ~ N(0, I)`: `--b-dist normal`), drawn once from the run's seed. Every repetition
//! starts from the same `θ_0`.
//!
//! **Divergence.** A run whose θ, loss or gradient becomes non-finite is stopped and
//! counted as diverged; its later steps are excluded from the means (and reported).

use super::{
    derive_seed, mean_std, non_negative_f64, positive_f64, positive_usize, Linspace, Profile,
    RunContext, Summary,
};
use crate::output::Table;
use crate::plot::{Figure, HeatMap, LineChart, Panel, Series};
use anyhow::{Context, Result};
use imle::exact::KSubset;
use imle::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How `b` is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BDist {
    /// `b = |N(0, I)|` (the official code).
    AbsNormal,
    /// `b ~ N(0, I)` (the paper's text).
    Normal,
}

/// Where `θ_0` and `b` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Instance {
    /// Drawn from the run's seed (`θ_0 ~ N(0, I)`, `b` as `--b-dist`).
    Drawn,
    /// The official run's `θ_0` and `b` (n = 10, k = 5; see [`OFFICIAL_THETA0`]), so that
    /// our curves and heat map are directly comparable with the paper's figure.
    Official,
}

/// `θ_0` of the official synthetic run: `numpy.random.RandomState(0).randn(10)` as float32
/// (the official code then draws `b = abs(randn(10))` from the same generator). With the
/// official code these give `L(θ_0) = 5.2393646` and `min L = 1.1251508`.
pub const OFFICIAL_THETA0: [f32; 10] = [
    1.764_052_4,
    0.400_157_2,
    0.978_738,
    2.240_893_1,
    1.867_558,
    -0.977_277_9,
    0.950_088_4,
    -0.151_357_2,
    -0.103_218_85,
    0.410_598_52,
];

/// `b` of the official synthetic run (see [`OFFICIAL_THETA0`]).
pub const OFFICIAL_B: [f32; 10] = [
    0.144_043_56,
    1.454_273_5,
    0.761_037_7,
    0.121_675_014,
    0.443_863_24,
    0.333_674_34,
    1.494_079_1,
    0.205_158_26,
    0.313_067_7,
    0.854_095_76,
];

/// Command-line overrides of Figure 3 (defaults: the paper's; `--quick` uses fewer
/// repetitions).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Number of items n [10].
    #[arg(long, value_parser = positive_usize)]
    pub n: Option<usize>,
    /// Subset size k [5].
    #[arg(long, value_parser = positive_usize)]
    pub k: Option<usize>,
    /// Steps of I-MLE and STE [50].
    #[arg(long, value_parser = positive_usize)]
    pub steps: Option<usize>,
    /// Repetitions of I-MLE and STE [quick 20, full 100].
    #[arg(long, value_parser = positive_usize)]
    pub reps: Option<usize>,
    /// Learning rate of I-MLE [0.75].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// λ of the I-MLE PID target [2].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
    /// SoG τ [1].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub sog_tau: Option<f64>,
    /// SoG s (Gamma terms) [10].
    #[arg(long, value_parser = positive_usize)]
    pub sog_terms: Option<usize>,
    /// Scale of the Gumbel noise (STE, and I-MLE with Gumbel noise in the heat map) [1].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub gumbel_tau: Option<f64>,
    /// Learning rate of STE [0.019].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub ste_lr: Option<f64>,
    /// Learning rate of SFE [0.0046].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub sfe_lr: Option<f64>,
    /// Steps of SFE [500].
    #[arg(long, value_parser = positive_usize)]
    pub sfe_steps: Option<usize>,
    /// Repetitions of SFE [quick 5, full 20].
    #[arg(long, value_parser = positive_usize)]
    pub sfe_reps: Option<usize>,
    /// SGD momentum [0.9].
    #[arg(long, value_parser = non_negative_f64, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Distribution of b [abs-normal, as in the official code] (with `--instance drawn`).
    #[arg(long, value_enum)]
    pub b_dist: Option<BDist>,
    /// θ_0 and b: `official` (the official run's numbers; n = 10, k = 5) or `drawn`
    /// from the seed [full: official; quick: drawn].
    #[arg(long, value_enum)]
    pub instance: Option<Instance>,
    /// Heat-map learning rates as START,STOP,N [0.5,1,5].
    #[arg(long)]
    pub heat_lr: Option<Linspace>,
    /// Heat-map λ values as START,STOP,N [0.5,3,6].
    #[arg(long)]
    pub heat_lambda: Option<Linspace>,
    /// Repetitions per heat-map cell and noise [quick 20, full 100].
    #[arg(long, value_parser = positive_usize)]
    pub heat_reps: Option<usize>,
    /// Skip the heat map.
    #[arg(long)]
    pub no_heatmap: bool,
}

/// Resolved configuration of Figure 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Items n.
    pub n: usize,
    /// Subset size k.
    pub k: usize,
    /// Steps of I-MLE and STE (also of the heat-map runs).
    pub steps: usize,
    /// Repetitions of I-MLE and STE.
    pub reps: usize,
    /// I-MLE learning rate.
    pub lr: f64,
    /// I-MLE λ.
    pub lambda: f64,
    /// SoG κ (= k).
    pub sog_kappa: f64,
    /// SoG τ.
    pub sog_tau: f64,
    /// SoG s.
    pub sog_terms: usize,
    /// Gumbel scale.
    pub gumbel_tau: f64,
    /// STE learning rate.
    pub ste_lr: f64,
    /// SFE learning rate.
    pub sfe_lr: f64,
    /// SFE steps.
    pub sfe_steps: usize,
    /// SFE repetitions.
    pub sfe_reps: usize,
    /// SGD momentum.
    pub momentum: f64,
    /// Distribution of b.
    pub b_dist: BDist,
    /// Where θ_0 and b come from (absent in records written before the option: drawn).
    #[serde(default = "drawn")]
    pub instance: Instance,
    /// Heat-map learning rates.
    pub heat_lrs: Vec<f64>,
    /// Heat-map λ values.
    pub heat_lambdas: Vec<f64>,
    /// Repetitions per heat-map cell and noise (0: no heat map).
    pub heat_reps: usize,
}

impl Config {
    /// The paper's protocol (the `full` profile).
    pub fn paper() -> Self {
        Self {
            n: 10,
            k: 5,
            steps: 50,
            reps: 100,
            lr: 0.75,
            lambda: 2.0,
            sog_kappa: 5.0,
            sog_tau: 1.0,
            sog_terms: 10,
            gumbel_tau: 1.0,
            ste_lr: 0.019,
            sfe_lr: 0.0046,
            sfe_steps: 500,
            sfe_reps: 20,
            momentum: 0.9,
            b_dist: BDist::AbsNormal,
            instance: Instance::Official,
            heat_lrs: super::linspace(0.5, 1.0, 5),
            heat_lambdas: super::linspace(0.5, 3.0, 6),
            heat_reps: 100,
        }
    }

    /// The quick profile: the same protocol with fewer repetitions.
    pub fn quick() -> Self {
        Self {
            reps: 20,
            sfe_reps: 5,
            heat_reps: 20,
            instance: Instance::Drawn,
            ..Self::paper()
        }
    }
}

impl Args {
    /// The profile's configuration overridden by the flags given.
    pub fn resolve(&self, profile: Profile) -> Result<Config> {
        let d = profile.pick(Config::quick(), Config::paper());
        let n = self.n.unwrap_or(d.n);
        let k = self.k.unwrap_or(d.k);
        if k > n {
            anyhow::bail!("--k ({k}) must not exceed --n ({n})");
        }
        if n > 30 {
            anyhow::bail!("--n ({n}) must be at most 30 for exact enumeration of the loss");
        }
        let instance = self.instance.unwrap_or(d.instance);
        if instance == Instance::Official && (n, k) != (OFFICIAL_THETA0.len(), 5) {
            anyhow::bail!(
                "--instance official is the official run's n = 10, k = 5 (got n = {n}, k = {k}); \
                 use --instance drawn for other sizes"
            );
        }
        let momentum = self.momentum.unwrap_or(d.momentum);
        if momentum >= 1.0 {
            anyhow::bail!("--momentum must lie in [0, 1), got {momentum}");
        }
        Ok(Config {
            n,
            k,
            steps: self.steps.unwrap_or(d.steps),
            reps: self.reps.unwrap_or(d.reps),
            lr: self.lr.unwrap_or(d.lr),
            lambda: self.lambda.unwrap_or(d.lambda),
            sog_kappa: k as f64,
            sog_tau: self.sog_tau.unwrap_or(d.sog_tau),
            sog_terms: self.sog_terms.unwrap_or(d.sog_terms),
            gumbel_tau: self.gumbel_tau.unwrap_or(d.gumbel_tau),
            ste_lr: self.ste_lr.unwrap_or(d.ste_lr),
            sfe_lr: self.sfe_lr.unwrap_or(d.sfe_lr),
            sfe_steps: self.sfe_steps.unwrap_or(d.sfe_steps),
            sfe_reps: self.sfe_reps.unwrap_or(d.sfe_reps),
            momentum,
            b_dist: self.b_dist.unwrap_or(d.b_dist),
            instance,
            heat_lrs: self.heat_lr.map_or(d.heat_lrs, |l| l.values()),
            heat_lambdas: self.heat_lambda.map_or(d.heat_lambdas, |l| l.values()),
            heat_reps: if self.no_heatmap {
                0
            } else {
                self.heat_reps.unwrap_or(d.heat_reps)
            },
        })
    }
}

/// The optimisation problem: `θ_0`, `b`, and the optimum `min_z ||z − b||²`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Initial parameters θ_0.
    pub theta0: Vec<f32>,
    /// Target vector b.
    pub b: Vec<f64>,
    /// `min over k-subsets z of ||z − b||²`.
    pub min_loss: f64,
    /// `L(θ_0)`.
    pub initial_loss: f64,
}

fn drawn() -> Instance {
    Instance::Drawn
}

/// `θ_0` and `b`: the official run's ([`Instance::Official`]) or drawn from `seed` (one
/// generator, θ_0 first).
pub fn problem(cfg: &Config, seed: u64) -> Result<Problem> {
    if cfg.instance == Instance::Official {
        if (cfg.n, cfg.k) != (OFFICIAL_THETA0.len(), 5) {
            anyhow::bail!("the official instance has n = 10, k = 5");
        }
        let b: Vec<f64> = OFFICIAL_B.iter().map(|&v| v as f64).collect();
        return finish_problem(cfg, OFFICIAL_THETA0.to_vec(), b);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "fig3/problem", 0));
    let theta0: Vec<f32> = (0..cfg.n)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        })
        .collect();
    let b: Vec<f64> = (0..cfg.n)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            match cfg.b_dist {
                BDist::AbsNormal => v.abs(),
                BDist::Normal => v,
            }
        })
        .collect();
    finish_problem(cfg, theta0, b)
}

fn finish_problem(cfg: &Config, theta0: Vec<f32>, b: Vec<f64>) -> Result<Problem> {
    // ||z − b||² = Σ_{i∈z} (1 − 2b_i) + ||b||²: take the k smallest 1 − 2b_i.
    let mut c: Vec<f64> = b.iter().map(|bi| 1.0 - 2.0 * bi).collect();
    c.sort_by(f64::total_cmp);
    let min_loss = c[..cfg.k].iter().sum::<f64>() + b.iter().map(|v| v * v).sum::<f64>();
    let initial_loss = exact_loss(&theta0, cfg.k, &b)?;
    Ok(Problem {
        theta0,
        b,
        min_loss,
        initial_loss,
    })
}

/// The exact `L(θ) = E_{z~p(z;θ)} ||z − b||² = Σ_i μ_i (1 − 2 b_i) + ||b||²`.
pub fn exact_loss(theta: &[f32], k: usize, b: &[f64]) -> Result<f64> {
    let dist = KSubset::new(theta, k, 1.0)?;
    Ok(dist
        .marginals()
        .iter()
        .zip(b)
        .map(|(m, bi)| m * (1.0 - 2.0 * bi))
        .sum::<f64>()
        + b.iter().map(|v| v * v).sum::<f64>())
}

/// A gradient estimator of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// I-MLE with the PID target and the given noise.
    Imle {
        /// λ.
        lambda: f64,
        /// Noise: `sog` or `gumbel`.
        noise: NoiseKind,
    },
    /// Straight-through with Gumbel noise.
    Ste,
    /// Score function with exact samples.
    Sfe,
}

/// The perturbation of an I-MLE run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseKind {
    /// SoG(κ, τ, s).
    Sog,
    /// Gumbel(0, τ).
    Gumbel,
}

impl NoiseKind {
    fn noise(self, cfg: &Config) -> Result<Noise> {
        Ok(match self {
            NoiseKind::Sog => Noise::sum_of_gamma(cfg.sog_kappa, cfg.sog_tau, cfg.sog_terms)?,
            NoiseKind::Gumbel => Noise::gumbel(cfg.gumbel_tau)?,
        })
    }
}

/// One optimisation run: exact losses before each update (NaN after a divergence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// `L(θ_t)`, t = 0..steps.
    pub losses: Vec<f64>,
    /// The step at which θ, the loss or the gradient became non-finite.
    pub diverged_at: Option<usize>,
}

impl RunResult {
    /// The last loss (NaN if the run diverged).
    pub fn final_loss(&self) -> f64 {
        if self.diverged_at.is_some() {
            f64::NAN
        } else {
            *self.losses.last().unwrap_or(&f64::NAN)
        }
    }
}

/// One gradient estimate of the experiment's loss at θ.
type StepEstimator<'a> = Box<dyn FnMut(&[f32]) -> Result<Vec<f32>> + 'a>;

/// The gradient estimate of any [`Estimator`] by the chain rule: forward θ → z, then the
/// estimator's backward pass for `∂L/∂z(z)`.
fn chain_rule<'a, E: Estimator>(
    op: E,
    n: usize,
    grad_z: impl Fn(&[f32]) -> Vec<f32> + 'a,
) -> StepEstimator<'a> {
    Box::new(move |theta: &[f32]| {
        let (z, saved) = op.forward(theta, n)?;
        Ok(op.backward(&saved, &grad_z(&z))?)
    })
}

/// Runs `steps` SGD-with-momentum steps of `method` from `θ_0` with learning rate `lr`;
/// all randomness comes from `seed`.
pub fn optimise(
    cfg: &Config,
    p: &Problem,
    method: &Method,
    lr: f64,
    steps: usize,
    seed: u64,
) -> Result<RunResult> {
    let (n, k) = (cfg.n, cfg.k);
    let topk = TopK::new(k);
    let b32: Vec<f32> = p.b.iter().map(|&v| v as f32).collect();
    let grad_z =
        |z: &[f32]| -> Vec<f32> { z.iter().zip(&b32).map(|(z, b)| 2.0 * (z - b)).collect() };
    let mut estimator: StepEstimator<'_> = match method {
        Method::Imle { lambda, noise } => chain_rule(
            Imle::new(topk, Target::pid(*lambda as f32)?, noise.noise(cfg)?).seed(seed),
            n,
            grad_z,
        ),
        Method::Ste => chain_rule(
            Ste::new(topk, Noise::gumbel(cfg.gumbel_tau)?).seed(seed),
            n,
            grad_z,
        ),
        Method::Sfe => {
            let sfe = ScoreFunction::new(k)?.seed(seed);
            Box::new(move |theta: &[f32]| {
                let z = sfe.sample_rows(theta, n)?;
                let loss: f32 = z.iter().zip(&b32).map(|(z, b)| (z - b) * (z - b)).sum();
                Ok(sfe.estimate_rows(theta, n, &z, &[loss])?.0)
            })
        }
    };
    let mut theta = p.theta0.clone();
    let mut v = vec![0.0f32; n];
    let (lr, mom) = (lr as f32, cfg.momentum as f32);
    let mut losses = Vec::with_capacity(steps);
    let mut diverged_at = None;
    for t in 0..steps {
        if theta.iter().any(|x| !x.is_finite()) {
            diverged_at = Some(t);
            break;
        }
        let l = exact_loss(&theta, k, &p.b)?;
        if !l.is_finite() {
            diverged_at = Some(t);
            break;
        }
        losses.push(l);
        if t + 1 == steps {
            break;
        }
        let g = estimator(&theta)?;
        if g.iter().any(|x| !x.is_finite()) {
            diverged_at = Some(t + 1);
            break;
        }
        for ((th, vi), gi) in theta.iter_mut().zip(v.iter_mut()).zip(&g) {
            *vi = mom * *vi + gi;
            *th -= lr * *vi;
        }
    }
    losses.resize(steps, f64::NAN);
    Ok(RunResult {
        losses,
        diverged_at,
    })
}

/// Mean and std curves of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Method name.
    pub method: String,
    /// Learning rate.
    pub lr: f64,
    /// Repetitions.
    pub reps: usize,
    /// Runs that diverged.
    pub diverged: usize,
    /// Mean of `L(θ_t)` per step (over runs still finite at t).
    pub mean_loss: Vec<f64>,
    /// Population std of `L(θ_t)`.
    pub std_loss: Vec<f64>,
    /// Mean of `L(θ_t) − min L`.
    pub mean_gap: Vec<f64>,
    /// Final loss of every run (NaN: diverged).
    pub final_losses: Vec<f64>,
}

fn curve(name: &str, lr: f64, runs: &[RunResult], min_loss: f64) -> Curve {
    let steps = runs.first().map_or(0, |r| r.losses.len());
    let (mut mean_loss, mut std_loss, mut mean_gap) = (vec![], vec![], vec![]);
    for t in 0..steps {
        let (m, s) = mean_std(runs.iter().map(|r| r.losses[t]));
        mean_loss.push(m);
        std_loss.push(s);
        mean_gap.push(m - min_loss);
    }
    Curve {
        method: name.into(),
        lr,
        reps: runs.len(),
        diverged: runs.iter().filter(|r| r.diverged_at.is_some()).count(),
        mean_loss,
        std_loss,
        mean_gap,
        final_losses: runs.iter().map(RunResult::final_loss).collect(),
    }
}

/// One heat-map cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Learning rate.
    pub lr: f64,
    /// λ.
    pub lambda: f64,
    /// Mean final loss with SoG noise (finite runs).
    pub sog_mean: f64,
    /// Mean final loss with Gumbel noise (finite runs).
    pub gumbel_mean: f64,
    /// `sog_mean − gumbel_mean` (negative: SoG better).
    pub diff: f64,
    /// Standard error of `diff`.
    pub diff_se: f64,
    /// Diverged SoG runs.
    pub sog_diverged: usize,
    /// Diverged Gumbel runs.
    pub gumbel_diverged: usize,
}

/// Everything Figure 3 measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fig3Data {
    /// θ_0, b and the optimum.
    pub problem: Problem,
    /// I-MLE (SoG), STE, SFE curves.
    pub curves: Vec<Curve>,
    /// Heat-map cells (row-major over λ, then lr).
    pub heatmap: Vec<Cell>,
}

/// Headline numbers of Figure 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fig3Summary {
    /// `min L`.
    pub min_loss: f64,
    /// `L(θ_0)`.
    pub initial_loss: f64,
    /// Per method: final mean `L − min L`, its std, diverged runs.
    pub final_gap: Vec<(String, f64, f64, usize)>,
    /// Heat map: number of cells, cells where SoG is better (diff < 0), mean diff.
    pub heat_cells: usize,
    /// Cells where SoG is better.
    pub heat_sog_better: usize,
    /// Cells where the difference is significant (|diff| > 2 SE) and favours SoG.
    pub heat_sog_better_significant: usize,
    /// Cells where the difference is significant and favours Gumbel.
    pub heat_gumbel_better_significant: usize,
    /// Mean of the cell differences.
    pub heat_mean_diff: f64,
    /// Diverged runs in the heat map.
    pub heat_diverged: usize,
}

fn par_runs(
    cfg: &Config,
    p: &Problem,
    jobs: &[(Method, f64, usize, u64)],
    pb: &indicatif::ProgressBar,
) -> Result<Vec<RunResult>> {
    jobs.par_iter()
        .map(|(m, lr, steps, seed)| {
            let r = optimise(cfg, p, m, *lr, *steps, *seed);
            pb.inc(1);
            r
        })
        .collect()
}

/// Runs the experiment (no files written).
pub fn compute(cfg: &Config, ctx: &RunContext) -> Result<Fig3Data> {
    let p = problem(cfg, ctx.seed)?;
    let imle = Method::Imle {
        lambda: cfg.lambda,
        noise: NoiseKind::Sog,
    };
    let mut jobs = Vec::new();
    for r in 0..cfg.reps as u64 {
        jobs.push((
            imle.clone(),
            cfg.lr,
            cfg.steps,
            derive_seed(ctx.seed, "fig3/imle", r),
        ));
    }
    for r in 0..cfg.reps as u64 {
        jobs.push((
            Method::Ste,
            cfg.ste_lr,
            cfg.steps,
            derive_seed(ctx.seed, "fig3/ste", r),
        ));
    }
    for r in 0..cfg.sfe_reps as u64 {
        jobs.push((
            Method::Sfe,
            cfg.sfe_lr,
            cfg.sfe_steps,
            derive_seed(ctx.seed, "fig3/sfe", r),
        ));
    }
    let pb = ctx.progress(jobs.len() as u64, "fig3 curves");
    let runs = par_runs(cfg, &p, &jobs, &pb)?;
    pb.finish_and_clear();
    let (a, rest) = runs.split_at(cfg.reps);
    let (b, c) = rest.split_at(cfg.reps);
    let curves = vec![
        curve("I-MLE (SoG)", cfg.lr, a, p.min_loss),
        curve("STE", cfg.ste_lr, b, p.min_loss),
        curve("SFE", cfg.sfe_lr, c, p.min_loss),
    ];

    let mut heatmap = Vec::new();
    if cfg.heat_reps > 0 {
        let mut jobs = Vec::new();
        for (li, &lambda) in cfg.heat_lambdas.iter().enumerate() {
            for (ri, &lr) in cfg.heat_lrs.iter().enumerate() {
                for noise in [NoiseKind::Sog, NoiseKind::Gumbel] {
                    for r in 0..cfg.heat_reps as u64 {
                        // Common random numbers across cells: rep r uses the same seed in
                        // every cell (the noise streams differ between SoG and Gumbel).
                        let tag = match noise {
                            NoiseKind::Sog => "fig3/heat/sog",
                            NoiseKind::Gumbel => "fig3/heat/gumbel",
                        };
                        let _ = (li, ri);
                        jobs.push((
                            Method::Imle { lambda, noise },
                            lr,
                            cfg.steps,
                            derive_seed(ctx.seed, tag, r),
                        ));
                    }
                }
            }
        }
        let pb = ctx.progress(jobs.len() as u64, "fig3 heat map");
        let runs = par_runs(cfg, &p, &jobs, &pb)?;
        pb.finish_and_clear();
        let per_cell = 2 * cfg.heat_reps;
        for (i, chunk) in runs.chunks(per_cell).enumerate() {
            let lambda = cfg.heat_lambdas[i / cfg.heat_lrs.len()];
            let lr = cfg.heat_lrs[i % cfg.heat_lrs.len()];
            let (s, g) = chunk.split_at(cfg.heat_reps);
            let fs: Vec<f64> = s.iter().map(RunResult::final_loss).collect();
            let fg: Vec<f64> = g.iter().map(RunResult::final_loss).collect();
            let (sm, ss) = mean_std(fs.iter().copied());
            let (gm, gs) = mean_std(fg.iter().copied());
            let ns = fs.iter().filter(|v| v.is_finite()).count().max(1) as f64;
            let ng = fg.iter().filter(|v| v.is_finite()).count().max(1) as f64;
            heatmap.push(Cell {
                lr,
                lambda,
                sog_mean: sm,
                gumbel_mean: gm,
                diff: sm - gm,
                diff_se: (ss * ss / ns + gs * gs / ng).sqrt(),
                sog_diverged: s.iter().filter(|r| r.diverged_at.is_some()).count(),
                gumbel_diverged: g.iter().filter(|r| r.diverged_at.is_some()).count(),
            });
        }
    }
    Ok(Fig3Data {
        problem: p,
        curves,
        heatmap,
    })
}

/// Summary numbers from the data.
pub fn summarise(data: &Fig3Data) -> Fig3Summary {
    let p = &data.problem;
    let final_gap = data
        .curves
        .iter()
        .map(|c| {
            let (m, s) = mean_std(c.final_losses.iter().map(|l| l - p.min_loss));
            (c.method.clone(), m, s, c.diverged)
        })
        .collect();
    let h = &data.heatmap;
    Fig3Summary {
        min_loss: p.min_loss,
        initial_loss: p.initial_loss,
        final_gap,
        heat_cells: h.len(),
        heat_sog_better: h.iter().filter(|c| c.diff < 0.0).count(),
        heat_sog_better_significant: h.iter().filter(|c| c.diff < -2.0 * c.diff_se).count(),
        heat_gumbel_better_significant: h.iter().filter(|c| c.diff > 2.0 * c.diff_se).count(),
        heat_mean_diff: mean_std(h.iter().map(|c| c.diff)).0,
        heat_diverged: h.iter().map(|c| c.sog_diverged + c.gumbel_diverged).sum(),
    }
}

/// The figure: curves (first `steps` steps of all methods; SFE over its whole run) and,
/// if computed, the heat map.
pub fn figure(cfg: &Config, data: &Fig3Data) -> Figure {
    let min = data.problem.min_loss;
    let series = |c: &Curve, i: usize, upto: usize| {
        let upto = upto.min(c.mean_gap.len());
        Series::new(
            format!("{} (lr {})", c.method, c.lr),
            (0..upto).map(|t| t as f64).collect(),
            c.mean_gap[..upto].to_vec(),
        )
        .band(c.std_loss[..upto].to_vec())
        .color(i)
    };
    let mut left = LineChart::new(
        format!("first {} steps (mean ± std)", cfg.steps),
        "step",
        "L(θ) − min L",
    );
    for (i, c) in data.curves.iter().enumerate() {
        left = left.series(series(c, i, cfg.steps));
    }
    let mut right = LineChart::new(
        format!("SFE over {} steps", cfg.sfe_steps),
        "step",
        "L(θ) − min L",
    );
    if let Some(sfe) = data.curves.iter().position(|c| c.method == "SFE") {
        right = right.series(series(&data.curves[sfe], sfe, usize::MAX));
        let x = vec![0.0, cfg.sfe_steps.saturating_sub(1) as f64];
        for (i, c) in data.curves.iter().enumerate().filter(|(i, _)| *i != sfe) {
            let last = *c.mean_gap.last().unwrap_or(&f64::NAN);
            right = right.series(
                Series::new(format!("{} final", c.method), x.clone(), vec![last, last])
                    .color(i)
                    .dashed(),
            );
        }
    }
    let y_hi = data
        .curves
        .iter()
        .flat_map(|c| c.mean_gap.iter().zip(&c.std_loss).map(|(m, s)| m + s))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (left, right) = (
        left.y_range(0.0, y_hi * 1.05),
        right.y_range(0.0, y_hi * 1.05),
    );
    let mut rows = vec![vec![Panel::Line(left), Panel::Line(right)]];
    if !data.heatmap.is_empty() {
        let nx = cfg.heat_lrs.len();
        let values: Vec<Vec<f64>> = data
            .heatmap
            .chunks(nx)
            .map(|row| row.iter().map(|c| c.diff).collect())
            .collect();
        rows.push(vec![Panel::Heat(HeatMap {
            title: format!(
                "mean final L: I-MLE SoG − I-MLE Gumbel ({} runs per cell; blue: SoG better)",
                cfg.heat_reps
            ),
            x_label: "learning rate".into(),
            y_label: "λ".into(),
            x_values: cfg.heat_lrs.clone(),
            y_values: cfg.heat_lambdas.clone(),
            values,
            annotate: true,
            colorbar_label: "Δ final loss".into(),
        })]);
    }
    let _ = min;
    let h = if rows.len() == 2 { 950 } else { 480 };
    Figure::rows(rows, (1200, h)).title(format!(
        "Synthetic {}-subset experiment (n = {}), exact L(θ_t)",
        cfg.k, cfg.n
    ))
}

/// Runs Figure 3: writes `fig3.json`, `fig3_curves.csv`, `fig3_heatmap.csv` (if
/// computed), `fig3.png`, `fig3.svg`.
pub fn run(cfg: &Config, ctx: &RunContext) -> Result<Summary> {
    let started = Instant::now();
    let data = compute(cfg, ctx).context("running the synthetic experiment")?;
    let summary = summarise(&data);
    let mut files = ctx.save_figure("fig3", &figure(cfg, &data))?;

    let mut t = Table::new();
    let (mut method, mut step, mut ml, mut sl, mut mg) = (vec![], vec![], vec![], vec![], vec![]);
    for c in &data.curves {
        for s in 0..c.mean_loss.len() {
            method.push(c.method.clone());
            step.push(s as i64);
            ml.push(c.mean_loss[s]);
            sl.push(c.std_loss[s]);
            mg.push(c.mean_gap[s]);
        }
    }
    t = t
        .str("method", method)
        .i64("step", step)
        .f64("mean_loss", ml)
        .f64("std_loss", sl)
        .f64("mean_gap", mg);
    files.push(ctx.write_table("fig3_curves", &t)?);
    if !data.heatmap.is_empty() {
        let h = &data.heatmap;
        let t = Table::new()
            .f64("lr", h.iter().map(|c| c.lr).collect())
            .f64("lambda", h.iter().map(|c| c.lambda).collect())
            .f64(
                "sog_mean_final_loss",
                h.iter().map(|c| c.sog_mean).collect(),
            )
            .f64(
                "gumbel_mean_final_loss",
                h.iter().map(|c| c.gumbel_mean).collect(),
            )
            .f64("diff", h.iter().map(|c| c.diff).collect())
            .f64("diff_se", h.iter().map(|c| c.diff_se).collect())
            .i64(
                "sog_diverged",
                h.iter().map(|c| c.sog_diverged as i64).collect(),
            )
            .i64(
                "gumbel_diverged",
                h.iter().map(|c| c.gumbel_diverged as i64).collect(),
            );
        files.push(ctx.write_table("fig3_heatmap", &t)?);
    }

    let readme = readme(cfg, &data, &summary);
    let json = ctx.write_record(
        "fig3",
        "Figure 3 — synthetic 5-subset experiment (Sec. 6)",
        cfg,
        &data,
        &summary,
        started,
        files.clone(),
        readme,
    )?;
    let mut lines: Vec<String> = summary
        .final_gap
        .iter()
        .map(|(m, g, s, d)| format!("{m:<12} final L − min L = {g:.4} ± {s:.4} (diverged: {d})"))
        .collect();
    if summary.heat_cells > 0 {
        lines.push(format!(
            "heat map: SoG better in {}/{} cells ({} significant at 2 SE; Gumbel significantly better in {}), mean diff {:.4}, diverged runs {}",
            summary.heat_sog_better,
            summary.heat_cells,
            summary.heat_sog_better_significant,
            summary.heat_gumbel_better_significant,
            summary.heat_mean_diff,
            summary.heat_diverged
        ));
    }
    Ok(Summary {
        experiment: "fig3".into(),
        files: std::iter::once(json)
            .chain(files.iter().map(|f| ctx.path(f)))
            .collect(),
        lines,
    })
}

fn readme(cfg: &Config, data: &Fig3Data, s: &Fig3Summary) -> String {
    let p = &data.problem;
    let mut md = format!(
        "n = {}, k = {}, {}: L(θ_0) = {:.4}, \
         min L = {:.4}. SGD with momentum {}; exact L(θ_t) recorded before each update. \
         The paper gives this figure as curves only (no table), so the left column is a \
         reading of its Figure 3, not numbers.\n\n\
         | method | protocol | paper (Fig. 3, read off the plot) | ours: final L − min L (mean ± std) | diverged |\n\
         |---|---|---|---|---|\n",
        cfg.n,
        cfg.k,
        match (cfg.instance, cfg.b_dist) {
            (Instance::Official, _) => "the official run's θ_0 and b (numpy `RandomState(0)`: \
                θ_0 = `randn(10)`, b = `abs(randn(10))`, float32; the official code reports \
                L(θ_0) = 5.2394, min L = 1.1252)",
            (Instance::Drawn, BDist::AbsNormal) => "θ_0 ~ N(0, I) and b = |N(0, I)| from the run's seed",
            (Instance::Drawn, BDist::Normal) => "θ_0 ~ N(0, I) and b ~ N(0, I) from the run's seed",
        },
        p.initial_loss,
        p.min_loss,
        cfg.momentum,
    );
    let paper = [
        "fastest; close to the optimum within 50 steps",
        "decreases, but stays well above I-MLE",
        "slow; needs far more steps (500)",
    ];
    let protocol = [
        format!(
            "SoG({}, {}, {}), λ = {}, lr {}, {} steps × {} runs",
            cfg.sog_kappa, cfg.sog_tau, cfg.sog_terms, cfg.lambda, cfg.lr, cfg.steps, cfg.reps
        ),
        format!(
            "Gumbel(0, {}), lr {}, {} steps × {} runs",
            cfg.gumbel_tau, cfg.ste_lr, cfg.steps, cfg.reps
        ),
        format!(
            "exact samples, lr {}, {} steps × {} runs",
            cfg.sfe_lr, cfg.sfe_steps, cfg.sfe_reps
        ),
    ];
    for (i, (m, g, sd, d)) in s.final_gap.iter().enumerate() {
        md.push_str(&format!(
            "| {m} | {} | {} | {g:.4} ± {sd:.4} | {d} |\n",
            protocol.get(i).map_or("", |v| v.as_str()),
            paper.get(i).copied().unwrap_or(""),
        ));
    }
    if s.heat_cells > 0 {
        md.push_str(&format!(
            "\nHeat map (mean final L of I-MLE with SoG minus with Gumbel(0, {}) noise, lr × λ, \
             {} runs per cell and noise; paper: mostly blue, i.e. SoG better): ours: SoG better \
             in **{}/{}** cells ({} of them by more than 2 standard errors; Gumbel better by more \
             than 2 SE in {}), mean difference {:.4}, diverged runs: {}.\n\n\
             | λ \\ lr |",
            cfg.gumbel_tau,
            cfg.heat_reps,
            s.heat_sog_better,
            s.heat_cells,
            s.heat_sog_better_significant,
            s.heat_gumbel_better_significant,
            s.heat_mean_diff,
            s.heat_diverged
        ));
        for lr in &cfg.heat_lrs {
            md.push_str(&format!(" {lr} |"));
        }
        md.push_str("\n|---|");
        for _ in &cfg.heat_lrs {
            md.push_str("---|");
        }
        md.push('\n');
        for row in data.heatmap.chunks(cfg.heat_lrs.len()) {
            md.push_str(&format!("| {} |", row[0].lambda));
            for c in row {
                md.push_str(&format!(" {:+.3} ± {:.3} |", c.diff, c.diff_se));
            }
            md.push('\n');
        }
    }
    md
}
