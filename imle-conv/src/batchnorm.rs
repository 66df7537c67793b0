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
use rayon::prelude::*;

use crate::conv2d::read;
use crate::error::{or_panic, ConvError};

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
fn channel_sums(n_chan: usize, f: impl Fn(usize, usize) -> (f64, f64) + Sync) -> Vec<(f64, f64)> {
    (0..n_chan).into_par_iter().map(|c| f(c, n_chan)).collect()
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
            (Some(rv), Some(r.ghost()))
        }
        None => (None, None),
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
            let stats = channel_sums(C, |c, nc| {
                let planes = xv.chunks(hw).skip(c).step_by(nc);
                let s: f64 = planes
                    .clone()
                    .map(|p| p.iter().map(|&v| v as f64).sum::<f64>())
                    .sum();
                let m = s / n as f64;
                let q: f64 = planes
                    .map(|p| p.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>())
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
    let mut out = vec![0.0; xv.len()];
    out.par_chunks_mut(hw)
        .zip(xv.par_chunks(hw))
        .enumerate()
        .for_each(|(i, (o, xp))| {
            let (a, b) = (a[i % C], b[i % C]);
            match &rv {
                Some(rv) => {
                    let rp = &rv[i * hw..(i + 1) * hw];
                    for ((o, &x), &r) in o.iter_mut().zip(xp).zip(rp) {
                        let y = a * x + b + r;
                        *o = if relu { y.max(0.0) } else { y };
                    }
                }
                None => {
                    for (o, &x) in o.iter_mut().zip(xp) {
                        let y = a * x + b;
                        *o = if relu { y.max(0.0) } else { y };
                    }
                }
            }
        });
    let yv = if relu && T::OWNS_TAPE {
        out.clone()
    } else {
        Vec::new()
    };
    let out = x.device().try_tensor_from_vec(out, shape)?;

    if T::OWNS_TAPE {
        let (xg, og, sg, bg) = (x.ghost(), out.ghost(), scale.ghost(), bias.ghost());
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&xg)?;
            grads.try_alloc_for(&og)?;
            grads.try_alloc_for(&sg)?;
            grads.try_alloc_for(&bg)?;
            let gout = std::mem::take(&mut **grads.get_or_alloc_mut(&og)?);
            // the gradient reaching the affine output (through ReLU's mask)
            let masked = |i: usize, j: usize| -> f32 {
                if relu && yv[i * hw + j] <= 0.0 {
                    0.0
                } else {
                    gout[i * hw + j]
                }
            };
            // per channel: sum g, sum g * x_hat
            let sums = channel_sums(C, |c, nc| {
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                let (m, is) = (mean[c], inv_std[c]);
                for i in (c..xv.len() / hw).step_by(nc) {
                    let xp = &xv[i * hw..(i + 1) * hw];
                    let (mut s1, mut s2) = (0.0f32, 0.0f32);
                    for (j, &x) in xp.iter().enumerate() {
                        let g = masked(i, j);
                        s1 += g;
                        s2 += g * (x - m) * is;
                    }
                    sg += s1 as f64;
                    sgx += s2 as f64;
                }
                (sg, sgx)
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
            if let Some(rg) = &res_ghost {
                let gr: &mut Vec<f32> = grads.get_or_alloc_mut(rg)?;
                gr.par_chunks_mut(hw).enumerate().for_each(|(i, gr)| {
                    for (j, g) in gr.iter_mut().enumerate() {
                        *g += masked(i, j);
                    }
                });
            }
            let gx: &mut Vec<f32> = grads.get_or_alloc_mut(&xg)?;
            let nf = n as f32;
            gx.par_chunks_mut(hw)
                .zip(xv.par_chunks(hw))
                .enumerate()
                .for_each(|(i, (gx, xp))| {
                    let c = i % C;
                    let k = gamma[c] * inv_std[c];
                    if train {
                        let (mg, mgx) = (sums[c].0 as f32 / nf, sums[c].1 as f32 / nf);
                        for (j, (g, &x)) in gx.iter_mut().zip(xp).enumerate() {
                            let xh = (x - mean[c]) * inv_std[c];
                            *g += k * (masked(i, j) - mg - xh * mgx);
                        }
                    } else {
                        for (j, g) in gx.iter_mut().enumerate() {
                            *g += k * masked(i, j);
                        }
                    }
                });
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
