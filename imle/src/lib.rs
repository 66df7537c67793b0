//! # imle — Implicit Maximum Likelihood Estimation for dfdx
#![warn(missing_docs)]

pub mod error;
pub mod solver;

pub use error::{Error, Result};
