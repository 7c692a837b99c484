#!/usr/bin/env python3
"""The engine's multi-rank device paths on ONE GPU: 2 and 4 ranks share it (DSLAUNCH_RANKS_PER_GPU),
reducing through Gloo with GPU buffers staged through pinned memory (comm/comm_staged.hpp). For
each world size, ZeRO stages 1, 2 and 3 (and stage 2 with optimizer offload) train the same steps
as stage 0 and must agree with it: the losses of every step within 1e-5 relative (fp32; the reduction
order is the same by construction, Note [reduction order], so they are usually bitwise equal).

Usage: multirank_one_gpu.py DSLAUNCH DSWORKER [WORK_DIR]. Exit 0 pass, 1 fail, 77 without a GPU.
"""
import json, os, shutil, subprocess, sys, tempfile


def have_gpu():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    r = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return r.returncode == 0 and "GPU" in r.stdout


def run(dslaunch, dsworker, work, ranks, stage, extra):
    metrics = os.path.join(work, f"m-{ranks}-{stage}-{'offload' if extra else 'plain'}.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    env = dict(os.environ, DSLAUNCH_RANKS_PER_GPU=str(ranks))
    cmd = [dslaunch, "--master_port=0", dsworker, "--device", "cuda", "--model", "n_layer=2,n_head=4,n_embd=64,seq_len=32,vocab_size=256",
           "--micro_batch", "2", "--steps", "6", "--precision", "fp32", "--zero_stage", str(stage), "--threads", "1",
           "--log_interval", "1", "--metrics", metrics] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        print(f"FAIL: {ranks} ranks, stage {stage} {extra}: exit {r.returncode}\n{r.stderr[-3000:]}")
        return None
    return [json.loads(l)["loss"] for l in open(metrics) if '"step"' in l]


def main():
    if len(sys.argv) < 3:
        print(__doc__); return 2
    if not have_gpu():
        print("SKIPPED: no GPU visible (nvidia-smi -L)"); return 77
    dslaunch, dsworker = sys.argv[1], sys.argv[2]
    work = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="ds-multirank-")
    os.makedirs(work, exist_ok=True)
    ok = True
    for ranks in (2, 4):
        ref = run(dslaunch, dsworker, work, ranks, 0, [])
        if ref is None:
            ok = False; continue
        print(f"{ranks} ranks, stage 0: losses {['%.6f' % x for x in ref]}")
        for stage, extra in ((1, []), (2, []), (3, []), (2, ["--deepspeed", os.path.join(work, "offload.json")])):
            if extra:
                json.dump({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}},
                          open(extra[1], "w"))
            got = run(dslaunch, dsworker, work, ranks, stage, extra)
            if got is None:
                ok = False; continue
            worst = max(abs(a - b) / abs(b) for a, b in zip(got, ref))
            same = len(got) == len(ref) and worst <= 1e-5
            ok &= same
            print(f"{ranks} ranks, stage {stage}{' + optimizer offload' if extra else ''}: worst rel diff {worst:.2e} "
                  f"{'ok' if same else 'FAIL'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
