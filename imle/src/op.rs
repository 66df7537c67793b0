//! Custom dfdx ops with a hand-written backward pass, from outside dfdx, and the state
//! every op shares.
//!
//! [`custom_op`] turns "output data + a closure mapping ∂L/∂out to ∂L/∂in" into a dfdx
//! op on tensors of any [`ImleDevice`] with any tape: the I-MLE op and every hand-written
//! baseline are built on it. The pattern (see `DEVELOPERS.md`): `split_tape`, build the
//! output tensor, `ghost()` both, register `add_backward_op`, `put_tape`. On a device,
//! the closure sees host slices: the upstream gradient is copied to the host once, and
//! the result is added into the device gradient once.
//!
//! dfdx backward closures can only fail with the device's error type, which has no room
//! for ours. When a backward pass fails (a non-finite upstream gradient, a solver that
//! rejects θ'), the real [`Error`] is stored in the op's [`BackwardErrors`] and dfdx's
//! `try_backward` returns `Err`: nothing is silently zeroed or NaN.
//!
//! [`OpState`] is what every estimator holds: its seed, its call counter and that error
//! slot; clones share the counter and the slot.

use crate::device::ImleDevice;
use crate::error::{Error, Result};
use crate::noise::Seeds;
use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{PutTape, SplitTape, Tape, Tensor};
use std::sync::{Arc, Mutex};

/// The state every estimator shares: a seed with a call counter (call `n` draws its noise
/// with [`crate::noise::call_seed`]`(seed, n)`) and the slot where failed backward passes
/// and layer forwards record their error. Clones share the counter and the slot, so a
/// cloned op continues the same random sequence.
#[derive(Debug, Clone, Default)]
pub struct OpState {
    seeds: Seeds,
    errors: BackwardErrors,
}

impl OpState {
    /// A state seeded with `seed`, call counter at 0.
    pub fn new(seed: u64) -> Self {
        Self {
            seeds: Seeds::new(seed),
            errors: BackwardErrors::default(),
        }
    }

    /// The seed of the next call (advances the shared counter).
    pub fn next_seed(&self) -> u64 {
        self.seeds.next()
    }

    /// Restarts the random sequence from `seed` (a fresh counter, no longer shared with
    /// earlier clones); the error slot is kept.
    pub fn reseed(&mut self, seed: u64) {
        self.seeds = Seeds::new(seed);
    }

    /// The seed the random sequence started from (for checkpoints).
    pub fn seed(&self) -> u64 {
        self.seeds.seed()
    }

    /// The number of calls made so far (for checkpoints).
    pub fn calls(&self) -> u64 {
        self.seeds.calls()
    }

    /// Continues the random sequence at call `calls` (restoring a checkpoint).
    pub fn set_calls(&self, calls: u64) {
        self.seeds.set_calls(calls)
    }

    /// The error slot.
    pub fn errors(&self) -> &BackwardErrors {
        &self.errors
    }
}

/// Shared slot where backward passes record why they failed; clones share the slot.
#[derive(Debug, Clone, Default)]
pub struct BackwardErrors(Arc<Mutex<Option<Error>>>);

impl BackwardErrors {
    /// Takes the error of the last failed backward pass, if any.
    pub fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Records `e` as the error of the op (replacing an earlier one).
    pub fn record(&self, e: Error) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }
}

/// Builds an output tensor of shape `out_shape` from `out_data`, with `backward` mapping
/// the output's gradient (row-major, `out_shape.num_elements()` values) to the input's
/// gradient (row-major, as many values as `input` has). The result is *added* to the
/// input's gradient.
///
/// `input` must be contiguous (any tensor produced by a dfdx op or a constructor is; a
/// broadcast view is not).
///
/// ```
/// use dfdx::prelude::*;
/// use imle::op::{custom_op, BackwardErrors};
/// // y = 3x, with a hand-written backward.
/// let dev = Cpu::default();
/// let x = dev.tensor([1.0f32, 2.0]);
/// let data: Vec<f32> = x.as_vec().iter().map(|v| 3.0 * v).collect();
/// let errors = BackwardErrors::default();
/// let y = custom_op(x.leaky_trace(), (Const::<2>,), data, |g: &[f32]| Ok(g.iter().map(|v| 3.0 * v).collect()), &errors)?;
/// let grads = y.sum().backward();
/// assert_eq!(grads.get(&x).array(), [3.0, 3.0]);
/// # Ok::<(), imle::Error>(())
/// ```
pub fn custom_op<S, S2, D, T, F>(
    input: Tensor<S, f32, D, T>,
    out_shape: S2,
    out_data: Vec<f32>,
    backward: F,
    errors: &BackwardErrors,
) -> Result<Tensor<S2, f32, D, T>>
where
    S: Shape,
    S2: Shape,
    D: ImleDevice,
    T: Tape<f32, D>,
    F: 'static + FnOnce(&[f32]) -> Result<Vec<f32>>,
{
    if out_data.len() != out_shape.num_elements() {
        return Err(Error::LengthMismatch {
            what: "op output",
            expected: out_shape.num_elements(),
            got: out_data.len(),
        });
    }
    let (input, mut tape) = input.split_tape();
    let dev = input.device().clone();
    let out = dev
        .try_tensor_from_vec(out_data, out_shape)
        .map_err(Error::device)?;
    if T::OWNS_TAPE {
        let in_ghost = input.ghost();
        let out_ghost = out.ghost();
        let n_in = input.shape().num_elements();
        let errors = errors.clone();
        drop(input);
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&in_ghost)?;
            grads.try_alloc_for(&out_ghost)?;
            let g_out = grads.get(&out_ghost).as_vec();
            let g_in = match backward(&g_out) {
                Ok(g) if g.len() == n_in => g,
                Ok(g) => {
                    errors.record(Error::LengthMismatch {
                        what: "custom op input gradient",
                        expected: n_in,
                        got: g.len(),
                    });
                    return Err(D::op_failed());
                }
                Err(e) => {
                    errors.record(e);
                    return Err(D::op_failed());
                }
            };
            let acc = grads.get_or_alloc_mut(&in_ghost)?;
            D::add_from_host(acc, &g_in).map_err(|e| {
                errors.record(e);
                D::op_failed()
            })
        });
    }
    Ok(out.put_tape(tape))
}
