//! Adam whose state can be saved and restored.
//!
//! dfdx 0.13's `Adam` keeps its moment buffers (`moment1`, `moment2`) and step count in
//! private fields, so a run resumed from a checkpoint with a fresh dfdx `Adam` would not
//! match an uninterrupted run. This Adam performs *exactly* the arithmetic of dfdx's CPU
//! Adam kernel (same f32 operations in the same order; `tests/vae.rs` checks bitwise
//! equality with `dfdx::optim::Adam` over several steps) on the VAE's parameters, and
//! exposes its state ([`AdamState`]) for checkpoints.

use super::model::{params, params_mut, VaeModel, N_PARAMS};
use dfdx::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Hyper-parameters (dfdx's `AdamConfig` without weight decay).
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
    /// The same settings as a dfdx `AdamConfig`.
    pub fn to_dfdx(self) -> dfdx::optim::AdamConfig {
        dfdx::optim::AdamConfig {
            lr: self.lr,
            betas: self.betas,
            eps: self.eps,
            weight_decay: None,
        }
    }
}

/// Step count and moment buffers, one buffer per parameter tensor (in [`params`] order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdamState {
    /// Number of updates done.
    pub t: i32,
    /// First moments.
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

/// Adam over the VAE's 12 parameter tensors.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Hyper-parameters.
    pub hyper: AdamHyper,
    /// State.
    pub state: AdamState,
    /// Reused buffers for the parameter values (no allocation per step).
    scratch: Vec<Vec<f32>>,
}

impl Adam {
    /// Fresh Adam (zero moments) for `model`.
    pub fn new(model: &VaeModel, hyper: AdamHyper) -> Self {
        let zeros: Vec<Vec<f32>> = params(model).iter().map(|p| vec![0.0; p.numel()]).collect();
        Self {
            hyper,
            state: AdamState {
                t: 0,
                m: zeros.clone(),
                v: zeros,
            },
            scratch: vec![Vec::new(); N_PARAMS],
        }
    }

    /// One update of every parameter from `grads` (dfdx's Adam kernel, f32). The
    /// gradients are read in place (hence `&mut`); they are not changed.
    pub fn update(
        &mut self,
        model: &mut VaeModel,
        grads: &mut Gradients<f32, Cpu>,
    ) -> Result<(), CpuError> {
        self.state.t += 1;
        let t = self.state.t;
        let b1 = self.hyper.betas[0] as f32;
        let b2 = self.hyper.betas[1] as f32;
        let eps = self.hyper.eps as f32;
        let lr = self.hyper.lr as f32;
        let c1 = (1.0f32 - b1.powi(t)).recip();
        let c2 = (1.0f32 - b2.powi(t)).recip();
        let ps = params_mut(model);
        debug_assert_eq!(ps.len(), N_PARAMS);
        for (i, p) in ps.into_iter().enumerate() {
            let w = &mut self.scratch[i];
            w.resize(p.numel(), 0.0);
            p.values_into(w);
            let g = p.grad(grads)?;
            let (m, v) = (&mut self.state.m[i], &mut self.state.v[i]);
            // Element-wise, so splitting it over threads gives the same bits.
            const CHUNK: usize = 1 << 14;
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((w, g), m), v)| {
                    for (((p, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        *m = *m * b1 + g * (1.0 - b1);
                        *v = *v * b2 + g.powi(2) * (1.0 - b2);
                        let m_hat = *m * c1;
                        let v_hat = *v * c2;
                        *p -= lr * m_hat / (v_hat.sqrt() + eps);
                    }
                });
            p.set(w);
        }
        Ok(())
    }
}
