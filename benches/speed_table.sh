#!/usr/bin/env bash
# Every row of the speed table (imle-conv/README.md, figures/fig4-notes.md), ours and the
# reference side by side, in one run: 2 threads (RAYON_NUM_THREADS / torch.set_num_threads).
# Needs torch, scipy and numpy (pip) and MNIST (imle-paper data fetch mnist).
#   bash benches/speed_table.sh 2>&1 | tee /tmp/speed.txt
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS=2 TORCH_THREADS=2
cargo build --release -q -p imle-paper -p imle-conv --example encoder_timing
cargo bench -q -p imle --no-run --bench imle_bench --bench solvers >/dev/null 2>&1
crit() { cargo bench -q -p imle --bench "$1" -- --warm-up-time 2 --measurement-time 6 "$2" 2>&1 | grep -E "^[a-z_0-9/-]+$|time:"; }
echo "== uptime: $(uptime)"
echo "== I-MLE top-k op fwd+bwd, SoG, 100 x 20 x 20"
crit imle_bench "imle_op_fwd_bwd_B100_20x20_k10/S/1$"
python3 benches/torch_imle_op.py 50
echo "== batched grid Dijkstra, 70 grids"
crit solvers "grid_shortest_path_batch70/8-neighbourhood/(12|30)$"
python3 benches/scipy_dijkstra.py 20
echo "== Warcraft encoder 70 x 3 x 96 x 96 fwd+bwd (fb: with input gradient; fbd: stem on data)"
for w in fb fbd; do DFDX_CACHE=1 ./target/release/examples/encoder_timing 12 $w | tail -1 | cut -c1-80; done
python3 imle-conv/benches/torch_reference.py 12 | grep -i "encoder forward+backward"
echo "== L2X selector 40 x 200 x 350 fwd+bwd (l2x: with input gradient; l2xd: first layer on data)"
for w in l2x l2xd; do DFDX_CACHE=1 ./target/release/examples/encoder_timing 30 $w | tail -1 | cut -c1-80; done
python3 imle-conv/benches/torch_reference.py 30 | grep -i "selector forward+backward"
for noise in sog gumbel; do
  echo "== VAE epoch, $noise noise (600 steps + 10,000-image test pass)"
  out=$(mktemp -d)
  ./target/release/imle-paper fig4 --methods imle-$noise --epochs 1 --train-subset 60000 --threads 2 \
    --out "$out/fig" --run-dir "$out/run" --fresh --no-progress >/dev/null
  grep -o '"train_seconds": [0-9.]*\|"eval_seconds": [0-9.]*' "$out/fig/fig4.json" | tr '\n' ' '; echo
  rm -rf "$out"
  python3 benches/torch_vae_epoch.py --threads 2 --noise $noise --epochs 1 | tail -1
done
echo "== uptime: $(uptime)"
