//! A parameter-free dfdx module around any [`Estimator`], so that an estimator sits
//! inside a tuple model, as InferOpt's layers own their maximiser.
//!
//! ```
//! use dfdx::optim::{Optimizer, Sgd};
//! use dfdx::prelude::*;
//! use imle::prelude::*;
//!
//! let dev = Cpu::default();
//! let imle = Imle::new(TopK::new(3), Target::pid(1.0)?, Noise::sum_of_gamma(3.0, 1.0, 10)?);
//! let mut model = (
//!     dev.build_module::<Linear<4, 8>, f32>(),
//!     ImleLayer::new(imle.seed(0)),
//!     dev.build_module::<Linear<8, 2>, f32>(),
//! );
//! let mut opt = Sgd::new(&model, Default::default());
//! let x: Tensor<Rank2<16, 4>, f32, _> = dev.sample_normal();
//! let grads = model.alloc_grads();
//! let y = model.forward_mut(x.traced(grads));
//! let grads = y.square().mean().backward();
//! opt.update(&mut model, &grads).expect("the layer has no parameters to miss");
//! # Ok::<(), imle::Error>(())
//! ```
//!
//! Inputs `(B, M)` are rows; `(B, N, M)` are N blocks of M per example. dfdx's module
//! errors are the device's error type: when the estimator fails, `try_forward` returns
//! the device's generic error and the real [`crate::Error`] is kept for
//! [`Layer::take_error`] (`forward` panics with it).

use crate::device::ImleDevice;
use crate::error::Error;
use crate::estimator::Estimator;
use crate::implicit_mle::Imle;
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::nn::{Module, NonMutableModule};
use dfdx::shapes::{Const, Dim, Dtype};
use dfdx::tensor::{Tape, Tensor};
use dfdx::tensor_ops::Device;

/// An [`Estimator`] as a dfdx [`Module`] without parameters.
#[derive(Debug, Clone)]
pub struct Layer<E> {
    estimator: E,
}

/// I-MLE with MAP solver `S` as a layer.
pub type ImleLayer<S> = Layer<Imle<S>>;

impl<E: Estimator> Layer<E> {
    /// The layer of `estimator`.
    pub fn new(estimator: E) -> Self {
        Self { estimator }
    }

    /// The estimator.
    pub fn estimator(&self) -> &E {
        &self.estimator
    }

    /// Mutable access to the estimator (e.g. to anneal a temperature).
    pub fn estimator_mut(&mut self) -> &mut E {
        &mut self.estimator
    }

    /// The error of the last failed forward or backward pass.
    pub fn take_error(&self) -> Option<Error> {
        self.estimator.take_backward_error()
    }

    fn fail<D: ImleDevice>(&self, e: Error) -> D::Err {
        self.estimator.state().errors().record(e);
        D::op_failed()
    }
}

impl<E: Estimator, B: Dim, M: Dim, D: ImleDevice, T: Tape<f32, D>> Module<Tensor<(B, M), f32, D, T>>
    for Layer<E>
{
    type Output = Tensor<(B, M), f32, D, T>;
    type Error = D::Err;

    fn try_forward(&self, theta: Tensor<(B, M), f32, D, T>) -> Result<Self::Output, D::Err> {
        self.estimator.apply(theta).map_err(|e| self.fail::<D>(e))
    }

    fn forward(&self, theta: Tensor<(B, M), f32, D, T>) -> Self::Output {
        self.estimator
            .apply(theta)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl<E: Estimator, B: Dim, const N: usize, const M: usize, D: ImleDevice, T: Tape<f32, D>>
    Module<Tensor<(B, Const<N>, Const<M>), f32, D, T>> for Layer<E>
{
    type Output = Tensor<(B, Const<N>, Const<M>), f32, D, T>;
    type Error = D::Err;

    fn try_forward(
        &self,
        theta: Tensor<(B, Const<N>, Const<M>), f32, D, T>,
    ) -> Result<Self::Output, D::Err> {
        self.estimator
            .apply_blocks(theta)
            .map_err(|e| self.fail::<D>(e))
    }

    fn forward(&self, theta: Tensor<(B, Const<N>, Const<M>), f32, D, T>) -> Self::Output {
        self.estimator
            .apply_blocks(theta)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// `forward_mut` is `forward`: the layer behaves the same in training and inference
/// (its noise comes from its seed, not from `&mut self`).
impl<E> NonMutableModule for Layer<E> {}

/// The layer holds no tensors: optimisers, `alloc_grads`, `zero_grads` and the
/// safetensors/npz walkers see nothing. It cannot be rebuilt from nothing, so
/// `to_device` / `to_dtype` of a model holding one are not supported: build the model on
/// the device it runs on.
impl<Est: Estimator, E: Dtype, D: Device<E>> TensorCollection<E, D> for Layer<Est> {
    type To<E2: Dtype, D2: Device<E2>> = Layer<Est>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        _visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        Ok(None)
    }
}
