//! The discrete VAE as a [`Learner`]: its steps, evaluation and checkpoint state; the
//! loop, seeds, checkpoints and resume are [`crate::train`]'s.

use super::device::{self, Backend, Passes};
use super::latent::{Blocks, Latent, LatentConfig, Method};
use super::model::{self, vae_loss_host, LossParts, VaeModel, BLOCKS, CATS, LATENT, PIXELS};
use crate::data::mnist::MnistSplit;
use crate::run::{stream_seed, tag_seed};
use crate::train::{
    tags, AdamHyper, Checkpoint, EpochRecord, Learner, Metrics, Optimiser, OptimiserConfig,
    RunStamp, Step, Trainer,
};
use anyhow::{bail, Context, Result};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything that defines a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// The latent layer's method.
    pub method: Method,
    /// Its hyper-parameters.
    pub latent: LatentConfig,
    /// Adam's hyper-parameters.
    pub adam: AdamHyper,
    /// Batch size (100).
    pub batch: usize,
    /// Number of epochs (100).
    pub epochs: usize,
    /// Run seed.
    pub seed: u64,
    /// Use only the first `n` training images (None: all 60,000).
    pub train_subset: Option<usize>,
    /// Use only the first `n` test images (None: all 10,000).
    pub test_subset: Option<usize>,
    /// The latent layer's estimator, replacing the method's ([`Method::spec`]); `fig4
    /// --spec METHOD=SPEC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<crate::spec::EstimatorSpec>,
}

impl VaeConfig {
    /// The official protocol for `method`: batch 100, 100 epochs, Adam lr 1e-3, seed 0.
    pub fn paper(method: Method) -> Self {
        Self {
            method,
            latent: LatentConfig::default(),
            adam: AdamHyper::default(),
            batch: 100,
            epochs: 100,
            seed: 0,
            train_subset: None,
            test_subset: None,
            spec: None,
        }
    }

    /// Whether `other` is the same run up to the number of epochs (what a resume may
    /// change).
    pub fn without_epochs_eq(&self, other: &Self) -> bool {
        self.without_epochs() == other.without_epochs()
    }

    /// The configuration without the number of epochs (what identifies a run).
    pub fn without_epochs(&self) -> Self {
        Self {
            epochs: 0,
            ..self.clone()
        }
    }
}

/// A discrete VAE being trained.
pub struct Vae {
    /// The run's configuration.
    pub cfg: VaeConfig,
    /// The model.
    pub model: VaeModel,
    /// The optimiser (Adam).
    pub optimiser: Optimiser,
    /// The latent layer.
    pub latent: Latent,
    /// One record per finished epoch.
    pub history: Vec<EpochRecord>,
    dev: Cpu,
    /// The forward/backward passes on a device other than the host `Dense` path.
    passes: Option<Box<dyn Passes>>,
}

impl Vae {
    /// A fresh model and optimiser for `cfg`, on the host.
    pub fn new(cfg: VaeConfig) -> Result<Self> {
        Self::with_backend(cfg, Backend::Cpu)
    }

    /// A fresh model and optimiser for `cfg` whose passes run on `backend` (the state,
    /// checkpoints and seeds stay on the host; see [`super::device`]).
    pub fn with_backend(cfg: VaeConfig, backend: Backend) -> Result<Self> {
        if cfg.batch == 0 {
            bail!("the batch size must be at least 1");
        }
        let dev = Cpu::default();
        let model = model::build(&dev, tag_seed(cfg.seed, tags::INIT));
        let optimiser = Optimiser::new(OptimiserConfig::Adam(cfg.adam));
        let latent = Latent::with_spec(cfg.method, &cfg.latent, cfg.spec.as_ref())?;
        Self {
            cfg,
            model,
            optimiser,
            latent,
            history: Vec::new(),
            dev,
            passes: None,
        }
        .on(backend)
    }

    fn on(mut self, backend: Backend) -> Result<Self> {
        self.passes = device::passes(backend)?;
        self.sync_device()?;
        Ok(self)
    }

    /// Copies the host parameters to the device (after an update or a checkpoint load).
    fn sync_device(&mut self) -> Result<()> {
        match &mut self.passes {
            Some(p) => p.load(&self.model),
            None => Ok(()),
        }
    }

    /// The number of finished epochs.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    /// The Gumbel-softmax temperature of epoch `epoch` (from 1); None for other methods.
    pub fn temperature(&self, epoch: usize) -> Option<f32> {
        (self.cfg.method == Method::Gsmt).then(|| self.cfg.latent.gs_temperature(epoch))
    }

    fn tensor_batch(&self, x: Vec<f32>) -> Tensor<(usize, Const<PIXELS>), f32, Cpu> {
        let b = x.len() / PIXELS;
        self.dev.tensor_from_vec(x, (b, Const::<PIXELS>))
    }

    /// Encodes a batch: logits `(B, 20, 20)`.
    pub fn encode<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, Const<PIXELS>), f32, Cpu, T>,
    ) -> Blocks<T> {
        let b = x.shape().0;
        self.model
            .0
            .forward(x)
            .reshape_like(&(b, Const::<BLOCKS>, Const::<CATS>))
    }

    /// Decodes latent codes `(B, 20, 20)` into pixel logits `(B, 784)`.
    pub fn decode<T: Tape<f32, Cpu>>(
        &self,
        z: Blocks<T>,
    ) -> Tensor<(usize, Const<PIXELS>), f32, Cpu, T> {
        let b = z.shape().0;
        self.model.1.forward(z.reshape_like(&(b, Const::<LATENT>)))
    }

    /// One optimisation step on a batch (row-major `(B, 784)` pixels in [0, 1]) with noise
    /// seed `seed` and Gumbel-softmax temperature `temperature` at Adam's learning rate;
    /// returns its loss parts.
    pub fn step(&mut self, x: Vec<f32>, seed: u64, temperature: f32) -> Result<LossParts> {
        self.step_with_lr(x, seed, temperature, self.cfg.adam.lr)
    }

    /// [`Vae::step`] at learning rate `lr`.
    pub fn step_with_lr(
        &mut self,
        x: Vec<f32>,
        seed: u64,
        temperature: f32,
        lr: f64,
    ) -> Result<LossParts> {
        if let Some(p) = &self.passes {
            let (parts, grads) = p.run(&self.latent, x, seed, temperature, true)?;
            let grads = grads.context("the device passes returned no gradients")?;
            let mut grads = device::host_grads(&self.model, &grads)?;
            self.optimiser.update(&mut self.model, &mut grads, lr)?;
            self.sync_device()?;
            return Ok(parts);
        }
        let pixels = x.clone();
        let x = self.tensor_batch(x);
        let logits = self.encode(x.traced(Gradients::leaky()));
        let kl_logits = logits.retaped::<OwnedTape<f32, Cpu>>();
        let z = self.latent.apply(logits, seed, temperature)?;
        let x_logits = self.decode(z);
        let errors = imle::op::BackwardErrors::default();
        let (loss, recon, kl) = vae_loss_host(x_logits, &pixels, kl_logits, &errors)?;
        let value = loss.array();
        if !value.is_finite() {
            bail!("the training loss is not finite ({value})");
        }
        let mut grads = loss.try_backward().map_err(|e| {
            let why = self.latent.take_backward_error().map(|e| e.to_string());
            anyhow::anyhow!(
                "backward pass failed: {}",
                why.unwrap_or_else(|| format!("{e:?}"))
            )
        })?;
        self.optimiser.update(&mut self.model, &mut grads, lr)?;
        Ok(LossParts {
            loss: value as f64,
            recon: recon as f64,
            kl: kl as f64,
        })
    }

    /// Loss parts of a batch without training (noisy sample from `seed`).
    pub fn batch_loss(&self, x: Vec<f32>, seed: u64, temperature: f32) -> Result<LossParts> {
        if let Some(p) = &self.passes {
            return Ok(p.run(&self.latent, x, seed, temperature, false)?.0);
        }
        let pixels = x.clone();
        let logits = self.encode(self.tensor_batch(x));
        let z = self.latent.apply(logits.clone(), seed, temperature)?;
        let errors = imle::op::BackwardErrors::default();
        let (loss, recon, kl) = vae_loss_host(self.decode(z), &pixels, logits, &errors)?;
        Ok(LossParts {
            loss: loss.array() as f64,
            recon: recon as f64,
            kl: kl as f64,
        })
    }

    /// Test loss after epoch `epoch`: the mean over batches of the per-batch mean loss,
    /// with noisy samples (as the official code).
    pub fn evaluate(&self, test: &MnistSplit, epoch: usize) -> Result<LossParts> {
        let n = used(test, self.cfg.test_subset);
        if n == 0 {
            bail!("the test set is empty");
        }
        let temperature = self.temperature(epoch).unwrap_or(1.0);
        let idx: Vec<usize> = (0..n).collect();
        let parts = idx
            .chunks(self.cfg.batch)
            .enumerate()
            .map(|(j, b)| {
                let seed = stream_seed(self.cfg.seed, tags::EVAL, epoch, j);
                self.batch_loss(test.batch_f32(b), seed, temperature)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LossParts::mean(&parts))
    }

    /// What identifies this run in its checkpoints: the configuration without the
    /// number of epochs, and the checksum of the images it trains and tests on.
    pub fn stamp(&self, train: &MnistSplit, test: &MnistSplit) -> Result<RunStamp> {
        let (a, b) = (
            used(train, self.cfg.train_subset),
            used(test, self.cfg.test_subset),
        );
        Ok(RunStamp {
            experiment: "fig4".into(),
            config: serde_json::to_value(self.cfg.without_epochs())?,
            data: Some((
                "mnist".into(),
                crate::data::checksum(&[
                    &train.images[..a * PIXELS],
                    &train.labels[..a],
                    &test.images[..b * PIXELS],
                    &test.labels[..b],
                ]),
            )),
        })
    }

    /// The [`Trainer`] of this run: `cfg.epochs` epochs of batches of `cfg.batch`, the
    /// run's seed, Adam's learning rate, checkpoints in `run_dir/`[`CHECKPOINT`].
    pub fn trainer(
        &self,
        train: &MnistSplit,
        test: &MnistSplit,
        run_dir: Option<&Path>,
    ) -> Result<Trainer> {
        let mut t = Trainer::new(
            self.stamp(train, test)?,
            self.cfg.epochs,
            self.cfg.batch,
            self.cfg.seed,
            self.cfg.adam.lr,
        );
        t.label = self.cfg.method.name().into();
        t.checkpoint = run_dir.map(|d| d.join(CHECKPOINT));
        Ok(t)
    }

    /// Trains until `cfg.epochs` epochs are done with [`Vae::trainer`]: with `run_dir`,
    /// resumes from its checkpoint (the same run's only) and writes one after every
    /// epoch. `on_epoch` sees every new record.
    pub fn fit(
        &mut self,
        train: &MnistSplit,
        test: &MnistSplit,
        run_dir: Option<&Path>,
        on_epoch: impl FnMut(&EpochRecord),
    ) -> Result<()> {
        let trainer = self.trainer(train, test, run_dir)?;
        self.fit_with(&trainer, train, test, on_epoch)
    }

    /// Trains with a given `trainer` (progress bar, log lines, schedule of its own).
    pub fn fit_with(
        &mut self,
        trainer: &Trainer,
        train: &MnistSplit,
        test: &MnistSplit,
        on_epoch: impl FnMut(&EpochRecord),
    ) -> Result<()> {
        let done = std::mem::take(&mut self.history);
        let mut learner = Fitting {
            vae: self,
            train,
            test,
        };
        let history = trainer.fit(&mut learner, done, on_epoch)?;
        self.history = history;
        Ok(())
    }

    /// Pixel probabilities of the reconstructions of `x` (row-major `(B, 784)`), with the
    /// latent codes used: a noisy sample from `seed` (or, with `map`, the noiseless
    /// MAP / softmax at temperature `temperature`).
    pub fn reconstruct(&self, x: Vec<f32>, seed: u64, map: bool) -> Result<(Vec<f32>, Vec<f32>)> {
        let x = self.tensor_batch(x);
        let logits = self.encode(x);
        let z = if map {
            let k = self.cfg.method.subset_size(self.cfg.latent.k);
            let mut z = vec![0.0; logits.shape().num_elements()];
            use imle::solver::MapSolver;
            imle::solver::TopK::new(k).solve_batch(&logits.as_vec(), CATS, &mut z)?;
            self.dev.tensor_from_vec(z, *logits.shape())
        } else {
            let t = self.temperature(self.history.len().max(1)).unwrap_or(1.0);
            self.latent.apply(logits, seed, t)?
        };
        let codes = z.as_vec();
        Ok((model::sigmoid(&self.decode(z).as_vec()), codes))
    }

    /// Pixel probabilities of `n` images decoded from uniformly random latent codes
    /// (random k-subsets per block; one-hots for the categorical VAE).
    pub fn sample_prior(&self, n: usize, seed: u64) -> Vec<f32> {
        let k = self.cfg.method.subset_size(self.cfg.latent.k);
        let z = Latent::prior_sample(k, n, seed);
        let z = self
            .dev
            .tensor_from_vec(z, (n, Const::<BLOCKS>, Const::<CATS>));
        model::sigmoid(&self.decode(z).as_vec())
    }
}

/// How many images of `split` a run uses: the first `subset` (all if `None`).
fn used(split: &MnistSplit, subset: Option<usize>) -> usize {
    subset.map_or(split.len(), |s| s.min(split.len()))
}

/// File name of the checkpoint inside a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// The VAE with its data, as the [`Trainer`] sees it.
struct Fitting<'a> {
    vae: &'a mut Vae,
    train: &'a MnistSplit,
    test: &'a MnistSplit,
}

impl Learner for Fitting<'_> {
    fn train_len(&self) -> usize {
        used(self.train, self.vae.cfg.train_subset)
    }

    fn train_step(&mut self, step: Step) -> Result<Metrics> {
        let t = self.vae.temperature(step.epoch).unwrap_or(1.0);
        let x = self.train.batch_f32(step.batch);
        Ok(self.vae.step_with_lr(x, step.seed, t, step.lr)?.metrics())
    }

    fn evaluate(&mut self, epoch: usize) -> Result<Metrics> {
        let mut m = self.vae.evaluate(self.test, epoch)?.metrics();
        if let Some(t) = self.vae.temperature(epoch) {
            m.insert("temperature".into(), t as f64);
        }
        Ok(m)
    }

    /// The model's 12 tensors, Adam's moments and step count, and the latent layer's
    /// estimator state (AIMLE's β and running non-zero fraction). Its noise seeds are
    /// derived from (run seed, epoch, batch), so its call counter is kept for form.
    fn save(&self, ck: &mut Checkpoint) -> Result<()> {
        ck.put_model("model", &self.vae.model);
        ck.put_optimiser(&self.vae.optimiser);
        ck.header.estimators = vec![self.vae.latent.state()];
        Ok(())
    }

    fn load(&mut self, ck: &Checkpoint) -> Result<()> {
        let vae = &mut *self.vae;
        ck.take_model("model", &mut vae.model)
            .map_err(anyhow::Error::msg)?;
        ck.take_optimiser(&mut vae.optimiser)
            .map_err(anyhow::Error::msg)?;
        let [state] = ck.header.estimators.as_slice() else {
            bail!(
                "the checkpoint holds {} estimator states, not 1",
                ck.header.estimators.len()
            );
        };
        vae.latent.restore(state)?;
        vae.sync_device()
    }
}
