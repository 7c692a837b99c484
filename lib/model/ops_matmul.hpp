// Linear layer: out = inp · weightᵀ + bias, weight stored (OC, C) like torch.nn.Linear (HF's Conv1D
// stores the transpose: see HfLayout in params.hpp). Also the tied head: logits = lnf · wteᵀ.
// Rules: model/ops.hpp; cache blocking and determinism: model/gemm_cpu.hpp.
#pragma once

namespace ds::model {

// out is (B,T,OC); inp is (B,T,C); weight is (OC,C); bias is (OC) or null.
template <typename S>
void matmul_forward_cpu(S* out, const S* inp, const S* weight, const S* bias, int B, int T, int C, int OC);

// Accumulates dinp (B,T,C) += dout · weight, dweight (OC,C) += doutᵀ · inp and dbias (OC) += Σ_bt dout.
// dinp and dbias may be null (not wanted / no bias). dout is (B,T,OC), inp is (B,T,C).
template <typename S>
void matmul_backward_cpu(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                         int B, int T, int C, int OC);

// Which GEMM microkernel this CPU runs ("avx2+fma" or "generic").
const char* matmul_cpu_kernel_name();

}  // namespace ds::model
