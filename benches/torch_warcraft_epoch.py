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
import torch.nn as nn
import torch.nn.functional as F
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scipy_dijkstra import neighbour_pairs  # noqa: E402  (the same graph as the solver bench)


class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + x)


class CombResnet18Stem(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(BasicBlock(64), BasicBlock(64))
        self.pool = nn.AdaptiveMaxPool2d((k, k))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.pool(self.layer1(x)).mean(dim=1)


def shortest_path(costs, pairs):
    k = costs.shape[0]
    src, dst = pairs
    g = csr_matrix((costs.ravel()[dst] + 1e-12, (src, dst)), shape=(k * k, k * k))
    _, pred = dijkstra(g, directed=True, indices=0, return_predecessors=True)
    z = np.zeros(k * k, dtype=np.float32)
    v = k * k - 1
    while v >= 0:
        z[v] = 1.0
        v = pred[v]
    return z.reshape(k, k)


def solve_batch(w, pairs):
    return torch.from_numpy(np.stack([shortest_path(c, pairs) for c in w.detach().numpy()]))


class Blackbox(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, lam, pairs):
        z = solve_batch(w, pairs)
        ctx.save_for_backward(w, z)
        ctx.lam, ctx.pairs = lam, pairs
        return z

    @staticmethod
    def backward(ctx, g):
        w, z = ctx.saved_tensors
        w2 = w + ctx.lam * g
        w2 = w2 - torch.clamp(w2.flatten(1).min(1).values, max=0).view(-1, 1, 1)
        z2 = solve_batch(w2, ctx.pairs)
        return -(z - z2) / ctx.lam, None, None


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
    net = CombResnet18Stem(k)
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    rng = np.random.default_rng(0)
    for epoch in range(1, a.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = rng.permutation(a.maps)
        for i in range(0, a.maps, 70):
            idx = order[i:i + 70]
            x, t = norm(maps[idx]), paths[idx]
            z = Blackbox.apply(net(x), 20.0, pairs)
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
