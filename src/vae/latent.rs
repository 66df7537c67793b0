//! The discrete latent layer of each method: logits `(B, 20, 20)` → latent `(B, 20, 20)`.

use super::model::{BLOCKS, CATS};
use crate::spec::{Built, EstimatorSpec, NoiseSpec, TargetSpec};
use dfdx::prelude::*;
use imle::prelude::*;
use serde::{Deserialize, Serialize};

/// Logits or latent codes: `(batch, blocks, categories)`, on device `D` (default `Cpu`).
pub type Blocks<T, D = Cpu> = Tensor<(usize, Const<BLOCKS>, Const<CATS>), f32, D, T>;

/// How the discrete latent is sampled and differentiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// I-MLE, PID target (λ = 10), SoG(κ = k, τ = 10, s = 10) noise, gradient / λ
    /// (the official code; Figure 4, left).
    ImleSog,
    /// I-MLE with Gumbel(0, 1) noise (Figure 4, left).
    ImleGumbel,
    /// Straight-through estimator: forward perturb-and-MAP with the same SoG noise as
    /// I-MLE, backward the identity (Figure 4, middle).
    SteSog,
    /// Straight-through estimator with Gumbel(0, 1) noise.
    SteGumbel,
    /// Categorical 1-of-20 latent per block, Gumbel-softmax relaxation with the official
    /// code's annealed temperature ("GSMT", Figure 4, right).
    Gsmt,
    /// Beyond the paper: adaptive I-MLE (AIMLE), λ = β·‖θ‖/‖g‖ per block with β adapted
    /// so that ~10% of the gradient entries are non-zero; SoG noise; gradient / λ.
    Aimle,
    /// Beyond the paper: two-sided (central-difference) I-MLE, SoG noise, λ = 10.
    ImleTwoSided,
    /// Diagnostic: I-MLE with the official notebook's *rate*-parameterised SoG noise,
    /// `(τ/κ)(Σ_i Gamma(1/κ, scale i/κ) − ln s)` — Gamma *scale* i/κ instead of κ/i
    /// (mean −1.75, std 0.62 at κ = τ = s = 10, not a Gumbel decomposition); otherwise
    /// as `imle-sog`. Shows how much the paper's SoG curve owes to this much weaker noise.
    ImleSogOfficialRate,
}

impl Method {
    /// Every method, in figure order.
    pub const ALL: [Method; 8] = [
        Method::ImleSog,
        Method::ImleGumbel,
        Method::SteSog,
        Method::SteGumbel,
        Method::Gsmt,
        Method::Aimle,
        Method::ImleTwoSided,
        Method::ImleSogOfficialRate,
    ];

    /// The estimator of the method with hyper-parameters `cfg`: PID target (λ) with the
    /// gradient divided by λ, SoG(κ = k, τ, s) or Gumbel(0, 1) noise, S = 1.
    pub fn spec(self, cfg: &LatentConfig) -> EstimatorSpec {
        let imle = |target, noise, two_sided| EstimatorSpec::Imle {
            target,
            noise,
            samples: 1,
            temperature: 1.0,
            scale_by_lambda: true,
            two_sided,
        };
        let pid = TargetSpec::Pid {
            lambda: cfg.lambda,
            alpha: 1.0,
        };
        let gumbel = NoiseSpec::Gumbel { scale: 1.0 };
        match self {
            Method::ImleSog => imle(pid, cfg.sog(), false),
            Method::ImleGumbel => imle(pid, gumbel, false),
            Method::ImleTwoSided => imle(pid, cfg.sog(), true),
            Method::Aimle => imle(
                TargetSpec::Adaptive {
                    beta0: cfg.aimle_beta0,
                    target_nonzero: cfg.aimle_target_nonzero,
                },
                cfg.sog(),
                false,
            ),
            Method::SteSog => EstimatorSpec::Ste {
                noise: cfg.sog(),
                temperature: 1.0,
            },
            Method::SteGumbel => EstimatorSpec::Ste {
                noise: gumbel,
                temperature: 1.0,
            },
            Method::Gsmt => EstimatorSpec::GumbelSoftmax {
                temperature: cfg.gs_init_temperature,
                hard: false,
            },
            Method::ImleSogOfficialRate => imle(
                pid,
                NoiseSpec::OfficialRateSog {
                    kappa: cfg.k as f64,
                    tau: cfg.sog_tau,
                    s: cfg.sog_s,
                },
                false,
            ),
        }
    }

    /// The command-line / file name of the method.
    pub fn name(self) -> &'static str {
        match self {
            Method::ImleSog => "imle-sog",
            Method::ImleGumbel => "imle-gumbel",
            Method::SteSog => "ste-sog",
            Method::SteGumbel => "ste-gumbel",
            Method::Gsmt => "gsmt",
            Method::Aimle => "aimle",
            Method::ImleTwoSided => "imle-two-sided",
            Method::ImleSogOfficialRate => "imle-sog-official-rate",
        }
    }

    /// A legend label.
    pub fn label(self) -> &'static str {
        match self {
            Method::ImleSog => "I-MLE (SoG noise)",
            Method::ImleGumbel => "I-MLE (Gumbel noise)",
            Method::SteSog => "STE (SoG noise)",
            Method::SteGumbel => "STE (Gumbel noise)",
            Method::Gsmt => "Gumbel-softmax, 1-of-20 (GSMT)",
            Method::Aimle => "AIMLE (adaptive lambda, SoG)",
            Method::ImleTwoSided => "I-MLE two-sided (SoG)",
            Method::ImleSogOfficialRate => "I-MLE, official code's rate-form SoG",
        }
    }

    /// Parses [`Method::name`].
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Size of the subset per block: 1 for the categorical Gumbel-softmax VAE, else k.
    pub fn subset_size(self, k: usize) -> usize {
        if self == Method::Gsmt {
            1
        } else {
            k
        }
    }
}

/// Hyper-parameters of the latent layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatentConfig {
    /// Subset size k per block (10).
    pub k: usize,
    /// λ of the PID target (10).
    pub lambda: f32,
    /// τ of the SoG noise (10).
    pub sog_tau: f64,
    /// Number of Gamma terms s of the SoG noise (10).
    pub sog_s: usize,
    /// Initial Gumbel-softmax temperature (1.0).
    pub gs_init_temperature: f32,
    /// Per-epoch anneal rate r of the official schedule (3e-4).
    pub gs_anneal_rate: f32,
    /// Minimum Gumbel-softmax temperature (0.5).
    pub gs_min_temperature: f32,
    /// AIMLE: initial β (1.0).
    pub aimle_beta0: f32,
    /// AIMLE: target fraction of non-zero gradient entries (0.1).
    pub aimle_target_nonzero: f32,
}

impl Default for LatentConfig {
    fn default() -> Self {
        Self {
            k: 10,
            lambda: 10.0,
            sog_tau: 10.0,
            sog_s: 10,
            gs_init_temperature: 1.0,
            gs_anneal_rate: 3e-4,
            gs_min_temperature: 0.5,
            aimle_beta0: 1.0,
            aimle_target_nonzero: 0.1,
        }
    }
}

impl LatentConfig {
    /// The official temperature schedule, applied at the start of each epoch
    /// `e = 1, 2, ...`: `τ_e = max(τ_{e−1} · exp(−r·e), τ_min)`, `τ_0 = τ_init`.
    pub fn gs_temperature(&self, epoch: usize) -> f32 {
        let mut tau = self.gs_init_temperature;
        for e in 1..=epoch {
            tau = (tau * (-self.gs_anneal_rate * e as f32).exp()).max(self.gs_min_temperature);
        }
        tau
    }

    fn sog(&self) -> NoiseSpec {
        NoiseSpec::SumOfGamma {
            kappa: self.k as f64,
            tau: self.sog_tau,
            s: self.sog_s,
        }
    }
}

/// The latent layer of one method: a library estimator bound to its top-k solver (its
/// AIMLE state, if any, lives in it).
#[derive(Debug, Clone)]
pub enum Latent {
    /// An I-MLE variant, including the official notebook's rate-form SoG noise as a
    /// custom [`Noise`].
    Imle(Imle<TopK>),
    /// STE.
    Ste(Ste<TopK>),
    /// Gumbel-softmax relaxation of a 1-of-M categorical.
    GumbelSoftmax(GumbelSoftmax),
}

impl Latent {
    /// The layer of `method` with hyper-parameters `cfg` (built from
    /// [`Method::spec`]).
    pub fn new(method: Method, cfg: &LatentConfig) -> anyhow::Result<Self> {
        Self::with_spec(method, cfg, None)
    }

    /// The layer of `method` with its estimator replaced by `spec` (if any): I-MLE, STE
    /// (top-k of the method's subset size) or Gumbel-softmax.
    pub fn with_spec(
        method: Method,
        cfg: &LatentConfig,
        spec: Option<&EstimatorSpec>,
    ) -> anyhow::Result<Self> {
        let k = method.subset_size(cfg.k);
        let spec = spec.cloned().unwrap_or_else(|| method.spec(cfg));
        Ok(match spec.build(TopK::new(k), k)? {
            Built::Imle(op) => Latent::Imle(op),
            Built::Ste(op) => Latent::Ste(op),
            Built::GumbelSoftmax(op) => Latent::GumbelSoftmax(op),
            _ => anyhow::bail!(
                "the VAE's latent layer takes an imle, ste or gumbel-softmax estimator, not {}",
                spec.kind()
            ),
        })
    }

    /// Restores the AIMLE state `(β, running non-zero fraction)`; a no-op for other methods.
    pub fn restore_adaptive_state(&self, beta: f32, running: Option<f32>) -> imle::Result<()> {
        if let Latent::Imle(i) = self {
            if let Target::Adaptive(a) = i.target() {
                a.restore(beta, running)?;
            }
        }
        Ok(())
    }

    /// The AIMLE state `(β, running non-zero fraction)`, if this is AIMLE.
    pub fn adaptive_state(&self) -> Option<(f32, Option<f32>)> {
        match self {
            Latent::Imle(i) => match i.target() {
                Target::Adaptive(a) => Some((a.beta(), a.running_nonzero())),
                _ => None,
            },
            _ => None,
        }
    }

    /// The estimator's seed, call counter and AIMLE state, for checkpoints.
    pub fn state(&self) -> crate::train::EstimatorState {
        use crate::train::EstimatorState;
        match self {
            Latent::Imle(op) => EstimatorState::of(op, self.adaptive_state()),
            Latent::Ste(op) => EstimatorState::of(op, None),
            Latent::GumbelSoftmax(op) => EstimatorState::of(op, None),
        }
    }

    /// Restores [`Latent::state`].
    pub fn restore(&mut self, s: &crate::train::EstimatorState) -> imle::Result<()> {
        match self {
            Latent::Imle(op) => s.restore_into(op),
            Latent::Ste(op) => s.restore_into(op),
            Latent::GumbelSoftmax(op) => s.restore_into(op),
        }
        if let Some((beta, running)) = s.adaptive {
            self.restore_adaptive_state(beta, running)?;
        }
        Ok(())
    }

    /// The error of the last failed backward pass of the estimator.
    pub fn take_backward_error(&self) -> Option<imle::Error> {
        match self {
            Latent::Imle(op) => op.take_backward_error(),
            Latent::Ste(op) => op.take_backward_error(),
            Latent::GumbelSoftmax(op) => op.take_backward_error(),
        }
    }

    /// Maps logits to a latent sample with noise drawn from `seed` (the estimator seeded
    /// with `seed`, its first call); `temperature` is the Gumbel-softmax temperature
    /// (ignored by the other methods).
    pub fn apply<D: ImleDevice, T: Tape<f32, D>>(
        &self,
        logits: Blocks<T, D>,
        seed: u64,
        temperature: f32,
    ) -> imle::Result<Blocks<T, D>> {
        match self {
            Latent::Imle(op) => op.clone().seed(seed).apply_blocks(logits),
            Latent::Ste(op) => op.clone().seed(seed).apply_blocks(logits),
            Latent::GumbelSoftmax(op) => {
                let mut op = op.clone().seed(seed);
                op.set_temperature(temperature)?;
                op.apply_blocks(logits)
            }
        }
    }

    /// A uniformly random latent code (a random k-subset, or a one-hot for the
    /// categorical VAE) per block, row-major `(n, 400)`: samples from the prior.
    pub fn prior_sample(k: usize, n: usize, seed: u64) -> Vec<f32> {
        let mut g = vec![0.0f32; n * BLOCKS * CATS];
        Noise::gumbel(1.0).expect("valid scale").fill(seed, &mut g);
        let mut z = vec![0.0; g.len()];
        TopK::new(k)
            .solve_batch(&g, CATS, &mut z)
            .expect("finite noise");
        z
    }
}
