//! Shortest paths on Warcraft terrain maps (Sec. 6, Table 2; Pogančić et al. 2020): a
//! network reads the map image and predicts one cost per cell, Dijkstra finds the cheapest
//! top-left to bottom-right path on those costs, and the loss compares that path with the
//! true one; the estimators (BB, I-MLE, DPO, ...) differentiate through the solver. The
//! protocol is the official code's (tf-imle, `WARCRAFT/`): Hamming loss, Adam
//! lr 5e-4 ×0.1 after epochs 30 and 40, 50 epochs, batch 70, inputs normalised per channel
//! with training-set statistics, accuracy = share of test maps whose predicted path costs
//! (in true costs) the optimum.
//!
//! * [`model`] — the ResNet18-stem networks;
//! * [`Method`] — the rows of Table 2 and their estimators and losses;
//! * [`PathFinder`] — a run as a [`crate::train::Learner`];
//! * [`path_metrics`] — accuracy, exact match, validity and regret.
//!
//! Sign convention: the library's solvers maximise `<z, θ>`, so θ = −costs, and the
//! targets' costs follow (`w' = w + λ·∂L/∂z` is `θ' = θ − λ·∂L/∂z`). Negative costs are
//! shifted away per instance in noiseless runs (the official `translate_weights` of the
//! targets) and clamped at 0 in runs that perturb ([`NegativeCostPolicy`]).

pub mod model;

use crate::data::warcraft::{Split, Warcraft};
use crate::spec::{Built, EstimatorSpec, NoiseSpec, TargetSpec};
use crate::train::{
    tags, AdamHyper, Checkpoint, Learner, Metrics, Optimiser, OptimiserConfig, Step,
};
use anyhow::{bail, Context, Result};
use dfdx::prelude::*;
use imle::loss::FenchelYoung;
use imle::solver::{GridShortestPath, MapSolver};
use model::{Images, Net, PerCell};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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

/// The metrics of predicted paths against the truth.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PathMetrics {
    /// Maps compared.
    pub maps: usize,
    /// Share whose prediction is a valid path of optimal true cost (relative 1e-6): the
    /// paper's accuracy.
    pub accuracy: f64,
    /// Share predicting exactly the true path.
    pub exact: f64,
    /// Share whose prediction is a valid path (a connected set of cells holding the start
    /// and the end; solver outputs always are).
    pub valid: f64,
    /// Mean relative regret `(c·z − c·z*) / c·z*` in true costs over the valid predictions.
    pub regret: f64,
}

/// Whether the cells selected in `z` (`k x k`) are 8-connected and hold the top-left and
/// bottom-right cells.
pub fn is_valid_path(z: &[f32], k: usize) -> bool {
    let n = k * k;
    if z.len() != n || z[0] == 0.0 || z[n - 1] == 0.0 {
        return false;
    }
    let mut seen = vec![false; n];
    let mut stack = vec![0usize];
    seen[0] = true;
    let mut reached = 0;
    while let Some(u) = stack.pop() {
        reached += 1;
        let (r, c) = ((u / k) as isize, (u % k) as isize);
        for dr in -1..=1 {
            for dc in -1..=1 {
                let (nr, nc) = (r + dr, c + dc);
                if nr < 0 || nc < 0 || nr >= k as isize || nc >= k as isize {
                    continue;
                }
                let v = nr as usize * k + nc as usize;
                if z[v] != 0.0 && !seen[v] {
                    seen[v] = true;
                    stack.push(v);
                }
            }
        }
    }
    seen[n - 1] && reached == z.iter().filter(|&&x| x != 0.0).count()
}

/// Accuracy, exact match, validity and regret of the predictions `z` (`maps x k k`,
/// row-major) against the true costs and paths of `split` rows `idx`.
pub fn path_metrics(z: &[f32], split: &Split, idx: &[usize]) -> PathMetrics {
    let kk = split.k * split.k;
    let per: Vec<(bool, bool, bool, f64)> = idx
        .par_iter()
        .enumerate()
        .map(|(j, &i)| {
            let zi = &z[j * kk..(j + 1) * kk];
            let (c, t) = (split.weights_of(i), split.path_of(i));
            let cost =
                |p: &[f32]| -> f64 { p.iter().zip(c).map(|(&a, &b)| a as f64 * b as f64).sum() };
            let (pred, best) = (cost(zi), cost(t));
            let valid = is_valid_path(zi, split.k);
            let optimal = valid && (pred - best).abs() <= 1e-6 * best;
            (valid, optimal, zi == t, (pred - best) / best)
        })
        .collect();
    let n = per.len().max(1) as f64;
    let valid: Vec<&(bool, bool, bool, f64)> = per.iter().filter(|p| p.0).collect();
    PathMetrics {
        maps: per.len(),
        accuracy: per.iter().filter(|p| p.1).count() as f64 / n,
        exact: per.iter().filter(|p| p.2).count() as f64 / n,
        valid: valid.len() as f64 / n,
        regret: valid.iter().map(|p| p.3).sum::<f64>() / valid.len().max(1) as f64,
    }
}

/// Per-channel mean and standard deviation of the training images (in `[0, 255]`).
pub fn channel_stats(split: &Split) -> ([f32; 3], [f32; 3]) {
    let (sum, sq) = split
        .maps
        .par_chunks(3 * 4096)
        .map(|px| {
            let (mut s, mut q) = ([0f64; 3], [0f64; 3]);
            for p in px.chunks_exact(3) {
                for c in 0..3 {
                    let v = p[c] as f64;
                    s[c] += v;
                    q[c] += v * v;
                }
            }
            (s, q)
        })
        .reduce(
            || ([0f64; 3], [0f64; 3]),
            |a, b| {
                (
                    std::array::from_fn(|c| a.0[c] + b.0[c]),
                    std::array::from_fn(|c| a.1[c] + b.1[c]),
                )
            },
        );
    let n = (split.maps.len() / 3).max(1) as f64;
    let mean = sum.map(|s| s / n);
    let std: [f64; 3] = std::array::from_fn(|c| (sq[c] / n - mean[c] * mean[c]).max(1e-12).sqrt());
    (mean.map(|m| m as f32), std.map(|s| s as f32))
}

/// One training run: the network, Adam, the estimator and the data.
pub struct PathFinder {
    /// Its configuration.
    pub cfg: PathConfig,
    /// The network.
    pub net: Net,
    /// Adam.
    pub optimiser: Optimiser,
    /// The estimator through the training solver (None: the direct baseline).
    pub estimator: Option<Built<GridShortestPath>>,
    /// The data.
    pub data: Arc<Warcraft>,
    /// Per-channel mean and std of the training images.
    pub norm: ([f32; 3], [f32; 3]),
    dev: Cpu,
}

/// Maps per evaluation batch.
const EVAL_BATCH: usize = 100;

impl PathFinder {
    /// A fresh run.
    pub fn new(cfg: PathConfig, data: Arc<Warcraft>) -> Result<Self> {
        if cfg.batch == 0 || cfg.k < 2 {
            bail!("the batch size must be at least 1 and K at least 2");
        }
        if data.k != cfg.k {
            bail!(
                "the data are {0}x{0} grids, the run needs {1}x{1}",
                data.k,
                cfg.k
            );
        }
        if data.train.px != crate::data::warcraft::CELL_PX * cfg.k {
            bail!(
                "the images are {0}x{0} px; the network expects 8 px per cell ({1}x{1})",
                data.train.px,
                crate::data::warcraft::CELL_PX * cfg.k
            );
        }
        if cfg.spec.is_none() != (cfg.method == Method::Resnet) {
            bail!(
                "{} needs {} estimator",
                cfg.method.name(),
                if cfg.method == Method::Resnet {
                    "no"
                } else {
                    "an"
                }
            );
        }
        let solver = cfg.negative_costs.solver(cfg.k);
        let estimator = cfg
            .spec
            .as_ref()
            .map(|s| s.build(solver, cfg.k))
            .transpose()?;
        if matches!(estimator, Some(Built::Dpo(_))) != (cfg.method.loss() == LossKind::FenchelYoung)
        {
            bail!("the Fenchel-Young loss needs the dpo estimator and dpo needs it");
        }
        let net = Net::new(
            cfg.method == Method::Resnet,
            crate::run::tag_seed(cfg.seed, tags::INIT),
        );
        let norm = channel_stats(&data.train);
        Ok(Self {
            optimiser: Optimiser::new(OptimiserConfig::Adam(cfg.adam)),
            cfg,
            net,
            estimator,
            data,
            norm,
            dev: Cpu::default(),
        })
    }

    /// Maps `idx` of `split` as normalised images, channels first.
    pub fn images(&self, split: &Split, idx: &[usize]) -> Images {
        let px = split.px;
        let (mean, std) = self.norm;
        let mut out = vec![0.0f32; idx.len() * 3 * px * px];
        out.par_chunks_mut(3 * px * px)
            .zip(idx)
            .for_each(|(o, &i)| {
                let m = split.map_of(i);
                for (p, rgb) in m.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        o[c * px * px + p] = (rgb[c] as f32 - mean[c]) / std[c];
                    }
                }
            });
        self.dev
            .tensor_from_vec(out, (idx.len(), Const::<3>, px, px))
    }

    fn rows(&self, values: Vec<f32>, b: usize) -> PerCell {
        let kk = self.cfg.k * self.cfg.k;
        self.dev.tensor_from_vec(values, (b, kk))
    }

    /// The test-time prediction for maps `idx` of `split`: `(costs or logits, path)`,
    /// row-major `(maps, K K)`; the path is Dijkstra's on the predicted costs, or the
    /// cells with a positive logit for the baseline.
    pub fn predict(&self, split: &Split, idx: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
        let kk = self.cfg.k * self.cfg.k;
        let (mut out, mut paths) = (
            Vec::with_capacity(idx.len() * kk),
            Vec::with_capacity(idx.len() * kk),
        );
        for chunk in idx.chunks(EVAL_BATCH) {
            let y = self.net.forward_eval(self.images(split, chunk)).as_vec();
            let z = match self.net.is_direct() {
                true => y.iter().map(|&l| (l > 0.0) as u8 as f32).collect(),
                false => {
                    let theta: Vec<f32> = y.iter().map(|w| -w).collect();
                    let mut z = vec![0.0; y.len()];
                    GridShortestPath::new(self.cfg.k).solve_batch(&theta, kk, &mut z)?;
                    z
                }
            };
            out.extend(y);
            paths.extend(z);
        }
        Ok((out, paths))
    }

    /// [`path_metrics`] of the test-time predictions for the first `n` maps of `split`.
    pub fn metrics(&self, split: &Split, n: Option<usize>) -> Result<PathMetrics> {
        let idx: Vec<usize> = (0..n.map_or(split.n, |n| n.min(split.n))).collect();
        let (_, z) = self.predict(split, &idx)?;
        Ok(path_metrics(&z, split, &idx))
    }

    /// Replaces the network's weights with those of checkpoint `ck`.
    pub fn model_from(&mut self, ck: &Checkpoint) -> Result<()> {
        match &mut self.net {
            Net::Costs(m) => ck.take_model("model", m),
            Net::Direct(m) => ck.take_model("model", m),
        }
        .map_err(anyhow::Error::msg)
    }

    fn loss(
        &self,
        out: PerCell<OwnedTape<f32, Cpu>>,
        batch: &[usize],
        seed: u64,
    ) -> Result<Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>>> {
        let split = &self.data.train;
        let b = batch.len();
        let gather = |f: fn(&Split, usize) -> &[f32]| -> Vec<f32> {
            batch
                .iter()
                .flat_map(|&i| f(split, i).iter().copied())
                .collect()
        };
        let t = gather(Split::path_of);
        let kind = self.cfg.method.loss();
        if kind == LossKind::Bce {
            return Ok(binary_cross_entropy_with_logits_loss(out, self.rows(t, b)));
        }
        let theta = out.negate();
        let estimator = self.estimator.as_ref().context("no estimator")?;
        if let (LossKind::FenchelYoung, Built::Dpo(p)) = (kind, estimator) {
            let fy = FenchelYoung::new(imle::Estimator::seed(p.clone(), seed));
            return Ok(fy.loss(theta, &self.rows(t, b))?.mean());
        }
        let z = estimator.apply_seeded(theta, seed)?;
        Ok(match kind {
            LossKind::Regret => {
                let c = gather(Split::weights_of);
                let opt: f32 = c.iter().zip(&t).map(|(a, b)| a * b).sum();
                (z * self.rows(c, b)).sum::<Rank0, _>() - opt
            }
            _ => {
                let ones: f32 = t.iter().sum();
                let w: Vec<f32> = t.iter().map(|t| 1.0 - 2.0 * t).collect();
                ((z * self.rows(w, b)).sum::<Rank0, _>() + ones) / b as f32
            }
        })
    }

    fn train_rows(&self) -> usize {
        self.cfg
            .train_subset
            .map_or(self.data.train.n, |n| n.min(self.data.train.n))
    }
}

/// What one training step computes before the update: the loss, the network's output
/// (costs or logits, `(batch, K K)`) and the gradient of every parameter.
pub struct StepGradients {
    /// The batch's loss.
    pub loss: f64,
    /// The network's output.
    pub out: Vec<f32>,
    /// The parameters' gradients.
    pub grads: Gradients<f32, Cpu>,
}

impl PathFinder {
    /// Forward (train mode: the batch-norm running statistics are updated), loss and
    /// backward on training maps `batch`, with the estimator's noise from `seed`.
    pub fn gradients(&mut self, batch: &[usize], seed: u64) -> Result<StepGradients> {
        let x = self.images(&self.data.train, batch);
        let grads = match &self.net {
            Net::Costs(m) => m.alloc_grads(),
            Net::Direct(m) => m.alloc_grads(),
        };
        let out = self.net.forward_train(x.traced(grads));
        let values = out.as_vec();
        let loss = self.loss(out, batch, seed)?;
        let value = loss.array() as f64;
        if !value.is_finite() {
            bail!("the training loss is {value} (diverged)");
        }
        let grads = match loss.try_backward() {
            Ok(g) => g,
            Err(e) => {
                return Err(
                    match self.estimator.as_ref().and_then(Built::take_backward_error) {
                        Some(err) => anyhow::Error::new(err),
                        None => anyhow::anyhow!("backward pass failed: {e:?}"),
                    },
                )
            }
        };
        Ok(StepGradients {
            loss: value,
            out: values,
            grads,
        })
    }

    /// One optimiser update of the network with `grads` at learning rate `lr`.
    pub fn update(&mut self, grads: &mut Gradients<f32, Cpu>, lr: f64) -> Result<()> {
        match &mut self.net {
            Net::Costs(m) => self.optimiser.update(m, grads, lr),
            Net::Direct(m) => self.optimiser.update(m, grads, lr),
        }
        .map_err(|e| anyhow::anyhow!("optimiser update failed: {e:?}"))
    }
}

impl Learner for PathFinder {
    fn train_len(&self) -> usize {
        self.train_rows()
    }

    fn train_step(&mut self, step: Step) -> Result<Metrics> {
        let mut s = self.gradients(step.batch, step.seed)?;
        self.update(&mut s.grads, step.lr)?;
        Ok(Metrics::from([("loss".to_string(), s.loss)]))
    }

    fn evaluate(&mut self, _epoch: usize) -> Result<Metrics> {
        let n = self.cfg.eval_subset;
        let val = self.metrics(&self.data.val, n)?;
        let test = self.metrics(&self.data.test, n)?;
        Ok(Metrics::from([
            ("val_accuracy".to_string(), val.accuracy),
            ("val_exact".to_string(), val.exact),
            ("val_regret".to_string(), val.regret),
            ("test_accuracy".to_string(), test.accuracy),
            ("test_exact".to_string(), test.exact),
            ("test_valid".to_string(), test.valid),
            ("test_regret".to_string(), test.regret),
        ]))
    }

    fn save(&self, ck: &mut Checkpoint) -> Result<()> {
        let adaptive = self.estimator.as_ref().and_then(Built::adaptive_state);
        match &self.net {
            Net::Costs(m) => ck.put_run(m, &self.optimiser, adaptive),
            Net::Direct(m) => ck.put_run(m, &self.optimiser, adaptive),
        }
        Ok(())
    }

    fn load(&mut self, ck: &Checkpoint) -> Result<()> {
        let adaptive = match &mut self.net {
            Net::Costs(m) => ck.take_run(m, &mut self.optimiser)?,
            Net::Direct(m) => ck.take_run(m, &mut self.optimiser)?,
        };
        if let Some(e) = &self.estimator {
            e.restore_adaptive_state(adaptive)?;
        }
        Ok(())
    }
}
