//! Pooling: [`MaxPool2D`], [`MaxPool1D`], [`AdaptiveMaxPool2D`], and global max / mean
//! pooling over the spatial (or time) axes, [`GlobalMaxPool`] and [`GlobalAvgPool`].
//!
//! Max pooling pads with `-inf` (as PyTorch), so padding may be at most half the kernel.
//! The backward pass routes each output gradient to the first maximum of its window.

use dfdx::nn::modules::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::shapes::{Const, Dim, HasShape, Shape};
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, Tensor, TensorFromVec};
use rayon::prelude::*;

use crate::buffers::{out_vec, Buf};
use crate::error::{or_panic, ConvError};
use crate::geom::out_size;
use crate::geom::Geom;
use crate::tape::{read, record_backward};

/// Planes per parallel task: enough work to amortise rayon's overhead.
pub(crate) fn planes_per_task(plane: usize) -> usize {
    (16384 / plane.max(1)).max(1)
}

/// Max over each window of every `h x w` plane; `idx` gets the argmax within the plane.
fn max_pool_fwd(x: &[f32], g: &Geom, out: &mut [f32], idx: &mut [u32]) {
    let (hw, p) = (g.h * g.w, g.oh * g.ow);
    let n = planes_per_task(hw);
    out.par_chunks_mut(p * n)
        .zip(idx.par_chunks_mut(p * n))
        .zip(x.par_chunks(hw * n))
        .for_each(|((out, idx), x)| {
            for ((out, idx), x) in out.chunks_mut(p).zip(idx.chunks_mut(p)).zip(x.chunks(hw)) {
                for oy in 0..g.oh {
                    let y0 = (oy * g.sh).saturating_sub(g.ph);
                    let y1 = (oy * g.sh + g.kh).saturating_sub(g.ph).min(g.h);
                    for ox in 0..g.ow {
                        let x0 = (ox * g.sw).saturating_sub(g.pw);
                        let x1 = (ox * g.sw + g.kw).saturating_sub(g.pw).min(g.w);
                        let (mut best, mut at) = (f32::NEG_INFINITY, y0 * g.w + x0);
                        for iy in y0..y1 {
                            let row = &x[iy * g.w..(iy + 1) * g.w];
                            for (ix, &v) in row.iter().enumerate().take(x1).skip(x0) {
                                if v > best {
                                    best = v;
                                    at = iy * g.w + ix;
                                }
                            }
                        }
                        out[oy * g.ow + ox] = best;
                        idx[oy * g.ow + ox] = at as u32;
                    }
                }
            }
        });
}

/// Shared dfdx glue of max pooling: `x` is `planes` planes of `g.h x g.w`.
fn max_pool_op<Si: Shape, So: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<Si, f32, Cpu, T>,
    g: Geom,
    dst: So,
) -> Result<Tensor<So, f32, Cpu, T>, ConvError> {
    if g.sh == 0 || g.sw == 0 {
        return Err(ConvError::ZeroStride);
    }
    if 2 * g.ph > g.kh || 2 * g.pw > g.kw {
        return Err(ConvError::PaddingTooLarge {
            padding: g.ph.max(g.pw),
            kernel: g.kh.min(g.kw),
        });
    }
    let (xv, x) = read(x)?;
    let (x, mut tape) = x.split_tape();
    let mut out = out_vec(x.device(), dst.num_elements())?;
    let mut idx = Buf::<u32>::uninit(dst.num_elements());
    if !out.is_empty() {
        max_pool_fwd(&xv, &g, &mut out, &mut idx);
    }
    let out = x.device().try_tensor_from_vec(out, dst)?;
    if T::OWNS_TAPE {
        let (hw, p) = (g.h * g.w, g.oh * g.ow);
        record_backward(&mut tape, &x, &out, move |gout, gx| {
            if p > 0 {
                let n = planes_per_task(hw);
                gx.par_chunks_mut(hw * n)
                    .zip(gout.par_chunks(p * n).zip(idx.par_chunks(p * n)))
                    .for_each(|(gx, (go, idx))| {
                        for (gx, (go, idx)) in
                            gx.chunks_mut(hw).zip(go.chunks(p).zip(idx.chunks(p)))
                        {
                            for (&v, &i) in go.iter().zip(idx) {
                                gx[i as usize] += v;
                            }
                        }
                    });
            }
        });
    }
    Ok(out.put_tape(tape))
}

/// 2-d max pooling of `(batch, C, h, w)` with a `kh x kw` window, stride and `-inf`
/// padding. Errors on a zero stride, padding above half the kernel, or a kernel larger
/// than the padded input.
///
/// ```
/// # use dfdx::prelude::*;
/// let dev: Cpu = Default::default();
/// let x: Tensor<(usize, Const<2>, usize, usize), f32, _> = dev.ones_like(&(1, Const, 48, 48));
/// let y = imle_conv::max_pool2d(x, (3, 3), (2, 2), (1, 1)).unwrap();
/// assert_eq!(*y.shape(), (1, Const::<2>, 24, 24));
/// ```
pub fn max_pool2d<B: Dim, const C: usize, H: Dim, W: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor<(B, Const<C>, usize, usize), f32, Cpu, T>, ConvError> {
    let (b, _, h, w) = *x.shape();
    let (h, w) = (h.size(), w.size());
    let oh = out_size("height", h, kernel.0, stride.0, padding.0, padding.0)?;
    let ow = out_size("width", w, kernel.1, stride.1, padding.1, padding.1)?;
    let g = Geom {
        c: 1,
        h,
        w,
        kh: kernel.0,
        kw: kernel.1,
        sh: stride.0,
        sw: stride.1,
        ph: padding.0,
        pw: padding.1,
        oh,
        ow,
    };
    max_pool_op(x, g, (b, Const, oh, ow))
}

/// 1-d max pooling of `(batch, C, len)`; see [`max_pool2d`].
pub fn max_pool1d<B: Dim, const C: usize, L: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(B, Const<C>, L), f32, Cpu, T>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<Tensor<(B, Const<C>, usize), f32, Cpu, T>, ConvError> {
    let (b, _, l) = *x.shape();
    let l = l.size();
    let ol = out_size("length", l, kernel, stride, padding, padding)?;
    let g = Geom {
        c: 1,
        h: 1,
        w: l,
        kh: 1,
        kw: kernel,
        sh: 1,
        sw: stride,
        ph: 0,
        pw: padding,
        oh: 1,
        ow: ol,
    };
    max_pool_op(x, g, (b, Const, ol))
}

/// Max pooling of `(batch, C, h, w)` to `(batch, C, OH, OW)` where `h` and `w` are
/// multiples of `OH` and `OW` (window = stride = `h / OH` by `w / OW`); errors otherwise.
pub fn adaptive_max_pool2d<
    const OH: usize,
    const OW: usize,
    B: Dim,
    const C: usize,
    H: Dim,
    W: Dim,
    T: Tape<f32, Cpu>,
>(
    x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
) -> Result<Tensor<(B, Const<C>, Const<OH>, Const<OW>), f32, Cpu, T>, ConvError> {
    let (b, _, h, w) = *x.shape();
    let (h, w) = (h.size(), w.size());
    for (axis, input, output) in [("height", h, OH), ("width", w, OW)] {
        if output == 0 || input == 0 || input % output != 0 {
            return Err(ConvError::NotAMultiple {
                axis,
                input,
                output,
            });
        }
    }
    let (kh, kw) = (h / OH, w / OW);
    let g = Geom {
        c: 1,
        h,
        w,
        kh,
        kw,
        sh: kh,
        sw: kw,
        ph: 0,
        pw: 0,
        oh: OH,
        ow: OW,
    };
    max_pool_op(x, g, (b, Const, Const, Const))
}

/// Inputs that global pooling reduces: `(batch, C, h, w)` or `(batch, C, len)` to `(batch, C)`.
pub trait GlobalPoolInput: Shape {
    /// Batch dimension.
    type Batch: Dim;
    /// Channel dimension.
    type Chan: Dim;
    /// `(batch, channels, plane height, plane width)`.
    fn split(&self) -> (Self::Batch, Self::Chan, usize, usize);
}
impl<B: Dim, C: Dim, H: Dim, W: Dim> GlobalPoolInput for (B, C, H, W) {
    type Batch = B;
    type Chan = C;
    fn split(&self) -> (B, C, usize, usize) {
        (self.0, self.1, self.2.size(), self.3.size())
    }
}
impl<B: Dim, C: Dim, L: Dim> GlobalPoolInput for (B, C, L) {
    type Batch = B;
    type Chan = C;
    fn split(&self) -> (B, C, usize, usize) {
        (self.0, self.1, 1, self.2.size())
    }
}

/// Max over all spatial (or time) positions: `(batch, C, ...)` -> `(batch, C)`.
/// Errors if the spatial extent is empty.
pub fn global_max_pool<S: GlobalPoolInput, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
) -> Result<Tensor<(S::Batch, S::Chan), f32, Cpu, T>, ConvError> {
    let (b, c, h, w) = x.shape().split();
    if h * w == 0 {
        return Err(ConvError::Empty("spatial extent"));
    }
    let g = Geom {
        c: 1,
        h,
        w,
        kh: h,
        kw: w,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        oh: 1,
        ow: 1,
    };
    max_pool_op(x, g, (b, c))
}

/// Mean over all spatial (or time) positions: `(batch, C, ...)` -> `(batch, C)`.
/// Errors if the spatial extent is empty.
pub fn global_avg_pool<S: GlobalPoolInput, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
) -> Result<Tensor<(S::Batch, S::Chan), f32, Cpu, T>, ConvError> {
    let (b, c, h, w) = x.shape().split();
    let hw = h * w;
    if hw == 0 {
        return Err(ConvError::Empty("spatial extent"));
    }
    let (xv, x) = read(x)?;
    let (x, mut tape) = x.split_tape();
    let out: Vec<f32> = xv
        .par_chunks(hw)
        .map(|p| p.iter().sum::<f32>() / hw as f32)
        .collect();
    let out = x.device().try_tensor_from_vec(out, (b, c))?;
    if T::OWNS_TAPE {
        record_backward(&mut tape, &x, &out, move |gout, gx| {
            gx.par_chunks_mut(hw).zip(gout).for_each(|(gx, &v)| {
                let v = v / hw as f32;
                gx.iter_mut().for_each(|g| *g += v);
            });
        });
    }
    Ok(out.put_tape(tape))
}

macro_rules! pool_module {
    ($(#[$doc:meta])* $name:ident < $(const $p:ident : usize $(= $d:literal)?),* >) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<$(const $p: usize $(= $d)?),*>;
        impl<$(const $p: usize),*> ZeroSizedModule for $name<$($p),*> {}
        impl<$(const $p: usize),*> NonMutableModule for $name<$($p),*> {}
    };
}

pool_module!(
    /// 2-d max pooling module, `K`x`K` window, stride `S`, padding `P` (see [`max_pool2d`]).
    /// Forward panics on bad geometry; use [`max_pool2d`] for a typed error.
    ///
    /// ```
    /// # use dfdx::prelude::*;
    /// let dev: Cpu = Default::default();
    /// let x: Tensor<(usize, Const<2>, usize, usize), f32, _> = dev.ones_like(&(1, Const, 8, 8));
    /// let y = imle_conv::MaxPool2D::<2, 2>.forward(x);
    /// assert_eq!(*y.shape(), (1, Const::<2>, 4, 4));
    /// ```
    MaxPool2D<const K: usize, const S: usize = 1, const P: usize = 0>
);
pool_module!(
    /// 1-d max pooling module, window `K`, stride `S`, padding `P` (see [`max_pool1d`]).
    /// Forward panics on bad geometry; use [`max_pool1d`] for a typed error.
    MaxPool1D<const K: usize, const S: usize = 1, const P: usize = 0>
);
pool_module!(
    /// Max pooling to a fixed `OH`x`OW` output (see [`adaptive_max_pool2d`]). Forward
    /// panics if the input is not a multiple of the output size; use
    /// [`adaptive_max_pool2d`] for a typed error.
    AdaptiveMaxPool2D<const OH: usize, const OW: usize>
);
/// Global max pooling `(batch, C, ...)` -> `(batch, C)` (see [`global_max_pool`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalMaxPool;
impl ZeroSizedModule for GlobalMaxPool {}
impl NonMutableModule for GlobalMaxPool {}
/// Global mean pooling `(batch, C, ...)` -> `(batch, C)` (see [`global_avg_pool`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalAvgPool;
impl ZeroSizedModule for GlobalAvgPool {}
impl NonMutableModule for GlobalAvgPool {}

impl<
        const K: usize,
        const S: usize,
        const P: usize,
        B: Dim,
        const C: usize,
        H: Dim,
        W: Dim,
        T: Tape<f32, Cpu>,
    > Module<Tensor<(B, Const<C>, H, W), f32, Cpu, T>> for MaxPool2D<K, S, P>
{
    type Output = Tensor<(B, Const<C>, usize, usize), f32, Cpu, T>;
    type Error = CpuError;
    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        or_panic(max_pool2d(x, (K, K), (S, S), (P, P)))
    }
}

impl<
        const K: usize,
        const S: usize,
        const P: usize,
        B: Dim,
        const C: usize,
        L: Dim,
        T: Tape<f32, Cpu>,
    > Module<Tensor<(B, Const<C>, L), f32, Cpu, T>> for MaxPool1D<K, S, P>
{
    type Output = Tensor<(B, Const<C>, usize), f32, Cpu, T>;
    type Error = CpuError;
    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, L), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        or_panic(max_pool1d(x, K, S, P))
    }
}

impl<
        const OH: usize,
        const OW: usize,
        B: Dim,
        const C: usize,
        H: Dim,
        W: Dim,
        T: Tape<f32, Cpu>,
    > Module<Tensor<(B, Const<C>, H, W), f32, Cpu, T>> for AdaptiveMaxPool2D<OH, OW>
{
    type Output = Tensor<(B, Const<C>, Const<OH>, Const<OW>), f32, Cpu, T>;
    type Error = CpuError;
    fn try_forward(
        &self,
        x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        or_panic(adaptive_max_pool2d(x))
    }
}

macro_rules! global_module {
    ($name:ident, $f:ident) => {
        impl<B: Dim, const C: usize, H: Dim, W: Dim, T: Tape<f32, Cpu>>
            Module<Tensor<(B, Const<C>, H, W), f32, Cpu, T>> for $name
        {
            type Output = Tensor<(B, Const<C>), f32, Cpu, T>;
            type Error = CpuError;
            fn try_forward(
                &self,
                x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
            ) -> Result<Self::Output, CpuError> {
                or_panic($f(x))
            }
        }
        impl<B: Dim, const C: usize, L: Dim, T: Tape<f32, Cpu>>
            Module<Tensor<(B, Const<C>, L), f32, Cpu, T>> for $name
        {
            type Output = Tensor<(B, Const<C>), f32, Cpu, T>;
            type Error = CpuError;
            fn try_forward(
                &self,
                x: Tensor<(B, Const<C>, L), f32, Cpu, T>,
            ) -> Result<Self::Output, CpuError> {
                or_panic($f(x))
            }
        }
    };
}
global_module!(GlobalMaxPool, global_max_pool);
global_module!(GlobalAvgPool, global_avg_pool);
