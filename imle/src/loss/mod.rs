//! Losses that are not layers, as InferOpt separates them from its layers: the
//! score-function surrogate (SFE needs the *value* of the loss, so it cannot be an op on
//! z) and the Fenchel-Young loss of perturbed optimizers (a loss of θ and the target
//! itself). Both are dfdx ops on any [`crate::device::ImleDevice`].

mod fenchel_young;
mod score_function;

pub use fenchel_young::FenchelYoung;
pub use score_function::{Baseline, ScoreFunction};

use crate::baselines::check_upstream;
use crate::device::ImleDevice;
use crate::error::Result;
use crate::op::{custom_op, BackwardErrors};
use dfdx::shapes::{Dim, HasShape};
use dfdx::tensor::{Tape, Tensor};

/// A per-example loss `(B,)` of θ `(B, M)` with the given `values` and per-row gradients
/// `grads` (row-major `(B, M)`): θ's gradient is `g_b·grads_b` for upstream `g`.
fn per_example_loss<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
    theta: Tensor<(B, M), f32, D, T>,
    values: Vec<f32>,
    grads: Vec<f32>,
    errors: &BackwardErrors,
) -> Result<Tensor<(B,), f32, D, T>> {
    let (b, m) = *theta.shape();
    let m = m.size();
    custom_op(
        theta,
        (b,),
        values,
        move |g: &[f32]| {
            check_upstream(g, grads.len() / m)?;
            Ok(grads
                .chunks(m)
                .zip(g)
                .flat_map(|(row, &gb)| row.iter().map(move |v| gb * v))
                .collect())
        },
        errors,
    )
}
