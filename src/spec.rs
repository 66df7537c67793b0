//! Estimator specifications: one serde enum that names an estimator and every
//! hyper-parameter, and builds the `imle` estimator bound to a solver.
//!
//! Records carry the spec of every method they ran (so a JSON record says exactly what
//! was trained), and the command line names estimators through it: a spec is written as
//! JSON, or in the short form `kind:key=value,...` (unset keys take the defaults below),
//! e.g. `imle:noise=gumbel,lambda=5`, `ste:noise=sog,kappa=10,tau=10`, `bb:lambda=20`,
//! `dpo:sigma=0.5,samples=10`, `gumbel-softmax:temperature=0.5`, `softsub:k=10`,
//! `l2x:k=10,temperature=0.1`, `sfe:samples=1`.
//!
//! ```
//! use imle_paper::spec::{EstimatorSpec, NoiseSpec};
//! let spec: EstimatorSpec = "imle:noise=sog,kappa=10,tau=10,lambda=10".parse().unwrap();
//! let EstimatorSpec::Imle { noise: NoiseSpec::SumOfGamma { kappa, .. }, .. } = &spec else {
//!     unreachable!()
//! };
//! assert_eq!(*kappa, 10.0);
//! let back: EstimatorSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
//! assert_eq!(back, spec);
//! let built = spec.build(imle::solver::TopK::new(3), 3).unwrap();
//! assert!(matches!(built, imle_paper::spec::Built::Imle(_)));
//! ```

use anyhow::{bail, Context, Result};
use dfdx::shapes::Dim;
use dfdx::tensor::{Tape, Tensor};
use imle::loss::ScoreFunction;
use imle::prelude::*;
use imle::target::AdaptiveLambda;
use imle::ImleDevice;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The perturbation ε.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NoiseSpec {
    /// No noise.
    None,
    /// Gumbel(0, scale).
    Gumbel {
        /// Scale τ.
        scale: f64,
    },
    /// Sum-of-Gamma SoG(κ, τ, s) of Eq. 13.
    SumOfGamma {
        /// κ (the subset size k).
        kappa: f64,
        /// τ.
        tau: f64,
        /// Number of Gamma terms s.
        s: usize,
    },
    /// Diagnostic: the official VAE notebook's rate-parameterised SoG
    /// ([`OfficialRateSog`]).
    OfficialRateSog {
        /// κ.
        kappa: f64,
        /// τ.
        tau: f64,
        /// s.
        s: usize,
    },
}

impl NoiseSpec {
    /// The library's noise.
    pub fn build(&self) -> Result<Noise> {
        Ok(match self {
            NoiseSpec::None => Noise::None,
            NoiseSpec::Gumbel { scale } => Noise::gumbel(*scale)?,
            NoiseSpec::SumOfGamma { kappa, tau, s } => Noise::sum_of_gamma(*kappa, *tau, *s)?,
            NoiseSpec::OfficialRateSog { kappa, tau, s } => Noise::custom(
                "official rate-form SoG",
                OfficialRateSog::new(*kappa, *tau, *s)?,
            ),
        })
    }
}

/// The target distribution of I-MLE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TargetSpec {
    /// Eq. 10, `θ' = α·θ − λ·∂L/∂z` (α = 1 in the paper; the official Warcraft "MAP-MAP"
    /// run uses α = 0, the target `−λ·∂L/∂z` alone).
    Pid {
        /// λ.
        lambda: f32,
        /// α (omitted from JSON when 1).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        alpha: f32,
    },
    /// Eq. 14 (combinatorial optimisation).
    Combinatorial,
    /// PID with λ adapted (AIMLE): `λ = β‖θ‖/‖g‖`, β steered to a fraction of non-zero
    /// gradient entries.
    Adaptive {
        /// Initial β.
        beta0: f32,
        /// Target fraction of non-zero gradient entries.
        target_nonzero: f32,
    },
}

fn one() -> f32 {
    1.0
}

fn is_one(x: &f32) -> bool {
    *x == 1.0
}

impl TargetSpec {
    /// The library's target.
    pub fn build(&self) -> Result<Target> {
        Ok(match self {
            TargetSpec::Pid { lambda, alpha } => Target::pid_with_alpha(*lambda, *alpha)?,
            TargetSpec::Combinatorial => Target::Combinatorial,
            TargetSpec::Adaptive {
                beta0,
                target_nonzero,
            } => Target::adaptive(AdaptiveLambda::new(*beta0, *target_nonzero)?),
        })
    }
}

/// An estimator and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "estimator", rename_all = "kebab-case")]
pub enum EstimatorSpec {
    /// I-MLE (Algorithm 1, Eq. 9).
    Imle {
        /// Target distribution.
        target: TargetSpec,
        /// Noise.
        noise: NoiseSpec,
        /// Samples S.
        samples: usize,
        /// Temperature τ of θ in the forward pass.
        temperature: f32,
        /// Divide the estimate by λ (the official VAE and Warcraft code).
        scale_by_lambda: bool,
        /// Central differences (two-sided I-MLE).
        two_sided: bool,
    },
    /// Straight-through: perturb-and-MAP forward, identity backward.
    Ste {
        /// Noise.
        noise: NoiseSpec,
        /// Temperature of θ.
        temperature: f32,
    },
    /// Score function (REINFORCE) with exact samples of the k-subset distribution.
    Sfe {
        /// Temperature τ of the distribution.
        temperature: f32,
    },
    /// Blackbox differentiation (Vlastelica et al.).
    Blackbox {
        /// Interpolation λ.
        lambda: f32,
    },
    /// Perturbed optimizers (DPO, Berthet et al.).
    Dpo {
        /// Noise scale σ.
        sigma: f32,
        /// Samples.
        samples: usize,
    },
    /// Gumbel-softmax (relaxed categorical).
    GumbelSoftmax {
        /// Temperature.
        temperature: f32,
        /// Straight-through hard one-hot forward.
        hard: bool,
    },
    /// SoftSub: relaxed k-subsets (Xie & Ermon).
    SoftSub {
        /// Subset size.
        k: usize,
        /// Temperature.
        temperature: f32,
    },
    /// L2X's relaxed subset sampler (Chen et al.).
    L2x {
        /// Subset size.
        k: usize,
        /// Temperature.
        temperature: f32,
    },
}

/// A built estimator, bound to its solver.
#[derive(Debug, Clone)]
pub enum Built<S: MapSolver + Clone + 'static> {
    /// I-MLE.
    Imle(Imle<S>),
    /// STE.
    Ste(Ste<S>),
    /// Score function (a surrogate loss, see [`imle::loss`]).
    Sfe(ScoreFunction),
    /// Blackbox differentiation.
    Blackbox(Blackbox<S>),
    /// Perturbed optimizer.
    Dpo(Perturbed<S>),
    /// Gumbel-softmax.
    GumbelSoftmax(GumbelSoftmax),
    /// SoftSub.
    SoftSub(SoftSub),
    /// L2X.
    L2x(L2x),
}

impl<S: MapSolver + Clone + 'static> Built<S> {
    /// Applies the estimator to rows `(B, M)` (one k-subset per row), its noise drawn
    /// from `seed` (the estimator reseeded, its first call); the score function, a
    /// surrogate loss rather than a layer, is an error.
    pub fn apply_seeded<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        seed: u64,
    ) -> Result<Tensor<(B, M), f32, D, T>> {
        Ok(match self {
            Built::Imle(op) => op.clone().seed(seed).apply(theta)?,
            Built::Ste(op) => op.clone().seed(seed).apply(theta)?,
            Built::Blackbox(op) => op.clone().seed(seed).apply(theta)?,
            Built::Dpo(op) => op.clone().seed(seed).apply(theta)?,
            Built::GumbelSoftmax(op) => op.clone().seed(seed).apply(theta)?,
            Built::SoftSub(op) => op.clone().seed(seed).apply(theta)?,
            Built::L2x(op) => op.clone().seed(seed).apply(theta)?,
            Built::Sfe(_) => bail!("the score function is a loss, not a layer: use imle::loss"),
        })
    }

    /// The error of the last failed backward pass, if any.
    pub fn take_backward_error(&self) -> Option<imle::Error> {
        match self {
            Built::Imle(op) => op.take_backward_error(),
            Built::Ste(op) => op.take_backward_error(),
            Built::Blackbox(op) => op.take_backward_error(),
            Built::Dpo(op) => op.take_backward_error(),
            Built::GumbelSoftmax(op) => op.take_backward_error(),
            Built::SoftSub(op) => op.take_backward_error(),
            Built::L2x(op) => op.take_backward_error(),
            Built::Sfe(_) => None,
        }
    }

    /// AIMLE's `(β, running non-zero fraction)`, if the estimator is adaptive I-MLE.
    pub fn adaptive_state(&self) -> Option<(f32, Option<f32>)> {
        match self {
            Built::Imle(op) => match op.target() {
                Target::Adaptive(a) => Some((a.beta(), a.running_nonzero())),
                _ => None,
            },
            _ => None,
        }
    }

    /// Restores [`Built::adaptive_state`] (a no-op for other estimators).
    pub fn restore_adaptive_state(&self, state: Option<(f32, Option<f32>)>) -> Result<()> {
        if let (Built::Imle(op), Some((beta, running))) = (self, state) {
            if let Target::Adaptive(a) = op.target() {
                a.restore(beta, running)?;
            }
        }
        Ok(())
    }
}

impl EstimatorSpec {
    /// I-MLE with the PID target (λ), S = 1, τ = 1, no 1/λ, one-sided.
    pub fn imle(lambda: f32, noise: NoiseSpec) -> Self {
        EstimatorSpec::Imle {
            target: TargetSpec::Pid { lambda, alpha: 1.0 },
            noise,
            samples: 1,
            temperature: 1.0,
            scale_by_lambda: false,
            two_sided: false,
        }
    }

    /// The estimator bound to `solver`; `k` is the subset size of the score function
    /// (the only spec whose sampler is not the solver).
    pub fn build<S: MapSolver + Clone + 'static>(&self, solver: S, k: usize) -> Result<Built<S>> {
        Ok(match self {
            EstimatorSpec::Imle {
                target,
                noise,
                samples,
                temperature,
                scale_by_lambda,
                two_sided,
            } => Built::Imle(
                Imle::new(solver, target.build()?, noise.build()?)
                    .samples(*samples)?
                    .input_temperature(*temperature)?
                    .scale_by_lambda(*scale_by_lambda)
                    .two_sided(*two_sided),
            ),
            EstimatorSpec::Ste { noise, temperature } => {
                Built::Ste(Ste::new(solver, noise.build()?).temperature(*temperature)?)
            }
            EstimatorSpec::Sfe { temperature } => {
                Built::Sfe(ScoreFunction::new(k)?.temperature(*temperature)?)
            }
            EstimatorSpec::Blackbox { lambda } => Built::Blackbox(Blackbox::new(solver, *lambda)?),
            EstimatorSpec::Dpo { sigma, samples } => {
                Built::Dpo(Perturbed::new(solver, *sigma, *samples)?)
            }
            EstimatorSpec::GumbelSoftmax { temperature, hard } => {
                Built::GumbelSoftmax(GumbelSoftmax::new(*temperature)?.hard(*hard))
            }
            EstimatorSpec::SoftSub { k, temperature } => {
                Built::SoftSub(SoftSub::new(*k, *temperature)?)
            }
            EstimatorSpec::L2x { k, temperature } => Built::L2x(L2x::new(*k, *temperature)?),
        })
    }

    /// Whether the estimator runs its solver on perturbed θ (noise other than none): then
    /// the solver can see costs that the noise made negative.
    pub fn perturbs(&self) -> bool {
        match self {
            Self::Imle { noise, .. } | Self::Ste { noise, .. } => *noise != NoiseSpec::None,
            Self::Dpo { .. } => true,
            _ => false,
        }
    }

    /// The kind's name in the short form.
    pub fn kind(&self) -> &'static str {
        match self {
            EstimatorSpec::Imle { .. } => "imle",
            EstimatorSpec::Ste { .. } => "ste",
            EstimatorSpec::Sfe { .. } => "sfe",
            EstimatorSpec::Blackbox { .. } => "bb",
            EstimatorSpec::Dpo { .. } => "dpo",
            EstimatorSpec::GumbelSoftmax { .. } => "gumbel-softmax",
            EstimatorSpec::SoftSub { .. } => "softsub",
            EstimatorSpec::L2x { .. } => "l2x",
        }
    }
}

/// Parses the short form's `key=value` list.
struct Keys(BTreeMap<String, String>);

impl Keys {
    fn take<T: std::str::FromStr>(&mut self, key: &str, default: T) -> Result<T> {
        match self.0.remove(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("bad value '{v}' for '{key}'")),
        }
    }

    fn noise(&mut self, default: &str) -> Result<NoiseSpec> {
        let kind = self.take("noise", default.to_string())?;
        Ok(match kind.as_str() {
            "none" => NoiseSpec::None,
            "gumbel" => NoiseSpec::Gumbel {
                scale: self.take("scale", 1.0)?,
            },
            "sog" => NoiseSpec::SumOfGamma {
                kappa: self.take("kappa", 5.0)?,
                tau: self.take("tau", 1.0)?,
                s: self.take("s", 10)?,
            },
            "official-rate-sog" => NoiseSpec::OfficialRateSog {
                kappa: self.take("kappa", 5.0)?,
                tau: self.take("tau", 1.0)?,
                s: self.take("s", 10)?,
            },
            other => bail!("unknown noise '{other}' (none, gumbel, sog, official-rate-sog)"),
        })
    }
}

impl std::str::FromStr for EstimatorSpec {
    type Err = anyhow::Error;

    /// JSON, or `kind:key=value,...` (see the module documentation).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.starts_with('{') {
            return serde_json::from_str(s).context("not a valid estimator spec (JSON)");
        }
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let mut keys = Keys(
            rest.split(',')
                .filter(|kv| !kv.trim().is_empty())
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .with_context(|| format!("expected key=value, got '{kv}'"))
                })
                .collect::<Result<_>>()?,
        );
        let spec = match kind {
            "imle" | "aimle" => {
                let target = match keys
                    .take(
                        "target",
                        if kind == "aimle" { "adaptive" } else { "pid" }.to_string(),
                    )?
                    .as_str()
                {
                    "pid" => TargetSpec::Pid {
                        lambda: keys.take("lambda", 1.0)?,
                        alpha: keys.take("alpha", 1.0)?,
                    },
                    "combinatorial" => TargetSpec::Combinatorial,
                    "adaptive" => TargetSpec::Adaptive {
                        beta0: keys.take("beta0", 1.0)?,
                        target_nonzero: keys.take("target_nonzero", 0.1)?,
                    },
                    other => bail!("unknown target '{other}' (pid, combinatorial, adaptive)"),
                };
                EstimatorSpec::Imle {
                    target,
                    noise: keys.noise("sog")?,
                    samples: keys.take("samples", 1)?,
                    temperature: keys.take("temperature", 1.0)?,
                    scale_by_lambda: keys.take("scale_by_lambda", false)?,
                    two_sided: keys.take("two_sided", false)?,
                }
            }
            "ste" => EstimatorSpec::Ste {
                noise: keys.noise("gumbel")?,
                temperature: keys.take("temperature", 1.0)?,
            },
            "sfe" => EstimatorSpec::Sfe {
                temperature: keys.take("temperature", 1.0)?,
            },
            "bb" | "blackbox" => EstimatorSpec::Blackbox {
                lambda: keys.take("lambda", 10.0)?,
            },
            "dpo" | "perturbed" => EstimatorSpec::Dpo {
                sigma: keys.take("sigma", 1.0)?,
                samples: keys.take("samples", 1)?,
            },
            "gumbel-softmax" | "gs" => EstimatorSpec::GumbelSoftmax {
                temperature: keys.take("temperature", 1.0)?,
                hard: keys.take("hard", false)?,
            },
            "softsub" => EstimatorSpec::SoftSub {
                k: keys.take("k", 1)?,
                temperature: keys.take("temperature", 0.5)?,
            },
            "l2x" => EstimatorSpec::L2x {
                k: keys.take("k", 1)?,
                temperature: keys.take("temperature", 0.1)?,
            },
            other => bail!(
                "unknown estimator '{other}' (imle, aimle, ste, sfe, bb, dpo, gumbel-softmax, \
                 softsub, l2x)"
            ),
        };
        if let Some(k) = keys.0.keys().next() {
            bail!("'{kind}' has no parameter '{k}'");
        }
        Ok(spec)
    }
}

/// The official notebook's SoG noise, `(τ/κ)(Σ_{i=1..s} Gamma(shape 1/κ, scale i/κ) − ln s)`
/// (TensorFlow's `tf.random.gamma(shape, 1/k, k/i)` takes `k/i` as a *rate*), as a
/// `rand_distr` distribution for [`Noise::custom`].
#[derive(Debug, Clone)]
pub struct OfficialRateSog {
    gammas: Vec<Gamma<f64>>,
    scale: f64,
    ln_s: f64,
}

impl OfficialRateSog {
    /// κ > 0, τ > 0, s >= 1 terms.
    pub fn new(kappa: f64, tau: f64, s: usize) -> imle::Result<Self> {
        let invalid = || imle::Error::InvalidParameter {
            name: "kappa",
            value: kappa,
            reason: "must be finite and > 0, with s >= 1",
        };
        if !(kappa.is_finite() && kappa > 0.0 && tau.is_finite() && tau > 0.0 && s >= 1) {
            return Err(invalid());
        }
        let gammas = (1..=s)
            .map(|i| Gamma::new(1.0 / kappa, i as f64 / kappa).map_err(|_| invalid()))
            .collect::<imle::Result<_>>()?;
        Ok(Self {
            gammas,
            scale: tau / kappa,
            ln_s: (s as f64).ln(),
        })
    }
}

impl Distribution<f32> for OfficialRateSog {
    fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let sum: f64 = self.gammas.iter().map(|g| g.sample(rng)).sum();
        (self.scale * (sum - self.ln_s)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imle::solver::TopK;

    #[test]
    fn every_kind_parses_round_trips_and_builds() {
        for s in [
            "imle:lambda=2,noise=sog,kappa=5,tau=1,s=10",
            "imle:target=combinatorial,noise=none",
            "aimle:beta0=1,target_nonzero=0.1,scale_by_lambda=true",
            "ste:noise=gumbel,scale=1",
            "sfe",
            "bb:lambda=20",
            "dpo:sigma=0.5,samples=4",
            "gumbel-softmax:temperature=0.5,hard=true",
            "softsub:k=3,temperature=0.5",
            "l2x:k=3,temperature=0.1",
        ] {
            let spec: EstimatorSpec = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json.parse::<EstimatorSpec>().unwrap(), spec, "{s}");
            spec.build(TopK::new(3), 3)
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        for (s, why) in [
            ("nope", "unknown estimator"),
            ("imle:lambda", "key=value"),
            ("imle:lambda=x", "bad value"),
            ("imle:noise=laplace", "unknown noise"),
            ("ste:lambda=3", "no parameter 'lambda'"),
        ] {
            let e = s.parse::<EstimatorSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
        // Parsed but invalid hyper-parameters fail when built, with the library's error.
        let spec: EstimatorSpec = "imle:lambda=-1".parse().unwrap();
        assert!(spec.build(TopK::new(3), 3).is_err());
    }

    #[test]
    fn apply_seeded_is_deterministic_per_seed_and_refuses_the_score_function() {
        use dfdx::prelude::*;
        let dev = Cpu::default();
        let theta = dev.tensor_from_vec(vec![0.1f32, 0.4, 0.2, 0.3, 0.0, 0.5], (1usize, 6usize));
        let spec: EstimatorSpec = "imle:noise=gumbel,lambda=10".parse().unwrap();
        let op = spec.build(TopK::new(2), 2).unwrap();
        let z = |seed| op.apply_seeded(theta.clone(), seed).unwrap().as_vec();
        assert_eq!(z(3), z(3));
        assert_eq!(z(3).iter().sum::<f32>(), 2.0);
        assert!(
            (0..20).any(|s| z(s) != z(3)),
            "Gumbel noise changes the subset"
        );
        let sfe = EstimatorSpec::Sfe { temperature: 1.0 }
            .build(TopK::new(2), 2)
            .unwrap();
        let e = sfe.apply_seeded(theta, 0).unwrap_err().to_string();
        assert!(e.contains("not a layer"), "{e}");
        assert_eq!(op.adaptive_state(), None);
        let aimle: EstimatorSpec = "aimle:beta0=2".parse().unwrap();
        let a = aimle.build(TopK::new(2), 2).unwrap();
        assert_eq!(a.adaptive_state().map(|s| s.0), Some(2.0));
    }

    #[test]
    fn the_built_estimator_has_the_spec_hyper_parameters() {
        // I-MLE with no noise on a hand-derived example: θ = (3, 1, 2), k = 1,
        // ∂L/∂z = (1, 0, 0), z = (1, 0, 0). λ = 0.5: θ' = (2.5, 1, 2) → z' = z, estimate
        // z − z' = 0; λ = 2: θ' = (1, 1, 2) → z' = (0, 0, 1), estimate (1, 0, −1).
        for (lambda, want) in [(0.5f32, [0.0f32, 0.0, 0.0]), (2.0, [1.0, 0.0, -1.0])] {
            let spec = EstimatorSpec::imle(lambda, NoiseSpec::None);
            let Built::Imle(op) = spec.build(TopK::new(1), 1).unwrap() else {
                panic!()
            };
            let (z, saved) = op.forward(&[3.0, 1.0, 2.0], 3).unwrap();
            assert_eq!(z, vec![1.0, 0.0, 0.0]);
            assert_eq!(op.backward(&saved, &[1.0, 0.0, 0.0]).unwrap(), want);
        }
    }
}
