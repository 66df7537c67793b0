//! # imle-paper — reproduction of the I-MLE paper's experiments
//!
//! Experiments, plots and output writers behind the `imle-paper` binary, for
//! *Implicit MLE: Backpropagating Through Discrete Exponential Family Distributions*
//! (Niepert, Minervini & Franceschi, NeurIPS 2021), on top of the [`imle`] crate.
//!
//! * [`experiments`] — one module per figure/table (`fig2`, `fig3`, ...); each has a
//!   `Config` and a `run(&Config, &RunContext)`; the notebooks call the same functions;
//! * [`output`] — atomic JSON/CSV writing and the run record;
//! * [`plot`] — plotters figures (PNG, SVG, inline in evcxr).
//!
//! The `csv` feature (default) writes CSV tables with polars; notebooks build with
//! `default-features = false` to skip compiling polars, and the binary requires it.

pub mod data;
pub mod experiments;
pub mod output;
pub mod plot;
pub mod vae;

/// The README's Rust example compiles and runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
