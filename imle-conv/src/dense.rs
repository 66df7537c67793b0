//! Fully connected layer: the functional op [`dense`] and the module [`Dense`], a drop-in
//! for dfdx's `Linear` (same fields, layout and initialisation) whose matrix products run
//! on the `gemm` 0.19 AVX-512 kernels (see the crate README for the measured speed-up).

use dfdx::nn::modules::{
    BuildModule, Module, ModuleVisitor, NonMutableModule, TensorCollection, TensorOptions,
};
use dfdx::nn::BuildOnDevice;
use dfdx::prelude::{Device, Dtype, Storage};
use dfdx::shapes::{Const, Dim, HasShape, Rank1, Rank2};
use dfdx::tensor::{Cpu, CpuError, PutTape, SplitTape, Tape, Tensor, TensorFromVec};
use num_traits::Float;
use rand::distributions::uniform::SampleUniform;
use rand::distributions::Uniform;

use crate::buffers::{out_vec, Buf};
use crate::gemm::{sgemm, sgemm_raw};
use crate::tape::read;
use rayon::prelude::*;

/// [`sgemm_cols`] split by rows instead: each thread multiplies its block of rows of `a`
/// with all of `b`, for products whose large operand is `a` (read in place) and whose `b`
/// is small enough for every thread to pack it.
#[allow(clippy::too_many_arguments)]
fn sgemm_rows(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    c: &mut [f32],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let rows = m.div_ceil(threads);
    let block = |(r0, c): (usize, &mut [f32])| {
        let mb = c.len() / n;
        sgemm(
            (mb, n, k),
            &a[r0 * a_rs..],
            (a_rs, a_cs),
            b,
            (b_rs, b_cs),
            c,
            n,
            accumulate,
            false,
        )
    };
    let c = &mut c[..m * n];
    if threads == 1 || rows >= m || m * k < 1024 {
        block((0, c));
        return;
    }
    c.par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(j, c)| block((j * rows, c)));
}

/// `c[m, n] (+)= a[m, k] · b[k, n]` (`c` row-major, dense) with the columns of `c` (and
/// `b`) split into one block per rayon thread, each a single-threaded GEMM: each thread
/// packs only its part of the large matrix `b`, which at the sizes of small-batch MLPs
/// scales better than `gemm`'s own threading. Every output element is still summed over
/// `k` in the same order, so the result does not depend on the number of threads.
#[allow(clippy::too_many_arguments)]
fn sgemm_cols(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    c: &mut [f32],
    accumulate: bool,
) {
    let threads = rayon::current_num_threads();
    // Blocks of whole microkernel widths (multiples of 16 columns).
    let cols = n.div_ceil(threads.max(1)).next_multiple_of(16);
    if threads <= 1 || cols >= n || m * k < 1024 {
        sgemm(
            (m, n, k),
            a,
            (a_rs, a_cs),
            b,
            (b_rs, b_cs),
            c,
            n,
            accumulate,
            false,
        );
        return;
    }
    assert!(c.len() >= m * n && m > 0 && k > 0);
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    /// The output's base pointer, shared by the threads that write disjoint columns.
    #[derive(Clone, Copy)]
    struct Out(*mut f32);
    // SAFETY: the blocks below write disjoint column ranges of `c`.
    unsafe impl Send for Out {}
    unsafe impl Sync for Out {}
    impl Out {
        // A method, so that the closure captures the whole (Send) struct, not the field.
        fn at(self, offset: usize) -> *mut f32 {
            self.0.wrapping_add(offset)
        }
    }
    let out = Out(c.as_mut_ptr());
    (0..n.div_ceil(cols)).into_par_iter().for_each(|j| {
        let (c0, nb) = (j * cols, cols.min(n - j * cols));
        // SAFETY: the asserts above bound every read of `a` and `b`; block j writes only
        // columns c0..c0 + nb of rows 0..m of `c`, inside `c` and disjoint from the others.
        unsafe {
            sgemm_raw(
                (m, nb, k),
                a.as_ptr(),
                (a_rs, a_cs),
                b.as_ptr().add(c0 * b_cs),
                (b_rs, b_cs),
                out.at(c0),
                n,
                accumulate,
                gemm::Parallelism::None,
            )
        }
    });
}

/// `y[b, o] = bias[o] + Σ_i x[b, i] · weight[o, i]` for a batch `x` of shape `(B, I)`.
///
/// The gradients of `x`, `weight` and `bias` are recorded on `x`'s tape (as dfdx's `Linear`
/// does). The matrix products run on rayon's threads when there are several; the result
/// does not depend on the number of threads.
///
/// ```
/// # use dfdx::prelude::*;
/// let dev: Cpu = Cpu::seed_from_u64(0);
/// let x = dev.tensor([[1.0f32, 2.0], [0.0, -1.0]]);
/// let w = dev.tensor([[1.0f32, 0.0], [1.0, 1.0], [0.0, 2.0]]);
/// let b = dev.tensor([0.5f32, 0.0, -1.0]);
/// let y = imle_conv::dense(x, &w, Some(&b)).unwrap();
/// assert_eq!(y.array(), [[1.5, 3.0, 3.0], [0.5, -1.0, -3.0]]);
/// ```
pub fn dense<B: Dim, const I: usize, const O: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(B, Const<I>), f32, Cpu, T>,
    weight: &Tensor<Rank2<O, I>, f32, Cpu>,
    bias: Option<&Tensor<Rank1<O>, f32, Cpu>>,
) -> Result<Tensor<(B, Const<O>), f32, Cpu, T>, CpuError> {
    dense_impl(x, weight, bias, true)
}

fn dense_impl<B: Dim, const I: usize, const O: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(B, Const<I>), f32, Cpu, T>,
    weight: &Tensor<Rank2<O, I>, f32, Cpu>,
    bias: Option<&Tensor<Rank1<O>, f32, Cpu>>,
    input_grad: bool,
) -> Result<Tensor<(B, Const<O>), f32, Cpu, T>, CpuError> {
    let batch = x.shape().0;
    let n = batch.size();
    let (xv, x) = read(x)?;
    let (x, mut tape) = x.split_tape();
    let mut wv = Buf::uninit(O * I);
    weight.copy_into(&mut wv);
    // outᵀ[O, n] (+)= weight[O, I] · xᵀ[I, n], then transposed: in this orientation `gemm`
    // reads the weights in place (contiguous along `I`) and packs only the small `x`; in
    // the other (out = x · weightᵀ) it gathers all of `weight` with a stride of `I` (14 % of
    // the VAE MLPs' time in a profile). Same sums in the same order (`gemm`'s depth blocks
    // depend on `I` alone): bit for bit the old result.
    let mut out_t = Buf::uninit(O * n);
    if let Some(b) = bias {
        let mut bv = vec![0.0; O];
        b.copy_into(&mut bv);
        for (row, &b) in out_t.chunks_exact_mut(n.max(1)).zip(&bv) {
            row.fill(b);
        }
    }
    sgemm_rows(
        (O, n, I),
        &wv,
        (I, 1),
        &xv,
        (1, I),
        &mut out_t,
        bias.is_some(),
    );
    let mut out = out_vec(x.device(), n * O)?;
    transpose::transpose(&out_t, &mut out, n, O);
    drop(out_t);
    let wv = if input_grad { wv } else { Buf::empty() };
    let out = x.device().try_tensor_from_vec(out, (batch, Const::<O>))?;
    if T::OWNS_TAPE {
        let (xg, wg, og) = (x.ghost(), weight.ghost(), out.ghost());
        let bg = bias.map(|b| b.ghost());
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&wg)?;
            grads.try_alloc_for(&og)?;
            let gout = std::mem::take(&mut **grads.get_or_alloc_mut(&og)?);
            if input_grad {
                grads.try_alloc_for(&xg)?;
                // gx[n, I] += gout[n, O] · weight[O, I]
                let gx = &mut **grads.get_or_alloc_mut(&xg)?;
                sgemm_cols((n, I, O), &gout, (O, 1), &wv, (I, 1), gx, true);
            }
            {
                // gw[O, I] += goutᵀ[O, n] · x[n, I]
                let gw = &mut **grads.get_or_alloc_mut(&wg)?;
                sgemm_cols((O, I, n), &gout, (1, O), &xv, (I, 1), gw, true);
            }
            if let Some(bg) = &bg {
                grads.try_alloc_for(bg)?;
                let gb = &mut **grads.get_or_alloc_mut(bg)?;
                for row in gout.chunks_exact(O) {
                    for (g, &r) in gb.iter_mut().zip(row) {
                        *g += r;
                    }
                }
            }
            **grads.get_or_alloc_mut(&og)? = gout;
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// Builder of [`Dense`].
pub mod builder {
    /// Builds a [`super::Dense`] from `I` to `O` features; `INPUT_GRAD = false`: see
    /// [`DenseOnData`].
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Dense<const I: usize, const O: usize, const INPUT_GRAD: bool = true>;
    /// A [`Dense`] that is the model's first layer: its input is data, so the backward
    /// pass computes no input gradient (the weight and bias gradients only), as PyTorch
    /// for an input without `requires_grad`. Same parameters and names as [`Dense`]. Put
    /// it only where nothing upstream is trained.
    pub type DenseOnData<const I: usize, const O: usize> = Dense<I, O, false>;
}

/// Fully connected layer `(batch, I)` → `(batch, O)`: `y = x · weightᵀ + bias`, the same
/// parameters as dfdx's `Linear` (`weight` `[O, I]`, `bias` `[O]`, both initialised uniform
/// in `±1/sqrt(I)` from the device's RNG), so a model switches by changing the builder and
/// its saved weights load unchanged. Only batched (rank-2) inputs on `Cpu`.
///
/// ```
/// # use dfdx::prelude::*;
/// use imle_conv::builders as cb;
/// let dev: Cpu = Cpu::seed_from_u64(0);
/// let mlp = dev.build_module::<(cb::Dense<784, 128>, ReLU, cb::Dense<128, 10>), f32>();
/// let x: Tensor<(usize, Const<784>), f32, _> = dev.zeros_like(&(32, Const));
/// let y = mlp.forward(x);
/// assert_eq!(*y.shape(), (32, Const::<10>));
/// ```
#[derive(Debug, Clone)]
pub struct Dense<
    const I: usize,
    const O: usize,
    E: Dtype,
    D: Storage<E>,
    const INPUT_GRAD: bool = true,
> {
    /// Weights, `[O, I]`.
    pub weight: Tensor<Rank2<O, I>, E, D>,
    /// Bias, `[O]`.
    pub bias: Tensor<Rank1<O>, E, D>,
}

impl<const I: usize, const O: usize, const G: bool, E, D> BuildOnDevice<D, E>
    for builder::Dense<I, O, G>
where
    E: Dtype,
    D: Device<E>,
    Dense<I, O, E, D, G>: BuildModule<D, E>,
{
    type Built = Dense<I, O, E, D, G>;
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

impl<const I: usize, const O: usize, E: Dtype, D: Storage<E>, const G: bool> NonMutableModule
    for Dense<I, O, E, D, G>
{
}

impl<const I: usize, const O: usize, E, D, const G: bool> TensorCollection<E, D>
    for Dense<I, O, E, D, G>
where
    E: Dtype + Float + SampleUniform,
    D: Device<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Dense<I, O, E2, D2, G>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // dfdx's `Linear` initialisation: U(-1/sqrt(I), 1/sqrt(I)) for weight and bias.
        macro_rules! init {
            () => {
                TensorOptions::reset_with(|t| {
                    let b: E = E::ONE / E::from_usize(I).unwrap().sqrt();
                    t.try_fill_with_distr(Uniform::new(-b, b))
                })
            };
        }
        visitor.visit_fields(
            (
                Self::tensor("weight", |s| &s.weight, |s| &mut s.weight, init!()),
                Self::tensor("bias", |s| &s.bias, |s| &mut s.bias, init!()),
            ),
            |(weight, bias)| Dense { weight, bias },
        )
    }
}

impl<const I: usize, const O: usize, const G: bool, B: Dim, T: Tape<f32, Cpu>>
    Module<Tensor<(B, Const<I>), f32, Cpu, T>> for Dense<I, O, f32, Cpu, G>
{
    type Output = Tensor<(B, Const<O>), f32, Cpu, T>;
    type Error = CpuError;
    fn try_forward(&self, x: Tensor<(B, Const<I>), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        dense_impl(x, &self.weight, Some(&self.bias), G)
    }
}
