#!/usr/bin/env python3
"""Anchor for bench/comm_bench.cpp: the same collectives through torch.distributed's gloo backend.

Runs WORLD ranks as processes on this machine (127.0.0.1) and prints one line per measurement:
    <op> <bytes> <seconds per op>
with bytes as nccl-tests counts them (the whole buffer: all_reduce's count*4, reduce_scatter's send,
all_gather's recv), fp32, sum. Ops torch's gloo backend lacks print "<op> <bytes> unsupported".
Each figure is the median of ITERS ops, each timed alone (as comm_bench.cpp does).
Usage: comm_bench_torch.py WORLD PLAN  (PLAN: comma-separated bytes:iters pairs)
"""
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run(rank, world, plan, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ops = {
        "all_reduce": lambda n: (lambda t=torch.ones(n): dist.all_reduce(t)),
        "reduce_scatter": lambda n: (
            lambda s=torch.ones(n), r=torch.empty(n // world): dist.reduce_scatter_tensor(r, s)
        ),
        "all_gather": lambda n: (
            lambda s=torch.ones(n // world), r=torch.empty(n): dist.all_gather_into_tensor(r, s)
        ),
    }
    for name, make in ops.items():
        for nbytes, iters in plan:
            fn = make(nbytes // 4)
            try:
                fn()
                fn()
            except Exception:  # the backend lacks this collective
                if rank == 0:
                    print(name, nbytes, "unsupported", flush=True)
                dist.barrier()
                continue
            dist.barrier()
            times = []
            for _ in range(iters):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            seconds = sorted(times)[len(times) // 2]
            if rank == 0:
                print(name, nbytes, f"{seconds:.9g}", flush=True)
    dist.barrier()
    dist.destroy_process_group()


def main():
    world = int(sys.argv[1])
    plan = [tuple(int(x) for x in pair.split(":")) for pair in sys.argv[2].split(",")]
    port = 29500 + os.getpid() % 1000
    mp.spawn(run, args=(world, plan, port), nprocs=world, join=True)


if __name__ == "__main__":
    main()
