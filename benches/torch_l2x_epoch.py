"""PyTorch (CPU) reference for the speed target of Table 1: one epoch of the same L2X
selector/predictor as `imle-paper table1 --full --methods imle-sog --ks 10`, on the same
generated data set (datasets/beer/, written by `imle-paper data generate beer`).

    pip install torch numpy
    python benches/torch_l2x_epoch.py [--threads 2] [--epochs 1] [--maxlen 150]

Same work per epoch as ours: the training reviews shuffled, steps of batch 40: frozen
embeddings (200) -> Conv1d(100, 3, same, ReLU); global max pool -> Linear(100, ReLU);
two Conv1d(100, 3, ReLU); tiled global ++ local -> dropout 0.2 -> Conv1d(100, 1, ReLU) ->
Conv1d(1, 1) = theta; I-MLE top-10 with SoG(kappa=10, tau=30, s=10) noise, PID target
lambda = 1000 with the forward noise reused, gradient z - z' (no 1/lambda);
sum(emb * z) / k -> Linear(250, ReLU) -> Linear(1, sigmoid); MSE; Adam (Keras defaults).
Then the evaluation ours does after every epoch: the validation and test halves of the
held-out reviews and the annotated reviews, top-k without noise, batch 100, no gradients.
Prints the train and evaluation wall seconds of every epoch.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

K, TAU, S, LAMBDA, EMB = 10, 30.0, 10, 1000.0, 200


def read_reviews(path):
    out = []
    with open(path) as f:
        for line in f:
            scores, text = line.rstrip("\n").split("\t")
            out.append((float(scores.split()[1]), text.split(" ")))
    return out


def encode(reviews, vocab, oov, maxlen):
    ids = np.zeros((len(reviews), maxlen), dtype=np.int64)
    for r, (_, toks) in enumerate(reviews):
        toks = toks[-maxlen:]
        ids[r, maxlen - len(toks):] = [vocab.get(t, oov) for t in toks]
    return torch.from_numpy(ids), torch.tensor([y for y, _ in reviews])


def sog_noise(shape):
    i = torch.arange(1, S + 1, dtype=torch.float32)
    gamma = torch.distributions.Gamma(torch.full((S,), 1.0 / K), i / K)  # rate i/kappa
    return (TAU / K) * (gamma.sample(shape).sum(-1) - math.log(S))


def topk_mask(theta):
    return torch.zeros_like(theta).scatter_(-1, theta.topk(K, dim=-1).indices, 1.0)


class ImleTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta):
        eps = sog_noise(theta.shape)
        z = topk_mask(theta + eps)
        ctx.save_for_backward(theta, eps, z)
        return z

    @staticmethod
    def backward(ctx, g):
        theta, eps, z = ctx.saved_tensors
        return z - topk_mask(theta - LAMBDA * g + eps)


class Explainer(nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb = nn.Embedding.from_pretrained(emb, freeze=True)
        self.c1 = nn.Conv1d(EMB, 100, 3, padding=1)
        self.g = nn.Linear(100, 100)
        self.c2 = nn.Conv1d(100, 100, 3, padding=1)
        self.c3 = nn.Conv1d(100, 100, 3, padding=1)
        self.c4 = nn.Conv1d(200, 100, 1)
        self.c5 = nn.Conv1d(100, 1, 1)
        self.p1 = nn.Linear(EMB, 250)
        self.p2 = nn.Linear(250, 1)

    def logits(self, x):
        h = F.relu(self.c1(x))
        g = F.relu(self.g(h.amax(dim=2)))
        local = F.relu(self.c3(F.relu(self.c2(h))))
        both = torch.cat([g.unsqueeze(2).expand_as(local), local], dim=1)
        both = F.dropout(both, 0.2, self.training)
        return self.c5(F.relu(self.c4(both))).squeeze(1)

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)  # (B, 200, L)
        theta = self.logits(x)
        z = ImleTopK.apply(theta) if self.training else topk_mask(theta)
        pooled = (x * z.unsqueeze(1)).sum(2) / K
        return torch.sigmoid(self.p2(F.relu(self.p1(pooled)))).squeeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--maxlen", type=int, default=150)
    ap.add_argument("--data", default="datasets/beer")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    train = read_reviews(os.path.join(a.data, "reviews.aspect1.train.txt"))
    held = read_reviews(os.path.join(a.data, "reviews.aspect1.heldout.txt"))
    with open(os.path.join(a.data, "annotations.json")) as f:
        ann = [(0.0, json.loads(l)["x"]) for l in f if l.strip()]
    vocab = {"<PAD>": 0, "<START>": 1, "<UNK>": 2}
    for _, toks in train:
        for t in toks:
            vocab.setdefault(t, len(vocab))
    emb = torch.zeros(len(vocab), EMB)
    with open(os.path.join(a.data, "review+wiki.filtered.200.txt")) as f:
        for line in f:
            w, *v = line.split()
            if w in vocab:
                emb[vocab[w]] = torch.tensor([float(x) for x in v])
    xtr, ytr = encode(train, vocab, 2, a.maxlen)
    xhe, yhe = encode(held, vocab, 2, a.maxlen)
    xan, _ = encode(ann, vocab, 0, a.maxlen)
    model = Explainer(emb)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, eps=1e-7)
    for epoch in range(1, a.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(xtr))
        for i in range(0, len(order), 40):
            b = order[i:i + 40]
            loss = F.mse_loss(model(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        t1 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            for x in (xhe, xan):
                for i in range(0, len(x), 100):
                    model(x[i:i + 100])
        t2 = time.perf_counter()
        print(f"epoch {epoch}: train {t1 - t0:.2f} s, evaluation {t2 - t1:.2f} s "
              f"({len(xtr)} reviews, maxlen {a.maxlen}, {a.threads} threads, last loss {loss.item():.4f})")


if __name__ == "__main__":
    main()
