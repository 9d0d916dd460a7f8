#!/usr/bin/env bash
# The channel-context experiment of docs/training.md ("Channel-context models"), as run on 2 CPU
# cores: a context on lrc-mshp-q3's transforms, rate-only and then jointly fine-tuned, against a
# mean-scale control fine-tuned with the same steps, seed and data. Results:
# bench/results/families.json (python bench/families.py --pair ... as below).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
LRC=.venv/bin/lrcodec
DATA=${DATA:-../shared/data/train}
STEPS=${STEPS:-1500}

# 1. Rate-only on cached latents (y and the exact (sigma, mu) of the 472 training images): only the
#    slice networks train, on 16x16 latent crops, batch 16, lr 1e-3. Writes runs/ctx-q3/lrc-ctx-q3.safetensors.
$PY -m lrcodec.learn.train_context --model lrc-mshp-q3 --data "$DATA" --out runs/ctx-q3 \
  --steps "${RATE_STEPS:-3000}" --threads 1

# 2. Joint fine-tune: every weight trains (transforms lr 1e-4, slice networks 1e-3), starting from the
#    context with its last layers at zero (= lrc-mshp-q3 exactly; step 1 gained only 0.16 %), and the
#    control: lrc-mshp-q3 itself, same schedule. One thread each, side by side.
$PY - <<'EOF'
from pathlib import Path

from lrcodec.families.channel_context import ChannelContext, ContextShape
from lrcodec.models import load_model
from lrcodec.learn.train_context import ContextConfig, assemble

assemble(load_model("lrc-mshp-q3"), ChannelContext(ContextShape(96, 6, (128, 64), True)),
         Path("runs/joint/lrc-ctx-q3-init.safetensors"), ContextConfig(steps=0), 0.0)
EOF
common=(--data "$DATA" --lmbda 0.0067 --steps "$STEPS" --lr 1e-4 --batch-size 8 --crop 256 --checkpoint-every 250)
OMP_NUM_THREADS=1 $LRC train --init runs/joint/lrc-ctx-q3-init.safetensors --context-lr 1e-3 "${common[@]}" \
  --out runs/joint/lrc-ctx-q3-ft &
OMP_NUM_THREADS=1 $LRC train --init lrc-mshp-q3 "${common[@]}" --out runs/joint/lrc-mshp-q3-ft &
wait

# 3. Kodak with real files, speed, refinement gain.
$PY bench/families.py --pair runs/joint/lrc-ctx-q3-ft.safetensors runs/joint/lrc-mshp-q3-ft.safetensors \
  --pair runs/joint/lrc-ctx-q3-init.safetensors lrc-mshp-q3
