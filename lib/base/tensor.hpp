// A non-owning view of a contiguous buffer of one dtype: what the model, the engine and the
// collectives pass around. Shapes live with the parameter metadata (model/params.hpp); a view is
// just pointer + dtype + element count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/check.hpp"
#include "base/dtype.hpp"

namespace ds {

struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  int64_t numel = 0;

  size_t bytes() const { return static_cast<size_t>(numel) * dtype_size(dtype); }

  // Typed access; checks that T matches the dtype.
  template <typename T>
  T* as() const {
    DS_CHECK(dtype_of<T>() == dtype, "tensor holds ", dtype_name(dtype), ", accessed as ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(data);
  }
  template <typename T>
  std::span<T> span() const { return {as<T>(), static_cast<size_t>(numel)}; }

  TensorRef slice(int64_t offset, int64_t count) const {
    DS_CHECK(offset >= 0 && count >= 0 && offset + count <= numel, "slice [", offset, ", +", count, ") of ", numel);
    return {static_cast<std::byte*>(data) + offset * static_cast<int64_t>(dtype_size(dtype)), dtype, count};
  }
};

}  // namespace ds
