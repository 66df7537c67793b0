//! The configuration of a Table 2 run: the method (its estimator, loss and supervision),
//! the protocol's hyper-parameters and the policy for negative costs.

use super::*;

/// A row of Table 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Blackbox differentiation (Vlastelica / Pogančić et al.), λ = 20.
    Bb,
    /// I-MLE "MAP-MAP" (Fact 1, Hamming loss): no noise, target θ' = −λ·∂L/∂z (α = 0),
    /// λ = 50, gradient divided by λ (the official run).
    ImleMm,
    /// I-MLE "μ-μ" (Fact 2): supervised by the true cell costs c with the regret loss
    /// `c·(z − z*(c))`, so ∂L/∂z = c and the Eq. 14 target is `p(z; −c)`; SoG(⌊1.3 K⌋, 1,
    /// 10) perturb-and-MAP on both sides, one sample. Sees every cell's cost, a richer
    /// signal than the other rows' paths.
    ImleMumu,
    /// I-MLE from paths only (Hamming loss) with the PID target (Eq. 10), λ = 20, and the
    /// same SoG noise as μ-μ: the same-supervision comparison.
    ImleSogHamming,
    /// Perturbed optimizers (Berthet et al.): Fenchel-Young loss, Gaussian σ = 0.01, one
    /// sample.
    Dpo,
    /// Beyond the paper: adaptive I-MLE (λ adapted per example), SoG noise, Hamming loss.
    Aimle,
    /// Beyond the paper: the ResNet18 stem predicting the path directly (sigmoid + BCE per
    /// cell), no solver.
    Resnet,
}

/// What a method's loss compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Hamming distance of the predicted and true paths, mean over the batch (official:
    /// `(z (1 − t) + (1 − z) t).mean(0).sum()`).
    Hamming,
    /// Regret in true costs, `Σ_b c_b·(z_b − t_b)`, summed over the batch so that the
    /// Eq. 14 target is exactly `−c`.
    Regret,
    /// The perturbed Fenchel-Young loss, mean over the batch.
    FenchelYoung,
    /// Binary cross-entropy of the path logits, mean over the cells.
    Bce,
}

impl Method {
    /// Every method, in the table's order.
    pub const ALL: [Method; 7] = [
        Method::Bb,
        Method::ImleMm,
        Method::ImleMumu,
        Method::ImleSogHamming,
        Method::Dpo,
        Method::Aimle,
        Method::Resnet,
    ];
    /// The rows of the committed full protocol (the paper's, plus the same-supervision
    /// I-MLE).
    pub const PAPER: [Method; 5] = [
        Method::Bb,
        Method::ImleMm,
        Method::ImleMumu,
        Method::ImleSogHamming,
        Method::Dpo,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Bb => "bb",
            Method::ImleMm => "imle-mm",
            Method::ImleMumu => "imle-mumu",
            Method::ImleSogHamming => "imle-sog-hamming",
            Method::Dpo => "dpo",
            Method::Aimle => "aimle",
            Method::Resnet => "resnet",
        }
    }

    /// The row label of Table 2.
    pub fn label(self) -> &'static str {
        match self {
            Method::Bb => "BB",
            Method::ImleMm => "I-MLE M-M",
            Method::ImleMumu => "I-MLE μ-μ (cost-supervised)",
            Method::ImleSogHamming => "I-MLE SoG from paths",
            Method::Dpo => "DPO",
            Method::Aimle => "AIMLE (beyond the paper)",
            Method::Resnet => "ResNet18 stem predicting the path (beyond the paper)",
        }
    }

    /// The method called `s`.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Its loss.
    pub fn loss(self) -> LossKind {
        match self {
            Method::ImleMumu => LossKind::Regret,
            Method::Dpo => LossKind::FenchelYoung,
            Method::Resnet => LossKind::Bce,
            _ => LossKind::Hamming,
        }
    }

    /// Whether it is supervised by the true costs (not only the paths).
    pub fn cost_supervised(self) -> bool {
        self == Method::ImleMumu
    }

    /// The estimator of this row for grid size `k` (the official settings; see each
    /// variant), None for the direct baseline.
    pub fn spec(self, k: usize) -> Option<EstimatorSpec> {
        let sog = NoiseSpec::SumOfGamma {
            kappa: (1.3 * k as f64).floor(),
            tau: 1.0,
            s: 10,
        };
        let imle = |target, noise, scale_by_lambda| EstimatorSpec::Imle {
            target,
            noise,
            samples: 1,
            temperature: 1.0,
            scale_by_lambda,
            two_sided: false,
        };
        Some(match self {
            Method::Bb => EstimatorSpec::Blackbox { lambda: 20.0 },
            Method::ImleMm => imle(
                TargetSpec::Pid {
                    lambda: 50.0,
                    alpha: 0.0,
                },
                NoiseSpec::None,
                true,
            ),
            Method::ImleMumu => imle(TargetSpec::Combinatorial, sog, false),
            Method::ImleSogHamming => imle(
                TargetSpec::Pid {
                    lambda: 20.0,
                    alpha: 1.0,
                },
                sog,
                true,
            ),
            Method::Dpo => EstimatorSpec::Dpo {
                sigma: 0.01,
                samples: 1,
            },
            Method::Aimle => imle(
                TargetSpec::Adaptive {
                    beta0: 1.0,
                    target_nonzero: 0.1,
                },
                sog,
                false,
            ),
            Method::Resnet => return None,
        })
    }
}

/// Everything that defines one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathConfig {
    /// The row.
    pub method: Method,
    /// Its estimator (None: the direct baseline).
    pub spec: Option<EstimatorSpec>,
    /// Grid size K.
    pub k: usize,
    /// Epochs (50).
    pub epochs: usize,
    /// Batch size (70).
    pub batch: usize,
    /// Adam (lr 5e-4, PyTorch's betas and ε).
    pub adam: AdamHyper,
    /// Epochs after which the learning rate drops (30, 40).
    pub milestones: Vec<usize>,
    /// The factor of each drop (0.1).
    pub gamma: f64,
    /// Train on the first `n` training maps (None: all).
    pub train_subset: Option<usize>,
    /// Evaluate on the first `n` validation and test maps (None: all).
    pub eval_subset: Option<usize>,
    /// Run index (the seed derives from it).
    pub run: usize,
    /// The run's seed.
    pub seed: u64,
    /// What the solver does with negative costs (left out of the JSON when it is the
    /// shift, so configurations written before the clamp existed read back unchanged).
    #[serde(default, skip_serializing_if = "NegativeCostPolicy::is_shift")]
    pub negative_costs: NegativeCostPolicy,
}

/// How a run's solver treats negative costs: targets `w' = w + λ·∂L/∂z` and perturbed
/// costs `w − ε` can have some, Dijkstra cannot take them.
///
/// * `Shift` (noiseless methods, BB and M-M: only their targets can be negative): every
///   cell of the instance raised by the most negative cost, the official
///   `translate_weights` of the targets ([`GridShortestPath::shift_negative_costs`]).
/// * `Clamp` (methods that perturb: μ-μ, SoG from paths, AIMLE, DPO): each negative cost
///   raised to 0, the others kept ([`GridShortestPath::clamp_negative_costs`]). The
///   official code runs Dijkstra on its negative perturbed costs as they are; a shift
///   would add the same cost to every cell of nearly every perturbed map (SoG noise has a
///   heavy right tail: some cell of a 12 x 12 map usually draws ε above its cost) and so
///   favour short paths. Measured on 2,000 maps, 8 epochs, seed 0: test accuracy μ-μ
///   31.6 % shifted vs 52.0 % clamped, SoG from paths 26.0 % vs 47.2 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NegativeCostPolicy {
    /// Shift the instance.
    #[default]
    Shift,
    /// Clamp each cost at 0.
    Clamp,
}

impl NegativeCostPolicy {
    /// The policy for an estimator: clamp when it perturbs the costs.
    pub fn for_spec(spec: Option<&EstimatorSpec>) -> Self {
        match spec {
            Some(s) if s.perturbs() => Self::Clamp,
            _ => Self::Shift,
        }
    }

    fn is_shift(&self) -> bool {
        *self == Self::Shift
    }

    /// The solver of `k x k` grids with this policy.
    pub fn solver(self, k: usize) -> GridShortestPath {
        match self {
            Self::Shift => GridShortestPath::new(k).shift_negative_costs(),
            Self::Clamp => GridShortestPath::new(k).clamp_negative_costs(),
        }
    }
}

impl PathConfig {
    /// The official protocol for `method` on `k x k` grids.
    pub fn paper(method: Method, k: usize) -> Self {
        let spec = method.spec(k);
        Self {
            method,
            negative_costs: NegativeCostPolicy::for_spec(spec.as_ref()),
            spec,
            k,
            epochs: 50,
            batch: 70,
            adam: AdamHyper {
                lr: 5e-4,
                betas: [0.9, 0.999],
                eps: 1e-8,
            },
            milestones: vec![30, 40],
            gamma: 0.1,
            train_subset: None,
            eval_subset: None,
            run: 0,
            seed: 0,
        }
    }

    /// The protocol's learning-rate drops for a run of `epochs` epochs: after 60 % and
    /// 80 % of them, rounded down (30 and 40 of 50, 7 and 9 of 12); none that would fall
    /// before the first epoch.
    pub fn drops_for(epochs: usize) -> Vec<usize> {
        [epochs * 3 / 5, epochs * 4 / 5]
            .into_iter()
            .filter(|&m| m > 0)
            .collect()
    }

    /// The configuration without what a resume may change (the number of epochs).
    pub fn without_epochs(&self) -> Self {
        Self {
            epochs: 0,
            ..self.clone()
        }
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> crate::train::LrSchedule {
        crate::train::LrSchedule::StepDecay {
            milestones: self.milestones.clone(),
            gamma: self.gamma,
        }
    }
}
