//! Losses that are not layers, as InferOpt separates them from its layers: the
//! score-function surrogate (SFE needs the *value* of the loss, so it cannot be an op on
//! z) and the Fenchel-Young loss of perturbed optimizers (a loss of θ and the target
//! itself). Both are dfdx ops on any [`crate::device::ImleDevice`].

mod fenchel_young;
mod score_function;

pub use fenchel_young::FenchelYoung;
pub use score_function::{Baseline, ScoreFunction};
