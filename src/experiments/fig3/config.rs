//! Figure 3's command-line arguments, configuration and the official run's instance.

use crate::experiments::{non_negative_f64, positive_f64, positive_usize, Linspace, Profile};
use anyhow::Result;
use serde::{Deserialize, Serialize};

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
    /// Number of items n [default: 10].
    #[arg(long, value_parser = positive_usize)]
    pub n: Option<usize>,
    /// Subset size k [default: 5].
    #[arg(long, value_parser = positive_usize)]
    pub k: Option<usize>,
    /// Steps of I-MLE and STE [default: 50].
    #[arg(long, value_parser = positive_usize)]
    pub steps: Option<usize>,
    /// Repetitions of I-MLE and STE [quick 20, full 100].
    #[arg(long, value_parser = positive_usize)]
    pub reps: Option<usize>,
    /// Learning rate of I-MLE [0.75].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// λ of the I-MLE PID target [default: 2].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
    /// SoG τ [default: 1].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub sog_tau: Option<f64>,
    /// SoG s (Gamma terms) [default: 10].
    #[arg(long, value_parser = positive_usize)]
    pub sog_terms: Option<usize>,
    /// Scale of the Gumbel noise (STE, and I-MLE with Gumbel noise in the heat map) [default: 1].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub gumbel_tau: Option<f64>,
    /// Learning rate of STE [0.019].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub ste_lr: Option<f64>,
    /// Learning rate of SFE [0.0046].
    #[arg(long, value_parser = positive_f64, allow_negative_numbers = true)]
    pub sfe_lr: Option<f64>,
    /// Steps of SFE [default: 500].
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
            heat_lrs: crate::stats::linspace(0.5, 1.0, 5),
            heat_lambdas: crate::stats::linspace(0.5, 3.0, 6),
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

fn drawn() -> Instance {
    Instance::Drawn
}
