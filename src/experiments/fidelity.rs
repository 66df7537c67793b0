//! Beyond the paper: estimator fidelity on the synthetic problem of Figure 3.
//!
//! For the 5-subset distribution over `{0,1}^10` at temperature τ (Eq. 3) and the loss
//! `L(z) = ||z − b||²`, the exact gradient of `E_{z~p(z;θ)} L(z)` is computable by
//! enumeration ([`imle::fidelity`]). We draw each estimator many times and report the
//! cosine similarity of its mean to the exact gradient and its relative bias
//! `||mean − exact|| / ||exact||`, over λ (at τ = 1) and over τ (at a fixed λ):
//!
//! * I-MLE (PID target, forward noise reused) with SoG(k, τ, 10), Gumbel(0, τ) and no
//!   noise. Here the I-MLE estimate is divided by λ (`scale_by_lambda`), so that its scale
//!   is comparable to the exact gradient (Fig. 3's runs do not divide; the cosine does not
//!   depend on it);
//! * STE with Gumbel(0, τ) noise; SFE with exact samples (unbiased; its bias is the
//!   Monte-Carlo error of N draws).
//!
//! The problems are `θ ~ N(0, I)` (the first one is Figure 3's `θ_0`) with Figure 3's `b`;
//! curves show the mean ± std over problems.

use super::{fig3, positive_usize, Experiment, Profile, Report, RunContext};
use crate::output::Table;
use crate::plot::{Figure, LineChart, Panel, Series};
use crate::run::derive_seed;
use crate::stats::mean_std;
use anyhow::{Context, Result};
use imle::fidelity::{self as fid, Problem};
use imle::loss::Baseline;
use imle::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Command-line overrides of the fidelity figure.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Draws of each estimator per setting [quick 2000, full 10000].
    #[arg(long, value_parser = positive_usize)]
    pub draws: Option<usize>,
    /// Random problems θ (the first is Fig. 3's θ_0) [quick 5, full 20].
    #[arg(long, value_parser = positive_usize)]
    pub problems: Option<usize>,
    /// λ values, comma-separated [0.25,0.5,1,2,3,5,8].
    #[arg(long, value_delimiter = ',', value_parser = super::positive_f64)]
    pub lambdas: Option<Vec<f64>>,
    /// τ values, comma-separated [0.25,0.5,1,2,4].
    #[arg(long, value_delimiter = ',', value_parser = super::positive_f64)]
    pub taus: Option<Vec<f64>>,
    /// λ of the τ sweep [default: 1].
    #[arg(long, value_parser = super::positive_f64)]
    pub lambda: Option<f64>,
}

/// Resolved configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Items n.
    pub n: usize,
    /// Subset size k.
    pub k: usize,
    /// SoG s.
    pub sog_terms: usize,
    /// Draws per estimator and setting.
    pub draws: usize,
    /// Number of problems.
    pub problems: usize,
    /// λ sweep (at τ = 1).
    pub lambdas: Vec<f64>,
    /// τ sweep (at `lambda`).
    pub taus: Vec<f64>,
    /// λ of the τ sweep.
    pub lambda: f64,
    /// Distribution of b (as in Figure 3).
    pub b_dist: fig3::BDist,
}

impl Args {
    /// The profile's configuration overridden by the flags given.
    pub fn resolve(&self, profile: Profile) -> Result<Config> {
        Ok(Config {
            n: 10,
            k: 5,
            sog_terms: 10,
            draws: self.draws.unwrap_or(profile.pick(2000, 10000)),
            problems: self.problems.unwrap_or(profile.pick(5, 20)),
            lambdas: self
                .lambdas
                .clone()
                .unwrap_or_else(|| vec![0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0]),
            taus: self
                .taus
                .clone()
                .unwrap_or_else(|| vec![0.25, 0.5, 1.0, 2.0, 4.0]),
            lambda: self.lambda.unwrap_or(1.0),
            b_dist: fig3::BDist::AbsNormal,
        })
    }
}

/// The estimators compared.
pub const ESTIMATORS: [&str; 5] = [
    "I-MLE (SoG)",
    "I-MLE (Gumbel)",
    "I-MLE (no noise)",
    "STE (Gumbel)",
    "SFE (exact)",
];

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Sweep: `lambda` or `tau`.
    pub sweep: String,
    /// Estimator name.
    pub estimator: String,
    /// λ.
    pub lambda: f64,
    /// τ.
    pub tau: f64,
    /// Mean over problems of the cosine of the mean estimate to the exact gradient.
    pub cosine: f64,
    /// Std over problems.
    pub cosine_std: f64,
    /// Mean over problems of the per-draw cosine.
    pub mean_cosine: f64,
    /// Mean over problems of `||mean − exact|| / ||exact||`.
    pub relative_bias: f64,
    /// Std over problems.
    pub relative_bias_std: f64,
    /// Mean over problems of the estimator's variance (trace of the covariance).
    pub variance: f64,
}

/// One estimator of [`ESTIMATORS`] (index `est`) drawn on `problem`: every estimator but
/// SFE is an [`Estimator`] of the library, measured by the one generic
/// [`fid::estimator`]; SFE (a loss, not a layer) by [`fid::sfe`].
fn estimate(
    cfg: &Config,
    problem: &Problem,
    est: usize,
    lambda: f64,
    tau: f64,
    seed: u64,
) -> Result<fid::Fidelity> {
    let k = cfg.k;
    let topk = TopK::new(k);
    let imle = |noise: Noise| -> Result<Imle<TopK>> {
        Ok(Imle::new(topk, Target::pid(lambda as f32)?, noise).scale_by_lambda(true))
    };
    fn run<E: Estimator>(
        p: &Problem,
        op: E,
        draws: usize,
        seed: u64,
    ) -> imle::Result<fid::Fidelity> {
        fid::evaluate(p, &mut fid::estimator(op), draws, seed)
    }
    Ok(match ESTIMATORS[est] {
        "I-MLE (SoG)" => run(
            problem,
            imle(Noise::sum_of_gamma(k as f64, tau, cfg.sog_terms)?)?,
            cfg.draws,
            seed,
        ),
        "I-MLE (Gumbel)" => run(problem, imle(Noise::gumbel(tau)?)?, cfg.draws, seed),
        // Deterministic: one draw is exact.
        "I-MLE (no noise)" => run(problem, imle(Noise::None)?, 1, seed),
        "STE (Gumbel)" => run(
            problem,
            Ste::new(topk, Noise::gumbel(tau)?),
            cfg.draws,
            seed,
        ),
        _ => fid::evaluate(problem, &mut fid::sfe(Baseline::None), cfg.draws, seed),
    }?)
}

/// The problems: Figure 3's drawn `θ_0` first, then `θ ~ N(0, I)`; and `b`.
fn problems(cfg: &Config, seed: u64) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let f3 = fig3::Config {
        n: cfg.n,
        k: cfg.k,
        b_dist: cfg.b_dist,
        // Its problems are drawn from the seed, the first being the drawn Fig. 3 θ_0.
        instance: fig3::Instance::Drawn,
        ..fig3::Config::paper()
    };
    let base = fig3::problem(&f3, seed)?;
    let b: Vec<f32> = base.b.iter().map(|&v| v as f32).collect();
    let mut thetas = vec![base.theta0.clone()];
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "fidelity/theta", 0));
    while thetas.len() < cfg.problems {
        thetas.push(
            (0..cfg.n)
                .map(|_| {
                    let v: f64 = StandardNormal.sample(&mut rng);
                    v as f32
                })
                .collect(),
        );
    }
    thetas.truncate(cfg.problems);
    Ok((thetas, b))
}

/// Measures estimator number `est` of [`ESTIMATORS`] over both sweeps.
pub fn compute_estimator(cfg: &Config, est: usize, ctx: &RunContext) -> Result<Vec<Point>> {
    let (thetas, b) = problems(cfg, ctx.seed)?;
    // Settings: (sweep, λ, τ); their global index (over every estimator) seeds the draws.
    let mut settings: Vec<(&str, f64, f64)> = Vec::new();
    for &l in &cfg.lambdas {
        settings.push(("lambda", l, 1.0));
    }
    for &t in &cfg.taus {
        settings.push(("tau", cfg.lambda, t));
    }
    let first = est * settings.len();
    let jobs: Vec<(usize, usize)> = (0..settings.len())
        .flat_map(|s| (0..thetas.len()).map(move |p| (s, p)))
        .collect();
    let pb = ctx.progress(jobs.len() as u64, ESTIMATORS[est]);
    let results: Vec<fid::Fidelity> = jobs
        .par_iter()
        .map(|&(s, p)| {
            let (_, lambda, tau) = settings[s];
            let problem = Problem::squared_distance(thetas[p].clone(), cfg.k, tau, b.clone())?;
            let seed = derive_seed(ctx.seed, &format!("fidelity/{est}/{p}"), (first + s) as u64);
            let r = estimate(cfg, &problem, est, lambda, tau, seed);
            pb.inc(1);
            r.with_context(|| format!("{} at λ = {lambda}, τ = {tau}", ESTIMATORS[est]))
        })
        .collect::<Result<_>>()?;
    pb.finish_and_clear();
    let np = thetas.len();
    Ok(settings
        .iter()
        .enumerate()
        .map(|(s, &(sweep, lambda, tau))| {
            let rs = &results[s * np..(s + 1) * np];
            let (c, cs) = mean_std(rs.iter().map(|r| r.cosine));
            let (rb, rbs) = mean_std(rs.iter().map(|r| r.relative_bias));
            Point {
                sweep: sweep.into(),
                estimator: ESTIMATORS[est].into(),
                lambda,
                tau,
                cosine: c,
                cosine_std: cs,
                mean_cosine: mean_std(rs.iter().map(|r| r.mean_cosine)).0,
                relative_bias: rb,
                relative_bias_std: rbs,
                variance: mean_std(rs.iter().map(|r| r.variance)).0,
            }
        })
        .collect())
}

/// Measures every estimator over both sweeps (no files written).
pub fn compute(cfg: &Config, ctx: &RunContext) -> Result<Vec<Point>> {
    Ok((0..ESTIMATORS.len())
        .map(|e| compute_estimator(cfg, e, ctx))
        .collect::<Result<Vec<_>>>()?
        .concat())
}

/// The fidelity experiment on the framework: one unit per estimator.
pub struct Fidelity;

impl Experiment for Fidelity {
    const NAME: &'static str = "fidelity";
    const TITLE: &'static str = "Estimator fidelity on the synthetic problem (beyond the paper)";
    type Args = Args;
    type Config = Config;
    type Unit = Vec<Point>;

    fn resolve(args: &Args, profile: Profile) -> Result<Config> {
        args.resolve(profile)
    }
    fn units(_cfg: &Config) -> Vec<String> {
        ESTIMATORS.iter().map(|e| e.to_string()).collect()
    }
    fn compute(cfg: &Config, unit: &str, ctx: &RunContext) -> Result<Vec<Point>> {
        let est = ESTIMATORS
            .iter()
            .position(|e| *e == unit)
            .with_context(|| format!("fidelity has no estimator '{unit}'"))?;
        compute_estimator(cfg, est, ctx)
    }
    fn report(
        cfg: &Config,
        units: &[(String, Option<Vec<Point>>)],
        _ctx: &RunContext,
    ) -> Result<Report> {
        let points: Vec<Point> = units.iter().filter_map(|u| u.1.clone()).flatten().collect();
        report(cfg, &points)
    }
}

/// The 2 × 2 figure: cosine and relative bias over λ (τ = 1) and over τ.
pub fn figure(cfg: &Config, points: &[Point]) -> Figure {
    let chart = |sweep: &str, metric: &str| {
        let (xlab, title) = match sweep {
            "lambda" => ("λ", "over λ (τ = 1)".to_string()),
            _ => ("τ", format!("over τ (λ = {})", cfg.lambda)),
        };
        let ylab = if metric == "cosine" {
            "cosine(mean estimate, exact gradient)"
        } else {
            "||bias|| / ||exact gradient||"
        };
        let mut c = LineChart::new(
            format!(
                "{} {title}",
                if metric == "cosine" {
                    "Cosine"
                } else {
                    "Relative bias"
                }
            ),
            xlab,
            ylab,
        );
        for (i, name) in ESTIMATORS.iter().enumerate() {
            let ps: Vec<&Point> = points
                .iter()
                .filter(|p| p.sweep == sweep && p.estimator == *name)
                .collect();
            let x = ps
                .iter()
                .map(|p| if sweep == "lambda" { p.lambda } else { p.tau })
                .collect();
            let (y, band) = if metric == "cosine" {
                (
                    ps.iter().map(|p| p.cosine).collect(),
                    ps.iter().map(|p| p.cosine_std).collect(),
                )
            } else {
                (
                    ps.iter().map(|p| p.relative_bias).collect(),
                    ps.iter().map(|p| p.relative_bias_std).collect(),
                )
            };
            let mut s = Series::new(*name, x, y).band(band).color(i);
            if sweep == "lambda" && i >= 3 {
                s = s.dashed(); // STE and SFE do not depend on λ
            }
            c = c.series(s);
        }
        if metric == "cosine" {
            c = c.y_range(-0.2, 1.05);
        }
        Panel::Line(c)
    };
    Figure::rows(
        vec![
            vec![chart("lambda", "cosine"), chart("lambda", "bias")],
            vec![chart("tau", "cosine"), chart("tau", "bias")],
        ],
        (1200, 900),
    )
    .title(format!(
        "Estimator fidelity vs the exact gradient ({}-subsets of {}, L = ||z − b||², {} problems × {} draws)",
        cfg.k, cfg.n, cfg.problems, cfg.draws
    ))
}

/// The fidelity report: `fidelity.png`/`.svg`, `fidelity.csv`, record and README.
pub fn report(cfg: &Config, points: &[Point]) -> Result<Report> {
    let t = Table::new()
        .str("sweep", points.iter().map(|p| p.sweep.clone()).collect())
        .str(
            "estimator",
            points.iter().map(|p| p.estimator.clone()).collect(),
        )
        .f64("lambda", points.iter().map(|p| p.lambda).collect())
        .f64("tau", points.iter().map(|p| p.tau).collect())
        .f64("cosine", points.iter().map(|p| p.cosine).collect())
        .f64("cosine_std", points.iter().map(|p| p.cosine_std).collect())
        .f64(
            "mean_cosine",
            points.iter().map(|p| p.mean_cosine).collect(),
        )
        .f64(
            "relative_bias",
            points.iter().map(|p| p.relative_bias).collect(),
        )
        .f64(
            "relative_bias_std",
            points.iter().map(|p| p.relative_bias_std).collect(),
        )
        .f64("variance", points.iter().map(|p| p.variance).collect());
    // Summary: at τ = 1 and the λ of the τ sweep.
    let at: Vec<&Point> = points
        .iter()
        .filter(|p| p.sweep == "tau" && (p.tau - 1.0).abs() < 1e-12)
        .collect();
    let mut readme = format!(
        "Not in the paper. Fidelity of each estimator on Figure 3's problem family \
         ({}-subsets of {}, L(z) = ||z − b||²): cosine similarity of the mean of {} draws to \
         the exact gradient, and relative bias ||mean − exact|| / ||exact||, mean over {} \
         problems θ ~ N(0, I). I-MLE divided by λ here. At τ = 1, λ = {}:\n\n\
         | estimator | cosine | per-draw cosine | relative bias | variance |\n|---|---|---|---|---|\n",
        cfg.k, cfg.n, cfg.draws, cfg.problems, cfg.lambda
    );
    let mut lines = Vec::new();
    for p in &at {
        readme.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            p.estimator, p.cosine, p.mean_cosine, p.relative_bias, p.variance
        ));
        lines.push(format!(
            "{:<17} cosine {:.3}  relative bias {:.3}  (τ = 1, λ = {})",
            p.estimator, p.cosine, p.relative_bias, cfg.lambda
        ));
    }
    Ok(Report {
        data: serde_json::to_value(points)?,
        summary: serde_json::json!({ "at_tau_1": at }),
        tables: vec![("fidelity".into(), t)],
        figures: vec![("fidelity".into(), figure(cfg, points))],
        readme,
        lines,
    })
}
