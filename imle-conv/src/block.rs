//! ResNet's residual [`BasicBlock`]: `relu(bn2(conv2(relu(bn1(conv1(x))))) + skip(x))`,
//! with 3x3 convolutions and either the identity skip ([`BasicBlock`]) or a strided
//! 1x1 convolution + batch norm projection ([`DownsampleBlock`]).
//!
//! The first batch norm is fused with its ReLU, the second with the residual addition and
//! the final ReLU, so a block makes two passes over memory besides its convolutions.

use dfdx::nn::modules::{BuildModule, Module, ModuleMut, ModuleVisitor, TensorCollection};
use dfdx::nn::BuildOnDevice;
use dfdx::prelude::{Device, Dtype, Storage};
use dfdx::shapes::{Const, Dim, HasShape};
use dfdx::tensor::{Cpu, CpuError, Merge, NoneTape, OwnedTape, Tape, Tensor, WithEmptyTape};
use dfdx::tensor_ops::ReshapeTo;
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;

use crate::batchnorm::{batch_norm2d, BatchNorm2D, BatchNormReLU2D, BnMode};
use crate::conv2d::UnbiasedConv2D;
use crate::error::{or_panic, ConvError};

/// Builders of the residual blocks.
pub mod builder {
    /// Builds a [`super::BasicBlock`] on `C` channels.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct BasicBlock<const C: usize>;
    /// Builds a [`super::DownsampleBlock`] from `I` to `O` channels with stride `S`.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct DownsampleBlock<const I: usize, const O: usize, const S: usize = 2>;
}

type Img<B, const C: usize, T> = Tensor<(B, Const<C>, usize, usize), f32, Cpu, T>;

/// The residual block of ResNet-18/34 on `C` channels, stride 1, identity skip:
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + x)` with 3x3 convolutions (padding 1, no
/// bias). Train with `forward_mut` on an `OwnedTape`, evaluate with `forward` (batch norm
/// modes as in [`BatchNorm2D`]).
///
/// ```
/// # use dfdx::prelude::*;
/// use imle_conv::builders::{BasicBlock, BatchNormReLU2D, MaxPool2D, UnbiasedConv2D};
/// let dev: Cpu = Cpu::seed_from_u64(0);
/// type Stem = (UnbiasedConv2D<3, 8, 7, 2, 3>, BatchNormReLU2D<8>, MaxPool2D<3, 2, 1>);
/// let mut m = dev.build_module::<(Stem, BasicBlock<8>, BasicBlock<8>), f32>();
/// let x: Tensor<(usize, Const<3>, usize, usize), f32, _> = dev.sample_normal_like(&(2, Const, 32, 32));
/// let y = m.forward_mut(x.trace(m.alloc_grads()));
/// assert_eq!(*y.shape(), (2, Const::<8>, 8, 8));
/// ```
#[derive(Debug, Clone)]
pub struct BasicBlock<const C: usize, E: Dtype, D: Storage<E>> {
    /// First 3x3 convolution.
    pub conv1: UnbiasedConv2D<C, C, 3, 1, 1, E, D>,
    /// Batch norm + ReLU after it.
    pub bn1: BatchNormReLU2D<C, E, D>,
    /// Second 3x3 convolution.
    pub conv2: UnbiasedConv2D<C, C, 3, 1, 1, E, D>,
    /// Batch norm before the residual addition.
    pub bn2: BatchNorm2D<C, E, D>,
}

/// A residual block that changes the channel count and/or downsamples: the first 3x3
/// convolution has stride `S`, the skip is a 1x1 stride-`S` convolution + batch norm.
#[derive(Debug, Clone)]
pub struct DownsampleBlock<const I: usize, const O: usize, const S: usize, E: Dtype, D: Storage<E>>
{
    /// First 3x3 convolution, stride `S`.
    pub conv1: UnbiasedConv2D<I, O, 3, S, 1, E, D>,
    /// Batch norm + ReLU after it.
    pub bn1: BatchNormReLU2D<O, E, D>,
    /// Second 3x3 convolution.
    pub conv2: UnbiasedConv2D<O, O, 3, 1, 1, E, D>,
    /// Batch norm before the residual addition.
    pub bn2: BatchNorm2D<O, E, D>,
    /// Projection of the skip: 1x1 convolution, stride `S`.
    pub down_conv: UnbiasedConv2D<I, O, 1, S, 0, E, D>,
    /// Batch norm of the projection.
    pub down_bn: BatchNorm2D<O, E, D>,
}

impl<const C: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E> for builder::BasicBlock<C>
where
    BasicBlock<C, E, D>: BuildModule<D, E>,
{
    type Built = BasicBlock<C, E, D>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

impl<const I: usize, const O: usize, const S: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::DownsampleBlock<I, O, S>
where
    DownsampleBlock<I, O, S, E, D>: BuildModule<D, E>,
{
    type Built = DownsampleBlock<I, O, S, E, D>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

impl<const C: usize, E: Dtype + Float + SampleUniform, D: Device<E>> TensorCollection<E, D>
    for BasicBlock<C, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = BasicBlock<C, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                Self::module("bn1", |s| &s.bn1, |s| &mut s.bn1),
                Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                Self::module("bn2", |s| &s.bn2, |s| &mut s.bn2),
            ),
            |(conv1, bn1, conv2, bn2)| BasicBlock {
                conv1,
                bn1,
                conv2,
                bn2,
            },
        )
    }
}

impl<
        const I: usize,
        const O: usize,
        const S: usize,
        E: Dtype + Float + SampleUniform,
        D: Device<E>,
    > TensorCollection<E, D> for DownsampleBlock<I, O, S, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = DownsampleBlock<I, O, S, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                Self::module("bn1", |s| &s.bn1, |s| &mut s.bn1),
                Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                Self::module("bn2", |s| &s.bn2, |s| &mut s.bn2),
                Self::module("down_conv", |s| &s.down_conv, |s| &mut s.down_conv),
                Self::module("down_bn", |s| &s.down_bn, |s| &mut s.down_bn),
            ),
            |(conv1, bn1, conv2, bn2, down_conv, down_bn)| DownsampleBlock {
                conv1,
                bn1,
                conv2,
                bn2,
                down_conv,
                down_bn,
            },
        )
    }
}

/// `relu(bn(y) + skip)` in train or eval mode.
fn bn_add_relu<B: Dim, const C: usize, T: Tape<f32, Cpu> + Merge<T>>(
    bn: &mut BatchNorm2D<C, f32, Cpu>,
    y: Img<B, C, T>,
    skip: Img<B, C, T>,
    train: bool,
) -> Result<Img<B, C, T>, ConvError> {
    let mode = if train {
        BnMode::Train {
            running_mean: &mut bn.running_mean,
            running_var: &mut bn.running_var,
            momentum: bn.momentum as f32,
        }
    } else {
        BnMode::Eval {
            running_mean: &bn.running_mean,
            running_var: &bn.running_var,
        }
    };
    batch_norm2d(
        y,
        &bn.scale,
        &bn.bias,
        mode,
        bn.epsilon as f32,
        Some(skip),
        true,
    )
}

impl<const C: usize> BasicBlock<C, f32, Cpu> {
    /// Forward in train (`train = true`: batch statistics, running ones updated) or eval
    /// mode, with errors as [`ConvError`]. Eval mode needs `&mut self` here only for
    /// uniformity; it changes nothing.
    pub fn try_forward_checked<B: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu> + Merge<T>>(
        &mut self,
        x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
        train: bool,
    ) -> Result<Img<B, C, T>, ConvError> {
        let (b, _, h, w) = *x.shape();
        let skip = x
            .with_empty_tape()
            .try_reshape_like(&(b, Const::<C>, h.size(), w.size()))?;
        let y = self.conv1.try_forward_checked(x)?;
        let y = if train {
            self.bn1.try_forward_train(y, None)?
        } else {
            self.bn1.try_forward_eval(y, None)?
        };
        let y = self.conv2.try_forward_checked(y)?;
        bn_add_relu(&mut self.bn2, y, skip, train)
    }
}

impl<const I: usize, const O: usize, const S: usize> DownsampleBlock<I, O, S, f32, Cpu> {
    /// Forward in train or eval mode, with errors as [`ConvError`]; see
    /// [`BasicBlock::try_forward_checked`].
    pub fn try_forward_checked<B: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu> + Merge<T>>(
        &mut self,
        x: Tensor<(B, Const<I>, H, W), f32, Cpu, T>,
        train: bool,
    ) -> Result<Img<B, O, T>, ConvError> {
        let skip = self.down_conv.try_forward_checked(x.with_empty_tape())?;
        let skip = if train {
            self.down_bn.try_forward_train(skip, None)?
        } else {
            self.down_bn.try_forward_eval(skip, None)?
        };
        let y = self.conv1.try_forward_checked(x)?;
        let y = if train {
            self.bn1.try_forward_train(y, None)?
        } else {
            self.bn1.try_forward_eval(y, None)?
        };
        let y = self.conv2.try_forward_checked(y)?;
        bn_add_relu(&mut self.bn2, y, skip, train)
    }
}

macro_rules! block_modules {
    ($name:ident [$($c:ident),*] $i:ident $o:ident) => {
        /// Eval mode. Panics on bad geometry (see `try_forward_checked`).
        impl<$(const $c: usize),*, B: Dim, H: Dim, W: Dim> Module<Tensor<(B, Const<$i>, H, W), f32, Cpu, NoneTape>>
            for $name<$($c),*, f32, Cpu>
        {
            type Output = Img<B, $o, NoneTape>;
            type Error = CpuError;
            fn try_forward(&self, x: Tensor<(B, Const<$i>, H, W), f32, Cpu, NoneTape>) -> Result<Self::Output, CpuError> {
                // eval mode reads the running statistics only; the clone shares storage.
                or_panic(self.clone().try_forward_checked(x, false))
            }
        }
        /// Train mode. Panics on bad geometry (see `try_forward_checked`).
        impl<$(const $c: usize),*, B: Dim, H: Dim, W: Dim>
            ModuleMut<Tensor<(B, Const<$i>, H, W), f32, Cpu, OwnedTape<f32, Cpu>>> for $name<$($c),*, f32, Cpu>
        {
            type Output = Img<B, $o, OwnedTape<f32, Cpu>>;
            type Error = CpuError;
            fn try_forward_mut(
                &mut self,
                x: Tensor<(B, Const<$i>, H, W), f32, Cpu, OwnedTape<f32, Cpu>>,
            ) -> Result<Self::Output, CpuError> {
                or_panic(self.try_forward_checked(x, true))
            }
        }
    };
}
block_modules!(BasicBlock [C] C C);
block_modules!(DownsampleBlock [I, O, S] I O);
