//! The input checks every baseline makes before it runs: θ finite and in whole rows, k
//! and the temperature valid, the noise and the upstream gradient of the right length.

use crate::device::ImleDevice;
use crate::error::{check_finite, Error, Result};
use dfdx::shapes::{Dim, HasShape, Shape};
use dfdx::tensor::{NoneTape, Tensor};
use dfdx::tensor_ops::{SumTo, TryMul};

/// Checks on the device that θ is finite (`Σ 0·θ` is 0, or NaN if any entry is not
/// finite: one scalar comes back to the host), and names the first bad entry if not.
pub(crate) fn check_finite_tensor<S: Shape, D: ImleDevice, T>(
    theta: &Tensor<S, f32, D, T>,
) -> Result<()> {
    let probe = theta
        .retaped::<NoneTape>()
        .try_mul(0.0f32)
        .map_err(Error::device)?
        .try_sum::<(), _>()
        .map_err(Error::device)?
        .as_vec();
    if probe.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        check_finite("theta", &theta.as_vec())
    }
}

/// Checks the shape of θ for a relaxation: rows of length `m >= 1`.
pub(crate) fn check_relaxation_input<B: Dim, M: Dim, D: ImleDevice, T>(
    theta: &Tensor<(B, M), f32, D, T>,
) -> Result<usize> {
    let m = theta.shape().1.size();
    if m == 0 {
        return Err(Error::LengthMismatch {
            what: "instance length m",
            expected: 1,
            got: 0,
        });
    }
    check_finite_tensor(theta)?;
    Ok(m)
}

/// Validates a row-major batch of θ with rows of length `m`: `m >= 1`, whole rows, finite.
pub(crate) fn check_rows(theta: &[f32], m: usize) -> Result<()> {
    if m == 0 {
        return Err(Error::LengthMismatch {
            what: "instance length m",
            expected: 1,
            got: 0,
        });
    }
    if !theta.len().is_multiple_of(m) {
        return Err(Error::LengthMismatch {
            what: "theta (a multiple of m)",
            expected: (theta.len() / m + 1) * m,
            got: theta.len(),
        });
    }
    check_finite("theta", theta)
}

/// Checks that a noise buffer has the expected length.
pub(crate) fn check_noise_len(noise: &[f32], expected: usize) -> Result<()> {
    if noise.len() != expected {
        return Err(Error::LengthMismatch {
            what: "noise",
            expected,
            got: noise.len(),
        });
    }
    check_finite("noise", noise)
}

/// Checks an upstream gradient: the right length and finite.
pub(crate) fn check_upstream(g: &[f32], expected: usize) -> Result<()> {
    if g.len() != expected {
        return Err(Error::LengthMismatch {
            what: "upstream gradient",
            expected,
            got: g.len(),
        });
    }
    check_finite("upstream gradient", g)
}

/// Checks that a temperature-like parameter is finite and > 0.
pub(crate) fn check_temperature(name: &'static str, t: f32) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value: t as f64,
            reason: "must be finite and > 0",
        })
    }
}

/// Checks `1 <= k <= m`.
pub(crate) fn check_k(k: usize, m: usize) -> Result<()> {
    if k == 0 || k > m {
        Err(Error::InvalidK { k, m })
    } else {
        Ok(())
    }
}
