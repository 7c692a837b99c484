#!/usr/bin/env python3
"""The anchor for bench/store_bench.cpp: the same workload through torch's TCPStore client.

  store_bench_torch.py --clients 1024 --pairs 100              torch's own server (libuv) in this process
  store_bench_torch.py --clients 1024 --pairs 100 --port P     an external server (ours, hosted by store_bench)

Each client is a thread with its own TCPStore object (its own connection; torch's client methods
release the GIL while they wait on the socket). Phases, as in store_bench.cpp:
  connect: every client constructs its TCPStore (connect + VALIDATE + PING), timed from the start
           signal to the last one connected;
  barrier: add("<name>/count") + set("<name>/rank/<r>"), the last sets "<name>/done", all wait();
           timed from the release of a local latch to the last client through;
  ops:     each client does N set/get pairs on its own keys; per-op latency p50/p99 and aggregate ops/s.
Prints one JSON object on stdout.
"""
import argparse
import datetime
import json
import statistics
import sys
import threading
import time


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--port", type=int, default=0, help="external server on 127.0.0.1 (default: host torch's own)")
    args = parser.parse_args()

    import torch
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=300)
    server = None
    port = args.port
    if port == 0:
        server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, use_libuv=True, timeout=timeout)
        port = server.port

    n = args.clients
    start = threading.Event()
    connected_times = [0.0] * n
    connect_lat = [0.0] * n
    barrier_done = [0.0] * n
    set_lat, get_lat = [[] for _ in range(n)], [[] for _ in range(n)]
    ops_window = [[0.0, 0.0] for _ in range(n)]
    errors = []
    all_connected = threading.Barrier(n + 1)
    release_barrier = threading.Event()
    value = b"x" * 64

    def client(rank):
        try:
            start.wait()
            t_connect = time.perf_counter()
            store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=timeout)
            connected_times[rank] = time.perf_counter()
            connect_lat[rank] = connected_times[rank] - t_connect
            all_connected.wait()
            release_barrier.wait()
            store.set(f"bench/rank/{rank}", "1")
            if store.add("bench/count", 1) == n:
                store.set("bench/done", "1")
            store.wait(["bench/done"])
            barrier_done[rank] = time.perf_counter()
            ops_window[rank][0] = time.perf_counter()
            for i in range(args.pairs):
                key = f"k/{rank}/{i}"
                t0 = time.perf_counter_ns()
                store.set(key, value)
                t1 = time.perf_counter_ns()
                got = store.get(key)
                t2 = time.perf_counter_ns()
                if got != value:
                    raise RuntimeError(f"get({key}) returned {got!r}")
                set_lat[rank].append(t1 - t0)
                get_lat[rank].append(t2 - t1)
            ops_window[rank][1] = time.perf_counter()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {rank}: {e}")
            try:
                all_connected.abort()
            except Exception:  # noqa: BLE001
                pass

    threads = [threading.Thread(target=client, args=(r,), daemon=True) for r in range(n)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    start.set()
    try:
        all_connected.wait()
    except threading.BrokenBarrierError:
        pass
    t_release = time.perf_counter()
    release_barrier.set()
    for t in threads:
        t.join()
    if errors:
        print(json.dumps({"error": errors[0], "errors": len(errors)}))
        return 1
    sets = sorted(x for per in set_lat for x in per)
    gets = sorted(x for per in get_lat for x in per)
    ops_start = min(w[0] for w in ops_window)
    ops_end = max(w[1] for w in ops_window)
    result = {
        "server": "torch libuv (in-process)" if server else f"external 127.0.0.1:{port}",
        "client": f"torch {torch.__version__} TCPStore (Python threads)",
        "clients": n,
        "pairs": args.pairs,
        "connect_s": max(connected_times) - t_start,
        "connect_p50_ms": percentile(sorted(connect_lat), 0.50) * 1e3,
        "barrier_s": max(barrier_done) - t_release,
        "set_p50_us": percentile(sets, 0.50) / 1e3,
        "set_p99_us": percentile(sets, 0.99) / 1e3,
        "get_p50_us": percentile(gets, 0.50) / 1e3,
        "get_p99_us": percentile(gets, 0.99) / 1e3,
        "ops_per_s": (len(sets) + len(gets)) / (ops_end - ops_start),
        "mean_get_us": statistics.fmean(gets) / 1e3,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
