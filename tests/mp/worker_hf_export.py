#!/usr/bin/env python3
"""What `dsworker export` writes is the model dsworker trained, as Hugging Face transformers sees it.

Trains a small GPT-2 on 2 CPU ranks with the real dslaunch + dsworker on a text file (bytes as
tokens), exports the final checkpoint, loads it with GPT2LMHeadModel.from_pretrained and computes
the validation loss over exactly the windows dsworker's final validation read (the held-out last 1%
of windows, in file order, val_batches x micro_batch x world_size of them). That must equal the
val_loss dsworker wrote to its metrics file: any wrong tensor name, transpose, missing bias,
vocabulary padding, LayerNorm epsilon or activation in the export would change it by far more
than the tolerance (the script checks that one transposed matrix does).

dsworker has no inference command, so its validation loss is the number we compare; it is computed
with the exported weights (the final checkpoint is saved after the final validation, with no step
in between).

Usage: worker_hf_export.py DSLAUNCH DSWORKER. Exit 77 (CTest: skipped) when torch or transformers
cannot be imported, or DS_NO_TORCH=1. The interpreter is $DS_TEST_PYTHON when CTest runs it (see tests/CMakeLists.txt).
"""
import json
import math
import os
import subprocess
import sys
import tempfile

SKIP = 77

MODEL = "n_layer=2,n_head=2,n_embd=32,seq_len=32,vocab_size=256"
SEQ_LEN = 32
MICRO_BATCH = 4
WORLD = 2
VAL_BATCHES = 4
VAL_FRACTION = 0.01  # dsworker's held-out share (TrainOptions::val_fraction)
STEPS = 40
# dsworker computes in fp32 and averages over ranks in fp32; the reference runs in fp64. Seen: 7e-9.
TOLERANCE = 1e-5


def hermetic_env():
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("DSLAUNCH_") or k.startswith("TORCHELASTIC_") or
                   k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                         "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"))}
    env["DSLAUNCH_GPU_COUNT"] = "0"
    return env


def run(argv, cwd):
    r = subprocess.run(argv, cwd=cwd, env=hermetic_env(), capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.stderr.write(f"FAILED: {' '.join(argv)} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}\n")
        sys.exit(1)
    return r


def validation_windows(tokens):
    """The token windows of dsworker's validation pass (model/data_loader.hpp: split_train_val,
    SampleOrder::sequential; the union over ranks of one pass is global samples 0..n-1)."""
    windows = (len(tokens) - 1) // SEQ_LEN
    held_out = max(1, math.ceil(windows * VAL_FRACTION))
    first = windows - held_out
    samples = VAL_BATCHES * MICRO_BATCH * WORLD
    rows = []
    for g in range(samples):
        w = first + g % held_out
        rows.append(tokens[w * SEQ_LEN: w * SEQ_LEN + SEQ_LEN + 1])
    return rows


def mean_loss(model, torch, rows):
    batch = torch.tensor(rows, dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=batch[:, :-1]).logits
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)).item()


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    dslaunch, dsworker = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if os.environ.get("DS_NO_TORCH") == "1":
        print("SKIPPED: DS_NO_TORCH=1: the torch and transformers interop tests are turned off")
        return SKIP
    try:
        import torch
        import transformers
        from transformers import GPT2LMHeadModel
        transformers.utils.logging.disable_progress_bar()
    except Exception as e:  # ImportError, or a broken install
        print(f"SKIPPED: {sys.executable} cannot import torch and transformers ({e}): scripts/test.sh installs them "
              "into a venv and sets DS_TEST_PYTHON, or set DS_TEST_PYTHON to an interpreter that has them")
        return SKIP

    with tempfile.TemporaryDirectory(prefix="dstest-hf-") as tmp:
        run([dsworker, "corpus", "--out", "corpus.txt", "--bytes", "262144"], tmp)
        train = run([dslaunch, f"--num_gpus={WORLD}", "--master_port=0", dsworker, "--data", "corpus.txt", "--model", MODEL,
                     "--seq_len", str(SEQ_LEN), "--micro_batch", str(MICRO_BATCH), "--val_batches", str(VAL_BATCHES),
                     "--steps", str(STEPS), "--threads", "1", "--save_dir", "ckpt", "--metrics", "metrics.jsonl"], tmp)
        run([dsworker, "export", "--checkpoint", "ckpt", "--out", "hf"], tmp)

        done = [json.loads(line) for line in open(os.path.join(tmp, "metrics.jsonl")) if '"event"' in line][-1]
        ours = done["val_loss"]
        with open(os.path.join(tmp, "corpus.txt"), "rb") as f:
            tokens = list(f.read())
        rows = validation_windows(tokens)

        model = GPT2LMHeadModel.from_pretrained(os.path.join(tmp, "hf")).double().eval()
        theirs = mean_loss(model, torch, rows)
        print(f"dsworker validation loss {ours:.8f}, transformers on the exported model {theirs:.8f}, "
              f"difference {abs(ours - theirs):.2e} (tolerance {TOLERANCE:g}); uniform would be {math.log(256):.4f}")

        failures = []
        if not abs(ours - theirs) <= TOLERANCE:
            failures.append("the losses differ by more than the tolerance")
        if not ours < math.log(256) - 0.5:
            failures.append("the model barely trained, so the comparison would prove little")
        # The comparison can fail: one transposed square matrix moves the loss far past the tolerance.
        with torch.no_grad():
            w = model.transformer.h[0].attn.c_proj.weight
            w.copy_(w.t().clone())
        broken = mean_loss(model, torch, rows)
        print(f"with block 0's attention output projection transposed: {broken:.8f}")
        if not abs(broken - theirs) > 20 * TOLERANCE:
            failures.append("a transposed matrix does not change the loss beyond the tolerance")
        if failures:
            print("FAILED: " + "; ".join(failures))
            print(train.stderr[-3000:])
            return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
