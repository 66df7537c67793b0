//! 2-d convolution: the functional op [`conv2d`] and the modules [`Conv2D`] (with bias)
//! and [`UnbiasedConv2D`].

use dfdx::nn::modules::{
    BuildModule, Module, ModuleVisitor, NonMutableModule, TensorCollection, TensorOptions,
};
use dfdx::nn::BuildOnDevice;
use dfdx::prelude::{Device, Dtype, Storage};
use dfdx::shapes::{Const, Dim, HasShape, Rank1, Rank4, Shape};
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, Tensor, TensorFromVec};
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::distributions::Uniform;

use crate::buffers::{advise_huge, out_vec};
use crate::error::{or_panic, ConvError};
use crate::geom::{out_size, Geom};
use crate::kernel;
use crate::tape::read;

/// The dfdx side of every convolution: runs the kernels and records the backward pass.
///
/// `x` must hold `[batch, g.c, g.h, g.w]` elements in its logical order, `dst` is the
/// output shape `[batch, o, g.oh, g.ow]`. Without `input_grad` the backward pass computes
/// no gradient for `x` (the weight and bias gradients only).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_op<Si: Shape, So: Shape, Sw: Shape, Sb: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<Si, f32, Cpu, T>,
    w: &Tensor<Sw, f32, Cpu>,
    bias: Option<&Tensor<Sb, f32, Cpu>>,
    o: usize,
    g: Geom,
    dst: So,
    input_grad: bool,
) -> Result<Tensor<So, f32, Cpu, T>, CpuError> {
    let (xv, x) = read(x)?;
    let (x, mut tape) = x.split_tape();
    let mut wv = vec![0.0; w.shape().num_elements()];
    w.copy_into(&mut wv);
    let bv = bias.map(|b| {
        let mut v = vec![0.0; o];
        b.copy_into(&mut v);
        v
    });
    let mut out = out_vec(x.device(), dst.num_elements())?;
    kernel::conv_forward(&xv, &wv, bv.as_deref(), &mut out, o, &g);
    let out = x.device().try_tensor_from_vec(out, dst)?;
    if T::OWNS_TAPE {
        let (xg, wg, og) = (x.ghost(), w.ghost(), out.ghost());
        let bg = bias.map(|b| b.ghost());
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&wg)?;
            grads.try_alloc_for(&og)?;
            let gout = std::mem::take(&mut **grads.get_or_alloc_mut(&og)?);
            let mut gx = if input_grad {
                grads.try_alloc_for(&xg)?;
                let mut gx = std::mem::take(&mut **grads.get_or_alloc_mut(&xg)?);
                advise_huge(&mut gx);
                Some(gx)
            } else {
                None
            };
            let mut gw = std::mem::take(&mut **grads.get_or_alloc_mut(&wg)?);
            let mut gb = match &bg {
                Some(bg) => Some(std::mem::take(&mut **grads.get_or_alloc_mut(bg)?)),
                None => None,
            };
            kernel::conv_backward(
                &xv,
                &wv,
                &gout,
                gx.as_deref_mut(),
                &mut gw,
                gb.as_deref_mut(),
                o,
                &g,
            );
            **grads.get_or_alloc_mut(&og)? = gout;
            if let Some(gx) = gx {
                **grads.get_or_alloc_mut(&xg)? = gx;
            }
            **grads.get_or_alloc_mut(&wg)? = gw;
            if let (Some(bg), Some(gb)) = (&bg, gb) {
                **grads.get_or_alloc_mut(bg)? = gb;
            }
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// 2-d convolution of an NCHW batch: `out[b, o] = bias[o] + sum_c weight[o, c] * x[b, c]`
/// (cross-correlation, as in PyTorch), with zero padding, dilation 1 and groups 1.
///
/// Gradients of `x`, `weight` and `bias` are recorded on `x`'s tape (as dfdx's `Linear`
/// does for its parameters). Errors if a stride is 0 or the kernel is larger than the
/// padded input.
///
/// ```
/// # use dfdx::prelude::*;
/// let dev: Cpu = Cpu::seed_from_u64(0);
/// let x: Tensor<(usize, Const<3>, usize, usize), f32, _> =
///     dev.sample_normal_like(&(2, Const, 9, 9));
/// let w: Tensor<Rank4<8, 3, 3, 3>, f32, _> = dev.sample_normal();
/// let y = imle_conv::conv2d(x, &w, None, (2, 2), (1, 1)).unwrap();
/// assert_eq!(*y.shape(), (2, Const::<8>, 5, 5));
/// ```
pub fn conv2d<
    B: Dim,
    const C: usize,
    H: Dim,
    W: Dim,
    const O: usize,
    const KH: usize,
    const KW: usize,
    T: Tape<f32, Cpu>,
>(
    x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    weight: &Tensor<Rank4<O, C, KH, KW>, f32, Cpu>,
    bias: Option<&Tensor<Rank1<O>, f32, Cpu>>,
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor<(B, Const<O>, usize, usize), f32, Cpu, T>, ConvError> {
    conv2d_impl(x, weight, bias, stride, padding, true)
}

fn conv2d_impl<
    B: Dim,
    const C: usize,
    H: Dim,
    W: Dim,
    const O: usize,
    const KH: usize,
    const KW: usize,
    T: Tape<f32, Cpu>,
>(
    x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    weight: &Tensor<Rank4<O, C, KH, KW>, f32, Cpu>,
    bias: Option<&Tensor<Rank1<O>, f32, Cpu>>,
    stride: (usize, usize),
    padding: (usize, usize),
    input_grad: bool,
) -> Result<Tensor<(B, Const<O>, usize, usize), f32, Cpu, T>, ConvError> {
    let (b, _, h, w) = *x.shape();
    let (h, w) = (h.size(), w.size());
    let oh = out_size("height", h, KH, stride.0, padding.0, padding.0)?;
    let ow = out_size("width", w, KW, stride.1, padding.1, padding.1)?;
    let g = Geom {
        c: C,
        h,
        w,
        kh: KH,
        kw: KW,
        sh: stride.0,
        sw: stride.1,
        ph: padding.0,
        pw: padding.1,
        oh,
        ow,
    };
    Ok(conv_op(
        x,
        weight,
        bias,
        O,
        g,
        (b, Const, oh, ow),
        input_grad,
    )?)
}

/// Builders: the types to name in a model, e.g. `(builders::Conv2D<3, 8, 3>, ReLU)`.
pub mod builder {
    /// Builds a [`super::Conv2D`]: `I` in channels, `O` out channels, `K`x`K` kernel,
    /// stride `S`, zero padding `P` on every side; `INPUT_GRAD = false`: see
    /// [`Conv2DOnData`].
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Conv2D<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        const P: usize = 0,
        const INPUT_GRAD: bool = true,
    >;
    /// Builds an [`super::UnbiasedConv2D`] (no bias, as in ResNet before batch norm).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct UnbiasedConv2D<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        const P: usize = 0,
        const INPUT_GRAD: bool = true,
    >;
    /// A [`Conv2D`] that is the model's first layer: its input is data, so its backward
    /// pass computes no input gradient (the weight and bias gradients only), as PyTorch
    /// skips it for an input that does not require grad. The parameters, their names and
    /// their initialisation are those of [`Conv2D`] (checkpoints load either way). Put it
    /// only where nothing upstream is trained: an earlier layer would get zero gradients.
    pub type Conv2DOnData<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        const P: usize = 0,
    > = Conv2D<I, O, K, S, P, false>;
    /// [`UnbiasedConv2D`] on the model's input data (no input gradient, see
    /// [`Conv2DOnData`]); e.g. ResNet's stem.
    pub type UnbiasedConv2DOnData<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        const P: usize = 0,
    > = UnbiasedConv2D<I, O, K, S, P, false>;
}

macro_rules! conv2d_module {
    ($name:ident, $($bias:ident)?) => {
        impl<const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const G: bool, E, D>
            BuildOnDevice<D, E> for builder::$name<I, O, K, S, P, G>
        where
            E: Dtype,
            D: Device<E>,
            $name<I, O, K, S, P, E, D, G>: BuildModule<D, E>,
        {
            type Built = $name<I, O, K, S, P, E, D, G>;
            fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
                Self::Built::try_build(device)
            }
        }

        impl<const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const G: bool, E: Dtype, D: Storage<E>>
            NonMutableModule for $name<I, O, K, S, P, E, D, G>
        {
        }

        impl<const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const G: bool, E, D>
            TensorCollection<E, D> for $name<I, O, K, S, P, E, D, G>
        where
            E: Dtype + Float + SampleUniform,
            D: Device<E>,
        {
            type To<E2: Dtype, D2: Device<E2>> = $name<I, O, K, S, P, E2, D2, G>;

            fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
                visitor: &mut V,
            ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
                visitor.visit_fields(
                    (
                        Self::tensor("weight", |s| &s.weight, |s| &mut s.weight, TensorOptions::reset_with(|t| {
                            let b: E = E::ONE / E::from_usize(I * K * K).unwrap().sqrt();
                            t.try_fill_with_distr(Uniform::new(-b, b))
                        })),
                        $(Self::tensor(stringify!($bias), |s| &s.bias, |s| &mut s.bias, TensorOptions::reset_with(|t| {
                            let b: E = E::ONE / E::from_usize(I * K * K).unwrap().sqrt();
                            t.try_fill_with_distr(Uniform::new(-b, b))
                        })),)?
                    ),
                    |(weight, $($bias)?)| $name { weight, $($bias)? },
                )
            }
        }

        impl<const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const G: bool>
            $name<I, O, K, S, P, f32, Cpu, G>
        {
            /// Like `Module::try_forward`, with bad geometry reported as a [`ConvError`].
            pub fn try_forward_checked<B: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu>>(
                &self,
                x: Tensor<(B, Const<I>, H, W), f32, Cpu, T>,
            ) -> Result<Tensor<(B, Const<O>, usize, usize), f32, Cpu, T>, ConvError> {
                conv2d_impl(x, &self.weight, conv2d_module!(@bias self $($bias)?), (S, S), (P, P), G)
            }
        }

        /// Panics (like dfdx on mismatched runtime shapes) if the kernel is larger than the
        /// padded input; use `try_forward_checked` for a [`ConvError`] instead.
        impl<const I: usize, const O: usize, const K: usize, const S: usize, const P: usize, const G: bool, B: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu>>
            Module<Tensor<(B, Const<I>, H, W), f32, Cpu, T>> for $name<I, O, K, S, P, f32, Cpu, G>
        {
            type Output = Tensor<(B, Const<O>, usize, usize), f32, Cpu, T>;
            type Error = CpuError;
            fn try_forward(&self, x: Tensor<(B, Const<I>, H, W), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
                or_panic(self.try_forward_checked(x))
            }
        }
    };
    (@bias $s:ident bias) => { Some(&$s.bias) };
    (@bias $s:ident) => { None };
}

/// 2-d convolution layer with bias: `I` -> `O` channels, `K`x`K` kernel, stride `S`,
/// zero padding `P`; with `INPUT_GRAD = false` no input gradient (built by
/// [`builder::Conv2DOnData`]). Input `(batch, I, h, w)`, output `(batch, O, oh, ow)` with
/// `oh = (h + 2P - K) / S + 1`. Weights and bias start uniform in `±1/sqrt(I*K*K)`
/// (PyTorch's default), drawn from the device's seeded RNG.
///
/// Forward panics if the kernel is larger than the padded input (see
/// [`Conv2D::try_forward_checked`] for a typed error).
///
/// ```
/// # use dfdx::prelude::*;
/// use imle_conv::builders::Conv2D;
/// let dev: Cpu = Cpu::seed_from_u64(0);
/// // the ResNet stem: 7x7, stride 2, padding 3
/// let stem = dev.build_module::<Conv2D<3, 64, 7, 2, 3>, f32>();
/// let x: Tensor<(usize, Const<3>, usize, usize), f32, _> = dev.zeros_like(&(2, Const, 96, 96));
/// let y = stem.forward(x);
/// assert_eq!(*y.shape(), (2, Const::<64>, 48, 48));
/// ```
#[derive(Debug, Clone)]
pub struct Conv2D<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    E: Dtype,
    D: Storage<E>,
    const INPUT_GRAD: bool = true,
> {
    /// Kernel, `[O, I, K, K]`.
    pub weight: Tensor<Rank4<O, I, K, K>, E, D>,
    /// Bias, `[O]`.
    pub bias: Tensor<Rank1<O>, E, D>,
}

/// [`Conv2D`] without bias.
#[derive(Debug, Clone)]
pub struct UnbiasedConv2D<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    E: Dtype,
    D: Storage<E>,
    const INPUT_GRAD: bool = true,
> {
    /// Kernel, `[O, I, K, K]`.
    pub weight: Tensor<Rank4<O, I, K, K>, E, D>,
}

conv2d_module!(Conv2D, bias);
conv2d_module!(UnbiasedConv2D,);
