//! Convolution layers for dfdx on stable Rust (see README).
