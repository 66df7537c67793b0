//! # imle — Implicit Maximum Likelihood Estimation for dfdx
//!
//! Backpropagation through discrete distributions and combinatorial solvers with
//! I-MLE (Niepert, Minervini & Franceschi, *Implicit MLE: Backpropagating Through Discrete
//! Exponential Family Distributions*, NeurIPS 2021).
//!
//! * [`noise`] — Gumbel and Sum-of-Gamma perturbations (Sec. 3.2, Eq. 13);
//! * [`solver`] — MAP solvers: argmax, top-k, grid shortest path, spanning tree,
//!   assignment, or your own ([`solver::from_fn`]);
//! * [`target`] — target distributions: PID (Eq. 10), combinatorial (Eq. 14), adaptive;
//! * [`Imle`] — the estimator of Algorithm 1 / Eq. 9 as a dfdx op;
//! * [`op`] — the custom-op helper the estimators are built on.
//!
//! ```
//! use dfdx::prelude::*;
//! use imle::{solver::TopK, Imle, Noise, Target};
//!
//! // A linear layer whose output selects a 3-subset of 8 items, trained end to end.
//! let dev = Cpu::default();
//! let mut model = dev.build_module::<Linear<4, 8>, f32>();
//! let mut grads = model.alloc_grads();
//! let imle = Imle::new(Target::pid(1.0)?, Noise::sum_of_gamma(3.0, 1.0, 10)?).seed(0);
//! let x: Tensor<Rank2<16, 4>, f32, _> = dev.sample_normal();
//! let theta = model.forward(x.traced(grads));
//! let z = imle.apply(theta, &TopK::new(3))?;
//! let wanted: Tensor<Rank2<16, 8>, f32, _> = dev.zeros();
//! grads = (z - wanted).square().mean().backward();
//! // ...then `optimizer.update(&mut model, &grads)` with any dfdx optimizer.
//! # Ok::<(), imle::Error>(())
//! ```
#![warn(missing_docs)]

pub mod baselines;
pub mod error;
pub mod estimator;
pub mod exact;
pub mod fidelity;
pub mod noise;
pub mod op;
pub mod solver;
pub mod target;

pub use error::{Error, Result};
pub use estimator::{Imle, ImleSamples};
pub use exact::KSubset;
pub use noise::Noise;
pub use target::Target;

/// The README's example compiles and runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
