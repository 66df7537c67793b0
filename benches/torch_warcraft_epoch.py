"""PyTorch (CPU) reference for the speed target of Table 2: one epoch of the same network,
batch and method as `imle-paper table2 --full --methods bb`, on the same generated maps
(datasets/warcraft/12x12/, written by `imle-paper data generate warcraft --k 12`).

    pip install torch numpy scipy
    python benches/torch_warcraft_epoch.py [--threads 2] [--maps 2100] [--epochs 1]

Same work per epoch as ours: the first `--maps` training maps shuffled, steps of batch 70:
inputs normalised per channel with training-set statistics; ResNet18's first block as
the official CombResnet18 (conv 7x7/2 (64, no bias) -> batch norm -> ReLU -> max pool
3x3/2 -> two BasicBlocks(64) -> adaptive max pool to K x K -> mean over channels = costs),
written out without torchvision; blackbox differentiation (lambda = 20) through scipy's
Dijkstra (the official solver's protocol: 8-neighbourhood, vertex costs) per map, one
solve forward and one backward; Hamming loss; Adam lr 5e-4. The input image needs no
gradient (PyTorch skips it, as ours does). Then the evaluation ours does after every
epoch: the first `--eval-maps` validation and test maps, no gradients, Dijkstra on the
predicted costs. Prints the train and evaluation wall seconds of every epoch.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "torch_reference"))
# The network, solver and BB estimator of the PyTorch reference of Table 2.
from warcraft import CombResnet18, PathThrough, neighbour_pairs, solve_batch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--maps", type=int, default=2100)
    ap.add_argument("--eval-maps", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--data", default="datasets/warcraft/12x12")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    load = lambda s, f: np.load(f"{a.data}/{s}_{f}.npy")
    maps = load("train", "maps")
    mean = maps.reshape(-1, 3).mean(0)
    std = maps.reshape(-1, 3).std(0)
    norm = lambda m: torch.from_numpy(((m - mean) / std).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    paths = torch.from_numpy(load("train", "shortest_paths").astype(np.float32))
    k = paths.shape[1]
    pairs = neighbour_pairs(k)
    net = CombResnet18(k)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    rng = np.random.default_rng(0)
    for epoch in range(1, a.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = rng.permutation(a.maps)
        for i in range(0, a.maps, 70):
            idx = order[i:i + 70]
            x, t = norm(maps[idx]), paths[idx]
            z = PathThrough.apply(net(x), 20.0, 1.0, pairs)
            loss = (z * (1 - t) + (1 - z) * t).mean(0).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        t1 = time.perf_counter()
        net.eval()
        with torch.no_grad():
            for split in ("val", "test"):
                m = load(split, "maps")[: a.eval_maps]
                for i in range(0, len(m), 100):
                    solve_batch(net(norm(m[i:i + 100])), pairs)
        t2 = time.perf_counter()
        print(f"epoch {epoch}: train {t1 - t0:.2f} s ({a.maps} maps), eval {t2 - t1:.2f} s "
              f"({2 * a.eval_maps} maps), threads {a.threads}")


if __name__ == "__main__":
    main()
