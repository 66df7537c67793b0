"""PyTorch (CPU) timings of the same two workloads as benches/layers.rs.

    pip install torch && python imle-conv/benches/torch_reference.py [runs]

Prints the median, min and max wall time of `runs` (default 10) runs after 2 warm-ups for
each case, and the median CPU time of the process (all threads) per run.
Uses 2 threads (the benchmark machine's cores; `TORCH_THREADS` overrides). The backward
passes run twice: computing the input's gradient (as our layers do for a traced input),
and without it (an input without `requires_grad`, as in training; ours: the `*OnData`
first layers).
"""
import os
import sys
import statistics
import time

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


def median_time(f, runs=None, warmup=2):
    runs = runs or RUNS
    for _ in range(warmup):
        f()
    ts, cs = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        f()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return (
        f"{statistics.median(ts):.4f} s (min {min(ts):.4f}, max {max(ts):.4f}; "
        f"median CPU time {statistics.median(cs):.4f} s)"
    )


def main():
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    enc = nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), BasicBlock(64), BasicBlock(64), nn.MaxPool2d(2, 2),
    ).train()
    x = torch.randn(70, 3, 96, 96)

    def fwd():
        with torch.no_grad():
            return enc(x).mean(1)

    xg = x.clone().requires_grad_()

    def fwd_bwd():
        enc.zero_grad()
        xg.grad = None
        enc(xg).mean(1).sum().backward()

    def fwd_bwd_data():
        enc.zero_grad()
        enc(x).mean(1).sum().backward()

    print(f"warcraft encoder forward (train mode, no grad): {median_time(fwd)}")
    print(f"warcraft encoder forward+backward:              {median_time(fwd_bwd)}")
    print(f"warcraft encoder forward+backward, no input grad: {median_time(fwd_bwd_data)}")
    enc.eval()
    print(f"warcraft encoder forward (eval):                {median_time(fwd)}")

    sel = nn.Sequential(
        nn.Conv1d(200, 100, 3, padding="same"), nn.ReLU(),
        nn.Conv1d(100, 100, 3, padding="same"), nn.ReLU(),
        nn.Conv1d(100, 100, 3, padding="same"),
    )
    e = torch.randn(40, 200, 350)

    def sel_fwd():
        with torch.no_grad():
            return sel(e)

    eg = e.clone().requires_grad_()

    def sel_fwd_bwd():
        sel.zero_grad()
        eg.grad = None
        sel(eg).sum().backward()

    def sel_fwd_bwd_data():
        sel.zero_grad()
        sel(e).sum().backward()

    print(f"l2x selector forward:          {median_time(sel_fwd)}")
    print(f"l2x selector forward+backward: {median_time(sel_fwd_bwd)}")
    print(f"l2x selector forward+backward, no input grad: {median_time(sel_fwd_bwd_data)}")


if __name__ == "__main__":
    main()
