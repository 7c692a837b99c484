#!/usr/bin/env bash
# Second device session: the README's main job on a GPU host, and the launch-overhead benchmark
# with torchrun as the anchor, on the same machine. Results go to $OUT.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/.device/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
B=$PWD/.device/bin
{
  echo "=== machine"; nvidia-smi -L; lscpu | grep -E "Model name|^CPU\(s\)"
  echo "=== main job: dslaunch --num_gpus=2 dsworker (configs/zero3_offload.json), 400 steps"
  mkdir -p "$OUT/run"
  time $B/dslaunch --num_gpus=2 --master_port=0 $B/dsworker --deepspeed configs/zero3_offload.json --model tiny --steps 400 \
    --save_dir "$OUT/run" --save_interval 200 --metrics "$OUT/run/metrics.jsonl" --eval_interval 200 2>&1 | grep -v resolved | tail -14
  echo "=== launch overhead: 8 CPU ranks, dslaunch vs direct vs torchrun"
  DSLAUNCH_GPU_COUNT=0 $B/bench_launch_overhead --dslaunch $B/dslaunch --python python3 --runs 40 --out "$OUT/launch_overhead.md" 2>&1 | tail -22
} 2>&1 | tee "$OUT/session2.log"
