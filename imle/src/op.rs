//! Custom dfdx ops with a hand-written backward pass, from outside dfdx.
//!
//! [`custom_op`] turns "output data + a closure mapping ∂L/∂out to ∂L/∂in" into a dfdx
//! op on `Cpu` tensors with any tape: the I-MLE op and every baseline estimator are built
//! on it. The pattern (see `DEVELOPERS.md`): `split_tape`, build the output tensor,
//! `ghost()` both, register `add_backward_op`, `put_tape`.
//!
//! dfdx backward closures can only fail with its `CpuError`, which has no room for our
//! errors. When a backward pass fails (a non-finite upstream gradient, a solver that
//! rejects θ'), the real [`Error`] is stored in the op's [`BackwardErrors`] and dfdx's
//! `try_backward` returns `Err`: nothing is silently zeroed or NaN.

use crate::error::{Error, Result};
use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, Tensor, TensorFromVec};
use std::sync::{Arc, Mutex};

/// Shared slot where backward passes record why they failed; clones share the slot.
#[derive(Debug, Clone, Default)]
pub struct BackwardErrors(Arc<Mutex<Option<Error>>>);

impl BackwardErrors {
    /// Takes the error of the last failed backward pass, if any.
    pub fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn record(&self, e: Error) {
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
pub fn custom_op<S, S2, T, F>(
    input: Tensor<S, f32, Cpu, T>,
    out_shape: S2,
    out_data: Vec<f32>,
    backward: F,
    errors: &BackwardErrors,
) -> Result<Tensor<S2, f32, Cpu, T>>
where
    S: Shape,
    S2: Shape,
    T: Tape<f32, Cpu>,
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
    let out = dev.tensor_from_vec(out_data, out_shape);
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
                    return Err(CpuError::WrongNumElements);
                }
                Err(e) => {
                    errors.record(e);
                    return Err(CpuError::WrongNumElements);
                }
            };
            let acc = grads.get_or_alloc_mut(&in_ghost)?;
            if acc.len() != n_in {
                errors.record(Error::LengthMismatch {
                    what: "input gradient buffer (is the input a broadcast view?)",
                    expected: n_in,
                    got: acc.len(),
                });
                return Err(CpuError::WrongNumElements);
            }
            for (a, g) in acc.iter_mut().zip(g_in) {
                *a += g;
            }
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}
