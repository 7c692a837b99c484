// The GPT-2 layers on the CPU: forward and backward of each, the oracle the CUDA kernels are
// checked against. One header per layer; this one includes them all and fixes the shared rules.
//
// Shape letters (used in every op's comments):
//   B  batch (sequences per micro-batch)     T   time (tokens per sequence), T <= seq_len
//   C  channels (n_embd)                     OC  output channels of a matmul
//   NH attention heads, hs = C / NH           V   vocabulary the softmax runs over
//   Vp padded vocabulary (rows of wte, columns of the logits), Vp >= V
//
// Storage and arithmetic: every op is a template over the storage type S ∈ {float, ds::bf16,
// ds::f16} of its tensors; values are loaded to fp32, every sum is accumulated in fp32, and results
// are rounded to S once when stored. Per-row statistics (LayerNorm mean/rstd), attention
// probabilities and losses are fp32 whatever S is.
//
// Gradients: every *_backward_cpu ACCUMULATES (+=) into every gradient it produces, parameter and
// input alike, so a tied weight or a tensor read twice simply receives both contributions. The one
// exception is softmax_xent_backward_cpu, which writes dlogits: it is where backward starts.
// Callers zero an input-gradient buffer before its first use.
//
// Threads: ops split their work with ds::parallel_for over rows, heads, columns or output tiles,
// and never combine partial sums across threads, so results are bitwise identical whatever the
// thread count (see gemm_cpu.hpp's determinism note for the matmul).
#pragma once

#include "model/ops_attention.hpp"
#include "model/ops_encoder.hpp"
#include "model/ops_gelu.hpp"
#include "model/ops_layernorm.hpp"
#include "model/ops_matmul.hpp"
#include "model/ops_residual.hpp"
#include "model/ops_softmax_xent.hpp"
