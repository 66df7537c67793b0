//! 1-d convolution over `(batch, channels, length)`: the functional op [`conv1d`] and the
//! module [`Conv1D`], with explicit or "same" padding.

use dfdx::nn::modules::{
    BuildModule, Module, ModuleVisitor, NonMutableModule, TensorCollection, TensorOptions,
};
use dfdx::nn::BuildOnDevice;
use dfdx::prelude::{Device, Dtype, Storage};
use dfdx::shapes::{Const, Dim, HasShape, Rank1, Rank3};
use dfdx::tensor::{Cpu, CpuError, Tape, Tensor};
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::distributions::Uniform;

use crate::conv2d::conv_op;
use crate::error::{or_panic, ConvError};
use crate::geom::out_size;
use crate::geom::Geom;

/// Zero padding of a 1-d convolution or pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding1D {
    /// `p` zeros on each side.
    Explicit(usize),
    /// Output length `ceil(len / stride)`; the zeros needed go half before, the rest after
    /// (TensorFlow's "SAME"; for stride 1 the same as PyTorch's `padding="same"`).
    Same,
}

impl Padding1D {
    /// `(before, after)` padding for an input of `len` and a kernel of `k` with stride `s`.
    pub fn amounts(self, len: usize, k: usize, s: usize) -> (usize, usize) {
        match self {
            Padding1D::Explicit(p) => (p, p),
            Padding1D::Same => {
                let out = len.div_ceil(s.max(1));
                let total = ((out.max(1) - 1) * s + k).saturating_sub(len);
                (total / 2, total - total / 2)
            }
        }
    }
}

/// Type-level padding for [`Conv1D`]: [`Pad<P>`] or [`Same`].
pub trait PaddingMode: 'static + Copy + Default + std::fmt::Debug + Send + Sync {
    /// The runtime value.
    const PADDING: Padding1D;
}
/// `P` zeros on each side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pad<const P: usize>;
/// "Same" padding, see [`Padding1D::Same`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Same;
impl<const P: usize> PaddingMode for Pad<P> {
    const PADDING: Padding1D = Padding1D::Explicit(P);
}
impl PaddingMode for Same {
    const PADDING: Padding1D = Padding1D::Same;
}

/// 1-d convolution (cross-correlation) of `(batch, C, len)`, dilation 1. Gradients of `x`,
/// `weight` and `bias` go on `x`'s tape. Errors if the stride is 0 or the kernel is larger
/// than the padded input.
///
/// ```
/// # use dfdx::prelude::*;
/// use imle_conv::{conv1d, Padding1D};
/// let dev: Cpu = Cpu::seed_from_u64(0);
/// let x: Tensor<(usize, Const<4>, usize), f32, _> = dev.sample_normal_like(&(2, Const, 10));
/// let w: Tensor<Rank3<6, 4, 3>, f32, _> = dev.sample_normal();
/// let y = conv1d(x, &w, None, 1, Padding1D::Same).unwrap();
/// assert_eq!(*y.shape(), (2, Const::<6>, 10));
/// ```
pub fn conv1d<B: Dim, const C: usize, L: Dim, const O: usize, const K: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(B, Const<C>, L), f32, Cpu, T>,
    weight: &Tensor<Rank3<O, C, K>, f32, Cpu>,
    bias: Option<&Tensor<Rank1<O>, f32, Cpu>>,
    stride: usize,
    padding: Padding1D,
) -> Result<Tensor<(B, Const<O>, usize), f32, Cpu, T>, ConvError> {
    conv1d_impl(x, weight, bias, stride, padding, true)
}

fn conv1d_impl<
    B: Dim,
    const C: usize,
    L: Dim,
    const O: usize,
    const K: usize,
    T: Tape<f32, Cpu>,
>(
    x: Tensor<(B, Const<C>, L), f32, Cpu, T>,
    weight: &Tensor<Rank3<O, C, K>, f32, Cpu>,
    bias: Option<&Tensor<Rank1<O>, f32, Cpu>>,
    stride: usize,
    padding: Padding1D,
    input_grad: bool,
) -> Result<Tensor<(B, Const<O>, usize), f32, Cpu, T>, ConvError> {
    let (b, _, l) = *x.shape();
    let l = l.size();
    if stride == 0 {
        return Err(ConvError::ZeroStride);
    }
    let (before, after) = padding.amounts(l, K, stride);
    let ol = out_size("length", l, K, stride, before, after)?;
    let g = Geom {
        c: C,
        h: 1,
        w: l,
        kh: 1,
        kw: K,
        sh: 1,
        sw: stride,
        ph: 0,
        pw: before,
        oh: 1,
        ow: ol,
    };
    Ok(conv_op(x, weight, bias, O, g, (b, Const, ol), input_grad)?)
}

/// Builder of [`Conv1D`].
pub mod builder {
    use super::{Pad, PaddingMode};
    /// Builds a [`super::Conv1D`]: `I` in channels, `O` out channels, kernel `K`, stride
    /// `S`, padding `P` ([`Pad<N>`](super::Pad) or [`Same`](super::Same));
    /// `INPUT_GRAD = false`: see [`Conv1DOnData`].
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Conv1D<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        P: PaddingMode = Pad<0>,
        const INPUT_GRAD: bool = true,
    >(core::marker::PhantomData<P>);
    /// A [`Conv1D`] that is the model's first layer (e.g. over frozen embeddings): no
    /// input gradient in the backward pass, the weight and bias gradients only (PyTorch
    /// skips it likewise for an input that does not require grad). Same parameters and
    /// names as [`Conv1D`]. Put it only where nothing upstream is trained.
    pub type Conv1DOnData<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        P = Pad<0>,
    > = Conv1D<I, O, K, S, P, false>;
}

/// 1-d convolution layer with bias over `(batch, I, len)` -> `(batch, O, out_len)`; with
/// `INPUT_GRAD = false` no input gradient (built by [`builder::Conv1DOnData`]).
/// Parameters start uniform in `±1/sqrt(I*K)` (PyTorch's default) from the device's
/// seeded RNG.
///
/// Forward panics if the kernel is larger than the padded input (see
/// [`Conv1D::try_forward_checked`] for a typed error).
///
/// ```
/// # use dfdx::prelude::*;
/// use imle_conv::{builders::Conv1D, Same};
/// let dev: Cpu = Cpu::seed_from_u64(0);
/// let m = dev.build_module::<(Conv1D<8, 16, 3, 1, Same>, ReLU), f32>();
/// let x: Tensor<(usize, Const<8>, usize), f32, _> = dev.zeros_like(&(4, Const, 35));
/// assert_eq!(*m.forward(x).shape(), (4, Const::<16>, 35));
/// ```
#[derive(Debug, Clone)]
pub struct Conv1D<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    P,
    E: Dtype,
    D: Storage<E>,
    const INPUT_GRAD: bool = true,
> {
    /// Kernel, `[O, I, K]`.
    pub weight: Tensor<Rank3<O, I, K>, E, D>,
    /// Bias, `[O]`.
    pub bias: Tensor<Rank1<O>, E, D>,
    /// Padding mode (zero-sized).
    pub padding: P,
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        P: PaddingMode,
        const G: bool,
        E,
        D,
    > BuildOnDevice<D, E> for builder::Conv1D<I, O, K, S, P, G>
where
    E: Dtype,
    D: Device<E>,
    Conv1D<I, O, K, S, P, E, D, G>: BuildModule<D, E>,
{
    type Built = Conv1D<I, O, K, S, P, E, D, G>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        P,
        E: Dtype,
        D: Storage<E>,
        const G: bool,
    > NonMutableModule for Conv1D<I, O, K, S, P, E, D, G>
{
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        P: PaddingMode,
        const G: bool,
        E,
        D,
    > TensorCollection<E, D> for Conv1D<I, O, K, S, P, E, D, G>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Conv1D<I, O, K, S, P, E2, D2, G>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_with(|t| {
                        let b: E = E::ONE / E::from_usize(I * K).unwrap().sqrt();
                        t.try_fill_with_distr(Uniform::new(-b, b))
                    }),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_with(|t| {
                        let b: E = E::ONE / E::from_usize(I * K).unwrap().sqrt();
                        t.try_fill_with_distr(Uniform::new(-b, b))
                    }),
                ),
            ),
            |(weight, bias)| Conv1D {
                weight,
                bias,
                padding: P::default(),
            },
        )
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        P: PaddingMode,
        const G: bool,
    > Conv1D<I, O, K, S, P, f32, Cpu, G>
{
    /// Like `Module::try_forward`, with bad geometry reported as a [`ConvError`].
    pub fn try_forward_checked<B: Dim, L: Dim, T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(B, Const<I>, L), f32, Cpu, T>,
    ) -> Result<Tensor<(B, Const<O>, usize), f32, Cpu, T>, ConvError> {
        conv1d_impl(x, &self.weight, Some(&self.bias), S, P::PADDING, G)
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        P: PaddingMode,
        const G: bool,
        B: Dim,
        L: Dim,
        T: Tape<f32, Cpu>,
    > Module<Tensor<(B, Const<I>, L), f32, Cpu, T>> for Conv1D<I, O, K, S, P, f32, Cpu, G>
{
    type Output = Tensor<(B, Const<O>, usize), f32, Cpu, T>;
    type Error = CpuError;
    fn try_forward(
        &self,
        x: Tensor<(B, Const<I>, L), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        or_panic(self.try_forward_checked(x))
    }
}
