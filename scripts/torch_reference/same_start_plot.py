"""Plots `figures/parity/warcraft/same-start-{ours,torch}.csv` (Table 2 BB from the same
weights and batch order on both sides) into `figures/parity/warcraft_same_start.png`."""
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

D = "figures/parity/warcraft"
rows = {s: list(csv.DictReader(open(f"{D}/same-start-{s}.csv"))) for s in ("ours", "torch")}
fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2))
for ax, col, title in zip(axes, ("train_loss", "test_accuracy"), ("training Hamming loss", "test accuracy")):
    for side, color in (("torch", "tab:orange"), ("ours", "tab:blue")):
        r = rows[side]
        ax.plot([int(x["epoch"]) for x in r], [float(x[col]) for x in r], color=color, lw=2,
                label="PyTorch" if side == "torch" else "ours")
    ax.set_title(f"BB, same start and batches: {title}", fontsize=9)
    ax.set_xlabel("epoch")
axes[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig("figures/parity/warcraft_same_start.png", dpi=110)
