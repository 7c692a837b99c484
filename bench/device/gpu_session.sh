#!/usr/bin/env bash
# One device-machine session (run through the device tool from the repository root, with .device/
# carried; see scripts/device-bundle.sh): GPU tests, PyTorch NCCL through dslaunch's store, and the
# CPU-side benchmarks against their anchors, all on the same machine in one call. Results go to $OUT.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/.device/lib:${LD_LIBRARY_PATH:-}
NV=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)
[ -n "$NV" ] && export LD_LIBRARY_PATH=$NV/cu13/lib:$NV/nccl/lib:$LD_LIBRARY_PATH
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
B=$PWD/.device/bin
log() { echo "=== $* ($(date +%T))"; }
{
  log machine
  nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  lscpu | grep -E "Model name|^CPU\(s\)|Thread|NUMA node\(s\)"; free -g | head -2
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.device_count())'

  log "gpu test: CudaDevice"
  $B/gpu_device_test; echo "rc=$?"

  log "dslaunch plan with real GPU detection"
  $B/dslaunch --dry_run --num_gpus=2 --master_port=0 /bin/true; echo "rc=$?"
  $B/dslaunch --num_gpus=2 --master_port=0 /bin/sh -c 'echo rank=$RANK local=$LOCAL_RANK CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES device=$DSLAUNCH_DEVICE'

  log "torch NCCL through dslaunch's store (unmodified init_process_group env://)"
  DSLAUNCH_PYTHON=python3 $B/dslaunch --num_gpus=2 --master_port=0 --no_local_rank tests/store/torch_agent_store.py --backend nccl; echo "rc=$?"
  log "torch gloo through dslaunch's store"
  DSLAUNCH_PYTHON=python3 $B/dslaunch --num_gpus=2 --master_port=0 --no_local_rank tests/store/torch_agent_store.py --backend gloo; echo "rc=$?"

  log "launch overhead: 8 CPU ranks, dslaunch vs direct vs torchrun"
  DSLAUNCH_GPU_COUNT=0 $B/bench_launch_overhead --dslaunch $B/dslaunch --python python3 --runs 40 --out $OUT/launch_overhead.md > /dev/null 2>&1; cat $OUT/launch_overhead.md | tail -20

  log "CPU Adam: ours vs torch fused AdamW (CPU)"
  $B/bench_cpu_adam --sizes 1e8,7.5e8 --isas avx2,avx512 --threads 1,8,16 --reps 5 --out $OUT/cpu_adam.md > /dev/null 2>&1; cat $OUT/cpu_adam.md | tail -16
  python3 bench/cpu_adam_torch.py --sizes 1e8,7.5e8 --threads 1,8,16 --reps 5 | tee $OUT/cpu_adam_torch.json

  log "store: 1024 clients, ours vs torch TCPStore"
  $B/bench_store_bench --clients 1024 --pairs 100 --python python3 --out $OUT/store.md > /dev/null 2>&1; tail -12 $OUT/store.md

  log "main job on this host (2 ranks, ZeRO-3 + offload; CPU ranks until the GPU kernels exist)"
  $B/dslaunch --num_gpus=2 --master_port=0 $B/dsworker --deepspeed configs/zero3_offload.json --model tiny --steps 60 --threads 8 --log_interval 20 2>&1 | grep -v resolved | tail -8
} 2>&1 | tee "$OUT/session.log"
