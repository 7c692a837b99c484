#!/usr/bin/env python3
"""How fast a tiny GPT learns the default corpus (lib/model/data_corpus.hpp), in PyTorch.

    default_corpus_learning.py CORPUS [--device cpu|cuda] [--threads N] [--seconds S]

CORPUS is the corpus as text or as an llm.c token file; write it from a build with
    DS_CORPUS_OUT=corpus.txt build/tests/test_data "tools: write the default corpus"
Trains a 4-layer, 128-wide byte-level GPT (T=64, batch 16, AdamW 1e-3) on the first 99% of the
corpus and prints train and validation loss (nats per byte) against steps and seconds, and when the
validation loss first falls below 3, 2 and 1.5. A reference for what our own CPU training runs
should show on the same data; not a test.
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    raw = open(path, "rb").read()
    if path.endswith(".bin"):
        header = np.frombuffer(raw[:1024], dtype=np.int32)
        assert header[0] == 20240520 and header[1] == 1, "not an llm.c token file"
        return np.frombuffer(raw[1024:], dtype=np.uint16).astype(np.int64)
    return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab=256, T=64, d=128, layers=4, heads=4):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(T, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))
        for e in (self.wte, self.wpe):  # GPT-2's init: the tied head starts near uniform (loss ln 256)
            nn.init.normal_(e.weight, std=0.02)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x, self.mask[:T, :T])
        return self.ln_f(x) @ self.wte.weight.T


def main():
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seconds", type=float, default=120)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tokens = torch.from_numpy(load(a.corpus))
    split = len(tokens) * 99 // 100
    train, val = tokens[:split], tokens[split:]
    T, B = 64, 16
    model = TinyGPT(T=T).to(a.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)

    def batch(data):
        starts = torch.randint(0, len(data) - T - 1, (B,), generator=g)
        x = torch.stack([data[s : s + T] for s in starts]).to(a.device)
        y = torch.stack([data[s + 1 : s + T + 1] for s in starts]).to(a.device)
        return x, y

    def val_loss():
        model.eval()
        with torch.no_grad():
            losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in (batch(val) for _ in range(20))]
        model.train()
        return sum(losses) / len(losses)

    print(f"device {a.device}, threads {torch.get_num_threads()}, {len(tokens):,} tokens, ln 256 = {math.log(256):.3f}")
    thresholds, start, step = [3.0, 2.0, 1.5], time.time(), 0
    while time.time() - start < a.seconds:
        x, y = batch(train)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0 or step == 1:
            v = val_loss()
            print(f"step {step:5d}  {time.time() - start:6.1f} s  train {loss.item():.3f}  val {v:.3f}", flush=True)
            while thresholds and v < thresholds[0]:
                print(f"  val loss below {thresholds.pop(0)} after {step} steps ({step * B * T:,} tokens), {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
