#!/usr/bin/env python3
"""Table 2 of the official code's own logs: test accuracy and exact match after the last
epoch, mean +- sample std over 5 seeds, of the Warcraft runs whose settings are the paper's,
read from a clone of https://github.com/nec-research/tf-imle (folder WARCRAFT/logs/warcraft).

    python3 scripts/tf_imle_warcraft_logs.py PATH/TO/tf-imle

Accuracy is the logs' `below_0.0001_percent_acc` (valid path whose true cost is within a
relative 1e-6 of the optimum, the paper's metric), exact is `perfect_match_accuracy`. The
numbers are copied into `official_logs` in src/experiments/table2.rs.
"""
import ast
import re
import statistics
import sys
from pathlib import Path

KEYS = ("k|lam|loss_type|maximize|mode_type|nb_samples|objective_type|perturb_w_prime|"
        "perturb_w|seed|temperature|use_gamma")
# Our method -> (log folder, settings every run of it has). mode_type: 0 = BB's target
# w + lambda dL/dz, 1 = lambda dL/dz alone (M-M), 4 = the true costs (mu-mu), 5 = DPO.
METHODS = {
    "bb": ("temperature_beaker_v10", dict(mode_type="0", lam="20.0", perturb_w="False",
                                          perturb_w_prime="False", temperature="0.001")),
    "imle-mm": ("temperature_beaker_v8", dict(mode_type="1", lam="50.0", perturb_w="False",
                                              perturb_w_prime="False")),
    "imle-mumu": ("temperature_beaker_v11", dict(mode_type="4", lam="10.0", perturb_w="True",
                                                 perturb_w_prime="True", temperature="1")),
    "dpo": ("temperature_beaker_v14", dict(objective_type="dpo", maximize="False",
                                           temperature="0.01")),
    # Pogancic et al.'s baseline: a whole ResNet18 predicting the path, 150 epochs.
    "resnet": ("baseline_beaker_v12", dict()),
}


def runs(folder: Path, want: dict):
    for log in sorted(folder.glob("*.log")):
        rest = log.stem.partition(".")[2]
        cfg = dict(p.split("=", 1) for p in re.split(rf"_(?=(?:{KEYS})=)", rest) if "=" in p)
        if any(cfg.get(key) != value for key, value in want.items()):
            continue
        evals = [l for l in log.read_text(errors="replace").splitlines() if l.startswith("{'loss'")]
        if evals:
            yield int(cfg["k"]), cfg["seed"], len(evals) - 1, ast.literal_eval(evals[-1])


def main(root: str) -> None:
    logs = Path(root) / "WARCRAFT" / "logs" / "warcraft"
    print("method      K   seeds  epochs  accuracy %     exact %")
    for method, (folder, want) in METHODS.items():
        by_k = {}
        for k, _seed, epochs, last in runs(logs / folder, want):
            by_k.setdefault(k, []).append((epochs, last))
        for k in sorted(by_k):
            rs = by_k[k]
            acc = [100 * r["below_0.0001_percent_acc"] for _, r in rs]
            ex = [100 * r["perfect_match_accuracy"] for _, r in rs]
            epochs = sorted({e for e, _ in rs})
            print(f"{method:10s} {k:3d}  {len(rs):5d}  {epochs}  "
                  f"{statistics.mean(acc):5.1f} ± {statistics.stdev(acc):.1f}   "
                  f"{statistics.mean(ex):5.1f} ± {statistics.stdev(ex):.1f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
