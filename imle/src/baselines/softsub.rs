//! SoftSub: the relaxed top-k subset sampler of Xie & Ermon (2019).

use super::gumbel_softmax::gumbel_noise;
use super::{
    check_k, check_relaxation_input, check_temperature, noise_tensor, relaxation_estimator,
};
use crate::device::ImleDevice;
use crate::error::{Error, Result};
use crate::estimator::Rows;
use crate::op::OpState;
use dfdx::shapes::{Axis, Dim, HasShape};
use dfdx::tensor::{Tape, Tensor, WithEmptyTape};
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
/// use imle::prelude::*;
///
/// let dev = Cpu::default();
/// let theta = dev.tensor([[1.0f32, 0.0, -1.0, 2.0, 0.5]]);
/// let y = SoftSub::new(2, 0.5)?.seed(0).apply(theta.leaky_trace())?;
/// assert!((y.as_vec().iter().sum::<f32>() - 2.0).abs() < 1e-4);
/// let grads = y.square().sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SoftSub {
    k: usize,
    temperature: f32,
    state: OpState,
}

impl SoftSub {
    /// SoftSub for k-subsets (`k >= 1`; `k <= m` is checked when applied) with
    /// temperature `t > 0`, seed 0.
    pub fn new(k: usize, t: f32) -> Result<Self> {
        check_temperature("temperature", t)?;
        if k == 0 {
            return Err(Error::InvalidK { k, m: 0 });
        }
        Ok(Self {
            k,
            temperature: t,
            state: OpState::new(0),
        })
    }

    /// Sets the temperature `t > 0` (e.g. during annealing); keeps the seed state.
    pub fn set_temperature(&mut self, t: f32) -> Result<()> {
        check_temperature("temperature", t)?;
        self.temperature = t;
        Ok(())
    }

    /// Subset size k.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Gumbel keys for `n` entries: call `n` of the op uses
    /// `Noise::gumbel(1.0).fill(call_seed(seed, n), ..)` in the layout of θ.
    fn draw_noise(&self, n: usize) -> Vec<f32> {
        gumbel_noise(&self.state, n)
    }

    /// The relaxation with given Gumbel noise G (row-major, the shape of θ), on θ's device.
    pub fn apply_with_noise<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        noise: Vec<f32>,
    ) -> Result<Tensor<(B, M), f32, D, T>> {
        let m = check_relaxation_input(&theta)?;
        check_k(self.k, m)?;
        let shape = *theta.shape();
        let g = noise_tensor(&theta, noise, shape)?;
        self.relax(theta, g).map_err(Error::device)
    }

    fn relax<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        g: Tensor<(B, M), f32, D>,
    ) -> std::result::Result<Rows<B, M, D, T>, D::Err> {
        let inv_t = 1.0 / self.temperature;
        // Every tensor used twice is split with `with_empty_tape`, so that each recorded
        // backward op ends up exactly once in the tape of the result.
        let mut scores = theta.try_add(g)?;
        let mut khot: Option<Tensor<(B, M), f32, D, T>> = None;
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
        Ok(khot.expect("k >= 1 was checked at construction"))
    }
}

relaxation_estimator!(SoftSub);
