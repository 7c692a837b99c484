// LayerNorm over channels (eps 1e-5, biased variance, as torch.nn.LayerNorm). Rules: model/ops.hpp.
#pragma once

namespace ds::model {

inline constexpr float k_layernorm_eps = 1e-5f;

// out = (inp - mean) * rstd * weight + bias, per row; mean and rstd are kept for backward.
// out and inp are (B,T,C); mean and rstd are (B,T) fp32; weight and bias are (C).
template <typename S>
void layernorm_forward_cpu(S* out, float* mean, float* rstd, const S* inp, const S* weight, const S* bias,
                           int B, int T, int C);

// Accumulates dinp (B,T,C), dweight (C) and dbias (C) from dout (B,T,C), using the forward's inp,
// weight, mean and rstd.
template <typename S>
void layernorm_backward_cpu(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                            const float* mean, const float* rstd, int B, int T, int C);

}  // namespace ds::model
