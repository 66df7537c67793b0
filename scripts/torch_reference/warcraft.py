"""PyTorch reference of Table 2 (Warcraft shortest paths), on our data files.

    pip install torch numpy scipy safetensors
    python scripts/torch_reference/warcraft.py train --data datasets/warcraft/12x12 \
        --method bb --seed 0 --maps 3000 --epochs 12 --out figures/parity/warcraft/torch-bb-0.csv
    python scripts/torch_reference/warcraft.py fixture --data datasets/warcraft/12x12 \
        --out tests/fixtures/warcraft_step.safetensors

What each side follows (ours: `src/warcraft/`):
- network: the official CombResnet18 (ResNet18's conv 7x7/2 (64, no bias) -> batch norm ->
  ReLU -> max pool 3x3/2 -> layer1 = two BasicBlocks(64) -> AdaptiveMaxPool2d((K, K)) ->
  mean over channels), built from torch.nn layers here. Initialisation: both sides use
  torch.nn's defaults (convolutions uniform in +-1/sqrt(fan_in), batch norm 1 / 0, momentum
  0.1, eps 1e-5). The official code builds torchvision's resnet18, which re-draws the
  convolutions kaiming-normal (fan_out): neither side follows that.
- inputs: per-channel mean and (population) std of all training images of the file.
- solver: Dijkstra from the top-left to the bottom-right cell, 8-neighbourhood, vertex
  costs, start cell counted (scipy here; ours `imle::solver::GridShortestPath`). Ties: the
  two solvers may break them differently (rare on real-valued network costs; the accuracy
  counts any optimal path).
- BB (lambda = 20): w' = w + lambda dL/dz shifted by its minimum when negative (the
  official `translate_weights`), gradient -(z - z')/lambda.
- I-MLE M-M (lambda = 50): no noise, w' = lambda dL/dz (alpha = 0) shifted the same way,
  gradient -(z - z')/lambda.
- loss: Hamming, (z (1 - t) + (1 - z) t).mean(0).sum(); Adam lr 5e-4 (PyTorch's betas and
  eps), x0.1 after 60 % and 80 % of the epochs (30 and 40 of 50) unless --milestones;
  batch 70, the first --maps training maps reshuffled every epoch, the last batch smaller.
- metrics after every epoch, on the first --eval-maps validation and test maps, eval mode:
  accuracy = share whose predicted path costs the optimum in true costs (relative 1e-6),
  exact = share predicting the true path; train loss = mean over the epoch's batches.
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
from common import EpochCsv, load_npy, lr_of, save_fixture, seed_all, step_drops  # noqa: E402

LAMBDA = {"bb": 20.0, "imle-mm": 50.0}


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


class CombResnet18(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(BasicBlock(64), BasicBlock(64))
        self.pool = nn.AdaptiveMaxPool2d((k, k))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.pool(self.layer1(x)).mean(dim=1)

    def named_like_ours(self):
        """Our parameter and buffer names (`save_safetensors` of `warcraft::model::Trunk`)
        -> this module's tensors."""
        out = {"0.0.weight": self.conv1.weight}
        bn = lambda pre, b: {f"{pre}.scale": b.weight, f"{pre}.bias": b.bias,
                             f"{pre}.running_mean": b.running_mean, f"{pre}.running_var": b.running_var}
        out.update(bn("0.1", self.bn1))
        for i, blk in enumerate(self.layer1):
            out[f"1.{i}.conv1.weight"] = blk.conv1.weight
            out.update(bn(f"1.{i}.bn1", blk.bn1))
            out[f"1.{i}.conv2.weight"] = blk.conv2.weight
            out.update(bn(f"1.{i}.bn2", blk.bn2))
        return out


def neighbour_pairs(k):
    src, dst = [], []
    idx = np.arange(k * k).reshape(k, k)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            ys, xs = slice(max(0, -dy), k - max(0, dy)), slice(max(0, -dx), k - max(0, dx))
            yd, xd = slice(max(0, dy), k - max(0, -dy)), slice(max(0, dx), k - max(0, -dx))
            src.append(idx[ys, xs].ravel())
            dst.append(idx[yd, xd].ravel())
    return np.concatenate(src), np.concatenate(dst)


def shortest_path(costs, pairs):
    """0/1 grid of the cheapest path (vertex costs >= 0; an edge u -> v weighs cost(v), and
    1e-12 more so that scipy keeps zero-cost edges)."""
    k = costs.shape[0]
    src, dst = pairs
    g = csr_matrix((costs.ravel().astype(np.float64)[dst] + 1e-12, (src, dst)), shape=(k * k, k * k))
    _, pred = dijkstra(g, directed=True, indices=0, return_predecessors=True)
    z = np.zeros(k * k, dtype=np.float32)
    v = k * k - 1
    while v >= 0:
        z[v] = 1.0
        v = pred[v]
    return z.reshape(k, k)


def solve_batch(w, pairs):
    return torch.from_numpy(np.stack([shortest_path(c, pairs) for c in w.detach().double().numpy()]))


def shift_negative(w):
    """Each instance raised by its most negative cost (none if all are >= 0)."""
    return w - torch.clamp(w.flatten(1).min(1).values, max=0).view(-1, 1, 1)


class PathThrough(torch.autograd.Function):
    """Dijkstra forward; backward BB (alpha = 1: w' = w + lambda g) or I-MLE M-M (alpha = 0:
    w' = lambda g), both -(z - z') / lambda. Keeps the last target path for the fixture."""

    last_target = None

    @staticmethod
    def forward(ctx, w, lam, alpha, pairs):
        z = solve_batch(w, pairs)
        ctx.save_for_backward(w, z)
        ctx.lam, ctx.alpha, ctx.pairs = lam, alpha, pairs
        return z

    @staticmethod
    def backward(ctx, g):
        w, z = ctx.saved_tensors
        w2 = shift_negative(ctx.alpha * w + ctx.lam * g)
        z2 = solve_batch(w2, ctx.pairs)
        PathThrough.last_target = z2
        return -(z - z2) / ctx.lam, None, None, None


def hamming(z, t):
    return (z * (1 - t) + (1 - z) * t).mean(0).sum()


class Data:
    def __init__(self, folder):
        load = lambda s, f: load_npy(os.path.join(folder, f"{s}_{f}.npy"))
        self.maps = {s: load(s, "maps") for s in ("train", "val", "test")}
        self.paths = {s: load(s, "shortest_paths").astype(np.float32) for s in self.maps}
        self.weights = {s: load(s, "vertex_weights").astype(np.float32) for s in self.maps}
        px = self.maps["train"].reshape(-1, 3).astype(np.float64)
        self.mean = px.mean(0)
        self.std = np.sqrt(np.maximum((px * px).mean(0) - self.mean ** 2, 1e-12))
        self.k = self.paths["train"].shape[1]

    def images(self, split, idx):
        m = self.maps[split][idx].astype(np.float32)
        x = (m - self.mean.astype(np.float32)) / self.std.astype(np.float32)
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def evaluate(net, data, split, n, pairs):
    net.eval()
    idx = np.arange(min(n, len(data.maps[split])))
    acc = exact = 0
    with torch.no_grad():
        for i in range(0, len(idx), 100):
            b = idx[i:i + 100]
            z = solve_batch(net(data.images(split, b)), pairs).numpy()
            c, t = data.weights[split][b], data.paths[split][b]
            pred = (z * c).reshape(len(b), -1).sum(1, dtype=np.float64)
            best = (t * c).reshape(len(b), -1).sum(1, dtype=np.float64)
            acc += int((np.abs(pred - best) <= 1e-6 * best).sum())
            exact += int((z == t).reshape(len(b), -1).all(1).sum())
    net.train()
    return acc / len(idx), exact / len(idx)


def train(a):
    torch.set_num_threads(a.threads)
    rng = seed_all(a.seed)
    data = Data(a.data)
    pairs = neighbour_pairs(data.k)
    net = CombResnet18(data.k)
    if a.init:  # the same start as another run: weights by our names
        from safetensors.numpy import load_file

        init = load_file(a.init)
        with torch.no_grad():
            for name, t in net.named_like_ours().items():
                t.copy_(torch.from_numpy(init[name]).view_as(t))
    order_of = np.load(a.order) if a.order else None  # (epochs, maps): the batch order
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    drops = step_drops(a.epochs, a.milestones)
    lam, alpha = LAMBDA[a.method], 1.0 if a.method == "bb" else 0.0
    log = EpochCsv(a.out, ["epoch", "lr", "train_loss", "val_accuracy", "test_accuracy",
                           "test_exact", "train_seconds"])
    n = min(a.maps, len(data.maps["train"]))
    for epoch in range(1, a.epochs + 1):
        lr = lr_of(a.lr, epoch, drops)
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        order, losses = rng.permutation(n), []
        if order_of is not None:
            order = order_of[epoch - 1]
        for i in range(0, n, a.batch):
            idx = order[i:i + a.batch]
            t = torch.from_numpy(data.paths["train"][idx])
            z = PathThrough.apply(net(data.images("train", idx)), lam, alpha, pairs)
            loss = hamming(z, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        secs = time.perf_counter() - t0
        val, _ = evaluate(net, data, "val", a.eval_maps, pairs)
        test, test_exact = evaluate(net, data, "test", a.eval_maps, pairs)
        log.add(dict(epoch=epoch, lr=lr, train_loss=np.mean(losses), val_accuracy=val,
                     test_accuracy=test, test_exact=test_exact, train_seconds=round(secs, 2)))
        print(f"{a.method} seed {a.seed} epoch {epoch}: loss {np.mean(losses):.4f}, "
              f"val {val:.3f}, test {test:.3f} (exact {test_exact:.3f}), {secs:.1f} s", flush=True)


MULTI_STEPS = 8


def multi_batch(step, n):
    """Step `step`'s maps of the multi-step fixture: a rotating half of the first `n`."""
    h = n // 2
    return (np.arange(h) + step * h) % n


def fixture(a):
    """One training step of each method from the same weights and batch, every quantity
    our test compares (`tests/parity.rs`)."""
    torch.manual_seed(a.seed)
    data = Data(a.data)
    pairs = neighbour_pairs(data.k)
    idx = np.arange(a.batch)
    maps = data.maps["train"][idx]
    out = {"maps": maps, "paths": data.paths["train"][idx],
           "mean": data.mean.astype(np.float32), "std": data.std.astype(np.float32)}
    init = CombResnet18(data.k)
    for name, t in init.named_like_ours().items():
        out[f"init/{name}"] = t.detach().clone()
    x = data.images("train", idx)
    t = torch.from_numpy(data.paths["train"][idx])
    for method in ("bb", "imle-mm"):
        net = CombResnet18(data.k)
        net.load_state_dict(init.state_dict())
        opt = torch.optim.Adam(net.parameters(), lr=5e-4)
        w = net(x)
        w.retain_grad()
        z = PathThrough.apply(w, LAMBDA[method], 1.0 if method == "bb" else 0.0, pairs)
        loss = hamming(z, t)
        opt.zero_grad()
        loss.backward()
        out[f"{method}/costs"] = w.detach().clone()
        out[f"{method}/path"] = z
        out[f"{method}/target_path"] = PathThrough.last_target
        out[f"{method}/loss"] = loss.detach().reshape(1)
        out[f"{method}/costs_grad"] = w.grad.detach().clone()
        named = net.named_like_ours()
        for name, p in named.items():
            if p.requires_grad:
                out[f"{method}/grad/{name}"] = p.grad.detach().clone()
        opt.step()
        for name, p in net.named_like_ours().items():
            out[f"{method}/after/{name}"] = p.detach().clone()
        net.eval()
        with torch.no_grad():
            out[f"{method}/eval_costs"] = net(x)
    # Several BB steps in a row (Adam's later steps, running statistics accumulating,
    # nothing carried over between steps but the weights and the optimiser's state).
    net = CombResnet18(data.k)
    net.load_state_dict(init.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=5e-4)
    losses = []
    for s in range(MULTI_STEPS):
        b = multi_batch(s, a.batch)
        z = PathThrough.apply(net(data.images("train", b)), LAMBDA["bb"], 1.0, pairs)
        loss = hamming(z, torch.from_numpy(data.paths["train"][b]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    out["multi/losses"] = np.array(losses, dtype=np.float32)
    for name, p in net.named_like_ours().items():
        out[f"multi/after/{name}"] = p.detach().clone()
    save_fixture(a.out, out, {"k": data.k, "batch": a.batch, "lr": 5e-4, "seed": a.seed,
                              "torch": torch.__version__, "data": a.data})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="datasets/warcraft/12x12")
    t.add_argument("--method", choices=sorted(LAMBDA), default="bb")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--maps", type=int, default=10_000)
    t.add_argument("--eval-maps", type=int, default=1000)
    t.add_argument("--epochs", type=int, default=50)
    t.add_argument("--milestones", type=int, nargs="*")
    t.add_argument("--batch", type=int, default=70)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--init", help="initial weights (safetensors, our names)")
    t.add_argument("--order", help="batch order (.npy, epochs x maps)")
    t.add_argument("--out", required=True)
    f = sub.add_parser("fixture")
    f.add_argument("--data", default="datasets/warcraft/12x12")
    f.add_argument("--batch", type=int, default=6)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default="tests/fixtures/warcraft_step.safetensors")
    a = ap.parse_args()
    train(a) if a.cmd == "train" else fixture(a)


if __name__ == "__main__":
    main()
