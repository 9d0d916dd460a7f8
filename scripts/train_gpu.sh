#!/usr/bin/env bash
# Stage 6 of the shipped models: continue all seven on one CUDA GPU at once (one process
# each: the models are small, so a single process leaves an H100 mostly idle; seven ran at
# 16.4 steps/s each, batch 16 of 256x256).
#
#   scripts/train_gpu.sh prepare [SRC] [DEST]   training set small enough to copy to a GPU
#                                               machine: sunhays80 halved (Lanczos) to JPEG q95
#   scripts/train_gpu.sh start MINUTES DATA     probe the joint step rate, then train all seven
#                                               in the background for MINUTES (schedule fitted)
#   scripts/train_gpu.sh collect DEST [SECS]    wait up to SECS for the runs, then copy the
#                                               weights and a tar of cards and logs to DEST
#
# The shipped set: `start 22` (LR=3e-4 DECAY=0.5; an earlier probe, since fixed, planned
# 6,658 steps, which took 7 minutes), its weights copied into models/, then LR=1e-4
# DECAY=0.3 for a fixed 6,000 steps. Each model keeps the lambda of its model card.
# Runs from the repository root; needs torch, compressai and click importable.
# Runs go to $RUNS (default gpu-runs/); where the working copy is re-synced between
# commands (a lent GPU machine), put it outside, e.g. RUNS=/tmp/gpu-runs.
set -euo pipefail
RUNS=${RUNS:-gpu-runs}
# N and M come from each model's weights (q4-q7 were widened to M=192 in session 13).
COMMON=(--batch-size 16 --crop 256 --lr "${LR:-3e-4}" --decay-start "${DECAY:-0.5}"
        --surrogate mixed)

train_all() {  # train_all OUTDIR STEPS [extra options...]
  local outdir=$1 steps=$2; shift 2
  mkdir -p "$outdir"
  for card in models/lrc-mshp-q*.json; do
    local name=$(basename "$card" .json)
    local lmbda=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["lmbda"])' "$card")
    OMP_NUM_THREADS=2 setsid nohup python3 -m lrcodec.app.cli train --data "$DATA" --lmbda "$lmbda" \
      "${COMMON[@]}" --steps "$steps" --init "models/$name.safetensors" \
      --out "$outdir/$name" "$@" >"$outdir/${name##*-}.log" 2>&1 </dev/null &
  done
}

case $1 in
prepare)
  SRC=${2:-../shared/data/train} DEST=${3:-.gpudata/data/train}
  mkdir -p "$DEST/bsds500" "$DEST/sunhays80"
  cp "$SRC"/bsds500/*.jpg "$DEST/bsds500/"
  python3 - "$SRC/sunhays80" "$DEST/sunhays80" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
for f in sorted(Path(sys.argv[1]).glob("*.png")):
    im = Image.open(f).convert("RGB")
    im = im.resize((im.width // 2, im.height // 2), Image.LANCZOS)
    im.save(Path(sys.argv[2]) / (f.stem + ".jpg"), quality=95, subsampling=0)
EOF
  ;;
start)
  MINUTES=$2 DATA=$3
  # Probe 400 steps of all seven together; the rate between steps 200 and 400 leaves out
  # CUDA start-up and cuDNN's kernel search (they made a whole-run average 3x too low).
  train_all "$RUNS/probe" 400 --checkpoint-every 100000
  wait
  rate=$(for f in "$RUNS"/probe/*.log; do
           awk '/^step (200|400)\// {split($2, s, "/"); t[s[1]] = s[1] / $(NF-1)}
                END {print 200 / (t[400] - t[200])}' "$f"
         done | sort -g | head -1)
  steps=$(python3 -c "print(max(1, int($rate * $MINUTES * 60 * 0.95)))")
  echo "probe: slowest of seven at $rate steps/s; training $steps steps in $MINUTES min"
  train_all "$RUNS/models" "$steps" --checkpoint-every 500 --max-minutes "$MINUTES"
  ;;
collect)
  DEST=$2 SECS=${3:-0}
  end=$((SECONDS + SECS))
  while pgrep -f "lrcodec.app.cli train" >/dev/null && ((SECONDS < end)); do sleep 10; done
  tail -qn 2 "$RUNS"/models/*.log || true
  cp "$RUNS"/models/*.safetensors "$DEST"/
  tar -cf "$DEST/cards-and-logs.tar" -C "$RUNS/models" $(cd "$RUNS/models" && ls *.json *.log)
  ;;
*)
  echo "usage: $0 prepare|start|collect ..." >&2; exit 2
  ;;
esac
