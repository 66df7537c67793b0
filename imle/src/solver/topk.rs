use super::{check_state_len, MapSolver};
use crate::error::{Error, Result};
use std::cmp::Ordering;

/// k-subset MAP (Example 2): `z_i = 1` for the `k` largest `θ_i`, else 0.
///
/// Expected O(m) selection (`select_nth_unstable_by`). Ties are broken towards the lower
/// index, so the result is a deterministic function of θ.
///
/// ```
/// use imle::solver::{MapSolver, TopK};
/// let mut z = [0.0; 5];
/// TopK::new(2).solve(&[0.3, -1.0, 2.0, 0.3, 0.1], &mut z)?;
/// assert_eq!(z, [1.0, 0.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopK {
    /// Number of ones in every state.
    pub k: usize,
}

impl TopK {
    /// A top-`k` solver (`k` is validated against `m` when solving).
    pub fn new(k: usize) -> Self {
        Self { k }
    }
}

thread_local! {
    /// Per-thread index buffer, reused across rows (no allocation per solve).
    static INDICES: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Total order "better first": larger θ, then lower index.
#[inline]
fn better(theta: &[f32], a: u32, b: u32) -> Ordering {
    theta[b as usize]
        .partial_cmp(&theta[a as usize])
        .unwrap_or(Ordering::Equal)
        .then(a.cmp(&b))
}

impl MapSolver for TopK {
    fn check_len(&self, m: usize) -> Result<()> {
        if self.k == 0 || self.k > m {
            return Err(Error::InvalidK { k: self.k, m });
        }
        Ok(())
    }

    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        let m = theta.len();
        self.check_len(m)?;
        check_state_len(theta, z)?;
        z.fill(0.0);
        if self.k == m {
            z.fill(1.0);
            return Ok(());
        }
        INDICES.with(|buf| {
            let mut idx = buf.borrow_mut();
            idx.clear();
            idx.extend(0..m as u32);
            idx.select_nth_unstable_by(self.k - 1, |&a, &b| better(theta, a, b));
            for &i in &idx[..self.k] {
                z[i as usize] = 1.0;
            }
        });
        Ok(())
    }
}
