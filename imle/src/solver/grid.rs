//! Vertex-weighted shortest paths on a grid: the Warcraft protocol of Pogančić et al.
//! (2019), used for the path-planning experiments of Niepert et al. (NeurIPS 2021, Sec. 5.3).

use super::{check_state_len, MapSolver};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Which cells of a grid are adjacent.
///
/// ```
/// use imle::solver::Neighbourhood;
/// assert_eq!(Neighbourhood::default(), Neighbourhood::Eight);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Neighbourhood {
    /// The 8 surrounding cells (king moves), as in the Warcraft experiments.
    #[default]
    Eight,
    /// The 4 cells sharing a side.
    Four,
}

impl Neighbourhood {
    /// `(row, col)` offsets in the order the Warcraft reference code visits them
    /// (row-major), which fixes how ties between equal-cost paths are broken.
    fn offsets(self) -> &'static [(isize, isize)] {
        match self {
            Neighbourhood::Eight => &[
                (-1, -1),
                (-1, 0),
                (-1, 1),
                (0, -1),
                (0, 1),
                (1, -1),
                (1, 0),
                (1, 1),
            ],
            Neighbourhood::Four => &[(-1, 0), (0, -1), (0, 1), (1, 0)],
        }
    }
}

/// Shortest top-left to bottom-right path on a `rows x cols` grid of cell costs
/// (the Warcraft shortest-path MAP of Niepert et al., NeurIPS 2021, Sec. 5.3, following
/// Pogančić et al., 2019).
///
/// θ is the negated row-major cost map, `θ = -cost`, and the state `z` is the indicator of
/// the cells on the path, so `argmax_z <z, θ>` is the cheapest path. The path cost counts
/// every cell on it, the start and the end cell included. Costs must be finite and
/// non-negative: a positive or NaN θ entry gives [`Error::InvalidCost`], a row whose length
/// is not `rows * cols` gives [`Error::GridSizeMismatch`].
///
/// The solver is Dijkstra's algorithm exactly as in the reference implementation: nodes
/// with equal distance leave the queue in row-major order, neighbours are visited in
/// row-major order, and a predecessor is replaced only by a strictly shorter path, so ties
/// keep the first predecessor found. Distances are accumulated in `f32`.
///
/// ```
/// use imle::solver::{GridShortestPath, MapSolver};
/// // A 3x3 cost map with a cheap anti-diagonal detour; θ = -cost.
/// let cost = [1.0f32, 1.0, 1.0, 9.0, 9.0, 1.0, 9.0, 9.0, 1.0];
/// let theta: Vec<f32> = cost.iter().map(|c| -c).collect();
/// let mut z = [0.0; 9];
/// GridShortestPath::new(3).solve(&theta, &mut z)?;
/// assert_eq!(z, [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GridShortestPath {
    rows: usize,
    cols: usize,
    neighbourhood: Neighbourhood,
    negative: NegativeCosts,
}

/// What [`GridShortestPath`] does with negative costs (positive θ entries), which
/// perturbed or target costs can have and Dijkstra cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NegativeCosts {
    /// [`Error::InvalidCost`] (the default).
    #[default]
    Refuse,
    /// Shift the instance by its most negative cost
    /// ([`GridShortestPath::shift_negative_costs`]).
    Shift,
    /// Raise each negative cost to 0 ([`GridShortestPath::clamp_negative_costs`]).
    Clamp,
}

impl GridShortestPath {
    /// A `k x k` grid with the 8-neighbourhood (dimensions are validated when solving).
    ///
    /// ```
    /// use imle::solver::{GridShortestPath, MapSolver};
    /// assert!(GridShortestPath::new(12).check_len(144).is_ok());
    /// ```
    pub fn new(k: usize) -> Self {
        Self::rect(k, k)
    }

    /// A `rows x cols` grid with the 8-neighbourhood (dimensions are validated when solving).
    ///
    /// ```
    /// use imle::solver::{GridShortestPath, MapSolver};
    /// assert!(GridShortestPath::rect(2, 4).check_len(8).is_ok());
    /// assert!(GridShortestPath::rect(2, 4).check_len(9).is_err());
    /// ```
    pub fn rect(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            neighbourhood: Neighbourhood::Eight,
            negative: NegativeCosts::Refuse,
        }
    }

    /// The same grid, solving a θ with positive entries (negative costs) after shifting
    /// it, per instance, by its maximum: `θ − max(0, max_i θ_i)`, so the most negative
    /// cost becomes 0 (the official Warcraft code's `translate_weights`, applied to BB's
    /// and I-MLE's target costs and to perturbed costs). A shift adds the same cost to
    /// every cell and so favours paths with fewer cells: it changes the MAP, which is why
    /// the default refuses positive θ with [`Error::InvalidCost`]. NaN and infinite θ are
    /// still errors.
    ///
    /// ```
    /// use imle::solver::{GridShortestPath, MapSolver};
    /// // Costs -1 on the detour: refused by default, shifted to 0 here.
    /// let theta = [-1.0f32, 1.0, 1.0, -5.0, -5.0, 1.0, -5.0, -5.0, -1.0];
    /// let mut z = [0.0; 9];
    /// assert!(GridShortestPath::new(3).solve(&theta, &mut z).is_err());
    /// GridShortestPath::new(3).shift_negative_costs().solve(&theta, &mut z)?;
    /// assert_eq!(z, [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn shift_negative_costs(self) -> Self {
        Self {
            negative: NegativeCosts::Shift,
            ..self
        }
    }

    /// The same grid, solving a θ with positive entries (negative costs) after raising
    /// each negative cost to 0, `cost = max(0, −θ)`: unlike the shift, the other cells keep
    /// their costs, so a perturbation that makes a few cells negative changes the problem
    /// only there (the nearest non-negative problem in every cell; the official Warcraft
    /// code runs Dijkstra on the negative perturbed costs as they are). NaN and infinite θ
    /// are still errors.
    ///
    /// ```
    /// use imle::solver::{GridShortestPath, MapSolver};
    /// // One cell of cost -4 on a detour: clamped to 0, the rest unchanged.
    /// let theta = [-1.0f32, 4.0, -1.0, -1.0, -9.0, -1.0, -9.0, -9.0, -1.0];
    /// let mut z = [0.0; 9];
    /// GridShortestPath::new(3).clamp_negative_costs().solve(&theta, &mut z)?;
    /// assert_eq!(z, [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn clamp_negative_costs(self) -> Self {
        Self {
            negative: NegativeCosts::Clamp,
            ..self
        }
    }

    /// Whether positive θ is shifted ([`GridShortestPath::shift_negative_costs`]).
    pub fn shifts_negative_costs(&self) -> bool {
        self.negative == NegativeCosts::Shift
    }

    /// What the solver does with negative costs.
    ///
    /// ```
    /// use imle::solver::{GridShortestPath, NegativeCosts};
    /// assert_eq!(GridShortestPath::new(3).negative_costs(), NegativeCosts::Refuse);
    /// ```
    pub fn negative_costs(&self) -> NegativeCosts {
        self.negative
    }

    /// The same grid with another neighbourhood.
    ///
    /// ```
    /// use imle::solver::{GridShortestPath, MapSolver, Neighbourhood};
    /// // On 2x2 with unit costs, the diagonal move is only allowed with 8 neighbours.
    /// let mut z = [0.0; 4];
    /// GridShortestPath::new(2).solve(&[-1.0; 4], &mut z)?;
    /// assert_eq!(z, [1.0, 0.0, 0.0, 1.0]);
    /// GridShortestPath::new(2).with_neighbourhood(Neighbourhood::Four).solve(&[-1.0; 4], &mut z)?;
    /// assert_eq!(z, [1.0, 1.0, 0.0, 1.0]);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn with_neighbourhood(self, neighbourhood: Neighbourhood) -> Self {
        Self {
            neighbourhood,
            ..self
        }
    }

    /// Number of grid rows.
    ///
    /// ```
    /// assert_eq!(imle::solver::GridShortestPath::rect(2, 5).rows(), 2);
    /// ```
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of grid columns.
    ///
    /// ```
    /// assert_eq!(imle::solver::GridShortestPath::rect(2, 5).cols(), 5);
    /// ```
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The neighbourhood used.
    ///
    /// ```
    /// use imle::solver::{GridShortestPath, Neighbourhood};
    /// assert_eq!(GridShortestPath::new(3).neighbourhood(), Neighbourhood::Eight);
    /// ```
    pub fn neighbourhood(&self) -> Neighbourhood {
        self.neighbourhood
    }
}

impl MapSolver for GridShortestPath {
    fn check_len(&self, m: usize) -> Result<()> {
        check_dims(self.rows, self.cols, m)
    }

    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        check_dims(self.rows, self.cols, theta.len())?;
        check_state_len(theta, z)?;
        let offset = match self.negative {
            NegativeCosts::Shift => theta.iter().fold(0.0f32, |m, &t| if t > m { t } else { m }),
            _ => 0.0,
        };
        let clamp = self.negative == NegativeCosts::Clamp;
        with_scratch(|s| {
            s.cost.clear();
            for (index, &t) in theta.iter().enumerate() {
                let c = offset - t;
                // NaN is not below 0: it stays and is refused.
                let c = if clamp && c < 0.0 { 0.0 } else { c };
                s.cost.push(checked_cost(index, c)?);
            }
            s.run(self.rows, self.cols, self.neighbourhood);
            z.fill(0.0);
            s.walk_back(|cell| z[cell] = 1.0);
            Ok(())
        })
    }
}

/// Cheapest top-left to bottom-right path on a `rows x cols` grid of non-negative,
/// finite cell costs (row-major), with the same protocol as [`GridShortestPath`].
///
/// Returns the cells of the path in order (flat row-major indices, from `0` to
/// `rows * cols - 1`) and the path cost, the start and the end cell included.
///
/// ```
/// use imle::solver::{grid_shortest_path, Neighbourhood};
/// let cost = [1.0, 5.0, 1.0,
///             1.0, 5.0, 1.0,
///             1.0, 1.0, 1.0];
/// let (path, total) = grid_shortest_path(&cost, 3, 3, Neighbourhood::Four)?;
/// assert_eq!(path, [0, 3, 6, 7, 8]);
/// assert_eq!(total, 5.0);
/// let (path, total) = grid_shortest_path(&cost, 3, 3, Neighbourhood::Eight)?;
/// assert_eq!(path, [0, 3, 7, 8]);
/// assert_eq!(total, 4.0);
/// # Ok::<(), imle::Error>(())
/// ```
pub fn grid_shortest_path(
    costs: &[f32],
    rows: usize,
    cols: usize,
    neighbourhood: Neighbourhood,
) -> Result<(Vec<usize>, f32)> {
    check_dims(rows, cols, costs.len())?;
    with_scratch(|s| {
        s.cost.clear();
        for (index, &c) in costs.iter().enumerate() {
            s.cost.push(checked_cost(index, c)?);
        }
        let total = s.run(rows, cols, neighbourhood);
        let mut path = Vec::new();
        s.walk_back(|cell| path.push(cell));
        path.reverse();
        Ok((path, total))
    })
}

/// Validates a grid shape against a row length.
fn check_dims(rows: usize, cols: usize, got: usize) -> Result<()> {
    let n = rows
        .checked_mul(cols)
        .filter(|&n| n > 0 && n < NONE as usize);
    match n {
        None => Err(Error::InvalidProblem(format!(
            "a {rows}x{cols} grid must have between 1 and {} cells",
            NONE - 1
        ))),
        Some(n) if n != got => Err(Error::GridSizeMismatch { rows, cols, got }),
        Some(_) => Ok(()),
    }
}

/// Returns the cost with `-0.0` turned into `+0.0` (so its bits order like the value), or
/// [`Error::InvalidCost`] if it is negative or not finite.
#[inline]
fn checked_cost(index: usize, value: f32) -> Result<f32> {
    if value.is_finite() && value >= 0.0 {
        Ok(value + 0.0)
    } else {
        Err(Error::InvalidCost { index, value })
    }
}

/// Marks "no predecessor" (and bounds the number of cells).
const NONE: u32 = u32::MAX;

/// Per-thread buffers reused across calls (the batch solver runs on rayon's threads).
#[derive(Default)]
struct Scratch {
    cost: Vec<f32>,
    dist: Vec<f32>,
    pred: Vec<u32>,
    done: Vec<bool>,
    /// Min-queue of `(distance bits << 32) | cell`: for non-negative floats the bit
    /// pattern orders like the value, and equal distances pop in row-major order.
    heap: BinaryHeap<Reverse<u64>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|s| f(&mut s.borrow_mut()))
}

#[inline]
fn key(dist: f32, cell: usize) -> Reverse<u64> {
    Reverse((u64::from(dist.to_bits()) << 32) | cell as u64)
}

impl Scratch {
    /// Dijkstra from cell 0 over `self.cost` (validated, non-negative); stops once the last
    /// cell is settled and returns its distance. Afterwards `pred` links the path.
    fn run(&mut self, rows: usize, cols: usize, neighbourhood: Neighbourhood) -> f32 {
        let n = rows * cols;
        let target = n - 1;
        self.dist.clear();
        self.dist.resize(n, f32::INFINITY);
        self.pred.clear();
        self.pred.resize(n, NONE);
        self.done.clear();
        self.done.resize(n, false);
        self.heap.clear();
        let offsets = neighbourhood.offsets();

        self.dist[0] = self.cost[0];
        self.heap.push(key(self.cost[0], 0));
        while let Some(Reverse(k)) = self.heap.pop() {
            let u = (k & 0xffff_ffff) as usize;
            if self.done[u] {
                continue;
            }
            self.done[u] = true;
            if u == target {
                break;
            }
            let (r, c) = (u / cols, u % cols);
            let du = self.dist[u];
            for &(dr, dc) in offsets {
                let (nr, nc) = (r.wrapping_add_signed(dr), c.wrapping_add_signed(dc));
                if nr >= rows || nc >= cols {
                    continue;
                }
                let v = nr * cols + nc;
                if self.done[v] {
                    continue;
                }
                let nd = du + self.cost[v];
                // Strict improvement keeps the first predecessor on ties; the `NONE` test
                // only matters if a distance overflowed to +inf.
                if nd < self.dist[v] || self.pred[v] == NONE {
                    self.dist[v] = nd;
                    self.pred[v] = u as u32;
                    self.heap.push(key(nd, v));
                }
            }
        }
        self.dist[target]
    }

    /// Calls `f` on the cells of the last path found, from the end back to the start.
    fn walk_back(&self, mut f: impl FnMut(usize)) {
        let mut cell = self.pred.len() - 1;
        f(cell);
        while cell != 0 {
            cell = self.pred[cell] as usize;
            f(cell);
        }
    }
}
