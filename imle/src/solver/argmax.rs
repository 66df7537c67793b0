use super::{check_state_len, MapSolver};
use crate::error::Result;

/// One-hot categorical MAP (Example 1): `z = e_{argmax_i θ_i}`, ties to the lowest index.
///
/// ```
/// use imle::solver::{Argmax, MapSolver};
/// let mut z = [0.0; 3];
/// Argmax.solve(&[0.1, 2.0, -1.0], &mut z)?;
/// assert_eq!(z, [0.0, 1.0, 0.0]);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Argmax;

impl MapSolver for Argmax {
    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        self.check_len(theta.len())?;
        check_state_len(theta, z)?;
        let mut best = 0;
        for (i, &t) in theta.iter().enumerate().skip(1) {
            if t > theta[best] {
                best = i;
            }
        }
        z.fill(0.0);
        z[best] = 1.0;
        Ok(())
    }
}
