"""PyTorch (CPU) reference of `cargo bench -p imle --bench imle_bench` (imle_op_fwd_bwd, S = 1):
the I-MLE top-k op, forward + backward, on the discrete VAE's shape.

    pip install torch && python benches/torch_imle_op.py [runs]

B = 100 examples x 20 blocks of 20 logits, top-10 per block, SoG(kappa=10, tau=10, s=10)
noise drawn with torch.distributions.Gamma (as the torch-imle library does; here all s
terms in one batched draw, faster than `torch_vae_epoch.py`'s loop), PID target
lambda = 10, gradient / lambda; loss sum(z * w). The op is `torch_vae_epoch.py`'s
`torch.autograd.Function` (as torch-imle's decorator builds it). Prints the median, min
and max of `runs` (default 50) runs after 5 warm-ups, 2 threads (`TORCH_THREADS`
overrides).
"""
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_vae_epoch import K, S, TAU, ImleTopK  # noqa: E402


def sog_noise(shape):
    """Eq. 13, the s Gamma(1/kappa, scale kappa/i) terms drawn together (kappa = k)."""
    i = torch.arange(1, S + 1, dtype=torch.float32)
    gamma = torch.distributions.Gamma(torch.full((S,), 1.0 / K), i / K)  # rate i/kappa
    return (TAU / K) * (gamma.sample(shape).sum(-1) - math.log(S))


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    torch.manual_seed(0)
    theta = torch.randn(100, 20, 20, requires_grad=True)
    w = torch.randn(100, 20, 20)

    def step():
        theta.grad = None
        (ImleTopK.apply(theta, sog_noise) * w).sum().backward()

    for _ in range(5):
        step()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"imle op fwd+bwd, SoG, 100x20x20: median {statistics.median(ts) * 1e3:.2f} ms "
          f"(min {min(ts) * 1e3:.2f}, max {max(ts) * 1e3:.2f})")


if __name__ == "__main__":
    main()
