//! How good predicted paths are: validity, accuracy (optimal in true costs), exact match
//! and regret; and the per-channel statistics that normalise the maps.

use super::*;

/// The metrics of predicted paths against the truth.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PathMetrics {
    /// Maps compared.
    pub maps: usize,
    /// Share whose prediction is a valid path of optimal true cost (relative 1e-6): the
    /// paper's accuracy.
    pub accuracy: f64,
    /// Share predicting exactly the true path.
    pub exact: f64,
    /// Share whose prediction is a valid path (a connected set of cells holding the start
    /// and the end; solver outputs always are).
    pub valid: f64,
    /// Mean relative regret `(c·z − c·z*) / c·z*` in true costs over the valid predictions.
    pub regret: f64,
}

/// Whether the cells selected in `z` (`k x k`) are 8-connected and hold the top-left and
/// bottom-right cells.
pub fn is_valid_path(z: &[f32], k: usize) -> bool {
    let n = k * k;
    if z.len() != n || z[0] == 0.0 || z[n - 1] == 0.0 {
        return false;
    }
    let mut seen = vec![false; n];
    let mut stack = vec![0usize];
    seen[0] = true;
    let mut reached = 0;
    while let Some(u) = stack.pop() {
        reached += 1;
        let (r, c) = ((u / k) as isize, (u % k) as isize);
        for dr in -1..=1 {
            for dc in -1..=1 {
                let (nr, nc) = (r + dr, c + dc);
                if nr < 0 || nc < 0 || nr >= k as isize || nc >= k as isize {
                    continue;
                }
                let v = nr as usize * k + nc as usize;
                if z[v] != 0.0 && !seen[v] {
                    seen[v] = true;
                    stack.push(v);
                }
            }
        }
    }
    seen[n - 1] && reached == z.iter().filter(|&&x| x != 0.0).count()
}

/// Accuracy, exact match, validity and regret of the predictions `z` (`maps x k k`,
/// row-major) against the true costs and paths of `split` rows `idx`.
pub fn path_metrics(z: &[f32], split: &Split, idx: &[usize]) -> PathMetrics {
    let kk = split.k * split.k;
    let per: Vec<(bool, bool, bool, f64)> = idx
        .par_iter()
        .enumerate()
        .map(|(j, &i)| {
            let zi = &z[j * kk..(j + 1) * kk];
            let (c, t) = (split.weights_of(i), split.path_of(i));
            let cost =
                |p: &[f32]| -> f64 { p.iter().zip(c).map(|(&a, &b)| a as f64 * b as f64).sum() };
            let (pred, best) = (cost(zi), cost(t));
            let valid = is_valid_path(zi, split.k);
            let optimal = valid && (pred - best).abs() <= 1e-6 * best;
            (valid, optimal, zi == t, (pred - best) / best)
        })
        .collect();
    let n = per.len().max(1) as f64;
    let valid: Vec<&(bool, bool, bool, f64)> = per.iter().filter(|p| p.0).collect();
    PathMetrics {
        maps: per.len(),
        accuracy: per.iter().filter(|p| p.1).count() as f64 / n,
        exact: per.iter().filter(|p| p.2).count() as f64 / n,
        valid: valid.len() as f64 / n,
        regret: valid.iter().map(|p| p.3).sum::<f64>() / valid.len().max(1) as f64,
    }
}

/// Per-channel mean and standard deviation of the training images (in `[0, 255]`).
pub fn channel_stats(split: &Split) -> ([f32; 3], [f32; 3]) {
    let (sum, sq) = split
        .maps
        .par_chunks(3 * 4096)
        .map(|px| {
            let (mut s, mut q) = ([0f64; 3], [0f64; 3]);
            for p in px.chunks_exact(3) {
                for c in 0..3 {
                    let v = p[c] as f64;
                    s[c] += v;
                    q[c] += v * v;
                }
            }
            (s, q)
        })
        .reduce(
            || ([0f64; 3], [0f64; 3]),
            |a, b| {
                (
                    std::array::from_fn(|c| a.0[c] + b.0[c]),
                    std::array::from_fn(|c| a.1[c] + b.1[c]),
                )
            },
        );
    let n = (split.maps.len() / 3).max(1) as f64;
    let mean = sum.map(|s| s / n);
    let std: [f64; 3] = std::array::from_fn(|c| (sq[c] / n - mean[c] * mean[c]).max(1e-12).sqrt());
    (mean.map(|m| m as f32), std.map(|s| s as f32))
}
