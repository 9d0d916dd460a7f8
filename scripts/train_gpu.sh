#!/usr/bin/env bash
# Continue the seven shipped models on one CUDA GPU, all at once (one process each: the
# models are small, so a single process leaves the GPU mostly idle).
#
#   scripts/train_gpu.sh start MINUTES DATA   probe the joint step rate, then train in the
#                                             background for MINUTES (schedule fitted to it)
#   scripts/train_gpu.sh collect DEST [SECS]  wait up to SECS for the runs, then copy the
#                                             latest weights and a tar of cards and logs
#
# Runs from the repository root; needs torch, compressai and click importable.
set -euo pipefail
RUNS=${RUNS:-gpu-runs}
RECIPE=(q1:0.0018 q2:0.0035 q3:0.0067 q4:0.013 q5:0.025 q6:0.05 q7:0.1)
COMMON=(--N 64 --M 96 --batch-size 16 --crop 256 --lr 3e-4 --decay-start 0.5 --surrogate mixed)

train_all() {  # train_all OUTDIR STEPS [extra options...]
  local outdir=$1 steps=$2; shift 2
  mkdir -p "$outdir"
  for r in "${RECIPE[@]}"; do
    local q=${r%%:*} lmbda=${r##*:}
    OMP_NUM_THREADS=2 setsid nohup python3 -m lrcodec.cli train --data "$DATA" --lmbda "$lmbda" \
      "${COMMON[@]}" --steps "$steps" --init "models/lrc-mshp-$q.safetensors" \
      --out "$outdir/lrc-mshp-$q" "$@" >"$outdir/$q.log" 2>&1 </dev/null &
  done
}

case $1 in
start)
  MINUTES=$2 DATA=$3
  # Probe: a few hundred steps of all seven together give the rate the real runs will share.
  train_all "$RUNS/probe" "${PROBE_STEPS:-300}" --checkpoint-every 100000
  wait
  rate=$(grep -ho '[0-9.]* steps/s' "$RUNS"/probe/*.log | awk '{print $1}' | sort -g | head -1)
  steps=$(python3 -c "print(int($rate * $MINUTES * 60 * 0.97))")
  echo "probe: slowest of seven at $rate steps/s; training $steps steps in $MINUTES min"
  train_all "$RUNS/models" "$steps" --checkpoint-every 500 --max-minutes "$MINUTES"
  ;;
collect)
  DEST=$2 SECS=${3:-0}
  end=$((SECONDS + SECS))
  while pgrep -f "lrcodec.cli train" >/dev/null && ((SECONDS < end)); do sleep 10; done
  tail -qn 2 "$RUNS"/models/*.log || true
  cp "$RUNS"/models/*.safetensors "$DEST"/
  tar -cf "$DEST/cards-and-logs.tar" -C "$RUNS/models" $(cd "$RUNS/models" && ls *.json *.log)
  ;;
esac
