//! Optimisers for any dfdx model on the host: Adam and SGD with momentum over every
//! trainable tensor of a [`TensorCollection`], with a state that checkpoints save.
//!
//! dfdx 0.13's own optimisers keep their moment buffers private, so a run resumed with a
//! fresh dfdx `Adam` would not continue the same trajectory. These perform *exactly*
//! dfdx's Cpu arithmetic (the same f32 operations in the same order; tested bitwise
//! against `dfdx::optim::Adam` and `Sgd`), read the gradients in place and update each
//! tensor in parallel chunks (element-wise, so any thread count gives the same bits).
//! Tensors whose [`TensorOptions::do_gradient_update`] is false (batch-norm running
//! statistics) are left alone; a trainable tensor without a gradient is updated with a
//! zero gradient.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
};
use dfdx::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Adam's hyper-parameters (no weight decay).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f64,
    /// β₁, β₂.
    pub betas: [f64; 2],
    /// ε added to `sqrt(v̂)`.
    pub eps: f64,
}

impl Default for AdamHyper {
    /// lr 1e-3, betas (0.9, 0.999), ε = 1e-7 (Keras' default, as the official code).
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-7,
        }
    }
}

impl AdamHyper {
    /// The same settings as a dfdx `AdamConfig` (to compare with dfdx's own Adam).
    pub fn to_dfdx(self) -> dfdx::optim::AdamConfig {
        dfdx::optim::AdamConfig {
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: None,
        }
    }
}

/// Which optimiser, with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimiserConfig {
    /// Adam (Kingma & Ba), bias-corrected, as dfdx's.
    Adam(AdamHyper),
    /// SGD with classic momentum `v ← μ·v + g`, `p ← p − lr·v` (PyTorch's and dfdx's).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum μ (0: plain SGD).
        momentum: f64,
    },
}

impl OptimiserConfig {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimiserConfig::Adam(h) => h.lr,
            OptimiserConfig::Sgd { lr, .. } => *lr,
        }
    }
}

/// The state of one tensor: its name in the model and its buffers (Adam: first and
/// second moments; SGD: the velocity and an empty second buffer).
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The tensor's path in the model (`0.1.weight`), as `save_safetensors` names it.
    pub name: String,
    /// First buffer.
    pub a: Vec<f32>,
    /// Second buffer.
    pub b: Vec<f32>,
}

/// An optimiser: its configuration, its step count and one [`Slot`] per trainable
/// tensor (in the model's visiting order; created on the first update).
#[derive(Debug, Clone)]
pub struct Optimiser {
    /// Which optimiser.
    pub config: OptimiserConfig,
    /// Number of updates done.
    pub t: i32,
    /// Per-tensor state.
    pub slots: Vec<Slot>,
    scratch: Vec<f32>,
}

impl Optimiser {
    /// A fresh optimiser (zero state).
    pub fn new(config: OptimiserConfig) -> Self {
        Self {
            config,
            t: 0,
            slots: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// One update of every trainable tensor of `model` with learning rate `lr` (the
    /// schedule's; [`OptimiserConfig::lr`] for a constant one). The gradients are read
    /// in place (hence `&mut`) and not changed.
    pub fn update<M: TensorCollection<f32, Cpu>>(
        &mut self,
        model: &mut M,
        grads: &mut Gradients<f32, Cpu>,
        lr: f64,
    ) -> Result<(), CpuError> {
        self.t += 1;
        let mut v = Visit {
            opt: self,
            grads,
            lr: lr as f32,
            i: 0,
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: (model, String::new()),
            f: &mut v,
        })?;
        Ok(())
    }
}

struct Visit<'a> {
    opt: &'a mut Optimiser,
    grads: &'a mut Gradients<f32, Cpu>,
    lr: f32,
    i: usize,
}

/// Adam on one chunk of a tensor (dfdx's formula and operation order), compiled for the
/// CPU's widest vectors (no FMA contraction: the same bits on every CPU).
#[multiversion::multiversion(targets = "simd")]
fn adam_chunk(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    (b1, b2, eps, c1, c2, lr): (f32, f32, f32, f32, f32, f32),
) {
    for (((p, g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
        *m = *m * b1 + g * (1.0 - b1);
        *v = *v * b2 + g.powi(2) * (1.0 - b2);
        let m_hat = *m * c1;
        let v_hat = *v * c2;
        *p -= lr * m_hat / (v_hat.sqrt() + eps);
    }
}

impl TensorVisitor<f32, Cpu> for Visit<'_> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        (p, name): (&mut Tensor<S, f32, Cpu>, String),
    ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let n = p.shape().num_elements();
        let opt = &mut *self.opt;
        if self.i == opt.slots.len() {
            let second = matches!(opt.config, OptimiserConfig::Adam(_));
            opt.slots.push(Slot {
                name,
                a: vec![0.0; n],
                b: vec![0.0; if second { n } else { 0 }],
            });
        }
        let slot = &mut opt.slots[self.i];
        if slot.a.len() != n {
            return Err(CpuError::WrongNumElements);
        }
        self.i += 1;
        if opt.scratch.len() < n {
            opt.scratch.resize(n, 0.0);
        }
        let w = &mut opt.scratch[..n];
        p.copy_into(w);
        let g: &[f32] = self.grads.get_or_alloc_mut(p)?;
        // Element-wise, so splitting it over threads gives the same bits.
        const CHUNK: usize = 1 << 14;
        let lr = self.lr;
        match opt.config {
            OptimiserConfig::Adam(h) => {
                let t = opt.t;
                let (b1, b2, eps) = (h.betas[0] as f32, h.betas[1] as f32, h.eps as f32);
                let c1 = (1.0f32 - b1.powi(t)).recip();
                let c2 = (1.0f32 - b2.powi(t)).recip();
                w.par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK))
                    .zip(slot.a.par_chunks_mut(CHUNK))
                    .zip(slot.b.par_chunks_mut(CHUNK))
                    .for_each(|(((w, g), m), v)| adam_chunk(w, g, m, v, (b1, b2, eps, c1, c2, lr)));
            }
            OptimiserConfig::Sgd { momentum, .. } => {
                let mu = momentum as f32;
                w.par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK))
                    .zip(slot.a.par_chunks_mut(CHUNK))
                    .for_each(|((w, g), v)| {
                        for ((p, g), v) in w.iter_mut().zip(g).zip(v) {
                            *v = g + *v * mu;
                            *p -= *v * lr;
                        }
                    });
            }
        }
        p.copy_from(w);
        Ok(None)
    }
}
