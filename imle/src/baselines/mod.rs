//! The baseline gradient estimators of the paper's comparisons, as dfdx ops.
//!
//! | estimator | type | original paper |
//! |---|---|---|
//! | straight-through (STE) | [`Ste`] | Bengio, Léonard & Courville 2013, *Estimating or propagating gradients through stochastic neurons* |
//! | score function (SFE, REINFORCE) | [`crate::loss::ScoreFunction`] | Williams 1992, *Simple statistical gradient-following algorithms* |
//! | Gumbel-softmax / Concrete | [`GumbelSoftmax`] | Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017 |
//! | blackbox differentiation (BB) | [`Blackbox`] | Vlastelica (Pogančić) et al. 2020, *Differentiation of blackbox combinatorial solvers* |
//! | perturbed optimizers (DPO) | [`Perturbed`] | Berthet et al. 2020, *Learning with differentiable perturbed optimizers* |
//! | SoftSub (relaxed top-k) | [`SoftSub`] | Xie & Ermon 2019, *Reparameterizable subset sampling via continuous relaxations* |
//! | L2X | [`L2x`] | Chen et al. 2018, *Learning to explain* |
//!
//! (The score-function estimator and the Fenchel-Young loss are losses, not layers: they
//! are in [`crate::loss`].)
//!
//! Conventions shared with [`crate::Imle`]: every one is an [`Estimator`](crate::Estimator), built once
//! with its solver and hyper-parameters (validated then) and applied as `op.apply(θ)`;
//! the MAP *maximises* `<z, θ>`; a backward pass returns an estimate of `∂L/∂θ` (to be
//! descended); every op works on `Tensor<(B, M), f32, D, T>` for any [`ImleDevice`](crate::ImleDevice) `D`,
//! any tape `T` and compile-time or run-time dims; an op drawing noise has a `seed(u64)`
//! and a shared call counter, so that the same seed and the same sequence of calls give
//! the same numbers. Call `n` (counting from 0 after `seed`) draws its noise with the
//! seed [`call_seed`]`(seed, n)`.
//!
//! The hand-written ops (STE, BB, DPO and the straight-through Gumbel-softmax) are built
//! on [`crate::op::custom_op`] and run their solver on the host; the relaxations
//! (Gumbel-softmax, SoftSub, L2X) are compositions of dfdx tensor ops, differentiated by
//! dfdx itself on the device (their slice-level `forward`/`backward` run the same ops on
//! the `Cpu`).

mod blackbox;
mod checks;
mod gumbel_softmax;
mod l2x;
mod perturbed;
mod relaxation;
mod softsub;
mod ste;

pub use blackbox::{Blackbox, BlackboxSaved};
pub use gumbel_softmax::{GumbelSoftmax, TemperatureSchedule};
pub use l2x::L2x;
pub use perturbed::{PerturbationNoise, Perturbed, PerturbedSamples};
pub use softsub::SoftSub;
pub use ste::Ste;

pub use crate::noise::call_seed;

pub use relaxation::RelaxationSaved;

pub(crate) use checks::{
    check_k, check_relaxation_input, check_rows, check_temperature, check_upstream,
};
pub(crate) use relaxation::{
    noise_tensor, relaxation_backward, relaxation_estimator, relaxation_forward,
};
