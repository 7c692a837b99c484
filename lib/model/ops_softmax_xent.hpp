// Softmax over the vocabulary and cross-entropy against the next token, fused (the loss never
// needs the probabilities materialised). Rules: model/ops.hpp.
//
// Only the first V of the Vp logits take part (Vp - V are padding columns for speed, as in llm.c);
// their gradient is 0. A target of -1 marks a position that is not scored (k_ignore_target, like
// nanoGPT's ignore_index=-1): its loss is 0 and it is left out of the mean. The loss is the mean
// over scored positions; when no position is scored it is 0 and so is every gradient.
#pragma once

#include <cstdint>

namespace ds::model {

inline constexpr int32_t k_ignore_target = -1;

// Writes losses (B,T) fp32 (-log p[target], 0 where ignored) and returns their mean over scored
// positions (summed in double, in (b,t) order). logits is (B,T,Vp); targets is (B,T), each -1 or in
// [0, V) (checked: a bad target is a broken invariant here; the model validates user data first).
template <typename S>
float softmax_xent_forward_cpu(float* losses, const S* logits, const int32_t* targets, int B, int T, int V, int Vp);

// WRITES (does not accumulate) dlogits (B,T,Vp) = dloss · ∂(mean loss)/∂logits: for a scored row
// (softmax(logits) - onehot(target)) · dloss / scored, zero in padding columns and ignored rows.
template <typename S>
void softmax_xent_backward_cpu(S* dlogits, const S* logits, const int32_t* targets, float dloss, int B, int T,
                               int V, int Vp);

// Positions with a target other than k_ignore_target.
int64_t count_scored_targets(const int32_t* targets, int64_t n);

}  // namespace ds::model
