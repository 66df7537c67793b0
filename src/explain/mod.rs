//! Learning to explain (Sec. 6, Table 1; Chen et al. 2018): a selector picks k words of a
//! review, a predictor rates the aroma from those words alone, trained end to end through
//! the k-subset layer (I-MLE, STE, SoftSub, L2X, ...). The protocol is the official code's
//! (tf-imle's L2X notebook): frozen embeddings, MSE on the aroma score, Adam
//! (Keras defaults), batch 40, 20 epochs, the epoch with the best validation MSE kept,
//! test-time selection = the top-k of the logits without noise.
//!
//! * [`model`] — the selector and predictor networks;
//! * [`Method`] — the rows of Table 1 and their estimators;
//! * [`Explainer`] — a run as a [`crate::train::Learner`] (steps, evaluation, checkpoint);
//! * [`subset_precision`] — the rationale metric.

pub mod model;

use crate::data::beer::{Beer, Encoded, PAD};
use crate::spec::{Built, EstimatorSpec, NoiseSpec, TargetSpec};
use crate::train::{
    tags, AdamHyper, Checkpoint, Learner, Metrics, Optimiser, OptimiserConfig, Step,
};
use anyhow::{bail, Result};
use dfdx::prelude::*;
use imle::solver::{MapSolver, TopK};
use model::{predict, selector_logits, Embedded, ExplainerModel, ExplainerSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Width of the embeddings.
pub const EMB: usize = crate::data::beer::EMBEDDING_DIM;

/// A row of Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// L2X (Chen et al.): k Gumbel-softmax samples combined by max, t = 0.1.
    L2x,
    /// SoftSub (Xie & Ermon): relaxed top-k, t = 0.5.
    Softsub,
    /// Straight-through, SoG perturb-and-MAP forward, identity backward.
    Ste,
    /// I-MLE without noise (MAP forward).
    ImleMap,
    /// I-MLE with Gumbel(0, 1) noise.
    ImleGumbel,
    /// I-MLE with Sum-of-Gamma noise (Eq. 13).
    ImleSog,
    /// Beyond the paper: adaptive I-MLE (λ adapted to the gradient's norm).
    Aimle,
}

impl Method {
    /// Every method, in the table's order.
    pub const ALL: [Method; 7] = [
        Method::L2x,
        Method::Softsub,
        Method::Ste,
        Method::ImleMap,
        Method::ImleGumbel,
        Method::ImleSog,
        Method::Aimle,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::L2x => "l2x",
            Method::Softsub => "softsub",
            Method::Ste => "ste",
            Method::ImleMap => "imle-map",
            Method::ImleGumbel => "imle-gumbel",
            Method::ImleSog => "imle-sog",
            Method::Aimle => "aimle",
        }
    }

    /// The row label of Table 1.
    pub fn label(self) -> &'static str {
        match self {
            Method::L2x => "L2X",
            Method::Softsub => "SoftSub",
            Method::Ste => "STE",
            Method::ImleMap => "I-MLE MAP",
            Method::ImleGumbel => "I-MLE Gumbel",
            Method::ImleSog => "I-MLE SoG",
            Method::Aimle => "AIMLE (beyond the paper)",
        }
    }

    /// The method called `s`.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The estimator of this row for subset size `k` (the official settings): L2X t = 0.1;
    /// SoftSub t = 0.5; STE with SoG(k, τ, 10); I-MLE with the PID target (Eq. 10),
    /// λ = `lambda` (1000), no 1/λ, the forward noise reused for the target: none, Gumbel,
    /// or SoG(k, τ, 10) with τ = `tau` (30 for k = 10 and 15, 5 for k = 5 by default); AIMLE:
    /// the adaptive target, β₀ = 1, steered to 5 % non-zero gradient entries, SoG noise.
    pub fn spec(self, k: usize, lambda: f32, tau: f64) -> EstimatorSpec {
        let sog = NoiseSpec::SumOfGamma {
            kappa: k as f64,
            tau,
            s: 10,
        };
        match self {
            Method::L2x => EstimatorSpec::L2x {
                k,
                temperature: 0.1,
            },
            Method::Softsub => EstimatorSpec::SoftSub {
                k,
                temperature: 0.5,
            },
            Method::Ste => EstimatorSpec::Ste {
                noise: sog,
                temperature: 1.0,
            },
            Method::ImleMap => EstimatorSpec::imle(lambda, NoiseSpec::None),
            Method::ImleGumbel => EstimatorSpec::imle(lambda, NoiseSpec::Gumbel { scale: 1.0 }),
            Method::ImleSog => EstimatorSpec::imle(lambda, sog),
            Method::Aimle => EstimatorSpec::Imle {
                target: TargetSpec::Adaptive {
                    beta0: 1.0,
                    target_nonzero: 0.05,
                },
                noise: sog,
                samples: 1,
                temperature: 1.0,
                scale_by_lambda: false,
                two_sided: false,
            },
        }
    }

    /// The default SoG τ for subset size `k` (the paper: 5 for k = 5, else 30).
    pub fn default_tau(k: usize) -> f64 {
        if k <= 5 {
            5.0
        } else {
            30.0
        }
    }
}

/// Everything that defines one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainConfig {
    /// The row.
    pub method: Method,
    /// Its estimator.
    pub spec: EstimatorSpec,
    /// Subset size k.
    pub k: usize,
    /// Sequence length (padding/truncation at the front).
    pub maxlen: usize,
    /// Epochs (20).
    pub epochs: usize,
    /// Batch size (40).
    pub batch: usize,
    /// Adam (Keras defaults: lr 1e-3, betas 0.9/0.999, ε 1e-7).
    pub adam: AdamHyper,
    /// Dropout rate before the selector's head (0.2).
    pub dropout: f32,
    /// Train on the first `n` training reviews (None: all).
    pub train_subset: Option<usize>,
    /// Run index (the seed and the validation/test split derive from it).
    pub run: usize,
    /// The run's seed.
    pub seed: u64,
}

impl ExplainConfig {
    /// The official protocol for `method` and `k`.
    pub fn paper(method: Method, k: usize, maxlen: usize) -> Self {
        Self {
            method,
            spec: method.spec(k, 1000.0, Method::default_tau(k)),
            k,
            maxlen,
            epochs: 20,
            batch: 40,
            adam: AdamHyper::default(),
            dropout: 0.2,
            train_subset: None,
            run: 0,
            seed: 0,
        }
    }

    /// The configuration without what a resume may change (the number of epochs).
    pub fn without_epochs(&self) -> Self {
        Self {
            epochs: 0,
            ..self.clone()
        }
    }
}

/// Splits `n` held-out reviews 50/50 into validation and test with a permutation drawn
/// from `seed` (a different split per run, as the official `train_test_split`).
pub fn split_heldout(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::seq::SliceRandom;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test = idx.split_off(n / 2);
    (idx, test)
}

/// Subset precision (the official metric): over reviews, a selected token that is not
/// `<PAD>` (padding, or an annotation word unknown to the vocabulary) is correct when its
/// position in the review lies in one of the review's ranges `[start, end)`; returns
/// `(correct, Σ_reviews max(selected non-PAD tokens, k))`. `selected` is `(reviews,
/// maxlen)`, non-zero = selected. Positions are mapped back through the front
/// padding/truncation ([`Encoded::token_index`]); the official code compares the
/// position in the truncated sequence instead, which is wrong for reviews longer than
/// `maxlen`.
pub fn subset_precision(
    enc: &Encoded,
    selected: &[f32],
    ranges: &[Vec<(usize, usize)>],
    k: usize,
) -> (usize, usize) {
    let l = enc.maxlen;
    let (mut correct, mut denominator) = (0, 0);
    for (r, sel) in selected.chunks(l).enumerate().take(enc.len()) {
        let mut chosen = 0;
        for (p, &s) in sel.iter().enumerate() {
            if s == 0.0 || enc.ids[r * l + p] == PAD {
                continue;
            }
            chosen += 1;
            if let Some(t) = enc.token_index(r, p) {
                if ranges[r].iter().any(|&(a, b)| a <= t && t < b) {
                    correct += 1;
                }
            }
        }
        denominator += chosen.max(k);
    }
    (correct, denominator)
}

/// One training run: the model, Adam, the k-subset layer and the data.
pub struct Explainer {
    /// Its configuration.
    pub cfg: ExplainConfig,
    /// Selector and predictor.
    pub model: ExplainerModel,
    /// Adam.
    pub optimiser: Optimiser,
    /// The k-subset layer.
    pub estimator: Built<TopK>,
    /// The data.
    pub data: Arc<Beer>,
    /// Held-out rows used for validation.
    pub val: Vec<usize>,
    /// Held-out rows used for testing.
    pub test: Vec<usize>,
    dev: Cpu,
}

/// Reviews per evaluation batch.
const EVAL_BATCH: usize = 100;

impl Explainer {
    /// A fresh run (Glorot-uniform weights from the run's seed, as Keras).
    pub fn new(cfg: ExplainConfig, data: Arc<Beer>) -> Result<Self> {
        if cfg.batch == 0 || cfg.k == 0 {
            bail!("the batch size and k must be at least 1");
        }
        if cfg.k > cfg.maxlen {
            bail!(
                "k = {} is larger than the sequence length {}",
                cfg.k,
                cfg.maxlen
            );
        }
        if data.train.maxlen != cfg.maxlen {
            bail!(
                "the data was encoded with maxlen {}, the run needs {}",
                data.train.maxlen,
                cfg.maxlen
            );
        }
        if !(0.0..1.0).contains(&cfg.dropout) {
            bail!("the dropout rate must lie in [0, 1), got {}", cfg.dropout);
        }
        let dev = Cpu::default();
        let mut model = dev.build_module::<ExplainerSpec, f32>();
        crate::train::init::glorot_uniform(&mut model, crate::run::tag_seed(cfg.seed, tags::INIT));
        let estimator = cfg.spec.build(TopK::new(cfg.k), cfg.k)?;
        let (val, test) = split_heldout(
            data.heldout.len(),
            crate::run::tag_seed(cfg.seed, tags::SPLIT),
        );
        Ok(Self {
            optimiser: Optimiser::new(OptimiserConfig::Adam(cfg.adam)),
            cfg,
            model,
            estimator,
            data,
            val,
            test,
            dev,
        })
    }

    /// The reviews `idx` of `enc` embedded, channels first `(batch, 200, maxlen)`.
    pub fn embed(&self, enc: &Encoded, idx: &[usize]) -> Embedded {
        let l = enc.maxlen;
        let emb = &self.data.embeddings;
        let mut out = vec![0.0f32; idx.len() * EMB * l];
        out.par_chunks_mut(EMB * l).zip(idx).for_each(|(o, &r)| {
            for (p, &id) in enc.ids[r * l..(r + 1) * l].iter().enumerate() {
                let v = &emb[id as usize * EMB..(id as usize + 1) * EMB];
                for (c, &x) in v.iter().enumerate() {
                    o[c * l + p] = x;
                }
            }
        });
        self.dev.tensor_from_vec(out, (idx.len(), Const::<EMB>, l))
    }

    fn dropout_mask(
        &self,
        b: usize,
        seed: u64,
    ) -> Option<Tensor<(usize, Const<{ 2 * model::FILTERS }>, usize), f32, Cpu>> {
        let p = self.cfg.dropout;
        if p == 0.0 {
            return None;
        }
        let l = self.cfg.maxlen;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let keep = 1.0 / (1.0 - p);
        let v: Vec<f32> = (0..b * 2 * model::FILTERS * l)
            .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
            .collect();
        Some(
            self.dev
                .tensor_from_vec(v, (b, Const::<{ 2 * model::FILTERS }>, l)),
        )
    }

    /// The test-time selection of reviews `idx` of `enc`: the top-k of the logits, no
    /// noise, no dropout; `(logits, selection)`, row-major `(batch, maxlen)`.
    pub fn select(&self, enc: &Encoded, idx: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
        self.select_embedded(&self.embed(enc, idx))
    }

    fn select_embedded(&self, x: &Embedded) -> Result<(Vec<f32>, Vec<f32>)> {
        let l = x.shape().2;
        let logits = selector_logits(&self.model, x.clone(), None).as_vec();
        let mut z = vec![0.0f32; logits.len()];
        TopK::new(self.cfg.k).solve_batch(&logits, l, &mut z)?;
        Ok((logits, z))
    }

    /// Mean squared error of the test-time predictions over reviews `idx` of `enc`.
    pub fn mse(&self, enc: &Encoded, idx: &[usize]) -> Result<f64> {
        let mut sum = 0.0f64;
        for chunk in idx.chunks(EVAL_BATCH) {
            let x = self.embed(enc, chunk);
            let (_, z) = self.select_embedded(&x)?;
            let z = self.dev.tensor_from_vec(z, (chunk.len(), enc.maxlen));
            let pred = predict(&self.model, &x, z, self.cfg.k).as_vec();
            sum += pred
                .iter()
                .zip(chunk)
                .map(|(&p, &i)| ((p - enc.y[i]) as f64).powi(2))
                .sum::<f64>();
        }
        Ok(sum / idx.len().max(1) as f64)
    }

    /// Subset precision on the annotated reviews ([`subset_precision`]), in `[0, 1]`.
    pub fn precision(&self) -> Result<f64> {
        let enc = &self.data.annotated;
        let idx: Vec<usize> = (0..enc.len()).collect();
        let mut selected = Vec::with_capacity(enc.ids.len());
        for chunk in idx.chunks(EVAL_BATCH) {
            selected.extend(self.select(enc, chunk)?.1);
        }
        let (c, d) = subset_precision(enc, &selected, &self.data.aroma_ranges, self.cfg.k);
        Ok(c as f64 / d.max(1) as f64)
    }

    /// Replaces the model's weights with those of checkpoint `ck` (e.g. the kept
    /// best-validation one).
    pub fn model_from(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.take_model("model", &mut self.model)
            .map_err(anyhow::Error::msg)
    }

    fn train_rows(&self) -> usize {
        self.cfg
            .train_subset
            .map_or(self.data.train.len(), |n| n.min(self.data.train.len()))
    }
}

impl Learner for Explainer {
    fn train_len(&self) -> usize {
        self.train_rows()
    }

    fn train_step(&mut self, step: Step) -> Result<Metrics> {
        let enc = &self.data.train;
        let b = step.batch.len();
        let x = self.embed(enc, step.batch);
        let y: Vec<f32> = step.batch.iter().map(|&i| enc.y[i]).collect();
        let y = self.dev.tensor_from_vec(y, (b, Const::<1>));
        let mask = self.dropout_mask(b, crate::run::tag_seed(step.seed, tags::DROPOUT));
        let logits = selector_logits(
            &self.model,
            x.clone().traced(self.model.alloc_grads()),
            mask,
        );
        let z = self.estimator.apply_seeded(logits, step.seed)?;
        let pred = predict(&self.model, &x, z, self.cfg.k);
        let loss = mse_loss(pred, y);
        let value = loss.array() as f64;
        if !value.is_finite() {
            bail!("the training loss is {value} (diverged)");
        }
        let mut grads = match loss.try_backward() {
            Ok(g) => g,
            Err(e) => {
                return Err(match self.estimator.take_backward_error() {
                    Some(err) => anyhow::Error::new(err),
                    None => anyhow::anyhow!("backward pass failed: {e:?}"),
                })
            }
        };
        self.optimiser
            .update(&mut self.model, &mut grads, step.lr)
            .map_err(|e| anyhow::anyhow!("optimiser update failed: {e:?}"))?;
        Ok(Metrics::from([("mse".to_string(), value)]))
    }

    fn evaluate(&mut self, _epoch: usize) -> Result<Metrics> {
        let held = &self.data.heldout;
        Ok(Metrics::from([
            ("val_mse".to_string(), self.mse(held, &self.val)?),
            ("test_mse".to_string(), self.mse(held, &self.test)?),
            ("precision".to_string(), self.precision()?),
        ]))
    }

    fn save(&self, ck: &mut Checkpoint) -> Result<()> {
        ck.put_run(
            &self.model,
            &self.optimiser,
            self.estimator.adaptive_state(),
        );
        Ok(())
    }

    fn load(&mut self, ck: &Checkpoint) -> Result<()> {
        let adaptive = ck.take_run(&mut self.model, &mut self.optimiser)?;
        self.estimator.restore_adaptive_state(adaptive)?;
        Ok(())
    }
}
