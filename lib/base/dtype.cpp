#include "base/dtype.hpp"

#include "base/error.hpp"

namespace ds {

DType parse_dtype(std::string_view text) {
  if (text == "fp32" || text == "float32" || text == "float") return DType::f32;
  if (text == "bf16" || text == "bfloat16") return DType::bf16;
  if (text == "fp16" || text == "float16" || text == "half") return DType::f16;
  throw UsageError("dtype '" + std::string(text) + "' is not one of fp32, bf16, fp16");
}

}  // namespace ds
