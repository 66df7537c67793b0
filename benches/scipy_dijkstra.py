"""scipy reference of `cargo bench -p imle --bench solvers` (grid_shortest_path_batch70,
8-neighbourhood): the Warcraft MAP solver, a batch of 70 K x K grids.

    pip install scipy numpy && python benches/scipy_dijkstra.py [runs]

Each grid's vertex costs (the data set's 0.8, 1.2, 5.3, 7.7, 9.2, drawn at random) become a
directed 8-neighbourhood graph whose edge u -> v weighs cost(v) (the start cell's cost is a
constant added to every path), solved from the top-left to the bottom-right cell with
`scipy.sparse.csgraph.dijkstra`, and the path read back from the predecessors into a 0/1
grid, as the official code does. Graph construction is part of each solve (a new cost map
every time, as in training). Prints the median, min and max of `runs` (default 20) batches.
"""
import statistics
import sys
import time

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

COSTS = np.array([0.8, 1.2, 5.3, 7.7, 9.2])


def neighbour_pairs(k):
    src, dst = [], []
    idx = np.arange(k * k).reshape(k, k)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            ys = slice(max(0, -dy), k - max(0, dy))
            xs = slice(max(0, -dx), k - max(0, dx))
            yd = slice(max(0, dy), k - max(0, -dy))
            xd = slice(max(0, dx), k - max(0, -dx))
            src.append(idx[ys, xs].ravel())
            dst.append(idx[yd, xd].ravel())
    return np.concatenate(src), np.concatenate(dst)


def solve(costs, pairs):
    k = costs.shape[0]
    src, dst = pairs
    g = csr_matrix((costs.ravel()[dst], (src, dst)), shape=(k * k, k * k))
    _, pred = dijkstra(g, directed=True, indices=0, return_predecessors=True)
    z = np.zeros(k * k)
    v = k * k - 1
    while v >= 0:
        z[v] = 1.0
        v = pred[v]
    return z.reshape(k, k)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rng = np.random.default_rng(0)
    for k in (12, 18, 24, 30):
        pairs = neighbour_pairs(k)
        batch = COSTS[rng.integers(0, len(COSTS), size=(70, k, k))]
        solve(batch[0], pairs)
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            for costs in batch:
                solve(costs, pairs)
            ts.append(time.perf_counter() - t)
        print(f"scipy dijkstra, 70 grids, K = {k}: median {statistics.median(ts) * 1e3:.2f} ms "
              f"(min {min(ts) * 1e3:.2f}, max {max(ts) * 1e3:.2f})")


if __name__ == "__main__":
    main()
