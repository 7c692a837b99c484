// Token + position embedding: the first layer of GPT-2. Shapes and rules: model/ops.hpp.
#pragma once

#include <cstdint>

namespace ds::model {

// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
// out is (B,T,C); inp is (B,T) token ids, each in [0, Vp) (the model checks them against V first);
// wte is (Vp,C); wpe is (seq_len,C) with T <= seq_len.
template <typename S>
void encoder_forward_cpu(S* out, const int32_t* inp, const S* wte, const S* wpe, int B, int T, int C);

// dwte[inp[b,t],:] += dout[b,t,:] and dwpe[t,:] += dout[b,t,:] for every (b,t).
// dwte is (Vp,C), dwpe is (seq_len,C), dout is (B,T,C), inp is (B,T).
// All uses of one token (and of one position) are summed in fp32 in (b,t) order and added to the
// gradient once, so repeated tokens do not lose precision to bf16/fp16 rounding at every use.
template <typename S>
void encoder_backward_cpu(S* dwte, S* dwpe, const S* dout, const int32_t* inp, int B, int T, int C);

}  // namespace ds::model
