//! L2X: the k-subset relaxation of Chen et al. (2018).

use super::{check_k, check_noise_len, check_rows, check_temperature, Seeds};
use crate::error::Result;
use crate::noise::Noise;
use dfdx::shapes::{Axis, Dim, HasShape, Shape};
use dfdx::tensor::{Cpu, Tape, Tensor, TensorFromVec};
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
/// use imle::baselines::L2x;
///
/// let dev = Cpu::default();
/// let theta = dev.tensor([[1.0f32, 0.0, -1.0, 2.0, 0.5]]);
/// let y = L2x::new(2, 0.5).seed(0).apply(theta.leaky_trace())?;
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
    seeds: Seeds,
}

impl L2x {
    /// L2X for k-subsets with temperature `t > 0` (both checked when applied), seed 0.
    pub fn new(k: usize, t: f32) -> Self {
        Self {
            k,
            temperature: t,
            seeds: Seeds::new(0),
        }
    }

    /// Seed of the Gumbel noise (resets the call counter).
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

    /// The op: draws the k·B·M Gumbel values (call `n`:
    /// `Noise::gumbel(1.0).fill(call_seed(seed, n), ..)`, layout `(B, k, M)`) and applies
    /// [`L2x::apply_with_noise`].
    pub fn apply<B: Dim, M: Dim, T: Tape<f32, Cpu>>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        let mut noise = vec![0.0; theta.shape().num_elements() * self.k];
        Noise::gumbel(1.0)?.fill(self.seeds.next(), &mut noise);
        self.apply_with_noise(theta, noise)
    }

    /// The relaxation with given Gumbel noise (row-major `(B, k, M)`: row `(b, j)` is
    /// `G⁽ʲ⁾` of example b).
    pub fn apply_with_noise<B: Dim, M: Dim, T: Tape<f32, Cpu>>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        noise: Vec<f32>,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        check_temperature("temperature", self.temperature)?;
        let (b, m) = *theta.shape();
        check_rows(&theta.as_vec(), m.size())?;
        check_k(self.k, m.size())?;
        let shape3 = (b, self.k, m);
        check_noise_len(&noise, shape3.num_elements())?;
        let g = theta.device().tensor_from_vec(noise, shape3);
        let y = theta
            .try_broadcast_like::<_, Axis<1>>(&shape3)?
            .try_add(g)?
            .try_mul(1.0 / self.temperature)?
            .try_softmax::<Axis<2>>()?
            .try_max::<(B, M), Axis<1>>()?;
        Ok(y)
    }
}
