"""PyTorch reference of Figure 4 (discrete 10-subset VAE on MNIST), on our data files.

    pip install torch numpy safetensors
    python scripts/torch_reference/vae.py train --seed 0 --epochs 5 \
        --out figures/parity/fig4/torch-imle-sog-seed0.csv
    python scripts/torch_reference/vae.py fixture --out tests/fixtures/vae_step.safetensors

What each side follows (ours: `src/vae/`): the official discrete-VAE notebook. Encoder
784-512-256-400 (ReLU), 20 blocks of 20 logits; I-MLE top-10 per block with SoG(kappa = 10,
tau = 10, s = 10) noise (Eq. 13, Gamma scale kappa/i: the paper's form, not the notebook's
rate), PID target lambda = 10 reusing the forward noise, gradient (z - z') / lambda;
decoder 400-256-512-784 (ReLU); loss per example = sigmoid cross-entropy summed over the
784 pixels (pixels / 255 as labels, not binarised) + sum over blocks of KL(softmax(block)
|| uniform(20)), averaged over the batch. Both sides initialise as Keras: Glorot-uniform
weights, zero biases. Adam lr 1e-3 with Keras' eps 1e-7, batch 100, the 60,000 training
images reshuffled every epoch. Test loss after every epoch: the mean over test batches of
100 of the batch-mean loss with a noisy sample (no MAP), as the official notebook.

The fixture's weights are not stored (the model has 1.27 M parameters): both sides draw
them from the same integer generator (`lcg_uniform`, `tests/parity/vae.rs` has its twin).
Gradients of the large layers are compared through 8 fixed random projections, their
norm and 4,096 fixed entries; the small ones entry by entry.
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import EpochCsv, save_fixture, seed_all  # noqa: E402

K, BLOCKS, CATS, LAMBDA, TAU, S = 10, 20, 20, 10.0, 10.0, 10
SIZES = [(784, 512), (512, 256), (256, 400), (400, 256), (256, 512), (512, 784)]
NAMES = ["0.0", "0.2", "0.4", "1.0", "1.2", "1.4"]  # ours: (encoder, decoder), ReLUs between
FULL_MAX = 65_536  # tensors up to this size are compared entry by entry
PROJECTIONS, SAMPLES = 8, 4096


def lcg(seed, n):
    """n values of x <- (1664525 x + 1013904223) mod 2^32 after `seed`, as uint32."""
    out = np.empty(n, dtype=np.uint64)
    x = np.uint64(seed & 0xFFFFFFFF)
    a, c, m = np.uint64(1664525), np.uint64(1013904223), np.uint64(1 << 32)
    for i in range(n):  # vectorised below for long runs
        if i == 4096:
            break
        x = (a * x + c) % m
        out[i] = x
    if n > 4096:
        # jump-ahead in blocks: x_{i+4096} = A x_i + C (mod 2^32)
        A, C = np.uint64(1), np.uint64(0)
        for _ in range(4096):
            A, C = (a * A) % m, (a * C + c) % m
        for i in range(4096, n):
            out[i] = (A * out[i - 4096] + C) % m
    return out


def lcg_uniform(seed, n, limit):
    """n values in [-limit, limit): limit * (2 u - 1), u = x / 2^32 (f64, then f32)."""
    u = lcg(seed, n).astype(np.float64) / float(1 << 32)
    return (limit * (2.0 * u - 1.0)).astype(np.float32)


def sog_noise(shape):
    i = torch.arange(1, S + 1, dtype=torch.float64)
    gamma = torch.distributions.Gamma(torch.full((S,), 1.0 / K, dtype=torch.float64), i / K)
    return ((TAU / K) * (gamma.sample(shape).sum(-1) - math.log(S))).float()


def topk_mask(theta):
    return torch.zeros_like(theta).scatter_(-1, theta.topk(K, dim=-1).indices, 1.0)


class ImleTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, eps):
        z = topk_mask(theta + eps)
        ctx.save_for_backward(theta, eps, z)
        return z

    @staticmethod
    def backward(ctx, g):
        theta, eps, z = ctx.saved_tensors
        return (z - topk_mask(theta - LAMBDA * g + eps)) / LAMBDA, None


class Vae(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in SIZES])
        for m in self.layers:
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def encode(self, x):
        h = F.relu(self.layers[0](x))
        return self.layers[2](F.relu(self.layers[1](h))).view(-1, BLOCKS, CATS)

    def decode(self, z):
        h = F.relu(self.layers[3](z.reshape(-1, BLOCKS * CATS)))
        return self.layers[5](F.relu(self.layers[4](h)))

    def named_like_ours(self):
        out = {}
        for name, m in zip(NAMES, self.layers):
            out[f"{name}.weight"], out[f"{name}.bias"] = m.weight, m.bias
        return out


def vae_loss(x_logits, x, logits):
    b = x.shape[0]
    recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / b
    q = torch.softmax(logits, -1)
    kl = (q * (torch.log(q + 1e-20) - math.log(1.0 / CATS))).sum() / b
    return recon + kl, recon, kl


def load_images(folder, name):
    with gzip.open(os.path.join(folder, name)) as f:
        data = f.read()
    return torch.from_numpy(np.frombuffer(data, np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0)


def train(a):
    torch.set_num_threads(a.threads)
    rng = seed_all(a.seed)
    xtr = load_images(a.data, "train-images-idx3-ubyte.gz")
    xte = load_images(a.data, "t10k-images-idx3-ubyte.gz")
    net = Vae()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    log = EpochCsv(a.out, ["epoch", "train_loss", "test_loss", "train_seconds"])
    for epoch in range(1, a.epochs + 1):
        t0, total, steps = time.perf_counter(), 0.0, 0
        for idx in np.array_split(rng.permutation(len(xtr)), math.ceil(len(xtr) / a.batch)):
            x = xtr[idx]
            logits = net.encode(x)
            z = ImleTopK.apply(logits, sog_noise(logits.shape))
            loss, _, _ = vae_loss(net.decode(z), x, logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        secs = time.perf_counter() - t0
        test, n = 0.0, 0
        with torch.no_grad():
            for x in xte.split(100):
                logits = net.encode(x)
                test += vae_loss(net.decode(topk_mask(logits + sog_noise(logits.shape))), x, logits)[0].item()
                n += 1
        log.add(dict(epoch=epoch, train_loss=total / steps, test_loss=test / n, train_seconds=round(secs, 2)))
        print(f"vae seed {a.seed} epoch {epoch}: train {total / steps:.3f}, test {test / n:.3f}, {secs:.1f} s", flush=True)


def compare_set(name, t, out):
    """Entries of `t`, or its projections, norm and sampled entries."""
    v = t.detach().double().flatten().numpy()
    if v.size <= FULL_MAX:
        out[name] = t.detach().clone()
        return
    proj = np.stack([lcg_uniform(1000 + j, v.size, 1.0).astype(np.float64) for j in range(PROJECTIONS)])
    out[f"{name}#proj"] = (proj @ v).astype(np.float32)
    out[f"{name}#norm"] = np.array([np.sqrt((v * v).sum())], dtype=np.float32)
    idx = (lcg(77, SAMPLES) % np.uint64(v.size)).astype(np.int64)
    out[f"{name}#sample"] = v[idx].astype(np.float32)


def fixture(a):
    torch.manual_seed(a.seed)
    x = load_images(a.data, "train-images-idx3-ubyte.gz")[: a.batch]
    net = Vae()
    with torch.no_grad():
        for j, (name, p) in enumerate(net.named_like_ours().items()):
            fan_out, fan_in = (p.shape[0], p.shape[1]) if p.dim() == 2 else (p.shape[0], 1)
            limit = math.sqrt(6.0 / (fan_in + fan_out)) if p.dim() == 2 else 0.05
            p.copy_(torch.from_numpy(lcg_uniform(j + 1, p.numel(), limit)).view_as(p))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    logits = net.encode(x)
    logits.retain_grad()
    eps = sog_noise(logits.shape)
    z = ImleTopK.apply(logits, eps)
    x_logits = net.decode(z)
    loss, recon, kl = vae_loss(x_logits, x, logits)
    opt.zero_grad()
    loss.backward()
    out = {"x": x, "noise": eps, "logits": logits.detach().clone(), "z": z.detach().clone(),
           "loss": torch.stack([loss, recon, kl]).detach(), "logits_grad": logits.grad.detach().clone()}
    compare_set("x_logits", x_logits, out)
    for name, p in net.named_like_ours().items():
        compare_set(f"grad/{name}", p.grad, out)
    opt.step()
    for name, p in net.named_like_ours().items():
        compare_set(f"after/{name}", p, out)
    save_fixture(a.out, out, {"batch": a.batch, "lr": 1e-3, "eps": 1e-7, "seed": a.seed,
                              "torch": torch.__version__, "full_max": FULL_MAX})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="datasets/mnist")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--batch", type=int, default=100)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", required=True)
    f = sub.add_parser("fixture")
    f.add_argument("--data", default="datasets/mnist")
    f.add_argument("--batch", type=int, default=8)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default="tests/fixtures/vae_step.safetensors")
    a = ap.parse_args()
    train(a) if a.cmd == "train" else fixture(a)


if __name__ == "__main__":
    main()
