//! SoftSub: the relaxed top-k subset sampler of Xie & Ermon (2019).

use super::{check_k, check_noise_len, check_rows, check_temperature, Seeds};
use crate::error::Result;
use crate::noise::Noise;
use dfdx::shapes::{Axis, Dim, HasShape, Shape};
use dfdx::tensor::{Cpu, Tape, Tensor, TensorFromVec, WithEmptyTape};
use dfdx::tensor_ops::{TryAdd, TryMul};

/// SoftSub (Xie & Ermon 2019, *Reparameterizable subset sampling via continuous
/// relaxations*, Algorithm 2): a relaxed k-hot sample of the k-subset distribution,
/// built from dfdx ops so that dfdx differentiates it. With Gumbel keys `r = θ + G` and
/// temperature t, row by row:
///
/// ```text
/// α⁽¹⁾ = r,   a⁽ʲ⁾ = softmax(α⁽ʲ⁾/t),   α⁽ʲ⁺¹⁾ = α⁽ʲ⁾ + log max(1 − a⁽ʲ⁾, ε),   y = Σ_{j=1..k} a⁽ʲ⁾
/// ```
///
/// (ε = `f32::MIN_POSITIVE`, as in the authors' code). Every `a⁽ʲ⁾` is a point of the
/// simplex, so `y ≥ 0` and `Σ_i y_i = k` exactly (up to rounding); as t → 0, y tends to
/// the k-hot top-k of the keys, an exact sample of Eq. 3 (Gumbel top-k). Note that, at
/// moderate temperatures, single entries of y can exceed 1 (e.g. m = k = 2, where
/// `y = (1, 1)` only for equal keys): the relaxation is not confined to `[0, 1]^m`.
///
/// ```
/// use dfdx::prelude::*;
/// use imle::baselines::SoftSub;
///
/// let dev = Cpu::default();
/// let theta = dev.tensor([[1.0f32, 0.0, -1.0, 2.0, 0.5]]);
/// let y = SoftSub::new(2, 0.5).seed(0).apply(theta.leaky_trace())?;
/// assert!((y.as_vec().iter().sum::<f32>() - 2.0).abs() < 1e-4);
/// let grads = y.square().sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SoftSub {
    k: usize,
    temperature: f32,
    seeds: Seeds,
}

impl SoftSub {
    /// SoftSub for k-subsets with temperature `t > 0` (both checked when applied), seed 0.
    pub fn new(k: usize, t: f32) -> Self {
        Self {
            k,
            temperature: t,
            seeds: Seeds::new(0),
        }
    }

    /// Seed of the Gumbel keys (resets the call counter).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeds = Seeds::new(seed);
        self
    }

    /// Sets the temperature t (e.g. during annealing); keeps the seed state.
    pub fn set_temperature(&mut self, t: f32) {
        self.temperature = t;
    }

    /// Subset size k.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The op: draws `G ~ Gumbel(0, 1)` (call `n`: `Noise::gumbel(1.0).fill(call_seed(seed, n), ..)`
    /// in the layout of θ) and applies [`SoftSub::apply_with_noise`].
    pub fn apply<B: Dim, M: Dim, T: Tape<f32, Cpu>>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        let mut noise = vec![0.0; theta.shape().num_elements()];
        Noise::gumbel(1.0)?.fill(self.seeds.next(), &mut noise);
        self.apply_with_noise(theta, noise)
    }

    /// The relaxation with given Gumbel noise G (row-major, the shape of θ).
    pub fn apply_with_noise<B: Dim, M: Dim, T: Tape<f32, Cpu>>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        noise: Vec<f32>,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        check_temperature("temperature", self.temperature)?;
        let shape = *theta.shape();
        let m = shape.1.size();
        check_rows(&theta.as_vec(), m)?;
        check_k(self.k, m)?;
        check_noise_len(&noise, shape.num_elements())?;
        let inv_t = 1.0 / self.temperature;
        let g = theta.device().tensor_from_vec(noise, shape);
        // Every tensor used twice is split with `with_empty_tape`, so that each recorded
        // backward op ends up exactly once in the tape of the result.
        let mut scores = theta.try_add(g)?;
        let mut khot: Option<Tensor<(B, M), f32, Cpu, T>> = None;
        for j in 0..self.k {
            let next_scores = scores.with_empty_tape();
            let a = scores.try_mul(inv_t)?.try_softmax::<Axis<1>>()?;
            if j + 1 < self.k {
                let mask = (a.with_empty_tape().try_negate()?.try_add(1.0f32)?)
                    .try_clamp(f32::MIN_POSITIVE, 1.0)?
                    .try_ln()?;
                scores = next_scores.try_add(mask)?;
            } else {
                scores = next_scores;
            }
            khot = Some(match khot {
                None => a,
                Some(acc) => acc.try_add(a)?,
            });
        }
        drop(scores);
        Ok(khot.expect("k >= 1 was checked"))
    }
}
