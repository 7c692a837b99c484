// CudaOps: the model's GPU backend (model/ops_backend.hpp) over the kernels of
// model/cuda/kernels.hpp, on the Device's compute stream: cuBLASLt matmuls with GELU fused into
// c_fc's epilogue (and dGELU into c_proj's backward), flash-style attention (cuDNN's SDPA or ours),
// the softmax and cross-entropy fused with dlogits written over the logits. The host waits once per
// forward, for the mean loss.
#pragma once

#include <memory>

#include "base/dtype.hpp"
#include "device/device.hpp"
#include "model/cuda/kernels.hpp"
#include "model/ops_backend.hpp"

namespace ds::model::cuda {

// `device` must be a CUDA device (device::make_cuda_device) and outlive the backend.
std::unique_ptr<Ops> make_cuda_ops(device::Device& device, DType dtype, AttentionImpl attention = AttentionImpl::automatic);

}  // namespace ds::model::cuda
