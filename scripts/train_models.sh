#!/usr/bin/env bash
# How the shipped models in models/ were trained (CPU, 2 cores; see each model card for the
# steps and hours it got). The base model is trained from scratch at lambda 0.0067; the other
# rate points are fine-tuned from it. Every step resumes from runs/ if interrupted:
#   lrcodec train --resume runs/NAME/checkpoint.pt --steps N
set -euo pipefail
cd "$(dirname "$0")/.."
LRC=.venv/bin/lrcodec
DATA=${DATA:-../shared/data/train}
BASE_STEPS=${BASE_STEPS:-5000}
FT_STEPS=${FT_STEPS:-600}

# 1. Base (the shipped set trained it as lrc-mshp-base and renamed it): mean-scale hyperprior N=64, M=96, 192x192 crops, batch 8, Adam 1e-3, mixed surrogate.
$LRC train --data "$DATA" --lmbda 0.0067 --N 64 --M 96 --crop 192 --batch-size 8 --lr 1e-3 \
  --surrogate mixed --steps "$BASE_STEPS" --checkpoint-every 250 --out models/lrc-mshp-q3

# 2. Lambda fine-tuning from the base model: lr 5e-4, decaying from half-way.
for spec in "q1:0.0018" "q5:0.025" "q2:0.0035" "q4:0.013" "q6:0.05"; do
  name=${spec%%:*}; lmbda=${spec##*:}
  $LRC train --data "$DATA" --lmbda "$lmbda" --N 64 --M 96 --crop 192 --batch-size 8 --lr 5e-4 \
    --decay-start 0.5 --surrogate mixed --steps "$FT_STEPS" --checkpoint-every 100 \
    --init models/lrc-mshp-q3.safetensors --out "models/lrc-mshp-$name"
done

# 3. Second session: every rate point continued from its own weights (lr 3e-4, decay from
#    half-way, at most 15 minutes each), high rates first; q7 (lambda 0.1) starts from the new q6.
MORE=${MORE:-1100}
cont() {  # name lambda steps init (N and M: the init model's)
  $LRC train --data "$DATA" --lmbda "$2" --crop 192 --batch-size 8 --lr 3e-4 \
    --decay-start 0.5 --surrogate mixed --steps "$3" --checkpoint-every 100 --max-minutes "${MINUTES:-15}" \
    --init "models/$4.safetensors" --out "models/lrc-mshp-$1"
}
cont q6 0.05 1400 lrc-mshp-q6
cont q7 0.1 1400 lrc-mshp-q6
cont q5 0.025 "$MORE" lrc-mshp-q5
cont q4 0.013 "$MORE" lrc-mshp-q4
cont q3 0.0067 "$MORE" lrc-mshp-q3
cont q2 0.0035 900 lrc-mshp-q2
cont q1 0.0018 900 lrc-mshp-q1

continue_each() {  # name:lambda:steps:minute-limit ..., each from its own committed weights
  for spec in "$@"; do
    IFS=: read -r name lmbda steps MINUTES <<< "$spec"
    cont "$name" "$lmbda" "$steps" "lrc-mshp-$name"
  done
}

# 4. Third session: the same continuation again, 1,700-2,000 more steps each (about 17 minutes;
#    q7 stopped at its 19-minute limit after 1,916 steps).
continue_each "q7:0.1:2000:19" "q6:0.05:2000:19" "q5:0.025:2000:19" "q4:0.013:1900:19" \
              "q3:0.0067:1800:19" "q2:0.0035:1700:19" "q1:0.0018:1700:19"

# 5. Fourth session: the same continuation once more, the most steps for the high rates, which
#    gain most.
continue_each "q7:0.1:2300:21" "q6:0.05:2300:21" "q5:0.025:2100:19" "q4:0.013:2000:18" \
              "q3:0.0067:1700:16" "q2:0.0035:1500:14" "q1:0.0018:1400:13"

# 6. Fifth session: scripts/train_gpu.sh (one H100).

# 7. Sixth CPU session: q4-q7 widened from M=96 to M=192 (docs/training.md), two runs at a time
#    with one thread each. The new channels first get a noise warm-up (under `mixed` alone they
#    stay unused), then mixed training with decay. q7 went first, as an A/B test against the same
#    schedule without widening (bench/results/widen-ab/), and continued from its widened weights.
warm() {  # name lambda: 600 steps of noise on the widened model
  OMP_NUM_THREADS=1 $LRC train --data "$DATA" --lmbda "$2" --M 192 --crop 192 --batch-size 8 \
    --lr 3e-4 --decay-start 1.0 --surrogate noise --steps 600 --checkpoint-every 200 \
    --init "models/lrc-mshp-$1.safetensors" --out "runs/s13/lrc-mshp-$1-warm"
}
mixed() {  # name lambda steps minute-limit decay-start init
  OMP_NUM_THREADS=1 $LRC train --data "$DATA" --lmbda "$2" --crop 192 --batch-size 8 --lr 1e-4 \
    --decay-start "$5" --surrogate mixed --steps "$3" --max-minutes "$4" --checkpoint-every 500 \
    --init "$6" --out "runs/s13/lrc-mshp-$1"
}
warm q7 0.1 && mixed q7b 0.1 1400 60 0.3 runs/s13/lrc-mshp-q7-warm.safetensors
mixed q7 0.1 8100 47 0.5 runs/s13/lrc-mshp-q7b.safetensors      # stopped at 8,070 steps
warm q6 0.05 && mixed q6 0.05 8400 47 0.5 runs/s13/lrc-mshp-q6-warm.safetensors
warm q5 0.025 && mixed q5 0.025 8400 49 0.5 runs/s13/lrc-mshp-q5-warm.safetensors
warm q4 0.013 && mixed q4 0.013 6800 36 0.5 runs/s13/lrc-mshp-q4-warm.safetensors
cp runs/s13/lrc-mshp-q[4-7].{safetensors,json} models/

# 8. Seventh CPU session: q7 and q6 (the models furthest below WebP) continued from their
#    committed widened weights, two runs at a time with one thread each, restarting at lr 1e-4.
mixed q7 0.1 17000 100 0.5 models/lrc-mshp-q7.safetensors &
mixed q6 0.05 17000 100 0.5 models/lrc-mshp-q6.safetensors &
wait
cp runs/s13/lrc-mshp-q[67].{safetensors,json} models/

# 9. Eighth CPU session: q7 and q6 continued once more the same way (18,000 steps, decay from
#    half-way), two runs at a time with one thread each.
mixed q7 0.1 18000 118 0.5 models/lrc-mshp-q7.safetensors &
mixed q6 0.05 18000 118 0.5 models/lrc-mshp-q6.safetensors &
wait
cp runs/s13/lrc-mshp-q[67].{safetensors,json} models/

# 10. Seventh and eighth CPU sessions: q5 and q4 continued the same way, in two pieces: 52
#     minutes of a 17,000-step schedule, then resumed with the schedule cut to 14,000 steps
#     (so the cosine decay runs from step 7,000; q5 stopped at its time limit at 13,916).
mixed q5 0.025 17000 52 0.5 models/lrc-mshp-q5.safetensors &
mixed q4 0.013 17000 52 0.5 models/lrc-mshp-q4.safetensors &
wait
for q in q5 q4; do
  OMP_NUM_THREADS=1 $LRC train --resume "runs/lrc-mshp-$q/checkpoint.pt" --steps 14000 --max-minutes 26 &
done
wait
cp runs/s13/lrc-mshp-q[45].{safetensors,json} models/
