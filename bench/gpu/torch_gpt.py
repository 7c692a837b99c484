#!/usr/bin/env python3
"""PyTorch anchor for bench/gpu/run.sh: GPT-2 training throughput on one GPU, eager or torch.compile.

The same model dslaunch's dsworker trains (pre-LN GPT-2, tied wte, vocab padded to 50304, tanh GELU,
causal SDPA attention), bf16 autocast over fp32 master weights, fused AdamW, random tokens of the
GPT-2 vocabulary. Prints one JSON line: tokens/s over the timed steps (after warm-up), MFU with
research/anchor-measurements.md's formula, peak GPU memory, and the seconds from process start to
the end of the first step.
"""
import argparse, json, math, time

T_START = time.time()
import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {"gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024), "gpt2-large": (36, 20, 1280), "gpt2-xl": (48, 25, 1600)}
VOCAB, VOCAB_PADDED, SEQ = 50257, 50304, 1024


class Block(nn.Module):
    def __init__(self, c, nh):
        super().__init__()
        self.nh = nh
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.nh, c // self.nh).transpose(1, 2) for z in self.c_attn(self.ln_1(x)).split(c, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, n_layer, n_head, c):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB_PADDED, c), nn.Embedding(SEQ, c)
        self.blocks = nn.ModuleList(Block(c, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(c)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits[..., :VOCAB].float().flatten(0, 1), targets.flatten())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=list(SIZES))
    ap.add_argument("--mb", type=int, required=True)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.manual_seed(0)
    L, NH, C = SIZES[a.model]
    model = Gpt(L, NH, C).cuda()
    n_params = sum(p.numel() for p in model.parameters()) - SEQ * C  # wpe is not counted, as anchor-measurements.md
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    step_fn = torch.compile(model) if a.compile else model
    x = torch.randint(0, VOCAB, (a.mb, SEQ), device="cuda")
    y = torch.randint(0, VOCAB, (a.mb, SEQ), device="cuda")
    first_step_s = None
    times = []
    try:
        for i in range(a.warmup + a.steps):
            torch.cuda.synchronize()
            t0 = time.time()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = step_fn(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if first_step_s is None:
                first_step_s = time.time() - T_START
            if i >= a.warmup:
                times.append(time.time() - t0)
    except torch.OutOfMemoryError:
        print(json.dumps({"anchor": "torch.compile" if a.compile else "torch eager", "model": a.model, "mb": a.mb, "oom": True}))
        return
    dt = sum(times) / len(times)
    tok_s = a.mb * SEQ / dt
    flops_per_token = 6 * n_params + 6 * L * C * SEQ
    print(json.dumps({"anchor": "torch.compile" if a.compile else "torch eager", "model": a.model, "mb": a.mb,
                      "tokens_per_s": tok_s, "step_ms": dt * 1e3, "mfu": tok_s * flops_per_token / 989e12,
                      "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "first_step_s": first_step_s,
                      "loss": float(loss.detach()), "gpu": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
