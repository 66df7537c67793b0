//! The baseline gradient estimators of the paper's comparisons, as dfdx ops.
//!
//! | estimator | type | original paper |
//! |---|---|---|
//! | straight-through (STE) | [`Ste`] | Bengio, Léonard & Courville 2013, *Estimating or propagating gradients through stochastic neurons* |
//! | score function (SFE, REINFORCE) | [`ScoreFunction`] | Williams 1992, *Simple statistical gradient-following algorithms* |
//! | Gumbel-softmax / Concrete | [`GumbelSoftmax`] | Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017 |
//! | blackbox differentiation (BB) | [`Blackbox`] | Vlastelica (Pogančić) et al. 2020, *Differentiation of blackbox combinatorial solvers* |
//! | perturbed optimizers (DPO) | [`Perturbed`] | Berthet et al. 2020, *Learning with differentiable perturbed optimizers* |
//! | SoftSub (relaxed top-k) | [`SoftSub`] | Xie & Ermon 2019, *Reparameterizable subset sampling via continuous relaxations* |
//! | L2X | [`L2x`] | Chen et al. 2018, *Learning to explain* |
//!
//! Conventions shared with [`crate::Imle`]: the MAP *maximises* `<z, θ>`; a backward
//! pass returns an estimate of `∂L/∂θ` (to be descended); every op works on
//! `Tensor<(B, M), f32, Cpu, T>` for any tape `T` and compile-time or run-time dims; an op
//! drawing noise has a `seed(u64)` and a shared call counter, so that the same seed and
//! the same sequence of calls give the same numbers. Call `n` (counting from 0 after
//! `seed`) draws its noise with the seed [`call_seed`]`(seed, n)`.
//!
//! The hand-written ops (STE, SFE, BB, DPO and the straight-through Gumbel-softmax) are
//! built on [`crate::op::custom_op`]; the relaxations (Gumbel-softmax, SoftSub, L2X) are
//! compositions of dfdx tensor ops, differentiated by dfdx itself.

mod blackbox;
mod gumbel_softmax;
mod l2x;
mod perturbed;
mod score_function;
mod softsub;
mod ste;

pub use blackbox::Blackbox;
pub use gumbel_softmax::{Blocks, GumbelSoftmax, TemperatureSchedule};
pub use l2x::L2x;
pub use perturbed::{PerturbationNoise, Perturbed, PerturbedSamples};
pub use score_function::{Baseline, ScoreFunction};
pub use softsub::SoftSub;
pub use ste::Ste;

pub use crate::noise::call_seed;
pub(crate) use crate::noise::Seeds;

use crate::error::{check_finite, Error, Result};

/// Validates a row-major batch of θ with rows of length `m`: `m >= 1`, whole rows, finite.
pub(crate) fn check_rows(theta: &[f32], m: usize) -> Result<()> {
    if m == 0 {
        return Err(Error::LengthMismatch {
            what: "instance length m",
            expected: 1,
            got: 0,
        });
    }
    if !theta.len().is_multiple_of(m) {
        return Err(Error::LengthMismatch {
            what: "theta (a multiple of m)",
            expected: (theta.len() / m + 1) * m,
            got: theta.len(),
        });
    }
    check_finite("theta", theta)
}

/// Checks that a noise buffer has the expected length.
pub(crate) fn check_noise_len(noise: &[f32], expected: usize) -> Result<()> {
    if noise.len() != expected {
        return Err(Error::LengthMismatch {
            what: "noise",
            expected,
            got: noise.len(),
        });
    }
    check_finite("noise", noise)
}

/// Checks an upstream gradient: the right length and finite.
pub(crate) fn check_upstream(g: &[f32], expected: usize) -> Result<()> {
    if g.len() != expected {
        return Err(Error::LengthMismatch {
            what: "upstream gradient",
            expected,
            got: g.len(),
        });
    }
    check_finite("upstream gradient", g)
}

/// Checks that a temperature-like parameter is finite and > 0.
pub(crate) fn check_temperature(name: &'static str, t: f32) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value: t as f64,
            reason: "must be finite and > 0",
        })
    }
}

/// Checks `1 <= k <= m`.
pub(crate) fn check_k(k: usize, m: usize) -> Result<()> {
    if k == 0 || k > m {
        Err(Error::InvalidK { k, m })
    } else {
        Ok(())
    }
}
