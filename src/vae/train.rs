//! Training loop, evaluation and resumable checkpoints of the discrete VAE.

use super::adam::{Adam, AdamHyper, AdamState};
use super::device::{self, Backend, Passes};
use super::latent::{Blocks, Latent, LatentConfig, Method};
use super::model::{self, params, params_mut, vae_loss, VaeModel, BLOCKS, CATS, LATENT, PIXELS};
use crate::data::mnist::MnistSplit;
use anyhow::{bail, Context, Result};
use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
        }
    }

    /// Whether `other` is the same run up to the number of epochs (what a resume may
    /// change).
    pub fn without_epochs_eq(&self, other: &Self) -> bool {
        self.without_epochs() == other.without_epochs()
    }

    fn without_epochs(&self) -> Self {
        Self {
            epochs: 0,
            ..self.clone()
        }
    }
}

/// The losses and timings of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Its reconstruction (BCE) part.
    pub train_recon: f64,
    /// Its KL part.
    pub train_kl: f64,
    /// Test loss after the epoch (mean over test batches, noisy samples).
    pub test_loss: f64,
    /// Its reconstruction part.
    pub test_recon: f64,
    /// Its KL part.
    pub test_kl: f64,
    /// Gumbel-softmax temperature used in the epoch (None for the other methods).
    pub temperature: Option<f32>,
    /// Seconds spent training (excludes the test pass).
    pub train_seconds: f64,
    /// Seconds spent on the test pass.
    pub test_seconds: f64,
    /// Rayon threads the epoch ran on (0: not recorded, checkpoints of older versions).
    #[serde(default)]
    pub threads: usize,
}

/// Mean loss parts over batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossParts {
    /// Total.
    pub loss: f64,
    /// Reconstruction.
    pub recon: f64,
    /// KL.
    pub kl: f64,
}

impl LossParts {
    /// The mean of per-batch parts (summed in order, then divided).
    fn mean(parts: &[LossParts]) -> LossParts {
        let k = parts.len() as f64;
        let sum = |f: fn(&LossParts) -> f64| parts.iter().map(f).sum::<f64>() / k;
        LossParts {
            loss: sum(|p| p.loss),
            recon: sum(|p| p.recon),
            kl: sum(|p| p.kl),
        }
    }
}

/// SplitMix64 mix of a seed and a stream tag.
pub fn mix(seed: u64, tag: u64) -> u64 {
    let mut z = seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const TAG_INIT: u64 = 1;
const TAG_SHUFFLE: u64 = 2;
const TAG_TRAIN: u64 = 3;
const TAG_TEST: u64 = 4;

/// Seed of a stream `tag`, epoch `epoch` (from 1), item `i`.
fn seed_of(run: u64, tag: u64, epoch: usize, i: usize) -> u64 {
    mix(mix(mix(run, tag), epoch as u64), i as u64)
}

/// A discrete VAE being trained.
pub struct Trainer {
    /// The run's configuration.
    pub cfg: VaeConfig,
    /// The model.
    pub model: VaeModel,
    /// The optimiser.
    pub adam: Adam,
    /// The latent layer.
    pub latent: Latent,
    /// One record per finished epoch.
    pub history: Vec<EpochRecord>,
    dev: Cpu,
    /// The forward/backward passes on a device other than the host `Dense` path.
    passes: Option<Box<dyn Passes>>,
}

impl Trainer {
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
        let model = model::build(&dev, mix(cfg.seed, TAG_INIT));
        let adam = Adam::new(&model, cfg.adam);
        let latent = Latent::new(cfg.method, &cfg.latent)?;
        Self {
            cfg,
            model,
            adam,
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
    fn encode<T: Tape<f32, Cpu>>(
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
    fn decode<T: Tape<f32, Cpu>>(
        &self,
        z: Blocks<T>,
    ) -> Tensor<(usize, Const<PIXELS>), f32, Cpu, T> {
        let b = z.shape().0;
        self.model.1.forward(z.reshape_like(&(b, Const::<LATENT>)))
    }

    /// One optimisation step on a batch (row-major `(B, 784)` pixels in [0, 1]) with noise
    /// seed `seed` and Gumbel-softmax temperature `temperature`; returns its loss parts.
    pub fn step(&mut self, x: Vec<f32>, seed: u64, temperature: f32) -> Result<LossParts> {
        if let Some(p) = &self.passes {
            let (parts, grads) = p.run(&self.latent, x, seed, temperature, true)?;
            let grads = grads.context("the device passes returned no gradients")?;
            let mut grads = device::host_grads(&self.model, &grads)?;
            self.adam.update(&mut self.model, &mut grads)?;
            self.sync_device()?;
            return Ok(parts);
        }
        let x = self.tensor_batch(x);
        let logits = self.encode(x.clone().traced(Gradients::leaky()));
        let kl_logits = logits.retaped::<OwnedTape<f32, Cpu>>();
        let z = self.latent.apply(logits, seed, temperature)?;
        let x_logits = self.decode(z);
        let (loss, recon, kl) = vae_loss(x_logits, &x, kl_logits);
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
        self.adam.update(&mut self.model, &mut grads)?;
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
        let x = self.tensor_batch(x);
        let logits = self.encode(x.clone());
        let z = self.latent.apply(logits.clone(), seed, temperature)?;
        let (loss, recon, kl) = vae_loss(self.decode(z), &x, logits);
        Ok(LossParts {
            loss: loss.array() as f64,
            recon: recon as f64,
            kl: kl as f64,
        })
    }

    /// Trains epoch `epoch` (from 1) on `train`: a seeded shuffle, then batches.
    pub fn train_epoch(&mut self, train: &MnistSplit, epoch: usize) -> Result<LossParts> {
        let n = self
            .cfg
            .train_subset
            .map_or(train.len(), |s| s.min(train.len()));
        if n == 0 {
            bail!("the training set is empty");
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed_of(
            self.cfg.seed,
            TAG_SHUFFLE,
            epoch,
            0,
        )));
        let temperature = self.temperature(epoch).unwrap_or(1.0);
        let parts = order
            .chunks(self.cfg.batch)
            .enumerate()
            .map(|(i, idx)| {
                let seed = seed_of(self.cfg.seed, TAG_TRAIN, epoch, i);
                self.step(train.batch_f32(idx), seed, temperature)
                    .with_context(|| format!("epoch {epoch}, batch {i}"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LossParts::mean(&parts))
    }

    /// Test loss after epoch `epoch`: the mean over batches of the per-batch mean loss,
    /// with noisy samples (as the official code).
    pub fn evaluate(&self, test: &MnistSplit, epoch: usize) -> Result<LossParts> {
        let n = self
            .cfg
            .test_subset
            .map_or(test.len(), |s| s.min(test.len()));
        if n == 0 {
            bail!("the test set is empty");
        }
        let temperature = self.temperature(epoch).unwrap_or(1.0);
        let idx: Vec<usize> = (0..n).collect();
        let parts = idx
            .chunks(self.cfg.batch)
            .enumerate()
            .map(|(j, b)| {
                let seed = seed_of(self.cfg.seed, TAG_TEST, epoch, j);
                self.batch_loss(test.batch_f32(b), seed, temperature)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LossParts::mean(&parts))
    }

    /// Trains and evaluates one more epoch and records it.
    pub fn run_epoch(&mut self, train: &MnistSplit, test: &MnistSplit) -> Result<&EpochRecord> {
        let epoch = self.history.len() + 1;
        let t0 = Instant::now();
        let tr = self.train_epoch(train, epoch)?;
        let t1 = Instant::now();
        let te = self.evaluate(test, epoch)?;
        let t2 = Instant::now();
        self.history.push(EpochRecord {
            epoch,
            train_loss: tr.loss,
            train_recon: tr.recon,
            train_kl: tr.kl,
            test_loss: te.loss,
            test_recon: te.recon,
            test_kl: te.kl,
            temperature: self.temperature(epoch),
            train_seconds: (t1 - t0).as_secs_f64(),
            test_seconds: (t2 - t1).as_secs_f64(),
            threads: rayon::current_num_threads(),
        });
        Ok(self.history.last().expect("just pushed"))
    }

    /// Trains until `cfg.epochs` epochs are done. With `run_dir`, resumes from
    /// `run_dir/checkpoint.bin` if it exists (same config up to the number of epochs)
    /// and writes a checkpoint after every epoch. `on_epoch` sees every new record.
    pub fn fit(
        &mut self,
        train: &MnistSplit,
        test: &MnistSplit,
        run_dir: Option<&Path>,
        mut on_epoch: impl FnMut(&EpochRecord),
    ) -> Result<()> {
        if let Some(dir) = run_dir {
            let ck = dir.join(CHECKPOINT);
            if ck.exists() {
                self.load_checkpoint(&ck)?;
            }
        }
        while self.history.len() < self.cfg.epochs {
            let rec = self.run_epoch(train, test)?.clone();
            if let Some(dir) = run_dir {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                self.save_checkpoint(&dir.join(CHECKPOINT))?;
            }
            on_epoch(&rec);
        }
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

/// File name of the checkpoint inside a run directory.
pub const CHECKPOINT: &str = "checkpoint.bin";
const MAGIC: &[u8; 8] = b"IMLEVAE1";

/// The metadata of a checkpoint (the tensors follow it in the file).
///
/// File layout: 8 magic bytes `IMLEVAE1`, the JSON length (u64 LE), this JSON, then the
/// 12 parameter tensors, Adam's 12 first-moment and 12 second-moment buffers as f32 LE,
/// each in [`params`] order. Written to a temporary file, synced and renamed, so a killed
/// run leaves either the previous or the new checkpoint. Seeds are derived from (run
/// seed, epoch, batch), so no RNG state is needed. AIMLE's β and running non-zero
/// fraction are restored exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Config of the run.
    pub config: VaeConfig,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// Adam's step count.
    pub adam_t: i32,
    /// AIMLE's β and running non-zero fraction.
    pub adaptive: Option<(f32, Option<f32>)>,
    /// Number of f32 values per tensor, in file order (params, then m, then v).
    pub lens: Vec<usize>,
}

impl Trainer {
    /// Writes the full training state to `path` atomically.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let lens: Vec<usize> = params(&self.model).iter().map(|p| p.numel()).collect();
        let meta = Checkpoint {
            config: self.cfg.clone(),
            history: self.history.clone(),
            adam_t: self.adam.state.t,
            adaptive: self.latent.adaptive_state(),
            lens: lens.clone(),
        };
        let json = serde_json::to_vec(&meta)?;
        let mut buf = Vec::with_capacity(16 + json.len() + 3 * 4 * lens.iter().sum::<usize>());
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&(json.len() as u64).to_le_bytes());
        buf.extend_from_slice(&json);
        let tensors = params(&self.model)
            .into_iter()
            .map(|p| p.values())
            .chain(self.adam.state.m.iter().cloned())
            .chain(self.adam.state.v.iter().cloned());
        for t in tensors {
            for v in t {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        let tmp: PathBuf = path.with_extension("bin.tmp");
        {
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }

    /// Restores the training state from `path`; the checkpoint's config must equal this
    /// trainer's up to the number of epochs.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        let bad = || anyhow::anyhow!("{} is not a valid VAE checkpoint", path.display());
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(bad());
        }
        let n = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let json = bytes.get(16..16 + n).ok_or_else(bad)?;
        let meta: Checkpoint = serde_json::from_slice(json).with_context(bad)?;
        if meta.config.without_epochs() != self.cfg.without_epochs() {
            bail!(
                "checkpoint {} was written by another configuration ({:?}); \
                 delete it or choose another run directory",
                path.display(),
                meta.config
            );
        }
        let lens: Vec<usize> = params(&self.model).iter().map(|p| p.numel()).collect();
        if meta.lens != lens {
            return Err(bad());
        }
        let mut floats = bytes[16 + n..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")));
        let total: usize = 3 * lens.iter().sum::<usize>();
        if bytes.len() - 16 - n != 4 * total {
            return Err(bad());
        }
        let mut take = |len: usize| -> Vec<f32> { floats.by_ref().take(len).collect() };
        let values: Vec<Vec<f32>> = lens.iter().map(|&l| take(l)).collect();
        let m: Vec<Vec<f32>> = lens.iter().map(|&l| take(l)).collect();
        let v: Vec<Vec<f32>> = lens.iter().map(|&l| take(l)).collect();
        for (p, vals) in params_mut(&mut self.model).into_iter().zip(&values) {
            p.set(vals);
        }
        self.adam.state = AdamState {
            t: meta.adam_t,
            m,
            v,
        };
        if let Some((beta, running)) = meta.adaptive {
            self.latent.restore_adaptive_state(beta, running)?;
        }
        self.history = meta.history;
        self.sync_device()
    }
}
