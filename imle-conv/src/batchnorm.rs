//! Batch normalisation over the channels of `(batch, C, h, w)`: [`BatchNorm2D`] and the
//! fused [`BatchNormReLU2D`] (one pass over memory instead of two, and no intermediate
//! tensor), plus the functional [`batch_norm2d`] that can also add a residual and apply
//! ReLU in the same pass.
//!
//! Train mode (`forward_mut` with an `OwnedTape`, as dfdx's `BatchNorm2D`) normalises
//! with the batch statistics and updates the running ones with
//! `running = (1 - momentum) * running + momentum * batch` (the variance unbiased, as in
//! PyTorch and dfdx). Eval mode (`forward` with a `NoneTape`) normalises with the
//! running statistics and leaves them alone.

use dfdx::nn::modules::{
    BuildModule, Module, ModuleMut, ModuleVisitor, ScalarOptions, TensorCollection, TensorOptions,
};
use dfdx::nn::BuildOnDevice;
use dfdx::prelude::{Device, Dtype, Storage};
use dfdx::shapes::{Const, Dim, HasShape, Rank1};
use dfdx::tensor::{
    Cpu, CpuError, Merge, NoneTape, OwnedTape, PutTape, SplitTape, Tape, Tensor, TensorFromVec,
};
use multiversion::multiversion;
use rayon::prelude::*;

use crate::buffers::{advise_huge, out_vec, Buf};
use crate::error::{or_panic, ConvError};
use crate::tape::read;

/// Which statistics [`batch_norm2d`] normalises with.
#[derive(Debug)]
pub enum BnMode<'a, const C: usize> {
    /// Batch statistics; the running ones are updated with `momentum`.
    Train {
        /// Running mean, updated in place.
        running_mean: &'a mut Tensor<Rank1<C>, f32, Cpu>,
        /// Running (unbiased) variance, updated in place.
        running_var: &'a mut Tensor<Rank1<C>, f32, Cpu>,
        /// Weight of the new batch in the running average.
        momentum: f32,
    },
    /// The given running statistics, unchanged.
    Eval {
        /// Running mean.
        running_mean: &'a Tensor<Rank1<C>, f32, Cpu>,
        /// Running variance.
        running_var: &'a Tensor<Rank1<C>, f32, Cpu>,
    },
}

/// `f(c, n_chan)` for every channel, in parallel.
fn channel_sums<R: Send>(n_chan: usize, f: impl Fn(usize, usize) -> R + Sync) -> Vec<R> {
    (0..n_chan).into_par_iter().map(|c| f(c, n_chan)).collect()
}

/// Lanes of the f32 accumulators below: wide enough for the compiler to vectorise.
const LANES: usize = 16;

/// Sum of a slice, accumulated in `LANES` f32 lanes.
#[multiversion(targets = "simd")]
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Sum of squared deviations from `m`, accumulated in `LANES` f32 lanes.
#[multiversion(targets = "simd")]
fn lane_sq_dev(x: &[f32], m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|v| (v - m) * (v - m)).sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += (v - m) * (v - m);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// The gradient reaching the affine output: `g` where the forward output `y` was
/// positive (or everywhere without ReLU).
#[inline(always)]
fn mask<const RELU: bool>(g: f32, y: f32) -> f32 {
    if RELU && y.max(0.0) <= 0.0 {
        0.0
    } else {
        g
    }
}

/// One plane of the forward pass: `o = a * x + b (+ r)`, then ReLU.
#[multiversion(targets = "simd")]
fn plane_forward<const RELU: bool>(x: &[f32], r: &[f32], (a, b): (f32, f32), o: &mut [f32]) {
    if r.is_empty() {
        for (o, &x) in o.iter_mut().zip(x) {
            let y = a * x + b;
            *o = if RELU { y.max(0.0) } else { y };
        }
    } else {
        for ((o, &x), &r) in o.iter_mut().zip(x).zip(r) {
            let y = a * x + b + r;
            *o = if RELU { y.max(0.0) } else { y };
        }
    }
}

/// Per plane `(sum g', sum g' * (x - m))` where `g' = mask(g, a * x + b + r)`, in f32
/// lanes; `r` is the residual plane (or empty).
#[multiversion(targets = "simd")]
fn plane_grad_sums<const RELU: bool>(
    x: &[f32],
    g: &[f32],
    r: &[f32],
    (a, b, m): (f32, f32, f32),
) -> (f32, f32) {
    let (mut s1, mut s2) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (mut t1, mut t2) = (0.0f32, 0.0f32);
    if r.is_empty() {
        let (xc, gc) = (x.chunks_exact(LANES), g.chunks_exact(LANES));
        for (&x, &g) in xc.remainder().iter().zip(gc.remainder()) {
            let g = mask::<RELU>(g, a * x + b);
            t1 += g;
            t2 += g * (x - m);
        }
        for (xc, gc) in xc.zip(gc) {
            for l in 0..LANES {
                let g = mask::<RELU>(gc[l], a * xc[l] + b);
                s1[l] += g;
                s2[l] += g * (xc[l] - m);
            }
        }
    } else {
        let (xc, gc, rc) = (
            x.chunks_exact(LANES),
            g.chunks_exact(LANES),
            r.chunks_exact(LANES),
        );
        for ((&x, &g), &r) in xc
            .remainder()
            .iter()
            .zip(gc.remainder())
            .zip(rc.remainder())
        {
            let g = mask::<RELU>(g, a * x + b + r);
            t1 += g;
            t2 += g * (x - m);
        }
        for ((xc, gc), rc) in xc.zip(gc).zip(rc) {
            for l in 0..LANES {
                let g = mask::<RELU>(gc[l], a * xc[l] + b + rc[l]);
                s1[l] += g;
                s2[l] += g * (xc[l] - m);
            }
        }
    }
    (s1.iter().sum::<f32>() + t1, s2.iter().sum::<f32>() + t2)
}

/// Adds the gradients of one plane: `gx += k * g' - k * mg - c1 * (x - m)` and
/// `gr += g'` (if `gr` is not empty), `g'` as in [`plane_grad_sums`].
#[allow(clippy::too_many_arguments)]
#[multiversion(targets = "simd")]
fn plane_grad_apply<const RELU: bool>(
    x: &[f32],
    g: &[f32],
    r: &[f32],
    gx: &mut [f32],
    gr: &mut [f32],
    (a, b, m): (f32, f32, f32),
    (k, kmg, c1): (f32, f32, f32),
) {
    let res = !r.is_empty();
    for j in 0..x.len() {
        let xj = x[j];
        let y = if res { a * xj + b + r[j] } else { a * xj + b };
        let gm = mask::<RELU>(g[j], y);
        gx[j] += k * gm - kmg - c1 * (xj - m);
        if !gr.is_empty() {
            gr[j] += gm;
        }
    }
}

/// Normalises `x` of shape `(batch, C, h, w)` per channel, then `scale * x_hat + bias`,
/// plus `residual` if given, then ReLU if `relu`; all in one pass. Gradients of `x`,
/// `residual`, `scale` and `bias` go on the (merged) tape. Errors if training on a batch
/// with one value per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d<B: Dim, const C: usize, H: Dim, W: Dim, T: Tape<f32, Cpu> + Merge<T>>(
    x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    scale: &Tensor<Rank1<C>, f32, Cpu>,
    bias: &Tensor<Rank1<C>, f32, Cpu>,
    mode: BnMode<'_, C>,
    epsilon: f32,
    residual: Option<Tensor<(B, Const<C>, H, W), f32, Cpu, T>>,
    relu: bool,
) -> Result<Tensor<(B, Const<C>, H, W), f32, Cpu, T>, ConvError> {
    if relu {
        batch_norm2d_impl::<B, C, H, W, T, true>(x, scale, bias, mode, epsilon, residual)
    } else {
        batch_norm2d_impl::<B, C, H, W, T, false>(x, scale, bias, mode, epsilon, residual)
    }
}

fn batch_norm2d_impl<
    B: Dim,
    const C: usize,
    H: Dim,
    W: Dim,
    T: Tape<f32, Cpu> + Merge<T>,
    const RELU: bool,
>(
    x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
    scale: &Tensor<Rank1<C>, f32, Cpu>,
    bias: &Tensor<Rank1<C>, f32, Cpu>,
    mode: BnMode<'_, C>,
    epsilon: f32,
    residual: Option<Tensor<(B, Const<C>, H, W), f32, Cpu, T>>,
) -> Result<Tensor<(B, Const<C>, H, W), f32, Cpu, T>, ConvError> {
    let shape = *x.shape();
    let hw = shape.2.size() * shape.3.size();
    let n = shape.0.size() * hw;
    if n == 0 {
        return Err(ConvError::Empty("batch"));
    }
    let (xv, x) = read(x)?;
    let (x, mut tape) = x.split_tape();
    let (rv, res_ghost) = match residual {
        Some(r) => {
            let (rv, r) = read(r)?;
            let (r, rt) = r.split_tape();
            tape = tape.merge(rt);
            (rv, Some(r.ghost()))
        }
        None => (Buf::empty(), None),
    };
    let mut gamma = vec![0.0; C];
    scale.copy_into(&mut gamma);
    let mut beta = vec![0.0; C];
    bias.copy_into(&mut beta);

    // Per channel mean and inverse standard deviation.
    let train = matches!(mode, BnMode::Train { .. });
    let (mean, inv_std) = match mode {
        BnMode::Train {
            running_mean,
            running_var,
            momentum,
        } => {
            if n < 2 {
                return Err(ConvError::Empty(
                    "batch (training needs more than one value per channel)",
                ));
            }
            // Per plane: mean and squared deviations in f32 lanes (two passes over a
            // plane that stays in cache); planes combined in f64 (Chan et al.).
            let stats = channel_sums(C, |c, nc| {
                let planes: Vec<(f64, f64)> = xv
                    .chunks(hw)
                    .skip(c)
                    .step_by(nc)
                    .map(|p| {
                        let m = lane_sum(p) / hw as f32;
                        (m as f64, lane_sq_dev(p, m) as f64)
                    })
                    .collect();
                let m = planes.iter().map(|p| p.0).sum::<f64>() / planes.len() as f64;
                let q: f64 = planes
                    .iter()
                    .map(|&(pm, pq)| pq + hw as f64 * (pm - m) * (pm - m))
                    .sum();
                (m, q / n as f64)
            });
            let mut rm = vec![0.0; C];
            running_mean.copy_into(&mut rm);
            let mut rvar = vec![0.0; C];
            running_var.copy_into(&mut rvar);
            let unbias = n as f64 / (n as f64 - 1.0);
            for (c, &(m, v)) in stats.iter().enumerate() {
                rm[c] = (1.0 - momentum) * rm[c] + momentum * m as f32;
                rvar[c] = (1.0 - momentum) * rvar[c] + momentum * (v * unbias) as f32;
            }
            running_mean.copy_from(&rm);
            running_var.copy_from(&rvar);
            stats
                .iter()
                .map(|&(m, v)| (m as f32, (1.0 / (v + epsilon as f64).sqrt()) as f32))
                .unzip::<f32, f32, Vec<f32>, Vec<f32>>()
        }
        BnMode::Eval {
            running_mean,
            running_var,
        } => {
            let mut m = vec![0.0; C];
            running_mean.copy_into(&mut m);
            let mut v = vec![0.0; C];
            running_var.copy_into(&mut v);
            (m, v.iter().map(|&v| 1.0 / (v + epsilon).sqrt()).collect())
        }
    };
    // y = a * x + b (+ residual), then ReLU
    let a: Vec<f32> = (0..C).map(|c| gamma[c] * inv_std[c]).collect();
    let b: Vec<f32> = (0..C).map(|c| beta[c] - mean[c] * a[c]).collect();
    let mut out = out_vec(x.device(), xv.len())?;
    let planes = crate::pool::planes_per_task(hw);
    out.par_chunks_mut(hw * planes)
        .zip(xv.par_chunks(hw * planes))
        .enumerate()
        .for_each(|(t, (o, xp))| {
            for (i, (o, xp)) in o.chunks_mut(hw).zip(xp.chunks(hw)).enumerate() {
                let i = t * planes + i;
                let rp = if rv.is_empty() {
                    &[][..]
                } else {
                    &rv[i * hw..(i + 1) * hw]
                };
                plane_forward::<RELU>(xp, rp, (a[i % C], b[i % C]), o);
            }
        });
    let out = x.device().try_tensor_from_vec(out, shape)?;

    if T::OWNS_TAPE {
        let (xg, og, sg, bg) = (x.ghost(), out.ghost(), scale.ghost(), bias.ghost());
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&xg)?;
            grads.try_alloc_for(&og)?;
            grads.try_alloc_for(&sg)?;
            grads.try_alloc_for(&bg)?;
            let gout = std::mem::take(&mut **grads.get_or_alloc_mut(&og)?);
            let rplane = |i: usize| -> &[f32] {
                if rv.is_empty() {
                    &[]
                } else {
                    &rv[i * hw..(i + 1) * hw]
                }
            };
            // per channel: sum g', sum g' * (x - mean)
            let sums = channel_sums(C, |c, nc| {
                let (mut s1, mut s2) = (0.0f64, 0.0f64);
                for i in (c..xv.len() / hw).step_by(nc) {
                    let (t1, t2) = plane_grad_sums::<RELU>(
                        &xv[i * hw..(i + 1) * hw],
                        &gout[i * hw..(i + 1) * hw],
                        rplane(i),
                        (a[c], b[c], mean[c]),
                    );
                    s1 += t1 as f64;
                    s2 += t2 as f64;
                }
                (s1, s2 * inv_std[c] as f64)
            });
            {
                let gs: &mut Vec<f32> = grads.get_or_alloc_mut(&sg)?;
                for (g, s) in gs.iter_mut().zip(&sums) {
                    *g += s.1 as f32;
                }
                let gb: &mut Vec<f32> = grads.get_or_alloc_mut(&bg)?;
                for (g, s) in gb.iter_mut().zip(&sums) {
                    *g += s.0 as f32;
                }
            }
            let mut gr = match &res_ghost {
                Some(rg) => {
                    grads.try_alloc_for(rg)?;
                    std::mem::take(&mut **grads.get_or_alloc_mut(rg)?)
                }
                None => Vec::new(),
            };
            let mut gx = std::mem::take(&mut **grads.get_or_alloc_mut(&xg)?);
            advise_huge(&mut gx);
            advise_huge(&mut gr);
            // `residual` may be `x` itself (same gradient buffer, taken above as `gr`)
            let aliased = res_ghost.is_some() && gx.is_empty();
            if aliased {
                gx = std::mem::take(&mut gr);
                gr = vec![0.0; gx.len()];
            }
            let nf = n as f32;
            // per channel: gx = k * g' - k * mean(g') - k * is * mean(g' x_hat) * (x - m)
            let coef: Vec<(f32, f32, f32)> = (0..C)
                .map(|c| {
                    let k = gamma[c] * inv_std[c];
                    if train {
                        let (mg, mgx) = (sums[c].0 as f32 / nf, sums[c].1 as f32 / nf);
                        (k, k * mg, k * inv_std[c] * mgx)
                    } else {
                        (k, 0.0, 0.0)
                    }
                })
                .collect();
            let planes = crate::pool::planes_per_task(hw);
            let work = |t: usize, gx: &mut [f32], gr: &mut [f32]| {
                let np = gx.len() / hw;
                for q in 0..np {
                    let i = t * planes + q;
                    let c = i % C;
                    let gr = if gr.is_empty() {
                        &mut [][..]
                    } else {
                        &mut gr[q * hw..(q + 1) * hw]
                    };
                    plane_grad_apply::<RELU>(
                        &xv[i * hw..(i + 1) * hw],
                        &gout[i * hw..(i + 1) * hw],
                        rplane(i),
                        &mut gx[q * hw..(q + 1) * hw],
                        gr,
                        (a[c], b[c], mean[c]),
                        coef[c],
                    );
                }
            };
            if gr.is_empty() {
                gx.par_chunks_mut(hw * planes)
                    .enumerate()
                    .for_each(|(t, gx)| work(t, gx, &mut []));
            } else {
                gx.par_chunks_mut(hw * planes)
                    .zip(gr.par_chunks_mut(hw * planes))
                    .enumerate()
                    .for_each(|(t, (gx, gr))| work(t, gx, gr));
            }
            if aliased {
                gx.iter_mut().zip(&gr).for_each(|(g, r)| *g += r);
            } else if let Some(rg) = &res_ghost {
                **grads.get_or_alloc_mut(rg)? = gr;
            }
            **grads.get_or_alloc_mut(&xg)? = gx;
            **grads.get_or_alloc_mut(&og)? = gout;
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// Builders of the batch-norm modules.
pub mod builder {
    /// Builds a [`super::BatchNorm2D`] over `C` channels.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct BatchNorm2D<const C: usize>;
    /// Builds a [`super::BatchNormReLU2D`] over `C` channels.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct BatchNormReLU2D<const C: usize>;
}

macro_rules! bn_module {
    ($(#[$doc:meta])* $name:ident, $relu:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<const C: usize, E: Dtype, D: Storage<E>> {
            /// Affine scale (gamma), starts at 1.
            pub scale: Tensor<Rank1<C>, E, D>,
            /// Affine bias (beta), starts at 0.
            pub bias: Tensor<Rank1<C>, E, D>,
            /// Running mean, starts at 0; updated in train mode.
            pub running_mean: Tensor<Rank1<C>, E, D>,
            /// Running (unbiased) variance, starts at 1; updated in train mode.
            pub running_var: Tensor<Rank1<C>, E, D>,
            /// Added to the variance, default 1e-5.
            pub epsilon: f64,
            /// Weight of a new batch in the running statistics, default 0.1.
            pub momentum: f64,
        }

        impl<const C: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E> for builder::$name<C>
        where
            $name<C, E, D>: BuildModule<D, E>,
        {
            type Built = $name<C, E, D>;
            fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
                Self::Built::try_build(device)
            }
        }

        impl<const C: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for $name<C, E, D> {
            type To<E2: Dtype, D2: Device<E2>> = $name<C, E2, D2>;
            fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
                visitor: &mut V,
            ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
                visitor.visit_fields(
                    (
                        Self::tensor("scale", |s| &s.scale, |s| &mut s.scale, TensorOptions::reset_to_ones()),
                        Self::tensor("bias", |s| &s.bias, |s| &mut s.bias, TensorOptions::reset_to_zeros()),
                        Self::tensor(
                            "running_mean",
                            |s| &s.running_mean,
                            |s| &mut s.running_mean,
                            TensorOptions::detached(|t| t.try_fill_with_zeros()),
                        ),
                        Self::tensor(
                            "running_var",
                            |s| &s.running_var,
                            |s| &mut s.running_var,
                            TensorOptions::detached(|t| t.try_fill_with_ones()),
                        ),
                        Self::scalar("epsilon", |s| &s.epsilon, |s| &mut s.epsilon, ScalarOptions::from_default(1e-5)),
                        Self::scalar("momentum", |s| &s.momentum, |s| &mut s.momentum, ScalarOptions::from_default(0.1)),
                    ),
                    |(scale, bias, running_mean, running_var, epsilon, momentum)| $name {
                        scale,
                        bias,
                        running_mean,
                        running_var,
                        epsilon,
                        momentum,
                    },
                )
            }
        }

        impl<const C: usize> $name<C, f32, Cpu> {
            /// Train-mode forward (batch statistics, running statistics updated) with an
            /// optional residual added before the activation, reporting errors as [`ConvError`].
            pub fn try_forward_train<B: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu> + Merge<T>>(
                &mut self,
                x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
                residual: Option<Tensor<(B, Const<C>, H, W), f32, Cpu, T>>,
            ) -> Result<Tensor<(B, Const<C>, H, W), f32, Cpu, T>, ConvError> {
                let mode = BnMode::Train {
                    running_mean: &mut self.running_mean,
                    running_var: &mut self.running_var,
                    momentum: self.momentum as f32,
                };
                batch_norm2d(x, &self.scale, &self.bias, mode, self.epsilon as f32, residual, $relu)
            }
            /// Eval-mode forward (running statistics) with an optional residual, reporting
            /// errors as [`ConvError`]. Works with any tape (gradients flow in eval mode).
            pub fn try_forward_eval<B: Dim, H: Dim, W: Dim, T: Tape<f32, Cpu> + Merge<T>>(
                &self,
                x: Tensor<(B, Const<C>, H, W), f32, Cpu, T>,
                residual: Option<Tensor<(B, Const<C>, H, W), f32, Cpu, T>>,
            ) -> Result<Tensor<(B, Const<C>, H, W), f32, Cpu, T>, ConvError> {
                let mode = BnMode::Eval { running_mean: &self.running_mean, running_var: &self.running_var };
                batch_norm2d(x, &self.scale, &self.bias, mode, self.epsilon as f32, residual, $relu)
            }
        }

        /// Eval mode: normalises with the running statistics.
        impl<const C: usize, B: Dim, H: Dim, W: Dim> Module<Tensor<(B, Const<C>, H, W), f32, Cpu, NoneTape>>
            for $name<C, f32, Cpu>
        {
            type Output = Tensor<(B, Const<C>, H, W), f32, Cpu, NoneTape>;
            type Error = CpuError;
            fn try_forward(&self, x: Tensor<(B, Const<C>, H, W), f32, Cpu, NoneTape>) -> Result<Self::Output, CpuError> {
                or_panic(self.try_forward_eval(x, None))
            }
        }

        /// Train mode: normalises with the batch statistics and updates the running ones.
        /// Panics on a batch with a single value per channel (as PyTorch refuses it).
        impl<const C: usize, B: Dim, H: Dim, W: Dim> ModuleMut<Tensor<(B, Const<C>, H, W), f32, Cpu, OwnedTape<f32, Cpu>>>
            for $name<C, f32, Cpu>
        {
            type Output = Tensor<(B, Const<C>, H, W), f32, Cpu, OwnedTape<f32, Cpu>>;
            type Error = CpuError;
            fn try_forward_mut(
                &mut self,
                x: Tensor<(B, Const<C>, H, W), f32, Cpu, OwnedTape<f32, Cpu>>,
            ) -> Result<Self::Output, CpuError> {
                or_panic(self.try_forward_train(x, None))
            }
        }
    };
}

bn_module!(
    /// Batch normalisation over the `C` channels of `(batch, C, h, w)`, with running
    /// statistics, momentum, epsilon and an affine transform (same fields, defaults and
    /// save/load names as dfdx's `BatchNorm2D`).
    ///
    /// `forward_mut` with an `OwnedTape` trains, `forward` with a `NoneTape` evaluates;
    /// the other two combinations do not compile (as in dfdx). For eval mode with
    /// gradients use [`BatchNorm2D::try_forward_eval`].
    ///
    /// ```
    /// # use dfdx::prelude::*;
    /// use imle_conv::builders::BatchNorm2D;
    /// let dev: Cpu = Cpu::seed_from_u64(0);
    /// let mut bn = dev.build_module::<BatchNorm2D<3>, f32>();
    /// let x: Tensor<(usize, Const<3>, usize, usize), f32, _> = dev.sample_normal_like(&(4, Const, 5, 5));
    /// let y = bn.forward_mut(x.trace(bn.alloc_grads())); // train: running stats move
    /// let z = bn.forward(x);                             // eval: running stats used
    /// assert_ne!(bn.running_mean.array(), [0.0; 3]);
    /// ```
    BatchNorm2D,
    false
);
bn_module!(
    /// [`BatchNorm2D`] followed by ReLU, fused into one pass (same fields).
    BatchNormReLU2D,
    true
);
