//! Data sets of the reproduction.
//!
//! * [`mnist`] — MNIST for the discrete VAE of Sec. 6 (Figure 4): IDX loader (raw or
//!   gzip, fully validated), search path, and a checksum-verified downloader.

pub mod mnist;
