"""PyTorch (CPU) reference for the speed target of Figure 4: one epoch of the same
discrete 10-subset VAE as `imle-paper fig4 --full --methods imle-sog` (or imle-gumbel).

    pip install torch numpy
    python benches/torch_vae_epoch.py [--threads 2] [--noise sog|gumbel] [--epochs 1]

Same work per epoch as ours: 60,000 MNIST training images (pixels / 255) shuffled, 600
steps of batch 100 (encoder 784-512-256-400, I-MLE top-10 per block of 20 with
SoG(kappa=10, tau=10, s=10) or Gumbel(0,1) noise, PID target lambda = 10, gradient / lambda,
decoder 400-256-512-784, BCE summed over pixels + KL to uniform per block, Adam lr 1e-3),
then the test pass over 10,000 images (batch 100, noisy samples, no gradients).
Prints the train and test wall seconds of every epoch and the process CPU time.
The MNIST files are read from $IMLE_DATA_DIR, datasets/mnist/ or ../shared/datasets/mnist/.
"""
import argparse
import gzip
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn

K, BLOCKS, CATS, LAMBDA, TAU, S = 10, 20, 20, 10.0, 10.0, 10


def load(name):
    dirs = [os.environ.get("IMLE_DATA_DIR", ""), "datasets/mnist", "../shared/datasets/mnist"]
    for d in dirs:
        p = os.path.join(d, name)
        if d and os.path.exists(p):
            with gzip.open(p) as f:
                data = f.read()
            return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
    raise SystemExit(f"{name} not found in {dirs}")


def sog_noise(shape):
    """Eq. 13: (tau/kappa) * (sum_{i=1..s} Gamma(1/kappa, scale kappa/i) - ln s)."""
    conc = torch.full(shape, 1.0 / K)
    total = torch.zeros(shape)
    for i in range(1, S + 1):
        total += torch.distributions.Gamma(conc, torch.full(shape, i / K)).sample()
    return (TAU / K) * (total - math.log(S))


def gumbel_noise(shape):
    u = torch.rand(shape).clamp_(1e-20, 1.0)
    return -torch.log(-torch.log(u))


def topk_mask(theta):
    idx = theta.topk(K, dim=-1).indices
    return torch.zeros_like(theta).scatter_(-1, idx, 1.0)


class ImleTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, noise):
        eps = noise(theta.shape)
        z = topk_mask(theta + eps)
        ctx.save_for_backward(theta, eps, z)
        return z

    @staticmethod
    def backward(ctx, g):
        theta, eps, z = ctx.saved_tensors
        target = topk_mask(theta - LAMBDA * g + eps)
        return (z - target) / LAMBDA, None


def mlp(sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def loss_fn(x_logits, x, logits):
    b = x.shape[0]
    recon = nn.functional.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / b
    q = torch.softmax(logits, -1)
    kl = (q * (torch.log(q + 1e-20) - math.log(1.0 / CATS))).sum() / b
    return recon + kl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--noise", choices=["sog", "gumbel"], default="sog")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    noise = sog_noise if args.noise == "sog" else gumbel_noise
    train = torch.from_numpy(load("train-images-idx3-ubyte.gz"))
    test = torch.from_numpy(load("t10k-images-idx3-ubyte.gz"))
    enc, dec = mlp([784, 512, 256, BLOCKS * CATS]), mlp([BLOCKS * CATS, 256, 512, 784])
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, noise {args.noise}")
    for epoch in range(1, args.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        total = 0.0
        for idx in torch.randperm(train.shape[0]).split(100):
            x = train[idx]
            logits = enc(x).view(-1, BLOCKS, CATS)
            z = ImleTopK.apply(logits, noise)
            loss = loss_fn(dec(z.view(-1, BLOCKS * CATS)), x, logits)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        t1, c1 = time.perf_counter(), time.process_time()
        test_total = 0.0
        with torch.no_grad():
            for x in test.split(100):
                logits = enc(x).view(-1, BLOCKS, CATS)
                z = topk_mask(logits + noise(logits.shape))
                test_total += loss_fn(dec(z.view(-1, BLOCKS * CATS)), x, logits).item()
        t2, c2 = time.perf_counter(), time.process_time()
        print(
            f"epoch {epoch}: train loss {total / 600:.3f} test loss {test_total / 100:.3f}  "
            f"train {t1 - t0:.2f} s (CPU {c1 - c0:.2f} s)  test {t2 - t1:.2f} s (CPU {c2 - c1:.2f} s)"
        )


if __name__ == "__main__":
    main()
