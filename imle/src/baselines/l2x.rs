//! L2X: the k-subset relaxation of Chen et al. (2018).

use super::gumbel_softmax::gumbel_noise;
use super::{
    check_k, check_relaxation_input, check_temperature, noise_tensor, relaxation_estimator,
};
use crate::device::ImleDevice;
use crate::error::{Error, Result};
use crate::op::OpState;
use dfdx::shapes::{Axis, Dim, HasShape};
use dfdx::tensor::{Tape, Tensor};
use dfdx::tensor_ops::{BroadcastTo, MaxTo, TryAdd, TryMul};

/// The L2X relaxation (Chen, Song, Wainwright & Jordan 2018, *Learning to explain: an
/// information-theoretic perspective on model interpretation*): k independent
/// Gumbel-softmax samples of the m logits, combined by an element-wise maximum, built from
/// dfdx ops (broadcast, softmax, max) so that dfdx differentiates it. Row by row:
///
/// ```text
/// y_i = max_{j=1..k} softmax((θ + G⁽ʲ⁾)/t)_i,      G⁽ʲ⁾_i ~ Gumbel(0, 1) i.i.d.
/// ```
///
/// Every entry lies in `[0, 1]`, and a row sums to between 1 and k (each of the k
/// softmaxes sums to 1). As t → 0, y tends to the union of k independent categorical
/// samples (at most k ones).
///
/// ```
/// use dfdx::prelude::*;
/// use imle::prelude::*;
///
/// let dev = Cpu::default();
/// let theta = dev.tensor([[1.0f32, 0.0, -1.0, 2.0, 0.5]]);
/// let y = L2x::new(2, 0.5)?.seed(0).apply(theta.leaky_trace())?;
/// let sum: f32 = y.as_vec().iter().sum();
/// assert!(sum >= 1.0 - 1e-5 && sum <= 2.0 + 1e-5);
/// let grads = y.sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct L2x {
    k: usize,
    temperature: f32,
    state: OpState,
}

impl L2x {
    /// L2X for k-subsets (`k >= 1`; `k <= m` is checked when applied) with temperature
    /// `t > 0`, seed 0.
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

    /// The k·n Gumbel values for `n` entries of θ: call `n` of the op uses
    /// `Noise::gumbel(1.0).fill(call_seed(seed, n), ..)`, layout `(B, k, M)`.
    fn draw_noise(&self, n: usize) -> Vec<f32> {
        gumbel_noise(&self.state, n * self.k)
    }

    /// The relaxation with given Gumbel noise (row-major `(B, k, M)`: row `(b, j)` is
    /// `G⁽ʲ⁾` of example b), on θ's device.
    pub fn apply_with_noise<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        noise: Vec<f32>,
    ) -> Result<Tensor<(B, M), f32, D, T>> {
        let m = check_relaxation_input(&theta)?;
        check_k(self.k, m)?;
        let (b, m) = *theta.shape();
        let shape3 = (b, self.k, m);
        let g = noise_tensor(&theta, noise, shape3)?;
        theta
            .try_broadcast_like::<_, Axis<1>>(&shape3)
            .and_then(|x| x.try_add(g))
            .and_then(|x| x.try_mul(1.0 / self.temperature))
            .and_then(|x| x.try_softmax::<Axis<2>>())
            .and_then(|x| x.try_max::<(B, M), Axis<1>>())
            .map_err(Error::device)
    }
}

relaxation_estimator!(L2x);
