#!/usr/bin/env python3
"""The GPU model against PyTorch: our Gpt's loss and every parameter's gradient, computed on the GPU
by gpu_parity_dump, against Hugging Face's GPT2LMHeadModel (fp32, eager attention) computed by the
GPU machine's torch from the same weights and tokens. The reference is fp32 whatever our dtype:
fp32 must agree to 1e-5 (relative, norm-wise, per tensor), bf16 within the bounds below.

Usage: gpt_parity.py PATH/TO/gpu_parity_dump [WORK_DIR]. Exit 0 pass, 1 fail, 77 skipped (no GPU,
no torch or no transformers: the reason is printed).
"""
import os, subprocess, sys, tempfile

try:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError as e:
    print(f"SKIPPED: this python cannot import {e.name} (torch, safetensors and transformers are needed)")
    sys.exit(77)
if not torch.cuda.is_available():
    print("SKIPPED: torch sees no CUDA GPU")
    sys.exit(77)

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# relative error bounds per dtype: (loss, gradient)
BOUNDS = {"fp32": (1e-5, 1e-5), "bf16": (1e-2, 5e-2)}
CASES = [  # model spec, dtype, B, T
    ("n_layer=2,n_head=4,n_embd=128,seq_len=64,vocab_size=1000", "fp32", 2, 64),
    ("n_layer=2,n_head=4,n_embd=128,seq_len=64,vocab_size=1000", "fp32", 3, 37),
    ("n_layer=2,n_head=4,n_embd=256,seq_len=128,vocab_size=50257", "bf16", 2, 128),
    ("n_layer=2,n_head=4,n_embd=256,seq_len=128,vocab_size=50257", "fp32", 2, 128),
]


def spec_dict(spec):
    return {k: int(v) for k, v in (kv.split("=") for kv in spec.split(","))}


def check(dump, workdir, spec, dtype, B, T):
    out = os.path.join(workdir, f"parity-{dtype}-{B}x{T}.safetensors")
    r = subprocess.run([dump, spec, dtype, str(B), str(T), "7", out], capture_output=True, text=True)
    if r.returncode == 77:
        print(r.stdout.strip()); sys.exit(77)
    if r.returncode != 0:
        print(f"FAIL: gpu_parity_dump exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return False
    t = load_file(out)
    s = spec_dict(spec)
    V = s["vocab_size"]
    cfg = GPT2Config(n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"], n_positions=s["seq_len"], vocab_size=V,
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                     bos_token_id=0, eos_token_id=0)
    cfg._attn_implementation = "eager"  # the plain softmax attention, in fp32
    model = GPT2LMHeadModel(cfg).cuda().float()
    state = {}
    for name, value in t.items():
        if not name.startswith("param/"):
            continue
        hf = name[len("param/"):]
        v = value.float()
        if hf.endswith(CONV1D):
            v = v.t().contiguous()
        if hf == "transformer.wte.weight":
            v = v[:V]
        state[hf] = v
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight" and not m.endswith(".attn.bias") and not m.endswith("masked_bias")]
    if missing or unexpected:
        print(f"FAIL: state dict mismatch: missing {missing}, unexpected {unexpected}")
        return False
    inputs = t["inputs"].long().cuda()
    targets = t["targets"].long().cuda()
    logits = model(inputs).logits
    loss = F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)
    loss.backward()
    ours_loss = float(t["loss"][0])
    loss_bound, grad_bound = BOUNDS[dtype]
    ok = True
    rel = abs(ours_loss - float(loss)) / abs(float(loss))
    print(f"{dtype} B={B} T={T} {spec}: loss ours {ours_loss:.6f} torch {float(loss):.6f} rel {rel:.2e} (bound {loss_bound:g})")
    ok &= rel <= loss_bound
    params = dict(model.named_parameters())
    worst = (0.0, "")
    for name, value in t.items():
        if not name.startswith("grad/"):
            continue
        hf = name[len("grad/"):]
        g = value.float().cuda()
        if hf.endswith(CONV1D):
            g = g.t()
        if hf == "transformer.wte.weight":
            if g[V:].abs().max().item() != 0.0:
                print("FAIL: padding rows of wte got a gradient"); ok = False
            g = g[:V]
        ref = params[hf].grad
        if not torch.isfinite(g).all():
            print(f"FAIL: {hf}: non-finite gradient"); ok = False; continue
        err = ((g - ref).norm() / ref.norm().clamp_min(1e-30)).item()
        worst = max(worst, (err, hf))
        if err > grad_bound:
            print(f"FAIL: {hf}: gradient rel error {err:.2e} > {grad_bound:g}"); ok = False
    print(f"  {len([n for n in t if n.startswith('grad/')])} gradients, worst rel error {worst[0]:.2e} ({worst[1]})")
    return ok


def main():
    if len(sys.argv) < 2:
        print(__doc__); return 2
    dump = sys.argv[1]
    workdir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="ds-parity-")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    results = [check(dump, workdir, *c) for c in CASES]
    print("PASS" if all(results) else "FAIL")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
