"""PyTorch reference of Table 1 (learning to explain, aroma), on our data files.

    pip install torch numpy safetensors
    python scripts/torch_reference/l2x.py train --data datasets/beer --method imle-sog \
        --seed 0 --out figures/parity/table1/torch-imle-sog-seed0.csv
    python scripts/torch_reference/l2x.py fixture --out tests/fixtures/l2x_step.safetensors

What each side follows (ours: `src/explain/`, `imle::baselines`):
- data: the official notebook's encoding: PAD 0, START 1, UNK 2, training tokens from 3
  in order of appearance; held-out OOV -> UNK, annotation OOV -> PAD; `split(" ")`;
  padding and truncation at the front to --maxlen; frozen embeddings (zeros for words
  without one).
- selector: Conv1d(200 -> 100, 3, same, ReLU) = h; global max pool -> Linear(100, ReLU);
  two Conv1d(100, 3, same, ReLU) on h; global tiled ++ local -> dropout 0.2 ->
  Conv1d(200 -> 100, 1, ReLU) -> Conv1d(100 -> 1, 1) = theta. Predictor: sum(emb z) / k ->
  Linear(250, ReLU) -> Linear(1, sigmoid); MSE. Both sides initialise as Keras (the
  official TensorFlow code): Glorot-uniform kernels, zero biases (not torch.nn's default).
- estimators: I-MLE (PID target lambda = 1000, the forward noise reused, gradient z - z',
  no 1/lambda) with SoG(k, tau = 30, s = 10) noise (Eq. 13: Gamma shape 1/k, scale k/i);
  SoftSub (Xie & Ermon, t = 0.5); L2X (Chen et al.: k Gumbel-softmax samples, element-wise
  max, t = 0.1). Test-time selection: top-k of theta, no noise.
- Adam with Keras' defaults (lr 1e-3, eps 1e-7), batch 40, 20 epochs, reshuffled every
  epoch (last batch smaller); the held-out reviews split 50/50 into validation and test,
  a different split per seed; after every epoch: validation and test MSE, subset
  precision on the annotated reviews (a selected non-padding token is correct when its
  position in the review lies in an aroma range [a, b); denominator sum of max(selected,
  k)). The reported run is the epoch with the best validation MSE.
"""
import argparse
import json
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

EMB, FILTERS, HIDDEN = 200, 100, 250


def sog_noise(shape, k, tau, s=10, gen=None):
    i = torch.arange(1, s + 1, dtype=torch.float64)
    gamma = torch.distributions.Gamma(torch.full((s,), 1.0 / k, dtype=torch.float64), i / k)  # rate i/k
    return ((tau / k) * (gamma.sample(shape).sum(-1) - math.log(s))).float()


def gumbel(shape):
    u = torch.rand(shape).clamp(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def topk_mask(theta, k):
    return torch.zeros_like(theta).scatter_(-1, theta.topk(k, dim=-1).indices, 1.0)


class ImleTopK(torch.autograd.Function):
    """z = topk(theta + eps); backward z - topk(theta - lambda g + eps) (no 1/lambda)."""

    @staticmethod
    def forward(ctx, theta, eps, k, lam):
        z = topk_mask(theta + eps, k)
        ctx.save_for_backward(theta, eps, z)
        ctx.k, ctx.lam = k, lam
        return z

    @staticmethod
    def backward(ctx, g):
        theta, eps, z = ctx.saved_tensors
        return z - topk_mask(theta - ctx.lam * g + eps, ctx.k), None, None, None


def softsub(theta, g, k, t):
    """Xie & Ermon's Algorithm 2 with keys theta + g."""
    scores, khot = theta + g, 0
    for j in range(k):
        a = torch.softmax(scores / t, dim=-1)
        khot = khot + a
        if j + 1 < k:
            scores = scores + torch.log(torch.clamp(1 - a, min=torch.finfo(torch.float32).tiny))
    return khot


def l2x(theta, g, k, t):
    """Chen et al.: k Gumbel-softmax samples (g: (B, k, M)), element-wise max."""
    return torch.softmax((theta.unsqueeze(1) + g) / t, dim=-1).amax(dim=1)


def relaxed(method, theta, k, tau, noise=None):
    """The training-time selection and the noise it drew."""
    if method == "imle-sog":
        eps = sog_noise(theta.shape, k, tau) if noise is None else noise
        return ImleTopK.apply(theta, eps, k, 1000.0), eps
    if method == "softsub":
        g = gumbel(theta.shape) if noise is None else noise
        return softsub(theta, g, k, 0.5), g
    g = gumbel((theta.shape[0], k, theta.shape[1])) if noise is None else noise
    return l2x(theta, g, k, 0.1), g


class Explainer(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(EMB, FILTERS, 3, padding=1)
        self.g = nn.Linear(FILTERS, FILTERS)
        self.c2 = nn.Conv1d(FILTERS, FILTERS, 3, padding=1)
        self.c3 = nn.Conv1d(FILTERS, FILTERS, 3, padding=1)
        self.c4 = nn.Conv1d(2 * FILTERS, FILTERS, 1)
        self.c5 = nn.Conv1d(FILTERS, 1, 1)
        self.p1 = nn.Linear(EMB, HIDDEN)
        self.p2 = nn.Linear(HIDDEN, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def logits(self, x, dropout=0.0):
        h = F.relu(self.c1(x))
        g = F.relu(self.g(h.amax(dim=2)))
        local = F.relu(self.c3(F.relu(self.c2(h))))
        both = torch.cat([g.unsqueeze(2).expand_as(local), local], dim=1)
        both = F.dropout(both, dropout, self.training and dropout > 0)
        return self.c5(F.relu(self.c4(both))).squeeze(1)

    def predict(self, x, z, k):
        pooled = (x * z.unsqueeze(1)).sum(2) / k
        return torch.sigmoid(self.p2(F.relu(self.p1(pooled))))

    def named_like_ours(self):
        """Our names (`explain::model::ExplainerSpec`) -> this module's parameters."""
        layers = {"0.0.0": self.c1, "0.0.1": self.g, "0.1.0": self.c2, "0.1.1": self.c3,
                  "0.2.0": self.c4, "0.2.1": self.c5, "1.0": self.p1, "1.1": self.p2}
        out = {}
        for name, m in layers.items():
            out[f"{name}.weight"], out[f"{name}.bias"] = m.weight, m.bias
        return out


# ---- data ---------------------------------------------------------------------------

def read_reviews(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            scores, text = line.split("\t", 1)
            out.append((float(scores.split()[1]), text.split(" ")))
    return out


def encode(reviews, vocab, oov, maxlen):
    ids = np.zeros((len(reviews), maxlen), dtype=np.int64)
    for r, (_, toks) in enumerate(reviews):
        toks = toks[-maxlen:]
        ids[r, maxlen - len(toks):] = [vocab.get(t, oov) for t in toks]
    return torch.from_numpy(ids), torch.tensor([y for y, _ in reviews], dtype=torch.float32)


class Beer:
    def __init__(self, folder, maxlen):
        self.train = read_reviews(os.path.join(folder, "reviews.aspect1.train.txt"))
        self.held = read_reviews(os.path.join(folder, "reviews.aspect1.heldout.txt"))
        with open(os.path.join(folder, "annotations.json")) as f:
            ann = [json.loads(l) for l in f if l.strip()]
        vocab = {"<PAD>": 0, "<START>": 1, "<UNK>": 2}
        for _, toks in self.train:
            for t in toks:
                vocab.setdefault(t, len(vocab))
        emb = torch.zeros(len(vocab), EMB)
        with open(os.path.join(folder, "review+wiki.filtered.200.txt")) as f:
            for line in f:
                w, *v = line.rstrip("\n").split(" ")
                if w in vocab and len(v) == EMB:
                    emb[vocab[w]] = torch.tensor([float(x) for x in v])
        self.emb, self.maxlen = emb, maxlen
        self.xtr, self.ytr = encode(self.train, vocab, 2, maxlen)
        self.xhe, self.yhe = encode(self.held, vocab, 2, maxlen)
        self.xan, _ = encode([(0.0, a["x"]) for a in ann], vocab, 0, maxlen)
        # position p of the padded row -> token index in the review (None: padding)
        self.ann_ranges = [[tuple(r) for r in a["1"]] for a in ann]
        self.ann_len = [len(a["x"]) for a in ann]

    def embed(self, ids):
        return self.emb[ids].transpose(1, 2).contiguous()  # (B, 200, L)


def precision(net, data, k):
    net.eval()
    correct = denom = 0
    with torch.no_grad():
        for i in range(0, len(data.xan), 100):
            ids = data.xan[i:i + 100]
            z = topk_mask(net.logits(data.embed(ids)), k)
            for r in range(len(ids)):
                n = data.ann_len[i + r]
                first = max(0, n - data.maxlen)  # token index of the first kept token
                offset = data.maxlen - min(n, data.maxlen)  # padded positions before it
                chosen = 0
                for p in torch.nonzero(z[r]).flatten().tolist():
                    if ids[r, p] == 0:
                        continue
                    chosen += 1
                    t = first + p - offset
                    if any(a <= t < b for a, b in data.ann_ranges[i + r]):
                        correct += 1
                denom += max(chosen, k)
    net.train()
    return correct / max(denom, 1)


def mse(net, data, idx, k):
    net.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(idx), 100):
            b = idx[i:i + 100]
            x = data.embed(data.xhe[b])
            pred = net.predict(x, topk_mask(net.logits(x), k), k).squeeze(1)
            total += float(((pred - data.yhe[b]) ** 2).sum())
    net.train()
    return total / len(idx)


def train(a):
    torch.set_num_threads(a.threads)
    rng = seed_all(a.seed)
    data = Beer(a.data, a.maxlen)
    held = rng.permutation(len(data.xhe))
    val, test = held[: len(held) // 2], held[len(held) // 2:]
    net = Explainer()
    n = len(data.xtr)
    same = SameStart(a.same_start, net, rng, a.epochs, n) if a.same_start else None
    dropout = 0.0 if same else 0.2
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    fields = ["epoch", "train_mse", "val_mse", "test_mse", "precision", "train_seconds"]
    log = EpochCsv(a.out, fields + (["heldout_mse"] if same else []))
    for epoch in range(1, a.epochs + 1):
        t0, order, losses = time.perf_counter(), rng.permutation(n), []
        if same:
            order = same.order[epoch - 1]
        for i in range(0, n, a.batch):
            b = order[i:i + a.batch]
            x = data.embed(data.xtr[b])
            theta = net.logits(x, dropout=dropout)
            z, noise = relaxed(a.method, theta, a.k, a.tau)
            if same:
                same.noise.append(noise.numpy().ravel())
            loss = F.mse_loss(net.predict(x, z, a.k).squeeze(1), data.ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        secs = time.perf_counter() - t0
        row = dict(epoch=epoch, train_mse=np.mean(losses), val_mse=mse(net, data, val, a.k),
                   test_mse=mse(net, data, test, a.k), precision=precision(net, data, a.k),
                   train_seconds=round(secs, 2))
        if same:
            row["heldout_mse"] = mse(net, data, np.arange(len(data.xhe)), a.k)
            same.save_noise()
        log.add(row)
        print(f"{a.method} seed {a.seed} epoch {epoch}: mse {row['train_mse']:.4f}, val "
              f"{row['val_mse']:.4f}, test {row['test_mse']:.4f}, precision "
              f"{row['precision']:.3f}, {secs:.1f} s", flush=True)


class SameStart:
    """`--same-start DIR`: a run that `cargo test --release --test parity explain_same_start
    -- --ignored` can repeat step for step. The initial weights (`DIR/init.safetensors`,
    our names) and the batch order (`DIR/order.npy`, epochs x reviews) are read if present,
    else drawn here and written; dropout is off, and every step's noise is written to
    `DIR/noise.npy` (float32, the steps' draws concatenated) for our side to reuse."""

    def __init__(self, folder, net, rng, epochs, n):
        from safetensors.numpy import load_file, save_file

        os.makedirs(folder, exist_ok=True)
        self.folder, self.noise = folder, []
        init = os.path.join(folder, "init.safetensors")
        if os.path.exists(init):
            weights = load_file(init)
            with torch.no_grad():
                for name, t in net.named_like_ours().items():
                    t.copy_(torch.from_numpy(weights[name]).view_as(t))
        else:
            save_file({k: v.detach().numpy().copy() for k, v in net.named_like_ours().items()},
                      init)
        order = os.path.join(folder, "order.npy")
        if os.path.exists(order):
            self.order = np.load(order)
        else:
            self.order = np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)
            np.save(order, self.order)

    def save_noise(self):
        np.save(os.path.join(self.folder, "noise.npy"),
                np.concatenate(self.noise).astype(np.float32))


def fixture(a):
    """One step of each method from the same weights, batch and noise (dropout off)."""
    torch.manual_seed(a.seed)
    b, l, k = a.batch, a.maxlen, 10
    x = torch.randn(b, EMB, l) * 0.3
    x[:, :, : l // 4] = 0.0  # front padding, as encoded reviews have
    y = torch.rand(b)
    init = Explainer()
    # Biases away from zero, as after the first step of a run. At Keras' zero biases, an
    # all-padding window gives an exact 0 pre-activation under a direct convolution (ReLU
    # gradient 0) but +-1e-8 under our Winograd tiles that straddle the padding's
    # edge (ReLU gradient 1 where the rounding is positive): only the first step of a run
    # differs, and the fixture would measure that rounding instead of the network.
    with torch.no_grad():
        for name, p in init.named_like_ours().items():
            if name.endswith("bias"):
                p.uniform_(-0.05, 0.05)
    out = {"x": x, "y": y}
    for name, p in init.named_like_ours().items():
        out[f"init/{name}"] = p.detach().clone()
    for method in ("imle-sog", "softsub", "l2x"):
        net = Explainer()
        net.load_state_dict(init.state_dict())
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
        theta = net.logits(x)
        theta.retain_grad()
        z, noise = relaxed(method, theta, k, 30.0)
        loss = F.mse_loss(net.predict(x, z, k).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        out[f"{method}/noise"] = noise
        out[f"{method}/theta"] = theta.detach().clone()
        out[f"{method}/z"] = z.detach().clone()
        out[f"{method}/loss"] = loss.detach().reshape(1)
        out[f"{method}/theta_grad"] = theta.grad.detach().clone()
        for name, p in net.named_like_ours().items():
            out[f"{method}/grad/{name}"] = p.grad.detach().clone()
        if method == "imle-sog":
            opt.step()
            for name, p in net.named_like_ours().items():
                out[f"{method}/after/{name}"] = p.detach().clone()
    save_fixture(a.out, out, {"k": k, "batch": b, "maxlen": l, "lr": 1e-3, "eps": 1e-7,
                              "seed": a.seed, "torch": torch.__version__})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="datasets/beer")
    t.add_argument("--method", choices=["imle-sog", "softsub", "l2x"], default="imle-sog")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--k", type=int, default=10)
    t.add_argument("--tau", type=float, default=30.0)
    t.add_argument("--maxlen", type=int, default=350)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch", type=int, default=40)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", required=True)
    t.add_argument("--same-start", metavar="DIR",
                   help="dropout off; initial weights and batch order from / to DIR, the noise "
                        "of every step written there (see SameStart)")
    f = sub.add_parser("fixture")
    f.add_argument("--batch", type=int, default=4)
    f.add_argument("--maxlen", type=int, default=24)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default="tests/fixtures/l2x_step.safetensors")
    a = ap.parse_args()
    train(a) if a.cmd == "train" else fixture(a)


if __name__ == "__main__":
    main()
