//! MAP solvers against brute-force enumeration and independent references, plus every
//! error path. All property tests use fixed seeds.

use imle::solver::{
    grid_shortest_path, Argmax, Assignment, GridShortestPath, MapSolver, NegativeCosts,
    Neighbourhood, SpanningTree, TopK,
};
use imle::Error;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// `<z, θ>` in f64.
fn dot(z: &[f32], theta: &[f32]) -> f64 {
    z.iter()
        .zip(theta)
        .map(|(&z, &t)| f64::from(z) * f64::from(t))
        .sum()
}

fn assert_binary(z: &[f32]) {
    assert!(z.iter().all(|&v| v == 0.0 || v == 1.0), "z not 0/1: {z:?}");
}

fn ones(z: &[f32]) -> usize {
    z.iter().filter(|&&v| v == 1.0).count()
}

/// Scores with many ties (small integers) or continuous ones.
fn scores(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        prop::collection::vec((-3i32..=3).prop_map(|v| v as f32), len.clone()),
        prop::collection::vec(-10.0f32..10.0, len),
    ]
}

/// The Warcraft cost values.
const WARCRAFT: [f32; 5] = [0.8, 1.2, 5.3, 7.7, 9.2];

/// Non-negative cell costs: Warcraft values (many ties), continuous, or with zeros.
fn costs(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(&WARCRAFT[..]), n),
        prop::collection::vec(0.0f32..10.0, n),
        prop::collection::vec(prop::sample::select(&[0.0f32, 0.0, 1.0, 2.5][..]), n),
    ]
}

fn neg(v: &[f32]) -> Vec<f32> {
    v.iter().map(|c| -c).collect()
}

// ---------------------------------------------------------------------------------------
// Argmax and TopK
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256, 1))]

    #[test]
    fn argmax_is_first_maximiser(theta in scores(1..=12)) {
        let mut z = vec![0.5; theta.len()];
        Argmax.solve(&theta, &mut z).unwrap();
        assert_binary(&z);
        prop_assert_eq!(ones(&z), 1);
        let best = (0..theta.len())
            .map(|i| {
                let mut e = vec![0.0; theta.len()];
                e[i] = 1.0;
                dot(&e, &theta)
            })
            .fold(f64::NEG_INFINITY, f64::max);
        prop_assert_eq!(dot(&z, &theta), best);
        let first = theta.iter().position(|&t| f64::from(t) == best).unwrap();
        prop_assert_eq!(z[first], 1.0);
    }

    #[test]
    fn topk_matches_all_k_subsets(theta in scores(1..=10), k_frac in 0.0f64..1.0) {
        let m = theta.len();
        let k = 1 + ((k_frac * m as f64) as usize).min(m - 1);
        let mut z = vec![0.5; m];
        TopK::new(k).solve(&theta, &mut z).unwrap();
        assert_binary(&z);
        prop_assert_eq!(ones(&z), k);
        let mut best = f64::NEG_INFINITY;
        for mask in 0u32..1 << m {
            if mask.count_ones() as usize == k {
                let s: f64 = (0..m).filter(|i| (mask >> i) & 1 == 1).map(|i| f64::from(theta[i])).sum();
                best = best.max(s);
            }
        }
        prop_assert!((dot(&z, &theta) - best).abs() <= 1e-9 * (1.0 + best.abs()));
        // Deterministic ties: the k best by (θ desc, index asc).
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| theta[b].partial_cmp(&theta[a]).unwrap().then(a.cmp(&b)));
        let mut want = vec![0.0; m];
        for &i in &order[..k] {
            want[i] = 1.0;
        }
        prop_assert_eq!(z, want);
    }

    #[test]
    fn argmax_and_topk_batches_equal_rows(
        rows in prop::collection::vec(prop::collection::vec((-3i32..=3).prop_map(|v| v as f32), 9), 1..40),
        k in 1usize..=9,
    ) {
        let flat: Vec<f32> = rows.concat();
        for solver in [&Argmax as &dyn MapSolver, &TopK::new(k)] {
            let mut batch = vec![0.5; flat.len()];
            solver.solve_batch(&flat, 9, &mut batch).unwrap();
            let mut again = vec![0.25; flat.len()];
            solver.solve_batch(&flat, 9, &mut again).unwrap();
            prop_assert_eq!(&batch, &again);
            for (theta, zb) in flat.chunks(9).zip(batch.chunks(9)) {
                let mut z = vec![0.5; 9];
                solver.solve(theta, &mut z).unwrap();
                prop_assert_eq!(&z[..], zb);
            }
        }
    }
}

#[test]
fn topk_and_argmax_ties_go_to_lower_indices() {
    let theta = [1.0, 2.0, 2.0, 1.0, 2.0, 0.0];
    let mut z = [0.0; 6];
    Argmax.solve(&theta, &mut z).unwrap();
    assert_eq!(z, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    TopK::new(2).solve(&theta, &mut z).unwrap();
    assert_eq!(z, [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    TopK::new(4).solve(&theta, &mut z).unwrap();
    assert_eq!(z, [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
    TopK::new(6).solve(&theta, &mut z).unwrap();
    assert_eq!(z, [1.0; 6]);
}

// ---------------------------------------------------------------------------------------
// Grid shortest path
// ---------------------------------------------------------------------------------------

fn nb_offsets(nb: Neighbourhood) -> &'static [(isize, isize)] {
    match nb {
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

fn neighbours(cell: usize, rows: usize, cols: usize, nb: Neighbourhood) -> Vec<usize> {
    let (r, c) = ((cell / cols) as isize, (cell % cols) as isize);
    nb_offsets(nb)
        .iter()
        .map(|&(dr, dc)| (r + dr, c + dc))
        .filter(|&(r, c)| r >= 0 && c >= 0 && r < rows as isize && c < cols as isize)
        .map(|(r, c)| r as usize * cols + c as usize)
        .collect()
}

fn path_cost(path: &[usize], cost: &[f32]) -> f64 {
    path.iter().map(|&i| f64::from(cost[i])).sum()
}

/// Checks a path is a top-left to bottom-right walk of neighbours.
fn assert_valid_path(path: &[usize], rows: usize, cols: usize, nb: Neighbourhood) {
    assert_eq!(path.first(), Some(&0), "path {path:?} must start at 0");
    assert_eq!(
        path.last(),
        Some(&(rows * cols - 1)),
        "path {path:?} must end at the last cell"
    );
    for w in path.windows(2) {
        assert!(
            neighbours(w[0], rows, cols, nb).contains(&w[1]),
            "{} -> {} is not a move in {nb:?} on {rows}x{cols}: {path:?}",
            w[0],
            w[1]
        );
    }
    let mut seen = path.to_vec();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), path.len(), "path {path:?} revisits a cell");
}

/// Minimum cost over all simple paths (DFS enumeration).
fn brute_force_path(cost: &[f32], rows: usize, cols: usize, nb: Neighbourhood) -> f64 {
    fn dfs(
        cell: usize,
        acc: f64,
        seen: &mut [bool],
        ctx: (&[f32], usize, usize, Neighbourhood),
        best: &mut f64,
    ) {
        let (cost, rows, cols, nb) = ctx;
        if cell == rows * cols - 1 {
            *best = best.min(acc);
            return;
        }
        for v in neighbours(cell, rows, cols, nb) {
            if !seen[v] {
                seen[v] = true;
                dfs(v, acc + f64::from(cost[v]), seen, ctx, best);
                seen[v] = false;
            }
        }
    }
    let mut seen = vec![false; rows * cols];
    seen[0] = true;
    let mut best = f64::INFINITY;
    dfs(
        0,
        f64::from(cost[0]),
        &mut seen,
        (cost, rows, cols, nb),
        &mut best,
    );
    best
}

/// Bellman-Ford style relaxation to a fixed point (f64), an independent reference.
fn relaxation_path_cost(cost: &[f32], rows: usize, cols: usize, nb: Neighbourhood) -> f64 {
    let n = rows * cols;
    let mut dist = vec![f64::INFINITY; n];
    dist[0] = f64::from(cost[0]);
    let adj: Vec<Vec<usize>> = (0..n).map(|u| neighbours(u, rows, cols, nb)).collect();
    loop {
        let mut changed = false;
        for u in 0..n {
            if dist[u].is_finite() {
                for &v in &adj[u] {
                    let d = dist[u] + f64::from(cost[v]);
                    if d < dist[v] {
                        dist[v] = d;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return dist[n - 1];
        }
    }
}

/// A line-by-line port of the Warcraft reference Dijkstra (Pogančić et al., 2019): float32
/// distances, a heap of `(cost, (x, y))` tuples, no early exit, stale entries processed,
/// predecessors replaced on strict improvement only.
fn reference_dijkstra(cost: &[f32], rows: usize, cols: usize, nb: Neighbourhood) -> Vec<usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = rows * cols;
    let mut costs = vec![1.0e10f32; n];
    costs[0] = cost[0];
    let mut certain = vec![false; n];
    let mut transitions: Vec<Option<usize>> = vec![None; n];
    // f32 bits of non-negative values order like the values; (row, col) as in the tuple.
    let mut queue = BinaryHeap::new();
    queue.push(Reverse((cost[0].to_bits(), 0usize, 0usize)));
    while let Some(Reverse((_, x, y))) = queue.pop() {
        let cur = x * cols + y;
        for v in neighbours(cur, rows, cols, nb) {
            if !certain[v] {
                let candidate = cost[v] + costs[cur];
                if candidate < costs[v] {
                    costs[v] = candidate;
                    queue.push(Reverse((candidate.to_bits(), v / cols, v % cols)));
                    transitions[v] = Some(cur);
                }
            }
        }
        certain[cur] = true;
    }
    let mut path = vec![n - 1];
    let mut cell = n - 1;
    while cell != 0 {
        cell = transitions[cell].unwrap();
        path.push(cell);
    }
    path.reverse();
    path
}

/// Solves with both entry points and checks they agree; returns the path and its cost.
fn solve_grid(cost: &[f32], rows: usize, cols: usize, nb: Neighbourhood) -> (Vec<usize>, f32) {
    let (path, total) = grid_shortest_path(cost, rows, cols, nb).unwrap();
    assert_valid_path(&path, rows, cols, nb);
    let exact = path_cost(&path, cost);
    assert!(
        (f64::from(total) - exact).abs() <= 1e-5 * (1.0 + exact),
        "reported cost {total} but the path costs {exact}"
    );
    let mut z = vec![0.5; rows * cols];
    GridShortestPath::rect(rows, cols)
        .with_neighbourhood(nb)
        .solve(&neg(cost), &mut z)
        .unwrap();
    assert_binary(&z);
    let mut want = vec![0.0; rows * cols];
    for &i in &path {
        want[i] = 1.0;
    }
    assert_eq!(z, want, "MapSolver state differs from grid_shortest_path");
    (path, total)
}

fn small_grid() -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    prop::sample::select(
        &[
            (3usize, 3usize),
            (2, 4),
            (4, 2),
            (1, 4),
            (1, 1),
            (2, 2),
            (3, 2),
        ][..],
    )
    .prop_flat_map(|(r, c)| (Just(r), Just(c), costs(r * c)))
}

fn any_nb() -> impl Strategy<Value = Neighbourhood> {
    prop::sample::select(&[Neighbourhood::Eight, Neighbourhood::Four][..])
}

proptest! {
    #![proptest_config(config(200, 2))]

    #[test]
    fn grid_matches_brute_force((rows, cols, cost) in small_grid(), nb in any_nb()) {
        let (path, _) = solve_grid(&cost, rows, cols, nb);
        let best = brute_force_path(&cost, rows, cols, nb);
        let got = path_cost(&path, &cost);
        prop_assert!((got - best).abs() <= 1e-5 * (1.0 + best), "{got} vs brute force {best}");
    }

    #[test]
    fn grid_four_neighbourhood_3x4_matches_brute_force(cost in costs(12)) {
        let (path, _) = solve_grid(&cost, 3, 4, Neighbourhood::Four);
        let best = brute_force_path(&cost, 3, 4, Neighbourhood::Four);
        let got = path_cost(&path, &cost);
        prop_assert!((got - best).abs() <= 1e-5 * (1.0 + best), "{got} vs brute force {best}");
    }
}

proptest! {
    #![proptest_config(config(128, 3))]

    #[test]
    fn grid_matches_relaxation_and_reference(
        (rows, cols, cost) in (1usize..=30, 1usize..=30)
            .prop_flat_map(|(r, c)| (Just(r), Just(c), costs(r * c))),
        nb in any_nb(),
    ) {
        let (path, total) = solve_grid(&cost, rows, cols, nb);
        let best = relaxation_path_cost(&cost, rows, cols, nb);
        prop_assert!(
            (f64::from(total) - best).abs() <= 1e-4 * best.max(1e-6),
            "Dijkstra {total} vs relaxation {best} on {rows}x{cols} {nb:?}"
        );
        // Same path, ties included, as the reference implementation.
        prop_assert_eq!(path, reference_dijkstra(&cost, rows, cols, nb));
    }

    #[test]
    fn grid_batch_equals_rows(
        k in 1usize..=12,
        batch in 1usize..=8,
        nb in any_nb(),
        seed_costs in prop::collection::vec(prop::sample::select(&WARCRAFT[..]), 12 * 12 * 8),
    ) {
        let m = k * k;
        let thetas = neg(&seed_costs[..m * batch]);
        let solver = GridShortestPath::new(k).with_neighbourhood(nb);
        let mut out = vec![0.5; m * batch];
        solver.solve_batch(&thetas, m, &mut out).unwrap();
        for (theta, zb) in thetas.chunks(m).zip(out.chunks(m)) {
            let mut z = vec![0.5; m];
            solver.solve(theta, &mut z).unwrap();
            prop_assert_eq!(&z[..], zb);
        }
    }
}

proptest! {
    #[test]
    fn grid_shift_solves_the_translated_costs(
        k in 2usize..=8,
        theta in prop::collection::vec(-10.0f32..10.0, 64),
    ) {
        let theta = &theta[..k * k];
        let top = theta.iter().cloned().fold(0.0f32, f32::max);
        let translated: Vec<f32> = theta.iter().map(|t| t - top).collect();
        let (mut a, mut b) = (vec![0.0; k * k], vec![0.0; k * k]);
        GridShortestPath::new(k).shift_negative_costs().solve(theta, &mut a).unwrap();
        GridShortestPath::new(k).solve(&translated, &mut b).unwrap();
        prop_assert_eq!(&a, &b);
        // Without positive entries the shift changes nothing.
        let neg: Vec<f32> = theta.iter().map(|t| -t.abs()).collect();
        GridShortestPath::new(k).shift_negative_costs().solve(&neg, &mut a).unwrap();
        GridShortestPath::new(k).solve(&neg, &mut b).unwrap();
        prop_assert_eq!(a, b);
    }
}

proptest! {
    #[test]
    fn grid_clamp_solves_the_clamped_costs(
        k in 2usize..=8,
        theta in prop::collection::vec(-10.0f32..10.0, 64),
    ) {
        // Clamping equals solving max(0, cost) = min(0, θ) cell by cell.
        let theta = &theta[..k * k];
        let clamped: Vec<f32> = theta.iter().map(|t| t.min(0.0)).collect();
        let (mut a, mut b) = (vec![0.0; k * k], vec![0.0; k * k]);
        GridShortestPath::new(k).clamp_negative_costs().solve(theta, &mut a).unwrap();
        GridShortestPath::new(k).solve(&clamped, &mut b).unwrap();
        prop_assert_eq!(&a, &b);
    }
}

#[test]
fn grid_clamp_keeps_the_other_costs_where_the_shift_does_not() {
    // One negative cell, (1, 3), on no optimal path (optima found by enumerating every
    // simple path, unique by a margin of at least 0.3). Clamped, the cheapest route is the
    // left column and bottom row (cost 7); shifted by 1, every cell costs one more, and the
    // 4-cell diagonal (12) beats that 6-cell route (13): the shift favours fewer cells.
    let cost = [
        1.0f32, 4.0, 4.0, 4.0, 2.0, 3.0, 1.0, -1.0, 1.0, 3.0, 3.0, 3.0, 2.0, 1.0, 1.0, 1.0,
    ];
    let theta: Vec<f32> = cost.iter().map(|c| -c).collect();
    let cells = |on: &[usize]| -> Vec<f32> {
        (0..16)
            .map(|i| if on.contains(&i) { 1.0 } else { 0.0 })
            .collect()
    };
    let (mut clamped, mut shifted) = (vec![0.0; 16], vec![0.0; 16]);
    GridShortestPath::new(4)
        .clamp_negative_costs()
        .solve(&theta, &mut clamped)
        .unwrap();
    GridShortestPath::new(4)
        .shift_negative_costs()
        .solve(&theta, &mut shifted)
        .unwrap();
    assert_eq!(clamped, cells(&[0, 4, 8, 13, 14, 15]));
    assert_eq!(shifted, cells(&[0, 5, 10, 15]));
    let nan = [1.0, f32::NAN, 0.0, 0.0];
    assert!(GridShortestPath::new(2)
        .clamp_negative_costs()
        .solve(&nan, &mut [0.0; 4])
        .is_err());
    assert_eq!(
        GridShortestPath::new(2)
            .clamp_negative_costs()
            .negative_costs(),
        NegativeCosts::Clamp
    );
}

#[test]
fn grid_shift_still_refuses_nan() {
    let mut z = [0.0; 4];
    let shifted = GridShortestPath::new(2).shift_negative_costs();
    assert!(shifted.solve(&[1.0, f32::NAN, 0.0, 0.0], &mut z).is_err());
    assert!(shifted
        .solve(&[f32::INFINITY, 0.0, 0.0, 0.0], &mut z)
        .is_err());
    assert!(shifted.shifts_negative_costs() && !GridShortestPath::new(2).shifts_negative_costs());
}

#[test]
fn grid_ties_keep_the_first_predecessor() {
    // 2x2, 4-neighbourhood, unit costs: (0,1) leaves the queue before (1,0) and claims the
    // end cell first.
    let (path, total) = solve_grid(&[1.0; 4], 2, 2, Neighbourhood::Four);
    assert_eq!((path, total), (vec![0, 1, 3], 3.0));
    // Uniform 3x3, 8-neighbourhood: the diagonal.
    let (path, total) = solve_grid(&[2.0; 9], 3, 3, Neighbourhood::Eight);
    assert_eq!((path, total), (vec![0, 4, 8], 6.0));
    // Uniform 3x3, 4-neighbourhood: along the top row, then down the last column.
    let (path, _) = solve_grid(&[1.0; 9], 3, 3, Neighbourhood::Four);
    assert_eq!(path, [0, 1, 2, 5, 8]);
    // Zero costs everywhere (-0.0 is accepted): all distances tie, so the first cell
    // popped among the last cell's neighbours claims it.
    let (path, total) = solve_grid(&[-0.0; 12], 3, 4, Neighbourhood::Eight);
    assert_eq!(total, 0.0);
    assert_eq!(path, [0, 1, 6, 11]); // cell 6 leaves the queue before 7 and 10
    let (path, total) = solve_grid(&[7.5], 1, 1, Neighbourhood::Eight);
    assert_eq!((path, total), (vec![0], 7.5));
}

#[test]
fn grid_cost_includes_start_and_end() {
    let cost = [3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0];
    let (path, total) = grid_shortest_path(&cost, 3, 3, Neighbourhood::Eight).unwrap();
    assert_eq!(path, [0, 4, 8]);
    assert_eq!(total, 8.0);
}

// ---------------------------------------------------------------------------------------
// Spanning tree
// ---------------------------------------------------------------------------------------

/// A connected multigraph on 2..=5 nodes with at most 7 edges (a random spanning tree plus
/// extra edges, self-loops and parallel edges allowed), in shuffled order.
fn connected_graph() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (2usize..=5)
        .prop_flat_map(|n| {
            let tree = (1..n)
                .map(|i| (0..i).prop_map(move |j| (j, i)))
                .collect::<Vec<_>>();
            let extra = prop::collection::vec((0..n, 0..n), 0..=(8 - n));
            (Just(n), tree, extra)
        })
        .prop_flat_map(|(n, tree, extra)| {
            let mut edges = tree;
            edges.extend(extra);
            (Just(n), Just(edges).prop_shuffle())
        })
}

fn is_spanning_tree(n: usize, edges: &[(usize, usize)], z: &[f32]) -> bool {
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            x = p[x];
        }
        x
    }
    let mut count = 0;
    for (e, &(u, v)) in edges.iter().enumerate() {
        if z[e] == 1.0 {
            let (a, b) = (find(&mut parent, u), find(&mut parent, v));
            if a == b {
                return false;
            }
            parent[a] = b;
            count += 1;
        }
    }
    count == n - 1
}

proptest! {
    #![proptest_config(config(256, 4))]

    #[test]
    fn spanning_tree_matches_brute_force(
        (n, edges) in connected_graph(),
        raw in scores(7..=7),
    ) {
        let m = edges.len();
        prop_assert!(m <= 7);
        let theta = &raw[..m];
        let solver = SpanningTree::new(n, edges.iter().copied()).unwrap();
        let mut z = vec![0.5; m];
        solver.solve(theta, &mut z).unwrap();
        assert_binary(&z);
        prop_assert!(is_spanning_tree(n, &edges, &z), "not a spanning tree: {z:?}");
        let mut best = f64::NEG_INFINITY;
        for mask in 0u32..1 << m {
            let sub: Vec<f32> = (0..m).map(|e| ((mask >> e) & 1) as f32).collect();
            if is_spanning_tree(n, &edges, &sub) {
                best = best.max(dot(&sub, theta));
            }
        }
        prop_assert!((dot(&z, theta) - best).abs() <= 1e-9 * (1.0 + best.abs()));
    }

    #[test]
    fn spanning_tree_batch_equals_rows(
        rows in prop::collection::vec(scores(10..=10), 1..30),
    ) {
        let solver = SpanningTree::complete(5).unwrap();
        let flat = rows.concat();
        let mut out = vec![0.5; flat.len()];
        solver.solve_batch(&flat, 10, &mut out).unwrap();
        for (theta, zb) in flat.chunks(10).zip(out.chunks(10)) {
            let mut z = vec![0.5; 10];
            solver.solve(theta, &mut z).unwrap();
            prop_assert_eq!(&z[..], zb);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Assignment
// ---------------------------------------------------------------------------------------

/// Best total weight over all injective maps rows -> columns.
fn brute_force_assignment(theta: &[f32], rows: usize, cols: usize) -> f64 {
    fn rec(row: usize, used: &mut [bool], acc: f64, ctx: (&[f32], usize, usize), best: &mut f64) {
        let (theta, rows, cols) = ctx;
        if row == rows {
            *best = best.max(acc);
            return;
        }
        for c in 0..cols {
            if !used[c] {
                used[c] = true;
                rec(
                    row + 1,
                    used,
                    acc + f64::from(theta[row * cols + c]),
                    ctx,
                    best,
                );
                used[c] = false;
            }
        }
    }
    let mut best = f64::NEG_INFINITY;
    rec(
        0,
        &mut vec![false; cols],
        0.0,
        (theta, rows, cols),
        &mut best,
    );
    best
}

fn assert_assignment(z: &[f32], rows: usize, cols: usize) {
    assert_binary(z);
    for r in 0..rows {
        assert_eq!(ones(&z[r * cols..(r + 1) * cols]), 1, "row {r} of {z:?}");
    }
    for c in 0..cols {
        let in_col = (0..rows).filter(|&r| z[r * cols + c] == 1.0).count();
        assert!(in_col <= 1, "column {c} used twice in {z:?}");
    }
}

/// Weights: ties, continuous, or a wide dynamic range (to exercise the integer scaling).
fn assignment_weights(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        prop::collection::vec((-3i32..=3).prop_map(|v| v as f32), len),
        prop::collection::vec(-10.0f32..10.0, len),
        prop::collection::vec(
            (-1.0f32..1.0, prop::sample::select(&[1e-6f32, 1.0, 1e6][..])).prop_map(|(a, s)| a * s),
            len
        ),
    ]
}

proptest! {
    #![proptest_config(config(256, 5))]

    #[test]
    fn assignment_matches_all_permutations(
        (rows, cols, theta) in (1usize..=5, 0usize..=1)
            .prop_flat_map(|(r, extra)| (Just(r), Just(r + extra), assignment_weights(r * (r + extra)))),
    ) {
        let solver = if rows == cols { Assignment::new(rows) } else { Assignment::rect(rows, cols).unwrap() };
        let mut z = vec![0.5; rows * cols];
        solver.solve(&theta, &mut z).unwrap();
        assert_assignment(&z, rows, cols);
        let best = brute_force_assignment(&theta, rows, cols);
        let max_abs = theta.iter().fold(0.0f64, |a, &t| a.max(f64::from(t).abs()));
        // Documented precision: rows * max|θ| * 2^-32 (plus f64 summation noise).
        let tol = rows as f64 * max_abs * 2f64.powi(-31) + 1e-12 * (1.0 + best.abs());
        prop_assert!((dot(&z, &theta) - best).abs() <= tol, "{} vs brute force {best}", dot(&z, &theta));
    }

    #[test]
    fn assignment_batch_equals_rows(
        rows in prop::collection::vec(assignment_weights(16), 1..30),
    ) {
        let solver = Assignment::new(4);
        let flat = rows.concat();
        let mut out = vec![0.5; flat.len()];
        solver.solve_batch(&flat, 16, &mut out).unwrap();
        for (theta, zb) in flat.chunks(16).zip(out.chunks(16)) {
            let mut z = vec![0.5; 16];
            solver.solve(theta, &mut z).unwrap();
            prop_assert_eq!(&z[..], zb);
        }
    }
}

#[test]
fn assignment_edge_cases() {
    let mut z = [0.5; 4];
    Assignment::new(2).solve(&[0.0; 4], &mut z).unwrap();
    assert_assignment(&z, 2, 2);
    let mut z = [0.5];
    Assignment::new(1).solve(&[-3.0], &mut z).unwrap();
    assert_eq!(z, [1.0]);
    // 1 x 4: picks the best column.
    let mut z = [0.5; 4];
    Assignment::rect(1, 4)
        .unwrap()
        .solve(&[-1.0, 3.0, 2.0, 3.5], &mut z)
        .unwrap();
    assert_eq!(z, [0.0, 0.0, 0.0, 1.0]);
}

// ---------------------------------------------------------------------------------------
// Errors: returned, never panicked on
// ---------------------------------------------------------------------------------------

#[test]
fn topk_invalid_k() {
    let mut z = [0.0; 3];
    assert_eq!(
        TopK::new(0).solve(&[1.0, 2.0, 3.0], &mut z),
        Err(Error::InvalidK { k: 0, m: 3 })
    );
    assert_eq!(
        TopK::new(4).solve(&[1.0, 2.0, 3.0], &mut z),
        Err(Error::InvalidK { k: 4, m: 3 })
    );
    let mut out = [0.0; 6];
    assert_eq!(
        TopK::new(0).solve_batch(&[1.0; 6], 3, &mut out),
        Err(Error::InvalidK { k: 0, m: 3 })
    );
    assert_eq!(
        TopK::new(4).solve_batch(&[1.0; 6], 3, &mut out),
        Err(Error::InvalidK { k: 4, m: 3 })
    );
}

#[test]
fn grid_invalid_costs() {
    let mut z = [0.0; 4];
    let grid = GridShortestPath::new(2);
    // θ = -cost, so a positive θ is a negative cost.
    assert_eq!(
        grid.solve(&[-1.0, 2.0, -1.0, -1.0], &mut z),
        Err(Error::InvalidCost {
            index: 1,
            value: -2.0
        })
    );
    assert!(matches!(
        grid.solve(&[-1.0, -1.0, f32::NAN, -1.0], &mut z),
        Err(Error::InvalidCost { index: 2, value }) if value.is_nan()
    ));
    assert_eq!(
        grid.solve(&[-1.0, -1.0, -1.0, f32::NEG_INFINITY], &mut z),
        Err(Error::InvalidCost {
            index: 3,
            value: f32::INFINITY
        })
    );
    assert_eq!(
        grid.solve(&[f32::INFINITY, -1.0, -1.0, -1.0], &mut z),
        Err(Error::InvalidCost {
            index: 0,
            value: f32::NEG_INFINITY
        })
    );
    for nb in [Neighbourhood::Eight, Neighbourhood::Four] {
        assert_eq!(
            grid_shortest_path(&[1.0, 1.0, -0.5, 1.0], 2, 2, nb),
            Err(Error::InvalidCost {
                index: 2,
                value: -0.5
            })
        );
        assert!(matches!(
            grid_shortest_path(&[f32::NAN, 1.0, 1.0, 1.0], 2, 2, nb),
            Err(Error::InvalidCost { index: 0, value }) if value.is_nan()
        ));
        assert_eq!(
            grid_shortest_path(&[1.0, f32::INFINITY, 1.0, 1.0], 2, 2, nb),
            Err(Error::InvalidCost {
                index: 1,
                value: f32::INFINITY
            })
        );
    }
    // In a batch, a positive θ in the second row is still an invalid cost...
    let mut out = [0.0; 8];
    assert_eq!(
        grid.solve_batch(
            &[-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 0.5, -1.0],
            4,
            &mut out
        ),
        Err(Error::InvalidCost {
            index: 2,
            value: -0.5
        })
    );
    // ...while NaN θ is caught first by the batch's finiteness check.
    assert!(matches!(
        grid.solve_batch(&[-1.0, -1.0, -1.0, -1.0, -1.0, f32::NAN, -1.0, -1.0], 4, &mut out),
        Err(Error::NonFinite { what: "theta", index: 5, value }) if value.is_nan()
    ));
}

#[test]
fn nan_theta_in_batches_is_non_finite() {
    let thetas = [0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0];
    let mut out = [0.0; 6];
    let is_nan_at_4 = |r: imle::Result<()>| matches!(r, Err(Error::NonFinite { what: "theta", index: 4, value }) if f32::is_nan(value));
    assert!(is_nan_at_4(Argmax.solve_batch(&thetas, 3, &mut out)));
    assert!(is_nan_at_4(TopK::new(2).solve_batch(&thetas, 3, &mut out)));
    let tree = SpanningTree::complete(3).unwrap();
    assert!(is_nan_at_4(tree.solve_batch(&thetas, 3, &mut out)));
    let assignment = Assignment::rect(1, 3).unwrap();
    assert!(is_nan_at_4(assignment.solve_batch(&thetas, 3, &mut out)));
    // Direct `solve` of the spanning tree and the assignment check too.
    let mut z = [0.0; 3];
    assert!(matches!(
        tree.solve(&[0.0, f32::INFINITY, 1.0], &mut z),
        Err(Error::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        assignment.solve(&[0.0, 1.0, f32::NEG_INFINITY], &mut z),
        Err(Error::NonFinite { index: 2, .. })
    ));
}

#[test]
fn grid_wrong_sizes() {
    let grid = GridShortestPath::rect(2, 3);
    let mut z = [0.0; 5];
    assert_eq!(
        grid.solve(&[-1.0; 5], &mut z),
        Err(Error::GridSizeMismatch {
            rows: 2,
            cols: 3,
            got: 5
        })
    );
    assert_eq!(
        grid.check_len(7),
        Err(Error::GridSizeMismatch {
            rows: 2,
            cols: 3,
            got: 7
        })
    );
    let mut out = [0.0; 10];
    assert_eq!(
        grid.solve_batch(&[-1.0; 10], 5, &mut out),
        Err(Error::GridSizeMismatch {
            rows: 2,
            cols: 3,
            got: 5
        })
    );
    assert_eq!(
        grid_shortest_path(&[1.0; 7], 2, 3, Neighbourhood::Four),
        Err(Error::GridSizeMismatch {
            rows: 2,
            cols: 3,
            got: 7
        })
    );
    // z shorter than θ.
    let mut short = [0.0; 5];
    assert!(matches!(
        grid.solve(&[-1.0; 6], &mut short),
        Err(Error::LengthMismatch { .. })
    ));
    // Empty grids.
    assert!(matches!(
        GridShortestPath::rect(0, 3).check_len(0),
        Err(Error::InvalidProblem(_))
    ));
    assert!(matches!(
        grid_shortest_path(&[], 3, 0, Neighbourhood::Eight),
        Err(Error::InvalidProblem(_))
    ));
    assert!(matches!(
        GridShortestPath::rect(usize::MAX, 2).check_len(4),
        Err(Error::InvalidProblem(_))
    ));
}

#[test]
fn mismatched_batch_and_out_lengths() {
    let solvers: Vec<(Box<dyn MapSolver>, usize)> = vec![
        (Box::new(Argmax), 4),
        (Box::new(TopK::new(2)), 4),
        (Box::new(GridShortestPath::new(2)), 4),
        (
            Box::new(SpanningTree::new(3, [(0, 1), (1, 2), (0, 2), (2, 2)]).unwrap()),
            4,
        ),
        (Box::new(Assignment::new(2)), 4),
    ];
    for (solver, m) in &solvers {
        let m = *m;
        // Batch not a multiple of m.
        let mut out = vec![0.0; 2 * m + 1];
        assert!(matches!(
            solver.solve_batch(&vec![-1.0; 2 * m + 1], m, &mut out),
            Err(Error::LengthMismatch { .. })
        ));
        // Output of the wrong length.
        let mut out = vec![0.0; 2 * m - 1];
        assert_eq!(
            solver.solve_batch(&vec![-1.0; 2 * m], m, &mut out),
            Err(Error::LengthMismatch {
                what: "output batch",
                expected: 2 * m,
                got: 2 * m - 1
            })
        );
        // m = 0.
        assert!(solver.solve_batch(&[], 0, &mut []).is_err());
    }
}

#[test]
fn spanning_tree_invalid_graphs() {
    // Disconnected: {0, 1} and {2, 3}.
    let err = SpanningTree::new(4, [(0, 1), (2, 3)]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidProblem(msg) if msg.contains("not connected")),
        "{err}"
    );
    // Isolated node.
    assert!(matches!(
        SpanningTree::new(3, [(0, 1), (1, 1)]),
        Err(Error::InvalidProblem(_))
    ));
    // Out-of-range node.
    let err = SpanningTree::new(3, [(0, 1), (1, 3)]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidProblem(msg) if msg.contains("outside")),
        "{err}"
    );
    assert!(matches!(
        SpanningTree::new(0, [(0, 0)]),
        Err(Error::InvalidProblem(_))
    ));
    // No edges at all.
    assert!(matches!(
        SpanningTree::new(1, []),
        Err(Error::InvalidProblem(_))
    ));
    assert!(matches!(
        SpanningTree::complete(1),
        Err(Error::InvalidProblem(_))
    ));
    // Wrong θ length.
    let tree = SpanningTree::complete(3).unwrap();
    let mut z = [0.0; 4];
    assert!(matches!(
        tree.solve(&[1.0; 4], &mut z),
        Err(Error::LengthMismatch {
            expected: 3,
            got: 4,
            ..
        })
    ));
    assert!(matches!(
        tree.solve(&[1.0; 3], &mut z),
        Err(Error::LengthMismatch { .. })
    ));
    let mut out = [0.0; 8];
    assert!(matches!(
        tree.solve_batch(&[1.0; 8], 4, &mut out),
        Err(Error::LengthMismatch { .. })
    ));
    // A single node with a self-loop is a (trivially) valid problem: the tree is empty.
    let mut z = [0.5];
    SpanningTree::new(1, [(0, 0)])
        .unwrap()
        .solve(&[2.0], &mut z)
        .unwrap();
    assert_eq!(z, [0.0]);
}

#[test]
fn assignment_invalid_shapes() {
    assert!(matches!(
        Assignment::rect(3, 2),
        Err(Error::InvalidProblem(_))
    ));
    assert!(matches!(
        Assignment::rect(0, 2),
        Err(Error::InvalidProblem(_))
    ));
    assert!(matches!(
        Assignment::new(0).check_len(0),
        Err(Error::InvalidProblem(_))
    ));
    let solver = Assignment::new(3);
    let mut z = [0.0; 8];
    assert!(matches!(
        solver.solve(&[1.0; 8], &mut z),
        Err(Error::LengthMismatch {
            expected: 9,
            got: 8,
            ..
        })
    ));
    let mut z = [0.0; 8];
    assert!(matches!(
        solver.solve(&[1.0; 9], &mut z),
        Err(Error::LengthMismatch { .. })
    ));
    let mut out = [0.0; 16];
    assert!(matches!(
        solver.solve_batch(&[1.0; 16], 8, &mut out),
        Err(Error::LengthMismatch { .. })
    ));
}

/// `solve` with a state buffer of the wrong length is a typed error for every solver
/// (before, `Argmax`, `TopK` and `from_fn` indexed `z` unchecked and panicked).
#[test]
fn solve_with_a_short_or_long_state_is_an_error() {
    use imle::solver::{
        from_fn, Argmax, Assignment, GridShortestPath, MapSolver, SpanningTree, TopK,
    };
    let user = from_fn(|theta: &[f32], z: &mut [f32]| {
        z.copy_from_slice(theta); // would panic on a length mismatch
        Ok(())
    });
    let solvers: Vec<(&str, Box<dyn MapSolver>, usize)> = vec![
        ("argmax", Box::new(Argmax), 4),
        ("top-k", Box::new(TopK::new(2)), 4),
        ("from_fn", Box::new(user), 4),
        ("grid", Box::new(GridShortestPath::new(2)), 4),
        (
            "spanning tree",
            Box::new(SpanningTree::complete(3).unwrap()),
            3,
        ),
        ("assignment", Box::new(Assignment::new(2)), 4),
    ];
    for (name, solver, m) in &solvers {
        let theta = vec![-1.0f32; *m];
        for len in [0, m - 1, m + 1] {
            let mut z = vec![0.0; len];
            assert!(
                matches!(
                    solver.solve(&theta, &mut z),
                    Err(imle::Error::LengthMismatch { .. })
                ),
                "{name}, z of length {len}"
            );
        }
        let mut z = vec![0.0; *m];
        solver.solve(&theta, &mut z).unwrap();
    }
}
