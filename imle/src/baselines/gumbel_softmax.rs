//! Gumbel-softmax / Concrete relaxation of the categorical distribution, and its
//! straight-through variant.

use super::{check_noise_len, check_rows, check_temperature, Seeds};
use crate::error::{Error, Result};
use crate::noise::Noise;
use crate::op::{custom_op, BackwardErrors};
use dfdx::shapes::{Axis, Const, Dim, HasShape, Shape};
use dfdx::tensor::{Cpu, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::{ReshapeTo, TryAdd, TryMul};

/// The Gumbel-softmax (Jang, Gu & Poole 2017, *Categorical reparameterization with
/// Gumbel-softmax*) a.k.a. Concrete (Maddison, Mnih & Teh 2017, *The Concrete
/// distribution*) relaxed sample of the categorical distribution (Example 1 of the I-MLE
/// paper), row by row:
///
/// ```text
/// y = softmax((θ + G)/t),    G_i ~ Gumbel(0, 1) i.i.d.,
/// ```
///
/// with temperature t > 0, differentiated by dfdx. As t → 0, y tends to the one-hot
/// `argmax(θ + G)`, an exact sample of `softmax(θ)` (the Gumbel-max trick).
///
/// With [`GumbelSoftmax::hard`], the straight-through Gumbel-softmax: the forward pass
/// returns the one-hot `argmax(θ + G)` and the backward pass uses the gradient of the
/// relaxed sample y.
///
/// The paper anneals t during training; see [`TemperatureSchedule`].
///
/// ```
/// use dfdx::prelude::*;
/// use imle::baselines::GumbelSoftmax;
///
/// let dev = Cpu::default();
/// let gs = GumbelSoftmax::new(0.5).seed(0);
/// let theta = dev.tensor([[1.0f32, 0.0, -1.0], [0.0, 0.0, 3.0]]);
/// let y = gs.apply(theta.leaky_trace())?;
/// for row in y.as_vec().chunks(3) {
///     assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
/// }
/// let grads = y.square().sum().backward();
/// assert!(grads.get(&theta).as_vec().iter().all(|g| g.is_finite()));
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GumbelSoftmax {
    temperature: f32,
    hard: bool,
    seeds: Seeds,
    errors: BackwardErrors,
}

impl GumbelSoftmax {
    /// Gumbel-softmax with temperature `t > 0` (checked when applied), relaxed, seed 0.
    pub fn new(t: f32) -> Self {
        Self {
            temperature: t,
            hard: false,
            seeds: Seeds::new(0),
            errors: BackwardErrors::default(),
        }
    }

    /// Sets the temperature t (e.g. from a [`TemperatureSchedule`]); keeps the seed state.
    pub fn set_temperature(&mut self, t: f32) {
        self.temperature = t;
    }

    /// The current temperature t.
    pub fn current_temperature(&self) -> f32 {
        self.temperature
    }

    /// Straight-through variant: one-hot forward, relaxed backward.
    pub fn hard(mut self, hard: bool) -> Self {
        self.hard = hard;
        self
    }

    /// Seed of the Gumbel noise (resets the call counter).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seeds = Seeds::new(seed);
        self
    }

    /// The error of the last failed backward pass (see [`crate::op`]).
    pub fn take_backward_error(&self) -> Option<Error> {
        self.errors.take()
    }

    /// The op: draws `G ~ Gumbel(0, 1)` (call `n`: `Noise::gumbel(1.0).fill(call_seed(seed, n), ..)`
    /// in the layout of θ) and applies [`GumbelSoftmax::apply_with_noise`].
    pub fn apply<B: Dim, M: Dim, T: Tape<f32, Cpu>>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        let n = theta.shape().num_elements();
        let mut noise = vec![0.0; n];
        Noise::gumbel(1.0)?.fill(self.seeds.next(), &mut noise);
        self.apply_with_noise(theta, noise)
    }

    /// The op with given Gumbel noise `G` (row-major, the shape of θ):
    /// `softmax((θ + G)/t)` along each row, or its straight-through one-hot version.
    pub fn apply_with_noise<B: Dim, M: Dim, T: Tape<f32, Cpu>>(
        &self,
        theta: Tensor<(B, M), f32, Cpu, T>,
        noise: Vec<f32>,
    ) -> Result<Tensor<(B, M), f32, Cpu, T>> {
        check_temperature("temperature", self.temperature)?;
        let shape = *theta.shape();
        let m = shape.1.size();
        check_rows(&theta.as_vec(), m)?;
        check_noise_len(&noise, shape.num_elements())?;
        let g = theta.device().tensor_from_vec(noise, shape);
        let soft = theta
            .try_add(g)?
            .try_mul(1.0 / self.temperature)?
            .try_softmax::<Axis<1>>()?;
        if !self.hard {
            return Ok(soft);
        }
        let hard = one_hot_argmax(&soft.as_vec(), m);
        custom_op(soft, shape, hard, |g: &[f32]| Ok(g.to_vec()), &self.errors)
    }

    /// Gumbel-softmax on a `(B, N, M)` tensor of N independent categorical blocks per
    /// example (e.g. the discrete VAE's 20 blocks of 20 categories), via reshapes.
    pub fn apply_blocks<B: Dim, const N: usize, const M: usize, T: Tape<f32, Cpu>>(
        &self,
        theta: Blocks<B, N, M, T>,
    ) -> Result<Blocks<B, N, M, T>> {
        let (b, n, m) = *theta.shape();
        let flat = theta.try_reshape_like(&(b.size() * n.size(), m))?;
        let y = self.apply(flat)?;
        Ok(y.try_reshape_like(&(b, n, m))?)
    }
}

/// A `(B, N, M)` tensor of N blocks of M logits per example.
pub type Blocks<B, const N: usize, const M: usize, T> =
    Tensor<(B, Const<N>, Const<M>), f32, Cpu, T>;

/// One-hot of the row-wise argmax (ties to the lowest index).
fn one_hot_argmax(values: &[f32], m: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (row, o) in values.chunks(m).zip(out.chunks_mut(m)) {
        let mut best = 0;
        for (i, &v) in row.iter().enumerate().skip(1) {
            if v > row[best] {
                best = i;
            }
        }
        o[best] = 1.0;
    }
    out
}

/// The exponential temperature annealing of Jang, Gu & Poole (2017), used for the
/// Gumbel-softmax baselines of the I-MLE paper's discrete-VAE experiment:
///
/// ```text
/// t(step) = max(t_min, t_0 · exp(−r · ⌊step / N⌋·N)),
/// ```
///
/// i.e. updated every N steps (Jang et al.: t_0 = 1, t_min = 0.5, r ∈ {1e-5, 1e-4},
/// N = 1000).
///
/// ```
/// use imle::baselines::TemperatureSchedule;
/// let s = TemperatureSchedule::exponential(1.0, 1e-4, 0.5)?.update_every(1000);
/// assert_eq!(s.at(0), 1.0);
/// assert_eq!(s.at(999), 1.0);
/// assert!((s.at(1000) - (-0.1f32).exp()).abs() < 1e-6);
/// assert_eq!(s.at(1_000_000), 0.5);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureSchedule {
    initial: f32,
    rate: f64,
    min: f32,
    every: u64,
}

impl TemperatureSchedule {
    /// `t(step) = max(min, initial·exp(−rate·step))`, updated every step.
    /// Needs `initial > 0`, `rate >= 0`, `0 < min <= initial`.
    pub fn exponential(initial: f32, rate: f64, min: f32) -> Result<Self> {
        check_temperature("initial", initial)?;
        check_temperature("min", min)?;
        if min > initial {
            return Err(Error::InvalidParameter {
                name: "min",
                value: min as f64,
                reason: "must not exceed the initial temperature",
            });
        }
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "rate",
                value: rate,
                reason: "must be finite and >= 0",
            });
        }
        Ok(Self {
            initial,
            rate,
            min,
            every: 1,
        })
    }

    /// Update the temperature only every `n` steps (`n = 0` is treated as 1).
    pub fn update_every(mut self, n: u64) -> Self {
        self.every = n.max(1);
        self
    }

    /// The temperature at training step `step` (counting from 0).
    pub fn at(&self, step: u64) -> f32 {
        let s = (step / self.every * self.every) as f64;
        let t = self.initial as f64 * (-self.rate * s).exp();
        (t as f32).max(self.min)
    }
}
