#!/usr/bin/env python3
"""One unmodified-torch worker that rendezvouses through an agent-hosted store, as under torchrun.

Environment (as a launcher sets it): MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, and
TORCHELASTIC_USE_AGENT_STORE=True, so torch connects to the existing store instead of hosting one.

Checks, each exact: an all_reduce whose sum is an integer vector, a store set/get between ranks
through the process group's default store, a barrier, and destroy_process_group. Exits 0 only if
every check passes, 1 otherwise, 77 when the backend cannot run here (nccl without CUDA).
Used by tests/store_torch/torch_interop.cpp.
"""
import argparse
import datetime
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    args = parser.parse_args()

    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        print(f"rank {rank}: TORCHELASTIC_USE_AGENT_STORE must be True", file=sys.stderr)
        return 1
    device = torch.device("cpu")
    if args.backend == "nccl":
        if not torch.cuda.is_available():
            print(f"rank {rank}: --backend nccl needs CUDA, which torch cannot see", file=sys.stderr)
            return 77
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)

    dist.init_process_group(args.backend, init_method="env://", timeout=datetime.timedelta(seconds=60))
    failures = []

    # Rank r contributes (r + 1) * [1, 2, 3, 4]: the sum is world*(world+1)/2 * [1, 2, 3, 4],
    # exactly representable, so equality needs no tolerance.
    values = torch.arange(1, 5, dtype=torch.float32, device=device) * (rank + 1)
    dist.all_reduce(values)
    expected = torch.arange(1, 5, dtype=torch.float32) * (world * (world + 1) // 2)
    if not torch.equal(values.cpu(), expected):
        failures.append(f"all_reduce gave {values.cpu().tolist()}, expected {expected.tolist()}")

    store = dist.distributed_c10d._get_default_store()
    if rank == 0:
        store.set("probe/key", "value")
    store.set(f"probe/from_rank_{rank}", str(rank))
    got = store.get("probe/key").decode()
    if got != "value":
        failures.append(f"store get('probe/key') gave {got!r}, expected 'value'")
    peer = (rank + 1) % world
    got = store.get(f"probe/from_rank_{peer}").decode()
    if got != str(peer):
        failures.append(f"store get of rank {peer}'s key gave {got!r}")

    dist.barrier()
    dist.destroy_process_group()

    for failure in failures:
        print(f"rank {rank}: FAILED: {failure}", file=sys.stderr)
    if not failures:
        print(f"rank {rank}: all_reduce, store set/get, barrier and destroy_process_group passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
