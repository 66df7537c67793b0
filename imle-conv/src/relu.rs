//! ReLU `max(0, x)` for a tensor of any shape: [`relu`] and the module [`ReLU`], the same
//! numbers as dfdx's `relu` / `ReLU` (forward `x.max(0)`, backward `[x > 0] · g` added into
//! the input's gradient), computed in parallel vectorised passes. dfdx 0.13's Cpu kernel
//! runs the backward pass as an indexed loop on the calling thread while the rayon workers
//! wait (in a profile of the L2X selector, without dfdx's tensor cache, 11 % of a step,
//! much of it first touches of fresh gradient buffers).

use dfdx::nn::modules::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, Tensor, TensorFromVec};
use multiversion::multiversion;
use rayon::prelude::*;

use crate::buffers::out_vec;
use crate::tape::{read, record_backward};

/// Elements per parallel task: the VAE's activations (at most 51,200 values) run in one
/// pass on the calling thread, the selector's (1.4 M) are split over the threads.
const CHUNK: usize = 1 << 16;

#[multiversion(targets = "simd")]
fn forward_pass(x: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = x.max(0.0);
    }
}

#[multiversion(targets = "simd")]
fn backward_pass(x: &[f32], gout: &[f32], gx: &mut [f32]) {
    for ((d, &x), &g) in gx.iter_mut().zip(x).zip(gout) {
        // dfdx's `gx += df(x) * g` with `df` 1 or 0, also for an infinite or NaN `g`
        *d += if x > 0.0 { 1.0 } else { 0.0 } * g;
    }
}

/// `max(0, x)` element-wise; on a tape, the backward pass adds `[x > 0] · g` into `x`'s
/// gradient. Bit-identical to dfdx's `x.relu()` (also for NaN: `max` gives 0).
///
/// ```
/// # use dfdx::prelude::*;
/// let dev: Cpu = Default::default();
/// let x = dev.tensor([-1.0f32, 0.0, 2.0]);
/// let y = imle_conv::relu(x.leaky_trace())?;
/// assert_eq!(y.array(), [0.0, 0.0, 2.0]);
/// let g = y.sum().backward();
/// assert_eq!(g.get(&x).array(), [0.0, 0.0, 1.0]);
/// # Ok::<(), dfdx::tensor::CpuError>(())
/// ```
pub fn relu<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
) -> Result<Tensor<S, f32, Cpu, T>, CpuError> {
    let shape = *x.shape();
    let (xv, x) = read(x)?;
    let (x, mut tape) = x.split_tape();
    let mut out = out_vec(x.device(), xv.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(xv.par_chunks(CHUNK))
        .for_each(|(o, x)| forward_pass(x, o));
    let out = x.device().try_tensor_from_vec(out, shape)?;
    if T::OWNS_TAPE {
        record_backward(&mut tape, &x, &out, move |gout, gx| {
            gx.par_chunks_mut(CHUNK)
                .zip(xv.par_chunks(CHUNK))
                .zip(gout.par_chunks(CHUNK))
                .for_each(|((d, x), g)| backward_pass(x, g, d));
        });
    }
    Ok(out.put_tape(tape))
}

/// ReLU module, a drop-in for dfdx's `ReLU` on `Cpu` `f32` tensors of any shape (see
/// [`relu`]); no parameters, so swapping it in keeps a model's checkpoints.
///
/// ```
/// # use dfdx::prelude::*;
/// use imle_conv::builders as cb;
/// let dev: Cpu = Default::default();
/// let m = dev.build_module::<(cb::Dense<3, 4>, cb::ReLU), f32>();
/// let y = m.forward(dev.tensor([[1.0f32, -2.0, 3.0]]));
/// assert!(y.array()[0].iter().all(|&v| v >= 0.0));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ReLU;
impl ZeroSizedModule for ReLU {}
impl NonMutableModule for ReLU {}

impl<S: Shape, T: Tape<f32, Cpu>> Module<Tensor<S, f32, Cpu, T>> for ReLU {
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;
    fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        relu(x)
    }
}
