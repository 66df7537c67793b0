//! The one error type of the crate: every invalid input is reported, never panicked on.

/// Everything that can go wrong when calling into `imle` with bad input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter vector (θ, a gradient, a cost) holds NaN or ±∞.
    #[error("{what} holds a non-finite value {value} at index {index}")]
    NonFinite {
        /// Which input (e.g. "theta", "upstream gradient").
        what: &'static str,
        /// Flat index of the first offending entry.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// `k` outside `1..=m` for a k-subset.
    #[error("k = {k} is invalid for m = {m} items (need 1 <= k <= m)")]
    InvalidK {
        /// Requested subset size.
        k: usize,
        /// Number of items.
        m: usize,
    },
    /// A shortest-path cost that is negative or not finite.
    #[error("cell {index} has cost {value}; shortest-path costs must be finite and non-negative")]
    InvalidCost {
        /// Flat (row-major) cell index.
        index: usize,
        /// The offending cost.
        value: f32,
    },
    /// A grid solver got a row whose length is not `rows * cols`.
    #[error("a {rows}x{cols} grid needs {} weights, got {got}", rows * cols)]
    GridSizeMismatch {
        /// Grid rows.
        rows: usize,
        /// Grid columns.
        cols: usize,
        /// Length received.
        got: usize,
    },
    /// Two lengths that must agree do not.
    #[error("length mismatch for {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// What was being compared.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The number of samples S of an estimator is zero.
    #[error("the number of samples S must be at least 1")]
    ZeroSamples,
    /// A configuration value outside its domain (e.g. a negative temperature).
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The value received.
        value: f64,
        /// What the value must satisfy.
        reason: &'static str,
    },
    /// A user-supplied solver or graph is malformed (message from the caller).
    #[error("invalid problem: {0}")]
    InvalidProblem(String),
    /// An error reported by the dfdx device.
    #[error("dfdx device error: {0}")]
    Device(String),
}

/// Shorthand for `std::result::Result<T, imle::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

impl From<dfdx::tensor::CpuError> for Error {
    fn from(e: dfdx::tensor::CpuError) -> Self {
        Error::Device(format!("{e:?}"))
    }
}

impl Error {
    /// An error of the dfdx device (any device's error type).
    pub(crate) fn device(e: impl std::fmt::Debug) -> Self {
        Error::Device(format!("{e:?}"))
    }
}

/// Returns an error naming the first non-finite entry of `values`.
pub fn check_finite(what: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Checks that a configuration value is finite and strictly positive.
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value,
            reason: "must be finite and > 0",
        })
    }
}
