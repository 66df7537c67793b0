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

mod config;
mod official;
pub mod report;

pub use config::*;
pub use official::*;

pub use report::{figure, summarise, Fig3Summary};

use super::{Experiment, Profile, Report, RunContext};
use crate::run::derive_seed;
use crate::spec::{Built, EstimatorSpec, NoiseSpec};
use crate::stats::mean_std;
use anyhow::{Context, Result};
use imle::exact::KSubset;
use imle::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

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
    fn spec(self, cfg: &Config) -> NoiseSpec {
        match self {
            NoiseKind::Sog => NoiseSpec::SumOfGamma {
                kappa: cfg.sog_kappa,
                tau: cfg.sog_tau,
                s: cfg.sog_terms,
            },
            NoiseKind::Gumbel => NoiseSpec::Gumbel {
                scale: cfg.gumbel_tau,
            },
        }
    }
}

impl Method {
    /// The estimator: I-MLE with the PID target and no 1/λ, STE with Gumbel(0, τ)
    /// noise, or the score function with exact samples.
    pub fn spec(&self, cfg: &Config) -> EstimatorSpec {
        match self {
            Method::Imle { lambda, noise } => EstimatorSpec::imle(*lambda as f32, noise.spec(cfg)),
            Method::Ste => EstimatorSpec::Ste {
                noise: NoiseKind::Gumbel.spec(cfg),
                temperature: 1.0,
            },
            Method::Sfe => EstimatorSpec::Sfe { temperature: 1.0 },
        }
    }
}

/// One optimisation run: exact losses before each update (NaN after a divergence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// `L(θ_t)`, t = 0..steps.
    pub losses: Vec<f64>,
    /// The step at which θ, the loss or the gradient became non-finite.
    pub diverged_at: Option<usize>,
    /// θ at the last recorded loss (what the final loss scores).
    #[serde(default)]
    pub last_theta: Vec<f32>,
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
    let mut estimator: StepEstimator<'_> = match method.spec(cfg).build(topk, k)? {
        Built::Imle(op) => chain_rule(op.seed(seed), n, grad_z),
        Built::Ste(op) => chain_rule(op.seed(seed), n, grad_z),
        Built::Sfe(sfe) => {
            let sfe = sfe.seed(seed);
            Box::new(move |theta: &[f32]| {
                let z = sfe.sample_rows(theta, n)?;
                let loss: f32 = z.iter().zip(&b32).map(|(z, b)| (z - b) * (z - b)).sum();
                Ok(sfe.estimate_rows(theta, n, &z, &[loss])?.0)
            })
        }
        other => anyhow::bail!("Figure 3 does not run {other:?}"),
    };
    let mut theta = p.theta0.clone();
    let mut v = vec![0.0f32; n];
    let (lr, mom) = (lr as f32, cfg.momentum as f32);
    let mut losses = Vec::with_capacity(steps);
    let mut diverged_at = None;
    let mut last_theta = theta.clone();
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
        last_theta.clone_from(&theta);
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
        last_theta,
    })
}

/// Mean and std curves of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Method name.
    pub method: String,
    /// The estimator and its hyper-parameters (absent in older records).
    #[serde(default)]
    pub spec: Option<EstimatorSpec>,
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

fn curve(name: &str, spec: EstimatorSpec, lr: f64, runs: &[RunResult], min_loss: f64) -> Curve {
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
        spec: Some(spec),
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
    /// The same cell scored the official way ([`official_loss`]: float32, naive `exp`,
    /// negative gaps replaced by 5); absent in records written before the option.
    #[serde(default)]
    pub official: Option<OfficialCell>,
}

/// A heat-map cell scored as the official code scores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfficialCell {
    /// Mean official final gap with SoG noise (after the replacement).
    pub sog_mean_gap: f64,
    /// Mean official final gap with Gumbel noise (after the replacement).
    pub gumbel_mean_gap: f64,
    /// `sog_mean_gap − gumbel_mean_gap`.
    pub diff: f64,
    /// SoG runs whose float32 normaliser overflowed (L scored as 0).
    pub sog_overflow: usize,
    /// Gumbel runs whose float32 normaliser overflowed.
    pub gumbel_overflow: usize,
    /// SoG runs whose gap came out negative and was replaced by 5.
    pub sog_replaced: usize,
    /// Gumbel runs whose gap was replaced by 5.
    pub gumbel_replaced: usize,
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

/// What one unit of Figure 3 computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fig3Unit {
    /// The curves of one method.
    Curve(Curve),
    /// One heat-map cell.
    Cell(Cell),
}

/// The units of Figure 3: `curves/imle`, `curves/ste`, `curves/sfe`, then one
/// `heat/<λ index>-<lr index>` per heat-map cell (row-major over λ, then lr).
pub fn units(cfg: &Config) -> Vec<String> {
    let mut u: Vec<String> = ["imle", "ste", "sfe"]
        .iter()
        .map(|m| format!("curves/{m}"))
        .collect();
    if cfg.heat_reps > 0 {
        for li in 0..cfg.heat_lambdas.len() {
            for ri in 0..cfg.heat_lrs.len() {
                u.push(format!("heat/{li}-{ri}"));
            }
        }
    }
    u
}

/// Computes one unit (see [`units`]).
pub fn compute_unit(cfg: &Config, unit: &str, ctx: &RunContext) -> Result<Fig3Unit> {
    let p = problem(cfg, ctx.seed)?;
    let jobs_of = |method: Method, lr: f64, steps: usize, reps: usize, tag: &str| {
        (0..reps as u64)
            .map(|r| (method.clone(), lr, steps, derive_seed(ctx.seed, tag, r)))
            .collect::<Vec<_>>()
    };
    let hidden = indicatif::ProgressBar::hidden();
    let curve_of =
        |name: &str, jobs: Vec<(Method, f64, usize, u64)>, lr: f64| -> Result<Fig3Unit> {
            let runs = par_runs(cfg, &p, &jobs, &hidden)?;
            let spec = jobs[0].0.spec(cfg);
            Ok(Fig3Unit::Curve(curve(name, spec, lr, &runs, p.min_loss)))
        };
    match unit {
        "curves/imle" => {
            let imle = Method::Imle {
                lambda: cfg.lambda,
                noise: NoiseKind::Sog,
            };
            curve_of(
                "I-MLE (SoG)",
                jobs_of(imle, cfg.lr, cfg.steps, cfg.reps, "fig3/imle"),
                cfg.lr,
            )
        }
        "curves/ste" => curve_of(
            "STE",
            jobs_of(Method::Ste, cfg.ste_lr, cfg.steps, cfg.reps, "fig3/ste"),
            cfg.ste_lr,
        ),
        "curves/sfe" => curve_of(
            "SFE",
            jobs_of(
                Method::Sfe,
                cfg.sfe_lr,
                cfg.sfe_steps,
                cfg.sfe_reps,
                "fig3/sfe",
            ),
            cfg.sfe_lr,
        ),
        cell => {
            let (li, ri) = cell
                .strip_prefix("heat/")
                .and_then(|c| c.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
                .filter(|&(li, ri)| li < cfg.heat_lambdas.len() && ri < cfg.heat_lrs.len())
                .with_context(|| format!("fig3 has no unit '{cell}'"))?;
            let (lambda, lr) = (cfg.heat_lambdas[li], cfg.heat_lrs[ri]);
            // Common random numbers across cells: rep r uses the same seed in every cell
            // (the noise streams differ between SoG and Gumbel).
            let mut jobs = Vec::new();
            for (noise, tag) in [
                (NoiseKind::Sog, "fig3/heat/sog"),
                (NoiseKind::Gumbel, "fig3/heat/gumbel"),
            ] {
                jobs.extend(jobs_of(
                    Method::Imle { lambda, noise },
                    lr,
                    cfg.steps,
                    cfg.heat_reps,
                    tag,
                ));
            }
            let runs = par_runs(cfg, &p, &jobs, &hidden)?;
            let (s, g) = runs.split_at(cfg.heat_reps);
            Ok(Fig3Unit::Cell(cell_of(cfg, &p, lr, lambda, s, g)))
        }
    }
}

fn cell_of(
    cfg: &Config,
    p: &Problem,
    lr: f64,
    lambda: f64,
    s: &[RunResult],
    g: &[RunResult],
) -> Cell {
    let fs: Vec<f64> = s.iter().map(RunResult::final_loss).collect();
    let fg: Vec<f64> = g.iter().map(RunResult::final_loss).collect();
    let (sm, ss) = mean_std(fs.iter().copied());
    let (gm, gs) = mean_std(fg.iter().copied());
    let ns = fs.iter().filter(|v| v.is_finite()).count().max(1) as f64;
    let ng = fg.iter().filter(|v| v.is_finite()).count().max(1) as f64;
    let official = |runs: &[RunResult]| {
        let o: Vec<(f64, bool, bool)> = runs.iter().map(|r| official_gap(r, p, cfg.k)).collect();
        (
            mean_std(o.iter().map(|x| x.0)).0,
            o.iter().filter(|x| x.1).count(),
            o.iter().filter(|x| x.2).count(),
        )
    };
    let (osm, sov, srep) = official(s);
    let (ogm, gov, grep) = official(g);
    Cell {
        lr,
        lambda,
        sog_mean: sm,
        gumbel_mean: gm,
        diff: sm - gm,
        diff_se: (ss * ss / ns + gs * gs / ng).sqrt(),
        sog_diverged: s.iter().filter(|r| r.diverged_at.is_some()).count(),
        gumbel_diverged: g.iter().filter(|r| r.diverged_at.is_some()).count(),
        official: Some(OfficialCell {
            sog_mean_gap: osm,
            gumbel_mean_gap: ogm,
            diff: osm - ogm,
            sog_overflow: sov,
            gumbel_overflow: gov,
            sog_replaced: srep,
            gumbel_replaced: grep,
        }),
    }
}

/// Runs the whole experiment in this process (no files written).
pub fn compute(cfg: &Config, ctx: &RunContext) -> Result<Fig3Data> {
    let results = units(cfg)
        .par_iter()
        .map(|u| Ok((u.clone(), Some(compute_unit(cfg, u, ctx)?))))
        .collect::<Result<Vec<_>>>()?;
    assemble(cfg, &results, ctx.seed)
}

/// Figure 3's data from the units that have finished.
pub fn assemble(cfg: &Config, units: &[(String, Option<Fig3Unit>)], seed: u64) -> Result<Fig3Data> {
    let mut curves = Vec::new();
    let mut heatmap = Vec::new();
    for (_, u) in units {
        match u {
            Some(Fig3Unit::Curve(c)) => curves.push(c.clone()),
            Some(Fig3Unit::Cell(c)) => heatmap.push(c.clone()),
            None => {}
        }
    }
    Ok(Fig3Data {
        problem: problem(cfg, seed)?,
        curves,
        heatmap,
    })
}

/// Figure 3 on the experiment framework.
pub struct Fig3;

impl Experiment for Fig3 {
    const NAME: &'static str = "fig3";
    const TITLE: &'static str = "Figure 3 — synthetic 5-subset experiment (Sec. 6)";
    const PARALLEL_UNITS: bool = true;
    type Args = Args;
    type Config = Config;
    type Unit = Fig3Unit;

    fn resolve(args: &Args, profile: Profile) -> Result<Config> {
        args.resolve(profile)
    }
    fn units(cfg: &Config) -> Vec<String> {
        units(cfg)
    }
    fn compute(cfg: &Config, unit: &str, ctx: &RunContext) -> Result<Fig3Unit> {
        compute_unit(cfg, unit, ctx)
    }
    fn report(
        cfg: &Config,
        units: &[(String, Option<Fig3Unit>)],
        ctx: &RunContext,
    ) -> Result<Report> {
        report::report(cfg, &assemble(cfg, units, ctx.seed)?)
    }
}
