//! MAP solvers: `z* = argmax_{z in C} <z, θ>` (Sec. 2, Eq. 2), batched and parallel.
//!
//! Every solver implements [`MapSolver`]: it solves one instance ([`MapSolver::solve`]) and,
//! through the provided [`MapSolver::solve_batch`], a row-major batch of instances in
//! parallel with rayon. Bring your own solver by implementing the trait or by wrapping a
//! closure with [`from_fn`].

mod argmax;
mod assignment;
mod grid;
mod spanning_tree;
mod topk;

pub use argmax::Argmax;
pub use assignment::Assignment;
pub use grid::{grid_shortest_path, GridShortestPath, NegativeCosts, Neighbourhood};
pub use spanning_tree::SpanningTree;
pub use topk::TopK;

use crate::error::{check_finite, Error, Result};
use rayon::prelude::*;
use std::sync::Arc;

/// A MAP oracle: returns a maximiser `z` of `<z, θ>` over the solver's feasible set.
///
/// `θ` and `z` have the same length `m` (one entry per variable of the state).
pub trait MapSolver: Send + Sync {
    /// Writes `argmax_z <z, θ>` into `z` (`z.len() == theta.len()`; every entry is written).
    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()>;

    /// Checks that instances of length `m` are valid for this solver before any work.
    fn check_len(&self, m: usize) -> Result<()> {
        if m == 0 {
            return Err(Error::LengthMismatch {
                what: "instance length m",
                expected: 1,
                got: 0,
            });
        }
        Ok(())
    }

    /// Solves every row of a row-major batch (`thetas.len() == batch * m`) into `out`,
    /// in parallel over rows. θ must be finite. On failure the error of the first failing
    /// row is returned (deterministically), and `out` is unspecified.
    fn solve_batch(&self, thetas: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        check_batch(self, thetas, m, out)?;
        // Keep rayon tasks coarse enough to amortise scheduling for tiny rows.
        let min_rows = (4096 / m).max(1);
        let results: Vec<Result<()>> = thetas
            .par_chunks(m)
            .zip(out.par_chunks_mut(m))
            .with_min_len(min_rows)
            .map(|(theta, z)| self.solve(theta, z))
            .collect();
        results.into_iter().collect()
    }
}

/// Checks that a state buffer `z` has the length of `theta` (every solver's `solve`).
pub(crate) fn check_state_len(theta: &[f32], z: &[f32]) -> Result<()> {
    if z.len() != theta.len() {
        return Err(Error::LengthMismatch {
            what: "state z (must match theta)",
            expected: theta.len(),
            got: z.len(),
        });
    }
    Ok(())
}

/// Shared validation of [`MapSolver::solve_batch`] arguments.
pub(crate) fn check_batch<S: MapSolver + ?Sized>(
    solver: &S,
    thetas: &[f32],
    m: usize,
    out: &[f32],
) -> Result<()> {
    solver.check_len(m)?;
    if !thetas.len().is_multiple_of(m) {
        return Err(Error::LengthMismatch {
            what: "batch length (a multiple of m)",
            expected: (thetas.len() / m + 1) * m,
            got: thetas.len(),
        });
    }
    if out.len() != thetas.len() {
        return Err(Error::LengthMismatch {
            what: "output batch",
            expected: thetas.len(),
            got: out.len(),
        });
    }
    check_finite("theta", thetas)
}

impl<S: MapSolver + ?Sized> MapSolver for Arc<S> {
    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        (**self).solve(theta, z)
    }
    fn check_len(&self, m: usize) -> Result<()> {
        (**self).check_len(m)
    }
    fn solve_batch(&self, thetas: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        (**self).solve_batch(thetas, m, out)
    }
}

impl<S: MapSolver + ?Sized> MapSolver for &S {
    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        (**self).solve(theta, z)
    }
    fn check_len(&self, m: usize) -> Result<()> {
        (**self).check_len(m)
    }
    fn solve_batch(&self, thetas: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        (**self).solve_batch(thetas, m, out)
    }
}

/// A user-supplied MAP oracle built from a closure; see [`from_fn`].
#[derive(Clone)]
pub struct FnSolver<F>(F);

/// Wraps a closure `|theta, z| -> Result<()>` as a [`MapSolver`].
///
/// ```
/// use imle::solver::{from_fn, MapSolver};
/// // MAP of "at most one item, or none": pick the best item if its score is positive.
/// let solver = from_fn(|theta: &[f32], z: &mut [f32]| {
///     z.fill(0.0);
///     let (i, best) = theta.iter().enumerate().fold((0, f32::MIN), |a, (i, &t)| if t > a.1 { (i, t) } else { a });
///     if best > 0.0 { z[i] = 1.0; }
///     Ok(())
/// });
/// let mut z = vec![0.0; 6];
/// solver.solve_batch(&[-1.0, 2.0, 0.5, -3.0, -2.0, -0.1], 3, &mut z)?;
/// assert_eq!(z, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
/// # Ok::<(), imle::Error>(())
/// ```
pub fn from_fn<F>(f: F) -> FnSolver<F>
where
    F: Fn(&[f32], &mut [f32]) -> Result<()> + Send + Sync,
{
    FnSolver(f)
}

impl<F> MapSolver for FnSolver<F>
where
    F: Fn(&[f32], &mut [f32]) -> Result<()> + Send + Sync,
{
    /// Checks that `z` has the length of θ, then calls the closure.
    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        check_state_len(theta, z)?;
        (self.0)(theta, z)
    }
}
