#!/usr/bin/env python3
"""The anchor for bench/cpu_adam.cpp: torch.optim.AdamW(fused=True) on CPU tensors (what FSDP2's CPU
offload steps with), same element counts and thread counts, median step time after one warm-up.

  cpu_adam_torch.py --sizes 1e8,7.5e8 --threads 16      prints a JSON list of {elements, threads, gelem_s}
"""
import argparse
import json
import statistics
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1e8")
    p.add_argument("--threads", default="16")
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    rows = []
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for n in [int(float(s)) for s in a.sizes.split(",")]:
            param = torch.nn.Parameter(torch.randn(n, dtype=torch.float32))
            param.grad = torch.randn(n, dtype=torch.float32)
            opt = torch.optim.AdamW([param], lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
            opt.step()  # warm-up: allocates the moments
            times = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                opt.step()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            rows.append({"elements": n, "threads": threads, "seconds": med, "gelem_s": n / med / 1e9})
            del opt, param
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
