// Causal multi-head self-attention on the packed q,k,v of c_attn. Rules: model/ops.hpp.
//
// qkv[b,t,:] is [q | k | v], each C wide; head h uses channels [h*hs, (h+1)*hs) of each (the
// split and view of Hugging Face's GPT2Attention). Scores are q·k / sqrt(hs), masked to s <= t,
// softmaxed in fp32.
#pragma once

namespace ds::model {

// out is (B,T,C) (heads side by side); att is (B,NH,T,T) fp32: the probabilities, kept for
// backward (entries s > t are written as 0); qkv is (B,T,3C). C must be a multiple of NH.
template <typename S>
void attention_forward_cpu(S* out, float* att, const S* qkv, int B, int T, int C, int NH);

// Accumulates dqkv (B,T,3C) from dout (B,T,C), using the forward's qkv and att.
// Parallel over (b, h); each head's dq, dk, dv are summed in fp32 and added to dqkv once.
template <typename S>
void attention_backward_cpu(S* dqkv, const S* dout, const S* qkv, const float* att, int B, int T, int C, int NH);

}  // namespace ds::model
