"""Curve parity: our runs beside the PyTorch reference's, per epoch, on the same files.

    python scripts/torch_reference/compare.py warcraft --ours RUN_DIR [--torch DIR]
    python scripts/torch_reference/compare.py table1 --ours RUN_DIR
    python scripts/torch_reference/compare.py fig4 --ours RUN_DIR [RUN_DIR ...]

RUN_DIR is an `imle-paper` run folder (`--run-dir`); its finished units
(`units/*.json`) hold every epoch and are written as `ours-<method>-seed<r>.csv`; the
committed `ours-*.csv` of earlier runs count too. The PyTorch CSVs are `figures/parity/<exp>/torch-*.csv`
(`warcraft.py` / `l2x.py` / `vae.py train --out ...`). Writes, into
`figures/parity/<exp>/`: `ours-<method>-seed<r>.csv` (the same columns as PyTorch's), one
figure `<exp>.png` (every run thin, the mean of each side thick, PyTorch's seed range
shaded) and `summary.md`: per epoch, whether our mean lies within PyTorch's seed range;
for Table 1 also every run's subset precision at its best-validation epoch and a
Mann-Whitney U test of the two sides' distributions.
"""
import argparse
import csv
import glob
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

OUT = "figures/parity"

# per experiment: unit pattern -> (method, run); our metric -> CSV column; plotted panels
SPECS = {
    "warcraft": {
        "columns": {"train_loss": ("train", "loss"), "val_accuracy": ("eval", "val_accuracy"),
                    "test_accuracy": ("eval", "test_accuracy"), "test_exact": ("eval", "test_exact")},
        "panels": [("train_loss", "training Hamming loss"), ("test_accuracy", "test accuracy (cost-optimal)")],
    },
    "table1": {
        "columns": {"train_mse": ("train", "mse"), "val_mse": ("eval", "val_mse"),
                    "test_mse": ("eval", "test_mse"), "precision": ("eval", "precision")},
        "panels": [("train_mse", "training MSE"), ("val_mse", "validation MSE"), ("precision", "subset precision")],
    },
    "fig4": {
        "columns": {"train_loss": ("train", "loss"), "test_loss": ("eval", "loss")},
        "panels": [("train_loss", "training loss"), ("test_loss", "test loss (noisy samples)")],
    },
}


def our_runs(exp, dirs):
    """{method: {run: [row per epoch]}} from the units of the run folders."""
    cols = SPECS[exp]["columns"]
    out = {}
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "units", "*.json"))):
            u = json.load(open(path))
            res = u["result"]
            res = res.get("curves", res)  # fig4 units: {"curves": run, "grid": ...}
            epochs = res.get("epochs") or []
            m = re.search(r"(?:^|/)([a-z0-9-]+)/run(\d+)$", u["unit"])
            if m:
                method, run = m.group(1), int(m.group(2))
            else:  # fig4: one unit per method, the seed is the run folder's
                method, run = u["unit"], int(u["seed"])
            rows = []
            for e in epochs:
                row = {"epoch": e["epoch"]}
                for col, (part, key) in cols.items():
                    row[col] = e[part].get(key, float("nan"))
                rows.append(row)
            out.setdefault(method, {})[run] = rows
    return out


def csv_runs(exp, side):
    """{method: {run: rows}} of the committed `<side>-<method>-seed<run>.csv` files."""
    out = {}
    for path in sorted(glob.glob(os.path.join(OUT, exp, f"{side}-*-seed*.csv"))):
        m = re.match(rf"{side}-(.+)-seed(\d+)\.csv$", os.path.basename(path))
        with open(path) as f:
            rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
        if rows:
            out.setdefault(m.group(1), {})[int(m.group(2))] = rows
    return out


def write_ours(exp, ours):
    cols = ["epoch"] + list(SPECS[exp]["columns"])
    for method, runs in ours.items():
        for run, rows in runs.items():
            with open(os.path.join(OUT, exp, f"ours-{method}-seed{run}.csv"), "w", newline="") as f:
                w = csv.DictWriter(f, cols, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)


def matrix(runs, col, epochs):
    return np.array([[r[col] for r in rows[:epochs]] for rows in runs.values() if len(rows) >= epochs])


def best_val(rows, col="val_mse"):
    return min(rows, key=lambda r: r[col])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exp", choices=sorted(SPECS))
    ap.add_argument("--ours", nargs="*", help="run folders; their runs are written as ours-*.csv")
    a = ap.parse_args()
    exp, spec = a.exp, SPECS[a.exp]
    os.makedirs(os.path.join(OUT, exp), exist_ok=True)
    ours, theirs = our_runs(exp, a.ours or []), csv_runs(exp, "torch")
    write_ours(exp, ours)
    # runs of earlier sessions, committed as CSVs, count too (a run folder's win)
    for method, runs in csv_runs(exp, "ours").items():
        for run, rows in runs.items():
            ours.setdefault(method, {}).setdefault(run, rows)
    # unfinished runs (fewer epochs than the longest of their side) are left out
    for side in (ours, theirs):
        for method, runs in side.items():
            longest = max(len(r) for r in runs.values())
            side[method] = {k: r for k, r in runs.items() if len(r) == longest}
    methods = [m for m in theirs if m in ours]
    panels = spec["panels"]
    fig, axes = plt.subplots(len(methods), len(panels), figsize=(4.2 * len(panels), 3.2 * len(methods)), squeeze=False)
    lines = [f"# Curve parity: {exp}", ""]
    for i, method in enumerate(methods):
        epochs = min(min(len(r) for r in ours[method].values()), min(len(r) for r in theirs[method].values()))
        lines += [f"## {method}: {len(ours[method])} runs here, {len(theirs[method])} PyTorch runs, {epochs} epochs", ""]
        for j, (col, title) in enumerate(panels):
            ax = axes[i][j]
            o, t = matrix(ours[method], col, epochs), matrix(theirs[method], col, epochs)
            x = np.arange(1, epochs + 1)
            for row in t:
                ax.plot(x, row, color="tab:orange", alpha=0.25, lw=0.8)
            for row in o:
                ax.plot(x, row, color="tab:blue", alpha=0.25, lw=0.8)
            ax.fill_between(x, t.min(0), t.max(0), color="tab:orange", alpha=0.15, label="PyTorch seed range")
            ax.plot(x, t.mean(0), color="tab:orange", lw=2, label=f"PyTorch mean ({len(t)})")
            ax.plot(x, o.mean(0), color="tab:blue", lw=2, label=f"ours mean ({len(o)})")
            ax.set_title(f"{method}: {title}", fontsize=9)
            ax.set_xlabel("epoch")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
            inside = (o.mean(0) >= t.min(0)) & (o.mean(0) <= t.max(0))
            lines.append(f"- {title}: our mean within PyTorch's seed range at {inside.sum()} of {epochs} epochs"
                         + ("" if inside.all() else f" (outside at epochs {', '.join(str(e) for e in x[~inside])})")
                         + f"; last epoch ours {o[:, -1].mean():.4g} ± {o[:, -1].std(ddof=1) if len(o) > 1 else 0:.2g}, "
                           f"PyTorch {t[:, -1].mean():.4g} ± {t[:, -1].std(ddof=1) if len(t) > 1 else 0:.2g} (mean ± sample std)")
        if exp == "table1":
            po = [best_val(r[:epochs])["precision"] for r in ours[method].values()]
            pt = [best_val(r[:epochs])["precision"] for r in theirs[method].values()]
            lines.append(f"- subset precision at the best-validation epoch, every run: ours "
                         f"{', '.join(f'{100 * p:.1f}' for p in po)} %; PyTorch {', '.join(f'{100 * p:.1f}' for p in pt)} %")
            try:
                from scipy.stats import mannwhitneyu

                u = mannwhitneyu(po, pt, alternative="two-sided")
                verdict = ("p > 0.05: no evidence that the distributions differ" if u.pvalue > 0.05
                           else "p <= 0.05: the distributions differ at the 5 % level")
                lines.append(f"- Mann-Whitney U = {u.statistic:.1f}, two-sided p = {u.pvalue:.3f} ({verdict})")
            except ImportError:
                pass
        lines.append("")
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, f"{exp}.png"), dpi=110)
    with open(os.path.join(OUT, exp, "summary.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
