#!/usr/bin/env bash
# The GPU benchmark and check, run on the GPU machine from the bundle scripts/device-bundle.sh
# makes (.device/): GPU kernel tests, then GPT-2 training throughput of dsworker (stage 0, bf16,
# seq 1024) beside the PyTorch anchors (eager, torch.compile; bench/gpu/torch_gpt.py).
# Usage: bench/gpu/run.sh [--out DIR] [--sections tests,parity,multirank,micro,train] [--models gpt2,gpt2-xl]
#                         [--mbs 4] [--steps 20] [--anchors eager,compile] [--activation_checkpointing]
# Writes DIR/log.txt (everything) and DIR/table.md (the table, the GPU named).
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bundle=${DS_BUNDLE:-$here/.device}
out=${OUT:-/tmp/ds-bench}
sections=tests,micro,train
models=gpt2,gpt2-xl
mbs=4
steps=20
ckpt=""
anchors=eager,compile
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --sections) sections=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --mbs) mbs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --activation_checkpointing) ckpt=--activation_checkpointing; shift ;;
    --anchors) anchors=$2; shift 2 ;;
    *) echo "bench/gpu/run.sh: unknown argument '$1' (see the usage at the top of the script)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
log=$out/log.txt
table=$out/table.md
NV=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
if [ -n "$NV" ]; then
  export LD_LIBRARY_PATH=$NV/cu13/lib:$NV/nccl/lib:$NV/cudnn/lib:$bundle/lib:${LD_LIBRARY_PATH:-}
else
  export LD_LIBRARY_PATH=$bundle/lib:${LD_LIBRARY_PATH:-}
fi
export NCCL_NVLS_ENABLE=0
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
has() { case ",$sections," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
{
  echo "# $(date -u +%FT%TZ) on $(hostname): $gpu"
  nvidia-smi -L 2>&1
  if has tests; then
    echo "## GPU tests (test_gpu: every kernel against its CPU twin)"
    "$bundle/bin/test_gpu" --reporter compact 2>&1 | tail -40
    echo "test_gpu exit: ${PIPESTATUS[0]}"
  fi
  if has tests || has parity; then
    echo "## PyTorch parity (tests/gpu/gpt_parity.py: loss and every gradient vs transformers' GPT2LMHeadModel)"
    python3 "$here/tests/gpu/gpt_parity.py" "$bundle/bin/gpu_parity_dump" "$out" 2>&1 | tail -30
    echo "gpt_parity exit: ${PIPESTATUS[0]}"
  fi
  if has tests || has multirank; then
    echo "## several ranks on one GPU (tests/gpu/multirank_one_gpu.py)"
    python3 "$here/tests/gpu/multirank_one_gpu.py" "$bundle/bin/dslaunch" "$bundle/bin/dsworker" "$out/multirank" 2>&1 | tail -20
    echo "multirank exit: ${PIPESTATUS[0]}"
  fi
  if has micro; then
    for b in bench_gemm bench_attention bench_adam_gpu; do
      [ -x "$bundle/bin/$b" ] || { echo "($b not in the bundle)"; continue; }
      echo "## $b"
      timeout 120 "$bundle/bin/$b" 2>&1 | tail -40
    done
  fi
} 2>&1 | tee "$log"

if has train; then
  {
    echo "## training: dsworker (stage 0, bf16, seq 1024) vs PyTorch eager / torch.compile"
    echo "| model | micro-batch | run | tokens/s | step ms | MFU | peak GPU GiB | first step s |"
    echo "|---|---|---|---|---|---|---|---|"
  } > "$table"
  IFS=, read -ra model_list <<< "$models"
  IFS=, read -ra mb_list <<< "$mbs"
  for m in "${model_list[@]}"; do
    for mb in "${mb_list[@]}"; do
      run=$out/ours-$m-mb$mb${ckpt:+-ckpt}
      ckpt_label=${ckpt:+ + activation checkpointing}
      mkdir -p "$run"
      echo "## ours $m mb $mb" | tee -a "$log"
      t0=$(date +%s.%N)
      DS_KERNEL_PROFILE=1 timeout 300 "$bundle/bin/dslaunch" --num_gpus=1 --master_port=0 "$bundle/bin/dsworker" --device cuda \
        --model "$m" --micro_batch "$mb" --grad_accum_steps 1 --precision bf16 --steps "$steps" --zero_stage 0 \
        --log_interval 5 --eval_interval 0 --val_batches 1 --metrics "$run/metrics.jsonl" $ckpt >> "$log" 2>&1
      echo "exit: $?" | tee -a "$log"
      python3 "$here/bench/gpu/table_row.py" ours "$run/metrics.jsonl" "$m" "$mb" "dsworker$ckpt_label" >> "$table"
      IFS=, read -ra anchor_list <<< "$anchors"
      for mode in "${anchor_list[@]}"; do
        echo "## torch $mode $m mb $mb" | tee -a "$log"
        flag=""; [ "$mode" = compile ] && flag=--compile
        timeout 400 python3 "$here/bench/gpu/torch_gpt.py" --model "$m" --mb "$mb" $flag 2> >(tail -5 >> "$log") | tee -a "$log" |
          python3 "$here/bench/gpu/table_row.py" torch >> "$table"
      done
    done
  done
  echo "GPU: $gpu" >> "$table"
  cat "$table" | tee -a "$log"
fi
