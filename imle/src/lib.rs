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
//! * [`Imle`] — the estimator of Algorithm 1 / Eq. 9;
//! * [`baselines`] — STE, Gumbel-softmax, BB, DPO, SoftSub, L2X; [`loss`] — the
//!   score-function surrogate and the Fenchel-Young loss;
//! * [`Estimator`] — the one calling convention of all of them (`Imle::new(solver, ..)`,
//!   then `op.apply(θ)`), and [`Layer`], an estimator as a dfdx module in a tuple model;
//! * [`device`] — every op runs on `Cpu` and, with the `cuda` feature, on `Cuda`;
//! * [`op`] — the custom-op helper and the state the estimators are built on.
//!
//! ```
//! use dfdx::prelude::*;
//! use imle::prelude::*;
//!
//! // A linear layer whose output selects a 3-subset of 8 items, trained end to end.
//! let dev = Cpu::default();
//! let mut model = dev.build_module::<Linear<4, 8>, f32>();
//! let mut grads = model.alloc_grads();
//! let imle = Imle::new(TopK::new(3), Target::pid(1.0)?, Noise::sum_of_gamma(3.0, 1.0, 10)?).seed(0);
//! let x: Tensor<Rank2<16, 4>, f32, _> = dev.sample_normal();
//! let theta = model.forward(x.traced(grads));
//! let z = imle.apply(theta)?;
//! let wanted: Tensor<Rank2<16, 8>, f32, _> = dev.zeros();
//! grads = (z - wanted).square().mean().backward();
//! // ...then `optimizer.update(&mut model, &grads)` with any dfdx optimizer.
//! # Ok::<(), imle::Error>(())
//! ```
#![warn(missing_docs)]

pub mod baselines;
pub mod device;
pub mod error;
pub mod estimator;
pub mod exact;
pub mod fidelity;
pub mod implicit_mle;
pub mod layer;
pub mod loss;
pub mod noise;
pub mod op;
pub mod seed;
pub mod solver;
pub mod target;

pub use device::ImleDevice;
/// The dfdx this crate is built on (for notebooks and scripts that need the same version).
pub use dfdx;
pub use error::{Error, Result};
pub use estimator::Estimator;
pub use exact::KSubset;
pub use implicit_mle::{Imle, ImleSamples};
pub use layer::{ImleLayer, Layer};
pub use noise::Noise;
pub use target::Target;

/// Everything a model needs: `use imle::prelude::*;`.
pub mod prelude {
    pub use crate::baselines::{Blackbox, GumbelSoftmax, L2x, Perturbed, SoftSub, Ste};
    pub use crate::loss::{FenchelYoung, ScoreFunction};
    pub use crate::solver::{
        from_fn, Argmax, Assignment, GridShortestPath, MapSolver, SpanningTree, TopK,
    };
    pub use crate::{Estimator, Imle, ImleDevice, ImleLayer, Layer, Noise, Target};
}

/// The README's example compiles and runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
