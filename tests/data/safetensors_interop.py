#!/usr/bin/env python3
"""Checks our safetensors files against the reference implementation, from Python.

    safetensors_interop.py safetensors  TEST_DATA_BINARY
        Python's safetensors loads what we write (values, shapes, metadata), writes byte for byte
        the same file from the same tensors, and we read what it writes.
    safetensors_interop.py transformers TEST_DATA_BINARY
        transformers' GPT2LMHeadModel.from_pretrained loads a GPT-2 checkpoint that went through
        our reader and writer, and gives the same logits.

TEST_DATA_BINARY is build/tests/test_data: its hidden "interop: ..." test cases do the C++ side
(tests/data/interop_helpers_test.cpp). Exits 77, which CTest reports as skipped, when the
Python packages a mode needs are missing (scripts/install-deps.sh installs numpy and safetensors;
scripts/test.sh installs torch and transformers into a cached venv, DS_NO_TORCH=1 skips them).
CTest runs it with $DS_TEST_PYTHON (default python3).
"""
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(SKIP)


def run_case(binary, name, **env):
    result = subprocess.run([binary, name], env={**os.environ, **env}, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout, result.stderr, sep="\n")
        raise SystemExit(f"FAILED: {binary} '{name}' exited with {result.returncode}")


def check_safetensors(binary, tmp):
    try:
        import numpy as np
        import safetensors
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file
    except ImportError as e:
        skip(f"{sys.executable} has no module '{e.name}' (scripts/install-deps.sh installs numpy and safetensors with pip)")

    run_case(binary, "interop: write fixtures", DS_INTEROP_DIR=tmp)
    weight = (0.5 * np.arange(12, dtype=np.float32) - 2.0).reshape(3, 4)
    bias = np.arange(5, dtype=np.float32).astype(np.float16) - np.float16(2.5)

    # 1. The reference reader loads our file: values, dtypes, shapes, default metadata.
    ours = os.path.join(tmp, "ours_np.safetensors")
    loaded = load_file(ours)
    assert sorted(loaded) == ["layer.bias", "layer.weight"], sorted(loaded)
    assert loaded["layer.weight"].dtype == np.float32 and loaded["layer.weight"].shape == (3, 4)
    assert np.array_equal(loaded["layer.weight"], weight), loaded["layer.weight"]
    assert loaded["layer.bias"].dtype == np.float16 and np.array_equal(loaded["layer.bias"], bias), loaded["layer.bias"]
    with safe_open(ours, framework="numpy") as f:
        assert f.metadata() == {"format": "pt"}, f.metadata()

    # 2. The reference writer produces the very same bytes from the same tensors and metadata.
    theirs_copy = os.path.join(tmp, "theirs_copy.safetensors")
    save_file({"layer.bias": bias, "layer.weight": weight}, theirs_copy, metadata={"format": "pt"})
    with open(ours, "rb") as a, open(theirs_copy, "rb") as b:
        ours_bytes, theirs_bytes = a.read(), b.read()
    assert ours_bytes == theirs_bytes, f"\nours:   {ours_bytes[:200]!r}\ntheirs: {theirs_bytes[:200]!r}"

    # 3. A file with BF16 (numpy cannot hold bfloat16): the reference reader validates its layout
    #    and metadata; values are checked through torch when it is present.
    mixed = os.path.join(tmp, "ours_mixed.safetensors")
    with safe_open(mixed, framework="numpy") as f:
        assert sorted(f.keys()) == ["layer.bias", "layer.weight", "norm.weight"], sorted(f.keys())
        assert f.metadata() == {"format": "pt", "producer": "dslaunch-test"}, f.metadata()
        assert np.array_equal(f.get_tensor("layer.weight"), weight)
    try:
        import torch
        from safetensors.torch import load_file as torch_load_file
    except ImportError:
        print("note: torch not importable; BF16 values checked by the C++ round-trip tests only")
    else:
        t = torch_load_file(mixed)
        expected = torch.tensor([0.25 * (i + 1) for i in range(6)], dtype=torch.bfloat16).reshape(2, 3)
        assert t["norm.weight"].dtype == torch.bfloat16 and torch.equal(t["norm.weight"], expected), t["norm.weight"]

    # 4. We read what the reference writer writes.
    save_file(
        {
            "weight": (1.5 * np.arange(6, dtype=np.float32)).reshape(2, 3),
            "half": np.array([-1.0, 0.5, 2.0], dtype=np.float16),
            "index": np.array([7, 8, 9], dtype=np.int64),
        },
        os.path.join(tmp, "theirs.safetensors"),
        metadata={"format": "np", "source": "python"},
    )
    run_case(binary, "interop: read fixtures", DS_INTEROP_DIR=tmp)
    print(f"ok: safetensors {safetensors.__version__} and our reader/writer agree byte for byte")


def check_transformers(binary, tmp):
    if os.environ.get("DS_NO_TORCH") == "1":
        skip("DS_NO_TORCH=1: the torch and transformers interop tests are turned off")
    try:
        import torch
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as e:
        skip(f"{sys.executable} has no module '{e.name}': scripts/test.sh installs torch and transformers into a "
             "venv and sets DS_TEST_PYTHON, or set DS_TEST_PYTHON to an interpreter that has them")

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    source, target = os.path.join(tmp, "hf"), os.path.join(tmp, "ours")
    model.save_pretrained(source, safe_serialization=True)
    os.makedirs(target)
    shutil.copy(os.path.join(source, "config.json"), target)
    run_case(
        binary,
        "interop: copy",
        DS_INTEROP_IN=os.path.join(source, "model.safetensors"),
        DS_INTEROP_OUT=os.path.join(target, "model.safetensors"),
    )
    reloaded = GPT2LMHeadModel.from_pretrained(target).eval()
    ids = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        a, b = model(ids).logits, reloaded(ids).logits
    assert torch.equal(a, b), (a - b).abs().max()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name
    print(f"ok: transformers {transformers.__version__} GPT2LMHeadModel loads our file, logits identical")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("safetensors", "transformers"):
        raise SystemExit(__doc__)
    mode, binary = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="ds-interop-") as tmp:
        (check_safetensors if mode == "safetensors" else check_transformers)(binary, tmp)


if __name__ == "__main__":
    main()
