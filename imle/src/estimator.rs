//! The one calling convention of every estimator: [`Estimator`].
//!
//! An estimator is built once with its solver and hyper-parameters (validated then), and
//! applied to θ as a dfdx op, as torch-imle's decorator and InferOpt's layers bind their
//! maximiser once:
//!
//! ```
//! use dfdx::prelude::*;
//! use imle::prelude::*;
//!
//! let dev = Cpu::default();
//! let imle = Imle::new(TopK::new(2), Target::pid(1.0)?, Noise::gumbel(1.0)?).seed(0);
//! let theta = dev.tensor([[0.5f32, -1.0, 2.0, 0.1]]);
//! let z = imle.apply(theta.leaky_trace())?;             // rows (B, M)
//! assert_eq!(z.as_vec().iter().sum::<f32>(), 2.0);
//! // The same estimator on plain slices, without dfdx:
//! let (z, saved) = imle.forward(&[0.5, -1.0, 2.0, 0.1], 4)?;
//! let grad_theta = imle.backward(&saved, &[1.0, 0.0, 0.0, 0.0])?;
//! assert_eq!((z.len(), grad_theta.len()), (4, 4));
//! # Ok::<(), imle::Error>(())
//! ```
//!
//! Every op works on tensors of any [`ImleDevice`] (`Cpu`, and `Cuda` with the `cuda`
//! feature) and any tape; [`crate::Layer`] puts an estimator inside a tuple model.

use crate::device::ImleDevice;
use crate::error::{Error, Result};
use crate::op::{custom_op, OpState};
use dfdx::shapes::{Const, Dim, HasShape, Shape};
use dfdx::tensor::{Tape, Tensor};
use dfdx::tensor_ops::ReshapeTo;

/// Rows `(B, M)` of θ or z on device `D` with tape `T`.
pub type Rows<B, M, D, T> = Tensor<(B, M), f32, D, T>;

/// `(B, N, M)`: N blocks of M values per example, on device `D` with tape `T`.
pub type Blocks<B, const N: usize, const M: usize, D, T> =
    Tensor<(B, Const<N>, Const<M>), f32, D, T>;

/// A gradient estimator for a discrete (or relaxed) layer `θ ↦ z`, applied row by row.
///
/// Implementors provide the slice-level [`Estimator::forward`] and
/// [`Estimator::backward`] (testable without dfdx); the dfdx ops [`Estimator::apply`],
/// [`Estimator::apply_rows`] and [`Estimator::apply_blocks`] are built on them. The
/// relaxations (Gumbel-softmax, SoftSub, L2X) override `apply` with dfdx ops that run on
/// the device itself.
pub trait Estimator: Clone + Send + Sync + 'static {
    /// What the forward pass keeps for the backward pass.
    type Saved: Send + Sync + 'static;

    /// Forward pass on a row-major batch `theta` with rows of length `m`: the output
    /// (same length) and what the backward pass needs. Draws its noise from the next
    /// call's seed.
    fn forward(&self, theta: &[f32], m: usize) -> Result<(Vec<f32>, Self::Saved)>;

    /// Backward pass: the estimate of `∂L/∂θ` (row-major, the length of θ) from the
    /// upstream gradient `∂L/∂out` (row-major, the length of the output).
    fn backward(&self, saved: &Self::Saved, grad_out: &[f32]) -> Result<Vec<f32>>;

    /// The op's shared state (seed, call counter, error slot).
    fn state(&self) -> &OpState;

    /// Mutable access to the op's state (for [`Estimator::seed`]).
    fn state_mut(&mut self) -> &mut OpState;

    /// Seeds all of the estimator's noise (and restarts its call counter): the same seed
    /// and the same sequence of calls give the same numbers.
    fn seed(mut self, seed: u64) -> Self {
        self.state_mut().reseed(seed);
        self
    }

    /// The error of the last failed backward pass (dfdx's `try_backward` then returns the
    /// device's generic error, which cannot carry it) or failed layer forward.
    fn take_backward_error(&self) -> Option<Error> {
        self.state().errors().take()
    }

    /// The op on rows `(B, M)`: output `(B, M)`, gradient from [`Estimator::backward`].
    /// θ is copied to the host once in the forward pass and the gradient back once in
    /// the backward pass (see [`crate::device`]).
    fn apply<B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<(B, M), f32, D, T>,
    ) -> Result<Tensor<(B, M), f32, D, T>> {
        let shape = *theta.shape();
        let (out, saved) = self.forward(&theta.as_vec(), shape.1.size())?;
        let this = self.clone();
        custom_op(
            theta,
            shape,
            out,
            move |g| this.backward(&saved, g),
            self.state().errors(),
        )
    }

    /// The op on a tensor of any shape read as rows of `row_len` values (row-major):
    /// reshapes to `(rows, row_len)`, applies [`Estimator::apply`], and reshapes back.
    /// For a batch of K × K grids, `(B, K, K)` with `row_len = K·K`.
    fn apply_rows<Sh: Shape, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Tensor<Sh, f32, D, T>,
        row_len: usize,
    ) -> Result<Tensor<Sh, f32, D, T>> {
        let shape = *theta.shape();
        let n = shape.num_elements();
        if row_len == 0 || !n.is_multiple_of(row_len) {
            return Err(Error::LengthMismatch {
                what: "tensor size (a multiple of row_len)",
                expected: row_len.max(1) * (n / row_len.max(1) + 1),
                got: n,
            });
        }
        let flat = theta
            .try_reshape_like(&(n / row_len, row_len))
            .map_err(Error::device)?;
        let z = self.apply(flat)?;
        z.try_reshape_like(&shape).map_err(Error::device)
    }

    /// The op on `(B, N, M)`: N independent blocks of M per example (e.g. the discrete
    /// VAE's 20 blocks of 20 logits), each block one row.
    fn apply_blocks<B: Dim, const N: usize, const M: usize, D: ImleDevice, T: Tape<f32, D>>(
        &self,
        theta: Blocks<B, N, M, D, T>,
    ) -> Result<Blocks<B, N, M, D, T>> {
        self.apply_rows(theta, M)
    }

    /// This estimator as a parameter-free dfdx module (see [`crate::Layer`]).
    fn into_layer(self) -> crate::Layer<Self> {
        crate::Layer::new(self)
    }
}
