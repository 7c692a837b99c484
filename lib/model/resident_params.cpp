#include "model/resident_params.hpp"

#include <cstring>

#include "model/init.hpp"
#include "base/check.hpp"

namespace ds::model {

ResidentParams::ResidentParams(ModelLayout layout, DType dtype) : m_layout(std::move(layout)), m_dtype(dtype) {
  int64_t offset = 0;
  for (const ParamInfo& p : m_layout.params) {
    m_offsets.push_back(offset);
    offset += p.numel;
  }
  m_params.assign(static_cast<size_t>(offset) * dtype_size(dtype), std::byte{0});
  m_grads.assign(m_params.size(), std::byte{0});
}

void ResidentParams::init(uint64_t seed) {
  std::vector<float> values;
  for (size_t p = 0; p < m_layout.params.size(); ++p) {
    const ParamInfo& info = m_layout.params[p];
    values.resize(static_cast<size_t>(info.numel));
    init_param_slice(info, static_cast<ParamId>(p), seed, 0, info.numel, values.data());
    TensorRef dst = param(static_cast<ParamId>(p));
    visit_dtype(m_dtype, [&](auto zero) {
      using S = decltype(zero);
      S* out = dst.as<S>();
      for (int64_t i = 0; i < info.numel; ++i) out[i] = from_float<S>(values[static_cast<size_t>(i)]);
    });
  }
}

void ResidentParams::zero_grad() { std::memset(m_grads.data(), 0, m_grads.size()); }

void ResidentParams::begin_forward(int module) {
  DS_CHECK(m_open_module == -1, "begin_forward(", module, ") while module ", m_open_module, " is open");
  m_open_module = module;
}
void ResidentParams::end_forward(int module) {
  DS_CHECK(m_open_module == module, "end_forward(", module, ") but the open module is ", m_open_module);
  m_open_module = -1;
}
void ResidentParams::begin_backward(int module) { begin_forward(module); }
void ResidentParams::end_backward(int module) { end_forward(module); }

TensorRef ResidentParams::param(ParamId p) {
  const ParamInfo& info = m_layout.params.at(static_cast<size_t>(p));
  return {m_params.data() + offset(p) * static_cast<int64_t>(dtype_size(m_dtype)), m_dtype, info.numel};
}

TensorRef ResidentParams::grad(ParamId p) {
  const ParamInfo& info = m_layout.params.at(static_cast<size_t>(p));
  return {m_grads.data() + offset(p) * static_cast<int64_t>(dtype_size(m_dtype)), m_dtype, info.numel};
}

}  // namespace ds::model
