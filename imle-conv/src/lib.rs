//! Convolution, pooling, batch-norm and fast fully connected layers for [dfdx](https://docs.rs/dfdx/0.13) 0.13 on
//! stable Rust (CPU, `f32`, NCHW), with their own backward passes: Winograd F(2, 3)
//! for stride-1 3x3 and 3-tap convolutions, im2col + GEMM for the others, parallel over
//! the batch with rayon (bit-identical for any thread count), batch norm fused with ReLU
//! and the residual addition. First layers on data (`*OnData` builders) skip the input
//! gradient.
//!
//! **Cpu only.** The layers are written for dfdx's `Cpu` device (their kernels are ours,
//! on host memory); a model on `Cuda` uses dfdx's own `Linear` instead (as `imle-paper
//! fig4 --device cuda` does). The `imle` estimators themselves run on either device.
//!
//! Layers are dfdx modules: name their builders (in [`builders`]) in a tuple with
//! dfdx's own, build with `dev.build_module`, train with `forward_mut` on a traced input
//! and any dfdx optimizer, save with `save_safetensors` / `save` (npz). The batch
//! dimension and the spatial sizes are known at run time, channels and kernels at
//! compile time.
//!
//! ```
//! use dfdx::prelude::*;
//! use dfdx::optim::{Adam, Optimizer};
//! use imle_conv::builders as cb;
//!
//! type Net = (
//!     (cb::UnbiasedConv2D<3, 16, 7, 2, 3>, cb::BatchNormReLU2D<16>, cb::MaxPool2D<3, 2, 1>),
//!     cb::BasicBlock<16>,
//!     cb::GlobalAvgPool,
//!     Linear<16, 2>,
//! );
//! let dev = Cpu::seed_from_u64(0);
//! let mut net = dev.build_module::<Net, f32>();
//! let mut opt = Adam::new(&net, Default::default());
//! let x: Tensor<(usize, Const<3>, usize, usize), f32, _> = dev.sample_normal_like(&(4, Const, 32, 32));
//! let logits = net.forward_mut(x.trace(net.alloc_grads())); // train mode
//! let grads = logits.square().mean().backward();
//! opt.update(&mut net, &grads).unwrap();
//! let eval: Tensor<(usize, Const<2>), f32, _> = net.forward(x); // eval mode
//! ```
//!
//! Geometry errors (a kernel larger than the padded input, adaptive pooling of a size
//! that is not a multiple, ...) are [`ConvError`]s from the functional ops and the
//! `try_forward_checked` / `try_forward_train` methods. `Module::try_forward` must use
//! dfdx's `CpuError` to compose with dfdx's layers, so there they panic with the same
//! message, as dfdx does on mismatched runtime shapes.

#![allow(clippy::type_complexity)] // dfdx tensor types are long by nature

mod batchnorm;
mod block;
mod buffers;
mod conv1d;
mod conv2d;
mod dense;
mod error;
mod gemm;
mod geom;
mod kernel;
mod pool;
mod relu;
mod tape;
mod winograd;

pub use batchnorm::{batch_norm2d, BatchNorm2D, BatchNormReLU2D, BnMode};
pub use block::{BasicBlock, DownsampleBlock};
pub use conv1d::{conv1d, Conv1D, Pad, Padding1D, PaddingMode, Same};
pub use conv2d::{conv2d, Conv2D, UnbiasedConv2D};
pub use dense::{dense, Dense};
pub use error::ConvError;
pub use pool::{
    adaptive_max_pool2d, global_avg_pool, global_max_pool, max_pool1d, max_pool2d,
    AdaptiveMaxPool2D, GlobalAvgPool, GlobalMaxPool, GlobalPoolInput, MaxPool1D, MaxPool2D,
};
pub use relu::relu;

pub use buffers::MAX_POOLED_BYTES;

/// Frees the idle scratch buffers that the layers keep for reuse between calls (copies of
/// inputs kept for the backward pass, im2col matrices, max-pool indices; at most
/// [`MAX_POOLED_BYTES`] per element type). Call it after training to give the memory back;
/// later calls allocate afresh.
pub fn release_buffers() {
    buffers::clear()
}

/// The types to name when declaring a model, as with `dfdx::nn::builders`.
pub mod builders {
    pub use crate::batchnorm::builder::*;
    pub use crate::block::builder::*;
    pub use crate::conv1d::builder::*;
    pub use crate::conv1d::{Pad, Same};
    pub use crate::conv2d::builder::*;
    pub use crate::dense::builder::*;
    pub use crate::pool::{AdaptiveMaxPool2D, GlobalAvgPool, GlobalMaxPool, MaxPool1D, MaxPool2D};
    pub use crate::relu::ReLU;
}
