//! Maximum-weight bipartite matchings (one of the combinatorial families named in Theorem 1
//! of Niepert et al., NeurIPS 2021).

use super::{check_state_len, MapSolver};
use crate::error::{check_finite, Error, Result};
use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Bits of resolution of the integer weights handed to the Hungarian algorithm: the
/// largest `|θ|` is scaled to at most `2^SCALE_BITS`.
const SCALE_BITS: i32 = 32;

/// Maximum-weight matching of a `rows x cols` weight matrix θ (row-major, `rows <= cols`)
/// that matches every row to a distinct column; `z` is the row-major 0/1 assignment
/// matrix (exactly one 1 per row, at most one per column; a permutation matrix when
/// square).
///
/// Matchings are one of the exponential-family structures of Theorem 1 of Niepert et al.
/// (NeurIPS 2021). Solved by the Hungarian (Kuhn–Munkres) algorithm of the `pathfinding`
/// crate in `O(rows² cols)`.
///
/// # Precision
///
/// That algorithm needs exact (integer) arithmetic, so θ is scaled by a power of two that
/// maps the largest `|θ|` into `(2^31, 2^32]` and rounded to `i64` (the scaling itself is
/// exact, and the labels and sums of the algorithm stay far from `i64` overflow). The result is exactly optimal for these rounded weights, hence optimal for θ up
/// to `rows * max|θ| * 2^-32` in objective: only near-ties closer than that can be
/// resolved differently from an exact solver (deterministically). Entries smaller than
/// `max|θ| * 2^-33` count as zero.
///
/// ```
/// use imle::solver::{Assignment, MapSolver};
/// let theta = [4.0, 3.0, 0.0,
///              2.0, 1.0, 1.0,
///              0.0, 6.0, 3.0];
/// let mut z = [0.0; 9];
/// Assignment::new(3).solve(&theta, &mut z)?;
/// assert_eq!(z, [1.0, 0.0, 0.0,
///                0.0, 0.0, 1.0,
///                0.0, 1.0, 0.0]); // 4 + 1 + 6 = 11
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Assignment {
    rows: usize,
    cols: usize,
}

impl Assignment {
    /// Perfect matchings of an `n x n` matrix (θ has `n * n` entries).
    ///
    /// ```
    /// use imle::solver::{Assignment, MapSolver};
    /// assert!(Assignment::new(4).check_len(16).is_ok());
    /// ```
    pub fn new(n: usize) -> Self {
        Self { rows: n, cols: n }
    }

    /// Matchings of every row of a `rows x cols` matrix to distinct columns.
    ///
    /// Returns [`Error::InvalidProblem`] unless `1 <= rows <= cols`.
    ///
    /// ```
    /// use imle::solver::{Assignment, MapSolver};
    /// let solver = Assignment::rect(2, 3)?;
    /// let mut z = [0.0; 6];
    /// solver.solve(&[5.0, 4.0, 0.0,
    ///                5.0, 1.0, 0.0], &mut z)?;
    /// assert_eq!(z, [0.0, 1.0, 0.0,
    ///                1.0, 0.0, 0.0]);
    /// assert!(Assignment::rect(3, 2).is_err());
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn rect(rows: usize, cols: usize) -> Result<Self> {
        let s = Self { rows, cols };
        s.check_shape()?;
        Ok(s)
    }

    /// Number of rows (each is matched).
    ///
    /// ```
    /// assert_eq!(imle::solver::Assignment::rect(2, 3)?.rows(), 2);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    ///
    /// ```
    /// assert_eq!(imle::solver::Assignment::rect(2, 3)?.cols(), 3);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn check_shape(&self) -> Result<()> {
        if self.rows == 0 || self.rows > self.cols || self.rows.checked_mul(self.cols).is_none() {
            return Err(Error::InvalidProblem(format!(
                "an assignment needs 1 <= rows <= cols, got {}x{}",
                self.rows, self.cols
            )));
        }
        Ok(())
    }
}

impl MapSolver for Assignment {
    fn check_len(&self, m: usize) -> Result<()> {
        self.check_shape()?;
        if m != self.rows * self.cols {
            return Err(Error::LengthMismatch {
                what: "assignment weights (rows * cols)",
                expected: self.rows * self.cols,
                got: m,
            });
        }
        Ok(())
    }

    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        self.check_len(theta.len())?;
        check_state_len(theta, z)?;
        // Non-finite weights would make the Hungarian algorithm loop or overflow.
        check_finite("theta", theta)?;
        let max_abs = theta.iter().fold(0.0f32, |a, t| a.max(t.abs()));
        let scale = if max_abs > 0.0 {
            // 2^(SCALE_BITS - e) with 2^(e-1) < max_abs <= 2^e.
            let e = f64::from(max_abs).log2().ceil() as i32;
            2f64.powi(SCALE_BITS - e)
        } else {
            1.0
        };
        let weights: Vec<i64> = theta
            .iter()
            .map(|&t| (f64::from(t) * scale).round() as i64)
            .collect();
        let weights = Matrix::from_vec(self.rows, self.cols, weights)
            .map_err(|e| Error::InvalidProblem(format!("assignment matrix: {e}")))?;
        let (_, columns) = kuhn_munkres(&weights);
        z.fill(0.0);
        for (row, col) in columns.into_iter().enumerate() {
            z[row * self.cols + col] = 1.0;
        }
        Ok(())
    }
}
