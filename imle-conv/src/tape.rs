//! The dfdx glue shared by the ops of this crate: a tensor's elements read into a pooled
//! buffer, and the backward pass of a one-input op recorded on the tape.

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, CpuError, Tape, Tensor};
use dfdx::tensor_ops::ReshapeTo;

use crate::buffers::{advise_huge, Buf};

/// Copies a tensor's elements (in logical order) into a pooled buffer.
pub(crate) fn read<S: Shape, T: Tape<f32, Cpu>>(
    t: Tensor<S, f32, Cpu, T>,
) -> Result<(Buf, Tensor<S, f32, Cpu, T>), CpuError> {
    let t = t.try_contiguous()?;
    let mut v = Buf::uninit(t.shape().num_elements());
    t.copy_into(&mut v);
    Ok((v, t))
}

/// Records on `tape` the backward pass of a one-input op from `x` to `out`: `add(gout, gx)`
/// adds into `x`'s gradient, given the output's. Both gradients are moved out of
/// `Gradients` and back (no copies); `gx` is advised to huge pages (a fresh one is
/// calloc'd: written from several threads, every 4 KiB page would cost a fault and a TLB
/// shootdown).
pub(crate) fn record_backward<Si: Shape, So: Shape, T: Tape<f32, Cpu>>(
    tape: &mut T,
    x: &Tensor<Si, f32, Cpu>,
    out: &Tensor<So, f32, Cpu>,
    add: impl FnOnce(&[f32], &mut [f32]) + 'static,
) {
    let (xg, og) = (x.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&xg)?;
        grads.try_alloc_for(&og)?;
        let gout = std::mem::take(&mut **grads.get_or_alloc_mut(&og)?);
        let gx: &mut Vec<f32> = grads.get_or_alloc_mut(&xg)?;
        advise_huge(gx);
        add(&gout, gx);
        **grads.get_or_alloc_mut(&og)? = gout;
        Ok(())
    });
}
