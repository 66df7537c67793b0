//! Maximum-weight spanning trees (one of the combinatorial families named in Theorem 1 of
//! Niepert et al., NeurIPS 2021).

use super::{check_state_len, MapSolver};
use crate::error::{check_finite, Error, Result};
use std::cmp::Ordering;

/// Maximum-weight spanning tree of a fixed connected undirected graph: θ holds one weight
/// per edge (in the order of the edge list) and `z` is the indicator of the tree's edges.
///
/// Spanning trees are one of the exponential-family structures of Theorem 1 of Niepert et
/// al. (NeurIPS 2021). Solved with Kruskal's algorithm (union-find with path halving and
/// union by size), `O(m log m)` per instance. Edges of equal weight are taken in edge-list
/// order, so the result is a deterministic function of θ. Self-loops and parallel edges are
/// allowed (a self-loop is never in a tree). Every state has exactly `nodes - 1` ones.
///
/// ```
/// use imle::solver::{MapSolver, SpanningTree};
/// // A triangle 0-1-2 plus a pendant node 3 hanging from 2.
/// let tree = SpanningTree::new(4, [(0, 1), (1, 2), (0, 2), (2, 3)])?;
/// let mut z = [0.0; 4];
/// tree.solve(&[1.0, 3.0, 2.0, -5.0], &mut z)?;
/// assert_eq!(z, [0.0, 1.0, 1.0, 1.0]); // the bridge (2, 3) is always in the tree
/// # Ok::<(), imle::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanningTree {
    nodes: usize,
    edges: Vec<(usize, usize)>,
}

impl SpanningTree {
    /// A solver for the graph with `nodes` nodes (`0..nodes`) and the given undirected
    /// edges; edge `e` gets weight `θ[e]`.
    ///
    /// Returns [`Error::InvalidProblem`] if there is no edge, an edge names a node outside
    /// `0..nodes`, or the graph is not connected (it then has no spanning tree), or has
    /// more than `u32::MAX` nodes or edges.
    ///
    /// ```
    /// use imle::solver::SpanningTree;
    /// assert!(SpanningTree::new(3, [(0, 1), (1, 2)]).is_ok());
    /// assert!(SpanningTree::new(3, [(0, 1)]).is_err()); // node 2 is isolated
    /// assert!(SpanningTree::new(3, [(0, 1), (1, 3)]).is_err()); // node 3 does not exist
    /// ```
    pub fn new(nodes: usize, edges: impl IntoIterator<Item = (usize, usize)>) -> Result<Self> {
        let edges: Vec<(usize, usize)> = edges.into_iter().collect();
        if edges.is_empty() {
            return Err(Error::InvalidProblem(
                "a spanning-tree solver needs at least one edge".into(),
            ));
        }
        if nodes > u32::MAX as usize || edges.len() > u32::MAX as usize {
            return Err(Error::InvalidProblem(format!(
                "{nodes} nodes and {} edges: at most 2^32 - 1 of each are supported",
                edges.len()
            )));
        }
        if let Some((e, &(u, v))) = edges
            .iter()
            .enumerate()
            .find(|(_, &(u, v))| u >= nodes || v >= nodes)
        {
            return Err(Error::InvalidProblem(format!(
                "edge {e} = ({u}, {v}) names a node outside 0..{nodes}"
            )));
        }
        let mut uf = UnionFind::new(nodes);
        let mut components = nodes;
        for &(u, v) in &edges {
            if uf.union(u, v) {
                components -= 1;
            }
        }
        if components != 1 {
            return Err(Error::InvalidProblem(format!(
                "the graph with {nodes} nodes and {} edges is not connected ({components} components)",
                edges.len()
            )));
        }
        Ok(Self { nodes, edges })
    }

    /// The complete graph on `nodes` nodes, edges `(u, v)` with `u < v` in lexicographic
    /// order (`nodes * (nodes - 1) / 2` edges; needs `nodes >= 2`).
    ///
    /// ```
    /// use imle::solver::SpanningTree;
    /// let k4 = SpanningTree::complete(4)?;
    /// assert_eq!(k4.edges(), [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn complete(nodes: usize) -> Result<Self> {
        Self::new(
            nodes,
            (0..nodes).flat_map(|u| (u + 1..nodes).map(move |v| (u, v))),
        )
    }

    /// Number of nodes.
    ///
    /// ```
    /// assert_eq!(imle::solver::SpanningTree::complete(5)?.nodes(), 5);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The edge list; θ and `z` are indexed like it.
    ///
    /// ```
    /// let g = imle::solver::SpanningTree::new(2, [(1, 0)])?;
    /// assert_eq!(g.edges(), [(1, 0)]);
    /// # Ok::<(), imle::Error>(())
    /// ```
    pub fn edges(&self) -> &[(usize, usize)] {
        &self.edges
    }
}

impl MapSolver for SpanningTree {
    fn check_len(&self, m: usize) -> Result<()> {
        if m != self.edges.len() {
            return Err(Error::LengthMismatch {
                what: "spanning-tree weights (one per edge)",
                expected: self.edges.len(),
                got: m,
            });
        }
        Ok(())
    }

    fn solve(&self, theta: &[f32], z: &mut [f32]) -> Result<()> {
        self.check_len(theta.len())?;
        check_state_len(theta, z)?;
        check_finite("theta", theta)?;
        let mut order: Vec<u32> = (0..theta.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            theta[b as usize]
                .partial_cmp(&theta[a as usize])
                .unwrap_or(Ordering::Equal)
                .then(a.cmp(&b))
        });
        z.fill(0.0);
        let mut uf = UnionFind::new(self.nodes);
        let mut missing = self.nodes - 1;
        for e in order {
            if missing == 0 {
                break;
            }
            let (u, v) = self.edges[e as usize];
            if uf.union(u, v) {
                z[e as usize] = 1.0;
                missing -= 1;
            }
        }
        Ok(())
    }
}

/// Disjoint sets with path halving and union by size.
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] as usize != x {
            let grand = self.parent[self.parent[x] as usize];
            self.parent[x] = grand;
            x = grand as usize;
        }
        x
    }

    /// Merges the sets of `a` and `b`; false if they were already one set.
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a as u32;
        self.size[a] += self.size[b];
        true
    }
}
