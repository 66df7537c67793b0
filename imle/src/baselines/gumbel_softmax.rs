//! Gumbel-softmax / Concrete relaxation of the categorical distribution, and its
//! straight-through variant.

use super::{check_relaxation_input, check_temperature, noise_tensor, relaxation_estimator};
use crate::device::ImleDevice;
use crate::error::{Error, Result};
use crate::noise::Noise;
use crate::op::{custom_op, OpState};
use crate::solver::{Argmax, MapSolver};
use dfdx::shapes::{Axis, Dim, HasShape, Shape};
use dfdx::tensor::{Tape, Tensor};
use dfdx::tensor_ops::{TryAdd, TryMul};

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
/// use imle::prelude::*;
///
/// let dev = Cpu::default();
/// let gs = GumbelSoftmax::new(0.5)?.seed(0);
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
    state: OpState,
}

impl GumbelSoftmax {
    /// Gumbel-softmax with temperature `t > 0`, relaxed, seed 0.
    pub fn new(t: f32) -> Result<Self> {
        check_temperature("temperature", t)?;
        Ok(Self {
            temperature: t,
            hard: false,
            state: OpState::new(0),
        })
    }

    /// Sets the temperature `t > 0` (e.g. from a [`TemperatureSchedule`]); keeps the
    /// seed state.
    pub fn set_temperature(&mut self, t: f32) -> Result<()> {
        check_temperature("temperature", t)?;
        self.temperature = t;
        Ok(())
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

    /// Draws `G ~ Gumbel(0, 1)` for `n` entries: call `n` of the op uses
    /// `Noise::gumbel(1.0).fill(call_seed(seed, n), ..)` in the layout of θ.
    fn draw_noise(&self, n: usize) -> Vec<f32> {
        gumbel_noise(&self.state, n)
    }

    /// The op with given Gumbel noise `G` (row-major, the shape of θ):
    /// `softmax((θ + G)/t)` along each row, or its straight-through one-hot version.
    /// Runs on θ's device.
    pub fn apply_with_noise<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
        noise: Vec<f32>,
    ) -> Result<Tensor<(B, M), f32, D, T>> {
        let m = check_relaxation_input(&theta)?;
        let shape = *theta.shape();
        let g = noise_tensor(&theta, noise, shape)?;
        let soft = theta
            .try_add(g)
            .and_then(|x| x.try_mul(1.0 / self.temperature))
            .and_then(|x| x.try_softmax::<Axis<1>>())
            .map_err(Error::device)?;
        if !self.hard {
            return Ok(soft);
        }
        let n = shape.num_elements();
        let mut hard = vec![0.0; n];
        Argmax.solve_batch(&soft.as_vec(), m, &mut hard)?;
        custom_op(
            soft,
            shape,
            hard,
            move |g: &[f32]| {
                super::check_upstream(g, n)?;
                Ok(g.to_vec())
            },
            self.state.errors(),
        )
    }
}

relaxation_estimator!(GumbelSoftmax);

/// `n` standard Gumbel values for the next call of an op with state `state` (drawn by
/// [`Noise::fill`] from its next seed): the noise of the three relaxations.
pub(crate) fn gumbel_noise(state: &OpState, n: usize) -> Vec<f32> {
    let mut noise = vec![0.0; n];
    Noise::Gumbel(crate::noise::Gumbel::new(1.0).expect("scale 1 is valid"))
        .fill(state.next_seed(), &mut noise);
    noise
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
