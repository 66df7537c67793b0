use super::{check_state_len, MapSolver};
use crate::error::{Error, Result};
use std::cmp::Ordering;

/// k-subset MAP (Example 2): `z_i = 1` for the `k` largest `θ_i`, else 0.
///
/// Expected O(m) selection (`select_nth_unstable_by`); rows of at most `SHORT_ROW` values
/// without NaN use rank counting instead (O(m²) branch-free comparisons, faster there).
/// Ties are broken towards the lower index, so the result is a deterministic function of
/// θ (the same on both paths).
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

/// Rows up to this length are solved by counting ranks.
pub const SHORT_ROW: usize = 64;

/// `z_i = 1` iff fewer than `k` entries are better than `θ_i` (larger, or equal with a
/// lower index). For rows without NaN (a strict total order, so exactly `k` ones).
fn top_k_by_rank(theta: &[f32], k: usize, z: &mut [f32]) {
    for (i, (&ti, zi)) in theta.iter().zip(z.iter_mut()).enumerate() {
        let (head, tail) = theta.split_at(i);
        let ahead = head.iter().map(|&tj| (tj >= ti) as usize).sum::<usize>()
            + tail[1..]
                .iter()
                .map(|&tj| (tj > ti) as usize)
                .sum::<usize>();
        *zi = if ahead < k { 1.0 } else { 0.0 };
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
        if self.k == m {
            z.fill(1.0);
            return Ok(());
        }
        if m <= SHORT_ROW && !theta.iter().any(|t| t.is_nan()) {
            top_k_by_rank(theta, self.k, z);
            return Ok(());
        }
        z.fill(0.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The `k` best by a full sort under the same order ("larger, then lower index").
    fn by_sort(theta: &[f32], k: usize) -> Vec<f32> {
        let mut idx: Vec<u32> = (0..theta.len() as u32).collect();
        idx.sort_by(|&a, &b| better(theta, a, b));
        let mut z = vec![0.0; theta.len()];
        for &i in &idx[..k] {
            z[i as usize] = 1.0;
        }
        z
    }

    #[test]
    fn rank_counting_and_selection_agree_with_a_sort_including_ties() {
        for case in 0..3000u64 {
            let r = crate::seed::splitmix64(case);
            let m = 1 + (r % 80) as usize; // both sides of SHORT_ROW
            let k = 1 + (crate::seed::splitmix64(r) % m as u64) as usize;
            // values from a small set, so that ties are common
            let theta: Vec<f32> = (0..m as u64)
                .map(|i| (crate::seed::mix(case, i, 7) % 5) as f32 - 2.0)
                .collect();
            let mut z = vec![0.5; m];
            TopK::new(k).solve(&theta, &mut z).unwrap();
            assert_eq!(z, by_sort(&theta, k), "m={m} k={k} θ={theta:?}");
        }
        // a NaN row takes the selection path and still yields k ones
        let mut z = [0.0; 4];
        TopK::new(2)
            .solve(&[f32::NAN, 1.0, 3.0, 2.0], &mut z)
            .unwrap();
        assert_eq!(z.iter().sum::<f32>(), 2.0);
    }
}
