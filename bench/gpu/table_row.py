#!/usr/bin/env python3
"""bench/gpu/run.sh's table rows: `table_row.py ours METRICS MODEL MB [LABEL]` from dsworker's metrics
file, `table_row.py torch` from torch_gpt.py's JSON lines on stdin."""
import json, sys

SIZES = {"gpt2": (12, 768, 124e6), "gpt2-medium": (24, 1024, 355e6), "gpt2-large": (36, 1280, 774e6), "gpt2-xl": (48, 1600, 1558e6)}


def ours(path, model, mb, label):
    try:
        rows = [json.loads(l) for l in open(path) if l.strip().startswith("{") and '"step"' in l]
    except OSError:
        rows = []
    if len(rows) < 4:
        print(f"| {model} | {mb} | {label} | failed (see log) | | | | |")
        return
    L, C, N = SIZES[model]
    timed = rows[3:]
    step_s = sum(r["time_s"]["total"] for r in timed) / len(timed)
    tok = mb * 1024 / step_s
    mfu = tok * (6 * N + 6 * L * C * 1024) / 989e12
    peak = max(r["memory"]["device_peak"] for r in rows) / 2**30
    print(f"| {model} | {mb} | {label} | {tok:,.0f} | {step_s * 1e3:.1f} | {mfu * 100:.1f}% | {peak:.1f} | {rows[0]['elapsed_s']:.1f} |")


def torch_rows():
    for line in sys.stdin:
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r.get("oom"):
            print(f"| {r['model']} | {r['mb']} | {r['anchor']} | out of memory | | | | |")
            continue
        print(f"| {r['model']} | {r['mb']} | {r['anchor']} | {r['tokens_per_s']:,.0f} | {r['step_ms']:.1f} | "
              f"{r['mfu'] * 100:.1f}% | {r['peak_gib']:.1f} | {r['first_step_s']:.1f} |")


if __name__ == "__main__":
    if sys.argv[1] == "ours":
        ours(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "dsworker")
    else:
        torch_rows()
