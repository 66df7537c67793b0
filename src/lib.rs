//! # imle-paper — reproduction of the I-MLE paper's experiments
//!
//! Experiments, plots and output writers behind the `imle-paper` binary, for
//! *Implicit MLE: Backpropagating Through Discrete Exponential Family Distributions*
//! (Niepert, Minervini & Franceschi, NeurIPS 2021), on top of the [`imle`] crate.
//!
//! * [`experiments`] — one module per figure/table (`fig2`, `fig3`, ...), each an
//!   [`experiments::Experiment`] run by the one generic [`experiments::run`]; the
//!   notebooks call the same functions;
//! * [`run`] — profiles, the run context, shards and seed streams;
//! * [`train`] — the training loop, optimisers for any dfdx model, checkpoints;
//! * [`explain`] — learning to explain (Table 1): the selector/predictor and its runs;
//! * [`warcraft`] — shortest paths on Warcraft maps (Table 2): the networks and runs;
//! * [`spec`] — estimator specifications (serde) that build the `imle` estimators;
//! * [`data`] — the table of data sets, where they are looked for, checksums;
//! * [`stats`] — mean/std, median, KS test, grids;
//! * [`output`] — atomic JSON/CSV writing and the run record;
//! * [`plot`] — plotters figures (PNG, SVG, inline in evcxr).
//!
//! The `csv` feature (default) writes CSV tables with polars; notebooks build with
//! `default-features = false` to skip compiling polars, and the binary requires it.

pub mod data;
pub mod experiments;
#[cfg(feature = "csv")]
pub mod explain;
pub mod output;
pub mod plot;
pub mod run;
pub mod spec;
pub mod stats;
pub mod train;
pub mod vae;
pub mod warcraft;

/// polars, re-exported so that notebooks and users name its types through this crate
/// (`imle_paper::polars::prelude::*`) at the version the CSV files were written with.
#[cfg(feature = "csv")]
pub use polars;

/// The README's Rust example compiles and runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
