#!/usr/bin/env bash
# The main job: installs what is missing, builds dslaunch and dsworker, and trains a GPT with
# ZeRO stage 3 and CPU offload of optimizer and parameters (configs/zero3_offload.json) on 2 ranks
# launched by dslaunch, on the built-in corpus: 2 GPU ranks when the GPU path can train, else 2 CPU
# ranks. Progress every 10 steps; checkpoints and metrics under runs/main/.
# Extra arguments go to dsworker (e.g. `scripts/run.sh --steps 100 --model gpt2`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build_dir=${DS_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target dslaunch dsworker
mkdir -p runs/main
exec "$build_dir/apps/launcher/dslaunch" --num_gpus=2 --master_port=0 \
  "$build_dir/apps/worker/dsworker" --deepspeed configs/zero3_offload.json --model tiny --steps 400 \
  --save_dir runs/main --save_interval 100 --metrics runs/main/metrics.jsonl --eval_interval 100 "$@"
