//! Convolution, pooling and batch-norm layers for [dfdx](https://docs.rs/dfdx/0.13) 0.13 on
//! stable Rust (CPU, `f32`), with their own fast backward passes (see the README).

mod batchnorm;
mod block;
mod conv1d;
mod conv2d;
mod error;
mod kernel;
mod pool;

pub use batchnorm::{batch_norm2d, BatchNorm2D, BatchNormReLU2D, BnMode};
pub use block::{BasicBlock, DownsampleBlock};
pub use conv1d::{conv1d, Conv1D, Pad, Padding1D, PaddingMode, Same};
pub use conv2d::{conv2d, Conv2D, UnbiasedConv2D};
pub use error::ConvError;
pub use pool::{
    adaptive_max_pool2d, global_avg_pool, global_max_pool, max_pool1d, max_pool2d,
    AdaptiveMaxPool2D, GlobalAvgPool, GlobalMaxPool, GlobalPoolInput, MaxPool1D, MaxPool2D,
};

/// The types to name when declaring a model, as with `dfdx::nn::builders`.
pub mod builders {
    pub use crate::batchnorm::builder::*;
    pub use crate::block::builder::*;
    pub use crate::conv1d::builder::*;
    pub use crate::conv1d::{Pad, Same};
    pub use crate::conv2d::builder::*;
    pub use crate::pool::{AdaptiveMaxPool2D, GlobalAvgPool, GlobalMaxPool, MaxPool1D, MaxPool2D};
}
