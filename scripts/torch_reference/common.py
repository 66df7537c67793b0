"""Helpers shared by the PyTorch references of our trained experiments (`warcraft.py`,
...): data files in our layout, seeding, per-epoch CSV records and fixture files.

Each reference reads the files `imle-paper` reads (generated or real), builds the same
network from PyTorch's own layers with the same initialisation *distributions* as ours,
the same estimator, loss, optimiser (torch.optim.Adam, PyTorch's defaults unless the
protocol says otherwise), schedule and data-order rules, and writes one CSV row per epoch.
Random draws (weights, shuffles, noise) come from PyTorch / numpy generators, so the two
sides agree in distribution, not bit for bit: curve parity compares seed spreads, and the
step fixtures (`fixture` subcommands) fix every random input so that one step can be
compared exactly.
"""
import csv
import gzip
import os

import numpy as np
import torch


def load_npy(path):
    """`path` or `path.gz`, as our loader accepts."""
    if os.path.exists(path):
        return np.load(path)
    with gzip.open(path + ".gz", "rb") as f:
        return np.load(f)


def seed_all(seed):
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def step_drops(epochs, milestones=None):
    """The epochs after which the learning rate drops: `milestones`, else 60 % and 80 % of
    `epochs` (floor; 30 and 40 of 50), zeros left out - ours."""
    if milestones is not None:
        return list(milestones)
    return [m for m in (epochs * 3 // 5, epochs * 4 // 5) if m > 0]


def lr_of(base, epoch, drops, gamma=0.1):
    """Epoch `epoch` (from 1) uses `base * gamma^#{m : epoch > m}` (MultiStepLR stepped per
    epoch)."""
    return base * gamma ** sum(epoch > m for m in drops)


class EpochCsv:
    """Appends one row per epoch to `path` (header first)."""

    def __init__(self, path, fields):
        self.path, self.fields = path, fields
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(fields)

    def add(self, row):
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in self.fields])


def save_fixture(path, tensors, meta):
    """A safetensors file of float32 / uint8 arrays with string metadata."""
    from safetensors.numpy import save_file

    out = {}
    for k, v in tensors.items():
        a = v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
        if a.dtype != np.uint8:
            a = a.astype(np.float32)
        out[k] = np.ascontiguousarray(a)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(out, path, metadata={k: str(v) for k, v in meta.items()})
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB, {len(out)} tensors)")
