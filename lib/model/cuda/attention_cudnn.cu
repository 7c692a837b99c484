// AttentionImpl::cudnn: cuDNN's fused scaled-dot-product attention through the cuDNN frontend
// graph API (compiled only with DS_HAVE_CUDNN; lib/model/cuda/CMakeLists.txt).
//
// q, k and v are strided views into the packed qkv (B,T,3C): dims [B,NH,T,hs], strides
// [T*3C, hs, 3C, 1], so nothing is copied or permuted; out and dout are (B,T,C): strides
// [T*C, hs, C, 1]. Causal mask (top-left diagonal, s <= t), scale 1/sqrt(hs). The forward's "Stats"
// output is our lse (fp32, natural-log LSE of the scaled masked scores, dims [B,NH,T,1] laid out
// as (B,NH,T)); the backward reads it back.
//
// Graphs are built once per (B, T, NH, hs, dtype, direction) and cached with their workspace size,
// together with one cuDNN handle per device; both live until the process exits. The cache is
// guarded by a mutex: building is slow (tens of ms) but happens once, at the scratch-size query.
//
// Backward: cuDNN WRITES dq, dk, dv; the contract accumulates. So they are written into a (B,T,3C)
// scratch of S (same strided layout as qkv) and attn::accumulate adds that into dqkv: two roundings
// per element (cuDNN's into S, then the sum's). The deterministic algorithm is requested
// (set_deterministic_algorithm): without it cuDNN's SDPA backward may sum dq with atomics.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>

#include "base/check.hpp"
#include "base/error.hpp"
#include "device/cuda_check.hpp"
#include "model/cuda/attention_internal.hpp"

namespace ds::model::cuda::attn {
namespace {

namespace fe = cudnn_frontend;
using TensorPtr = std::shared_ptr<fe::graph::Tensor_attributes>;

#define DS_CUDNN_CHECK(stmt)                                                                                  \
  do {                                                                                                        \
    const cudnnStatus_t ds_cudnn_status_ = (stmt);                                                            \
    DS_CHECK(ds_cudnn_status_ == CUDNN_STATUS_SUCCESS, "cuDNN error ", cudnnGetErrorString(ds_cudnn_status_), \
             " in `", #stmt, "`");                                                                            \
  } while (0)

enum class Direction { forward, backward };

struct Key {
  int B, T, NH, hs;
  DType dtype;
  Direction direction;
  int device;
  bool operator<(const Key& o) const {
    return std::tie(B, T, NH, hs, dtype, direction, device) <
           std::tie(o.B, o.T, o.NH, o.hs, o.dtype, o.direction, o.device);
  }
};

struct Plan {
  std::shared_ptr<fe::graph::Graph> graph;
  TensorPtr q, k, v, o, stats, dout, dq, dk, dv;
  int64_t workspace_bytes = 0;
};

std::string shape_text(const Key& key) {
  return std::string(key.direction == Direction::forward ? "forward" : "backward") + " B=" + std::to_string(key.B) +
         " T=" + std::to_string(key.T) + " NH=" + std::to_string(key.NH) + " hs=" + std::to_string(key.hs) + " " +
         dtype_name(key.dtype);
}

// A frontend step that fails while building means cuDNN cannot run this shape here (no engine for
// it, or a cuDNN too old): the user can switch to `own`.
void build_step(fe::error_t status, const char* step, const Key& key) {
  if (status.is_good()) return;
  throw UsageError("attention: cuDNN cannot run SDPA " + shape_text(key) + " (" + step + ": " + status.get_message() +
                   "); use attention implementation 'own'");
}

struct Cache {
  std::mutex mutex;
  std::map<int, cudnnHandle_t> handles;  // per device; never destroyed (process lifetime)
  std::map<Key, std::shared_ptr<Plan>> plans;
};

Cache& cache() {
  static Cache* c = new Cache;  // leaked on purpose: destroying handles at exit races driver teardown
  return *c;
}

cudnnHandle_t handle_locked(int device) {
  auto& handles = cache().handles;
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  cudnnHandle_t h = nullptr;
  DS_CUDNN_CHECK(cudnnCreate(&h));
  handles.emplace(device, h);
  return h;
}

std::shared_ptr<Plan> build(const Key& key, cudnnHandle_t handle) {
  const int64_t B = key.B, T = key.T, NH = key.NH, hs = key.hs, C = NH * hs, C3 = 3 * C;
  const std::vector<int64_t> qkv_dims{B, NH, T, hs}, qkv_strides{T * C3, hs, C3, 1};
  const std::vector<int64_t> out_strides{T * C, hs, C, 1};
  const std::vector<int64_t> stats_dims{B, NH, T, 1}, stats_strides{NH * T, T, 1, 1};
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));

  auto plan = std::make_shared<Plan>();
  auto graph = std::make_shared<fe::graph::Graph>();
  graph->set_io_data_type(key.dtype == DType::bf16 ? fe::DataType_t::BFLOAT16 : fe::DataType_t::HALF)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto tensor = [&](const char* name, int64_t uid, const std::vector<int64_t>& dims,
                    const std::vector<int64_t>& strides) {
    return graph->tensor(fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dims).set_stride(strides));
  };
  plan->q = tensor("q", 1, qkv_dims, qkv_strides);
  plan->k = tensor("k", 2, qkv_dims, qkv_strides);
  plan->v = tensor("v", 3, qkv_dims, qkv_strides);
  if (key.direction == Direction::forward) {
    auto attrs = fe::graph::SDPA_attributes()
                     .set_name("attention_forward")
                     .set_generate_stats(true)
                     .set_causal_mask(true)
                     .set_attn_scale(scale);
    auto [o, stats] = graph->sdpa(plan->q, plan->k, plan->v, attrs);
    o->set_output(true).set_dim(qkv_dims).set_stride(out_strides).set_uid(4);
    stats->set_output(true).set_data_type(fe::DataType_t::FLOAT).set_dim(stats_dims).set_stride(stats_strides).set_uid(5);
    plan->o = o;
    plan->stats = stats;
  } else {
    plan->o = tensor("o", 4, qkv_dims, out_strides);
    plan->stats = graph->tensor(fe::graph::Tensor_attributes()
                                    .set_name("stats")
                                    .set_uid(5)
                                    .set_dim(stats_dims)
                                    .set_stride(stats_strides)
                                    .set_data_type(fe::DataType_t::FLOAT));
    plan->dout = tensor("dout", 6, qkv_dims, out_strides);
    auto attrs = fe::graph::SDPA_backward_attributes()
                     .set_name("attention_backward")
                     .set_causal_mask(true)
                     .set_attn_scale(scale)
                     .set_deterministic_algorithm(true);
    auto [dq, dk, dv] = graph->sdpa_backward(plan->q, plan->k, plan->v, plan->o, plan->dout, plan->stats, attrs);
    dq->set_output(true).set_dim(qkv_dims).set_stride(qkv_strides).set_uid(7);
    dk->set_output(true).set_dim(qkv_dims).set_stride(qkv_strides).set_uid(8);
    dv->set_output(true).set_dim(qkv_dims).set_stride(qkv_strides).set_uid(9);
    plan->dq = dq;
    plan->dk = dk;
    plan->dv = dv;
  }
  build_step(graph->validate(), "validate", key);
  build_step(graph->build_operation_graph(handle), "build_operation_graph", key);
  build_step(graph->create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans", key);
  build_step(graph->check_support(handle), "check_support", key);
  build_step(graph->build_plans(handle), "build_plans", key);
  build_step(graph->get_workspace_size(plan->workspace_bytes), "get_workspace_size", key);
  plan->graph = std::move(graph);
  return plan;
}

// The cached plan and the device's handle, bound to `stream` (nullptr: the size queries).
std::pair<std::shared_ptr<Plan>, cudnnHandle_t> plan_for(int B, int T, int C, int NH, DType dtype,
                                                         Direction direction, cudaStream_t stream) {
  int device = 0;
  DS_CUDA_CHECK(cudaGetDevice(&device));
  const Key key{B, T, NH, C / NH, dtype, direction, device};
  std::lock_guard<std::mutex> lock(cache().mutex);
  cudnnHandle_t handle = handle_locked(device);
  auto& slot = cache().plans[key];
  if (!slot) slot = build(key, handle);
  DS_CUDNN_CHECK(cudnnSetStream(handle, stream));
  return {slot, handle};
}

void execute(const Plan& plan, cudnnHandle_t handle, std::unordered_map<TensorPtr, void*>& pack, void* workspace,
             const char* op) {
  fe::error_t status = plan.graph->execute(handle, pack, workspace);
  DS_CHECK(status.is_good(), "cuDNN ", op, " failed: ", status.get_message());
}

size_t dqkv_bytes(int B, int T, int C, DType dtype) {
  return align_up(static_cast<size_t>(B) * T * 3 * C * dtype_size(dtype));
}

}  // namespace

size_t cudnn_forward_scratch_bytes(int B, int T, int C, int NH, DType dtype) {
  return align_up(static_cast<size_t>(plan_for(B, T, C, NH, dtype, Direction::forward, nullptr).first->workspace_bytes));
}

size_t cudnn_backward_scratch_bytes(int B, int T, int C, int NH, DType dtype) {
  const auto plan = plan_for(B, T, C, NH, dtype, Direction::backward, nullptr).first;
  return dqkv_bytes(B, T, C, dtype) + align_up(static_cast<size_t>(plan->workspace_bytes));
}

template <typename S>
void cudnn_forward(S* out, float* lse, const S* qkv, int B, int T, int C, int NH, void* scratch, cudaStream_t stream) {
  // out is (B,T,C), lse is (B,NH,T), qkv is (B,T,3C); scratch is the plan's workspace.
  static_assert(!std::is_same_v<S, float>, "cuDNN attention runs bf16/fp16 only");
  auto [plan, handle] = plan_for(B, T, C, NH, dtype_of<S>(), Direction::forward, stream);
  DS_CHECK(plan->workspace_bytes == 0 || scratch != nullptr,
           "attention_forward (cudnn) needs scratch of attention_forward_scratch_bytes");
  S* q = const_cast<S*>(qkv);
  std::unordered_map<TensorPtr, void*> pack{
      {plan->q, q}, {plan->k, q + C}, {plan->v, q + 2 * C}, {plan->o, out}, {plan->stats, lse}};
  execute(*plan, handle, pack, scratch, "SDPA forward");
}

template <typename S>
void cudnn_backward(S* dqkv, const S* dout, const S* qkv, const S* out, const float* lse, int B, int T, int C, int NH,
                    void* scratch, cudaStream_t stream) {
  // dqkv is (B,T,3C) (+=), dout and out are (B,T,C), qkv is (B,T,3C), lse is (B,NH,T).
  // scratch: [ (B,T,3C) of S: cuDNN's dq|dk|dv ][ the plan's workspace ].
  static_assert(!std::is_same_v<S, float>, "cuDNN attention runs bf16/fp16 only");
  auto [plan, handle] = plan_for(B, T, C, NH, dtype_of<S>(), Direction::backward, stream);
  S* grads = static_cast<S*>(scratch);
  void* workspace = static_cast<char*>(scratch) + dqkv_bytes(B, T, C, dtype_of<S>());
  S* q = const_cast<S*>(qkv);
  std::unordered_map<TensorPtr, void*> pack{{plan->q, q},
                                            {plan->k, q + C},
                                            {plan->v, q + 2 * C},
                                            {plan->o, const_cast<S*>(out)},
                                            {plan->stats, const_cast<float*>(lse)},
                                            {plan->dout, const_cast<S*>(dout)},
                                            {plan->dq, grads},
                                            {plan->dk, grads + C},
                                            {plan->dv, grads + 2 * C}};
  execute(*plan, handle, pack, workspace, "SDPA backward");
  accumulate(dqkv, grads, int64_t{B} * T * 3 * C, stream);
}

#define DS_INSTANTIATE(S)                                                                                        \
  template void cudnn_forward<S>(S*, float*, const S*, int, int, int, int, void*, cudaStream_t);                 \
  template void cudnn_backward<S>(S*, const S*, const S*, const S*, const float*, int, int, int, int, void*,    \
                                  cudaStream_t);
DS_INSTANTIATE(ds::bf16)
DS_INSTANTIATE(ds::f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda::attn
