#!/usr/bin/env bash
# The main job: installs what is missing, builds dslaunch and dsworker, and trains a GPT with
# ZeRO stage 3 and CPU offload of optimizer and parameters (configs/zero3_offload.json) on 2 ranks
# launched by dslaunch, on the built-in corpus: 2 GPU ranks (sharing the GPU on a one-GPU host) when
# the build has CUDA and a GPU is visible, else 2 CPU ranks. Progress every 10 steps; checkpoints and metrics under runs/main/.
# Extra arguments go to dsworker (e.g. `scripts/run.sh --steps 100 --model gpt2`).
# DS_RUN_DIR: another place for checkpoints and metrics; DS_SKIP_BUILD=1: no install or build, use
# the binaries $DS_BUILD_DIR holds (tests/mp/worker_run_script_test.cpp runs this script so).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DS_BUILD_DIR:-build}
run_dir=${DS_RUN_DIR:-runs/main}
if [ -z "${DS_SKIP_BUILD:-}" ]; then
  scripts/install-deps.sh
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build_dir" -j"$(nproc)" --target dslaunch dsworker
fi
mkdir -p "$run_dir"
# On a host with one GPU the two ranks share it (DSLAUNCH_RANKS_PER_GPU); dsworker's --device auto
# trains on the GPU when the build has CUDA, else on CPU ranks, and says which.
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" = 1 ] && [ -z "${DSLAUNCH_RANKS_PER_GPU:-}" ]; then export DSLAUNCH_RANKS_PER_GPU=2; fi
exec "$build_dir/apps/launcher/dslaunch" --num_gpus=2 --master_port=0 \
  "$build_dir/apps/worker/dsworker" --deepspeed configs/zero3_offload.json --model tiny --steps 400 \
  --save_dir "$run_dir" --save_interval 100 --metrics "$run_dir/metrics.jsonl" --eval_interval 100 "$@"
